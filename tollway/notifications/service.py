"""Use cases of low-balance notices: find crossings, queue one notice per fall, send the outbox, settings.

``run_notices`` is what the credit-control keeper calls every tick; ``tollway notices run`` calls it by
hand. Both halves are safe with any number of processes on one database:

- the scan is one query that lists the accounts whose alert must change (armed and below their
  threshold, or disarmed and back at or above it). Each is then decided again in its own transaction,
  on its alert row locked (SKIP LOCKED: another process's is left to it) and its level read anew, and the
  decision (disarm and queue the notice, or re-arm) is written in that same transaction. The notice's
  key, ``low_balance:<node id>:<crossings>``, is unique in the outbox: a fall is queued once, whatever happens.
- the sender claims each due email in a short transaction (its next try pushed back, so no other
  process takes it meanwhile), sends it with no lock held, and records the outcome in another.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from functools import partial
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from tollway.access.audit import audit
from tollway.access.model import Action, Principal, authorize
from tollway.clock import utc_now
from tollway.config import Settings
from tollway.errors import Refusal, present
from tollway.logs import get_logger
from tollway.notifications import model
from tollway.notifications import store as notices_store
from tollway.notifications.messages import LowBalanceNotice, render_low_balance
from tollway.notifications.model import (
    LAST_ERROR_LENGTH_MAX,
    LOW_BALANCE_KIND,
    SEND_ATTEMPTS_MAX,
    Branding,
    Crossing,
    EmailState,
    bounded,
)
from tollway.notifications.smtp import Mailer, SendFailed, SendFailure, SmtpMailer, SmtpSettings, compose
from tollway.notifications.store import EmailRecord, NodeNotices, NoticeAccount
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Node, NodeKind
from tollway.tree.service import require_node

log = get_logger("tollway.notifications")

SCAN_BATCH = 500  # accounts listed per scan query
SEND_BATCH = 100  # due emails listed per query
CLAIM_SECONDS = 120  # a claimed email is tried again after this if its process died before recording it
UNBOUNDED_SECONDS = 10.0**9


@dataclass(frozen=True, slots=True)
class MailSettings:
    """How notices leave: the SMTP server, and the sender when no reseller up the chain has one."""

    smtp: SmtpSettings
    default_sender: Branding

    @classmethod
    def of(cls, settings: Settings) -> MailSettings:
        """From the configuration; a ``mail_from`` that is not a sender is refused here, at start."""
        return cls(smtp=SmtpSettings.of(settings), default_sender=model.parse_mailbox(settings.mail_from))


@dataclass(frozen=True, slots=True)
class NoticeReport:
    queued: int = 0  # falls below a threshold, one notice queued each
    skipped: int = 0  # falls of accounts without an email address: disarmed, nothing queued
    rearmed: int = 0  # accounts back at or above their threshold
    sent: int = 0
    retried: int = 0  # attempts that failed and will be made again
    failed: int = 0  # emails given up on


class _Outcome(StrEnum):
    QUEUED = "queued"
    SKIPPED = "skipped"
    REARMED = "rearmed"
    UNCHANGED = "unchanged"
    SENT = "sent"
    RETRIED = "retried"
    FAILED = "failed"


def _deadline(budget_seconds: float | None) -> float:
    return time.monotonic() + (budget_seconds if budget_seconds is not None else UNBOUNDED_SECONDS)


def run_notices(
    database: Database, *, settings: MailSettings, now: datetime | None = None, budget_seconds: float | None = None
) -> NoticeReport:
    """Queue a notice for every fall below a threshold, re-arm the risen, then send what is due.

    With ``budget_seconds`` (the keeper's ticks) each half stops after about that long (a send may
    overrun it by one SMTP timeout) and the next call picks up where it stopped.
    """
    scanned = scan_crossings(database, settings=settings, now=now, budget_seconds=budget_seconds)
    sent = send_due(database, settings=settings, now=now, budget_seconds=budget_seconds)
    return replace(scanned, sent=sent.sent, retried=sent.retried, failed=sent.failed)


def scan_crossings(
    database: Database, *, settings: MailSettings, now: datetime | None = None, budget_seconds: float | None = None
) -> NoticeReport:
    """Find the accounts whose alert must change, in one query per batch, and settle each in a transaction."""
    instant = now or utc_now()
    deadline = _deadline(budget_seconds)
    outcomes: Counter[_Outcome] = Counter()
    after_id = 0
    while True:
        with database.reading() as connection:
            ids = notices_store.crossing_candidates(connection, after_id=after_id, limit=SCAN_BATCH)
        for node_id in ids:
            try:
                outcomes[database.run(partial(_settle, node_id=node_id, settings=settings, now=instant))] += 1
            except DBAPIError:
                raise  # the database, not this account: the next run tries again
            except Exception:  # one account's bug must not stop every other account's notices
                log.exception("low_balance_settle_failed", node_id=node_id)
            if time.monotonic() >= deadline:
                return _scan_report(outcomes)
        if len(ids) < SCAN_BATCH:
            return _scan_report(outcomes)
        after_id = ids[-1]


def _scan_report(outcomes: Counter[_Outcome]) -> NoticeReport:
    return NoticeReport(
        queued=outcomes[_Outcome.QUEUED], skipped=outcomes[_Outcome.SKIPPED], rearmed=outcomes[_Outcome.REARMED]
    )


def _settle(connection: Connection, *, node_id: int, settings: MailSettings, now: datetime) -> _Outcome:
    """Decide one account again on fresh rows, its alert locked; write the decision and its notice."""
    notices_store.ensure_alert(connection, node_id, now=now)
    alert = notices_store.lock_alert_if_free(connection, node_id)
    if alert is None:
        return _Outcome.UNCHANGED  # another process is deciding it now
    account = notices_store.notice_account(connection, node_id)
    if account is None:
        return _Outcome.UNCHANGED  # closed meanwhile
    change = model.crossing(alert, level_micros=account.level_micros, threshold_micros=account.threshold_micros)
    if change is Crossing.NONE:
        return _Outcome.UNCHANGED  # crossed back meanwhile, or decided by another process
    settled = model.after(alert, change)
    notices_store.save_alert(connection, node_id, settled, now=now)
    if change is Crossing.ROSE:
        log.info("low_balance_rearmed", node=account.login, level_micros=account.level_micros)
        return _Outcome.REARMED
    if account.email is None:
        log.warning("low_balance_not_sent", node=account.login, reason="no_email_address", crossing=settled.crossings)
        return _Outcome.SKIPPED
    _queue_notice(connection, account, crossings=settled.crossings, settings=settings, now=now)
    return _Outcome.QUEUED


def _queue_notice(
    connection: Connection, account: NoticeAccount, *, crossings: int, settings: MailSettings, now: datetime
) -> None:
    owners = notices_store.owners_branding(connection, account.owner_ids)
    sender = model.branding(owners, default=settings.default_sender)
    threshold = present(account.threshold_micros, f"threshold of {account.login}")
    rendered = render_low_balance(
        LowBalanceNotice(
            language=account.language,
            currency=account.currency,
            account_name=account.name,
            login=account.login,
            level_micros=account.level_micros,
            threshold_micros=threshold,
            brand_name=sender.name,
        )
    )
    key = model.notice_key(account.node_id, crossings)
    queued = notices_store.queue_email(
        connection,
        key=key,
        node_id=account.node_id,
        kind=LOW_BALANCE_KIND,
        sender=model.mailbox(sender),
        recipient=account.email or "",
        subject=rendered.subject,
        body=rendered.body,
        now=now,
    )
    if queued is None:  # only if the alert's count went back (a row deleted by hand): never send twice
        log.warning("low_balance_notice_exists", node=account.login, key=key)
        return
    log.info("low_balance_queued", node=account.login, key=key, language=rendered.language, email_id=queued)


# -- the outbox ---------------------------------------------------------------------------------------


def send_due(
    database: Database,
    *,
    settings: MailSettings,
    now: datetime | None = None,
    budget_seconds: float | None = None,
    mailer: Mailer | None = None,
) -> NoticeReport:
    """Make one attempt at every due email; stop early when the server itself is down or out of budget.

    ``now`` (tests) is also when outcomes are recorded; without it, each outcome's own time is.
    """
    instant = now or utc_now()
    deadline = _deadline(budget_seconds)
    outcomes: Counter[_Outcome] = Counter()
    session = mailer or SmtpMailer(settings.smtp)
    try:
        while True:
            with database.reading() as connection:
                ids = notices_store.emails_due(connection, now=instant, limit=SEND_BATCH)
            attempted = 0
            for email_id in ids:
                claimed = database.run(partial(_claim, email_id=email_id, now=instant))
                if claimed is None:
                    continue  # another process holds it, or took it meanwhile
                attempted += 1
                failure = _attempt(session, claimed, now or utc_now())
                recorded = partial(_record, claimed=claimed, failure=failure, now=now or utc_now())
                outcomes[database.run(recorded)] += 1
                if (failure is not None and failure.server_down) or time.monotonic() >= deadline:
                    return _send_report(outcomes)
            if len(ids) < SEND_BATCH or not attempted:  # none left, or the rest is other processes' to send
                return _send_report(outcomes)
    finally:
        session.close()


def _send_report(outcomes: Counter[_Outcome]) -> NoticeReport:
    return NoticeReport(
        sent=outcomes[_Outcome.SENT], retried=outcomes[_Outcome.RETRIED], failed=outcomes[_Outcome.FAILED]
    )


def _claim(connection: Connection, *, email_id: int, now: datetime) -> EmailRecord | None:
    email = notices_store.lock_email_if_free(connection, email_id)
    if email is None or email.state is not EmailState.DUE or email.next_at is None or email.next_at > now:
        return None  # another process holds it, or claimed, sent or rescheduled it meanwhile
    if email.attempts >= SEND_ATTEMPTS_MAX:  # its last attempt's process died before recording the outcome
        error = f"gave up after {email.attempts} attempts; the outcome of the last one is unknown"
        notices_store.update_email(connection, email_id, state=str(EmailState.FAILED), next_at=None, last_error=error)
        return None
    attempt = email.attempts + 1
    notices_store.update_email(connection, email_id, attempts=attempt, next_at=now + timedelta(seconds=CLAIM_SECONDS))
    return replace(email, attempts=attempt)


def _attempt(mailer: Mailer, email: EmailRecord, now: datetime) -> SendFailed | None:
    """Send one claimed email, no database lock held; None when the server accepted it."""
    try:
        message, envelope_sender = compose(
            email_id=email.id,
            sender=email.sender,
            recipient=email.recipient,
            subject=email.subject,
            body=email.body,
            created_at=email.created_at,
            date=now,
        )
    except (ValueError, TypeError) as error:  # a malformed row: sending it again would fail the same way
        return SendFailed(SendFailure.PERMANENT, f"the email cannot be composed: {error}", retryable=False)
    try:
        mailer.send(message, sender=envelope_sender, recipient=email.recipient)
    except SendFailed as failed:
        return failed
    return None


def _record(connection: Connection, *, claimed: EmailRecord, failure: SendFailed | None, now: datetime) -> _Outcome:
    email = notices_store.get_email(connection, claimed.id, lock=True)
    if email is None or email.state is not EmailState.DUE or email.attempts != claimed.attempts:
        return _Outcome.UNCHANGED  # another process took a later attempt after our claim lapsed: theirs stands
    if failure is None:
        notices_store.update_email(connection, email.id, state=str(EmailState.SENT), sent_at=now, next_at=None)
        log.info("email_sent", email_id=email.id, key=email.key, attempt=email.attempts)
        return _Outcome.SENT
    delay = model.next_attempt_in_seconds(email.attempts, retryable=failure.retryable)
    log.warning("email_failed", email_id=email.id, attempt=email.attempts, error=str(failure), final=delay is None)
    error = bounded(str(failure), LAST_ERROR_LENGTH_MAX)
    if delay is None:
        notices_store.update_email(connection, email.id, state=str(EmailState.FAILED), next_at=None, last_error=error)
        return _Outcome.FAILED
    next_at = now + timedelta(seconds=delay)
    notices_store.update_email(connection, email.id, next_at=next_at, last_error=error)
    return _Outcome.RETRIED


# -- settings and the record ------------------------------------------------------------------------


class Keep(Enum):
    """A setting left out of a change: it stays as it is (None, by contrast, clears it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class NoticeChanges:
    """What to change: a field left at KEEP stays as it is; None clears it."""

    email: str | Keep | None = KEEP  # where the account's notices go; None: nowhere
    threshold_micros: int | Keep | None = KEEP  # None: the owner's default for its children
    default_threshold_micros: int | Keep | None = KEEP  # resellers and the provider: for their children
    brand_name: str | Keep | None = KEEP  # resellers and the provider: what their children's notices are signed with
    email_from: str | Keep | None = KEEP  # resellers and the provider: the address they are sent from

    def columns(self) -> dict[str, Any]:
        """The nodes columns to write, checked."""
        found: dict[str, Any] = {}
        if self.email is not KEEP:
            found["email"] = None if self.email is None else model.check_email(self.email)
        if self.threshold_micros is not KEEP:
            value = self.threshold_micros
            found["low_balance_threshold_micros"] = None if value is None else model.check_threshold(value)
        if self.default_threshold_micros is not KEEP:
            value = self.default_threshold_micros
            found["low_balance_default_micros"] = None if value is None else model.check_threshold(value)
        if self.brand_name is not KEEP:
            found["brand_name"] = None if self.brand_name is None else model.check_brand_name(self.brand_name)
        if self.email_from is not KEEP:
            found["email_from"] = None if self.email_from is None else model.check_email(self.email_from)
        return found


OWNER_COLUMNS = frozenset({"low_balance_default_micros", "brand_name", "email_from"})  # only nodes with children


def _authorize_changes(principal: Principal | None, node: Node, changes: NoticeChanges) -> None:
    """The address and the threshold: the node itself or its owners (USER_MANAGE): a warning an account
    gives itself. The rest: its owners only (NODE_UPDATE). A node does not pick the default of its own
    customers' warnings, nor its brand or sender: its owner sells to it under its own name and answers for
    what is sent from its addresses.
    """
    own = (changes.email, changes.threshold_micros)
    others = (changes.default_threshold_micros, changes.brand_name, changes.email_from)
    if any(value is not KEEP for value in own) or all(value is KEEP for value in others):  # empty: the least right
        authorize(principal, Action.USER_MANAGE, node)
    if any(value is not KEEP for value in others):
        authorize(principal, Action.NODE_UPDATE, node)


def set_notices(
    database: Database, *, login: str, changes: NoticeChanges, principal: Principal | None = None
) -> NodeNotices:
    now = utc_now()

    def use_case(connection: Connection) -> NodeNotices:
        node = require_node(connection, login, lock=True)
        _authorize_changes(principal, node, changes)
        columns = changes.columns()
        if not columns:
            raise Refusal("nothing_to_change", "say what to set: email, threshold, default threshold, brand, sender")
        if node.position.kind is NodeKind.PROVIDER and "low_balance_threshold_micros" in columns:
            raise Refusal("provider_has_no_threshold", "the provider's balance is unlimited: it has no threshold")
        if node.position.kind not in (NodeKind.PROVIDER, NodeKind.RESELLER) and columns.keys() & OWNER_COLUMNS:
            raise Refusal(
                "owner_settings_only", "default thresholds, brand names and senders are for resellers and the provider"
            )
        before = _node_notices(connection, node)
        tree_store.update_node(connection, node.id, now=now, **columns)
        after = _node_notices(connection, node)
        audit(
            connection,
            principal,
            action="node.notices",
            target_type="node",
            target_id=node.login,
            node=node,
            before=_summary(before),
            after=_summary(after),
        )
        return after

    return database.run(use_case)


def _node_notices(connection: Connection, node: Node) -> NodeNotices:
    return present(notices_store.node_notices(connection, node.id), f"notices of {node.login}")


def _summary(notices: NodeNotices) -> dict[str, object]:
    """What the audit log records of a node's notice settings."""
    return {
        "email": notices.email,
        "threshold_micros": notices.threshold_micros,
        "default_threshold_micros": notices.default_threshold_micros,
        "brand_name": notices.brand_name,
        "email_from": notices.email_from,
    }


def get_notices(database: Database, principal: Principal | None, *, login: str) -> NodeNotices:
    """A node's notice settings and alert; what the notices say is about its balance (BALANCE_READ)."""
    with database.reading() as connection:
        node = require_node(connection, login)
        authorize(principal, Action.BALANCE_READ, node)
        return _node_notices(connection, node)


def list_emails(
    database: Database,
    principal: Principal | None,
    *,
    login: str | None,
    limit: int,
    state: EmailState | None = None,
    before_id: int | None = None,
) -> list[EmailRecord]:
    """What was sent (and is due, or failed), newest first. ``login`` None: every node's (the operator only)."""
    if limit < 1:
        raise Refusal("limit_invalid", "a page holds at least one email")
    with database.reading() as connection:
        node_id = None
        if login is not None:
            node = require_node(connection, login)
            authorize(principal, Action.BALANCE_READ, node)
            node_id = node.id
        elif principal is not None:
            raise Refusal("node_required", "name the node whose emails to list")
        return notices_store.page_emails(connection, node_id=node_id, state=state, before_id=before_id, limit=limit)


def sender_of(database: Database, *, login: str, settings: MailSettings) -> Branding:
    """Who the node's notices come from: the nearest brand name and sender above it, else the default."""
    with database.reading() as connection:
        node = require_node(connection, login)
        owners = notices_store.owners_branding(connection, list(reversed(node.ancestor_ids)))
    return model.branding(owners, default=settings.default_sender)
