"""A calling card's call over RADIUS, as Cisco's debit-card IVR asks for it, driven by the real ``radclient``.

The world is tests/test_cards_calls.py's: cards of north-city (L1, below atlas-north, atlas and house) at
north-city's retail tariff, an exclusive access number of north-city's in Spanish and an open one of the
provider's in English. A call to the UK costs, at each level (tests/test_cards_calls.py):
  the card    0.10 a minute, per second               95 s: 158,334 µ
  north-city  0.06 a minute, in 6-second steps         95 s (96):  96,000 µ
  atlas-north 0.05 a minute, by the minute             95 s (120): 100,000 µ
  atlas       0.04 a minute + 0.05 to connect          95 s: 113,334 µ
A card of 5.00 pays 0.10 a minute: 50 minutes, 3,000 s; after the 95 s call it holds 4.841666, announced
as 4.84 (rounded down to the cent: never more than it has).

First stage: User-Name the card's serial, User-Password its PIN, Called-Station-Id the access number the
holder dialed (as the gateway writes a DNIS: digits, no "+"), no destination. Second stage: the destination
as Called-Station-Id, the access number in ``Cisco-AVPair = "h323-ivr-out=access-number:..."``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.calls_world import UK, available, build_world
from tests.test_radius import NAS, SECRET, Reply, send
from tollway.calls import service as calls
from tollway.calls.service import CallSettings
from tollway.cards import model, numbers
from tollway.cards import service as cards
from tollway.cards import store as cards_store
from tollway.cards.model import BatchTerms, CardState
from tollway.config import RadiusClient
from tollway.radius.model import ReturnCode, access_number_in
from tollway.radius.server import RadiusServer
from tollway.rating.loading import TABLES
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.store.schema import calls as calls_table
from tollway.tree import service as tree
from tollway.tree.model import reseller

RADCLIENT = shutil.which("radclient")
MINUTE = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=120)
KEY = cards.pin_key(Sealer(Sealer.new_key()))
CITY_DNIS = "18005550100"  # north-city's access number as the gateway sends it: exclusive, Spanish prompts
OPEN_DNIS = "18005550199"  # the provider's: open to every card, English prompts
CITY_NUMBER = "+" + CITY_DNIS
CALLER = "12125550123"
CONF_ID = "3A9C5E14 2B9611D5 80C6C1A5 89A1A4B0"
CALL_ID = "h323-3A9C5E14-2B9611D5-80C6C1A5-89A1A4B0"
START, STOP, INTERIM = 1, 2, 3
RESELLERS = ("north-city", "atlas-north", "atlas")


@pytest.fixture(autouse=True)
def _fresh_tables() -> None:
    TABLES.clear()
    calls.LEVELS.clear()


@pytest.fixture(scope="module")
def radclient() -> str:
    if RADCLIENT is None:
        reason = "radclient (freeradius-utils) is not installed: run scripts/install-switch-tools"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the RADIUS tests)")
        pytest.skip(reason)
    return RADCLIENT


@dataclass
class CardRadius:
    auth_port: int
    acct_port: int
    database: Database
    pins: dict[str, list[str]]


def make(database: Database, owner: str, name: str, face_micros: int, count: int = 1, **terms: Any) -> list[str]:
    wanted = BatchTerms(name=name, count=count, face_value_micros=face_micros, **terms)
    return [card.pin for card in cards.create_batch(database, owner_login=owner, terms=wanted, pin_key=KEY).cards]


@pytest.fixture
def radius(database: Database, radclient: str) -> Iterator[CardRadius]:
    build_world(database)
    tree.create_node(
        database, owner_login="atlas-north", new=tree.NewNode(position=reseller(1), login="metro", name="Metro")
    )
    numbers.put_access_number(database, owner_login="north-city", number=CITY_NUMBER, language="es", exclusive=True)
    numbers.put_access_number(database, owner_login="house", number="+" + OPEN_DNIS, language="en", exclusive=False)
    pins = {
        "city": make(database, "north-city", "nc", 5_000_000, count=3, tariff="north-city:retail"),
        "metro": make(database, "metro", "metro", 5_000_000),
        "small": make(database, "north-city", "nc-small", 100_000, tariff="north-city:retail"),  # 000000004
    }
    calls.create_switch(database, name="gw-cards", node_login="house")
    clients = {NAS: RadiusClient.model_validate({"secret": SECRET, "switch": "gw-cards"})}
    server = RadiusServer(database, clients, auth_port=0, acct_port=0, call_settings=MINUTE, pin_key=KEY)
    auth_port, acct_port = server.start()
    yield CardRadius(auth_port, acct_port, database, pins)
    server.stop()


def ask(radius: CardRadius, tmp: Path, **attributes: str) -> Reply:
    """An Access-Request from the gateway's IVR: the first stage unless ``Called-Station-Id`` says otherwise."""
    sent: dict[str, str | int] = {
        "Calling-Station-Id": CALLER,
        "Called-Station-Id": CITY_DNIS,
        "h323-conf-id": f"h323-conf-id={CONF_ID}",
        "h323-call-origin": "h323-call-origin=answer",
        "Message-Authenticator": "0x00",
    }
    sent |= attributes
    return send(radius.auth_port, "auth", {k: v for k, v in sent.items() if v != ""}, tmp=tmp)


