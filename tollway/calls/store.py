"""Calls and their charge lines in the database, inside the caller's transaction.

Locking: a call's row is locked (``FOR UPDATE``) before the ledger accounts its charges touch, by
every writer (answer, update, end, the keeper's extensions and sweeps), so no two of them interleave
on one call and none deadlocks another. The keeper takes rows with ``SKIP LOCKED``: a call another
process is working on is simply left to it. SQLite has no row locks; its single writer serializes all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, func, insert, select, tuple_, update

from tollway.rating.cost import Pricing
from tollway.store.schema import api_keys, call_charges, calls, nodes, subscriptions, switches

ACTIVE_STATES = ("authorized", "answered")


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: int
    call_id: str
    tenant_id: int
    node_id: int | None
    switch_id: int | None
    account: str
    caller: str
    callee: str
    number: str | None
    state: str
    reason: str | None
    level: str | None
    limited_by: str | None
    max_seconds: int
    grant_seconds: int
    final: bool
    extensions: int
    update_sequence: int
    created_at: datetime
    answered_at: datetime | None
    grant_expires_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    overshoot_seconds: int
    end_reason: str | None
    disconnect_reason: str | None
    disconnect_state: str | None
    disconnect_attempts: int
    disconnect_next_at: datetime | None
    authorize_answer: str
    update_answer: str | None
    reported_duration_seconds: int | None = None  # what the switch said; duration_seconds is what was charged
    overshoot_reason: str | None = None  # why a reported duration was not believed (tollway.calls.model.Overshoot)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """One level of a call: the rate fixed at authorization, its reservation, and in the end its charge."""

    position: int
    node_id: int
    account: str
    wallet_account_id: int
    revenue_account_id: int
    tariff: str
    currency: str
    prefix: str
    description: str
    pricing: Pricing
    subscription_id: int | None
    plan_seconds_reserved: int
    reserved_micros: int
    reservation: int  # the number of the open pending transfer; 0 when nothing is reserved
    billed_seconds: int | None = None
    plan_seconds: int | None = None
    amount_micros: int | None = None
    overshoot_micros: int = 0


_CALL_FIELDS = tuple(CallRecord.__dataclass_fields__)


def _call(row: Row[Any]) -> CallRecord:
    return CallRecord(**{name: getattr(row, name) for name in _CALL_FIELDS})


def _line(row: Row[Any]) -> ChargeLine:
    return ChargeLine(
        position=row.position,
        node_id=row.node_id,
        account=row.account,
        wallet_account_id=row.wallet_account_id,
        revenue_account_id=row.revenue_account_id,
        tariff=row.tariff,
        currency=row.currency,
        prefix=row.prefix,
        description=row.description,
        pricing=Pricing(
            price_micros=row.price_micros,
            connect_fee_micros=row.connect_fee_micros,
            minimal_time=row.minimal_time,
            resolution=row.resolution,
            grace_period=row.grace_period,
            free_seconds=row.free_seconds,
        ),
        subscription_id=row.subscription_id,
        plan_seconds_reserved=row.plan_seconds_reserved,
        reserved_micros=row.reserved_micros,
        reservation=row.reservation,
        billed_seconds=row.billed_seconds,
        plan_seconds=row.plan_seconds,
        amount_micros=row.amount_micros,
        overshoot_micros=row.overshoot_micros,
    )


def insert_call(connection: Connection, **values: Any) -> int:
    result = connection.execute(insert(calls).values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def insert_calls(connection: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert calls (every row with the same columns) in one statement; their ids, in the rows' order."""
    if not rows:
        return []
    result = connection.execute(insert(calls).returning(calls.c.id, sort_by_parameter_order=True), list(rows))
    return [int(pk) for (pk,) in result]


def find_call(connection: Connection, call_id: str, *, tenant_id: int, lock: bool = False) -> CallRecord | None:
    """The call ``call_id`` of one tenant (call ids are unique per tenant only)."""
    query = select(calls).where(calls.c.call_id == call_id, calls.c.tenant_id == tenant_id)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _call(row)


def calls_with_id(
    connection: Connection, call_id: str, *, path_prefix: str | None, node_id: int | None, limit: int
) -> list[CallRecord]:
    """The calls of any tenant that carry ``call_id``, of accounts in the subtree at ``path_prefix`` or of
    the account ``node_id`` (None: anywhere), by ascending id, at most ``limit``."""
    conditions = [calls.c.call_id == call_id, calls.c.node_id.is_not(None)]
    if path_prefix is not None:
        conditions.append(calls.c.path.startswith(path_prefix, autoescape=True))
    if node_id is not None:
        conditions.append(calls.c.node_id == node_id)
    return [
        _call(row) for row in connection.execute(select(calls).where(*conditions).order_by(calls.c.id).limit(limit))
    ]


