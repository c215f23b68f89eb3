"""The keeper: what credit control does on its own, without a request from a switch.

Every tick it extends grants that are running low, flags calls below a suspended or closed node,
pushes due disconnects to switches (retrying with backoff, the attempts kept in the database so a
restart loses none), sweeps calls the switch went silent about, and folds the ledger's postings into
their accounts (tollway.ledger.service.settle). Every step works call by call (a fold, account by account)
on rows it locks with SKIP LOCKED, so any number of Tollway processes can run a keeper on one
PostgreSQL database: a call is only ever handled by one of them at a time, and never twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import Connection

from tollway.calls import service, store
from tollway.calls.notify import (
    NOTIFY_ATTEMPTS_MAX,
    Disconnect,
    Notifier,
    NotifyFailed,
    NotifyFailure,
    notifier_for,
    retry_delay_seconds,
)
from tollway.calls.service import DEFAULT_SETTINGS, CallSettings
from tollway.clock import utc_now
from tollway.ledger import service as ledger
from tollway.periodic import Periodic
from tollway.rating import renewals
from tollway.rating.renewals import RenewalOutcome
from tollway.store.database import Database

log = structlog.get_logger(__name__)

KEEPER_INTERVAL_SECONDS = 1.0
KEEPER_STEP_SECONDS = 0.5  # the most one duty may take of a tick before the others get their turn
NotifierFactory = Callable[[str, str | None], Notifier]


@dataclass(frozen=True, slots=True)
class TickReport:
    extended: int
    flagged: int
    pushed: int
    swept: int
    renewed: int = 0  # plan periods charged, resumed or suspended
    settled: int = 0  # ledger postings folded into their accounts


def push_disconnects(
    database: Database, *, now: datetime | None = None, notifiers: NotifierFactory = notifier_for
) -> int:
    """Send every due disconnect once; a failure is retried later, a success or a give-up is recorded.

    An attempt is claimed in one short transaction (its next try pushed back by the send timeout, so
    another process does not take it meanwhile), sent with no database lock held, and its outcome
    recorded in another: a slow switch never holds a call's row, or SQLite's one writer, while it answers.
    """
    instant = now or utc_now()
    sent = 0
    with database.reading() as connection:
        ids = store.disconnects_due(connection, now=instant, limit=service.KEEPER_BATCH)
    for pk in ids:
        claimed = database.run(partial(_claim, pk=pk, now=instant))
        if claimed is None:
            continue
        order, kind, url = claimed
        outcome = _send(order, notifiers, kind, url)
        database.run(partial(_record, pk=pk, order=order, outcome=outcome))
        sent += outcome == "sent"
    return sent


CLAIM_SECONDS = 60  # a claimed attempt is retried after this if its process died before recording it


def _claim(connection: Connection, pk: int, now: datetime) -> tuple[Disconnect, str, str | None] | None:
    call = store.lock_call_if_free(connection, pk)
    if call is None or call.disconnect_state != "due" or call.disconnect_next_at is None:
        return None
    if call.disconnect_next_at > now:
        return None  # claimed or rescheduled meanwhile
    switch = store.get_switch(connection, call.switch_id) if call.switch_id is not None else None
    kind, url = (switch[1], switch[2]) if switch else ("none", None)
    attempt = call.disconnect_attempts + 1
    store.update_call(
        connection, pk, disconnect_attempts=attempt, disconnect_next_at=now + timedelta(seconds=CLAIM_SECONDS)
    )
    return Disconnect(call.call_id, call.account, call.disconnect_reason or "", call.level, attempt), kind, url


def _send(order: Disconnect, notifiers: NotifierFactory, kind: str, url: str | None) -> str | NotifyFailed:
    if kind == "none":
        return NotifyFailed(NotifyFailure.UNEXPECTED, "the switch has no way to receive disconnects", retryable=False)
    notifier = notifiers(kind, url)
    try:
        notifier.disconnect(order)
    except NotifyFailed as failed:
        return failed
    finally:
        notifier.close()
    return "sent"


def _record(connection: Connection, pk: int, order: Disconnect, outcome: str | NotifyFailed) -> None:
    call = store.lock_call(connection, pk)
    if call is None or call.disconnect_state != "due" or call.disconnect_attempts != order.attempt:
        return  # the switch ended the call meanwhile, or another process took a later attempt: theirs stands
    if outcome == "sent":
        log.info("disconnect_sent", call_id=order.call_id, reason=order.reason, node=order.level)
        store.update_call(connection, pk, disconnect_state="sent", disconnect_next_at=None)
        return
    assert isinstance(outcome, NotifyFailed)
    give_up = not outcome.retryable or order.attempt >= NOTIFY_ATTEMPTS_MAX
    log.warning("disconnect_failed", call_id=order.call_id, attempt=order.attempt, error=str(outcome), final=give_up)
    store.update_call(
        connection,
        pk,
        disconnect_state="failed" if give_up else "due",
        disconnect_next_at=None if give_up else utc_now() + timedelta(seconds=retry_delay_seconds(order.attempt)),
    )


def tick(
    database: Database,
    *,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
    notifiers: NotifierFactory = notifier_for,
    budget_seconds: float | None = None,
) -> TickReport:
    """One round of everything the keeper does, in the order that keeps money safe."""
    instant = now or utc_now()
    flagged = service.flag_blocked(database, now=instant)  # first: a blocked call gets no more time
    return TickReport(
        extended=service.extend_due(database, settings=settings, now=instant, budget_seconds=budget_seconds),
        flagged=flagged,
        pushed=push_disconnects(database, now=instant, notifiers=notifiers),
        swept=service.sweep_stale(database, settings=settings, now=instant, budget_seconds=budget_seconds),
        renewed=_renew_plans(database, instant, budget_seconds),
        settled=ledger.settle(database, budget_seconds=budget_seconds),  # last: bookkeeping, never urgent
    )


def _renew_plans(database: Database, now: datetime, budget_seconds: float | None) -> int:
    """Plan fees at the start of each period (tollway.rating.renewals): idempotent, safe in many processes."""
    report = renewals.renew_due(database, now=now, budget_seconds=budget_seconds)
    for renewal in report.of(RenewalOutcome.SUSPENDED):
        log.warning(
            "plan_suspended_unpaid", login=renewal.login, plan=renewal.plan, amount_micros=renewal.amount_micros
        )
    return len(report.renewals)


class Keeper(Periodic):
    """Runs ``tick`` every interval in a daemon thread until stopped (tollway.periodic)."""

    def __init__(
        self,
        database: Database,
        *,
        settings: CallSettings = DEFAULT_SETTINGS,
        interval_seconds: float = KEEPER_INTERVAL_SECONDS,
        notifiers: NotifierFactory = notifier_for,
    ) -> None:
        def work() -> None:
            report = tick(database, settings=settings, notifiers=notifiers, budget_seconds=KEEPER_STEP_SECONDS)
            if any(asdict(report).values()):
                log.info("keeper_tick", **asdict(report))

        super().__init__("keeper", work, interval_seconds=interval_seconds, step_seconds=KEEPER_STEP_SECONDS)
