"""Persistence of gateways, shop offers, payments, their history and refunds. No rules here."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, union, update
from sqlalchemy.dialects import postgresql, sqlite

from tollway.payments.model import (
    BillingProfile,
    GatewayConfig,
    GatewayKind,
    Invoice,
    Payment,
    PaymentEvent,
    PaymentState,
    ProductKind,
    Refund,
    RefundOrigin,
    RefundState,
    TopupOffer,
)
from tollway.store.schema import (
    billing_profiles,
    gateway_events,
    invoices,
    nodes,
    payment_events,
    payment_gateways,
    payment_refunds,
    payments,
    plans,
    shop_topups,
)


def _gateway(row: Row[Any]) -> GatewayConfig:
    return GatewayConfig(
        id=row.id,
        node_id=row.node_id,
        kind=GatewayKind(row.kind),
        enabled=row.enabled,
        details=json.loads(row.details),
        secret_key_sealed=row.secret_key_sealed,
        secret_key_hint=row.secret_key_hint,
        webhook_secret_sealed=row.webhook_secret_sealed,
        webhook_secret_hint=row.webhook_secret_hint,
    )


def get_gateway(connection: Connection, gateway_id: int) -> GatewayConfig | None:
    row = connection.execute(select(payment_gateways).where(payment_gateways.c.id == gateway_id)).first()
    return None if row is None else _gateway(row)


def find_gateway(connection: Connection, node_id: int, kind: GatewayKind) -> GatewayConfig | None:
    row = connection.execute(
        select(payment_gateways).where(payment_gateways.c.node_id == node_id, payment_gateways.c.kind == str(kind))
    ).first()
    return None if row is None else _gateway(row)


def gateways_of(connection: Connection, node_id: int) -> list[GatewayConfig]:
    rows = connection.execute(
        select(payment_gateways).where(payment_gateways.c.node_id == node_id).order_by(payment_gateways.c.kind)
    )
    return [_gateway(row) for row in rows]


def put_gateway(connection: Connection, config: GatewayConfig, *, now: datetime) -> int:
    """Insert or replace the node's gateway of this kind; its id stays (the webhook URL names it)."""
    values = {
        "enabled": config.enabled,
        "details": json.dumps(config.details, sort_keys=True),
        "secret_key_sealed": config.secret_key_sealed,
        "secret_key_hint": config.secret_key_hint,
        "webhook_secret_sealed": config.webhook_secret_sealed,
        "webhook_secret_hint": config.webhook_secret_hint,
        "updated_at": now,
    }
    found = find_gateway(connection, config.node_id, config.kind)
    if found is not None:
        connection.execute(update(payment_gateways).where(payment_gateways.c.id == found.id).values(**values))
        return found.id
    result = connection.execute(
        insert(payment_gateways).values(node_id=config.node_id, kind=str(config.kind), created_at=now, **values)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def get_offer(connection: Connection, node_id: int, currency: str) -> TopupOffer | None:
    row = connection.execute(
        select(shop_topups).where(shop_topups.c.node_id == node_id, shop_topups.c.currency == currency)
    ).first()
    if row is None:
        return None
    amounts = tuple(int(part) for part in row.amounts.split())
    return TopupOffer(row.currency, amounts, row.free_min_micros, row.free_max_micros)


def offers_of(connection: Connection, node_id: int) -> list[TopupOffer]:
    rows = connection.execute(
        select(shop_topups.c.currency).where(shop_topups.c.node_id == node_id).order_by(shop_topups.c.currency)
    )
    return [offer for row in rows if (offer := get_offer(connection, node_id, row.currency)) is not None]


def put_offer(connection: Connection, node_id: int, offer: TopupOffer, *, now: datetime) -> None:
    values = {
        "amounts": " ".join(str(amount) for amount in offer.amounts_micros),
        "free_min_micros": offer.free_min_micros,
        "free_max_micros": offer.free_max_micros,
        "updated_at": now,
    }
    changed = connection.execute(
        update(shop_topups)
        .where(shop_topups.c.node_id == node_id, shop_topups.c.currency == offer.currency)
        .values(**values)
    )
    if not changed.rowcount:
        connection.execute(insert(shop_topups).values(node_id=node_id, currency=offer.currency, **values))


_PAYMENT_COLUMNS = (*payments.c, payment_gateways.c.kind.label("gateway_kind"))


def _payment(row: Row[Any]) -> Payment:
    return Payment(
        id=row.id,
        node_id=row.node_id,
        gateway_id=row.gateway_id,
        gateway_kind=GatewayKind(row.gateway_kind),
        request_id=row.request_id,
        product=ProductKind(row.product),
        plan_id=row.plan_id,
        amount_micros=row.amount_micros,
        currency=row.currency,
        state=PaymentState(row.state),
        external_id=row.external_id,
        external_payment_id=row.external_payment_id,
        checkout_url=row.checkout_url,
        payer_reference=row.payer_reference,
        transfer_id=row.transfer_id,
        refunded_micros=row.refunded_micros,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        confirmed_at=row.confirmed_at,
    )


def _payment_query(*conditions: Any, lock: bool = False) -> Any:
    query = (
        select(*_PAYMENT_COLUMNS)
        .join(payment_gateways, payment_gateways.c.id == payments.c.gateway_id)
        .where(*conditions)
    )
    return query.with_for_update(of=payments) if lock else query


def _one_payment(connection: Connection, *conditions: Any, lock: bool = False) -> Payment | None:
    row = connection.execute(_payment_query(*conditions, lock=lock)).first()
    return None if row is None else _payment(row)


def get_payment(connection: Connection, payment_id: int, *, lock: bool = False) -> Payment | None:
    return _one_payment(connection, payments.c.id == payment_id, lock=lock)


def find_payment_by_request(connection: Connection, node_id: int, request_id: str) -> Payment | None:
    return _one_payment(connection, payments.c.node_id == node_id, payments.c.request_id == request_id)


def find_payment_by_external(
    connection: Connection, gateway_id: int, external_id: str, *, lock: bool = False
) -> Payment | None:
    return _one_payment(
        connection, payments.c.gateway_id == gateway_id, payments.c.external_id == external_id, lock=lock
    )


def find_payment_by_external_payment(
    connection: Connection, gateway_id: int, external_payment_id: str, *, lock: bool = False
) -> Payment | None:
    return _one_payment(
        connection,
        payments.c.gateway_id == gateway_id,
        payments.c.external_payment_id == external_payment_id,
        lock=lock,
    )


def insert_payment(
    connection: Connection,
    *,
    node_id: int,
    gateway_id: int,
    request_id: str,
    product: ProductKind,
    plan_id: int | None,
    amount_micros: int,
    currency: str,
    payer_reference: str | None,
    now: datetime,
) -> int:
    result = connection.execute(
        insert(payments).values(
            node_id=node_id,
            gateway_id=gateway_id,
            request_id=request_id,
            product=str(product),
            plan_id=plan_id,
            amount_micros=amount_micros,
            currency=currency,
            state=str(PaymentState.CREATED),
            payer_reference=payer_reference,
            refunded_micros=0,
            created_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_payment(connection: Connection, payment_id: int, *, now: datetime, **values: Any) -> None:
    if "state" in values:
        values["state"] = str(values["state"])
    connection.execute(update(payments).where(payments.c.id == payment_id).values(updated_at=now, **values))


def insert_event(
    connection: Connection,
    *,
    payment_id: int,
    at: datetime,
    from_state: PaymentState | None,
    to_state: PaymentState,
    actor: str,
    gateway_event_id: str | None = None,
    detail: str | None = None,
) -> None:
    connection.execute(
        insert(payment_events).values(
            payment_id=payment_id,
            at=at,
            from_state=None if from_state is None else str(from_state),
            to_state=str(to_state),
            actor=actor,
            gateway_event_id=gateway_event_id,
            detail=None if detail is None else detail[:400],
        )
    )


def events_of(connection: Connection, payment_id: int) -> list[PaymentEvent]:
    rows = connection.execute(
        select(payment_events).where(payment_events.c.payment_id == payment_id).order_by(payment_events.c.id)
    )
    return [
        PaymentEvent(row.at, row.from_state, row.to_state, row.actor, row.detail, row.gateway_event_id) for row in rows
    ]


def record_gateway_event(
    connection: Connection,
    *,
    gateway_id: int,
    event_id: str,
    event_type: str,
    outcome: str,
    payment_id: int | None,
    now: datetime,
) -> bool:
    """Record a webhook event once; False when it was recorded before (by this process or another)."""
    values = {
        "gateway_id": gateway_id,
        "event_id": event_id,
        "type": event_type[:64],
        "outcome": outcome[:64],
        "payment_id": payment_id,
        "received_at": now,
    }
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(gateway_events)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[gateway_events.c.gateway_id, gateway_events.c.event_id])
        .returning(gateway_events.c.event_id)
    )
    return connection.execute(statement).first() is not None  # a row back: this insert made it


def gateway_event_outcome(connection: Connection, gateway_id: int, event_id: str) -> str | None:
    return connection.execute(
        select(gateway_events.c.outcome).where(
            gateway_events.c.gateway_id == gateway_id, gateway_events.c.event_id == event_id
        )
    ).scalar_one_or_none()


def list_payments(
    connection: Connection,
    *,
    node_id: int | None = None,
    seller_id: int | None = None,
    state: PaymentState | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int,
    before_id: int | None = None,
) -> list[Payment]:
    """Payments of one payer or to one seller, newest first."""
    conditions: list[Any] = []
    if node_id is not None:
        conditions.append(payments.c.node_id == node_id)
    if seller_id is not None:
        conditions.append(payment_gateways.c.node_id == seller_id)
    if state is not None:
        conditions.append(payments.c.state == str(state))
    if since is not None:
        conditions.append(payments.c.created_at >= since)
    if until is not None:
        conditions.append(payments.c.created_at < until)
    if before_id is not None:
        conditions.append(payments.c.id < before_id)
    rows = connection.execute(_payment_query(*conditions).order_by(payments.c.id.desc()).limit(limit))
    return [_payment(row) for row in rows]


def payer_logins(connection: Connection, node_ids: set[int]) -> dict[int, str]:
    if not node_ids:
        return {}
    rows = connection.execute(select(nodes.c.id, nodes.c.login).where(nodes.c.id.in_(sorted(node_ids))))
    return {row.id: row.login for row in rows}


def _refund(row: Row[Any]) -> Refund:
    return Refund(
        id=row.id,
        payment_id=row.payment_id,
        key=row.key,
        amount_micros=row.amount_micros,
        state=RefundState(row.state),
        origin=RefundOrigin(row.origin),
        external_id=row.external_id,
        transfer_id=row.transfer_id,
        reason=row.reason,
        created_at=row.created_at,
    )


def refunds_of(connection: Connection, payment_id: int) -> list[Refund]:
    rows = connection.execute(
        select(payment_refunds).where(payment_refunds.c.payment_id == payment_id).order_by(payment_refunds.c.id)
    )
    return [_refund(row) for row in rows]


def get_refund(connection: Connection, refund_id: int) -> Refund | None:
    row = connection.execute(select(payment_refunds).where(payment_refunds.c.id == refund_id)).first()
    return None if row is None else _refund(row)


def count_refunds(connection: Connection, payment_id: int) -> int:
    return int(
        connection.execute(
            select(func.count()).select_from(payment_refunds).where(payment_refunds.c.payment_id == payment_id)
        ).scalar_one()
    )


def insert_refund(
    connection: Connection,
    *,
    payment_id: int,
    key: str,
    amount_micros: int,
    state: RefundState,
    origin: RefundOrigin,
    external_id: str | None,
    transfer_id: str | None,
    reason: str | None,
    now: datetime,
) -> int:
    result = connection.execute(
        insert(payment_refunds).values(
            payment_id=payment_id,
            key=key,
            amount_micros=amount_micros,
            state=str(state),
            origin=str(origin),
            external_id=external_id,
            transfer_id=transfer_id,
            reason=None if reason is None else reason[:200],
            created_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_refund(connection: Connection, refund_id: int, *, now: datetime, **values: Any) -> None:
    if "state" in values:
        values["state"] = str(values["state"])
    connection.execute(
        update(payment_refunds).where(payment_refunds.c.id == refund_id).values(updated_at=now, **values)
    )


def plan_name(connection: Connection, plan_id: int) -> str | None:
    return connection.execute(select(plans.c.name).where(plans.c.id == plan_id)).scalar_one_or_none()


def brand_of(connection: Connection, node_id: int) -> str | None:
    return connection.execute(select(nodes.c.brand_name).where(nodes.c.id == node_id)).scalar_one_or_none()


def set_gateway_event_outcome(
    connection: Connection, gateway_id: int, event_id: str, *, outcome: str, payment_id: int | None
) -> None:
    connection.execute(
        update(gateway_events)
        .where(gateway_events.c.gateway_id == gateway_id, gateway_events.c.event_id == event_id)
        .values(outcome=outcome[:64], payment_id=payment_id)
    )


def find_refund_by_key(connection: Connection, payment_id: int, key: str) -> Refund | None:
    row = connection.execute(
        select(payment_refunds).where(payment_refunds.c.payment_id == payment_id, payment_refunds.c.key == key)
    ).first()
    return None if row is None else _refund(row)


def get_billing_profile(connection: Connection, node_id: int) -> BillingProfile | None:
    row = connection.execute(select(billing_profiles).where(billing_profiles.c.node_id == node_id)).first()
    if row is None:
        return None
    return BillingProfile(row.legal_name, row.address, row.tax_id, row.tax_rate_ppm, row.invoice_prefix)


def put_billing_profile(connection: Connection, node_id: int, profile: BillingProfile, *, now: datetime) -> None:
    """Insert or change a seller's profile; its invoice counter is kept (numbers never restart)."""
    values = {
        "legal_name": profile.legal_name,
        "address": profile.address,
        "tax_id": profile.tax_id,
        "tax_rate_ppm": profile.tax_rate_ppm,
        "invoice_prefix": profile.invoice_prefix,
        "updated_at": now,
    }
    changed = connection.execute(update(billing_profiles).where(billing_profiles.c.node_id == node_id).values(**values))
    if not changed.rowcount:
        connection.execute(insert(billing_profiles).values(node_id=node_id, next_invoice_number=1, **values))


def take_invoice_number(connection: Connection, node_id: int) -> int:
    """The seller's next invoice number, taken under a lock on its counter until the transaction ends: a
    rollback gives it back, so issued numbers have no gaps, and concurrent issuers queue for it."""
    number = connection.execute(
        select(billing_profiles.c.next_invoice_number).where(billing_profiles.c.node_id == node_id).with_for_update()
    ).scalar_one()
    connection.execute(
        update(billing_profiles)
        .where(billing_profiles.c.node_id == node_id)
        .values(next_invoice_number=billing_profiles.c.next_invoice_number + 1)
    )
    return int(number)


def _invoice(row: Row[Any]) -> Invoice:
    return Invoice(
        id=row.id,
        seller_id=row.seller_id,
        number=row.number,
        label=row.label,
        customer_id=row.customer_id,
        period_start=row.period_start,
        period_end=row.period_end,
        currency=row.currency,
        total_micros=row.total_micros,
        tax_micros=row.tax_micros,
        content=json.loads(row.content),
        issued_at=row.issued_at,
    )


def insert_invoice(connection: Connection, invoice: Invoice) -> int:
    result = connection.execute(
        insert(invoices).values(
            seller_id=invoice.seller_id,
            number=invoice.number,
            label=invoice.label,
            customer_id=invoice.customer_id,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            currency=invoice.currency,
            total_micros=invoice.total_micros,
            tax_micros=invoice.tax_micros,
            content=json.dumps(invoice.content, sort_keys=True),
            issued_at=invoice.issued_at,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def get_invoice(connection: Connection, invoice_id: int) -> Invoice | None:
    row = connection.execute(select(invoices).where(invoices.c.id == invoice_id)).first()
    return None if row is None else _invoice(row)


def find_invoice(connection: Connection, customer_id: int, period_start: datetime) -> Invoice | None:
    row = connection.execute(
        select(invoices).where(invoices.c.customer_id == customer_id, invoices.c.period_start == period_start)
    ).first()
    return None if row is None else _invoice(row)


def invoices_of(connection: Connection, customer_id: int, *, limit: int) -> list[Invoice]:
    rows = connection.execute(
        select(invoices).where(invoices.c.customer_id == customer_id).order_by(invoices.c.id.desc()).limit(limit)
    )
    return [_invoice(row) for row in rows]


def invoices_issued_by(connection: Connection, seller_id: int, *, limit: int) -> list[Invoice]:
    rows = connection.execute(
        select(invoices).where(invoices.c.seller_id == seller_id).order_by(invoices.c.id.desc()).limit(limit)
    )
    return [_invoice(row) for row in rows]


def invoice_numbers(connection: Connection, seller_id: int) -> list[int]:
    rows = connection.execute(
        select(invoices.c.number).where(invoices.c.seller_id == seller_id).order_by(invoices.c.number)
    )
    return [int(number) for number in rows.scalars()]


def customers_with_activity(
    connection: Connection, *, since: datetime, until: datetime, seller_id: int | None, limit: int
) -> list[tuple[int, int]]:
    """(seller, customer) pairs with a payment confirmed, or a refund made, in [since, until)."""
    confirmed = (
        select(payment_gateways.c.node_id.label("seller"), payments.c.node_id.label("customer"))
        .join(payment_gateways, payment_gateways.c.id == payments.c.gateway_id)
        .where(payments.c.confirmed_at >= since, payments.c.confirmed_at < until)
    )
    refunded = (
        select(payment_gateways.c.node_id.label("seller"), payments.c.node_id.label("customer"))
        .join(payments, payments.c.id == payment_refunds.c.payment_id)
        .join(payment_gateways, payment_gateways.c.id == payments.c.gateway_id)
        .where(
            payment_refunds.c.state == str(RefundState.SUCCEEDED),
            payment_refunds.c.updated_at >= since,
            payment_refunds.c.updated_at < until,
        )
    )
    if seller_id is not None:
        confirmed = confirmed.where(payment_gateways.c.node_id == seller_id)
        refunded = refunded.where(payment_gateways.c.node_id == seller_id)
    both = union(confirmed, refunded).subquery()
    rows = connection.execute(
        select(both.c.seller, both.c.customer).order_by(both.c.seller, both.c.customer).limit(limit)
    )
    return [(int(row.seller), int(row.customer)) for row in rows]


def period_lines(
    connection: Connection, *, seller_id: int, customer_id: int, since: datetime, until: datetime
) -> list[tuple[datetime, int, str, int]]:
    """(when, payment id, what, signed amount) of a customer's payments to a seller, and refunds, in the period."""
    base = (
        select(payments.c.id, payments.c.product, payment_gateways.c.kind, payments.c.amount_micros)
        .join(payment_gateways, payment_gateways.c.id == payments.c.gateway_id)
        .where(payments.c.node_id == customer_id, payment_gateways.c.node_id == seller_id)
    )
    lines: list[tuple[datetime, int, str, int]] = []
    paid = connection.execute(
        base.add_columns(payments.c.confirmed_at).where(
            payments.c.confirmed_at >= since, payments.c.confirmed_at < until
        )
    )
    lines += [(row.confirmed_at, row.id, f"{row.product} by {row.kind}", row.amount_micros) for row in paid]
    given_back = connection.execute(
        base.add_columns(payment_refunds.c.updated_at, payment_refunds.c.amount_micros.label("refunded"))
        .join(payment_refunds, payment_refunds.c.payment_id == payments.c.id)
        .where(
            payment_refunds.c.state == str(RefundState.SUCCEEDED),
            payment_refunds.c.updated_at >= since,
            payment_refunds.c.updated_at < until,
        )
    )
    lines += [(row.updated_at, row.id, "refund", -row.refunded) for row in given_back]
    return sorted(lines)
