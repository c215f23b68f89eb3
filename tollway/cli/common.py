"""What every command shares: the consoles, the one-line error rule, the database."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.exc import OperationalError, ProgrammingError

from tollway.config import Settings
from tollway.errors import TollwayError
from tollway.money import to_micros
from tollway.store.database import Database

out = Console()
err = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TollwayError as error:
            raise fail(str(error)) from None
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise fail(f"configuration invalid: {problems}", 2) from None
        except (OperationalError, ProgrammingError) as error:
            first_line = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            raise fail(f"database not ready ({first_line}): run `tollway init`", 2) from None

    return wrapper


def database() -> Database:
    settings = Settings()
    return Database(settings.database_url, pool_size=settings.database_pool_size)


def amount(text: str) -> int:
    return to_micros(text)
