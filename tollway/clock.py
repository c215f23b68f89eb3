"""The one place Tollway reads the time, so tests can pass their own instant."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