def lock_calls(connection: Connection, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], CallRecord]:
    """The calls of these (call id, tenant) keys, locked by one statement in ascending id order (the order
    every writer of several calls takes them in), by key; a key without a call is left out."""
    if not keys:
        return {}
    query = (
        select(calls)
        .where(tuple_(calls.c.call_id, calls.c.tenant_id).in_(list(dict.fromkeys(keys))))
        .order_by(calls.c.id)
        .with_for_update()
    )
    return {(row.call_id, row.tenant_id): _call(row) for row in connection.execute(query)}


def lock_call(connection: Connection, pk: int) -> CallRecord | None:
    row = connection.execute(select(calls).where(calls.c.id == pk).with_for_update()).first()
    return None if row is None else _call(row)


def lock_call_if_free(connection: Connection, pk: int) -> CallRecord | None:
    """The call, locked, unless another transaction holds it (then None: it is that one's to handle)."""
    query = select(calls).where(calls.c.id == pk).with_for_update(skip_locked=True)
    row = connection.execute(query).first()
    return None if row is None else _call(row)


def update_call(connection: Connection, pk: int, **values: Any) -> None:
    connection.execute(update(calls).where(calls.c.id == pk).values(**values))


def update_calls(connection: Connection, changes: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Change several calls in one statement; every dict has the same keys."""
    if not changes:
        return
    keys = list(changes[0][1])
    connection.execute(
        update(calls).where(calls.c.id == bindparam("call_pk")).values({key: bindparam(f"new_{key}") for key in keys}),
        [{"call_pk": pk, **{f"new_{key}": values[key] for key in keys}} for pk, values in changes],
    )


def insert_lines_of(connection: Connection, calls_lines: Sequence[tuple[int, Sequence[ChargeLine]]]) -> None:
    """The charge lines of several calls, in one statement."""
    rows = [
        {
            "call_id": pk,
            "position": line.position,
            "node_id": line.node_id,
            "account": line.account,
            "wallet_account_id": line.wallet_account_id,
            "revenue_account_id": line.revenue_account_id,
            "tariff": line.tariff,
            "currency": line.currency,
            "prefix": line.prefix,
            "description": line.description,
            "price_micros": line.pricing.price_micros,
            "connect_fee_micros": line.pricing.connect_fee_micros,
            "minimal_time": line.pricing.minimal_time,
            "resolution": line.pricing.resolution,
            "grace_period": line.pricing.grace_period,
            "free_seconds": line.pricing.free_seconds,
            "subscription_id": line.subscription_id,
            "plan_seconds_reserved": line.plan_seconds_reserved,
            "reserved_micros": line.reserved_micros,
            "reservation": line.reservation,
        }
        for pk, lines in calls_lines
        for line in lines
    ]
    if rows:
        connection.execute(insert(call_charges), rows)


def lines_of(connection: Connection, pk: int) -> list[ChargeLine]:
    rows = connection.execute(
        select(call_charges).where(call_charges.c.call_id == pk).order_by(call_charges.c.position)
    )
    return [_line(row) for row in rows]


def update_lines(connection: Connection, pk: int, changes: Sequence[dict[str, Any]]) -> None:
    """Change several lines of one call in one statement; each dict has ``position`` and the same keys."""
    update_lines_of(connection, [(pk, changes)])


def update_lines_of(connection: Connection, calls_changes: Sequence[tuple[int, Sequence[dict[str, Any]]]]) -> None:
    """Change the lines of several calls in one statement; each dict has ``position`` and the same keys."""
    rows = [(pk, change) for pk, changes in calls_changes for change in changes]
    if not rows:
        return
    keys = [key for key in rows[0][1] if key != "position"]
    connection.execute(
        update(call_charges)
        .where(call_charges.c.call_id == bindparam("line_call"), call_charges.c.position == bindparam("line_position"))
        .values({key: bindparam(f"new_{key}") for key in keys}),
        [
            {"line_call": pk, "line_position": change["position"], **{f"new_{key}": change[key] for key in keys}}
            for pk, change in rows
        ],
    )


def count_active_of_node(connection: Connection, node_id: int) -> int:
    return int(
        connection.execute(
            select(func.count()).where(calls.c.node_id == node_id, calls.c.state.in_(ACTIVE_STATES))
        ).scalar_one()
    )


def count_active_below(connection: Connection, path: str) -> int:
    """Active calls of every account in the subtree at ``path`` (paths are digits and slashes only)."""
    return int(
        connection.execute(
            select(func.count()).where(calls.c.path.startswith(path, autoescape=True), calls.c.state.in_(ACTIVE_STATES))
        ).scalar_one()
    )


def lock_subscription(connection: Connection, subscription_id: int) -> int:
    """The seconds left in a subscription, locked for this transaction."""
    query = select(subscriptions.c.seconds_left).where(subscriptions.c.id == subscription_id).with_for_update()
    return int(connection.execute(query).scalar_one())


def active_subscription(connection: Connection, node_id: int) -> tuple[int, int] | None:
    """(id, seconds left) of the account's active subscription, locked; None without one."""
    row = connection.execute(
        select(subscriptions.c.id, subscriptions.c.seconds_left)
        .where(subscriptions.c.node_id == node_id, subscriptions.c.status == "active")
        .order_by(subscriptions.c.id)
        .limit(1)
        .with_for_update()
    ).first()
    return None if row is None else (row.id, row.seconds_left)


def add_subscription_seconds(connection: Connection, subscription_id: int, seconds: int) -> None:
    if seconds:
        connection.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id)
            .values(seconds_left=subscriptions.c.seconds_left + seconds)
        )


