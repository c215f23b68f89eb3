"""Persistence of tariffs, rate rows, assignments, dial plans and plans. No rules here."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from datetime import datetime, time
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, delete, func, insert, or_, select, update

from tollway.rating.dialplan import DialPlan
from tollway.rating.plans import PLAN_UNPAID, Period, Plan, Subscription, SubscriptionStatus
from tollway.rating.rates import ALWAYS, PREFIX_DIGITS_MAX, SECONDS_PER_DAY, WeeklyWindow, seconds_of
from tollway.rating.tariff import Defaults, Derivation, RateEntry, Tariff
from tollway.store.schema import dial_plans, plans, rates, subscriptions, tariff_assignments, tariffs

INSERT_BATCH_ROWS = 10_000
RATES_PAGE_SIZE_MAX = 1_000
TARIFFS_PAGE_SIZE_MAX = 500
STREAM_ROWS = 20_000
WINDOWS_SHARED_MAX = 10_000

_RATE_COLUMNS = (
    "tariff_id",
    "prefix",
    "description",
    "price_micros",
    "connect_fee_micros",
    "minimal_time",
    "resolution",
    "grace_period",
    "free_seconds",
    "from_day",
    "to_day",
    "from_second",
    "to_second",
    "valid_from",
    "valid_to",
)


def _tariff(row: Row[Any]) -> Tariff:
    derivation = None
    if row.base_tariff_id is not None:
        derivation = Derivation(multiplier=row.multiplier, addition_micros=row.addition_micros or 0)
    return Tariff(
        id=row.id,
        owner_id=row.owner_id,
        name=row.name,
        currency=row.currency,
        time_zone=row.time_zone,
        defaults=Defaults(row.minimal_time, row.resolution, row.grace_period),
        base_tariff_id=row.base_tariff_id,
        derivation=derivation,
        revision=row.revision,
    )


def insert_tariff(
    connection: Connection,
    *,
    owner_id: int,
    name: str,
    currency: str,
    time_zone: str,
    defaults: Defaults,
    base_tariff_id: int | None,
    derivation: Derivation | None,
    now: datetime,
) -> Tariff:
    values = dict(
        owner_id=owner_id,
        name=name,
        currency=currency,
        time_zone=time_zone,
        minimal_time=defaults.minimal_time,
        resolution=defaults.resolution,
        grace_period=defaults.grace_period,
        base_tariff_id=base_tariff_id,
        multiplier=derivation.multiplier if derivation else None,
        addition_micros=derivation.addition_micros if derivation else None,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    tariff_id = connection.execute(insert(tariffs).values(**values).returning(tariffs.c.id)).scalar_one()
    return Tariff(tariff_id, owner_id, name, currency, time_zone, defaults, base_tariff_id, derivation)


def find_tariff(connection: Connection, name: str, *, lock: bool = False) -> Tariff | None:
    if "\x00" in name:  # never stored, and PostgreSQL refuses it in text
        return None
    query = select(tariffs).where(tariffs.c.name == name)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _tariff(row)


def get_tariff(connection: Connection, tariff_id: int) -> Tariff | None:
    row = connection.execute(select(tariffs).where(tariffs.c.id == tariff_id)).first()
    return None if row is None else _tariff(row)


def tariffs_of(connection: Connection, owner_id: int, *, limit: int, after_id: int = 0) -> list[Tariff]:
    rows = connection.execute(
        select(tariffs)
        .where(tariffs.c.owner_id == owner_id, tariffs.c.id > after_id)
        .order_by(tariffs.c.id)
        .limit(min(limit, TARIFFS_PAGE_SIZE_MAX))
    )
    return [_tariff(row) for row in rows]


def update_tariff(connection: Connection, tariff_id: int, *, now: datetime, **values: Any) -> None:
    """Change a tariff's settings (or only bump its revision, with no values)."""
    connection.execute(
        update(tariffs)
        .where(tariffs.c.id == tariff_id)
        .values(revision=tariffs.c.revision + 1, updated_at=now, **values)
    )


def delete_tariff(connection: Connection, tariff_id: int) -> None:
    connection.execute(delete(rates).where(rates.c.tariff_id == tariff_id))
    connection.execute(delete(tariffs).where(tariffs.c.id == tariff_id))


def revisions(connection: Connection, tariff_ids: Sequence[int]) -> dict[int, int]:
    rows = connection.execute(select(tariffs.c.id, tariffs.c.revision).where(tariffs.c.id.in_(tariff_ids)))
    return {row.id: row.revision for row in rows}


def derived_from(connection: Connection, tariff_id: int) -> list[int]:
    rows = connection.execute(select(tariffs.c.id).where(tariffs.c.base_tariff_id == tariff_id))
    return [row.id for row in rows]


