"""Low-balance alerts and the email outbox as rows, inside the caller's transaction.

Locking: an account's alert row is locked (``FOR UPDATE``) before its notice is decided and queued, and an
email's row before it is claimed for sending; the keeper's passes take them with ``SKIP LOCKED``, so a row
another process is working on is left to it. SQLite has no row locks; its single writer serializes all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, false, func, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from tollway.ledger.model import AccountPurpose
from tollway.notifications.model import Alert, EmailState, effective_threshold
from tollway.store.schema import emails, ledger_accounts, low_balance_alerts, nodes
from tollway.tree.model import NodeKind, Status

EMAILS_PAGE_SIZE_MAX = 500

_owner = nodes.alias("owner")
_level = ledger_accounts.c.credits_posted - ledger_accounts.c.debits_posted + ledger_accounts.c.credit_limit_micros
_threshold = func.coalesce(nodes.c.low_balance_threshold_micros, _owner.c.low_balance_default_micros)
_armed = func.coalesce(low_balance_alerts.c.armed, true())  # no row: armed
# Every account with an owner, its wallet in its own currency, and its alert if it has one.
_accounts = (
    nodes.join(_owner, _owner.c.id == nodes.c.parent_id)
    .join(
        ledger_accounts,
        and_(
            ledger_accounts.c.node_id == nodes.c.id,
            ledger_accounts.c.purpose == str(AccountPurpose.WALLET),
            ledger_accounts.c.currency == nodes.c.currency,
        ),
    )
    .outerjoin(low_balance_alerts, low_balance_alerts.c.node_id == nodes.c.id)
)


@dataclass(frozen=True, slots=True)
class NoticeAccount:
    """An account as its notices see it: who it is, where its notices go, and its level now."""

    node_id: int
    login: str
    name: str
    path: str
    language: str
    currency: str
    email: str | None
    own_threshold_micros: int | None
    owner_default_micros: int | None
    level_micros: int

    @property
    def threshold_micros(self) -> int | None:
        return effective_threshold(self.own_threshold_micros, self.owner_default_micros)

    @property
    def owner_ids(self) -> list[int]:
        """Its owner, then its owner's owner, up to the provider."""
        return [int(part) for part in self.path.strip("/").split("/")][-2::-1]


@dataclass(frozen=True, slots=True)
class NodeNotices:
    """What a node says about notices: its own settings, the owner's default it falls back on, its alert."""

    node_id: int
    login: str
    currency: str
    email: str | None
    threshold_micros: int | None
    default_threshold_micros: int | None  # for its children
    brand_name: str | None
    email_from: str | None
    owner_default_micros: int | None
    alert: Alert

    @property
    def effective_threshold_micros(self) -> int | None:
        return effective_threshold(self.threshold_micros, self.owner_default_micros)


@dataclass(frozen=True, slots=True)
class EmailRecord:
    id: int
    key: str
    node_id: int | None
    login: str | None
    kind: str
    sender: str
    recipient: str
    subject: str
    body: str
    state: EmailState
    attempts: int
    next_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def crossing_candidates(connection: Connection, *, after_id: int, limit: int) -> list[int]:
    """Accounts that crossed their threshold: armed and below it, or disarmed and back at or above it.

    One query over every account with a threshold (its own, or its owner's default for children), by
    ascending id; the provider (no owner, no floor) and closed accounts are left out.
    """
    rows = connection.execute(
        select(nodes.c.id)
        .select_from(_accounts)
        .where(
            nodes.c.id > after_id,
            nodes.c.kind != str(NodeKind.PROVIDER),
            nodes.c.status != str(Status.CLOSED),
            _threshold.is_not(None),
            or_(and_(_armed == true(), _level < _threshold), and_(_armed == false(), _level >= _threshold)),
        )
        .order_by(nodes.c.id)
        .limit(limit)
    )
    return [row.id for row in rows]


def notice_account(connection: Connection, node_id: int) -> NoticeAccount | None:
    row = connection.execute(
        select(
            nodes.c.id,
            nodes.c.login,
            nodes.c.name,
            nodes.c.path,
            nodes.c.language,
            nodes.c.currency,
            nodes.c.email,
            nodes.c.low_balance_threshold_micros,
            _owner.c.low_balance_default_micros,
            _level.label("level_micros"),
        )
        .select_from(_accounts)
        .where(nodes.c.id == node_id, nodes.c.status != str(Status.CLOSED))
    ).first()
    if row is None:
        return None
    return NoticeAccount(
        node_id=row.id,
        login=row.login,
        name=row.name,
        path=row.path,
        language=row.language,
        currency=row.currency,
        email=row.email,
        own_threshold_micros=row.low_balance_threshold_micros,
        owner_default_micros=row.low_balance_default_micros,
        level_micros=row.level_micros,
    )


def owners_branding(connection: Connection, owner_ids: Sequence[int]) -> list[tuple[str | None, str | None]]:
    """(brand name, sender address) of each of ``owner_ids``, in that order."""
    if not owner_ids:
        return []
    rows = connection.execute(
        select(nodes.c.id, nodes.c.brand_name, nodes.c.email_from).where(nodes.c.id.in_(list(owner_ids)))
    )
    found = {row.id: (row.brand_name, row.email_from) for row in rows}
    return [found[node_id] for node_id in owner_ids if node_id in found]


