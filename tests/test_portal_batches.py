"""Accounts made in a batch from the portal: the cost shown first, the passwords downloaded once.

The world is the demo: agent-ana (login ana) sells for north-city at 10 % commission, 0.50 a deposit and
1.00 a new account, from north-city's profile "prepaid" (retail, logins "nc…", tariff north-city:retail);
her wallet holds 100.00 and her commission account nothing. nc-admin is north-city's admin, bw-admin
bluewave-retail's (another reseller), alice a client.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Connection, select

from tests.test_agents import balance, commission, revenue
from tests.test_portal import browser, csrf_of, log_in, user
from tests.test_portal_accounts import key_of, signed_in
from tollway.access.model import Role
from tollway.agents import downloads
from tollway.agents.model import CustomerProfile
from tollway.agents.service import put_profile
from tollway.clock import utc_now
from tollway.store.database import Database
from tollway.store.schema import audit_log, held_files, nodes
from tollway.tree import service as tree


@pytest.fixture
def world(demo_database: Database) -> Database:
    for node, login, role in (
        ("north-city", "nc-admin", Role.RESELLER_ADMIN),
        ("bluewave-retail", "bw-admin", Role.RESELLER_ADMIN),
        ("agent-ana", "ana", Role.AGENT),
        ("alice", "alice", Role.CLIENT),
    ):
        user(demo_database, node, login, role)
    return demo_database


def batch_logins(database: Database) -> list[str]:
    """The logins made from the profile "prepaid" (its prefix "nc"; no demo login starts so)."""
    with database.reading() as connection:
        return list(connection.execute(select(nodes.c.login).where(nodes.c.login.startswith("nc"))).scalars())


def flat(page: Response) -> str:
    return re.sub(r"\s+", " ", page.text)


def token_of(page: Response) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page.text)
    assert found, "the page offers no download"
    return found.group(1)


def preview(client: TestClient, **fields: str) -> Response:
    form = client.get("/batches", params={"owner": fields["owner"]} if "owner" in fields else {})
    assert form.status_code == 200
    return client.post("/batches", data={"csrf_token": csrf_of(form), "key": key_of(form.text), **fields})


def confirm(client: TestClient, shown: Response) -> Response:
    hidden = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', shown.text))
    assert hidden["confirmed"] == "yes"
    return client.post("/batches", data=hidden)


def rows_of(download: Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(download.text)))


def test_an_agent_batch_creates_customers_paying_its_fees_and_downloads_their_passwords_once(
    world: Database,
) -> None:
    assert (balance(world, "agent-ana"), commission(world, "agent-ana")) == (Decimal(100), Decimal(0))
    revenue_before = revenue(world, "north-city")
    client = signed_in(world, "ana")
    shown = preview(client, profile="prepaid", count="10", initial_balance="2")
    # Each account: its fee 1.00, its balance 2.00 deposited and that deposit's fee 0.50: 3.50; ten: 35.00.
    assert shown.status_code == 200
    assert '<dt>Taken from the wallet of agent-ana</dt><dd id="batch-cost">$35.00</dd>' in flat(shown)
    assert balance(world, "agent-ana") == Decimal(100)  # nothing yet

    made = confirm(client, shown)
    assert made.status_code == 200 and "10 accounts are created from prepaid." in made.text
    assert made.headers["cache-control"] == "no-store"
    assert balance(world, "agent-ana") == Decimal("65.00")  # 100.00 - 35.00
    assert commission(world, "agent-ana") == Decimal("2.00")  # 10 x 10 % of 2.00
    assert revenue(world, "north-city") - revenue_before == Decimal("13.00")  # 10 + 5 fees - 2 commission

    token = token_of(made)
    file = client.post("/batches/file", data={"csrf_token": csrf_of(made), "token": token})
    assert file.status_code == 200 and file.headers["content-type"].startswith("text/csv")
    assert file.headers["cache-control"] == "no-store" and "attachment" in file.headers["content-disposition"]
    rows = rows_of(file)
    assert len(rows) == 10 and all(r["login"].startswith("nc") and r["balance"] == "2.000000" for r in rows)

    again = client.post("/batches/file", data={"csrf_token": csrf_of(made), "token": token})
    assert again.status_code == 410 and "This file was downloaded already" in again.text
    assert rows[0]["password"] not in again.text

    for row in rows[:2]:  # the logins log in with the passwords from the file, and are ana's customers
        customer = browser(world)
        assert log_in(customer, row["login"], row["password"]).status_code == 303
        assert "$2.00" in customer.get("/").text
        node = tree.get_node(world, None, login=row["login"])
        assert node.managed_by_agent_id == tree.get_node(world, None, login="agent-ana").id
    assert f'href="/accounts/{rows[0]["login"]}"' in client.get("/accounts", params={"q": rows[0]["login"]}).text


def test_the_passwords_are_never_stored_in_clear_nor_audited(world: Database) -> None:
    client = signed_in(world, "ana")
    made = confirm(client, preview(client, profile="prepaid", count="10"))
    with world.reading() as connection:
        held = connection.execute(held_files.select()).one()
        audited = [str(row.after) for row in connection.execute(audit_log.select())]
    file = client.post("/batches/file", data={"csrf_token": csrf_of(made), "token": token_of(made)})
    passwords = [row["password"] for row in rows_of(file)]
    assert len(passwords) == 10
    assert token_of(made) not in str(held) and not any(p in held.sealed for p in passwords)
    assert not any(p in entry for p in passwords for entry in audited)
    with world.reading() as connection:
        assert connection.execute(held_files.select()).all() == []  # the download removed it


def test_the_same_confirmation_sent_twice_makes_one_batch(world: Database) -> None:
    client = signed_in(world, "ana")
    shown = preview(client, profile="prepaid", count="10")
    assert confirm(client, shown).status_code == 200
    twice = confirm(client, shown)
    assert twice.status_code == 409 and "This batch was created already" in twice.text
    assert balance(world, "agent-ana") == Decimal("90.00")  # 10 account fees of 1.00, once


def test_only_the_login_that_made_the_batch_downloads_it(world: Database) -> None:
    client = signed_in(world, "ana")
    made = confirm(client, preview(client, profile="prepaid", count="10"))
    other = signed_in(world, "nc-admin")
    taken = other.post("/batches/file", data={"csrf_token": csrf_of(other.get("/batches")), "token": token_of(made)})
    assert taken.status_code == 410
    assert client.post("/batches/file", data={"csrf_token": csrf_of(made), "token": token_of(made)}).status_code == 200


def test_a_resellers_batch_tops_its_accounts_up_from_its_issuance(world: Database) -> None:
    client = signed_in(world, "nc-admin")
    form = client.get("/batches")
    assert "prepaid" in form.text and "north-city:retail" in form.text and "agent-ana" in form.text
    shown = preview(client, owner="north-city", profile="prepaid", count="3", initial_balance="5")
    assert '<dt>Top-ups in all</dt><dd id="batch-cost">$15.00</dd>' in flat(shown)
    made = confirm(client, shown)
    assert "3 accounts are created from prepaid." in made.text
    rows = rows_of(client.post("/batches/file", data={"csrf_token": csrf_of(made), "token": token_of(made)}))
    assert [r["balance"] for r in rows] == ["5.000000"] * 3
    for row in rows:
        assert balance(world, row["login"]) == Decimal(5)
        assert tree.get_node(world, None, login=row["login"]).managed_by_agent_id is None
    assert balance(world, "agent-ana") == Decimal(100)  # no agent named: nobody's fees


def test_a_resellers_batch_for_its_agent_charges_the_agent(world: Database) -> None:
    client = signed_in(world, "nc-admin")
    shown = preview(client, owner="north-city", profile="prepaid", count="2", agent="agent-ana")
    assert '<dt>Taken from the wallet of agent-ana</dt><dd id="batch-cost">$2.00</dd>' in flat(shown)
    assert "2 accounts are created" in confirm(client, shown).text
    assert balance(world, "agent-ana") == Decimal(98)


@pytest.mark.parametrize(
    ("count", "words"),
    [
        ("0", "A batch has 1 to 10,000 accounts"),
        ("3", "an agent creates at least 10 at a time"),
        ("100001", "A batch has 1 to 10,000 accounts"),
        ("2147483649", "A batch has 1 to 10,000 accounts"),
        ("9" * 30, "Enter the number of accounts as a whole number"),
        ("ten", "Enter the number of accounts as a whole number"),
        ("-5", "Enter the number of accounts as a whole number"),
    ],
)
def test_a_bad_count_is_a_form_error_and_nothing_is_made(world: Database, count: str, words: str) -> None:
    client = signed_in(world, "ana")
    refused = preview(client, profile="prepaid", count=count)
    assert refused.status_code == 422 and words in refused.text
    assert 'name="count"' in refused.text  # the form again
    assert balance(world, "agent-ana") == Decimal(100)


def test_bad_text_is_refused_without_a_server_error(world: Database) -> None:
    client = signed_in(world, "ana")
    for fields in (
        {"profile": "prepaid\x00", "count": "10"},
        {"profile": "prepaid", "count": "1\x000"},
        {"profile": "prepaid", "count": "10", "initial_balance": "2147483649"},
        {"profile": "prepaid", "count": "10", "initial_balance": "1e400"},
        {"profile": "nothing-like-it", "count": "10", "confirmed": "yes"},
    ):
        refused = preview(client, **fields)
        assert 400 <= refused.status_code < 500, fields
    assert (
        client.post("/batches/file", data={"csrf_token": csrf_of(client.get("/batches")), "token": "x\x00"}).status_code
        == 422
    )
    assert balance(world, "agent-ana") == Decimal(100)


def test_an_agent_that_cannot_pay_for_the_batch_makes_nothing(world: Database) -> None:
    client = signed_in(world, "ana")
    shown = preview(client, profile="prepaid", count="20", initial_balance="10")  # 20 x 11.50 = 230.00
    assert '<dd id="batch-cost">$230.00</dd>' in flat(shown)
    refused = confirm(client, shown)
    assert refused.status_code == 422 and "There is not enough money in the account for this." in refused.text
    assert balance(world, "agent-ana") == Decimal(100)
    assert batch_logins(world) == []


def test_another_resellers_owner_agent_or_profile_answers_404(world: Database) -> None:
    put_profile(
        world,
        owner_login="bluewave-retail",
        profile=CustomerProfile(name="bw-prepaid", client_type="retail", login_prefix="bw"),
    )
    client = signed_in(world, "nc-admin")
    assert client.get("/batches", params={"owner": "bluewave-retail"}).status_code == 404
    form = client.get("/batches")
    token = {"csrf_token": csrf_of(form), "key": key_of(form.text)}
    for fields in (
        {"owner": "bluewave-retail", "profile": "bw-prepaid", "count": "1"},
        {"owner": "bluewave-retail", "profile": "bw-prepaid", "count": "1", "confirmed": "yes"},
        {"owner": "north-city", "profile": "bw-prepaid", "count": "1", "confirmed": "yes"},
        {"owner": "north-city", "profile": "prepaid", "count": "1", "agent": "agent-ben"},
        {"owner": "north-city", "profile": "prepaid", "count": "1", "agent": "agent-ben", "confirmed": "yes"},
    ):
        refused = client.post("/batches", data=token | fields)
        assert refused.status_code == 404 and "bluewave" not in refused.text.lower(), fields


def test_batch_pages_are_for_staff_only(world: Database) -> None:
    client = signed_in(world, "alice")
    assert client.get("/batches").status_code == 404
    token = csrf_of(client.get("/settings"))
    assert client.post("/batches", data={"csrf_token": token, "profile": "prepaid", "count": "1"}).status_code == 404
    assert client.post("/batches/file", data={"csrf_token": token, "token": "x"}).status_code == 404
    agent = signed_in(world, "ana")
    assert agent.post("/batches", data={"profile": "prepaid", "count": "10"}).status_code == 403  # no CSRF token


def test_a_held_file_waits_only_so_long(world: Database) -> None:
    client = signed_in(world, "ana")
    made = confirm(client, preview(client, profile="prepaid", count="10"))

    def expire(connection: Connection) -> None:
        connection.execute(held_files.update().values(expires_at=utc_now()))

    world.run(expire)
    late = client.post("/batches/file", data={"csrf_token": csrf_of(made), "token": token_of(made)})
    assert late.status_code == 410
    assert downloads.HOLD_SECONDS == 30 * 60  # what the page says: "within 30 minutes"
    assert len(batch_logins(world)) == 10  # the batch stays made
