"""Calling cards in the portal, as a browser uses it: a reseller's batches (the CSV of serials and PINs
downloaded once), its cards, their activation, blocking and recharge; an agent's batch paid from its
wallet; the holder's own look at a card with its PIN, throttled, on its seller's brand host.

The world is the demo (tollway demo) with a login per role: nc-admin (north-city, an L1 reseller), bw-admin
(bluewave-retail, another reseller), ana (agent-ana, north-city's agent: 100.00 in her wallet, 0.50 per
deposit, 1.00 per new account, 10 % commission), alice (a client).
"""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.test_portal import browser, csrf_of, log_in, user
from tollway.access.model import Role
from tollway.agents import service as agents
from tollway.agents.model import CustomerProfile
from tollway.balances import service as balances
from tollway.branding import service as branding
from tollway.demo import DEMO_AGENT_TERMS, DEMO_PROFILE
from tollway.store.database import Database
from tollway.store.schema import held_files


@pytest.fixture
def cards_world(demo_database: Database) -> Database:
    for node, login, role in (
        ("north-city", "nc-admin", Role.RESELLER_ADMIN),
        ("bluewave-retail", "bw-admin", Role.RESELLER_ADMIN),
        ("agent-ana", "ana", Role.AGENT),
        ("alice", "alice", Role.CLIENT),
    ):
        user(demo_database, node, login, role)
    return demo_database


def signed_in(database: Database, login: str, host: str = "testserver") -> TestClient:
    client = browser(database, host=host)
    assert log_in(client, login).status_code == 303
    return client


def make_batch(client: TestClient, **fields: str) -> str:
    """The page answering a new batch: it holds the one-time download's token."""
    form = client.get("/cards")
    assert form.status_code == 200, form.text
    data = {"name": "spring", "count": "3", "face_value": "5.00", "pin_length": "12"} | fields
    made = client.post("/cards/batches", data=data | {"csrf_token": csrf_of(form)})
    assert made.status_code == 200, made.text
    return made.text