def due_for_extension(connection: Connection, *, until: datetime, limit: int) -> list[int]:
    """Answered calls with more to grant whose grant runs out before ``until``, soonest first.

    Only calls whose switch sends no interim updates: the others are extended by their updates, so a
    switch that goes silent stops getting time and its calls are swept at the end of their grant.
    """
    rows = connection.execute(
        select(calls.c.id)
        .where(
            calls.c.grant_expires_at.is_not(None),
            calls.c.grant_expires_at <= until,
            calls.c.state == "answered",
            calls.c.final.is_(False),
            calls.c.update_sequence == 0,
        )
        .order_by(calls.c.grant_expires_at)
        .limit(limit)
    )
    return [row.id for row in rows]


def stale(connection: Connection, *, before: datetime, limit: int) -> list[int]:
    """Active calls whose grant (or ringing time) ran out before ``before`` with no news from the switch."""
    rows = connection.execute(
        select(calls.c.id)
        .where(calls.c.grant_expires_at.is_not(None), calls.c.grant_expires_at <= before)
        .order_by(calls.c.grant_expires_at)
        .limit(limit)
    )
    return [row.id for row in rows]


def disconnects_due(connection: Connection, *, now: datetime, limit: int) -> list[int]:
    rows = connection.execute(
        select(calls.c.id)
        .where(calls.c.disconnect_state == "due", calls.c.disconnect_next_at <= now)
        .order_by(calls.c.disconnect_next_at)
        .limit(limit)
    )
    return [row.id for row in rows]


def blocked_nodes(connection: Connection) -> list[tuple[str, str, str]]:
    """(login, path, status) of every node that is not active: calls below them must end."""
    rows = connection.execute(select(nodes.c.login, nodes.c.path, nodes.c.status).where(nodes.c.status != "active"))
    return [(row.login, row.path, row.status) for row in rows]


def active_below_without_disconnect(connection: Connection, path: str, *, limit: int) -> list[int]:
    rows = connection.execute(
        select(calls.c.id)
        .where(
            calls.c.path.startswith(path, autoescape=True),
            calls.c.state.in_(ACTIVE_STATES),
            calls.c.disconnect_state.is_(None),
        )
        .limit(limit)
    )
    return [row.id for row in rows]


def page_calls(
    connection: Connection,
    *,
    path_prefix: str | None,
    node_id: int | None,
    active: bool | None,
    after_id: int,
    limit: int,
    subtree: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    number_prefix: str | None = None,
    state: str | None = None,
) -> list[CallRecord]:
    """A page of calls by ascending id: of the reader's scope (``path_prefix``, ``node_id``), in the subtree at
    ``subtree``, started in [since, until), to numbers starting with ``number_prefix``, in ``state``."""
    conditions = [calls.c.id > after_id, calls.c.node_id.is_not(None)]
    for prefix in (path_prefix, subtree):
        if prefix is not None:
            conditions.append(calls.c.path.startswith(prefix, autoescape=True))
    if node_id is not None:
        conditions.append(calls.c.node_id == node_id)
    if active is True:
        conditions.append(calls.c.state.in_(ACTIVE_STATES))
    elif active is False:
        conditions.append(calls.c.state.not_in(ACTIVE_STATES))
    if since is not None:
        conditions.append(calls.c.created_at >= since)
    if until is not None:
        conditions.append(calls.c.created_at < until)
    if number_prefix is not None:
        conditions.append(calls.c.number.startswith(number_prefix, autoescape=True))
    if state is not None:
        conditions.append(calls.c.state == state)
    rows = connection.execute(select(calls).where(and_(*conditions)).order_by(calls.c.id).limit(limit))
    return [_call(row) for row in rows]


