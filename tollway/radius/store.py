"""What the RADIUS server reads of the switches it acts as, inside the caller's connection."""

from __future__ import annotations

from sqlalchemy import Connection, select

from tollway.store.schema import api_keys, switches


def switch_key_id(connection: Connection, name: str) -> str | None:
    """The public id of the API key of the switch ``name``, or None if there is no such switch."""
    query = select(api_keys.c.key_id).join(switches, switches.c.api_key_id == api_keys.c.id)
    row = connection.execute(query.where(switches.c.name == name)).first()
    return None if row is None else str(row.key_id)
