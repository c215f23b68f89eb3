"""Calls from extensions, through credit control, on both databases, with every amount worked out by hand.

The world (tests/organizations_world.py): acme (an organization) -> north-city (L1) -> atlas-north (L2) ->
atlas (L3) -> house. acme's users ann and ben have extensions 101, 102 (ann) and 103 (ben), in SIP domain
"acme". Grants of 10 s, extended when 5 s are left. What each level pays for d seconds to the UK:
  a user of acme  0.10 a minute, per second (acme's tariff)     ceil(100,000 d / 60)
  acme            0.10 a minute, per second                     ceil(100,000 d / 60)
  north-city      0.06 a minute, in 6-second steps              1,000 x (d rounded up to a multiple of 6)
  atlas-north     0.05 a minute, by the minute                  50,000 for each minute begun
  atlas           0.04 a minute per second + 0.05 to connect    50,000 + ceil(40,000 d / 60)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.calls_world import UK, balance, micros
from tests.organizations_world import SEALER, build_organizations
from tollway.balances import service as balances
from tollway.calls import service as calls
from tollway.calls.service import FLOOR_POSITION_FIRST, CallRequest, CallSettings
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose
from tollway.organizations import service as organizations
from tollway.organizations.model import Caps, ExtensionStatus, Wallet
from tollway.organizations.service import NewExtension, NewUser
from tollway.rating.loading import TABLES
from tollway.store.database import Database
from tollway.tree import service as tree

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TEN = CallSettings(grant_seconds=10, extend_lead_seconds=5, stale_margin_seconds=30, ring_timeout_seconds=60)
UP = ("acme", "north-city", "atlas-north", "atlas")


@pytest.fixture(autouse=True)
def _fresh_tables() -> None:
    TABLES.clear()
    calls.LEVELS.clear()


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def acme(database: Database, *, wallet: Wallet = Wallet.USER, balances_of: dict[str, str] | None = None) -> None:
    build_organizations(database, balances_of=balances_of)
    organizations.configure(database, login="acme", wallet=wallet)
    for user, numbers in (("ann", ("101", "102")), ("ben", ("103",))):
        organizations.create_user(database, organization="acme", new=NewUser(login=user, name=user.title()))
        for number in numbers:
            organizations.create_extension(
                database, organization="acme", new=NewExtension(user=user, number=number), sealer=SEALER
            )


def dial(database: Database, call_id: str, extension: str, callee: str = UK, **kw: Any) -> dict[str, Any]:
    request = CallRequest(call_id, "", "", callee, answered=True, extension=extension)
    return calls.authorize_call(
        database, request, settings=TEN, now=kw.pop("now", NOW), principal=kw.pop("principal", None)
    )


def charges(view: dict[str, Any]) -> dict[str, int]:
    return {line["account"]: line["amount_micros"] for line in view["charges"]}


def test_parallel_calls_from_two_extensions_drain_their_users_shared_balance_and_are_cut(database: Database) -> None:
    acme(database)
    balances.topup(database, login="ann", amount_micros=micros("0.05"), transfer_id="ann-1")  # 30 s at 0.10/min
    balances.topup(database, login="ben", amount_micros=micros("1"), transfer_id="ben-1")

    first = dial(database, "a-1", "101@acme")
    second = dial(database, "a-2", "102@acme")
    # Both are ann's: 30 s in all. The first may last all 30; it reserves 10 (16,667), and the 33,333 left pay
    # 19 s of the second (20 s would cost 33,334).
    assert (first["max_seconds"], first["limited_by"], first["grant_seconds"]) == (30, "ann", 10)
    assert (second["max_seconds"], second["limited_by"], second["grant_seconds"]) == (19, "ann", 10)
    assert balances.get_balance(database, login="ann").available_micros == 50_000 - 2 * 16_667

    # 5 s in, both grants are extended, the first first: ann's 16,666 left and its own 16,667 pay 19 s of it
    # (20 s would cost 33,334); then the second gets nothing more than its 10 s (11 s would cost 18,334).
    assert calls.extend_due(database, settings=TEN, now=at(5)) == 2
    a, b = calls.get_call(database, "a-1"), calls.get_call(database, "a-2")
    assert (a["grant_seconds"], a["final"], a["disconnect"], a["reason"], a["level"]) == (
        19,
        True,
        "due",
        "insufficient_funds",
        "ann",
    )
    assert (b["grant_seconds"], b["final"], b["disconnect"], b["level"]) == (10, True, "due", "ann")

    # The switch hangs up when told: the second at 10 s, the first at 19 s. Every level pays at its tariff.
    b = calls.end_call(database, "a-2", duration_seconds=10, reason="disconnected", now=at(10))
    a = calls.end_call(database, "a-1", duration_seconds=19, reason="disconnected", now=at(19))
    assert charges(a) == {"ann": 31_667, "acme": 31_667, "north-city": 24_000, "atlas-north": 50_000, "atlas": 62_667}
    assert charges(b) == {"ann": 16_667, "acme": 16_667, "north-city": 12_000, "atlas-north": 50_000, "atlas": 56_667}
    assert (a["account"], a["caller"], b["caller"]) == ("ann", "acme/101", "acme/102")
    # ann has 1,666 left: not one more second (1,667). Every wallet lost exactly its charges.
    assert balance(database, "ann") == 50_000 - 31_667 - 16_667 == 1_666
    assert dial(database, "a-3", "103@acme")["limited_by"] == "ben"  # ben has his own balance
    assert dial(database, "a-4", "101@acme")["reason"] == "insufficient_funds"
    spent = {
        login: micros(topped) - balance(database, login)
        for login, topped in (("acme", "50"), ("north-city", "100"), ("atlas-north", "100"), ("atlas", "100"))
    }
    assert spent == {"acme": 48_334, "north-city": 36_000, "atlas-north": 100_000, "atlas": 119_334}


def test_a_call_between_two_extensions_of_one_organization_is_free_and_not_recorded(database: Database) -> None:
    acme(database)
    before = {login: balance(database, login) for login in ("ann", *UP)}
    answer = dial(database, "i-1", "101@acme", callee="103")
    assert answer == {
        "call_id": "i-1",
        "status": "authorized",
        "internal": True,
        "max_seconds": 14_400,
        "grant_seconds": 14_400,
        "final": True,
        "limited_by": None,
    }
    with pytest.raises(calls.CallUnknown):
        calls.get_call(database, "i-1")
    assert {login: balance(database, login) for login in ("ann", *UP)} == before
    # A number of the organization's length that is no extension of it is an outside number: credit control
    # rates it (109: North America, at 1) and ann, with nothing in her wallet, cannot pay for it.
    outside = dial(database, "i-2", "101@acme", callee="109")
    assert (outside["reason"], outside["level"]) == ("insufficient_funds", "ann")


def test_an_organization_that_pays_limits_each_user_by_a_daily_cap_in_real_time(database: Database) -> None:
    acme(database, wallet=Wallet.ORGANIZATION)
    organizations.update_user(database, organization="acme", login="ann", caps=Caps(day_micros=micros("0.03")))

    # acme pays (50.00: hours), but ann may spend 0.03 a day at acme's price: 18 s.
    first = dial(database, "c-1", "101@acme")
    assert (first["max_seconds"], first["limited_by"], first["grant_seconds"]) == (18, "ann:day_cap", 10)
    calls.extend_due(database, settings=TEN, now=at(5))
    assert calls.get_call(database, "c-1")["grant_seconds"] == 18
    ended = calls.end_call(database, "c-1", duration_seconds=18, reason="timeout", now=at(18))
    assert ended["account"] == "acme"
    assert charges(ended) == {
        "acme": 30_000,
        "north-city": 18_000,
        "atlas-north": 50_000,
        "atlas": 62_000,
        "ann:day_cap": 30_000,
    }
    assert [line["level"] for line in ended["charges"]][-1] == FLOOR_POSITION_FIRST
    assert balance(database, "ann") == 0  # ann's own wallet is never charged when acme pays
    assert micros("50") - balance(database, "acme") == 30_000

    # The cap is spent for today, on any of ann's extensions; ben has none and calls on.
    refused = dial(database, "c-2", "102@acme", now=at(60))
    assert (refused["reason"], refused["level"], refused["sip_code"]) == ("spending_cap_reached", "ann:day_cap", 402)
    assert dial(database, "c-3", "103@acme", now=at(60))["limited_by"] is None
    # Tomorrow in acme's time zone (UTC here) the cap is whole again.
    tomorrow = dial(database, "c-4", "102@acme", now=at(24 * 3600))
    assert (tomorrow["max_seconds"], tomorrow["limited_by"]) == (18, "ann:day_cap")


def test_a_cap_shared_by_parallel_calls_cuts_the_first_when_the_second_spends_it(database: Database) -> None:
    acme(database, wallet=Wallet.ORGANIZATION)
    caps = Caps(day_micros=micros("0.05"), month_micros=micros("1"))
    organizations.update_user(database, organization="acme", login="ann", caps=caps)
    first = dial(database, "p-1", "101@acme")
    second = dial(database, "p-2", "102@acme")
    assert (first["max_seconds"], second["max_seconds"], second["limited_by"]) == (30, 19, "ann:day_cap")
    calls.extend_due(database, settings=TEN, now=at(5))
    a = calls.get_call(database, "p-1")
    assert (a["grant_seconds"], a["disconnect"], a["reason"], a["level"]) == (
        19,
        "due",
        "spending_cap_reached",
        "ann:day_cap",
    )
    a = calls.end_call(database, "p-1", duration_seconds=19, now=at(19))
    b = calls.end_call(database, "p-2", duration_seconds=10, now=at(10))
    assert charges(a)["ann:day_cap"] + charges(b)["ann:day_cap"] == 48_334
    assert charges(a)["ann:month_cap"] == 31_667 and charges(b)["acme"] == 16_667
    # Lowering the cap below what was spent today leaves nothing to spend, and no account below its floor.
    organizations.update_user(database, organization="acme", login="ann", caps=Caps(day_micros=micros("0.01")))
    assert dial(database, "p-3", "101@acme", now=at(30))["reason"] == "spending_cap_reached"
    with database.reading() as connection:
        user = tree.require_node(connection, "ann")
        cap = ledger_store.find_account_id(
            connection, node_id=user.id, purpose=AccountPurpose.SPENDING_DAY, currency="USD"
        )
        assert cap is not None
        assert ledger_store.get_account(connection, cap).credit_limit_micros == 48_334  # type: ignore[union-attr]


def test_extensions_nobody_may_use_are_unknown_accounts(database: Database) -> None:
    acme(database)
    organizations.update_extension(database, organization="acme", number="102", status=ExtensionStatus.DISABLED)
    for extension in ("109@acme", "101@globex", "101@nowhere", "102@acme", "acme", "101@acme\x00"):
        answer = dial(database, f"u-{len(extension)}-{extension[:3]}", extension)
        assert (answer["status"], answer["reason"], answer["sip_code"]) == ("refused", "account_unknown", 404)