def lines_of_calls(connection: Connection, pks: Sequence[int]) -> dict[int, list[ChargeLine]]:
    """The charge lines of several calls in one query, by call, each call's in position order."""
    found: dict[int, list[ChargeLine]] = {pk: [] for pk in pks}
    if not pks:
        return found
    query = select(call_charges).where(call_charges.c.call_id.in_(pks))
    for row in connection.execute(query.order_by(call_charges.c.call_id, call_charges.c.position)):
        found[row.call_id].append(_line(row))
    return found


def switch_for_key(connection: Connection, api_key_id: int) -> tuple[int, str, str | None] | None:
    """(id, notify kind, notify url) of the switch that authenticates with this API key."""
    row = connection.execute(
        select(switches.c.id, switches.c.notify_kind, switches.c.notify_url).where(switches.c.api_key_id == api_key_id)
    ).first()
    return None if row is None else (row.id, row.notify_kind, row.notify_url)


def get_switch(connection: Connection, switch_id: int) -> tuple[str, str, str | None] | None:
    """(name, notify kind, notify url)."""
    row = connection.execute(
        select(switches.c.name, switches.c.notify_kind, switches.c.notify_url).where(switches.c.id == switch_id)
    ).first()
    return None if row is None else (row.name, row.notify_kind, row.notify_url)


def insert_switch(
    connection: Connection,
    *,
    name: str,
    api_key_id: int,
    notify_kind: str,
    notify_url: str | None,
    now: datetime,
    trusted_durations: bool = False,
) -> int:
    result = connection.execute(
        insert(switches).values(
            name=name,
            api_key_id=api_key_id,
            notify_kind=notify_kind,
            notify_url=notify_url,
            created_at=now,
            trusted_durations=trusted_durations,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def switch_key_id(connection: Connection, name: str) -> str | None:
    """The public id of the API key the switch ``name`` authenticates with; None: no such switch."""
    query = select(api_keys.c.key_id).join(switches, switches.c.api_key_id == api_keys.c.id)
    row = connection.execute(query.where(switches.c.name == name)).first()
    return None if row is None else str(row.key_id)


def set_switch_api_key(connection: Connection, *, name: str, api_key_id: int) -> None:
    connection.execute(update(switches).where(switches.c.name == name).values(api_key_id=api_key_id))


def set_switch_trusted_durations(connection: Connection, *, name: str, trusted: bool) -> None:
    connection.execute(update(switches).where(switches.c.name == name).values(trusted_durations=trusted))


def switch_trusts_durations_named(connection: Connection, name: str, *, lock: bool = False) -> bool | None:
    """Whether the switch ``name`` is trusted with its durations; None: no such switch."""
    query = select(switches.c.trusted_durations).where(switches.c.name == name)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else bool(row.trusted_durations)


def switch_trusts_durations(connection: Connection, switch_id: int | None) -> bool:
    """Whether the durations the switch reports are charged as they are, past the grant (a trusted switch)."""
    if switch_id is None:
        return False
    query = select(switches.c.trusted_durations).where(switches.c.id == switch_id)
    return bool(connection.execute(query).scalar_one_or_none())


@dataclass(frozen=True, slots=True)
class SwitchRecord:
    name: str
    node_id: int  # the node its API key acts at
    key_id: str  # the public id of the API key it authenticates with
    notify_kind: str
    notify_url: str | None
    trusted_durations: bool
    created_at: datetime


def list_switches(connection: Connection, *, limit: int) -> list[SwitchRecord]:
    """Switches by name, at most ``limit``."""
    query = (
        select(
            switches.c.name,
            api_keys.c.node_id,
            api_keys.c.key_id,
            switches.c.notify_kind,
            switches.c.notify_url,
            switches.c.trusted_durations,
            switches.c.created_at,
        )
        .join(api_keys, switches.c.api_key_id == api_keys.c.id)
        .order_by(switches.c.name)
        .limit(limit)
    )
    return [
        SwitchRecord(r.name, r.node_id, r.key_id, r.notify_kind, r.notify_url, bool(r.trusted_durations), r.created_at)
        for r in connection.execute(query)
    ]


def switch_named(connection: Connection, name: str) -> bool:
    return connection.execute(select(switches.c.id).where(switches.c.name == name)).first() is not None
