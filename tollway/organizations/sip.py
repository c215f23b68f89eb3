"""What a switch asks Tollway about a SIP request from an extension: the credential to check its digest, and
where the call goes (another extension of the organization, with its FollowMe, or the outside through
credit control), with the caller id it presents. Tollway is the switch's subscriber database.

The answer is flat text, made for Kamailio's ``json`` module (no arrays): lists are space-separated and
FollowMe entries read ``ext:<SIP username>:<ring seconds>`` (another extension) or
``out:<E.164 number>:<ring seconds>`` (an outside number, which the switch authorizes as a call of the
called extension, which forwards it and so pays for it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import Connection

from tollway.access.model import Action, Decision, Principal, decide, place_of
from tollway.lines import model as lines_model
from tollway.lines import store as lines_store
from tollway.lines.model import LineRef
from tollway.organizations import store
from tollway.organizations.model import Extension, ExtensionStatus, Settings
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Status

SIP_TEXT_LENGTH_MAX = 253  # a domain; usernames and numbers are shorter


@dataclass(frozen=True, slots=True)
class Lookup:
    status: str  # "found", or "unknown" (no such extension, disabled, or not this switch's)
    ha1: str = ""
    organization: str = ""
    extension: str = ""  # its number
    caller_id: str = ""  # what it presents on outside calls ("": nothing verified to present)
    caller_ids: str = ""  # every number it may present, space-separated
    route: str = ""  # with a callee: "internal", "outside" or "unavailable" (a disabled extension)
    target: str = ""  # internal: the SIP username of the extension called
    follow_me: str = ""  # internal: where the call rings, in order (see above); "": the target alone
    # Flags for the switch to act on (Tollway itself records nothing and keeps no voicemail): the extension's
    # own, and with an internal route the called extension's.
    voicemail: bool = False  # its unanswered calls go to the operator's voicemail server
    recording: bool = False  # its calls are recorded by the operator's media server
    target_voicemail: bool = False
    target_recording: bool = False


UNKNOWN = Lookup(status="unknown")


def lookup(
    database: Database, *, domain: str, username: str, callee: str | None = None, principal: Principal | None = None
) -> Lookup:
    if any(len(text) > SIP_TEXT_LENGTH_MAX or "\x00" in text for text in (domain, username, callee or "")):
        return UNKNOWN
    with database.reading() as connection:
        found = store.find_by_domain(connection, domain)
        if found is None:
            return UNKNOWN
        organization_id, settings = found
        extension = store.find_by_username(connection, organization_id, username)
        if extension is None or not _serves(connection, principal, extension):
            return UNKNOWN
        organization = tree_store.get_node(connection, organization_id)
        numbers = lines_store.caller_ids_of(connection, LineRef(organization_id, extension.id))
        answer = Lookup(
            status="found",
            ha1=extension.ha1,
            organization=organization.login if organization else "",
            extension=extension.number,
            caller_id=lines_model.default_caller_id(numbers) or "",
            caller_ids=" ".join(c.number for c in lines_model.presentable(numbers)),
            voicemail=extension.voicemail,
            recording=extension.recording,
        )
        return answer if callee is None else _routed(connection, answer, settings, organization_id, callee)


def _serves(connection: Connection, principal: Principal | None, extension: Extension) -> bool:
    """An active extension of an active user that this switch may serve (its user is in the switch's subtree).
    A suspended or closed user's extensions neither register nor call."""
    if extension.status is not ExtensionStatus.ACTIVE:
        return False
    user = tree_store.get_node(connection, extension.user_node_id)
    if user is None or user.status is not Status.ACTIVE:
        return False
    return principal is None or decide(principal, Action.CALLS_CONTROL, place_of(user)) is Decision.ALLOWED


def _routed(connection: Connection, answer: Lookup, settings: Settings, organization_id: int, callee: str) -> Lookup:
    internal = callee.isascii() and callee.isdigit() and len(callee) == settings.extension_digits
    target = store.find_extension(connection, organization_id, callee) if internal else None
    if target is None:
        return replace(answer, route="outside")
    if target.status is not ExtensionStatus.ACTIVE:
        return replace(answer, route="unavailable")
    entries = lines_store.follow_me_of(connection, LineRef(organization_id, target.id))
    rings: list[str] = []
    for entry in entries:
        if entry.number.startswith("+"):
            rings.append(f"out:{entry.number}:{entry.ring_seconds}")
            continue
        other = store.find_extension(connection, organization_id, entry.number)
        if other is not None and other.status is ExtensionStatus.ACTIVE:
            rings.append(f"ext:{other.sip_username}:{entry.ring_seconds}")
    return replace(
        answer,
        route="internal",
        target=target.sip_username,
        follow_me=" ".join(rings),
        target_voicemail=target.voicemail,
        target_recording=target.recording,
    )