def _rate_values(tariff_id: int, entry: RateEntry) -> tuple[Any, ...]:
    window = entry.window
    return (
        tariff_id,
        entry.prefix,
        entry.description,
        entry.price_micros,
        entry.connect_fee_micros,
        entry.minimal_time,
        entry.resolution,
        entry.grace_period,
        entry.free_seconds,
        window.from_day,
        window.to_day,
        seconds_of(window.from_time),
        None if window.to_time is None else seconds_of(window.to_time),
        entry.valid_from,
        entry.valid_to,
    )


def _entry(row: Row[Any], windows: dict[tuple[int, int, int, int | None], WeeklyWindow] | None = None) -> RateEntry:
    key = (row.from_day, row.to_day, row.from_second, row.to_second)
    window = None if windows is None else windows.get(key)
    if window is None:
        to_time = None if row.to_second is None else _time(row.to_second)
        window = WeeklyWindow(row.from_day, row.to_day, _time(row.from_second), to_time)
        if windows is not None and len(windows) < WINDOWS_SHARED_MAX:
            windows[key] = window
    return RateEntry(
        prefix=row.prefix,
        description=row.description,
        price_micros=row.price_micros,
        connect_fee_micros=row.connect_fee_micros,
        minimal_time=row.minimal_time,
        resolution=row.resolution,
        grace_period=row.grace_period,
        free_seconds=row.free_seconds,
        window=window,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
    )