def second_stage(radius: CardRadius, tmp: Path, **attributes: str) -> Reply:
    return ask(
        radius,
        tmp,
        **{"Called-Station-Id": UK, "Cisco-AVPair": f"h323-ivr-out=access-number:{CITY_NUMBER}"} | attributes,
    )


def account(radius: CardRadius, tmp: Path, status: int, **extra: str | int) -> Reply:
    attributes: dict[str, str | int] = {
        "User-Name": "000000001",
        "Acct-Status-Type": status,
        "Calling-Station-Id": CALLER,
        "Called-Station-Id": UK,
        "h323-conf-id": f"h323-conf-id={CONF_ID}",
        "h323-call-origin": "h323-call-origin=originate",
    }
    return send(radius.acct_port, "acct", attributes | extra, tmp=tmp)


def card(database: Database, serial: str, owner: str = "north-city") -> cards.CardView:
    return cards.get_card(database, owner_login=owner, serial=serial)


def code(reply: Reply) -> int:
    return int(reply.attributes["h323-return-code"].removeprefix("h323-return-code="))


def test_the_two_stages_then_start_interim_and_stop_charge_the_card_up_the_chain(
    radius: CardRadius, tmp_path: Path
) -> None:
    pin = radius.pins["city"][0]
    assert card(radius.database, "000000001").card.state is CardState.NEW
    # 1. Card number and PIN on the access number: the card is activated by its first use and announced.
    first = ask(radius, tmp_path, **{"User-Name": "000000001", "User-Password": pin})
    assert (first.code, first.attributes) == (
        "Access-Accept",
        {
            "Message-Authenticator": first.attributes["Message-Authenticator"],
            "h323-return-code": "h323-return-code=0",
            "h323-credit-amount": "h323-credit-amount=5.00",
            "h323-currency": "h323-currency=USD",
            "h323-preferred-lang": "h323-preferred-lang=es",
        },
    )
    assert card(radius.database, "000000001").card.state is CardState.ACTIVE
    assert calls.list_calls(radius.database, limit=10)[0] == []  # no call yet: nothing is reserved
    # 2. The destination: 5.00 at 0.10 a minute is 3,000 s, the poorest level's limit.
    before = [available(radius.database, login) for login in RESELLERS]
    second = second_stage(radius, tmp_path, **{"User-Name": "000000001", "User-Password": pin})
    assert (second.code, second.attributes["h323-credit-time"], second.attributes["Session-Timeout"]) == (
        "Access-Accept",
        "h323-credit-time=3000",
        "3000",
    )
    # 3. Accounting as for any account: the call is the card's account's.
    assert account(radius, tmp_path, START).code == "Accounting-Response"
    assert account(radius, tmp_path, INTERIM, **{"Acct-Session-Time": 35}).code == "Accounting-Response"
    assert calls.get_call(radius.database, CALL_ID)["grant_seconds"] == 120
    assert account(radius, tmp_path, STOP, **{"Acct-Session-Time": 95}).code == "Accounting-Response"
    ended = calls.get_call(radius.database, CALL_ID)
    assert (ended["status"], ended["account"]) == ("ended", card(radius.database, "000000001").card.login)
    assert [line["amount_micros"] for line in ended["charges"]] == [158_334, 96_000, 100_000, 113_334]
    assert card(radius.database, "000000001").balance_micros == 4_841_666
    after = [available(radius.database, login) for login in RESELLERS]
    assert [b - a for b, a in zip(before, after, strict=True)] == [96_000, 100_000, 113_334]  # each its price
    # 4. The next call's first stage announces what is left, rounded down to the cent, on the open number
    #    in its language.
    again = ask(radius, tmp_path, **{"User-Name": "000000001", "User-Password": pin, "Called-Station-Id": OPEN_DNIS})
    assert (again.code, again.attributes["h323-credit-amount"], again.attributes["h323-preferred-lang"]) == (
        "Access-Accept",
        "h323-credit-amount=4.84",
        "h323-preferred-lang=en",
    )


