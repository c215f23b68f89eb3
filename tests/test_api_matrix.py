"""Every endpoint x every kind of caller, from inside and outside the subtree: the expected answer
written by hand. A route without a row here fails `test_every_route_is_in_the_matrix`.

The target is alice, a retail client of north-city, managed by agent-ana (demo data). Callers:
  P       provider admin (house)              R_in   reseller admin of north-city (alice's owner)
  R_out   reseller admin of north-metro       A      agent-ana (manages alice)
  C       alice herself                       C_out  carol, a client of north-metro
  anon    no credentials
404 means "you may not even know it exists"; 403 means "you see it but may not do this".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tollway.access import service as access
from tollway.access.model import Role
from tollway.agents import service as agents
from tollway.agents.model import AgentTerms, CustomerProfile
from tollway.balances import service as balances
from tollway.calls import service as calls
from tollway.calls.service import CallRequest
from tollway.cards import service as cards
from tollway.cards.model import BatchTerms
from tollway.clock import utc_now
from tollway.demo import load_demo
from tollway.http.app import create_app
from tollway.lines import service as lines
from tollway.organizations import service as organizations
from tollway.organizations.service import NewExtension, NewUser
from tollway.payments import records
from tollway.payments import service as shop
from tollway.payments.model import GatewayKind, TopupOffer
from tollway.payments.service import PaymentSettings
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import ClientType, client

PASSWORD = "correct horse battery"
ACTORS = {
    "P": ("house", Role.PROVIDER_ADMIN),
    "R_in": ("north-city", Role.RESELLER_ADMIN),
    "R_out": ("north-metro", Role.RESELLER_ADMIN),
    "A": ("agent-ana", Role.AGENT),
    "C": ("alice", Role.CLIENT),
    "C_out": ("carol", Role.CLIENT),
}


@dataclass(frozen=True)
class Row:
    path: str
    body: dict[str, Any] | list[dict[str, Any]] | None = None
    expected: dict[str, int] = field(default_factory=dict)  # actor -> status
    content: str | None = None  # a body that is not JSON (a CSV rate sheet)
    setup: Callable[[Database], object] | None = None  # what must exist first (a call up now)


def call_up(database: Database) -> object:
    """alice's call m1 to London, answered: the target of the call routes."""
    request = CallRequest("m1", "alice", "+1 212 555 0100", "+44 20 7946 0000", answered=True)
    return calls.authorize_call(database, request)


def ana_earned_commission(database: Database) -> object:
    """agent-ana at 10 %, and alice's own payment of 10.00: 1.00 of commission to withdraw."""
    agents.set_terms(database, agent_login="agent-ana", terms=AgentTerms(commission_ppm=100_000))
    return agents.record_payment(database, login="alice", amount_micros=10_000_000, transfer_id="alice-pays")


def basic_profile_for_ana(database: Database) -> object:
    profile = CustomerProfile(name="basic", client_type="retail", login_prefix="nc")
    agents.put_profile(database, owner_login="north-city", profile=profile)
    return agents.set_terms(database, agent_login="agent-ana", terms=AgentTerms(), profiles=["basic"])


def alice_topped_up(database: Database) -> object:
    return balances.topup(database, login="alice", amount_micros=1_000_000, transfer_id="to-reverse")


def alice_has_a_login(database: Database) -> object:
    return access.create_user(
        database, None, node_login="alice", login="alice-web", password=PASSWORD, role=Role.CLIENT
    )


# The shop: north-city sells by bank transfer and by Stripe (its key sealed with a key made for the test).
MATRIX_PAYMENTS = PaymentSettings(Sealer(Sealer.new_key()))
BANK_DETAILS = {"account_holder": "North City VoIP", "iban": "DE89 3704 0044 0532 0130 00"}


def north_city_shop(database: Database) -> object:
    shop.configure_bank_transfer(database, seller_login="north-city", details=BANK_DETAILS)
    shop.configure_stripe(
        database,
        MATRIX_PAYMENTS,
        seller_login="north-city",
        secret_key="sk_test_matrix0123456789",
        webhook_secret="whsec_matrix0123456789",
    )
    offer = TopupOffer("USD", (10_000_000,), 1_000_000, 100_000_000)
    return shop.put_topup_offer(database, seller_login="north-city", offer=offer)


def alice_declared_a_transfer(database: Database) -> object:
    """Payment 1: alice's bank transfer of 10.00, declared."""
    north_city_shop(database)
    order = shop.Order("declared", GatewayKind.BANK_TRANSFER, amount_micros=10_000_000, payer_reference="ALICE")
    return shop.start_payment(database, MATRIX_PAYMENTS, login="alice", order=order)


def alice_paid_by_transfer(database: Database) -> object:
    """Payment 1, confirmed: alice's wallet holds its 10.00."""
    alice_declared_a_transfer(database)
    return shop.decide_bank_transfer(database, payment_id=1, accept=True)


