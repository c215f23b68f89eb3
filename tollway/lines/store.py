"""Persistence of lines' caller ids and FollowMe lists. No rules here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, delete, insert, select, update

from tollway.lines.model import CallerId, FollowMeEntry, LineRef
from tollway.store.schema import caller_ids, follow_me


def _of(table: Table, line: LineRef) -> ColumnElement[bool]:
    extension = table.c.extension_id
    same_extension = extension.is_(None) if line.extension_id is None else extension == line.extension_id
    return (table.c.node_id == line.node_id) & same_extension


def caller_ids_of(connection: Connection, line: LineRef) -> list[CallerId]:
    rows = connection.execute(select(caller_ids).where(_of(caller_ids, line)).order_by(caller_ids.c.id))
    return [CallerId(row.number, row.verified, row.is_default) for row in rows]


def insert_caller_id(connection: Connection, line: LineRef, *, number: str, verified: bool, now: datetime) -> None:
    connection.execute(
        insert(caller_ids).values(
            node_id=line.node_id,
            extension_id=line.extension_id,
            number=number,
            verified=verified,
            is_default=False,
            created_at=now,
            verified_at=now if verified else None,
        )
    )


def update_caller_id(connection: Connection, line: LineRef, number: str, **values: Any) -> int:
    result = connection.execute(
        update(caller_ids).where(_of(caller_ids, line), caller_ids.c.number == number).values(**values)
    )
    return int(result.rowcount)


def clear_default(connection: Connection, line: LineRef) -> None:
    connection.execute(update(caller_ids).where(_of(caller_ids, line)).values(is_default=False))


def delete_caller_id(connection: Connection, line: LineRef, number: str) -> int:
    result = connection.execute(delete(caller_ids).where(_of(caller_ids, line), caller_ids.c.number == number))
    return int(result.rowcount)


def delete_extension_caller_ids(connection: Connection, node_id: int, number: str) -> None:
    """An organization's number is no more: none of its extensions may present it."""
    connection.execute(
        delete(caller_ids).where(
            caller_ids.c.node_id == node_id, caller_ids.c.extension_id.is_not(None), caller_ids.c.number == number
        )
    )


def follow_me_of(connection: Connection, line: LineRef) -> list[FollowMeEntry]:
    rows = connection.execute(select(follow_me).where(_of(follow_me, line)).order_by(follow_me.c.position))
    return [FollowMeEntry(row.number, row.ring_seconds) for row in rows]


def replace_follow_me(
    connection: Connection, line: LineRef, entries: Sequence[FollowMeEntry], *, now: datetime
) -> None:
    connection.execute(delete(follow_me).where(_of(follow_me, line)))
    if entries:
        connection.execute(
            insert(follow_me),
            [
                {
                    "node_id": line.node_id,
                    "extension_id": line.extension_id,
                    "position": position,
                    "number": entry.number,
                    "ring_seconds": entry.ring_seconds,
                    "created_at": now,
                }
                for position, entry in enumerate(entries, start=1)
            ],
        )


def delete_line(connection: Connection, line: LineRef) -> None:
    """Everything of a line that goes away (an extension deleted)."""
    connection.execute(delete(follow_me).where(_of(follow_me, line)))
    connection.execute(delete(caller_ids).where(_of(caller_ids, line)))
