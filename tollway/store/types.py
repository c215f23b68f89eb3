"""Column types that keep values exact on both SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, String
from sqlalchemy.types import TypeDecorator, TypeEngine

# Every id, and every column that refers to one: 64-bit, so that no table runs out after 2**31 rows (calls
# would, and an id past 2**31 - 1 given to a 32-bit column is an error on PostgreSQL). BIGINT there (a
# primary key numbers itself with a bigint sequence); SQLite's INTEGER PRIMARY KEY is already its 64-bit
# rowid, which a BIGINT primary key would not be (and would not number itself).
Id: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
ID_MAX = 2**63 - 1


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime; SQLite would otherwise hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """A ``Decimal`` kept as its text: SQLite's NUMERIC is a float underneath."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)
