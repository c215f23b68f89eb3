"""Organizations (UC/PBX clients), the pure part: users, extensions, SIP digest credentials, limits, caps.

VoipPanel3's levels: an organization (a pbx client, owned by an L1 reseller or directly by an L2) has users
(people); each user has any number of extensions within its organization's limits. A user's account is a
client node of type ``user`` below its organization, so it has a wallet, a tariff and plans like any account.

Who pays for a user's calls is the organization's choice (``Wallet``):
- ``user``: the user's account is the first level of the chain (user -> organization -> its reseller ...),
  every level paying its owner at its own tariff;
- ``organization``: the organization is the first level and its users only have optional spending caps per
  day and per month, which credit control enforces in real time as floors of their own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from tollway.errors import Refusal
from tollway.money import AMOUNT_MICROS_MAX

EXTENSION_DIGITS_MIN = 2
EXTENSION_DIGITS_MAX = 6
EXTENSION_DIGITS_DEFAULT = 3
SIP_SECRET_LENGTH = 24  # letters and digits from a cryptographic source: about 142 bits
SIP_USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")
# A host name: labels of letters, digits and inner hyphens, separated by dots (what a SIP domain is).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
SIP_DOMAIN_PATTERN = re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\Z")
LIMIT_MAX = 100_000  # the largest users or extensions-per-user limit anyone may set


class Wallet(StrEnum):
    USER = "user"  # each user pays from its own account, a level of the chain
    ORGANIZATION = "organization"  # the organization pays; its users have caps


class OrganizationRole(StrEnum):
    ADMIN = "admin"  # manages the organization's users, extensions, caller ids and FollowMe
    MEMBER = "member"  # manages its own extensions' caller ids and FollowMe


class ExtensionStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # registers and calls no more; its number stays taken


@dataclass(frozen=True, slots=True)
class Settings:
    """An organization's own settings."""

    wallet: Wallet
    extension_digits: int
    sip_domain: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits an owner sets on an organization, or on a reseller for every organization below it."""

    users: int | None = None
    extensions_per_user: int | None = None


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Caps:
    """What an organization that pays lets one user spend, in its currency; None: no cap."""

    day_micros: int | None = None
    month_micros: int | None = None


@dataclass(frozen=True, slots=True)
class Extension:
    id: int
    organization_id: int
    user_node_id: int
    number: str
    sip_username: str
    ha1: str
    secret_sealed: str
    voicemail: bool
    recording: bool
    status: ExtensionStatus


def check_extension_digits(digits: int) -> int:
    if not EXTENSION_DIGITS_MIN <= digits <= EXTENSION_DIGITS_MAX:
        raise Refusal(
            "extension_digits_invalid",
            f"extension numbers have {EXTENSION_DIGITS_MIN} to {EXTENSION_DIGITS_MAX} digits",
        )
    return digits


def check_extension_number(number: str, digits: int) -> str:
    """An extension number: exactly the organization's number of digits, not starting with 0 (the
    national prefix of most dial plans), so that it never reads as the start of an outside number."""
    if not (len(number) == digits and number.isascii() and number.isdigit() and number[0] != "0"):
        raise Refusal("extension_number_invalid", f"an extension number here has {digits} digits, not starting with 0")
    return number


def check_sip_username(username: str) -> str:
    if not SIP_USERNAME_PATTERN.match(username):
        raise Refusal(
            "sip_username_invalid",
            "a SIP username is 1-63 characters: lower-case letters, digits and . _ -, starting with a letter or digit",
        )
    return username


def check_sip_domain(domain: str) -> str:
    if not SIP_DOMAIN_PATTERN.match(domain):
        raise Refusal("sip_domain_invalid", f"{domain!r} is not a host name such as acme.pbx.example.net")
    return domain


def sip_domain_for(login: str) -> str:
    """The default SIP domain of an organization: its login as a host name label."""
    label = re.sub(r"[^a-z0-9-]+", "-", login.lower()).strip("-")[:63].strip("-")
    return label or "pbx"


def digest_ha1(username: str, realm: str, secret: str) -> str:
    """RFC 2617's HA1 = MD5(username:realm:password): what a registrar needs to check a digest response.

    MD5 is what SIP phones speak; HA1 alone lets anyone answer challenges for this realm, so it is served
    only to switches, and the secret itself is kept sealed, never hashed only, so it can be shown or the
    realm changed without asking every user for a new one.
    """
    return hashlib.md5(f"{username}:{realm}:{secret}".encode(), usedforsecurity=False).hexdigest()


def check_limit(name: str, value: int | None) -> int | None:
    if value is not None and not 0 <= value <= LIMIT_MAX:
        raise Refusal(f"{name}_invalid", f"{name.replace('_', ' ')} is 0 to {LIMIT_MAX}, or none")
    return value


def check_limits(limits: Limits) -> Limits:
    check_limit("users_limit", limits.users)
    check_limit("extensions_per_user_limit", limits.extensions_per_user)
    return limits


def narrowest(limits: Sequence[Limits]) -> Limits:
    """The limits in force: the least of each, over an organization and every owner above it."""
    users = [lim.users for lim in limits if lim.users is not None]
    extensions = [lim.extensions_per_user for lim in limits if lim.extensions_per_user is not None]
    return Limits(min(users, default=None), min(extensions, default=None))


def check_within(limits: Limits, bounds: Limits) -> None:
    """An owner narrows, never widens, what the owners above it allow."""
    for name, value, bound in (
        ("users_limit", limits.users, bounds.users),
        ("extensions_per_user_limit", limits.extensions_per_user, bounds.extensions_per_user),
    ):
        if bound is not None and (value is None or value > bound):
            raise Refusal(f"{name}_wider_than_owner", f"{name.replace('_', ' ')} may be at most {bound} here")


def check_users_room(limits: Limits, users: int) -> None:
    """``users``: the organization's users that are not closed."""
    if limits.users is not None and users >= limits.users:
        raise Refusal("users_limit_reached", f"the organization has its {limits.users} users")


def check_extensions_room(limits: Limits, extensions: int) -> None:
    """``extensions``: the user's extensions."""
    if limits.extensions_per_user is not None and extensions >= limits.extensions_per_user:
        raise Refusal(
            "extensions_limit_reached", f"the user has its {limits.extensions_per_user} extensions, the most allowed"
        )


def check_caps(caps: Caps) -> Caps:
    for name, value in (("daily_cap", caps.day_micros), ("monthly_cap", caps.month_micros)):
        if value is not None and not 0 <= value <= AMOUNT_MICROS_MAX:
            raise Refusal(f"{name}_invalid", f"a {name.replace('_', ' ')} is an amount of zero or more, or none")
    return caps


def cap_periods(now: datetime, time_zone: str) -> tuple[str, str]:
    """The day (YYYY-MM-DD) and month (YYYY-MM) that ``now`` falls in, in the organization's time zone."""
    local = now.astimezone(ZoneInfo(time_zone))
    return local.strftime("%Y-%m-%d"), local.strftime("%Y-%m")