def token_of(page: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found, "the page has no download"
    return found.group(1)


def download(client: TestClient, page: str) -> list[list[str]]:
    answer = client.post("/cards/download", data={"token": token_of(page), "csrf_token": csrf_of(client.get("/cards"))})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store" and answer.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(answer.text)))


def post(client: TestClient, path: str, page: str, **data: str) -> object:
    return client.post(path, data=data | {"csrf_token": csrf_of(client.get(page))}, follow_redirects=False)


def test_a_reseller_makes_a_batch_and_downloads_its_pins_once(cards_world: Database) -> None:
    nc = signed_in(cards_world, "nc-admin")
    assert 'href="/cards"' in nc.get("/").text  # in its menu
    page = make_batch(nc, serial_prefix="NC")
    assert "Cards made: 3, NC000000001 to NC000000003." in page
    with cards_world.reading() as connection:
        sealed = connection.execute(select(held_files.c.sealed)).scalar_one()
    rows = download(nc, page)
    assert rows[0] == ["serial", "pin", "currency", "face_value", "expires"]
    pins = [row[1] for row in rows[1:]]
    assert [row[0] for row in rows[1:]] == ["NC000000001", "NC000000002", "NC000000003"] and len(set(pins)) == 3
    assert not any(pin in sealed for pin in pins)  # kept sealed, never in clear
    # Once: the second time there is nothing; nothing is kept.
    again = nc.post("/cards/download", data={"token": token_of(page), "csrf_token": csrf_of(nc.get("/cards"))})
    assert again.status_code == 404
    with cards_world.reading() as connection:
        assert connection.execute(select(func.count()).select_from(held_files)).scalar_one() == 0
    # Another login cannot take someone's download either.
    other = make_batch(nc, name="summer", count="1")
    root = signed_in(cards_world, "bw-admin")
    taken = root.post("/cards/download", data={"token": token_of(other), "csrf_token": csrf_of(root.get("/cards"))})
    assert taken.status_code == 404
    listed = nc.get("/cards").text
    assert "spring" in listed and "summer" in listed and "NC000000003" in listed


def test_a_reseller_activates_blocks_and_recharges_its_cards(cards_world: Database) -> None:
    nc = signed_in(cards_world, "nc-admin")
    make_batch(nc, count="60")
    cards = nc.get("/cards/batches/spring")
    assert cards.status_code == 200 and cards.text.count("New") >= 50 and "000000050" in cards.text
    assert "000000051" not in cards.text  # 50 a page
    assert "000000051" in nc.get("/cards/batches/spring?after=50").text
    sold = post(nc, "/cards/actions", "/cards", action="activate", batch="spring")
    assert sold.status_code == 303  # type: ignore[attr-defined]
    assert "Cards activated: 60." in nc.get(sold.headers["location"]).text  # type: ignore[attr-defined]
    card = nc.get("/cards/000000007")
    assert card.status_code == 200 and "Active" in card.text and "5.00" in card.text
    # A recharge of 1.25, its form sent twice: once.
    key = re.search(r'name="key" value="([^"]+)"', card.text)
    assert key is not None
    for _ in range(2):
        data = {"amount": "1.25", "key": key.group(1), "csrf_token": csrf_of(card)}
        assert nc.post("/cards/000000007/recharge", data=data, follow_redirects=False).status_code == 303
    recharged = nc.get("/cards/000000007").text
    assert "6.25" in recharged and "The recharge is recorded." not in recharged
    # Blocking a range of serials.
    blocked = post(nc, "/cards/actions", "/cards", action="block", first="000000005", last="000000009")
    assert "Cards blocked: 5." in nc.get(blocked.headers["location"]).text  # type: ignore[attr-defined]
    assert "Blocked" in nc.get("/cards/000000007").text
    refused = nc.post(
        "/cards/000000007/recharge",
        data={"amount": "1", "key": "portal-k2", "csrf_token": csrf_of(nc.get("/cards/000000007"))},
    )
    assert refused.status_code == 422 and "Only an active or depleted card can be recharged." in refused.text
    bad = post(nc, "/cards/actions", "/cards", action="block", first="12")
    assert bad.status_code == 422 and "A serial ends with nine digits." in bad.text  # type: ignore[attr-defined]


def test_another_tenant_and_a_customer_find_no_card_page(cards_world: Database) -> None:
    nc = signed_in(cards_world, "nc-admin")
    make_batch(nc)
    bw = signed_in(cards_world, "bw-admin")
    for path in (
        "/cards?owner=north-city",
        "/cards/batches/spring?owner=north-city",
        "/cards/000000001?owner=north-city",
    ):
        assert bw.get(path).status_code == 404, path
    assert bw.get("/cards/batches/spring").status_code == 404  # its own has no such batch
    alice = signed_in(cards_world, "alice")
    assert alice.get("/cards").status_code == 404 and 'href="/cards"' not in alice.get("/").text
    form = bw.get("/cards")
    refused = bw.post(
        "/cards/actions",
        data={"owner": "north-city", "action": "block", "batch": "spring", "csrf_token": csrf_of(form)},
    )
    assert refused.status_code == 404


def test_an_agent_makes_cards_from_its_profile_paid_from_its_wallet(cards_world: Database) -> None:
    profile = CustomerProfile(name="cards", client_type="calling_card", login_prefix="k")
    agents.put_profile(cards_world, owner_login="north-city", profile=profile)
    agents.set_terms(
        cards_world, agent_login="agent-ana", terms=DEMO_AGENT_TERMS, profiles=[DEMO_PROFILE.name, "cards"]
    )
    before = balances.get_balance(cards_world, login="agent-ana").balance_micros
    ana = signed_in(cards_world, "ana")
    page = make_batch(ana, name="ana-1", count="2", profile="cards")
    assert len(download(ana, page)) == 3
    # 2 x (5.00 + 0.50 + 1.00) from her wallet.
    assert balances.get_balance(cards_world, login="agent-ana").balance_micros == before - 13_000_000
    assert "ana-1" in ana.get("/cards").text
    refused = ana.post(
        "/cards/batches",
        data={"name": "ana-2", "count": "1", "face_value": "5", "profile": DEMO_PROFILE.name}
        | {"csrf_token": csrf_of(ana.get("/cards"))},
    )
    assert refused.status_code == 422 and "You may not make cards from that profile" in refused.text
    nc = signed_in(cards_world, "nc-admin")
    make_batch(nc, name="nc-own", count="1")
    assert "nc-own" not in ana.get("/cards").text  # an agent sees the batches it made


def holder(client: TestClient, serial: str, pin: str) -> object:
    return client.post("/card", data={"serial": serial, "pin": pin, "csrf_token": csrf_of(client.get("/card"))})


def test_a_holder_sees_its_card_with_its_pin_and_guessing_is_locked_out(cards_world: Database) -> None:
    branding.set_hosts(cards_world, None, login="north-city", hosts=["portal.north.example"])
    branding.set_hosts(cards_world, None, login="bluewave-retail", hosts=["my.blue.example"])
    nc = signed_in(cards_world, "nc-admin")
    rows = download(nc, make_batch(nc))
    serial, pin = rows[1][0], rows[1][1]
    post(nc, "/cards/actions", "/cards", action="activate", first=serial)
    visitor = browser(cards_world, host="portal.north.example")
    shown = holder(visitor, serial, pin)
    assert shown.status_code == 200 and "5.00" in shown.text and "Active" in shown.text  # type: ignore[attr-defined]
    assert pin not in shown.text  # type: ignore[attr-defined]
    assert holder(visitor, "", pin).status_code == 200  # the PIN alone
    # No oracle: a wrong PIN, an unknown serial and another brand's host answer alike.
    wrong = holder(browser(cards_world, host="portal.north.example"), serial, "000000000000")
    unknown = holder(browser(cards_world, host="portal.north.example"), "999999999", pin)
    elsewhere = holder(browser(cards_world, host="my.blue.example"), serial, pin)
    for answer in (wrong, unknown, elsewhere):
        assert answer.status_code == 422 and "No card has this serial and PIN." in answer.text  # type: ignore[attr-defined]
    # No CSRF token, no look.
    assert visitor.post("/card", data={"serial": serial, "pin": pin}).status_code == 403
    # Guessing: five wrong PINs at one serial lock it, the right PIN too, whoever asks.
    for _ in range(3):
        holder(browser(cards_world, host="portal.north.example"), serial, "111111111111")
    locked = holder(browser(cards_world, host="portal.north.example"), serial, pin)
    assert locked.status_code == 429 and "Too many wrong PINs" in locked.text  # type: ignore[attr-defined]
