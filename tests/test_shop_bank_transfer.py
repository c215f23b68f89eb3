"""Paying by bank transfer: the payer sees its seller's bank details, declares its transfer with the reference
it wrote on it, and the seller confirms it (credited once) or rejects it; every change is in the payment's
history and in the audit log.

alice (25.00 USD, agent-ana at 10 %) declares 30.00 to north-city: confirmed, her wallet is 55.00 and ana's
commission 3.00, moved from north-city's bank clearing account (-30.00).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests import stripe_stub
from tests.shop_world import STUB_KEYS, ShopWorld, assert_reconciled, build
from tollway.ledger.model import AccountPurpose
from tollway.store.database import Database

D = Decimal
BANK = {
    "account_holder": "North City VoIP LLC",
    "iban": "DE89 3704 0044 0532 0130 00",
    "bic": "COBADEFFXXX",
    "instructions": "Write your login on the transfer.",
}


@pytest.fixture
def world(demo_database: Database) -> Iterator[ShopWorld]:
    with stripe_stub.running(STUB_KEYS) as stub:
        built = build(demo_database, stub)
        answer = built.client.put(
            "/api/v1/nodes/north-city/gateways/bank-transfer", json=BANK, headers=built.as_("north-city")
        )
        assert answer.status_code == 200, answer.text
        yield built
    assert_reconciled(demo_database)


def declare(world: ShopWorld, request_id: str, amount: str, reference: str = "ALICE NOV") -> dict[str, Any]:
    answer = world.client.post(
        "/api/v1/nodes/alice/shop/payments",
        json={"id": request_id, "gateway": "bank_transfer", "amount": amount, "reference": reference},
        headers=world.as_("alice"),
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def decide(world: ShopWorld, payment_id: int, verdict: str, note: str = "", who: str = "north-city") -> Any:
    return world.client.post(f"/api/v1/payments/{payment_id}/{verdict}", json={"note": note}, headers=world.as_(who))


def test_the_payer_sees_the_bank_details_and_its_seller_confirms_the_transfer_once(world: ShopWorld) -> None:
    shop = world.client.get("/api/v1/nodes/alice/shop", headers=world.as_("alice")).json()
    assert shop["gateways"] == ["bank_transfer", "stripe"]
    assert shop["bank_details"]["iban"] == "DE89 3704 0044 0532 0130 00"

    payment = declare(world, "bt-1", "30")
    assert (payment["state"], payment["reference"], payment["checkout_url"]) == ("pending", "ALICE NOV", None)
    assert world.balance("alice") == D("25.000000")

    confirmed = decide(world, payment["id"], "confirmation", "seen on the statement of 3 Dec")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["state"] == "confirmed"
    assert decide(world, payment["id"], "confirmation").json()["state"] == "confirmed"  # twice: credited once
    assert world.balance("alice") == D("55.000000")
    assert world.account("agent-ana", AccountPurpose.COMMISSION) == D("3.000000")
    assert world.account("north-city", AccountPurpose.CLEARING_BANK) == D("-30.000000")
    assert confirmed.json()["transfer_id"] == f"pay:bank_transfer:{_bank_gateway(world)}:p{payment['id']}"

    history = [(e["from_state"], e["to_state"]) for e in confirmed.json()["history"]]
    assert history == [(None, "created"), ("created", "pending"), ("pending", "confirmed"), ("confirmed", "confirmed")]
    rejected = decide(world, payment["id"], "rejection", "changed my mind")
    assert (rejected.status_code, rejected.json()["reason"]) == (422, "payment_state_invalid")
    audit = world.client.get("/api/v1/audit", params={"target_id": str(payment["id"])}, headers=world.as_("north-city"))
    assert [(e["action"], e["target_type"]) for e in audit.json()][::-1] == [
        ("payment.start", "payment"),
        ("payment.confirm", "payment"),
    ]


def _bank_gateway(world: ShopWorld) -> int:
    gateways = world.client.get("/api/v1/nodes/north-city/gateways", headers=world.as_("north-city")).json()
    return int(next(g["id"] for g in gateways if g["kind"] == "bank_transfer"))


def test_a_rejected_transfer_credits_nothing_and_says_why(world: ShopWorld) -> None:
    payment = declare(world, "bt-1", "30")
    without_note = decide(world, payment["id"], "rejection")
    assert (without_note.status_code, without_note.json()["reason"]) == (422, "note_required")
    rejected = decide(world, payment["id"], "rejection", "no such transfer arrived").json()
    assert (rejected["state"], rejected["reason"]) == ("canceled", "rejected")
    assert rejected["history"][-1]["detail"] == "rejected: no such transfer arrived"
    assert world.balance("alice") == D("25.000000")


def test_only_the_payers_seller_decides(world: ShopWorld) -> None:
    payment = declare(world, "bt-1", "30")
    assert decide(world, payment["id"], "confirmation", who="north-metro").status_code == 404
    assert decide(world, payment["id"], "confirmation", who="agent-ana").status_code == 404
    assert decide(world, payment["id"], "confirmation", who="alice").status_code == 404
    assert world.balance("alice") == D("25.000000")


def test_a_declaration_needs_its_reference_and_an_offered_amount(world: ShopWorld) -> None:
    no_reference = world.client.post(
        "/api/v1/nodes/alice/shop/payments",
        json={"id": "bt-1", "gateway": "bank_transfer", "amount": "30"},
        headers=world.as_("alice"),
    )
    assert (no_reference.status_code, no_reference.json()["reason"]) == (422, "reference_required")
    too_big = world.client.post(
        "/api/v1/nodes/alice/shop/payments",
        json={"id": "bt-2", "gateway": "bank_transfer", "amount": "500.01", "reference": "x"},
        headers=world.as_("alice"),
    )
    assert (too_big.status_code, too_big.json()["reason"]) == (422, "amount_out_of_range")
    first = declare(world, "bt-3", "30")
    other_amount = world.client.post(
        "/api/v1/nodes/alice/shop/payments",
        json={"id": "bt-3", "gateway": "bank_transfer", "amount": "40", "reference": "x"},
        headers=world.as_("alice"),
    )
    assert (other_amount.status_code, other_amount.json()["reason"]) == (409, "exists_with_different_fields")
    assert declare(world, "bt-3", "30")["id"] == first["id"]
