"""Card calls through access numbers, with the chain's charges at every level worked out by hand.

The world is tests/calls_world.py (card -> north-city (L1) -> atlas-north (L2) -> atlas (L3) -> house), the
card paying north-city's retail tariff. A call to the UK costs, at each level (see test_calls_service.py):
  the card    0.10 a minute, per second               60 s: 100,000 µ   95 s: 158,334 µ
  north-city  0.06 a minute, in 6-second steps         60 s:  60,000 µ   95 s (96):  96,000 µ
  atlas-north 0.05 a minute, by the minute             60 s:  50,000 µ   95 s (120): 100,000 µ
  atlas       0.04 a minute + 0.05 to connect          60 s:  90,000 µ   95 s: 113,334 µ
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.calls_world import UK, build_world
from tollway import metrics
from tollway.access import service as access
from tollway.access.model import Role
from tollway.calls import service as calls
from tollway.calls.service import CallRequest, CallSettings
from tollway.cards import model, numbers
from tollway.cards import payers as card_payers
from tollway.cards import service as cards
from tollway.cards import store as cards_store
from tollway.cards.model import BatchTerms, CardState
from tollway.cards.payers import CardCall
from tollway.errors import NotFound, Refusal
from tollway.http.app import create_app
from tollway.rating import subscriptions
from tollway.rating.loading import TABLES
from tollway.rating.plans import Period
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.store.schema import audit_log
from tollway.tree import service as tree
from tollway.tree.model import reseller

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
MINUTE = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=120)
SEALER = Sealer(Sealer.new_key())
KEY = cards.pin_key(SEALER)
CITY_NUMBER = "+1 800 555 0100"  # north-city's, exclusive
OPEN_NUMBER = "+1 800 555 0199"  # the provider's, open to every card
CALLER = "+1 212 555 0123"


@pytest.fixture(autouse=True)
def _fresh_tables() -> None:
    TABLES.clear()
    calls.LEVELS.clear()


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def make(database: Database, owner: str, name: str, face_micros: int, count: int = 1, **terms: Any) -> list[str]:
    """A batch's PINs, in serial order."""
    wanted = BatchTerms(name=name, count=count, face_value_micros=face_micros, **terms)
    return [card.pin for card in cards.create_batch(database, owner_login=owner, terms=wanted, pin_key=KEY).cards]


@pytest.fixture
def world(database: Database) -> dict[str, list[str]]:
    build_world(database)
    tree.create_node(
        database, owner_login="atlas-north", new=tree.NewNode(position=reseller(1), login="metro", name="Metro")
    )
    numbers.put_access_number(database, owner_login="north-city", number=CITY_NUMBER, language="es", exclusive=True)
    numbers.put_access_number(database, owner_login="house", number=OPEN_NUMBER, language="en", exclusive=False)
    return {
        "city": make(database, "north-city", "nc", 5_000_000, count=100, tariff="north-city:retail"),
        "small": make(database, "north-city", "nc-small", 100_000, tariff="north-city:retail"),
        "metro": make(database, "metro", "metro", 5_000_000),
    }


def card_call(
    database: Database, call_id: str, pin: str, number: str = CITY_NUMBER, caller: str = CALLER, **kw: Any
) -> dict[str, Any]:
    request = CallRequest(
        call_id, "", caller, kw.pop("callee", UK), answered=True, card=CardCall(number, model.pin_digest(KEY, pin))
    )
    return calls.authorize_call(database, request, settings=MINUTE, now=kw.pop("now", NOW))


def charges(view: dict[str, Any]) -> list[int]:
    return [line["amount_micros"] for line in view["charges"]]


def card(database: Database, serial: str) -> cards.CardView:
    return cards.get_card(database, owner_login="north-city", serial=serial)