def alice_invoiced(database: Database) -> object:
    """Invoice 1: alice's for this month, with payment 1 on it."""
    alice_paid_by_transfer(database)
    today = utc_now()
    following = datetime(today.year + today.month // 12, today.month % 12 + 1, 1, tzinfo=UTC)
    return records.issue_invoices(database, month=today.date().replace(day=1), now=following)


def north_city_organization(database: Database) -> object:
    """nc-pbx, an organization of north-city: user nc-ann with extension 101, which presents the organization's
    verified number +442079460100; alice may present +442079460002 (added by her reseller, so verified)."""
    new = tree.NewNode(position=client(ClientType.PBX), login="nc-pbx", name="NC PBX")
    tree.create_node(database, owner_login="north-city", new=new)
    organizations.create_user(database, organization="nc-pbx", new=NewUser(login="nc-ann", name="Ann"))
    extension = NewExtension(user="nc-ann", number="101")
    organizations.create_extension(database, organization="nc-pbx", new=extension, sealer=Sealer(Sealer.new_key()))
    lines.add_caller_id(database, login="nc-pbx", number="+442079460100")
    lines.add_caller_id(database, login="nc-pbx", extension="101", number="+442079460100")
    return lines.add_caller_id(database, login="alice", number="+442079460002")


def north_city_cards(database: Database) -> object:
    """north-city's batch "nc-cards": two new cards of 5.00, serials 000000001 and 000000002."""
    terms = BatchTerms(name="nc-cards", count=2, face_value_micros=5_000_000)
    return cards.create_batch(database, owner_login="north-city", terms=terms, pin_key=b"matrix pin key")


def north_city_cards_sold(database: Database) -> object:
    north_city_cards(database)
    return cards.activate(database, owner_login="north-city", selection=cards.Selection(batch="nc-cards"))


def north_city_card_with_a_caller(database: Database) -> object:
    north_city_cards(database)
    return cards.add_caller(database, owner_login="north-city", serial="000000001", number="+12125550123")


def expect(p: int, r_in: int, r_out: int, a: int, c: int, c_out: int, anon: int = 401) -> dict[str, int]:
    return {"P": p, "R_in": r_in, "R_out": r_out, "A": a, "C": c, "C_out": c_out, "anon": anon}


MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/api/v1/nodes"): Row("/api/v1/nodes", None, expect(200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/nodes/{login}"): Row("/api/v1/nodes/alice", None, expect(200, 200, 404, 200, 200, 404)),
    ("POST", "/api/v1/nodes"): Row(
        "/api/v1/nodes",
        {"owner": "north-city", "login": "newbie", "name": "Newbie", "kind": "client", "client_type": "retail"},
        expect(201, 201, 404, 201, 404, 404),
    ),
    ("PUT", "/api/v1/nodes/{login}/status"): Row(
        "/api/v1/nodes/alice/status", {"status": "suspended"}, expect(200, 200, 404, 403, 403, 404)
    ),
    ("PUT", "/api/v1/nodes/{login}/limits"): Row(
        "/api/v1/nodes/alice/limits", {"concurrent_calls_limit": 2}, expect(200, 200, 404, 403, 403, 404)
    ),
    ("PUT", "/api/v1/nodes/{login}/grants"): Row(  # a reseller's grants: north-city itself is the target
        "/api/v1/nodes/north-city/grants",
        {"client_types": ["retail", "wholesale"], "features": ["tariffs"]},
        expect(200, 403, 404, 404, 404, 404),
    ),
    ("GET", "/api/v1/nodes/{login}/balance"): Row(
        "/api/v1/nodes/alice/balance", None, expect(200, 200, 404, 200, 200, 404)
    ),
    ("POST", "/api/v1/nodes/{login}/topups"): Row(
        "/api/v1/nodes/alice/topups", {"id": "m-1", "amount": "1.25"}, expect(200, 200, 404, 200, 403, 404)
    ),
    ("POST", "/api/v1/nodes/{login}/adjustments"): Row(
        "/api/v1/nodes/alice/adjustments",
        {"id": "m-2", "amount": "-0.75", "reason": "double charge"},
        expect(200, 200, 404, 403, 403, 404),
    ),
    ("PUT", "/api/v1/nodes/{login}/credit-limit"): Row(
        "/api/v1/nodes/alice/credit-limit", {"credit_limit": "5"}, expect(200, 200, 404, 403, 403, 404)
    ),
    ("GET", "/api/v1/nodes/{login}/transfers"): Row(
        "/api/v1/nodes/alice/transfers", None, expect(200, 200, 404, 403, 200, 404)
    ),
    # A seller's margin on calls: north-city's, read by itself and its owners; to alice and its agent it is unknown.
    ("GET", "/api/v1/nodes/{login}/margin"): Row(
        "/api/v1/nodes/north-city/margin?since=2026-11-01T00:00:00Z&until=2026-12-01T00:00:00Z",
        None,
        expect(200, 200, 404, 404, 404, 404),
    ),
    ("POST", "/api/v1/sessions"): Row("/api/v1/sessions", None, expect(200, 200, 200, 200, 200, 200)),
    ("DELETE", "/api/v1/sessions/current"): Row("/api/v1/sessions/current", None, expect(204, 204, 204, 204, 204, 204)),
    ("POST", "/api/v1/nodes/{login}/users"): Row(
        "/api/v1/nodes/alice/users",
        {"login": "alice-phone", "password": PASSWORD, "role": "client"},
        expect(201, 201, 404, 403, 201, 404),
    ),
    ("POST", "/api/v1/nodes/{login}/api-keys"): Row(
        "/api/v1/nodes/alice/api-keys", {"name": "softphone", "role": "client"}, expect(201, 201, 404, 403, 201, 404)
    ),
    ("GET", "/api/v1/nodes/{login}/logins"): Row(
        "/api/v1/nodes/alice/logins", None, expect(200, 200, 404, 403, 200, 404)
    ),
    ("DELETE", "/api/v1/api-keys/{key_id}"): Row(
        "/api/v1/api-keys/{alice_key}", None, expect(204, 204, 404, 403, 204, 404)
    ),
    ("GET", "/api/v1/audit"): Row("/api/v1/audit", None, expect(200, 200, 200, 403, 403, 403)),
    ("GET", "/api/v1/exchange-rates"): Row("/api/v1/exchange-rates", None, expect(200, 200, 200, 200, 403, 403)),
    ("POST", "/api/v1/exchange-rates"): Row(
        "/api/v1/exchange-rates",
        {"base_currency": "GBP", "quote_currency": "USD", "rate": "1.27"},
        expect(201, 403, 403, 403, 403, 403),
    ),
    # Rating: north-city's retail tariff, which alice pays at; agent-ana sees alice but not north-city.
    ("GET", "/api/v1/tariffs"): Row("/api/v1/tariffs?owner=north-city", None, expect(200, 200, 404, 404, 404, 404)),
    ("POST", "/api/v1/tariffs"): Row(
        "/api/v1/tariffs", {"owner": "north-city", "name": "promo"}, expect(201, 201, 404, 404, 404, 404)
    ),
    ("GET", "/api/v1/tariffs/{name}"): Row(
        "/api/v1/tariffs/north-city:retail", None, expect(200, 200, 404, 404, 200, 404)
    ),
    ("PATCH", "/api/v1/tariffs/{name}"): Row(
        "/api/v1/tariffs/north-city:retail", {"grace_period": 3}, expect(200, 200, 404, 404, 403, 404)
    ),
    ("DELETE", "/api/v1/tariffs/{name}"): Row(  # alice pays at it: a conflict for those who may delete
        "/api/v1/tariffs/north-city:retail", None, expect(409, 409, 404, 404, 403, 404)
    ),
    ("GET", "/api/v1/tariffs/{name}/rates"): Row(
        "/api/v1/tariffs/north-city:retail/rates", None, expect(200, 200, 404, 404, 200, 404)
    ),
    ("PUT", "/api/v1/tariffs/{name}/rates/{prefix}"): Row(
        "/api/v1/tariffs/north-city:retail/rates/4477", [{"price": "0.05"}], expect(200, 200, 404, 404, 403, 404)
    ),
    ("PUT", "/api/v1/tariffs/{name}/sheet"): Row(
        "/api/v1/tariffs/north-city:retail/sheet",
        None,
        expect(200, 200, 404, 404, 403, 404),
        content="prefix,description,price\n44,United Kingdom,0.03\n",
    ),
    ("GET", "/api/v1/tariffs/{name}/sheet"): Row(
        "/api/v1/tariffs/north-city:retail/sheet", None, expect(200, 200, 404, 404, 200, 404)
    ),
    ("GET", "/api/v1/nodes/{login}/tariff"): Row(
        "/api/v1/nodes/alice/tariff", None, expect(200, 200, 404, 200, 200, 404)
    ),
    ("PUT", "/api/v1/nodes/{login}/tariff"): Row(
        "/api/v1/nodes/alice/tariff", {"tariff": "north-city:retail"}, expect(200, 200, 404, 403, 403, 404)
    ),
    ("PUT", "/api/v1/nodes/{login}/dial-plan"): Row(
        "/api/v1/nodes/alice/dial-plan", {"country_code": "1"}, expect(200, 200, 404, 403, 403, 404)
    ),
    ("POST", "/api/v1/nodes/{login}/quote"): Row(
        "/api/v1/nodes/alice/quote", {"number": "+12125551234"}, expect(200, 200, 404, 200, 200, 404)
    ),
    ("GET", "/api/v1/plans"): Row("/api/v1/plans?owner=north-city", None, expect(200, 200, 404, 404, 404, 404)),
    ("POST", "/api/v1/plans"): Row(
        "/api/v1/plans", {"owner": "north-city", "name": "promo", "fee": "1"}, expect(201, 201, 404, 404, 404, 404)
    ),
    ("PUT", "/api/v1/nodes/{login}/plan"): Row(  # bob: alice has a plan already
        "/api/v1/nodes/bob/plan", {"plan": "north-city:talk-100"}, expect(200, 200, 404, 403, 404, 404)
    ),
    ("GET", "/api/v1/nodes/{login}/plans"): Row(
        "/api/v1/nodes/alice/plans", None, expect(200, 200, 404, 200, 200, 404)
    ),
    # A refusal is an answer (200 "refused"); outside its subtree a switch learns only "account_unknown".
    ("POST", "/api/v1/calls/authorize"): Row(
        "/api/v1/calls/authorize",
        {"call_id": "m2", "account": "alice", "callee": "+44 20 7946 0000"},
        expect(200, 200, 200, 403, 403, 200),
    ),
    # m1 is the provider's call (authorized at the command line): only its tenant controls it, so to
    # north-city, which sees it, "m1" is no call of its own to answer, update or end. Whoever may control
    # no call at all (no calls:control) is refused before any call is looked up.
    ("POST", "/api/v1/calls/{call_id}/answer"): Row(
        "/api/v1/calls/m1/answer", {}, expect(200, 404, 404, 403, 403, 403), setup=call_up
    ),
    ("POST", "/api/v1/calls/{call_id}/update"): Row(
        "/api/v1/calls/m1/update",
        {"sequence": 1, "elapsed_seconds": 30},
        expect(200, 404, 404, 403, 403, 403),
        setup=call_up,
    ),
    ("POST", "/api/v1/calls/{call_id}/end"): Row(
        "/api/v1/calls/m1/end", {"duration_seconds": 30}, expect(200, 404, 404, 403, 403, 403), setup=call_up
    ),
    ("GET", "/api/v1/calls/{call_id}"): Row(
        "/api/v1/calls/m1", None, expect(200, 200, 404, 403, 200, 404), setup=call_up
    ),
    ("GET", "/api/v1/calls"): Row("/api/v1/calls?active=true", None, expect(200, 200, 200, 403, 200, 200)),
    # Call records of one account's subtree: whoever may not see alice is answered as if she did not exist.
    ("GET", "/api/v1/calls.csv"): Row(
        "/api/v1/calls.csv?account=alice&state=ended", None, expect(200, 200, 404, 403, 200, 404)
    ),
    # Agents: the agent reads its terms but does not set them; alice does not even see her agent.
    ("PUT", "/api/v1/agents/{login}/terms"): Row(
        "/api/v1/agents/agent-ana/terms", {"commission_percent": "5"}, expect(200, 200, 404, 403, 404, 404)
    ),
    ("GET", "/api/v1/agents/{login}/terms"): Row(
        "/api/v1/agents/agent-ana/terms", None, expect(200, 200, 404, 200, 404, 404)
    ),
    ("POST", "/api/v1/agents/{login}/deposits"): Row(
        "/api/v1/agents/agent-ana/deposits",
        {"id": "d-1", "client": "alice", "amount": "1"},
        expect(200, 200, 404, 200, 403, 404),
    ),
    ("POST", "/api/v1/agents/{login}/commission/withdrawals"): Row(
        "/api/v1/agents/agent-ana/commission/withdrawals",
        {"id": "w-1"},
        expect(200, 200, 404, 200, 404, 404),
        setup=ana_earned_commission,
    ),
    ("GET", "/api/v1/agents/{login}/commissions"): Row(
        "/api/v1/agents/agent-ana/commissions?since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z",
        None,
        expect(200, 200, 404, 200, 404, 404),
    ),
    ("PUT", "/api/v1/nodes/{login}/profiles/{name}"): Row(
        "/api/v1/nodes/north-city/profiles/basic", {"login_prefix": "nc"}, expect(200, 200, 404, 404, 404, 404)
    ),
    ("GET", "/api/v1/nodes/{login}/profiles"): Row(
        "/api/v1/nodes/north-city/profiles", None, expect(200, 200, 404, 404, 404, 404)
    ),
    ("POST", "/api/v1/nodes/{login}/batches"): Row(
        "/api/v1/nodes/north-city/batches",
        {"id": "b-1", "profile": "basic", "count": 10},
        expect(201, 201, 404, 201, 404, 404),
        setup=basic_profile_for_ana,
    ),
    # Calling cards: north-city's own. Its agent makes cards only from a profile (without one: 422,
    # tests/test_cards_agents.py makes them) and sees only its own batches' cards; it never blocks, sells or
    # changes a card (403, whatever the serial: its reseller does).
    ("POST", "/api/v1/nodes/{login}/card-batches"): Row(
        "/api/v1/nodes/north-city/card-batches",
        {"id": "cb-1", "count": 2, "face_value": "5"},
        expect(201, 201, 404, 422, 404, 404),
    ),
    ("GET", "/api/v1/nodes/{login}/cards/{serial}"): Row(
        "/api/v1/nodes/north-city/cards/000000001", None, expect(200, 200, 404, 404, 404, 404), setup=north_city_cards
    ),
    ("POST", "/api/v1/nodes/{login}/card-ranges/{action}"): Row(
        "/api/v1/nodes/north-city/card-ranges/block",
        {"first": "000000001", "last": "000000002"},
        expect(200, 200, 404, 403, 404, 404),
        setup=north_city_cards,
    ),
    ("POST", "/api/v1/nodes/{login}/cards/{serial}/recharges"): Row(
        "/api/v1/nodes/north-city/cards/000000001/recharges",
        {"id": "cr-1", "amount": "1"},
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_cards_sold,
    ),
    ("PUT", "/api/v1/nodes/{login}/cards/{serial}/callers/{number}"): Row(
        "/api/v1/nodes/north-city/cards/000000001/callers/+12125550123",
        None,
        expect(200, 200, 404, 403, 404, 404),
        setup=north_city_cards,
    ),
    ("DELETE", "/api/v1/nodes/{login}/cards/{serial}/callers/{number}"): Row(
        "/api/v1/nodes/north-city/cards/000000001/callers/+12125550123",
        None,
        expect(200, 200, 404, 403, 404, 404),
        setup=north_city_card_with_a_caller,
    ),
    ("PUT", "/api/v1/nodes/{login}/access-numbers/{number}"): Row(
        "/api/v1/nodes/north-city/access-numbers/+18005550100",
        {"language": "es", "exclusive": True},
        expect(200, 200, 404, 404, 404, 404),
    ),
    ("GET", "/api/v1/nodes/{login}/access-numbers"): Row(
        "/api/v1/nodes/north-city/access-numbers", None, expect(200, 200, 404, 404, 404, 404)
    ),
    # Payments are recorded by owners; an agent deposits from its wallet instead.
    ("POST", "/api/v1/nodes/{login}/payments"): Row(
        "/api/v1/nodes/alice/payments", {"id": "p-1", "amount": "1"}, expect(200, 200, 404, 422, 403, 404)
    ),
    ("POST", "/api/v1/nodes/{login}/refunds"): Row(
        "/api/v1/nodes/alice/refunds",
        {"id": "r-1", "amount": "1", "reason": "unused"},
        expect(200, 200, 404, 403, 403, 404),
    ),
    ("POST", "/api/v1/nodes/{login}/transfers/{transfer_id}/reversal"): Row(
        "/api/v1/nodes/alice/transfers/to-reverse/reversal",
        {"reason": "entered twice"},
        expect(200, 200, 404, 403, 403, 404),
        setup=alice_topped_up,
    ),
    # Low-balance notices: owners set thresholds and branding; a node (or its owners) its address.
    ("GET", "/api/v1/nodes/{login}/notices"): Row(
        "/api/v1/nodes/alice/notices", None, expect(200, 200, 404, 200, 200, 404)
    ),
    ("PUT", "/api/v1/nodes/{login}/notices"): Row(
        "/api/v1/nodes/alice/notices",
        {"threshold": "5"},
        expect(200, 200, 404, 403, 200, 404),  # a customer its own
    ),
    ("GET", "/api/v1/nodes/{login}/emails"): Row(
        "/api/v1/nodes/alice/emails", None, expect(200, 200, 404, 200, 200, 404)
    ),
    # The shop: a seller's admins (and those above) manage it; a payer pays only for itself (SELF: 403 above).
    ("GET", "/api/v1/nodes/{login}/gateways"): Row(
        "/api/v1/nodes/north-city/gateways", None, expect(200, 200, 404, 404, 404, 404), setup=north_city_shop
    ),
    ("PUT", "/api/v1/nodes/{login}/gateways/stripe"): Row(
        "/api/v1/nodes/north-city/gateways/stripe",
        {"secret_key": "sk_test_another0123456789", "webhook_secret": "whsec_another0123456789"},
        expect(200, 200, 404, 404, 404, 404),
    ),
    ("PUT", "/api/v1/nodes/{login}/gateways/bank-transfer"): Row(
        "/api/v1/nodes/north-city/gateways/bank-transfer", BANK_DETAILS, expect(200, 200, 404, 404, 404, 404)
    ),
    ("PUT", "/api/v1/nodes/{login}/shop/topups/{currency}"): Row(
        "/api/v1/nodes/north-city/shop/topups/USD", {"amounts": ["10", "20"]}, expect(200, 200, 404, 404, 404, 404)
    ),
    ("GET", "/api/v1/nodes/{login}/shop"): Row(
        "/api/v1/nodes/alice/shop", None, expect(200, 200, 404, 200, 200, 404), setup=north_city_shop
    ),
    ("POST", "/api/v1/nodes/{login}/shop/payments"): Row(
        "/api/v1/nodes/alice/shop/payments",
        {"id": "m-pay", "gateway": "bank_transfer", "amount": "10", "reference": "ALICE"},
        expect(403, 403, 404, 403, 200, 404),
        setup=north_city_shop,
    ),
    ("GET", "/api/v1/nodes/{login}/shop/payments"): Row(
        "/api/v1/nodes/alice/shop/payments", None, expect(200, 200, 404, 200, 200, 404)
    ),
    ("GET", "/api/v1/nodes/{login}/sales"): Row(
        "/api/v1/nodes/north-city/sales", None, expect(200, 200, 404, 404, 404, 404)
    ),
    ("GET", "/api/v1/payments/{payment_id}"): Row(
        "/api/v1/payments/1", None, expect(200, 200, 404, 200, 200, 404), setup=alice_declared_a_transfer
    ),
    ("POST", "/api/v1/payments/{payment_id}/confirmation"): Row(
        "/api/v1/payments/1/confirmation", {}, expect(200, 200, 404, 404, 404, 404), setup=alice_declared_a_transfer
    ),
    ("POST", "/api/v1/payments/{payment_id}/rejection"): Row(
        "/api/v1/payments/1/rejection",
        {"note": "never arrived"},
        expect(200, 200, 404, 404, 404, 404),
        setup=alice_declared_a_transfer,
    ),
    ("POST", "/api/v1/payments/{payment_id}/refunds"): Row(
        "/api/v1/payments/1/refunds",
        {"id": "m-refund", "amount": "1", "reason": "asked"},
        expect(200, 200, 404, 404, 404, 404),
        setup=alice_paid_by_transfer,
    ),
    ("PUT", "/api/v1/nodes/{login}/billing-profile"): Row(
        "/api/v1/nodes/north-city/billing-profile",
        {"legal_name": "North City VoIP LLC", "tax_rate_percent": "20"},
        expect(200, 200, 404, 404, 404, 404),
    ),
    ("GET", "/api/v1/nodes/{login}/billing-profile"): Row(
        "/api/v1/nodes/north-city/billing-profile", None, expect(200, 200, 404, 404, 404, 404)
    ),
    ("GET", "/api/v1/payments/{payment_id}/receipt"): Row(
        "/api/v1/payments/1/receipt", None, expect(200, 200, 404, 200, 200, 404), setup=alice_paid_by_transfer
    ),
    ("GET", "/api/v1/payments/{payment_id}/receipt/pdf"): Row(
        "/api/v1/payments/1/receipt/pdf", None, expect(200, 200, 404, 200, 200, 404), setup=alice_paid_by_transfer
    ),
    ("POST", "/api/v1/nodes/{login}/invoices"): Row(
        "/api/v1/nodes/north-city/invoices", {"month": "2000-01"}, expect(200, 200, 404, 404, 404, 404)
    ),
    ("GET", "/api/v1/nodes/{login}/invoices"): Row(
        "/api/v1/nodes/alice/invoices", None, expect(200, 200, 404, 200, 200, 404)
    ),
    ("GET", "/api/v1/invoices/{invoice_id}"): Row(
        "/api/v1/invoices/1", None, expect(200, 200, 404, 200, 200, 404), setup=alice_invoiced
    ),
    ("GET", "/api/v1/invoices/{invoice_id}/pdf"): Row(
        "/api/v1/invoices/1/pdf", None, expect(200, 200, 404, 200, 200, 404), setup=alice_invoiced
    ),
    ("GET", "/api/v1/nodes/{login}/sales.csv"): Row(
        "/api/v1/nodes/north-city/sales.csv", None, expect(200, 200, 404, 404, 404, 404)
    ),
    # Stripe's webhook takes no credentials, only its signature: the same answer for everyone without one.
    ("POST", "/api/v1/payments/stripe/{gateway_id}/webhook"): Row(
        "/api/v1/payments/stripe/2/webhook",
        {"id": "evt_1"},
        expect(400, 400, 400, 400, 400, 400, anon=400),
        setup=north_city_shop,
    ),
    # Organizations: nc-pbx, north-city's; agents and clients see none of it. The one rule decides, so an
    # organization's own admin (not an actor here) is in tests/test_organizations_http.py.
    ("GET", "/api/v1/organizations/{login}"): Row(
        "/api/v1/organizations/nc-pbx", None, expect(200, 200, 404, 404, 404, 404), setup=north_city_organization
    ),
    ("PUT", "/api/v1/organizations/{login}"): Row(
        "/api/v1/organizations/nc-pbx",
        {"wallet": "organization"},
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("PUT", "/api/v1/nodes/{login}/organization-limits"): Row(
        "/api/v1/nodes/nc-pbx/organization-limits",
        {"users_limit": 5},
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("GET", "/api/v1/organizations/{login}/users"): Row(
        "/api/v1/organizations/nc-pbx/users", None, expect(200, 200, 404, 404, 404, 404), setup=north_city_organization
    ),
    ("POST", "/api/v1/organizations/{login}/users"): Row(
        "/api/v1/organizations/nc-pbx/users",
        {"login": "nc-bo", "name": "Bo"},
        expect(201, 201, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("GET", "/api/v1/organizations/{login}/users/{user}"): Row(
        "/api/v1/organizations/nc-pbx/users/nc-ann",
        None,
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("PATCH", "/api/v1/organizations/{login}/users/{user}"): Row(
        "/api/v1/organizations/nc-pbx/users/nc-ann",
        {"name": "Ann B"},
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("GET", "/api/v1/organizations/{login}/extensions"): Row(
        "/api/v1/organizations/nc-pbx/extensions",
        None,
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("POST", "/api/v1/organizations/{login}/extensions"): Row(
        "/api/v1/organizations/nc-pbx/extensions",
        {"user": "nc-ann", "number": "102"},
        expect(201, 201, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("GET", "/api/v1/organizations/{login}/extensions/{number}"): Row(
        "/api/v1/organizations/nc-pbx/extensions/101",
        None,
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("PATCH", "/api/v1/organizations/{login}/extensions/{number}"): Row(
        "/api/v1/organizations/nc-pbx/extensions/101",
        {"voicemail": True},
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("DELETE", "/api/v1/organizations/{login}/extensions/{number}"): Row(
        "/api/v1/organizations/nc-pbx/extensions/101",
        None,
        expect(204, 204, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("POST", "/api/v1/organizations/{login}/extensions/{number}/secret"): Row(
        "/api/v1/organizations/nc-pbx/extensions/101/secret",
        None,
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("POST", "/api/v1/organizations/{login}/imports"): Row(
        "/api/v1/organizations/nc-pbx/imports",
        None,
        expect(201, 201, 404, 404, 404, 404),
        content="login,name,extension\nnc-bo,Bo,102\n",
        setup=north_city_organization,
    ),
    # Lines: alice's (agent-ana sees it, changes nothing), and extension 101 of nc-pbx.
    ("GET", "/api/v1/lines/{login}"): Row("/api/v1/lines/alice", None, expect(200, 200, 404, 200, 200, 404)),
    ("POST", "/api/v1/lines/{login}/caller-ids"): Row(
        "/api/v1/lines/alice/caller-ids", {"number": "+442079460001"}, expect(201, 201, 404, 403, 201, 404)
    ),
    ("PUT", "/api/v1/lines/{login}/caller-ids/{number}/verified"): Row(  # an owner's action
        "/api/v1/lines/alice/caller-ids/+442079460002/verified",
        None,
        expect(200, 200, 404, 403, 403, 404),
        setup=north_city_organization,
    ),
    ("PUT", "/api/v1/lines/{login}/caller-ids/{number}/default"): Row(
        "/api/v1/lines/alice/caller-ids/+442079460002/default",
        None,
        expect(200, 200, 404, 403, 200, 404),
        setup=north_city_organization,
    ),
    ("DELETE", "/api/v1/lines/{login}/caller-ids/{number}"): Row(
        "/api/v1/lines/alice/caller-ids/+442079460002",
        None,
        expect(200, 200, 404, 403, 200, 404),
        setup=north_city_organization,
    ),
    ("PUT", "/api/v1/lines/{login}/follow-me"): Row(
        "/api/v1/lines/alice/follow-me",
        {"entries": [{"number": "+447700900123", "ring_seconds": 20}]},
        expect(200, 200, 404, 403, 200, 404),
    ),
    ("GET", "/api/v1/lines/{login}/extensions/{extension}"): Row(
        "/api/v1/lines/nc-pbx/extensions/101", None, expect(200, 200, 404, 404, 404, 404), setup=north_city_organization
    ),
    ("POST", "/api/v1/lines/{login}/extensions/{extension}/caller-ids"): Row(
        "/api/v1/lines/nc-pbx/extensions/101/caller-ids",
        {"number": "+442079460100"},
        expect(409, 409, 404, 404, 404, 404),  # it has that one already: the owners see why
        setup=north_city_organization,
    ),
    ("PUT", "/api/v1/lines/{login}/extensions/{extension}/caller-ids/{number}/default"): Row(
        "/api/v1/lines/nc-pbx/extensions/101/caller-ids/+442079460100/default",
        None,
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("DELETE", "/api/v1/lines/{login}/extensions/{extension}/caller-ids/{number}"): Row(
        "/api/v1/lines/nc-pbx/extensions/101/caller-ids/+442079460100",
        None,
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    ("PUT", "/api/v1/lines/{login}/extensions/{extension}/follow-me"): Row(
        "/api/v1/lines/nc-pbx/extensions/101/follow-me",
        {"entries": [{"number": "+447700900123", "ring_seconds": 20}]},
        expect(200, 200, 404, 404, 404, 404),
        setup=north_city_organization,
    ),
    # Wholesale trunks by address: trunk-one, north-city's wholesale client (not one agent-ana manages).
    ("GET", "/api/v1/nodes/{login}/trunk-networks"): Row(
        "/api/v1/nodes/trunk-one/trunk-networks", None, expect(200, 200, 404, 404, 404, 404)
    ),
    ("PUT", "/api/v1/nodes/{login}/trunk-networks"): Row(
        "/api/v1/nodes/trunk-one/trunk-networks",
        {"networks": ["198.51.100.0/24"]},
        expect(200, 200, 404, 404, 404, 404),
    ),
    ("POST", "/api/v1/sip/trunk"): Row(
        "/api/v1/sip/trunk", {"address": "198.51.100.7"}, expect(200, 200, 200, 403, 403, 403)
    ),
    # The SIP lookup is for switches (calls:control); an admin key holds it too. Outside its subtree: unknown.
    ("POST", "/api/v1/sip/lookup"): Row(
        "/api/v1/sip/lookup",
        {"domain": "nc-pbx", "username": "101"},
        expect(200, 200, 200, 403, 403, 403),
        setup=north_city_organization,
    ),
    # Account editing: owners, the agent of a client and the client itself edit its details.
    ("PATCH", "/api/v1/nodes/{login}"): Row(
        "/api/v1/nodes/alice", {"phone": "+12125550100"}, expect(200, 200, 404, 200, 200, 404)
    ),
    # A password is changed by its own user only (a key is nobody's user): 403 for whoever sees alice.
    ("PUT", "/api/v1/users/{login}/password"): Row(
        "/api/v1/users/alice-web/password",
        {"current_password": PASSWORD, "new_password": "a new long password"},
        expect(403, 403, 404, 403, 403, 404),
        setup=alice_has_a_login,
    ),
    # Reset by an owner strictly above the user's node: alice may not reset her own node's logins.
    ("POST", "/api/v1/users/{login}/password-reset"): Row(
        "/api/v1/users/alice-web/password-reset", None, expect(200, 200, 404, 403, 403, 404), setup=alice_has_a_login
    ),
}

PUBLIC = {("GET", "/health"), ("GET", "/ready")}


def routes() -> set[tuple[str, str]]:
    """Every operation the application publishes in its OpenAPI schema."""
    paths = create_app(Database("sqlite://")).openapi()["paths"]
    return {(method.upper(), path) for path, operations in paths.items() for method in operations}


def test_every_route_is_in_the_matrix() -> None:
    assert routes() == set(MATRIX) | PUBLIC


CASES = [(key, actor) for key in MATRIX for actor in (*ACTORS, "anon")]


APPS: dict[str, FastAPI] = {}


def serving(database: Database) -> TestClient:
    """One application per backend for the whole matrix, pointed at each case's database.

    FastAPI builds an included router's routes on an application's first requests (1-3 s each here), which
    made a new application per case the matrix's largest cost; the routes read the database from the
    application's state, so it is set per case.
    """
    backend = "sqlite" if database.is_sqlite else "postgresql"
    app = APPS.get(backend)
    if app is None:
        app = APPS[backend] = create_app(database, payment_settings=MATRIX_PAYMENTS)
    app.state.database = database
    return TestClient(app, base_url="https://testserver")


@pytest.mark.parametrize(("route", "actor"), CASES, ids=[f"{m} {p} as {a}" for (m, p), a in CASES])
def test_the_answer_for_each_caller(demo_database: Database, route: tuple[str, str], actor: str) -> None:
    database = demo_database
    method, _ = route
    row = MATRIX[route]
    if row.setup is not None:
        row.setup(database)
    client = serving(database)
    alice_key, _ = access.create_api_key(database, None, node_login="alice", name="alice's app", role=Role.CLIENT)
    headers: dict[str, str] = {}
    body = row.body
    if actor != "anon":
        node_login, role = ACTORS[actor]
        if route == ("POST", "/api/v1/sessions"):  # argon2 is slow on purpose: hash only where a login is used
            access.create_user(
                database, None, node_login=node_login, login=f"{actor.lower()}-user", password=PASSWORD, role=role
            )
        _, plaintext = access.create_api_key(database, None, node_login=node_login, name="matrix", role=role)
        headers["Authorization"] = f"Bearer {plaintext}"
    if route == ("POST", "/api/v1/sessions"):
        headers = {}
        body = {"login": f"{actor.lower()}-user", "password": PASSWORD if actor != "anon" else "wrong password"}
    path = row.path.format(alice_key=alice_key.key_id)
    if row.content is not None:
        response = client.request(method, path, content=row.content, headers=headers | {"content-type": "text/csv"})
    else:
        response = client.request(method, path, json=body, headers=headers)
    expected = row.expected[actor]
    assert response.status_code == expected, response.text
    if expected >= 400:
        assert "reason" in response.json()
    if expected == 404:  # nothing about the target leaks into a "not found"
        assert "Alice" not in response.text and "25.0" not in response.text


def listing_logins(database: Database, actor: str) -> set[str]:
    node_login, role = ACTORS[actor]
    _, plaintext = access.create_api_key(database, None, node_login=node_login, name="list", role=role)
    client = TestClient(create_app(database), base_url="https://testserver")
    page = client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {plaintext}"}, params={"limit": 500})
    return {item["login"] for item in page.json()["items"]}


def test_each_caller_lists_exactly_what_it_may_see(database: Database) -> None:
    load_demo(database)
    see: Callable[[str], set[str]] = lambda actor: listing_logins(database, actor)  # noqa: E731
    assert see("R_in") == {"north-city", "agent-ana", "alice", "bob", "trunk-one", "card-batch-1", "corner-shop"}
    assert see("R_out") == {"north-metro", "carol"}
    assert see("A") == {"agent-ana", "alice", "bob"}
    assert see("C") == {"alice"}
    assert len(see("P")) == 23  # the provider and the 22 demo nodes


def test_an_agent_sees_its_clients_in_the_limited_view(database: Database) -> None:
    load_demo(database)
    _, plaintext = access.create_api_key(database, None, node_login="agent-ana", name="ana", role=Role.AGENT)
    client = TestClient(create_app(database), base_url="https://testserver")
    alice = client.get("/api/v1/nodes/alice", headers={"Authorization": f"Bearer {plaintext}"}).json()
    assert alice["limited_view"] is True
    assert alice["clients_limit"] is None and alice["managed_by_agent_id"] is None
