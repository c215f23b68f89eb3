"""Calling cards: a reseller's batches (PINs shown once, stored as keyed hashes), their sale (the face
value moves from the reseller into each card), blocking by serial range or batch, closing, recharges."""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.test_cli import TOLLWAY
from tollway.access import service as access
from tollway.access.model import Role
from tollway.balances.service import account_id
from tollway.cards import model
from tollway.cards import service as cards
from tollway.cards import store as cards_store
from tollway.cards.model import BatchTerms, CardState
from tollway.cards.service import Selection
from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal
from tollway.http.app import create_app
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose
from tollway.rating import service as rating
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.store.schema import audit_log
from tollway.store.schema import cards as cards_table
from tollway.tree import service as tree
from tollway.tree.model import reseller

KEY = b"the test installation's PIN key"
FIVE = 5_000_000  # 5.00


def build(database: Database) -> None:
    """house, and below it two resellers, city (with a tariff) and metro."""
    tree.create_provider(database, login="house", name="House", currency="USD")
    tree.create_node(database, owner_login="house", new=tree.NewNode(position=reseller(1), login="city", name="City"))
    tree.create_node(database, owner_login="house", new=tree.NewNode(position=reseller(1), login="metro", name="Metro"))
    rating.create_tariff(database, owner_login="city", name="retail")


def batch(database: Database, name: str = "spring", count: int = 100, **terms: object) -> model.BatchResult:
    wanted = BatchTerms(name=name, count=count, face_value_micros=FIVE, **terms)  # type: ignore[arg-type]
    return cards.create_batch(database, owner_login="city", terms=wanted, pin_key=KEY)


def balance(database: Database, login: str, serial: str) -> int:
    return cards.get_card(database, owner_login=login, serial=serial).balance_micros


def issuance(database: Database, login: str) -> int:
    with database.reading() as connection:
        node = tree.require_node(connection, login)
        account = ledger_store.get_account(connection, account_id(connection, node, AccountPurpose.ISSUANCE))
        assert account is not None
        return account.balance_micros


def state(database: Database, serial: str) -> CardState:
    return cards.get_card(database, owner_login="city", serial=serial).card.state


@pytest.fixture
def built(database: Database) -> Database:
    build(database)
    return database


def test_a_batch_of_100_cards_of_5_is_made_new_and_empty_with_its_pins_shown_once(built: Database) -> None:
    made = batch(built, serial_prefix="NC", tariff="city:retail", pin_length=12)
    rows = list(csv.reader(io.StringIO(cards.to_csv(made))))
    assert rows[0] == ["serial", "pin", "currency", "face_value", "expires"]
    assert [r[0] for r in rows[1:]] == [f"NC{n:09d}" for n in range(1, 101)]
    assert rows[1][2:] == ["USD", "5.000000", ""]
    pins = [r[1] for r in rows[1:]]
    assert len(set(pins)) == 100 and all(len(p) == 12 and p.isdigit() for p in pins)
    # Stored: the PIN's keyed hash only; no PIN anywhere in the cards nor in the audit log.
    with built.reading() as connection:
        digests = set(connection.execute(select(cards_table.c.pin_digest)).scalars())
        audited = " ".join(str(row) for row in connection.execute(select(audit_log)))
    assert digests == {model.pin_digest(KEY, p) for p in pins}
    assert not any(p in audited for p in pins)
    # New cards hold nothing, and nothing moved: no money from nothing.
    view = cards.get_card(built, owner_login="city", serial="NC000000042")
    assert (view.card.state, view.balance_micros, view.card.face_value_micros) == (CardState.NEW, 0, FIVE)
    assert issuance(built, "city") == 0
    with pytest.raises(Refusal, match="batch_exists"):
        batch(built, count=1)
    # The next batch's serials follow; its prefix is its own.
    assert batch(built, name="summer", count=2, serial_prefix="S").cards[0].serial == "S000000101"


def test_activation_moves_each_face_value_from_the_reseller_once(built: Database) -> None:
    batch(built)
    assert cards.activate(built, owner_login="city", selection=Selection(first="000000001", last="000000010")) == 10
    assert balance(built, "city", "000000001") == FIVE and balance(built, "city", "000000011") == 0
    assert issuance(built, "city") == -10 * FIVE  # 50.00 handed out by city, into ten cards
    assert state(built, "000000010") is CardState.ACTIVE and state(built, "000000011") is CardState.NEW
    # Again, and then the whole batch: only the cards still new move money.
    assert cards.activate(built, owner_login="city", selection=Selection(first="000000001", last="000000010")) == 0
    assert cards.activate(built, owner_login="city", selection=Selection(batch="spring")) == 90
    assert issuance(built, "city") == -100 * FIVE  # 500.00 in all
    assert balance(built, "city", "000000100") == FIVE