def test_a_card_story_activation_two_calls_up_the_chain_recharge_and_depletion(
    database: Database, world: dict[str, list[str]]
) -> None:
    first = world["city"][0]
    assert card(database, "000000001").card.state is CardState.NEW
    # 1. The first call activates the card: 5.00 moves from north-city into it, then a minute to the UK.
    answer = card_call(database, "k1", first)
    assert (answer["status"], answer["max_seconds"], answer["grant_seconds"]) == ("authorized", 3000, 60)
    view = calls.end_call(database, "k1", duration_seconds=60, now=at(60))
    assert view["account"] == card(database, "000000001").card.login
    assert charges(view) == [100_000, 60_000, 50_000, 90_000]
    assert (card(database, "000000001").card.state, card(database, "000000001").balance_micros) == (
        CardState.ACTIVE,
        4_900_000,
    )
    # 2. A second call of 95 s, from another phone, on the provider's open number.
    card_call(database, "k2", first, number=OPEN_NUMBER, caller="+1 305 555 0100", now=at(100))
    assert calls.extend_due(database, settings=MINUTE, now=at(131)) == 1  # the grant runs low: one more minute
    view = calls.end_call(database, "k2", duration_seconds=95, now=at(195))
    assert charges(view) == [158_334, 96_000, 100_000, 113_334]
    assert card(database, "000000001").balance_micros == 4_741_666  # 5.00 - 0.10 - 0.158334
    # 3. A recharge of 1.00.
    cards.recharge(database, owner_login="north-city", serial="000000001", amount_micros=1_000_000, transfer_id="r-1")
    assert card(database, "000000001").balance_micros == 5_741_666
    # 4. A card of 0.10: one minute, then nothing left; the engine limits the call to what it holds.
    small = world["small"][0]
    answer = card_call(database, "s1", small, now=at(300))
    assert (answer["max_seconds"], answer["limited_by"]) == (60, card(database, "000000101").card.login)
    calls.end_call(database, "s1", duration_seconds=60, now=at(360))
    assert card(database, "000000101").balance_micros == 0
    refused = card_call(database, "s2", small, now=at(400))
    assert (refused["status"], refused["reason"]) == ("refused", "insufficient_funds")
    assert card(database, "000000101").card.state is CardState.DEPLETED


def test_an_exclusive_number_refuses_another_resellers_card(database: Database, world: dict[str, list[str]]) -> None:
    refused = card_call(database, "m1", world["metro"][0])
    assert (refused["status"], refused["reason"], refused["sip_code"]) == ("refused", "access_number_exclusive", 403)
    # On the open number metro's card passes the number's check and reaches the engine (it has no tariff).
    assert card_call(database, "m2", world["metro"][0], number=OPEN_NUMBER)["reason"] == "no_tariff"


def test_refusals_before_the_engine(database: Database, world: dict[str, list[str]]) -> None:
    assert card_call(database, "x1", "0" * 12)["reason"] == "pin_invalid"
    assert card_call(database, "x2", world["city"][1], number="+1 800 555 0000")["reason"] == "access_number_unknown"
    cards.block(database, owner_login="north-city", selection=cards.Selection(first="000000003"))
    assert card_call(database, "x3", world["city"][2])["reason"] == "card_blocked"
    # Its account is suspended too: a switch naming the account itself is refused by the engine.
    login = card(database, "000000003").card.login
    by_account = calls.authorize_call(database, CallRequest("x3b", login, CALLER, UK), settings=MINUTE, now=NOW)
    assert (by_account["reason"], by_account["level"]) == ("account_suspended", login)
    cards.unblock(database, owner_login="north-city", selection=cards.Selection(first="000000003"))
    assert card_call(database, "x3c", world["city"][2])["status"] == "authorized"
    cards.close(database, owner_login="north-city", selection=cards.Selection(first="000000004"))
    assert card_call(database, "x4", world["city"][3])["reason"] == "card_closed"


