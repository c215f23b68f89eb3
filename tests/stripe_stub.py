"""A local stand-in for Stripe's API (the network is closed), and Stripe's webhook signing scheme.

The stub is a real HTTP server on loopback that the official SDK talks to through its configurable base
address. It answers the two calls Tollway makes, as Stripe's API does (https://docs.stripe.com/api):
``POST /v1/checkout/sessions`` (form-encoded, nested keys like ``line_items[0][price_data][unit_amount]``)
answers a Checkout Session object, and ``POST /v1/refunds`` a Refund object; a bad key answers 401 with an
``authentication_error``, a refund larger than what is left answers 400 with an ``invalid_request_error``,
as Stripe does. A repeated ``Idempotency-Key`` answers the first response again. Each secret key is one
account: a session made with one key is unknown to another.

Webhooks are built here the way Stripe sends them: an ``event`` object whose ``data.object`` is a Checkout
Session or a Charge, signed ``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``,
computed with ``hmac`` directly (not with the SDK that Tollway verifies with).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

API_VERSION = "2025-09-30.clover"


def stripe_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_urlsafe(30).replace('-', 'a').replace('_', 'b')}"


def nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][0][c]=v`` form keys, as the SDK encodes them, back into nested dictionaries and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            following = None if last else parts[index + 1]
            empty: Any = [] if following is not None and following.isdigit() else {}
            if isinstance(node, list):
                position = int(part)
                while len(node) <= position:
                    node.append(None)
                if last:
                    node[position] = value
                else:
                    node[position] = node[position] if node[position] is not None else empty
                    node = node[position]
            elif last:
                node[part] = value
            else:
                node = node.setdefault(part, empty)
    return root


@dataclass
class Account:
    """One Stripe account (one seller), known by its secret key."""

    name: str
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)  # by payment intent
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)


class StripeStub:
    def __init__(self, keys: dict[str, str]) -> None:
        self.accounts = {key: Account(name) for key, name in keys.items()}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                status, answer = stub.handle(
                    self.path, self.headers.get("Authorization", ""), self.headers.get("Idempotency-Key"), body
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", stripe_id("req"))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def handle(self, path: str, authorization: str, idempotency_key: str | None, body: str) -> tuple[int, Any]:
        key = authorization.removeprefix("Bearer ").strip()
        account = self.accounts.get(key)
        if account is None:
            return 401, {
                "error": {
                    "type": "authentication_error",
                    "message": f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}",
                }
            }
        params = nested(parse_qsl(body, keep_blank_values=True))
        with self.lock:
            account.requests.append((path, params, idempotency_key))
            if idempotency_key and idempotency_key in account.idempotent:
                return account.idempotent[idempotency_key]
            if path == "/v1/checkout/sessions":
                answer = (200, self._session(account, params))
            elif path == "/v1/refunds":
                answer = self._refund(account, params)
            else:
                answer = (404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}})
            if idempotency_key:
                account.idempotent[idempotency_key] = answer
            return answer

    def _session(self, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        item = params["line_items"][0]
        amount = int(item["price_data"]["unit_amount"]) * int(item.get("quantity", "1"))
        session_id = stripe_id("cs")
        now = int(time.time())
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": item["price_data"]["currency"],
            "customer": None,
            "expires_at": now + 24 * 3600,
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "mode": params["mode"],
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params.get("success_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        account.sessions[session_id] = session
        return session

    def _refund(self, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        charge = account.charges.get(params.get("payment_intent", ""))
        if charge is None:
            message = f"No such payment_intent: '{params.get('payment_intent')}'"
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": message}}
        amount = int(params.get("amount", charge["amount"] - charge["amount_refunded"]))
        left = charge["amount"] - charge["amount_refunded"]
        if amount > left:
            message = f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
            return 400, {"error": {"type": "invalid_request_error", "message": message, "param": "amount"}}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund = {
            "id": stripe_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "payment_intent": charge["payment_intent"],
            "status": "succeeded",
        }
        return 200, refund

    # --- what happens at Stripe outside the API: the customer pays, the seller refunds on the dashboard ----

    def pay(self, key: str, session_id: str) -> dict[str, Any]:
        """The customer pays the session: it completes, paid, with a payment intent and its charge."""
        account = self.accounts[key]
        with self.lock:
            session = account.sessions[session_id]
            intent = stripe_id("pi")
            session.update(payment_intent=intent, payment_status="paid", status="complete", url=None)
            account.charges[intent] = {
                "id": stripe_id("ch"),
                "object": "charge",
                "amount": session["amount_total"],
                "amount_captured": session["amount_total"],
                "amount_refunded": 0,
                "captured": True,
                "currency": session["currency"],
                "paid": True,
                "payment_intent": intent,
                "refunded": False,
                "status": "succeeded",
            }
            return dict(session)

    def refund_on_dashboard(self, key: str, payment_intent: str, amount: int) -> dict[str, Any]:
        """The seller refunds at Stripe directly: the charge as ``charge.refunded`` then carries it."""
        account = self.accounts[key]
        with self.lock:
            charge = account.charges[payment_intent]
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            return dict(charge)

    def charge(self, key: str, payment_intent: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.accounts[key].charges[payment_intent])


@contextmanager
def running(keys: dict[str, str]) -> Iterator[StripeStub]:
    stub = StripeStub(keys)
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()
        thread.join(timeout=5)


def event(event_type: str, data_object: dict[str, Any], *, event_id: str | None = None) -> bytes:
    """A webhook body as Stripe sends it."""
    body = {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": {"object": data_object},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(body).encode()


def signature(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``body``: ``t=…,v1=HMAC-SHA256(secret, "t.body")``."""
    at = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"
