"""The shop's test world on the demo data: north-city and north-metro each with their own Stripe account (a
local stub of Stripe's API), top-ups in USD, and API clients for the people who use the shop.

alice (25.00 USD) and bob (10.00 USD) are north-city's retail clients, managed by agent-ana (10 %
commission); carol is north-metro's.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.stripe_stub import StripeStub, event, signature
from tollway.access import service as access
from tollway.access.model import Role
from tollway.balances import service as balances
from tollway.http.app import create_app
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose
from tollway.money import to_decimal, to_micros
from tollway.payments import service as shop
from tollway.payments.model import TopupOffer
from tollway.payments.reconcile import reconcile
from tollway.payments.service import PaymentSettings
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.tree import store as tree_store

SEALING_KEY = base64.urlsafe_b64encode(b"tollway shop tests: sealing key.").decode()  # fixed: every process
CITY_KEY = "sk_test_51CityAbcdefghijklmnopqrstuvwxyz0123"
CITY_HOOK = "whsec_city0123456789abcdefghijklmnopqrstu"
METRO_KEY = "sk_test_51MetroAbcdefghijklmnopqrstuvwxyz987"
METRO_HOOK = "whsec_metro0123456789abcdefghijklmnopqrs"
STUB_KEYS = {CITY_KEY: "north-city", METRO_KEY: "north-metro"}


def payment_settings(stripe_api_base: str) -> PaymentSettings:
    return PaymentSettings(Sealer(SEALING_KEY), public_url="https://portal.example", stripe_api_base=stripe_api_base)


@dataclass
class ShopWorld:
    database: Database
    stub: StripeStub
    settings: PaymentSettings
    client: TestClient
    city_gateway: int
    metro_gateway: int
    keys: dict[str, str]  # login -> API key

    def as_(self, login: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[login]}"}

    def start(self, login: str, request_id: str, amount: str, **extra: Any) -> httpx.Response:
        body = {"id": request_id, "gateway": "stripe", "amount": amount, **extra}
        return self.client.post(f"/api/v1/nodes/{login}/shop/payments", json=body, headers=self.as_(login))

    def deliver(
        self, gateway: int, body: bytes, secret: str, *, timestamp: int | None = None, header: str | None = None
    ) -> httpx.Response:
        headers = {"Stripe-Signature": header or signature(body, secret, timestamp=timestamp)}
        return self.client.post(
            f"/api/v1/payments/stripe/{gateway}/webhook",
            content=body,
            headers=headers | {"Content-Type": "application/json"},
        )

    def paid_event(self, session_id: str, key: str = CITY_KEY, **changes: Any) -> bytes:
        session = self.stub.pay(key, session_id) | changes
        return event("checkout.session.completed", session)

    def balance(self, login: str) -> Decimal:
        return to_decimal(balances.get_balance(self.database, login=login).balance_micros)

    def account(self, login: str, purpose: AccountPurpose, currency: str = "USD") -> Decimal:
        """The balance (credits - debits) of one of a node's ledger accounts."""
        with self.database.reading() as connection:
            node = tree_store.find_node(connection, login)
            assert node is not None
            found = ledger_store.find_account_id(connection, node_id=node.id, purpose=purpose, currency=currency)
            if found is None:
                return Decimal("0.000000")
            account = ledger_store.get_account(connection, found)
            assert account is not None
            return to_decimal(account.balance_micros)


def build(database: Database, stub: StripeStub) -> ShopWorld:
    settings = payment_settings(stub.url)
    city = shop.configure_stripe(
        database, settings, seller_login="north-city", secret_key=CITY_KEY, webhook_secret=CITY_HOOK
    )
    metro = shop.configure_stripe(
        database, settings, seller_login="north-metro", secret_key=METRO_KEY, webhook_secret=METRO_HOOK
    )
    offer = TopupOffer("USD", (to_micros("10"), to_micros("20"), to_micros("50")), to_micros("5"), to_micros("500"))
    for seller in ("north-city", "north-metro"):
        shop.put_topup_offer(database, seller_login=seller, offer=offer)
    roles = {
        "alice": Role.CLIENT,
        "bob": Role.CLIENT,
        "carol": Role.CLIENT,
        "agent-ana": Role.AGENT,
        "north-city": Role.RESELLER_ADMIN,
        "north-metro": Role.RESELLER_ADMIN,
    }
    keys = {}
    for login, role in roles.items():
        _, plaintext = access.create_api_key(database, None, node_login=login, name="shop test", role=role)
        keys[login] = plaintext
    client = TestClient(create_app(database, payment_settings=settings), base_url="https://testserver")
    return ShopWorld(database, stub, settings, client, city.id, metro.id, keys)


def assert_reconciled(database: Database) -> None:
    """Every credited payment has exactly its credit, and no shop credit is without its payment."""
    report = reconcile(database)
    assert report.ok, "the shop does not reconcile with the ledger:\n" + "\n".join(report.problems)
