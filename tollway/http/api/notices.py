"""Low-balance notices of a node: its address, threshold and (for resellers) branding; the emails sent to it.

``PUT /nodes/{login}/notices`` changes only the fields the body names; ``null`` clears one. Who may set
what is the one rule of ``tollway.access``: the address, the node itself or its owners (``user:manage``);
the threshold, the default threshold for children, the brand name and the sender, its owners only
(``node:update``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import PAGE_SIZE_DEFAULT, BeforeId, PageSize, PositiveAmount, Strict
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.money import to_decimal, to_micros
from tollway.notifications import service as notices
from tollway.notifications.model import BRAND_NAME_LENGTH_MAX, EMAIL_LENGTH_MAX, EmailState
from tollway.notifications.service import KEEP, NoticeChanges
from tollway.notifications.store import EmailRecord, NodeNotices

router = APIRouter(prefix="/nodes/{login}", tags=["notices"], responses=ERRORS)  # type: ignore[arg-type]

EmailAddress = Annotated[str, Field(min_length=3, max_length=EMAIL_LENGTH_MAX, examples=["alice@example.com"])]


class NoticesIn(Strict):
    """Only the fields sent are changed; ``null`` clears one."""

    email: EmailAddress | None = Field(default=None, description="where the node's notices go; null: nowhere")
    threshold: PositiveAmount | None = Field(
        default=None, description="notify below this; null: the owner's default for its children"
    )
    default_threshold: PositiveAmount | None = Field(
        default=None, description="resellers and the provider: the threshold of their children that set none"
    )
    brand_name: Annotated[str | None, Field(min_length=1, max_length=BRAND_NAME_LENGTH_MAX)] = Field(
        default=None, description="resellers and the provider: what their children's notices are signed with"
    )
    email_from: EmailAddress | None = Field(
        default=None, description="resellers and the provider: the address their children's notices come from"
    )


class NoticesOut(BaseModel):
    login: str
    currency: str
    email: str | None
    threshold: Decimal | None = Field(description="the node's own; null: its owner's default applies")
    default_threshold: Decimal | None = Field(description="for the node's children")
    brand_name: str | None
    email_from: str | None
    effective_threshold: Decimal | None = Field(description="the threshold in force; null: no notices")
    armed: bool = Field(description="the next fall below the threshold sends a notice")
    crossings: int = Field(description="falls below the threshold so far, one notice each")


class EmailOut(BaseModel):
    id: int
    kind: str
    sender: str
    recipient: str
    subject: str
    body: str
    state: EmailState
    attempts: int
    next_at: datetime | None = Field(description="when the next attempt is due (state due)")
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class EmailPage(BaseModel):
    items: list[EmailOut]
    next_before_id: int | None = Field(description="pass as before_id for the next page; null at the end")


def _amount(micros: int | None) -> Decimal | None:
    return None if micros is None else to_decimal(micros)


def notices_out(n: NodeNotices) -> NoticesOut:
    return NoticesOut(
        login=n.login,
        currency=n.currency,
        email=n.email,
        threshold=_amount(n.threshold_micros),
        default_threshold=_amount(n.default_threshold_micros),
        brand_name=n.brand_name,
        email_from=n.email_from,
        effective_threshold=_amount(n.effective_threshold_micros),
        armed=n.alert.armed,
        crossings=n.alert.crossings,
    )


def email_out(e: EmailRecord) -> EmailOut:
    return EmailOut(
        id=e.id,
        kind=e.kind,
        sender=e.sender,
        recipient=e.recipient,
        subject=e.subject,
        body=e.body,
        state=e.state,
        attempts=e.attempts,
        next_at=e.next_at,
        last_error=e.last_error,
        created_at=e.created_at,
        sent_at=e.sent_at,
    )


def _micros(text: str | None) -> int | None:
    return None if text is None else to_micros(text)


def changes_of(body: NoticesIn) -> NoticeChanges:
    """Only the fields the body names: the others are kept as they are."""
    sent = body.model_fields_set
    return NoticeChanges(
        email=body.email if "email" in sent else KEEP,
        threshold_micros=_micros(body.threshold) if "threshold" in sent else KEEP,
        default_threshold_micros=_micros(body.default_threshold) if "default_threshold" in sent else KEEP,
        brand_name=body.brand_name if "brand_name" in sent else KEEP,
        email_from=body.email_from if "email_from" in sent else KEEP,
    )


@router.get("/notices", summary="A node's low-balance notice settings and whether its alert is armed")
def get_notices(login: str, database: DatabaseDep, principal: PrincipalDep) -> NoticesOut:
    return notices_out(notices.get_notices(database, principal, login=login))


@router.put("/notices", summary="Set a node's notice address, threshold or (resellers) branding; only fields sent")
def set_notices(login: str, body: NoticesIn, database: DatabaseDep, principal: PrincipalDep) -> NoticesOut:
    return notices_out(notices.set_notices(database, login=login, changes=changes_of(body), principal=principal))


@router.get("/emails", summary="The emails sent (or due, or failed) to a node, newest first")
def list_emails(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    before_id: Annotated[BeforeId | None, Query()] = None,
    state: EmailState | None = None,
) -> EmailPage:
    emails = notices.list_emails(database, principal, login=login, limit=limit, state=state, before_id=before_id)
    return EmailPage(
        items=[email_out(e) for e in emails], next_before_id=emails[-1].id if len(emails) == limit else None
    )