def test_expiry_a_fixed_date_or_days_after_activation(built: Database) -> None:
    batch(built, name="days", count=1, expiry_days=30)
    before = utc_now()
    cards.activate(built, owner_login="city", selection=Selection(first="000000001"))
    expires = cards.get_card(built, owner_login="city", serial="000000001").card.expires_at
    assert expires is not None and before + timedelta(days=30) <= expires <= utc_now() + timedelta(days=30)
    fixed = datetime(2099, 1, 1, tzinfo=UTC)
    batch(built, name="fixed", count=1, expires_at=fixed)
    cards.activate(built, owner_login="city", selection=Selection(batch="fixed"))
    assert cards.get_card(built, owner_login="city", serial="000000002").card.expires_at == fixed
    with pytest.raises(Refusal, match="expiry_invalid"):
        batch(built, name="past", count=1, expires_at=datetime(2020, 1, 1, tzinfo=UTC))


def test_blocking_a_range_and_unblocking_it_returns_each_card_to_its_state(built: Database) -> None:
    batch(built, count=20)
    cards.activate(built, owner_login="city", selection=Selection(first="000000001", last="000000010"))
    assert cards.block(built, owner_login="city", selection=Selection(first="000000005", last="000000015")) == 11
    assert {state(built, s) for s in ("000000005", "000000010", "000000015")} == {CardState.BLOCKED}
    assert cards.activate(built, owner_login="city", selection=Selection(first="000000015")) == 0  # blocked
    assert cards.unblock(built, owner_login="city", selection=Selection(batch="spring")) == 11
    assert state(built, "000000005") is CardState.ACTIVE and state(built, "000000015") is CardState.NEW
    assert cards.close(built, owner_login="city", selection=Selection(first="000000003")) == 1
    assert state(built, "000000003") is CardState.CLOSED
    assert cards.unblock(built, owner_login="city", selection=Selection(first="000000003")) == 0
    with pytest.raises(Refusal, match="serial_range_invalid"):
        cards.block(built, owner_login="city", selection=Selection(first="000000009", last="000000002"))


def test_a_recharge_tops_up_an_active_card_once(built: Database) -> None:
    batch(built, count=3)
    cards.activate(built, owner_login="city", selection=Selection(first="000000001", last="000000002"))
    applied = cards.recharge(built, owner_login="city", serial="000000001", amount_micros=2_500_000, transfer_id="r1")
    again = cards.recharge(built, owner_login="city", serial="000000001", amount_micros=2_500_000, transfer_id="r1")
    assert (applied.already_existed, again.already_existed) == (False, True)
    assert balance(built, "city", "000000001") == 7_500_000  # 5.00 + 2.50, once
    assert issuance(built, "city") == -12_500_000  # two cards of 5.00 and one recharge of 2.50
    with pytest.raises(Refusal, match="card_not_rechargeable"):  # never sold
        cards.recharge(built, owner_login="city", serial="000000003", amount_micros=1, transfer_id="r2")
    cards.close(built, owner_login="city", selection=Selection(first="000000002"))
    with pytest.raises(Refusal, match="card_not_rechargeable"):
        cards.recharge(built, owner_login="city", serial="000000002", amount_micros=1, transfer_id="r3")


def test_the_terms_of_a_batch_are_checked(built: Database) -> None:
    for terms, reason in (
        ({"pin_length": 9}, "pin_length_invalid"),
        ({"pin_length": 17}, "pin_length_invalid"),
        ({"count": model.BATCH_CARDS_MAX + 1}, "batch_size_invalid"),
        ({"expiry_days": 1, "expires_at": datetime(2099, 1, 1, tzinfo=UTC)}, "expiry_invalid"),
        ({"serial_prefix": "A-1"}, "serial_prefix_invalid"),
        ({"tariff": "city:nothing"}, "tariff_not_found"),
    ):
        count = terms.pop("count", 1)
        with pytest.raises(Refusal) as refused:
            batch(built, name="bad", count=count, **terms)  # type: ignore[arg-type]
        assert refused.value.reason == reason, terms


