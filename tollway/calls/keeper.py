"""The keeper: what credit control does on its own, without a request from a switch.

Every tick it extends grants that are running low, flags calls below a suspended or closed node,
pushes due disconnects to switches (retrying with backoff, the attempts kept in the database so a
restart loses none), and sweeps calls the switch went silent about. Every step works call by call
on rows it locks with SKIP LOCKED, so any number of Tollway processes can run a keeper on one
PostgreSQL database: a call is only ever handled by one of them at a time, and never twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Connection

from tollway.calls import service, store
from tollway.calls.notify import (
    NOTIFY_ATTEMPTS_MAX,
    Disconnect,
    Notifier,
    NotifyFailed,
    notifier_for,
    retry_delay_seconds,
)
from tollway.calls.service import DEFAULT_SETTINGS, CallSettings
from tollway.clock import utc_now
from tollway.store.database import Database

log = structlog.get_logger(__name__)

KEEPER_INTERVAL_SECONDS = 1.0
NotifierFactory = Callable[[str, str | None], Notifier]


@dataclass(frozen=True, slots=True)
class TickReport:
    extended: int
    flagged: int
    pushed: int
    swept: int


def push_disconnects(
    database: Database, *, now: datetime | None = None, notifiers: NotifierFactory = notifier_for
) -> int:
    """Send every due disconnect once; a failure is retried later, a success or a give-up is recorded."""
    instant = now or utc_now()
    sent = 0
    with database.reading() as connection:
        ids = store.disconnects_due(connection, now=instant, limit=service.KEEPER_BATCH)
    for pk in ids:

        def use_case(connection: Connection, pk: int = pk) -> bool:
            call = store.lock_call_if_free(connection, pk)
            if call is None or call.disconnect_state != "due" or not call.active:
                return False
            switch = store.get_switch(connection, call.switch_id) if call.switch_id is not None else None
            kind, url = (switch[1], switch[2]) if switch else ("none", None)
            attempt = call.disconnect_attempts + 1
            order = Disconnect(call.call_id, call.account, call.disconnect_reason or "", call.level, attempt)
            notifier = notifiers(kind, url)
            try:
                notifier.disconnect(order)
            except NotifyFailed as failed:
                give_up = not failed.retryable or attempt >= NOTIFY_ATTEMPTS_MAX
                log.warning("disconnect_failed", call_id=call.call_id, attempt=attempt, error=str(failed))
                store.update_call(
                    connection,
                    pk,
                    disconnect_attempts=attempt,
                    disconnect_state="failed" if give_up else "due",
                    disconnect_next_at=None if give_up else instant + timedelta(seconds=retry_delay_seconds(attempt)),
                )
                return False
            finally:
                notifier.close()
            log.info("disconnect_sent", call_id=call.call_id, reason=call.disconnect_reason, level=call.level)
            store.update_call(connection, pk, disconnect_attempts=attempt, disconnect_state="sent")
            return True

        if database.run(use_case):
            sent += 1
    return sent


def tick(
    database: Database,
    *,
    settings: CallSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
    notifiers: NotifierFactory = notifier_for,
) -> TickReport:
    """One round of everything the keeper does, in the order that keeps money safe."""
    instant = now or utc_now()
    return TickReport(
        extended=service.extend_due(database, settings=settings, now=instant),
        flagged=service.flag_blocked(database, now=instant),
        pushed=push_disconnects(database, now=instant, notifiers=notifiers),
        swept=service.sweep_stale(database, settings=settings, now=instant),
    )


class Keeper:
    """Runs ``tick`` every interval in a daemon thread until stopped."""

    def __init__(
        self,
        database: Database,
        *,
        settings: CallSettings = DEFAULT_SETTINGS,
        interval_seconds: float = KEEPER_INTERVAL_SECONDS,
        notifiers: NotifierFactory = notifier_for,
    ) -> None:
        self._database = database
        self._settings = settings
        self._interval = interval_seconds
        self._notifiers = notifiers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tollway-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = tick(self._database, settings=self._settings, notifiers=self._notifiers)
                if report.extended or report.flagged or report.pushed or report.swept:
                    log.info("keeper_tick", **_fields(report))
            except Exception:  # a keeper that dies silently would leave every call unextended
                log.exception("keeper_tick_failed")
            self._stop.wait(self._interval)


def _fields(report: TickReport) -> dict[str, int]:
    return {
        "extended": report.extended,
        "flagged": report.flagged,
        "pushed": report.pushed,
        "swept": report.swept,
    }
