"""Pure rules of low-balance notices (docs/design.md section 5). No I/O.

The level an account's threshold is compared with is its wallet's balance plus its credit limit:
credits posted - debits posted + credit limit. Reservations of live calls are left out on purpose: a
call reserves talk time when it starts and releases what it did not use when it ends, so counting them
would take an account below its threshold and back with every call. Only money that really moved counts.

An account is *armed* until its level falls below its threshold; that fall queues exactly one notice and
disarms it. It is re-armed once its level is back at or above the threshold, and the next fall queues
the next notice. The number of falls so far names each notice, which makes queuing it idempotent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address, HeaderRegistry
from enum import StrEnum

from tollway.errors import Refusal, require
from tollway.money import AMOUNT_MICROS_MAX
from tollway.tree.model import NAME_FORBIDDEN_CATEGORIES

LOW_BALANCE_KIND = "low_balance"
FALLBACK_LANGUAGE = "en"
THRESHOLD_MICROS_MAX = AMOUNT_MICROS_MAX
EMAIL_LENGTH_MAX = 254  # RFC 5321: a forward path holds at most 256 octets, angle brackets included
EMAIL_LOCAL_LENGTH_MAX = 64
BRAND_NAME_LENGTH_MAX = 200
SENDER_LENGTH_MAX = 320  # a From header value as stored: "Brand name <address>"
SUBJECT_LENGTH_MAX = 300
LAST_ERROR_LENGTH_MAX = 400
# Retries of one email: 30 s, 1, 2, 4, 8, 16, 32 min, then hourly; about three hours from first to last.
SEND_ATTEMPTS_MAX = 10
RETRY_DELAY_SECONDS_FIRST = 30
RETRY_DELAY_SECONDS_MAX = 3_600

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
LOCAL_PART_PATTERN = re.compile(rf"^{_ATOM}(\.{_ATOM})*\Z")  # a dot-atom: no quoted local parts
DOMAIN_LABEL_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_HEADERS = HeaderRegistry()  # the standard library's header parser, for configured senders


class Crossing(StrEnum):
    NONE = "none"
    FELL = "fell"  # armed, and now below its threshold: one notice, and disarmed
    ROSE = "rose"  # disarmed, and back at or above its threshold: armed again


@dataclass(frozen=True, slots=True)
class Alert:
    """An account's alert: whether the next fall below its threshold sends a notice, and how many did."""

    armed: bool
    crossings: int

    def __post_init__(self) -> None:
        require(self.crossings >= 0, f"an alert cannot have {self.crossings} crossings")


ARMED = Alert(armed=True, crossings=0)  # an account nothing was ever sent to


class EmailState(StrEnum):
    DUE = "due"
    SENT = "sent"
    FAILED = "failed"


def level_micros(*, credits_posted: int, debits_posted: int, credit_limit_micros: int) -> int:
    """What the threshold is compared with: balance plus credit limit, live calls' reservations left out."""
    return credits_posted - debits_posted + credit_limit_micros


def effective_threshold(own_micros: int | None, owner_default_micros: int | None) -> int | None:
    """The account's own threshold, else its owner's default for its children; None: no notices."""
    return own_micros if own_micros is not None else owner_default_micros


def crossing(alert: Alert, *, level_micros: int, threshold_micros: int | None) -> Crossing:
    """Below means strictly below; at or above re-arms. Without a threshold nothing changes."""
    if threshold_micros is None:
        return Crossing.NONE
    below = level_micros < threshold_micros
    if alert.armed and below:
        return Crossing.FELL
    if not alert.armed and not below:
        return Crossing.ROSE
    return Crossing.NONE


def after(alert: Alert, change: Crossing) -> Alert:
    """The alert once ``change`` is applied: a fall disarms and counts, a rise re-arms."""
    if change is Crossing.FELL:
        return Alert(armed=False, crossings=alert.crossings + 1)
    if change is Crossing.ROSE:
        return Alert(armed=True, crossings=alert.crossings)
    return alert


def notice_key(node_id: int, crossings: int) -> str:
    """The idempotency key of the notice of an account's ``crossings``-th fall."""
    require(node_id > 0 and crossings > 0, f"no notice key for node {node_id}, crossing {crossings}")
    return f"{LOW_BALANCE_KIND}:{node_id}:{crossings}"


def retry_delay_seconds(attempt: int) -> int:
    """How long to wait after failed attempt number ``attempt``: 30 s, doubling, at most an hour."""
    require(attempt >= 1, f"attempt {attempt} is not a positive attempt number")
    doublings = min(attempt - 1, 7)  # 30 s * 2**7 is past the cap already; bounds the shift for any attempt
    return min(RETRY_DELAY_SECONDS_MAX, RETRY_DELAY_SECONDS_FIRST << doublings)


