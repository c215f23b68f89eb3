"""Refunds of card payments follow the policy: only unspent money goes back, never a credit line.

dora is a new retail client of north-city with nothing in her wallet. She pays 20.00 by card, then spends
12.50 (a charge on her wallet), leaving 7.50 unspent:
  - a refund of 10.00 from the portal is refused (7.50 is unspent), nothing reserved, nothing asked of Stripe;
  - a refund of 7.50 is reserved, sent to Stripe (750 cents), and posted: dora 0.00, north-city's clearing
    -12.50 (Stripe holds 20.00 - 7.50);
  - the seller then refunds the remaining 12.50 on Stripe's dashboard: ``charge.refunded`` (amount_refunded
    2000) is recorded as refused, with its reason, and nothing is taken from dora's empty wallet.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests import stripe_stub
from tests.shop_world import CITY_HOOK, CITY_KEY, STUB_KEYS, ShopWorld, assert_reconciled, build
from tollway.access import service as access
from tollway.access.model import Role
from tollway.balances import service as balances
from tollway.ledger.model import AccountPurpose
from tollway.money import to_micros
from tollway.store.database import Database
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree.model import ClientType

D = Decimal


@pytest.fixture
def world(demo_database: Database) -> Iterator[ShopWorld]:
    with stripe_stub.running(STUB_KEYS) as stub:
        built = build(demo_database, stub)
        new = tree.NewNode(login="dora", name="Dora", position=tree_model.client(ClientType.RETAIL))
        tree.create_node(demo_database, owner_login="north-city", new=new)
        _, built.keys["dora"] = access.create_api_key(
            demo_database, None, node_login="dora", name="t", role=Role.CLIENT
        )
        yield built
    assert_reconciled(demo_database)


def paid(world: ShopWorld, login: str, request_id: str, amount: str) -> dict[str, Any]:
    payment = world.start(login, request_id, amount).json()
    session = world.stub.pay(CITY_KEY, payment["checkout_url"].rsplit("/", 1)[-1])
    answer = world.deliver(world.city_gateway, stripe_stub.event("checkout.session.completed", session), CITY_HOOK)
    assert answer.json()["outcome"] == "credited"
    payment["payment_intent"] = session["payment_intent"]
    return payment


def refund(world: ShopWorld, payment_id: int, request_id: str, amount: str, who: str = "north-city") -> Any:
    return world.client.post(
        f"/api/v1/payments/{payment_id}/refunds",
        json={"id": request_id, "amount": amount, "reason": "customer asked"},
        headers=world.as_(who),
    )


def charge_refunded(world: ShopWorld, payment_intent: str, cents: int) -> bytes:
    return stripe_stub.event("charge.refunded", world.stub.refund_on_dashboard(CITY_KEY, payment_intent, cents))


def test_a_refund_after_partial_spending_gives_back_only_what_is_unspent(world: ShopWorld) -> None:
    payment = paid(world, "dora", "d-1", "20")
    balances.adjust(world.database, login="dora", amount_micros=-to_micros("12.50"), reason="calls", transfer_id="s-1")
    assert world.balance("dora") == D("7.500000")

    too_much = refund(world, payment["id"], "r-1", "10")
    assert (too_much.status_code, too_much.json()["reason"]) == (422, "refund_exceeds_unspent")
    assert "7.500000 USD is unspent" in too_much.json()["message"]
    assert [path for path, _, _ in world.stub.accounts[CITY_KEY].requests].count("/v1/refunds") == 0

    done = refund(world, payment["id"], "r-2", "7.50")
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["payment"]["refunded"]) == ("succeeded", "7.500000")
    assert done.json()["payment"]["state"] == "confirmed"  # partly refunded
    path, params, key = world.stub.accounts[CITY_KEY].requests[-1]
    assert (path, params, key) == (
        "/v1/refunds",
        {"payment_intent": payment["payment_intent"], "amount": "750"},
        f"tollway-refund-{done.json()['id']}",
    )
    assert world.balance("dora") == D("0.000000")
    assert world.account("north-city", AccountPurpose.CLEARING_STRIPE) == D("-12.500000")
    assert refund(world, payment["id"], "r-2", "7.50").json()["id"] == done.json()["id"]  # a retry: the same one
    assert world.balance("dora") == D("0.000000")

    dashboard = world.deliver(world.city_gateway, charge_refunded(world, payment["payment_intent"], 1250), CITY_HOOK)
    assert dashboard.json()["outcome"] == "refund_refused"
    assert world.balance("dora") == D("0.000000")
    found = world.client.get(f"/api/v1/payments/{payment['id']}", headers=world.as_("north-city")).json()
    assert found["refunded"] == "7.500000"
    assert "refund_exceeds_unspent" in found["history"][-1]["detail"]


def test_a_credit_line_is_never_refunded(world: ShopWorld) -> None:
    payment = paid(world, "dora", "d-1", "20")
    balances.set_credit_limit(world.database, login="dora", credit_limit_micros=to_micros("100"))
    balances.adjust(world.database, login="dora", amount_micros=-to_micros("30"), reason="calls", transfer_id="s-1")
    assert world.balance("dora") == D("-10.000000")  # on credit: nothing of the 20.00 is unspent
    answer = refund(world, payment["id"], "r-1", "1")
    assert (answer.status_code, answer.json()["reason"]) == (422, "refund_exceeds_unspent")


def test_refunds_made_on_stripes_dashboard_are_reversed_once_each(world: ShopWorld) -> None:
    payment = paid(world, "alice", "a-1", "20")
    first = charge_refunded(world, payment["payment_intent"], 500)
    assert world.deliver(world.city_gateway, first, CITY_HOOK).json()["outcome"] == "refund_recorded"
    assert world.deliver(world.city_gateway, first, CITY_HOOK).json()["repeated"] is True
    second = charge_refunded(world, payment["payment_intent"], 300)  # amount_refunded 800 in all
    assert world.deliver(world.city_gateway, second, CITY_HOOK).json()["outcome"] == "refund_recorded"
    # The first refund's charge again under a new event id (Stripe sends another event): already accounted for.
    late = stripe_stub.event(
        "charge.refunded", world.stub.charge(CITY_KEY, payment["payment_intent"]) | {"amount_refunded": 500}
    )
    assert world.deliver(world.city_gateway, late, CITY_HOOK).json()["outcome"] == "refund_already_recorded"
    assert world.balance("alice") == D("37.000000")  # 25 + 20 - 5 - 3
    assert world.account("north-city", AccountPurpose.CLEARING_STRIPE) == D("-12.000000")

    rest = refund(world, payment["id"], "r-rest", "12")
    assert rest.json()["payment"]["state"] == "refunded"
    assert world.balance("alice") == D("25.000000")
    assert world.account("north-city", AccountPurpose.CLEARING_STRIPE) == D("0.000000")
    again = refund(world, payment["id"], "r-more", "0.01")
    assert (again.status_code, again.json()["reason"]) == (422, "payment_not_refundable")


def test_stripe_refusing_a_refund_releases_the_reserved_money(world: ShopWorld) -> None:
    payment = paid(world, "alice", "a-1", "20")
    world.stub.refund_on_dashboard(CITY_KEY, payment["payment_intent"], 2000)  # all refunded there, not yet told
    answer = refund(world, payment["id"], "r-1", "5")
    assert (answer.status_code, answer.json()["reason"]) == (422, "gateway_refused")
    assert world.balance("alice") == D("45.000000")
    assert balances.get_balance(world.database, login="alice").pending_micros == 0


def test_only_the_sellers_side_refunds(world: ShopWorld) -> None:
    payment = paid(world, "alice", "a-1", "20")
    for who, status in (("alice", 404), ("agent-ana", 404), ("north-metro", 404)):
        answer = refund(world, payment["id"], f"r-{who}", "1", who=who)
        assert (who, answer.status_code) == (who, status)
    assert world.balance("alice") == D("45.000000")