def test_a_card_past_its_expiry_is_expired_at_use(database: Database, world: dict[str, list[str]]) -> None:
    pin = make(database, "north-city", "short", 5_000_000, tariff="north-city:retail", expiry_days=1)[0]
    assert card_call(database, "e1", pin, now=NOW)["status"] == "authorized"
    calls.end_call(database, "e1", duration_seconds=1, now=at(1))
    assert card_call(database, "e2", pin, now=at(86_399))["status"] == "authorized"  # activated at NOW, for a day
    calls.end_call(database, "e2", duration_seconds=1, now=at(86_400))
    assert card_call(database, "e3", pin, now=at(86_400))["reason"] == "card_expired"
    assert cards.get_card(database, owner_login="north-city", serial="000000102").card.state is CardState.EXPIRED


def test_a_thousand_guesses_get_at_most_the_threshold_of_real_checks(
    database: Database, world: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = 0
    real = cards_store.find_card_by_pin

    def counting(connection: Any, digest: str) -> Any:
        nonlocal checked
        checked += 1
        return real(connection, digest)

    monkeypatch.setattr(cards_store, "find_card_by_pin", counting)
    guess = CardCall(CITY_NUMBER, model.pin_digest(KEY, "000000000000"))
    answers = [card_payers.resolve(database, card=guess, caller=CALLER, principal=None, now=NOW) for _ in range(1_000)]
    assert checked == model.PIN_FAILURES_FREE_PER_CALLER
    assert {a.reason for a in answers if isinstance(a, card_payers.Refused)} == {"pin_invalid", "pin_throttled"}
    # The right PIN from the locked caller is refused too, until the lock ends (a minute after the 5th).
    right = CardCall(CITY_NUMBER, model.pin_digest(KEY, world["city"][0]))
    locked = card_payers.resolve(database, card=right, caller="+1 (212) 555-0123", principal=None, now=at(59))
    assert locked == card_payers.Refused("pin_throttled")
    assert checked == model.PIN_FAILURES_FREE_PER_CALLER
    passed = card_payers.resolve(database, card=right, caller=CALLER, principal=None, now=at(61))
    assert not isinstance(passed, card_payers.Refused)
    with database.reading() as connection:
        locks = connection.execute(select(audit_log.c.target_id).where(audit_log.c.action == "card.pin_lock"))
        assert set(locks.scalars()) == {"card-caller:+12125550123"}  # never the access number: others still call


def test_each_pin_lock_is_counted_once_on_its_metric(database: Database, world: dict[str, list[str]]) -> None:
    """Ten callers guess five times each: each caller is locked at its fifth, and the access number at the
    fiftieth failure it hears; the guesses refused while locked lock nothing more."""
    before = {
        counter: metrics.sample(metrics.CARD_PIN_LOCKS, counter=counter) for counter in ("caller", "access_number")
    }
    guess = CardCall(CITY_NUMBER, model.pin_digest(KEY, "000000000000"))
    for caller in range(10):
        for _ in range(5):
            card_payers.resolve(database, card=guess, caller=f"+1212555{caller:04d}", principal=None, now=NOW)
    card_payers.resolve(database, card=guess, caller="+12125550000", principal=None, now=NOW)  # throttled
    assert metrics.sample(metrics.CARD_PIN_LOCKS, counter="caller") - before["caller"] == 10
    assert metrics.sample(metrics.CARD_PIN_LOCKS, counter="access_number") - before["access_number"] == 1


def test_over_http_a_switch_sends_the_pin_and_the_access_number(
    database: Database, world: dict[str, list[str]]
) -> None:
    _, key = access.create_api_key(database, None, node_login="atlas", name="switch", role=Role.RESELLER_ADMIN)
    with TestClient(create_app(database, sealer=SEALER), base_url="https://testserver") as http:
        body = {"call_id": "h1", "access_number": CITY_NUMBER, "pin": world["city"][5], "caller": CALLER, "callee": UK}
        answer = http.post("/api/v1/calls/authorize", json=body, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "authorized"
        both = body | {"call_id": "h2", "account": "alice"}
        assert (
            http.post("/api/v1/calls/authorize", json=both, headers={"Authorization": f"Bearer {key}"}).status_code
            == 422
        )


def test_a_registered_caller_number_calls_without_the_pin(database: Database, world: dict[str, list[str]]) -> None:
    pinless = CardCall(CITY_NUMBER, None)
    request = CallRequest("a1", "", CALLER, UK, answered=True, card=pinless)
    assert calls.authorize_call(database, request, settings=MINUTE, now=NOW)["reason"] == "pin_required"
    held = cards.add_caller(database, owner_login="north-city", serial="000000007", number="+1 (212) 555-0123")
    assert held == ["+12125550123"]
    with pytest.raises(Refusal, match="caller_id_exists"):  # one card per number
        cards.add_caller(database, owner_login="north-city", serial="000000008", number=CALLER)
    request = CallRequest("a2", "", CALLER, UK, answered=True, card=pinless)
    answer = calls.authorize_call(database, request, settings=MINUTE, now=NOW)
    assert answer["status"] == "authorized"
    assert (
        calls.end_call(database, "a2", duration_seconds=60, now=at(60))["account"]
        == card(database, "000000007").card.login
    )
    assert card(database, "000000007").balance_micros == 4_900_000
    assert cards.remove_caller(database, owner_login="north-city", serial="000000007", number=CALLER) == []


def test_a_batchs_plan_is_given_to_each_card_at_activation_and_its_calls_use_it_first(
    database: Database, world: dict[str, list[str]]
) -> None:
    """A plan of 1.00 a month with 120 s to the UK: the card's first call moves its 5.00 in, pays the 1.00
    and talks 60 s of the plan; the next call of 95 s has the other 60 s, and pays 35 s at 0.10 a minute."""
    subscriptions.create_plan(
        database,
        owner_login="north-city",
        name="uk-2",
        fee_micros=1_000_000,
        period=Period.MONTH,
        included_seconds=120,
        prefixes=("44",),
    )
    pin = make(database, "north-city", "talk", 5_000_000, tariff="north-city:retail", plan="north-city:uk-2")[0]
    serial = "000000102"  # after the world's 100 and 1 of north-city
    assert card_call(database, "p1", pin)["status"] == "authorized"
    view = calls.end_call(database, "p1", duration_seconds=60, now=at(60))
    assert charges(view) == [0, 60_000, 50_000, 90_000]  # the card's minute is the plan's; its owners pay theirs
    assert view["charges"][0]["plan_seconds"] == 60
    assert card(database, serial).balance_micros == 4_000_000  # 5.00 in, the plan's 1.00 out
    card_call(database, "p2", pin, now=at(100))
    assert calls.extend_due(database, settings=MINUTE, now=at(131)) == 1  # the plan is spent: money now
    view = calls.end_call(database, "p2", duration_seconds=95, now=at(195))
    assert (view["charges"][0]["plan_seconds"], view["charges"][0]["amount_micros"]) == (60, 58_334)
    assert card(database, serial).balance_micros == 3_941_666
    held = subscriptions.subscriptions_of(database, login=card(database, serial).card.login)
    assert [(s.plan.name, s.seconds_left) for s in held] == [("north-city:uk-2", 0)]


def test_a_batchs_plan_is_its_owners_and_its_first_fee_fits_in_a_card(
    database: Database, world: dict[str, list[str]]
) -> None:
    subscriptions.create_plan(
        database, owner_login="north-city", name="big", fee_micros=6_000_000, period=Period.MONTH, included_seconds=60
    )
    with pytest.raises(Refusal, match="plan_unpaid"):  # 6.00 is more than a card of 5.00 holds
        make(database, "north-city", "big", 5_000_000, plan="north-city:big")
    with pytest.raises(Refusal, match="plan_not_owners"):  # north-city's plan, for metro's cards
        make(database, "metro", "m2", 10_000_000, plan="north-city:big")
    with pytest.raises(NotFound):
        make(database, "north-city", "none", 5_000_000, plan="north-city:nothing")
