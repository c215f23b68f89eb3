"""Use cases of lines: a client's or an extension's caller ids and FollowMe. Each runs in one transaction.

A line is named by a login and, for an extension, its number in that organization:
``login="alice"`` is the client alice's line; ``login="acme-pbx", extension="101"`` is extension 101 of the
organization acme-pbx. Who may do what is the one rule of ``access.model``, applied to the node the line
belongs to: the client itself, or for an extension the account of the user it belongs to (so the
organization's admins, the user and the owners above see it, and nobody else does):
- reading: ``node:read``; changing caller ids and FollowMe: ``lines:write``;
- verifying a client's number: ``node:update``, an owner's action (never on one's own line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.access.model import Action, Decision, Principal, authorize, decide, place_of
from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal, present
from tollway.lines import model, store
from tollway.lines.model import CallerId, FollowMeEntry, LineRef
from tollway.organizations import store as organizations_store
from tollway.organizations.model import Extension
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, Node, NodeKind


@dataclass(frozen=True, slots=True)
class LineView:
    """A line's settings as a portal or the API shows them."""

    login: str
    extension: str | None
    caller_ids: list[CallerId]
    default_caller_id: str | None  # what it presents when nothing else is asked for
    choices: list[str]  # for an extension: its organization's verified numbers, which it may take
    follow_me: list[FollowMeEntry]


@dataclass(frozen=True, slots=True)
class _Line:
    ref: LineRef
    node: Node  # the client, or the organization of the extension
    holder: Node  # whose line it is, for access: the client, or the extension's user
    extension: Extension | None
    extension_digits: int | None


def _resolve(connection: Connection, login: str, extension: str | None, *, lock: bool = False) -> _Line | None:
    node = tree_store.find_node(connection, login, lock=lock)
    if node is None or node.position.kind is not NodeKind.CLIENT:
        return None
    if extension is None:
        if node.position.client_type is ClientType.USER:
            return None  # a user's lines are its extensions
        return _Line(LineRef(node.id), node, node, None, None)
    settings = organizations_store.get_settings(connection, node.id)
    found = organizations_store.find_extension(connection, node.id, extension) if "\x00" not in extension else None
    if settings is None or found is None:
        return None
    holder = present(tree_store.get_node(connection, found.user_node_id), f"user of extension {found.id}")
    return _Line(LineRef(node.id, found.id), node, holder, found, settings.extension_digits)


def _line(
    connection: Connection,
    principal: Principal | None,
    login: str,
    extension: str | None,
    action: Action,
    *,
    lock: bool,
) -> _Line:
    line = _resolve(connection, login, extension, lock=lock)
    what = ("line", login) if extension is None else ("extension", f"{login}/{extension}")
    if line is None:
        raise NotFound(*what)
    try:
        authorize(principal, action, line.holder)
    except NotFound:
        raise NotFound(*what) from None
    return line


def _view(connection: Connection, line: _Line, login: str, extension: str | None) -> LineView:
    numbers = store.caller_ids_of(connection, line.ref)
    choices: list[str] = []
    if line.extension is not None:
        choices = [c.number for c in model.presentable(store.caller_ids_of(connection, LineRef(line.node.id)))]
    return LineView(
        login=login,
        extension=extension,
        caller_ids=numbers,
        default_caller_id=model.default_caller_id(numbers),
        choices=choices,
        follow_me=store.follow_me_of(connection, line.ref),
    )


def get_line(
    database: Database, *, login: str, extension: str | None = None, principal: Principal | None = None
) -> LineView:
    with database.reading() as connection:
        line = _line(connection, principal, login, extension, Action.NODE_READ, lock=False)
        return _view(connection, line, login, extension)


def add_caller_id(
    database: Database, *, login: str, number: str, extension: str | None = None, principal: Principal | None = None
) -> LineView:
    """A number the line may present. A client's is verified when an owner above adds it, else it waits for
    one to verify it; an extension takes one of its organization's verified numbers."""
    e164 = model.check_e164(number)
    now = utc_now()

    def use_case(connection: Connection) -> LineView:
        line = _line(connection, principal, login, extension, Action.LINES_WRITE, lock=True)
        held = store.caller_ids_of(connection, line.ref)
        if any(c.number == e164 for c in held):
            raise Refusal("caller_id_exists", f"{e164} is already a caller id of this line")
        model.check_caller_id_room(len(held))
        if line.extension is not None:
            ours = model.presentable(store.caller_ids_of(connection, LineRef(line.node.id)))
            if e164 not in {c.number for c in ours}:
                raise Refusal("caller_id_not_organizations", f"{e164} is not a verified number of {line.node.login}")
            verified = True
        else:
            verified = _may_verify(principal, line.holder)
        store.insert_caller_id(connection, line.ref, number=e164, verified=verified, now=now)
        if not held:
            store.update_caller_id(connection, line.ref, e164, is_default=True)
        _audit(connection, principal, "line.caller_id.add", line, {"number": e164, "verified": verified})
        return _view(connection, line, login, extension)

    return database.run(use_case)