def test_pins_are_unique_in_the_whole_system(built: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["0000000001", "0000000001", "0000000002", "0000000001", "0000000003"])
    monkeypatch.setattr(model, "draw_pin", lambda length: next(drawn))
    first = batch(built, name="one", count=1, pin_length=10)
    second = batch(built, name="two", count=1, pin_length=10)  # draws ...1 (taken), then ...2
    assert (first.cards[0].pin, second.cards[0].pin) == ("0000000001", "0000000002")
    third = cards.create_batch(  # metro's batch too: a PIN names one card of the whole installation
        built,
        owner_login="metro",
        terms=BatchTerms(name="three", count=1, face_value_micros=FIVE, pin_length=10),
        pin_key=KEY,
    )
    assert third.cards[0].pin == "0000000003"


@pytest.fixture
def http(built: Database) -> Iterator[TestClient]:
    with TestClient(create_app(built, sealer=Sealer(Sealer.new_key())), base_url="https://testserver") as client:
        yield client


def key_of(database: Database, login: str) -> dict[str, str]:
    _, plaintext = access.create_api_key(database, None, node_login=login, name="k", role=Role.RESELLER_ADMIN)
    return {"Authorization": f"Bearer {plaintext}"}


def test_over_http_the_csv_comes_once_and_another_reseller_sees_no_card(built: Database, http: TestClient) -> None:
    city, metro = key_of(built, "city"), key_of(built, "metro")
    body = {"id": "web", "count": 3, "face_value": "5.00", "serial_prefix": "W", "expiry_days": 90}
    made = http.post("/api/v1/nodes/city/card-batches", json=body, headers=city)
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store" and made.headers["content-type"].startswith("text/csv")
    assert made.text.splitlines()[1].startswith("W000000001,")
    assert http.post("/api/v1/nodes/city/card-batches", json=body, headers=city).json()["reason"] == "batch_exists"
    sold = http.post("/api/v1/nodes/city/card-ranges/activate", json={"batch": "web"}, headers=city)
    assert sold.json() == {"cards": 3}
    recharged = http.post(
        "/api/v1/nodes/city/cards/W000000002/recharges", json={"id": "w-r1", "amount": "1.25"}, headers=city
    )
    assert recharged.status_code == 200, recharged.text
    assert recharged.json()["balance"] == "6.250000" and recharged.json()["already_recorded"] is False
    card = http.get("/api/v1/nodes/city/cards/W000000002", headers=city).json()
    assert (card["state"], card["balance"], card["face_value"]) == ("active", "6.250000", "5.000000")
    # metro knows nothing of city nor of its cards; a wrong prefix is no card either.
    assert http.get("/api/v1/nodes/city/cards/W000000002", headers=metro).status_code == 404
    assert http.get("/api/v1/nodes/city/cards/X000000002", headers=city).status_code == 404
    blocked = http.post("/api/v1/nodes/city/card-ranges/block", json={"first": "W000000001"}, headers=metro)
    assert blocked.status_code == 404


def test_the_operator_makes_a_batch_with_the_cli_into_a_new_private_file(built: Database, tmp_path: Path) -> None:
    env = {**os.environ, "TOLLWAY_DATABASE_URL": built.url, "TOLLWAY_SECRET_KEY": Sealer.new_key()}
    out = tmp_path / "cards.csv"
    args = ["card", "batch", "city", "--count", "5", "--face-value", "5.00", "--id", "cli", "--out", str(out)]
    made = subprocess.run([TOLLWAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len(out.read_text().splitlines()) == 6
    again = subprocess.run([TOLLWAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 1 and "new file only" in again.stderr
    sold = subprocess.run(
        [TOLLWAY, "card", "activate", "city", "000000002", "--last", "000000004"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert sold.returncode == 0 and "3 cards activated" in sold.stdout, sold.stderr
    assert issuance(built, "city") == -3 * FIVE


def test_only_the_cards_owner_and_those_above_it_may_act_on_them(built: Database) -> None:
    batch(built, count=1)
    with pytest.raises(NotFound):
        cards.get_card(built, owner_login="metro", serial="000000001")  # metro has no card 1


def test_two_owners_racing_for_one_batch_name_get_batch_exists(
    built: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch(built, name="race", count=1)
    real, checks = cards_store.batch_exists, []

    def racing(connection: object, name: str) -> bool:  # metro's check ran before city's batch was there
        checks.append(name)
        return len(checks) > 1 and real(connection, name)  # type: ignore[arg-type]

    monkeypatch.setattr(cards_store, "batch_exists", racing)
    terms = BatchTerms(name="race", count=1, face_value_micros=FIVE)
    with pytest.raises(Refusal, match="batch_exists"):
        cards.create_batch(built, owner_login="metro", terms=terms, pin_key=KEY)
    assert checks == ["race", "race"]  # the insert hit the unique name, then the name was found taken
