"""Lines, the pure part: what a line presents as its caller id, and where it rings when it is called (FollowMe).

A line is what places and takes calls: a client account (a retail SIP account, a wholesale trunk) or one
extension of an organization. Both have the same settings:

- **Caller ids**: the numbers the line may present on calls to the outside, one of them its default. A
  client's numbers are verified by an owner above it (its reseller checked the client holds the number)
  before they may be presented. An extension chooses among its organization's verified numbers, so its own
  need no verification of their own.
- **FollowMe**: an ordered list of numbers, each rung for its ring time in turn when the line does not
  answer; an extension's list may hold its organization's extension numbers (calls inside it) and outside
  numbers. An empty list is FollowMe off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tollway.errors import Refusal
from tollway.rating.dialplan import E164_DIGITS

CALLER_IDS_MAX = 20  # numbers one line may hold
E164_DIGITS_MIN = 6
E164_DIGITS_MAX = 15
FOLLOW_ME_ENTRIES_MAX = 10
RING_SECONDS_MIN = 5
RING_SECONDS_MAX = 120
RING_SECONDS_DEFAULT = 20


@dataclass(frozen=True, slots=True)
class LineRef:
    """Which line: a client (``extension_id`` None), or an extension of the organization ``node_id``."""

    node_id: int
    extension_id: int | None = None


@dataclass(frozen=True, slots=True)
class CallerId:
    number: str  # E.164 with its '+'
    verified: bool
    default: bool


@dataclass(frozen=True, slots=True)
class FollowMeEntry:
    number: str  # an outside number in E.164 with its '+', or an extension number of the line's organization
    ring_seconds: int = RING_SECONDS_DEFAULT


def check_e164(number: str) -> str:
    """A number a line may present, as E.164 with its '+': '+44 20 7946 0000' -> '+442079460000'."""
    try:
        digits = E164_DIGITS.normalize(number)
    except Refusal:
        digits = ""
    if not (E164_DIGITS_MIN <= len(digits) <= E164_DIGITS_MAX) or digits.startswith("0"):
        raise Refusal("number_invalid", f"{number!r} is not an international number such as +44 20 7946 0000")
    return "+" + digits


def check_caller_id_room(held: int) -> None:
    if held >= CALLER_IDS_MAX:
        raise Refusal("caller_ids_limit_reached", f"a line holds at most {CALLER_IDS_MAX} caller ids")


def presentable(caller_ids: Sequence[CallerId]) -> list[CallerId]:
    """The numbers a line may present now: the verified ones."""
    return [caller_id for caller_id in caller_ids if caller_id.verified]


def default_caller_id(caller_ids: Sequence[CallerId]) -> str | None:
    """What a line presents when it asks for nothing else: its default if verified, else its first verified."""
    verified = presentable(caller_ids)
    chosen = next((c for c in verified if c.default), verified[0] if verified else None)
    return chosen.number if chosen else None


def check_follow_me(
    entries: Sequence[FollowMeEntry], *, extension_digits: int | None, own_number: str | None = None
) -> list[FollowMeEntry]:
    """The list as it is stored: outside numbers in E.164, extension numbers as they are dialed inside.

    ``extension_digits``: the length of the organization's extension numbers (None for a client's line,
    which has no extensions to ring); ``own_number``: the line's own extension number, which may lead the
    list (ring the phones first), but not twice.
    """
    if len(entries) > FOLLOW_ME_ENTRIES_MAX:
        raise Refusal("follow_me_too_long", f"FollowMe holds at most {FOLLOW_ME_ENTRIES_MAX} numbers")
    checked: list[FollowMeEntry] = []
    for entry in entries:
        if not RING_SECONDS_MIN <= entry.ring_seconds <= RING_SECONDS_MAX:
            raise Refusal(
                "ring_seconds_invalid", f"a number rings for {RING_SECONDS_MIN} to {RING_SECONDS_MAX} seconds"
            )
        number = entry.number.strip()
        internal = extension_digits is not None and number.isascii() and number.isdigit()
        if internal and len(number) == extension_digits:
            checked.append(FollowMeEntry(number, entry.ring_seconds))
        else:
            checked.append(FollowMeEntry(check_e164(number), entry.ring_seconds))
    numbers = [entry.number for entry in checked]
    if len(set(numbers)) != len(numbers):
        raise Refusal("follow_me_repeated", "a number appears twice in FollowMe")
    if own_number is not None and own_number in numbers[1:]:
        raise Refusal("follow_me_own_number", "the line's own number may only come first in its FollowMe")
    return checked


def follow_me_seconds(entries: Sequence[FollowMeEntry]) -> int:
    """How long a caller may ring through the whole list, at most."""
    return sum(entry.ring_seconds for entry in entries)
