"""Errors shared by every layer.

An expected failure (a refused link, insufficient funds) is a ``Refusal``: it carries a
machine-readable ``reason`` that interfaces turn into an HTTP 4xx or a one-line CLI message.
A broken invariant is an ``InvariantBroken``: a bug, never caught to carry on.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class TollwayError(Exception):
    """Base of every error Tollway raises on purpose."""


class Refusal(TollwayError):
    """An expected, typed failure: the request was understood and refused."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} ({self.reason})"


class NotFound(Refusal):
    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what}_not_found", f"{what.replace('_', ' ')} {key!s} not found")


NUL = "\x00"
NUL_REASON = "text_contains_nul"
NUL_MESSAGE = "text must not contain NUL characters"


class TextContainsNul(Refusal):
    """Text holding a NUL character: PostgreSQL cannot store it, and no login, name or number has one."""

    def __init__(self, where: str) -> None:
        super().__init__(NUL_REASON, f"{where}: {NUL_MESSAGE}")


def refuse_nul(where: str, text: str) -> str:
    """``text``, or ``TextContainsNul`` naming ``where`` it came from."""
    if NUL in text:
        raise TextContainsNul(where)
    return text


class InvariantBroken(TollwayError):
    """A rule that must always hold does not: stop loudly."""


def require(condition: bool, message: str) -> None:
    """Check an invariant; unlike ``assert`` it survives ``python -O``."""
    if not condition:
        raise InvariantBroken(message)


def present(value: T | None, what: str) -> T:
    """Return ``value``, which an invariant says cannot be missing; raise loudly if it is."""
    if value is None:
        raise InvariantBroken(f"{what} is missing")
    return value
