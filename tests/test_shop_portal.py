"""The page a payer comes back to from Stripe's checkout: "pending" until the webhook arrives, then
confirmed with the amount credited and its receipt; another customer's payment does not exist for it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests import stripe_stub
from tests.shop_world import CITY_HOOK, STUB_KEYS, ShopWorld, assert_reconciled, build
from tollway.access import service as access
from tollway.access.model import Role
from tollway.store.database import Database

PASSWORD = "correct horse battery"


@pytest.fixture
def world(demo_database: Database) -> Iterator[ShopWorld]:
    with stripe_stub.running(STUB_KEYS) as stub:
        yield build(demo_database, stub)
    assert_reconciled(demo_database)


def log_in(client: TestClient, login: str) -> None:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, "the login page has no CSRF token"
    answer = client.post(
        "/login", data={"login": login, "password": PASSWORD, "csrf_token": token.group(1)}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text


def state_of(page: Response) -> str:
    found = re.search(r'<p class="figure" id="state">([^<]*)</p>', page.text)
    assert found, page.text
    return found.group(1)


def test_the_return_page_waits_for_the_webhook_then_shows_the_credit(world: ShopWorld) -> None:
    for login, node in (("alice-web", "alice"), ("carol-web", "carol")):
        access.create_user(world.database, None, node_login=node, login=login, password=PASSWORD, role=Role.CLIENT)
    payment = world.start("alice", "topup-1", "20").json()
    page_path = f"/shop/payments/{payment['id']}"
    log_in(world.client, "alice-web")

    back = world.client.get(page_path + "?outcome=paid")
    assert back.status_code == 200
    assert state_of(back) == "Waiting for confirmation"
    assert f'hx-get="{page_path}" hx-trigger="every 3s"' in back.text
    assert "This page updates by itself." in back.text

    session = payment["checkout_url"].rsplit("/", 1)[-1]
    assert world.deliver(world.city_gateway, world.paid_event(session), CITY_HOOK).json()["outcome"] == "credited"
    done = world.client.get(page_path)
    assert state_of(done) == "Confirmed"
    assert "20.00" in done.text and "was added to your balance." in done.text
    assert "hx-trigger" not in done.text  # nothing left to wait for
    assert f'href="/api/v1/payments/{payment["id"]}/receipt"' in done.text

    world.client.cookies.clear()
    log_in(world.client, "carol-web")
    assert world.client.get(page_path).status_code == 404