def test_card_refusals_carry_their_cisco_return_codes(
    radius: CardRadius, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    city, metro = radius.pins["city"], radius.pins["metro"]
    # The PIN as User-Name is no card number, and is not logged (User-Name is, a PIN never is).
    as_pin = ask(radius, tmp_path, **{"User-Name": city[1], "User-Password": city[1]})
    assert (as_pin.code, code(as_pin)) == ("Access-Reject", ReturnCode.INVALID_PASSWORD)
    logged = capsys.readouterr().out
    assert "radius_access" in logged and "(the PIN)" in logged and city[1] not in logged
    wrong_pin = ask(radius, tmp_path, **{"User-Name": "000000001", "User-Password": "000000000000"})
    assert (wrong_pin.code, code(wrong_pin)) == ("Access-Reject", ReturnCode.INVALID_PASSWORD)
    # The right PIN under another card's number is no card either (and the PIN's card is not the other's).
    wrong_serial = ask(radius, tmp_path, **{"User-Name": "000000002", "User-Password": city[0]})
    assert (wrong_serial.code, code(wrong_serial)) == ("Access-Reject", ReturnCode.INVALID_PASSWORD)
    assert wrong_serial.attributes["Reply-Message"] == "wrong card number or PIN"
    # metro's card on north-city's exclusive number: user denied, at either stage.
    other = ask(radius, tmp_path, **{"User-Name": "000000001", "User-Password": metro[0]})
    assert (other.code, code(other)) == ("Access-Reject", ReturnCode.USER_DENIED)
    assert other.attributes["Reply-Message"] == "this access number serves another reseller's cards"
    other = second_stage(radius, tmp_path, **{"User-Name": "000000001", "User-Password": metro[0]})
    assert (other.code, code(other)) == ("Access-Reject", ReturnCode.USER_DENIED)
    # A refused second stage is a refused call, recorded as over HTTP: no account, the reason, the number.
    with radius.database.reading() as connection:
        recorded = connection.execute(select(calls_table.c.call_id, calls_table.c.state, calls_table.c.reason)).all()
    assert [tuple(row) for row in recorded] == [(CALL_ID, "refused", "access_number_exclusive")]
    # A blocked card.
    cards.block(radius.database, owner_login="north-city", selection=cards.Selection(first="000000003"))
    blocked = ask(radius, tmp_path, **{"User-Name": "000000003", "User-Password": city[2]})
    assert (blocked.code, code(blocked)) == ("Access-Reject", ReturnCode.USER_DENIED)
    # A destination the card's tariff does not price (another call, its own conference id): number blocked.
    another_call = {"h323-conf-id": "h323-conf-id=3A9C5E14 2B9611D5 80C6C1A5 89A1A4B1"}
    unpriced = second_stage(
        radius,
        tmp_path,
        **{"User-Name": "000000002", "User-Password": city[1], "Called-Station-Id": "+33 1 4000 0000"} | another_call,
    )
    assert (unpriced.code, code(unpriced)) == ("Access-Reject", ReturnCode.NUMBER_BLOCKED)


def test_a_card_with_nothing_left_is_refused_at_its_first_stage_as_zero_balance(
    radius: CardRadius, tmp_path: Path
) -> None:
    small = {"User-Name": "000000004", "User-Password": radius.pins["small"][0]}
    assert ask(radius, tmp_path, **small).attributes["h323-credit-amount"] == "h323-credit-amount=0.10"
    assert second_stage(radius, tmp_path, **small).attributes["h323-credit-time"] == "h323-credit-time=60"
    assert account(radius, tmp_path, START, **{"User-Name": "000000004"}).code == "Accounting-Response"
    assert account(radius, tmp_path, STOP, **{"User-Name": "000000004", "Acct-Session-Time": 60}).code == (
        "Accounting-Response"
    )
    assert card(radius.database, "000000004").balance_micros == 0
    empty = ask(radius, tmp_path, **small)
    assert (empty.code, code(empty), empty.attributes["Reply-Message"]) == (
        "Access-Reject",
        ReturnCode.ZERO_BALANCE,
        "the card has no money left",
    )


@pytest.mark.parametrize(
    ("avpairs", "number"),
    [
        (["h323-ivr-out=access-number:+18005550100"], "+18005550100"),
        (["h323-ivr-in=x:1", " h323-ivr-out=access-number: 18005550100 "], "18005550100"),
        (["h323-ivr-out=language:es"], None),
        (["access-number:+18005550100"], None),  # not an h323-ivr-out pair
        ([], None),
    ],
)
def test_the_access_number_is_read_from_the_ivr_scripts_av_pair(avpairs: list[str], number: str | None) -> None:
    assert access_number_in(avpairs) == number


def test_a_registered_caller_number_goes_without_the_pin(radius: CardRadius, tmp_path: Path) -> None:
    unknown = ask(radius, tmp_path, **{"User-Name": CALLER})
    assert (unknown.code, code(unknown)) == ("Access-Reject", ReturnCode.INVALID_PASSWORD)  # pin_required: ask it
    cards.add_caller(radius.database, owner_login="north-city", serial="000000002", number="+" + CALLER)
    cards.activate(radius.database, owner_login="north-city", selection=cards.Selection(first="000000002"))
    known = ask(radius, tmp_path, **{"User-Name": CALLER})
    assert (known.code, known.attributes["h323-credit-amount"]) == ("Access-Accept", "h323-credit-amount=5.00")
    call = second_stage(radius, tmp_path, **{"User-Name": CALLER})
    assert (call.code, call.attributes["h323-credit-time"]) == ("Access-Accept", "h323-credit-time=3000")
    assert calls.get_call(radius.database, CALL_ID)["account"] == card(radius.database, "000000002").card.login


def test_a_thousand_guesses_from_one_caller_get_at_most_the_threshold_of_real_checks(
    radius: CardRadius, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = 0
    real = cards_store.find_card_by_pin

    def counting(connection: Any, digest: str) -> Any:
        nonlocal checked
        checked += 1
        return real(connection, digest)

    monkeypatch.setattr(cards_store, "find_card_by_pin", counting)
    packets = [
        f'User-Name = "000000001"\nUser-Password = "{guess:012d}"\nCalling-Station-Id = "{CALLER}"\n'
        f'Called-Station-Id = "{CITY_DNIS}"\nMessage-Authenticator = 0x00\n'
        for guess in range(1_000)
    ]
    batch = tmp_path / "guesses.txt"
    batch.write_text("\n".join(packets))
    command = [str(RADCLIENT), "-x", "-p", "50", "-t", "10", "-r", "1", "-f", str(batch)]
    ran = subprocess.run([*command, f"127.0.0.1:{radius.auth_port}", "auth", SECRET], capture_output=True, text=True)
    codes = [int(found) for found in re.findall(r'h323-return-code = "h323-return-code=(\d+)"', ran.stdout)]
    assert len(codes) == 1_000, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert checked == model.PIN_FAILURES_FREE_PER_CALLER  # 5 real checks, 995 refused unlooked
    assert set(codes) == {ReturnCode.INVALID_PASSWORD, ReturnCode.RETRIES_EXCEEDED}
    assert codes.count(ReturnCode.INVALID_PASSWORD) == model.PIN_FAILURES_FREE_PER_CALLER
    # The right PIN from the locked caller is refused too; from another phone it passes.
    right = {"User-Name": "000000001", "User-Password": radius.pins["city"][0]}
    locked = ask(radius, tmp_path, **right)
    assert (locked.code, code(locked)) == ("Access-Reject", ReturnCode.RETRIES_EXCEEDED)
    assert ask(radius, tmp_path, **right, **{"Calling-Station-Id": "13055550100"}).code == "Access-Accept"
    assert checked == model.PIN_FAILURES_FREE_PER_CALLER + 1