def next_attempt_in_seconds(attempt: int, *, retryable: bool) -> int | None:
    """After failed attempt ``attempt``: seconds until the next one, or None to give up (the email fails)."""
    if not retryable or attempt >= SEND_ATTEMPTS_MAX:
        return None
    return retry_delay_seconds(attempt)


def language_candidates(language: str) -> list[str]:
    """The languages to try, most specific first: 'pt_BR' gives pt_BR, pt, en."""
    normalized = language.replace("-", "_")
    base = normalized.split("_", 1)[0].lower()
    found: list[str] = []
    for candidate in (normalized, base, FALLBACK_LANGUAGE):
        if candidate and candidate not in found:
            found.append(candidate)
    return found


def one_line(text: str) -> str:
    """``text`` with control characters and line breaks made spaces: nothing can start a new header line."""
    return "".join(" " if unicodedata.category(c) in NAME_FORBIDDEN_CATEGORIES else c for c in text)


def check_email(address: str, *, dotted_domain: bool = True) -> str:
    """A plain ASCII address, local@domain: a dot-atom local part and host-name labels.

    Stricter than RFC 5322 on purpose (no quoted local parts, no comments, no address literals): an
    address that passes can be written in a header and an SMTP command as it is. ``dotted_domain``
    asks for at least two labels, which catches 'alice@examplecom'; only a configured sender may skip it.
    """
    local, at, domain = address.rpartition("@")
    labels = domain.split(".")
    valid = (
        bool(at)
        and len(address) <= EMAIL_LENGTH_MAX
        and len(local) <= EMAIL_LOCAL_LENGTH_MAX
        and LOCAL_PART_PATTERN.match(local) is not None
        and all(DOMAIN_LABEL_PATTERN.match(label) for label in labels)
        and (len(labels) >= 2 or not dotted_domain)
        and not labels[-1].isdigit()
    )
    if not valid:
        raise Refusal("email_invalid", f"{address!r} is not an email address such as billing@example.com")
    return address


def check_brand_name(name: str) -> str:
    forbidden = any(unicodedata.category(c) in NAME_FORBIDDEN_CATEGORIES for c in name)
    if not name.strip() or len(name) > BRAND_NAME_LENGTH_MAX or forbidden:
        raise Refusal("brand_name_invalid", f"a brand name is 1-{BRAND_NAME_LENGTH_MAX} printable characters")
    return name


def check_threshold(micros: int) -> int:
    if not 0 <= micros <= THRESHOLD_MICROS_MAX:
        raise Refusal("threshold_invalid", "a low-balance threshold is zero or a positive amount")
    return micros


@dataclass(frozen=True, slots=True)
class Branding:
    """Who a notice comes from: the name it is signed with and the address it is sent from."""

    name: str
    address: str


def parse_mailbox(text: str) -> Branding:
    """A configured sender, 'Name <address>' or a bare address (its name then is the address)."""
    refusal = Refusal("mail_from_invalid", f"{text!r} is not a sender such as 'Billing <billing@example.com>'")
    try:
        header = _HEADERS("From", text)
    except (ValueError, TypeError, IndexError):  # the standard parser's ways of saying "not an address"
        raise refusal from None
    addresses: Sequence[Address] = getattr(header, "addresses", ())
    if header.defects or len(addresses) != 1:
        raise refusal
    try:
        address = check_email(addresses[0].addr_spec, dotted_domain=False)
    except Refusal:
        raise refusal from None
    return Branding(name=one_line(addresses[0].display_name).strip() or address, address=address)


def branding(owners: Sequence[tuple[str | None, str | None]], *, default: Branding) -> Branding:
    """The nearest brand name and the nearest sender address up the chain, each on its own.

    ``owners``: (brand name, sender address) of the account's owner, then of its owner, up to the
    provider. A reseller with a name but no address of its own signs with its name and sends from the
    nearest address above it; with neither, the nearest reseller above it that has them speaks for it.
    """
    name = next((brand for brand, _ in owners if brand), default.name)
    address = next((sender for _, sender in owners if sender), default.address)
    return Branding(name=name, address=address)


def mailbox(sender: Branding) -> str:
    """The From header: 'Brand <address>', quoted where RFC 5322 needs it, within ``SENDER_LENGTH_MAX``."""
    name = one_line(sender.name)
    text = str(Address(display_name=name, addr_spec=sender.address))
    while len(text) > SENDER_LENGTH_MAX and name:  # quoting may lengthen the name: cut until it fits
        name = name[: max(0, len(name) - max(8, len(text) - SENDER_LENGTH_MAX))].rstrip()
        text = str(Address(display_name=name, addr_spec=sender.address))
    require(len(text) <= SENDER_LENGTH_MAX, "a sender address longer than a sender may be")
    return text


def bounded(text: str, length_max: int) -> str:
    """``text`` cut to ``length_max`` characters, with an ellipsis when cut."""
    return text if len(text) <= length_max else text[: length_max - 1] + "…"
