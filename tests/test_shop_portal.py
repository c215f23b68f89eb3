"""The shop in the portal, by HTTP: a customer picks a top-up and pays by card (on to Stripe's page, back to
its payment's page, "pending" until the webhook, then credited with its receipt), or declares a bank transfer
that its seller confirms or rejects in Sales; a seller sets its shop (Stripe's secrets never shown again);
nobody sees another tenant's payments.

The figures (north-city's shop, alice with 25.00 USD, agent-ana's client at 10 %):
  alice pays 20.00 by card:          25.000000 → 45.000000, agent-ana earns 2.000000
  north-city refunds 5.00 of it:     45.000000 → 40.000000 (the agent keeps its commission)
  alice declares 30.00 by transfer:  45.000000 → 75.000000 once north-city confirms it
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Connection

from tests import stripe_stub
from tests.shop_world import CITY_HOOK, STUB_KEYS, ShopWorld, assert_reconciled, build
from tests.test_portal import PASSWORD, csrf_of, password_hash
from tollway.access import store as access_store
from tollway.access.model import Role
from tollway.clock import utc_now
from tollway.errors import present
from tollway.ledger.model import AccountPurpose
from tollway.payments import service as shop
from tollway.store.database import Database
from tollway.tree import store as tree_store

D = Decimal
WEB_LOGINS = (
    ("alice-web", "alice", Role.CLIENT),
    ("bob-web", "bob", Role.CLIENT),
    ("acme-web", "acme-pbx", Role.ORGANIZATION_USER),
    ("carol-web", "carol", Role.CLIENT),
    ("ana-web", "agent-ana", Role.AGENT),
    ("city-web", "north-city", Role.RESELLER_ADMIN),
    ("metro-web", "north-metro", Role.RESELLER_ADMIN),
)
BANK = {"account_holder": "North City Voice Ltd", "iban": "GB33BUKB20201555555555", "bic": "BUKBGB22"}


@pytest.fixture
def world(demo_database: Database) -> Iterator[ShopWorld]:
    with stripe_stub.running(STUB_KEYS) as stub:
        built = build(demo_database, stub)
        shop.configure_bank_transfer(demo_database, seller_login="north-city", details=BANK)
        add_logins(demo_database)
        yield built
    assert_reconciled(demo_database)


def add_logins(database: Database) -> None:
    def insert(connection: Connection) -> None:
        for login, node, role in WEB_LOGINS:
            node_id = present(tree_store.find_node(connection, node), node).id
            access_store.insert_user(
                connection, node_id=node_id, login=login, password_hash=password_hash(), role=role, now=utc_now()
            )

    database.run(insert)


def log_in(client: TestClient, login: str) -> None:
    client.cookies.clear()
    form = client.get("/login")
    answer = client.post(
        "/login", data={"login": login, "password": PASSWORD, "csrf_token": csrf_of(form)}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text


def post_form(client: TestClient, page_path: str, action: str, **fields: str) -> Response:
    """Post a form of a page as a browser does: with the page's CSRF token and its idempotency key."""
    page = client.get(page_path)
    key = re.search(r'name="key" value="([^"]+)"', page.text)
    data = {"csrf_token": csrf_of(page), **({"key": key.group(1)} if key else {}), **fields}
    return client.post(action, data=data, follow_redirects=False)


def state_of(page: Response) -> str:
    found = re.search(r'<p class="figure" id="state">([^<]*)</p>', page.text)
    assert found, page.text
    return found.group(1)


