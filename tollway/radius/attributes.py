"""The RADIUS dictionary shipped with Tollway, and reading attribute values out of pyrad packets.

pyrad has no type hints; this module and ``server`` are where its untyped values become typed ones.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from pyrad.dictionary import Dictionary  # type: ignore[import-untyped]

from tollway.errors import NUL
from tollway.radius.model import vsa_value

REPLACEMENT_CHARACTER = "\ufffd"

DICTIONARY_FILE = "dictionary"  # package data of tollway.radius: RFC 2865/2866/2869/5176 and Cisco's VSAs
CISCO_VSAS = frozenset(
    {
        "h323-conf-id",
        "h323-call-origin",
        "h323-setup-time",
        "h323-disconnect-cause",
        "h323-credit-time",
        "h323-return-code",
    }
)


@functools.cache
def dictionary() -> Any:
    """The dictionary, read once per process (a pyrad ``Dictionary``, read-only once made)."""
    with resources.files("tollway.radius").joinpath(DICTIONARY_FILE).open("r", encoding="utf-8") as stream:
        return Dictionary(stream)


def text(packet: Any, name: str) -> str | None:
    """The first value of a string attribute, Cisco h323 VSAs without their ``name=`` part; None if absent.

    A value that is not UTF-8 is read with replacement characters, so it can never match an account.
    NUL octets, which RFC 2865 (section 5) says a server must be able to deal with: trailing ones are the
    end of a C string some gateways send and are dropped; one inside the value becomes a replacement
    character too, so it matches no account or number, and can be stored (PostgreSQL cannot store NUL).
    """
    values = packet.get(name)
    return _decoded(name, values[0]) if values else None


def texts(packet: Any, name: str) -> list[str]:
    """Every value of a string attribute sent more than once (``Cisco-AVPair``), read as ``text`` reads one."""
    return [_decoded(name, value) for value in packet.get(name) or []]


def _decoded(name: str, value: Any) -> str:
    decoded = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if NUL in decoded:
        decoded = decoded.rstrip(NUL).replace(NUL, REPLACEMENT_CHARACTER)
    return vsa_value(name, decoded) if name in CISCO_VSAS else decoded


def integer(packet: Any, name: str) -> int | None:
    """The first value of an integer attribute; None if absent. A malformed one raises (the packet is dropped)."""
    values = packet.get(name)
    if not values:
        return None
    value = values[0]
    if not isinstance(value, int):
        raise ValueError(f"{name} is not an integer")
    return value
