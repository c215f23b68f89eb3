"""A batch's secret file (passwords, PINs) is held for one download by the login that made it: once, to that
login only, for that kind of batch only, within its time, and never readable from the database alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Connection, select

from tests.test_portal import password_hash
from tollway.access import held_files
from tollway.access import store as access_store
from tollway.access.model import Role
from tollway.clock import utc_now
from tollway.store.database import Database
from tollway.store.schema import held_files as held_rows
from tollway.tree import service as tree

SECRET = "login,password\nana-0001,tr0ub4dor&3\n"
NOW = utc_now()
HOUR = timedelta(hours=1)


@pytest.fixture
def makers(database: Database) -> tuple[int, int]:
    """Two logins of the provider: the one that makes batches, and another admin."""
    house = tree.create_provider(database, login="house", name="House", currency="USD").id

    def insert(connection: Connection) -> tuple[int, int]:
        made = [
            access_store.insert_user(
                connection, node_id=house, login=login, password_hash=password_hash(), role=Role.PROVIDER_ADMIN, now=NOW
            )
            for login in ("maker", "other")
        ]
        return made[0].id, made[1].id

    return database.run(insert)


def hold(database: Database, user_id: int, *, kind: str = "accounts", seconds: int = 600) -> str:
    def use_case(connection: Connection) -> str:
        held = held_files.hold(
            connection, kind=kind, name="spring", content=SECRET, user_id=user_id, seconds=seconds, now=NOW
        )
        assert held.expires_at == NOW + timedelta(seconds=seconds)
        return held.token

    return database.run(use_case)


def take(database: Database, token: str, user_id: int, *, kind: str = "accounts", late: int = 0) -> object:
    return database.run(
        lambda connection: held_files.take(
            connection, kind=kind, token=token, user_id=user_id, now=NOW + timedelta(seconds=late)
        )
    )


def test_its_maker_takes_it_once(database: Database, makers: tuple[int, int]) -> None:
    maker, _ = makers
    token = hold(database, maker)
    assert take(database, token, maker) == ("spring", SECRET)
    assert take(database, token, maker) is None
    with database.reading() as connection:
        assert connection.execute(select(held_rows)).all() == []


def test_the_database_holds_neither_the_token_nor_anything_readable(
    database: Database, makers: tuple[int, int]
) -> None:
    maker, _ = makers
    token = hold(database, maker)
    with database.reading() as connection:
        row = connection.execute(select(held_rows)).one()
    assert token not in str(row) and "tr0ub4dor" not in row.sealed and "ana-0001" not in row.sealed


@pytest.mark.parametrize(
    ("who", "kind", "late", "mangle"),
    [
        ("other", "accounts", 0, False),  # another login of the same node
        ("maker", "cards", 0, False),  # the token of an account batch does not take a card batch's file
        ("maker", "accounts", 600, False),  # at its expiry
        ("maker", "accounts", 0, True),  # a token one character off
    ],
)
def test_nobody_else_nothing_else_and_not_late(
    database: Database, makers: tuple[int, int], who: str, kind: str, late: int, mangle: bool
) -> None:
    maker, other = makers
    token = hold(database, maker)
    tried = token[:-1] + ("A" if token[-1] != "A" else "B") if mangle else token
    assert take(database, tried, other if who == "other" else maker, kind=kind, late=late) is None
    if late == 0:
        assert take(database, token, maker) == ("spring", SECRET)  # still there for its maker


@pytest.mark.parametrize("token", ["", "x" * (held_files.TOKEN_LENGTH_MAX + 1), "\x00", "' OR 1=1 --"])
def test_a_token_that_is_not_one_finds_nothing(database: Database, makers: tuple[int, int], token: str) -> None:
    maker, _ = makers
    hold(database, maker)
    assert take(database, token, maker) is None


def test_of_two_downloads_at_once_one_gets_the_file(database: Database, makers: tuple[int, int]) -> None:
    maker, _ = makers
    token = hold(database, maker)
    with ThreadPoolExecutor(max_workers=2) as pool:
        taken = list(pool.map(lambda _: take(database, token, maker), range(2)))
    assert sorted(taken, key=str) == sorted([None, ("spring", SECRET)], key=str)


def test_forgotten_files_are_deleted_when_another_is_held(database: Database, makers: tuple[int, int]) -> None:
    maker, _ = makers
    hold(database, maker, seconds=60)
    database.run(
        lambda connection: held_files.hold(
            connection,
            kind="cards",
            name="summer",
            content="x",
            user_id=maker,
            seconds=60,
            now=NOW + timedelta(hours=1),
        )
    )
    with database.reading() as connection:
        assert [row.name for row in connection.execute(select(held_rows))] == ["summer"]
