"""The Plans pages over HTTP, on SQLite and PostgreSQL: a reseller's admin creates a plan, gives it to a client
on the client's page (its first fee charged) and sees who holds it; only its own plans; agents and customers
find no such page.

The world is the demo: north-city (nc-admin) has the plan talk-100 (5.00 a month, 100 minutes to prefix 1), held
by alice; bob (25.00 USD, no plan) is another client of north-city; bluewave-retail (bw-admin) another reseller.
"""

from __future__ import annotations

import pytest

from tests.test_portal import csrf_of
from tests.test_portal_accounts import signed_in, staff_world  # noqa: F401 - the fixture
from tollway.balances import service as balances
from tollway.rating import subscriptions
from tollway.store.database import Database


@pytest.fixture
def world(staff_world: Database) -> Database:  # noqa: F811 - the fixture imported above
    """The demo with a login per role (tests/test_portal_accounts.py)."""
    return staff_world


def test_a_reseller_creates_a_plan_gives_it_to_a_client_and_sees_it_held(world: Database) -> None:
    client = signed_in(world, "nc-admin")
    listed = client.get("/plans")
    assert 'href="/plans/north-city:talk-100"' in listed.text and "$5.00" in listed.text
    created = client.post(
        "/plans",
        data={
            "csrf_token": csrf_of(listed),
            "name": "europe-300",
            "fee": "7.25",
            "period": "month",
            "included_minutes": "300",
            "prefixes": "44, +33 49",
            "rollover": "yes",
        },
        follow_redirects=False,
    )
    assert created.headers["location"] == "/plans/north-city:europe-300?saved=created"
    page = client.get(created.headers["location"])
    assert "The plan is created." in page.text and "$7.25 a month" in page.text
    assert "33, 44, 49" in page.text and "Nobody holds it yet." in page.text
    plan, _ = subscriptions.get_plan(world, name="north-city:europe-300")
    assert (plan.fee_micros, plan.included_seconds, plan.rollover) == (7_250_000, 18_000, True)
    before = balances.get_balance(world, login="bob").balance_micros
    account = client.get("/accounts/bob")
    assert 'value="north-city:europe-300"' in account.text  # the account page's "give a plan"
    given = client.post("/accounts/bob/plan", data={"csrf_token": csrf_of(account), "plan": "north-city:europe-300"})
    assert given.status_code == 200 and "The plan is given, and its first fee charged." in given.text
    assert balances.get_balance(world, login="bob").balance_micros == before - 7_250_000
    held = client.get("/plans/north-city:europe-300")
    assert 'href="/accounts/bob"' in held.text and 'href="/accounts/alice"' not in held.text
    assert '<td class="number">300</td>' in held.text
    assert 'href="/accounts/alice"' in client.get("/plans/north-city:talk-100").text


def test_bad_plan_forms_answer_a_form_error_and_create_nothing(world: Database) -> None:
    client = signed_in(world, "nc-admin")
    token = csrf_of(client.get("/plans"))
    for fields, reason in (
        ({"name": "p", "fee": "lots"}, "Enter an amount such as 5 or 12.50."),
        ({"name": "p", "fee": "-1"}, "A price is from 0 to 1,000,000."),
        ({"name": "p", "fee": "99999999999999999999999"}, "This amount is too large."),
        ({"name": "p", "fee": "1", "included_minutes": "99999999999"}, "Included minutes are a whole number"),
        ({"name": "p", "fee": "1", "period": "year"}, "Choose one of the periods offered."),
        ({"name": "p", "fee": "1", "prefixes": "44 UK"}, "Each destination is a prefix of 1 to 20 digits"),
        ({"name": "talk-100", "fee": "1"}, "There is a plan with this name already"),
        ({"name": "", "fee": "1"}, "A name has 1 to 60 characters"),
    ):
        answer = client.post("/plans", data={"csrf_token": token, **fields})
        assert answer.status_code in (409, 422) and reason in answer.text, fields
    assert client.post("/plans", data={"csrf_token": token, "name": "p\x00", "fee": "1"}).status_code == 422
    assert client.post("/plans", data={"name": "p", "fee": "1"}).status_code == 403  # no CSRF token
    assert [plan.name for _, plan in subscriptions.list_plans(world, owner_login="north-city", limit=10)] == [
        "north-city:talk-100"
    ]


def test_another_sellers_plan_answers_404(world: Database) -> None:
    client = signed_in(world, "bw-admin")
    assert client.get("/plans").status_code == 200
    assert client.get("/plans/north-city:talk-100").status_code == 404
    assert client.get("/plans/north-city:nothing").status_code == 404
    provider = signed_in(world, "root")
    assert provider.get("/plans/north-city:talk-100").status_code == 404  # not the provider's own


@pytest.mark.parametrize("login", ["ana", "alice"])
def test_agents_and_customers_have_no_plans_pages(world: Database, login: str) -> None:
    client = signed_in(world, login)
    assert 'href="/plans"' not in client.get("/").text
    for path in ("/plans", "/plans/north-city:talk-100"):
        assert client.get(path).status_code == 404, path