def _insert(connection: Connection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def ensure_alert(connection: Connection, node_id: int, *, now: datetime) -> None:
    """Give the account an alert row (armed) if it has none, so there is a row to lock."""
    statement = _insert(connection)(low_balance_alerts).values(node_id=node_id, armed=True, crossings=0, changed_at=now)
    connection.execute(statement.on_conflict_do_nothing(index_elements=[low_balance_alerts.c.node_id]))


def lock_alert_if_free(connection: Connection, node_id: int) -> Alert | None:
    """The account's alert, locked, unless another transaction holds it (then None: it is that one's)."""
    row = connection.execute(
        select(low_balance_alerts.c.armed, low_balance_alerts.c.crossings)
        .where(low_balance_alerts.c.node_id == node_id)
        .with_for_update(skip_locked=True)
    ).first()
    return None if row is None else Alert(armed=bool(row.armed), crossings=row.crossings)


def save_alert(connection: Connection, node_id: int, alert: Alert, *, now: datetime) -> None:
    connection.execute(
        update(low_balance_alerts)
        .where(low_balance_alerts.c.node_id == node_id)
        .values(armed=alert.armed, crossings=alert.crossings, changed_at=now)
    )


def alert_of(connection: Connection, node_id: int) -> Alert:
    row = connection.execute(
        select(low_balance_alerts.c.armed, low_balance_alerts.c.crossings).where(
            low_balance_alerts.c.node_id == node_id
        )
    ).first()
    return Alert(armed=True, crossings=0) if row is None else Alert(armed=bool(row.armed), crossings=row.crossings)


def node_notices(connection: Connection, node_id: int) -> NodeNotices | None:
    row = connection.execute(
        select(
            nodes.c.login,
            nodes.c.currency,
            nodes.c.email,
            nodes.c.low_balance_threshold_micros,
            nodes.c.low_balance_default_micros,
            nodes.c.brand_name,
            nodes.c.email_from,
            _owner.c.low_balance_default_micros.label("owner_default_micros"),
        )
        .select_from(nodes.outerjoin(_owner, _owner.c.id == nodes.c.parent_id))
        .where(nodes.c.id == node_id)
    ).first()
    if row is None:
        return None
    return NodeNotices(
        node_id=node_id,
        login=row.login,
        currency=row.currency,
        email=row.email,
        threshold_micros=row.low_balance_threshold_micros,
        default_threshold_micros=row.low_balance_default_micros,
        brand_name=row.brand_name,
        email_from=row.email_from,
        owner_default_micros=row.owner_default_micros,
        alert=alert_of(connection, node_id),
    )


def queue_email(
    connection: Connection,
    *,
    key: str,
    node_id: int | None,
    kind: str,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    now: datetime,
) -> int | None:
    """Queue an email, due now; None when one with this key is queued already (a repeat queues nothing)."""
    statement = (
        _insert(connection)(emails)
        .values(
            key=key,
            node_id=node_id,
            kind=kind,
            sender=sender,
            recipient=recipient,
            subject=subject,
            body=body,
            state=str(EmailState.DUE),
            attempts=0,
            next_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[emails.c.key])
        .returning(emails.c.id)
    )
    return connection.execute(statement).scalar_one_or_none()


def emails_due(connection: Connection, *, now: datetime, limit: int) -> list[int]:
    rows = connection.execute(
        select(emails.c.id)
        .where(emails.c.state == str(EmailState.DUE), emails.c.next_at <= now)
        .order_by(emails.c.next_at, emails.c.id)
        .limit(limit)
    )
    return [row.id for row in rows]


_EMAIL_COLUMNS = (*emails.c, nodes.c.login)
_emails_with_login = emails.outerjoin(nodes, nodes.c.id == emails.c.node_id)


def _email(row: Row[Any]) -> EmailRecord:
    return EmailRecord(
        id=row.id,
        key=row.key,
        node_id=row.node_id,
        login=row.login,
        kind=row.kind,
        sender=row.sender,
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        state=EmailState(row.state),
        attempts=row.attempts,
        next_at=row.next_at,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


def lock_email_if_free(connection: Connection, email_id: int) -> EmailRecord | None:
    """The email, its row locked, unless another transaction holds it (then None: it is that one's)."""
    row = connection.execute(
        select(*_EMAIL_COLUMNS)
        .select_from(_emails_with_login)
        .where(emails.c.id == email_id)
        .with_for_update(of=emails, skip_locked=True)
    ).first()
    return None if row is None else _email(row)


def get_email(connection: Connection, email_id: int, *, lock: bool = False) -> EmailRecord | None:
    query = select(*_EMAIL_COLUMNS).select_from(_emails_with_login).where(emails.c.id == email_id)
    row = connection.execute(query.with_for_update(of=emails) if lock else query).first()
    return None if row is None else _email(row)


def update_email(connection: Connection, email_id: int, **values: Any) -> None:
    connection.execute(update(emails).where(emails.c.id == email_id).values(**values))


def page_emails(
    connection: Connection,
    *,
    node_id: int | None,
    state: EmailState | None,
    before_id: int | None,
    limit: int,
) -> list[EmailRecord]:
    """Emails, newest first; every filter is a bound parameter."""
    conditions = []
    if node_id is not None:
        conditions.append(emails.c.node_id == node_id)
    if state is not None:
        conditions.append(emails.c.state == str(state))
    if before_id is not None:
        conditions.append(emails.c.id < before_id)
    rows = connection.execute(
        select(*_EMAIL_COLUMNS)
        .select_from(_emails_with_login)
        .where(and_(true(), *conditions))
        .order_by(emails.c.id.desc())
        .limit(min(limit, EMAILS_PAGE_SIZE_MAX))
    )
    return [_email(row) for row in rows]