def test_a_customer_pays_by_card_from_the_shop_page_and_sees_the_credit(world: ShopWorld) -> None:
    client = world.client
    log_in(client, "alice-web")
    page = client.get("/shop")
    assert page.status_code == 200
    assert re.findall(r'name="amount" value="([^"]+)"', page.text) == ["10", "20", "50", "other"]
    assert "From $5.00 to $500.00." in page.text
    assert "GB33BUKB20201555555555" in page.text  # the seller's bank details, to pay by transfer
    assert "north-city:talk-100" in page.text  # its plan, first period paid at purchase

    token, key = csrf_of(page), re.search(r'name="key" value="([^"]+)"', page.text)
    assert key
    form = {"csrf_token": token, "key": key.group(1), "amount": "20", "gateway": "stripe"}
    sent = client.post("/shop/pay", data=form, follow_redirects=False)
    again = client.post("/shop/pay", data=form, follow_redirects=False)  # a double click: one payment
    assert sent.status_code == again.status_code == 303
    assert sent.headers["location"] == again.headers["location"]
    payment_id = int(sent.headers["location"].split("/")[3])
    assert sent.headers["location"] == f"/shop/payments/{payment_id}/checkout"

    on_to_stripe = client.get(sent.headers["location"])
    checkout_url = re.search(r'id="checkout-link" href="([^"]+)"', on_to_stripe.text)
    assert checkout_url and checkout_url.group(1).startswith("https://checkout.stripe.com/c/pay/cs_test_")
    assert f'<meta http-equiv="refresh" content="0;url={checkout_url.group(1)}">' in on_to_stripe.text

    back = client.get(f"/shop/payments/{payment_id}?outcome=paid")
    assert state_of(back) == "Waiting for confirmation"
    session = checkout_url.group(1).rsplit("/", 1)[-1]
    assert world.deliver(world.city_gateway, world.paid_event(session), CITY_HOOK).json()["outcome"] == "credited"
    done = client.get(f"/shop/payments/{payment_id}")
    assert state_of(done) == "Confirmed" and "$20.00 was added to your balance." in done.text
    assert world.balance("alice") == D("45.000000")
    assert world.account("agent-ana", AccountPurpose.COMMISSION) == D("2.000000")
    listed = client.get("/shop")
    assert f'href="/api/v1/payments/{payment_id}/receipt"' in listed.text
    receipt = client.get(f"/api/v1/payments/{payment_id}/receipt")  # the portal's session reads it
    assert receipt.status_code == 200 and "$20.00" in receipt.text

    assert "/refund" not in done.text  # the payer sees no refund form

    log_in(client, "carol-web")  # another reseller's customer: the payment does not exist for it
    assert client.get(f"/shop/payments/{payment_id}").status_code == 404
    assert client.get(f"/shop/payments/{payment_id}/checkout").status_code == 404

    # north-city gives back 5.00 of it through Stripe (the stub), then cannot give back more than is left.
    log_in(client, "city-web")
    page_path = f"/shop/payments/{payment_id}"
    refunded = post_form(client, page_path, f"/sales/payments/{payment_id}/refund", amount="5", reason="asked")
    assert (refunded.status_code, refunded.headers["location"]) == (303, f"{page_path}?saved=refunded")
    assert "Refunded: $5.00" in client.get(page_path).text
    assert world.balance("alice") == D("40.000000")
    too_much = post_form(client, page_path, f"/sales/payments/{payment_id}/refund", amount="15.01", reason="again")
    assert too_much.status_code == 422
    assert "This is more than what is left of the payment to refund." in too_much.text
    assert world.balance("alice") == D("40.000000")


def test_a_declared_transfer_is_credited_once_the_seller_confirms_it(world: ShopWorld) -> None:
    client = world.client
    log_in(client, "alice-web")
    refused = post_form(client, "/shop", "/shop/pay", amount="other", other_amount="30", gateway="bank_transfer")
    assert refused.status_code == 422 and "Enter the reference you wrote on your transfer." in refused.text
    declared = post_form(
        client, "/shop", "/shop/pay", amount="other", other_amount="30", gateway="bank_transfer", reference="ALICE-NOV"
    )
    assert declared.status_code == 303
    payment_path = declared.headers["location"]
    payment_id = int(payment_path.rsplit("/", 1)[1])
    waiting = client.get(payment_path)
    assert state_of(waiting) == "Waiting for confirmation" and "hx-trigger" not in waiting.text

    log_in(client, "metro-web")  # another seller neither sees nor decides it
    assert f"transfer-{payment_id}" not in client.get("/sales").text
    assert post_form(client, "/sales", f"/sales/payments/{payment_id}/confirm").status_code == 404
    log_in(client, "ana-web")  # an agent sells nothing
    assert client.get("/sales").status_code == 404

    log_in(client, "city-web")
    sales = client.get("/sales")
    assert f'id="transfer-{payment_id}"' in sales.text and "ALICE-NOV" in sales.text
    no_reason = post_form(client, "/sales", f"/sales/payments/{payment_id}/reject", note="")
    assert no_reason.status_code == 422
    confirmed = post_form(client, "/sales", f"/sales/payments/{payment_id}/confirm")
    assert (confirmed.status_code, confirmed.headers["location"]) == (303, "/sales?saved=confirmed")
    assert post_form(client, "/sales", f"/sales/payments/{payment_id}/confirm").status_code == 303  # twice: once
    assert world.balance("alice") == D("55.000000")
    assert world.account("agent-ana", AccountPurpose.COMMISSION) == D("3.000000")
    audit = client.get("/api/v1/audit", params={"limit": 5}).json()
    assert [(e["action"], e["target_id"]) for e in audit if e["action"] == "payment.confirm"] == [
        ("payment.confirm", str(payment_id))
    ]
    log_in(client, "alice-web")
    assert state_of(client.get(payment_path)) == "Confirmed"