def _time(second: int) -> time:
    second %= SECONDS_PER_DAY
    return time(second // 3600, second // 60 % 60, second % 60)


def insert_rates(
    connection: Connection,
    tariff_id: int,
    entries: Iterable[RateEntry],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Insert rows: COPY on PostgreSQL, batched inserts elsewhere. Returns how many."""
    if connection.dialect.name == "postgresql":
        return _copy_rates(connection, tariff_id, entries, on_progress)
    count = 0
    batch: list[dict[str, Any]] = []
    for entry in entries:
        batch.append(dict(zip(_RATE_COLUMNS, _rate_values(tariff_id, entry), strict=True)))
        if len(batch) == INSERT_BATCH_ROWS:
            connection.execute(insert(rates), batch)
            count += len(batch)
            batch = []
            if on_progress:
                on_progress(count)
    if batch:
        connection.execute(insert(rates), batch)
        count += len(batch)
    if on_progress:
        on_progress(count)
    return count


def _copy_rates(
    connection: Connection, tariff_id: int, entries: Iterable[RateEntry], on_progress: Callable[[int], None] | None
) -> int:
    raw = connection.connection.driver_connection
    count = 0
    columns = ", ".join(_RATE_COLUMNS)
    with raw.cursor() as cursor, cursor.copy(f"COPY rates ({columns}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for entry in entries:
            copy.write_row(_rate_values(tariff_id, entry))
            count += 1
            if on_progress and count % INSERT_BATCH_ROWS == 0:
                on_progress(count)
    if on_progress:
        on_progress(count)
    return count


def delete_rates(connection: Connection, tariff_id: int, *, prefix: str | None = None) -> int:
    statement = delete(rates).where(rates.c.tariff_id == tariff_id)
    if prefix is not None:
        statement = statement.where(rates.c.prefix == prefix)
    return connection.execute(statement).rowcount


def _starting_with(digits: str) -> ColumnElement[bool]:
    """Prefixes that start with ``digits`` (digits only), as a range the (tariff_id, prefix) index serves."""
    return and_(rates.c.prefix >= digits, rates.c.prefix <= digits + "9" * (PREFIX_DIGITS_MAX - len(digits)))


def stream_rates(
    connection: Connection,
    tariff_id: int,
    *,
    starting_with: str | None = None,
    after_prefix: str | None = None,
    batch_rows: int = STREAM_ROWS,
) -> Generator[RateEntry, None, None]:
    """Every row of a tariff, by prefix, without holding them all in memory at once: only those whose prefix
    starts with ``starting_with``, and comes after ``after_prefix``, when given."""
    query = select(rates).where(rates.c.tariff_id == tariff_id)
    if starting_with is not None:
        query = query.where(_starting_with(starting_with))
    if after_prefix is not None:
        query = query.where(rates.c.prefix > after_prefix)
    # Options on the statement, not the connection: Connection.execution_options changes the connection
    # itself, and every later statement of the transaction would then open a server-side cursor.
    result = connection.execute(query.order_by(rates.c.prefix, rates.c.id).execution_options(yield_per=batch_rows))
    windows: dict[tuple[int, int, int, int | None], WeeklyWindow] = {(0, 6, 0, None): ALWAYS}
    try:
        for row in result:
            yield _entry(row, windows)  # rows share their window objects: a tariff has few distinct windows
    finally:  # a reader that stops early (a page) closes the generator, and so the cursor
        result.close()


def page_rates(
    connection: Connection, tariff_id: int, *, prefix: str | None, limit: int, after_id: int = 0
) -> list[tuple[int, RateEntry]]:
    query = select(rates).where(rates.c.tariff_id == tariff_id, rates.c.id > after_id)
    if prefix is not None:
        query = query.where(rates.c.prefix == prefix)
    rows = connection.execute(query.order_by(rates.c.id).limit(min(limit, RATES_PAGE_SIZE_MAX)))
    return [(row.id, _entry(row)) for row in rows]


def count_rates(connection: Connection, tariff_id: int) -> int:
    return connection.execute(
        select(func.count()).select_from(rates).where(rates.c.tariff_id == tariff_id)
    ).scalar_one()


def assign(connection: Connection, *, node_id: int, tariff_id: int, now: datetime) -> None:
    updated = connection.execute(
        update(tariff_assignments)
        .where(tariff_assignments.c.node_id == node_id)
        .values(tariff_id=tariff_id, assigned_at=now)
    ).rowcount
    if not updated:
        connection.execute(insert(tariff_assignments).values(node_id=node_id, tariff_id=tariff_id, assigned_at=now))


def assigned_tariff_ids(connection: Connection, node_ids: Sequence[int]) -> dict[int, int]:
    rows = connection.execute(
        select(tariff_assignments.c.node_id, tariff_assignments.c.tariff_id).where(
            tariff_assignments.c.node_id.in_(node_ids)
        )
    )
    return {row.node_id: row.tariff_id for row in rows}


def assigned_node_ids(connection: Connection, tariff_id: int, *, limit: int) -> list[int]:
    """The nodes that pay at a tariff, by id, at most ``limit`` of them."""
    rows = connection.execute(
        select(tariff_assignments.c.node_id)
        .where(tariff_assignments.c.tariff_id == tariff_id)
        .order_by(tariff_assignments.c.node_id)
        .limit(min(limit, TARIFFS_PAGE_SIZE_MAX))
    )
    return [row.node_id for row in rows]


def count_assignments(connection: Connection, tariff_id: int) -> int:
    return connection.execute(
        select(func.count()).select_from(tariff_assignments).where(tariff_assignments.c.tariff_id == tariff_id)
    ).scalar_one()


def dial_plans_of(connection: Connection, node_ids: Sequence[int]) -> dict[int, DialPlan]:
    rows = connection.execute(select(dial_plans).where(dial_plans.c.node_id.in_(node_ids)))
    return {row.node_id: DialPlan(row.country_code, row.international_prefix, row.national_prefix) for row in rows}


def set_dial_plan(connection: Connection, node_id: int, plan: DialPlan) -> None:
    connection.execute(delete(dial_plans).where(dial_plans.c.node_id == node_id))
    connection.execute(
        insert(dial_plans).values(
            node_id=node_id,
            country_code=plan.country_code,
            international_prefix=plan.international_prefix,
            national_prefix=plan.national_prefix,
        )
    )


def _plan(row: Row[Any]) -> tuple[int, int, Plan]:
    prefixes = tuple(row.prefixes.split()) if row.prefixes else ()
    plan = Plan(
        row.name, row.currency, row.fee_micros, Period(row.period), row.included_seconds, prefixes, row.rollover
    )
    return row.id, row.owner_id, plan


def insert_plan(connection: Connection, *, owner_id: int, plan: Plan, now: datetime) -> int:
    plan_id: int = connection.execute(
        insert(plans)
        .values(
            owner_id=owner_id,
            name=plan.name,
            currency=plan.currency,
            fee_micros=plan.fee_micros,
            period=str(plan.period),
            included_seconds=plan.included_seconds,
            prefixes=" ".join(plan.prefixes),
            rollover=plan.rollover,
            created_at=now,
        )
        .returning(plans.c.id)
    ).scalar_one()
    return plan_id


def find_plan(connection: Connection, name: str) -> tuple[int, int, Plan] | None:
    if "\x00" in name:
        return None
    row = connection.execute(select(plans).where(plans.c.name == name)).first()
    return None if row is None else _plan(row)


def plan_names(connection: Connection, plan_ids: set[int]) -> dict[int, str]:
    rows = connection.execute(select(plans.c.id, plans.c.name).where(plans.c.id.in_(sorted(plan_ids))))
    return {int(plan_id): name for plan_id, name in rows}


def plans_of(connection: Connection, owner_id: int, *, limit: int, after_id: int = 0) -> list[tuple[int, int, Plan]]:
    rows = connection.execute(
        select(plans)
        .where(plans.c.owner_id == owner_id, plans.c.id > after_id)
        .order_by(plans.c.id)
        .limit(min(limit, TARIFFS_PAGE_SIZE_MAX))
    )
    return [_plan(row) for row in rows]


def insert_subscription(
    connection: Connection,
    *,
    node_id: int,
    plan_id: int,
    period_start: datetime,
    period_end: datetime | None,
    seconds_left: int,
    now: datetime,
) -> int:
    subscription_id: int = connection.execute(
        insert(subscriptions)
        .values(
            node_id=node_id,
            plan_id=plan_id,
            status=str(SubscriptionStatus.ACTIVE),
            period_start=period_start,
            period_end=period_end,
            seconds_left=seconds_left,
            created_at=now,
        )
        .returning(subscriptions.c.id)
    ).scalar_one()
    return subscription_id


_SUBSCRIPTION_COLUMNS = (
    subscriptions.c.id.label("subscription_id"),
    subscriptions.c.node_id,
    subscriptions.c.status,
    subscriptions.c.period_start,
    subscriptions.c.period_end,
    subscriptions.c.seconds_left,
    subscriptions.c.status_reason,
)


def _subscription(row: Row[Any]) -> Subscription:
    plan_id, owner_id, plan = _plan(row)
    return Subscription(
        id=row.subscription_id,
        node_id=row.node_id,
        plan_id=plan_id,
        plan_owner_id=owner_id,
        plan=plan,
        status=SubscriptionStatus(row.status),
        period_start=row.period_start,
        period_end=row.period_end,
        seconds_left=row.seconds_left,
        status_reason=row.status_reason,
    )


def subscriptions_of(connection: Connection, node_ids: Sequence[int]) -> list[Subscription]:
    rows = connection.execute(
        select(*_SUBSCRIPTION_COLUMNS, plans)
        .join(plans, plans.c.id == subscriptions.c.plan_id)
        .where(subscriptions.c.node_id.in_(node_ids))
        .order_by(subscriptions.c.id)
    )
    return [_subscription(row) for row in rows]


def subscribers_of(connection: Connection, plan_id: int, *, limit: int) -> list[Subscription]:
    """A plan's subscriptions that have not ended, by id, at most ``limit`` of them."""
    rows = connection.execute(
        select(*_SUBSCRIPTION_COLUMNS, plans)
        .join(plans, plans.c.id == subscriptions.c.plan_id)
        .where(subscriptions.c.plan_id == plan_id, subscriptions.c.status != str(SubscriptionStatus.ENDED))
        .order_by(subscriptions.c.id)
        .limit(min(limit, TARIFFS_PAGE_SIZE_MAX))
    )
    return [_subscription(row) for row in rows]


def get_subscription(
    connection: Connection, subscription_id: int, *, lock_if_free: bool = False
) -> Subscription | None:
    """The subscription; with ``lock_if_free``, locked, or None if another transaction holds it."""
    query = (
        select(*_SUBSCRIPTION_COLUMNS, plans)
        .join(plans, plans.c.id == subscriptions.c.plan_id)
        .where(subscriptions.c.id == subscription_id)
    )
    if lock_if_free:
        query = query.with_for_update(skip_locked=True, of=subscriptions)
    row = connection.execute(query).first()
    return None if row is None else _subscription(row)


def _due(now: datetime) -> ColumnElement[bool]:
    """Renewable (active, or suspended for an unpaid fee) and at or past the end of its period."""
    renewable = or_(
        subscriptions.c.status == str(SubscriptionStatus.ACTIVE),
        and_(
            subscriptions.c.status == str(SubscriptionStatus.SUSPENDED),
            subscriptions.c.status_reason == PLAN_UNPAID,
        ),
    )
    return and_(renewable, or_(subscriptions.c.period_end.is_(None), subscriptions.c.period_end <= now))


def due_subscriptions(connection: Connection, *, now: datetime, after_id: int, limit: int) -> list[int]:
    """Ids of subscriptions whose fee is due at ``now``, by id, after ``after_id``."""
    rows = connection.execute(
        select(subscriptions.c.id)
        .where(_due(now), subscriptions.c.id > after_id)
        .order_by(subscriptions.c.id)
        .limit(limit)
    )
    return [row.id for row in rows]


def count_due_subscriptions(connection: Connection, *, now: datetime) -> int:
    return int(connection.execute(select(func.count()).select_from(subscriptions).where(_due(now))).scalar_one())


def update_subscription(connection: Connection, subscription_id: int, **values: Any) -> None:
    connection.execute(update(subscriptions).where(subscriptions.c.id == subscription_id).values(**values))
