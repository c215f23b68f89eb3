"""Paying by card through a seller's own Stripe account: the checkout made through the official SDK (against a
local stub of Stripe's API), the signed webhook posted to the real endpoint, balances checked to the micro-unit.

A top-up of 20.00 USD by alice (25.00 USD, managed by agent-ana at 10 %) through north-city's shop:
  alice's wallet             25.000000 → 45.000000
  agent-ana's commission      0.000000 →  2.000000  (10 % of 20.00, paid from north-city's revenue)
  north-city's Stripe clearing 0.000000 → -20.000000 (what Stripe holds for north-city)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests import stripe_stub
from tests.processes import START_SECONDS_MAX, race, unexpected
from tests.shop_world import (
    CITY_HOOK,
    CITY_KEY,
    METRO_HOOK,
    METRO_KEY,
    SEALING_KEY,
    STUB_KEYS,
    ShopWorld,
    assert_reconciled,
    build,
)
from tollway.ledger.model import AccountPurpose
from tollway.store.database import Database

D = Decimal
RACE_SECONDS_MAX = 180  # each process imports the whole web application before the race: slow on a busy machine


@pytest.fixture
def world(demo_database: Database) -> Iterator[ShopWorld]:
    with stripe_stub.running(STUB_KEYS) as stub:
        yield build(demo_database, stub)
    assert_reconciled(demo_database)


def started(world: ShopWorld, login: str = "alice", request_id: str = "topup-1", amount: str = "20") -> dict[str, Any]:
    response = world.start(login, request_id, amount)
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()
    assert payment["state"] == "pending"
    return payment


def session_of(payment: dict[str, Any]) -> str:
    return str(payment["checkout_url"]).rsplit("/", 1)[-1]


def test_the_checkout_session_is_made_with_the_sellers_own_key_through_the_sdk(world: ShopWorld) -> None:
    payment = started(world)
    assert payment["checkout_url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    (path, params, idempotency_key), *_ = world.stub.accounts[CITY_KEY].requests
    assert path == "/v1/checkout/sessions"
    assert idempotency_key == f"tollway-checkout-{payment['id']}"
    assert params["mode"] == "payment"
    assert params["line_items"][0]["price_data"] == {
        "currency": "usd",
        "unit_amount": "2000",
        "product_data": {"name": "alice: top-up, 20.000000 USD"},
    }
    assert params["metadata"] == {"tollway_payment": str(payment["id"]), "tollway_payer": "alice"}
    assert params["success_url"] == f"https://portal.example/shop/payments/{payment['id']}?outcome=paid"
    assert world.stub.accounts[METRO_KEY].requests == []  # never another seller's account

    again = world.start("alice", "topup-1", "20").json()  # the same request id: the same payment, no new session
    assert again["id"] == payment["id"] and again["checkout_url"] == payment["checkout_url"]
    assert len(world.stub.accounts[CITY_KEY].requests) == 1


def test_a_paid_session_credits_once_however_often_it_is_delivered(world: ShopWorld) -> None:
    payment = started(world)
    pending = world.client.get(f"/api/v1/payments/{payment['id']}", headers=world.as_("alice")).json()
    assert pending["state"] == "pending" and world.balance("alice") == D("25.000000")

    body = world.paid_event(session_of(payment))
    answers = [world.deliver(world.city_gateway, body, CITY_HOOK) for _ in range(5)]

    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["outcome"] for a in answers] == ["credited"] * 5
    assert [a.json()["repeated"] for a in answers] == [False, True, True, True, True]
    assert world.balance("alice") == D("45.000000")
    assert world.account("agent-ana", AccountPurpose.COMMISSION) == D("2.000000")
    assert world.account("north-city", AccountPurpose.CLEARING_STRIPE) == D("-20.000000")
    confirmed = world.client.get(f"/api/v1/payments/{payment['id']}", headers=world.as_("alice")).json()
    assert confirmed["state"] == "confirmed"
    assert confirmed["transfer_id"] == f"pay:stripe:{world.city_gateway}:{session_of(payment)}"
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in confirmed["history"]][:3] == [
        (None, "created", f"api_key:{_key_id(world, 'alice')}"),
        ("created", "pending", f"api_key:{_key_id(world, 'alice')}"),
        ("pending", "confirmed", "stripe"),
    ]


def _key_id(world: ShopWorld, login: str) -> int:
    from tollway.access import service as access

    return access.login_with_api_key(world.database, plaintext=world.keys[login]).api_key_id or 0


def test_a_new_delivery_of_the_same_session_under_another_event_id_still_credits_once(world: ShopWorld) -> None:
    payment = started(world)
    session = world.stub.pay(CITY_KEY, session_of(payment))
    first = world.deliver(world.city_gateway, stripe_stub.event("checkout.session.completed", session), CITY_HOOK)
    second = stripe_stub.event("checkout.session.async_payment_succeeded", session)
    assert first.json()["outcome"] == "credited"
    assert world.deliver(world.city_gateway, second, CITY_HOOK).json()["outcome"] == "already_credited"
    assert world.balance("alice") == D("45.000000")


def _post_at_the_same_moment(
    start: Any, results: Any, index: int, url: str, api_base: str, gateway: int, body: bytes, header: str
) -> None:
    """One of two processes posting the same delivery to the real endpoint, both at once."""
    try:
        from fastapi.testclient import TestClient

        from tollway.http.app import create_app
        from tollway.payments.service import PaymentSettings
        from tollway.sealing import Sealer

        database = Database(url, pool_size=1)
        settings = PaymentSettings(Sealer(SEALING_KEY), stripe_api_base=api_base)
        client = TestClient(create_app(database, payment_settings=settings), base_url="https://testserver")
        database.ping()
        start.wait(timeout=START_SECONDS_MAX)
        answer = client.post(
            f"/api/v1/payments/stripe/{gateway}/webhook",
            content=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        results.put((index, (answer.status_code, answer.json().get("outcome"), answer.json().get("repeated"))))
        database.dispose()
    except BaseException as error:
        results.put((index, unexpected(f"process {index}", error)))
    # Flush the report, then leave at once: tearing down an interpreter that imported the web stack and the
    # Stripe SDK takes seconds on a loaded machine, longer than the race waits for a reported process.
    results.close()
    results.join_thread()
    os._exit(0)


@pytest.mark.timeout(240)
def test_the_same_event_posted_by_two_processes_at_once_credits_once(world: ShopWorld) -> None:
    payment = started(world)
    body = world.paid_event(session_of(payment))
    header = stripe_stub.signature(body, CITY_HOOK)
    url = world.database.url
    reports = race(
        _post_at_the_same_moment,
        [(url, world.stub.url, world.city_gateway, body, header) for _ in range(2)],
        seconds_max=RACE_SECONDS_MAX,
    )
    assert sorted(reports) == [(200, "credited", False), (200, "credited", True)]
    assert world.balance("alice") == D("45.000000")
    assert world.account("agent-ana", AccountPurpose.COMMISSION) == D("2.000000")


def test_what_is_not_stripe_speaking_for_this_seller_credits_nothing(world: ShopWorld) -> None:
    payment = started(world)
    body = world.paid_event(session_of(payment))
    tampered = body.replace(b'"amount_total": 2000', b'"amount_total": 200000')
    cases = {
        "wrong secret": world.deliver(world.city_gateway, body, "whsec_guessed0123456789"),
        "another seller's secret": world.deliver(world.city_gateway, body, METRO_HOOK),
        "tampered body": world.deliver(
            world.city_gateway, tampered, CITY_HOOK, header=stripe_stub.signature(body, CITY_HOOK)
        ),
        "signed 301 s ago": world.deliver(world.city_gateway, body, CITY_HOOK, timestamp=int(time.time()) - 301),
        "no signature": world.client.post(f"/api/v1/payments/stripe/{world.city_gateway}/webhook", content=body),
        "garbage header": world.deliver(world.city_gateway, body, CITY_HOOK, header="t=now,v1=zz"),
    }
    for name, answer in cases.items():
        assert (name, answer.status_code, answer.json()["reason"]) == (name, 400, "signature_invalid")
    unknown_gateway = world.deliver(999_999, body, CITY_HOOK)
    assert (unknown_gateway.status_code, unknown_gateway.json()["reason"]) == (404, "gateway_not_found")
    # Signed by north-metro for north-metro's URL, about north-city's session: not a payment of that gateway.
    crossed = world.deliver(world.metro_gateway, body, METRO_HOOK)
    assert (crossed.status_code, crossed.json()["outcome"]) == (200, "payment_unknown")

    assert world.balance("alice") == D("25.000000")
    assert world.client.get(f"/api/v1/payments/{payment['id']}", headers=world.as_("alice")).json()["state"] == (
        "pending"
    )
    # The genuine delivery, afterwards, still credits: nothing above recorded its event.
    assert world.deliver(world.city_gateway, body, CITY_HOOK).json()["outcome"] == "credited"


def test_an_unknown_event_type_and_an_unpaid_session_are_ignored(world: ShopWorld) -> None:
    payment = started(world)
    session = world.stub.accounts[CITY_KEY].sessions[session_of(payment)]
    unpaid = stripe_stub.event("checkout.session.completed", session | {"status": "complete"})  # unpaid: a debit
    other = stripe_stub.event("customer.created", {"id": "cus_test_1", "object": "customer"})
    assert world.deliver(world.city_gateway, unpaid, CITY_HOOK).json()["outcome"] == "ignored_unpaid"
    assert world.deliver(world.city_gateway, other, CITY_HOOK).json()["outcome"] == "ignored_type"
    assert world.balance("alice") == D("25.000000")

    paid_later = stripe_stub.event("checkout.session.async_payment_succeeded", world.stub.pay(CITY_KEY, session["id"]))
    assert world.deliver(world.city_gateway, paid_later, CITY_HOOK).json()["outcome"] == "credited"
    assert world.balance("alice") == D("45.000000")


def test_a_session_in_another_currency_or_amount_is_refused_and_noted(world: ShopWorld) -> None:
    payment = started(world)
    euros = world.paid_event(session_of(payment), currency="eur")
    answer = world.deliver(world.city_gateway, euros, CITY_HOOK)
    assert answer.json()["outcome"] == "refused_currency_mismatch"
    less = stripe_stub.event(
        "checkout.session.completed", world.stub.pay(CITY_KEY, session_of(payment)) | {"amount_total": 1999}
    )
    assert world.deliver(world.city_gateway, less, CITY_HOOK).json()["outcome"] == "refused_amount_mismatch"
    assert world.balance("alice") == D("25.000000")
    found = world.client.get(f"/api/v1/payments/{payment['id']}", headers=world.as_("north-city")).json()
    assert found["state"] == "pending"
    assert [e["detail"].split(":")[0] for e in found["history"][2:]] == [
        "refused_currency_mismatch",
        "refused_amount_mismatch",
    ]


def test_an_expired_session_cancels_and_a_late_payment_still_credits(world: ShopWorld) -> None:
    payment = started(world)
    session = world.stub.accounts[CITY_KEY].sessions[session_of(payment)]
    expired = stripe_stub.event("checkout.session.expired", session | {"status": "expired"})
    assert world.deliver(world.city_gateway, expired, CITY_HOOK).json()["outcome"] == "canceled"
    # Money taken is never left uncredited: the gateway's word that it arrived wins over the cancellation.
    assert world.deliver(world.city_gateway, world.paid_event(session["id"]), CITY_HOOK).json()["outcome"] == (
        "credited"
    )
    assert world.balance("alice") == D("45.000000")


def test_each_customer_pays_into_its_own_sellers_account(world: ShopWorld) -> None:
    carols = started(world, login="carol", request_id="c-1", amount="10")
    assert [path for path, _, _ in world.stub.accounts[METRO_KEY].requests] == ["/v1/checkout/sessions"]
    assert world.stub.accounts[CITY_KEY].requests == []
    body = world.paid_event(session_of(carols), key=METRO_KEY)
    assert world.deliver(world.city_gateway, body, CITY_HOOK).json()["outcome"] == "payment_unknown"
    assert world.deliver(world.metro_gateway, body, METRO_HOOK).json()["outcome"] == "credited"
    assert world.account("north-metro", AccountPurpose.CLEARING_STRIPE) == D("-10.000000")
    assert world.account("north-city", AccountPurpose.CLEARING_STRIPE) == D("0.000000")


def test_an_agent_tops_up_its_own_wallet_but_pays_for_nobody_else(world: ShopWorld) -> None:
    own = started(world, login="agent-ana", request_id="ana-1", amount="50")
    assert world.deliver(world.city_gateway, world.paid_event(session_of(own)), CITY_HOOK).json()["outcome"] == (
        "credited"
    )
    assert world.balance("agent-ana") == D("150.000000")
    assert world.account("agent-ana", AccountPurpose.COMMISSION) == D("0.000000")  # nobody earns on its own money
    for_alice = world.client.post(
        "/api/v1/nodes/alice/shop/payments",
        json={"id": "ana-for-alice", "gateway": "stripe", "amount": "20"},
        headers=world.as_("agent-ana"),
    )
    assert (for_alice.status_code, for_alice.json()["reason"]) == (403, "forbidden")


def test_the_agent_earns_its_commission_on_a_card_payment_as_on_a_deposit(world: ShopWorld) -> None:
    payment = started(world, login="bob", request_id="bob-1", amount="37.45")
    world.deliver(world.city_gateway, world.paid_event(session_of(payment)), CITY_HOOK)
    # 10 % of 37.45 = 3.745000: the commission of a deposit of the same amount.
    assert world.account("agent-ana", AccountPurpose.COMMISSION) == D("3.745000")
    assert world.balance("bob") == D("47.450000")
    statement = world.client.get(
        "/api/v1/agents/agent-ana/commissions",
        params={"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
        headers=world.as_("north-city"),
    ).json()
    line = statement["lines"][-1]
    assert (line["client"], line["deposit"], line["commission"]) == ("bob", "37.450000", "3.745000")


def test_a_plan_bought_in_the_shop_is_given_from_the_money_paid(world: ShopWorld) -> None:
    shop = world.client.get("/api/v1/nodes/bob/shop", headers=world.as_("bob")).json()
    assert [(p["name"], p["fee"]) for p in shop["plans"]] == [("north-city:talk-100", "5.000000")]
    response = world.client.post(
        "/api/v1/nodes/bob/shop/payments",
        json={"id": "plan-1", "gateway": "stripe", "product": "plan", "plan": "north-city:talk-100"},
        headers=world.as_("bob"),
    )
    payment = response.json()
    assert (payment["amount"], payment["plan"]) == ("5.000000", "north-city:talk-100")
    world.deliver(world.city_gateway, world.paid_event(session_of(payment)), CITY_HOOK)
    plans = world.client.get("/api/v1/nodes/bob/plans", headers=world.as_("bob")).json()
    assert [(p["plan"]["name"], p["status"]) for p in plans] == [("north-city:talk-100", "active")]
    assert world.balance("bob") == D("10.000000")  # paid 5.00, then charged the first month's 5.00
    done = world.client.get(f"/api/v1/payments/{payment['id']}", headers=world.as_("bob")).json()
    assert done["reason"] == "plan_given"


def test_a_seller_whose_key_stripe_refuses_fails_the_payment_and_an_unreachable_stripe_leaves_it_to_retry(
    world: ShopWorld,
) -> None:
    del world.stub.accounts[CITY_KEY]  # the key was rolled at Stripe
    refused = world.start("alice", "k-1", "20")
    assert (refused.status_code, refused.json()["reason"]) == (502, "gateway_key_invalid")
    found = world.client.get("/api/v1/nodes/alice/shop/payments", headers=world.as_("alice")).json()
    assert [(p["request_id"], p["state"]) for p in found] == [("k-1", "failed")]

    world.stub.accounts[CITY_KEY] = stripe_stub.Account("north-city")
    world.stub.server.shutdown()  # Stripe unreachable
    world.stub.server.server_close()
    down = world.start("alice", "k-2", "20")
    assert (down.status_code, down.json()["reason"]) == (502, "gateway_unavailable")
    again = world.client.get("/api/v1/nodes/alice/shop/payments", headers=world.as_("alice")).json()
    assert (again[0]["request_id"], again[0]["state"]) == ("k-2", "created")


def test_a_process_with_another_sealing_key_refuses_plainly_and_credits_nothing(world: ShopWorld) -> None:
    """The installation's key was changed without keeping the old one: the secrets cannot be opened."""
    from fastapi.testclient import TestClient

    from tollway.http.app import create_app
    from tollway.payments.service import PaymentSettings
    from tollway.sealing import Sealer

    payment = started(world)
    body = world.paid_event(session_of(payment))
    stranger = PaymentSettings(Sealer(Sealer.new_key()), stripe_api_base=world.stub.url)
    client = TestClient(create_app(world.database, payment_settings=stranger), base_url="https://testserver")
    answer = client.post(
        f"/api/v1/payments/stripe/{world.city_gateway}/webhook",
        content=body,
        headers={"Stripe-Signature": stripe_stub.signature(body, CITY_HOOK), "Content-Type": "application/json"},
    )
    assert (answer.status_code, answer.json()["reason"]) == (502, "gateway_secret_unreadable")
    assert world.balance("alice") == D("25.000000")
    assert world.deliver(world.city_gateway, body, CITY_HOOK).json()["outcome"] == "credited"  # Stripe retries