def test_an_agent_tops_up_its_own_wallet_through_its_resellers_shop(world: ShopWorld) -> None:
    log_in(world.client, "ana-web")
    paid = post_form(world.client, "/shop", "/shop/pay", amount="50", gateway="stripe")
    assert paid.status_code == 303
    checkout = world.client.get(paid.headers["location"])
    session = re.search(r'id="checkout-link" href="[^"]*/(cs_test_[^"]+)"', checkout.text)
    assert session
    world.deliver(world.city_gateway, world.paid_event(session.group(1)), CITY_HOOK)
    assert world.balance("agent-ana") == D("150.000000")


def test_a_plan_bought_in_the_portal_is_given_from_the_money_paid(world: ShopWorld) -> None:
    """bob (10.00 USD) buys talk-100 (5.00 a month) by card: credited 5.00, then its first month charged."""
    client = world.client
    log_in(client, "bob-web")
    page = client.get("/shop")
    form = {"csrf_token": csrf_of(page), "key": "portal-plan-1", "plan": "north-city:talk-100", "gateway": "stripe"}
    checkout = client.get(client.post("/shop/pay", data=form, follow_redirects=False).headers["location"])
    session = re.search(r'id="checkout-link" href="[^"]*/(cs_test_[^"]+)"', checkout.text)
    assert session
    world.deliver(world.city_gateway, world.paid_event(session.group(1)), CITY_HOOK)
    plans = client.get("/api/v1/nodes/bob/plans").json()
    assert [(p["plan"]["name"], p["status"]) for p in plans] == [("north-city:talk-100", "active")]
    assert world.balance("bob") == D("10.000000")

    log_in(client, "acme-web")  # an organization's user pays nobody: no shop
    assert client.get("/shop").status_code == 404
    assert "/shop" not in client.get("/").text


def test_a_seller_sets_its_shop_and_its_secrets_are_never_shown_again(world: ShopWorld) -> None:
    client = world.client
    log_in(client, "city-web")
    new_key = "sk_test_51CityNewKeyabcdefghijklmnopqrstuvwxyz"
    saved = post_form(client, "/shop/setup", "/shop/setup/stripe", secret_key=new_key, webhook_secret="", enabled="yes")
    assert (saved.status_code, saved.headers["location"]) == (303, "/shop/setup?saved=stripe")
    page = client.get("/shop/setup")
    assert new_key not in page.text and "…wxyz" in page.text  # only its last four characters
    assert f"/api/v1/payments/stripe/{world.city_gateway}/webhook" in page.text
    wrong = post_form(client, "/shop/setup", "/shop/setup/stripe", secret_key="pk_live_nope1234", enabled="yes")
    assert wrong.status_code == 422 and "pk_live_nope1234" not in wrong.text

    topups = post_form(
        client, "/shop/setup", "/shop/setup/topups", currency="USD", amounts="15; 25", free_min="", free_max=""
    )
    assert topups.status_code == 303
    billing = post_form(
        client, "/shop/setup", "/shop/setup/billing", legal_name="North City Voice Ltd", tax_id="GB123", tax_rate="20"
    )
    assert billing.status_code == 303
    assert "GB123" in client.get("/shop/setup").text
    log_in(client, "alice-web")
    assert re.findall(r'name="amount" value="([^"]+)"', client.get("/shop").text) == ["15", "25"]