def _may_verify(principal: Principal | None, holder: Node) -> bool:
    return principal is None or decide(principal, Action.NODE_UPDATE, place_of(holder)) is Decision.ALLOWED


def verify_caller_id(database: Database, *, login: str, number: str, principal: Principal | None = None) -> LineView:
    """An owner above the client confirms the client holds ``number``: it may now be presented."""
    e164 = model.check_e164(number)
    now = utc_now()

    def use_case(connection: Connection) -> LineView:
        line = _line(connection, principal, login, None, Action.NODE_READ, lock=True)
        authorize(principal, Action.NODE_UPDATE, line.holder)
        if not store.update_caller_id(connection, line.ref, e164, verified=True, verified_at=now):
            raise NotFound("caller_id", e164)
        _audit(connection, principal, "line.caller_id.verify", line, {"number": e164})
        return _view(connection, line, login, None)

    return database.run(use_case)


def set_default_caller_id(
    database: Database, *, login: str, number: str, extension: str | None = None, principal: Principal | None = None
) -> LineView:
    e164 = model.check_e164(number)

    def use_case(connection: Connection) -> LineView:
        line = _line(connection, principal, login, extension, Action.LINES_WRITE, lock=True)
        if e164 not in {c.number for c in store.caller_ids_of(connection, line.ref)}:
            raise NotFound("caller_id", e164)
        store.clear_default(connection, line.ref)
        store.update_caller_id(connection, line.ref, e164, is_default=True)
        _audit(connection, principal, "line.caller_id.default", line, {"number": e164})
        return _view(connection, line, login, extension)

    return database.run(use_case)


def remove_caller_id(
    database: Database, *, login: str, number: str, extension: str | None = None, principal: Principal | None = None
) -> LineView:
    """The line presents ``number`` no more. An organization's number goes from its extensions too."""
    e164 = model.check_e164(number)

    def use_case(connection: Connection) -> LineView:
        line = _line(connection, principal, login, extension, Action.LINES_WRITE, lock=True)
        held = store.caller_ids_of(connection, line.ref)
        if not store.delete_caller_id(connection, line.ref, e164):
            raise NotFound("caller_id", e164)
        if line.extension is None and line.node.position.client_type is ClientType.PBX:
            store.delete_extension_caller_ids(connection, line.node.id, e164)
        if any(c.number == e164 and c.default for c in held):
            remaining = [c for c in held if c.number != e164]
            if remaining:
                store.update_caller_id(connection, line.ref, remaining[0].number, is_default=True)
        _audit(connection, principal, "line.caller_id.remove", line, {"number": e164})
        return _view(connection, line, login, extension)

    return database.run(use_case)


def set_follow_me(
    database: Database,
    *,
    login: str,
    entries: Sequence[FollowMeEntry],
    extension: str | None = None,
    principal: Principal | None = None,
) -> LineView:
    """Replace the line's FollowMe list (empty: FollowMe off)."""
    now = utc_now()

    def use_case(connection: Connection) -> LineView:
        line = _line(connection, principal, login, extension, Action.LINES_WRITE, lock=True)
        if line.extension is None and line.node.position.client_type is ClientType.PBX:
            raise Refusal("follow_me_per_extension", "an organization's FollowMe is set on each extension")
        checked = model.check_follow_me(
            entries,
            extension_digits=line.extension_digits,
            own_number=line.extension.number if line.extension else None,
        )
        if line.extension is not None:
            _check_internal_numbers_exist(connection, line, checked)
        store.replace_follow_me(connection, line.ref, checked, now=now)
        summary = [f"{entry.number}:{entry.ring_seconds}" for entry in checked]
        _audit(connection, principal, "line.follow_me", line, {"follow_me": summary})
        return _view(connection, line, login, extension)

    return database.run(use_case)


def _check_internal_numbers_exist(connection: Connection, line: _Line, entries: Sequence[FollowMeEntry]) -> None:
    for entry in entries:
        if entry.number.startswith("+"):
            continue
        if organizations_store.find_extension(connection, line.node.id, entry.number) is None:
            raise Refusal("follow_me_extension_unknown", f"{line.node.login} has no extension {entry.number}")


def _audit(
    connection: Connection, principal: Principal | None, action: str, line: _Line, after: dict[str, object]
) -> None:
    target = line.node.login if line.extension is None else f"{line.node.login}/{line.extension.number}"
    audit(connection, principal, action=action, target_type="line", target_id=target, node=line.holder, after=after)
