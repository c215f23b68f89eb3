"""Test harness: every test that takes ``database`` runs on SQLite and on PostgreSQL.

Choose backends with ``--db sqlite --db postgresql`` or ``TOLLWAY_TEST_DATABASES=sqlite,postgresql``
(default: both). PostgreSQL is reached at ``TOLLWAY_TEST_POSTGRESQL_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); each test session makes its own database there
and drops it at the end. Where PostgreSQL is missing, its tests skip locally and fail in CI.

After every test the ledger check runs on the test's database: the ledger balances after every
scenario, or the test fails. Tests that break the ledger on purpose are marked ``tampering``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tollway.demo import load_demo
from tollway.ledger.service import check
from tollway.store import migrate
from tollway.store.database import Database
from tollway.store.schema import metadata

BACKENDS = ("sqlite", "postgresql")
DEFAULT_POSTGRESQL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", action="append", choices=BACKENDS, help="database backend(s) to test against")


def selected_backends(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--db") or os.environ.get("TOLLWAY_TEST_DATABASES", ",".join(BACKENDS)).split(",")
    return [b.strip() for b in chosen if b.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config), scope="session")


def postgresql_admin_url() -> str:
    return os.environ.get("TOLLWAY_TEST_POSTGRESQL_URL", DEFAULT_POSTGRESQL_URL)


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run every test on both databases)")
    pytest.skip(reason)


class BackendTemplate:
    """A migrated, empty database of one backend, from which each test gets a clean copy."""

    def __init__(self, backend: str, directory: Path) -> None:
        self.backend = backend
        self.directory = directory
        self.url = ""
        self._admin_url = ""
        self._database_name = ""
        self._sequences: list[str] = []

    def start(self) -> None:
        if self.backend == "sqlite":
            self.url = f"sqlite:///{self.directory / 'template.db'}"
        else:
            self._database_name = f"tollway_test_{uuid.uuid4().hex[:12]}"
            self._admin_url = Database(postgresql_admin_url()).url
            admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{self._database_name}"'))
            except Exception as error:  # no server, no rights: say so plainly
                _missing(f"PostgreSQL not reachable at {postgresql_admin_url()}: {error.__class__.__name__}")
            finally:
                admin.dispose()
            self.url = self._admin_url.rsplit("/", 1)[0] + f"/{self._database_name}"
        template = Database(self.url)
        migrate.upgrade(template)
        template.dispose()

    def fresh(self, tmp_path: Path) -> Database:
        if self.backend == "sqlite":
            target = tmp_path / "tollway.db"
            shutil.copyfile(self.directory / "template.db", target)
            return Database(f"sqlite:///{target}")
        database = Database(self.url)
        with database.transaction() as connection:
            if not self._sequences:
                self._sequences = list(
                    connection.execute(
                        text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
                    ).scalars()
                )
            statements = [  # one round trip; DELETE, as TRUNCATE makes new files for ~50 small tables, far slower
                "SET LOCAL session_replication_role = replica",  # no triggers: the append-only ledger's included
                "SET LOCAL synchronous_commit = off",
                *(f'DELETE FROM "{table.name}"' for table in reversed(metadata.sorted_tables)),
                *(f"SELECT setval('\"{name}\"', 1, false)" for name in self._sequences),
                "INSERT INTO static_versions (id, version) VALUES (1, 1)",  # the one row the migration made
            ]
            connection.exec_driver_sql(";\n".join(statements))
        return database

    def stop(self) -> None:
        if self.backend == "postgresql" and self._database_name:
            admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{self._database_name}" WITH (FORCE)'))
            admin.dispose()


class DemoTemplate:
    """The demo data loaded once per backend; each test that asks for it gets its own copy at once.

    SQLite copies a file. On PostgreSQL, ``copy`` makes a database of its own with ``CREATE DATABASE ...
    TEMPLATE`` (about a second: for fixtures that keep theirs for a whole module), while ``reset`` gives the
    one working database back its demo rows from a snapshot schema inside it (tens of milliseconds: for
    the many tests that each need a clean demo).
    """

    SNAPSHOT = "demo_snapshot"

    def __init__(self, base: BackendTemplate, directory: Path) -> None:
        self.base = base
        self.directory = directory
        self._name = ""
        self._work = ""
        self._sequences: list[tuple[str, int, bool]] = []
        self._copies: list[str] = []

    def start(self) -> None:
        if self.base.backend == "sqlite":
            shutil.copyfile(self.base.directory / "template.db", self.directory / "demo.db")
            url = f"sqlite:///{self.directory / 'demo.db'}"
        else:
            self._name = f"tollway_demo_{uuid.uuid4().hex[:12]}"
            self._admin(f'CREATE DATABASE "{self._name}"')
            url = self._url(self._name)
        demo = Database(url)
        if self.base.backend != "sqlite":
            migrate.upgrade(demo)
        load_demo(demo)
        demo.dispose()  # a template copies only while nobody is connected to it
        if self.base.backend != "sqlite":
            self._work = self.copy_name()
            self._snapshot()

    def _url(self, name: str) -> str:
        return self.base.url.rsplit("/", 1)[0] + f"/{name}"

    def _admin(self, statement: str) -> None:
        admin = create_engine(Database(postgresql_admin_url()).url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(statement))
        finally:
            admin.dispose()

    def _snapshot(self) -> None:
        work = Database(self._url(self._work))
        with work.transaction() as connection:
            connection.execute(text(f'CREATE SCHEMA "{self.SNAPSHOT}"'))
            for table in metadata.sorted_tables:
                connection.execute(text(f'CREATE TABLE "{self.SNAPSHOT}"."{table.name}" AS TABLE "{table.name}"'))
            self._sequences = [  # a sequence never used has no last value: it starts again at 1
                (f'"{name}"', 1 if value is None else int(value), value is not None)
                for name, value in connection.execute(
                    text("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'")
                )
            ]
        work.dispose()

    def copy_name(self) -> str:
        name = f"tollway_demo_copy_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._name}"')
        self._copies.append(name)
        return name

    def fresh(self, tmp_path: Path) -> Database:
        """A copy of its own (on PostgreSQL a new database, dropped by ``drop_copies``)."""
        if self.base.backend == "sqlite":
            target = tmp_path / "tollway.db"
            shutil.copyfile(self.directory / "demo.db", target)
            return Database(f"sqlite:///{target}")
        return Database(self._url(self.copy_name()))

    def reset(self, tmp_path: Path) -> Database:
        """The demo as loaded, for one test at a time: on PostgreSQL the working database, its rows put back."""
        if self.base.backend == "sqlite":
            return self.fresh(tmp_path)
        database = Database(self._url(self._work))
        with database.transaction() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            names = [table.name for table in metadata.sorted_tables]
            statements = [
                "SET LOCAL session_replication_role = replica",  # the rows as they were: no FK checks
                "SET LOCAL synchronous_commit = off",
                *(f'DELETE FROM "{name}"' for name in names),  # TRUNCATE makes new files: far slower
                *(f'INSERT INTO "{name}" SELECT * FROM "{self.SNAPSHOT}"."{name}"' for name in names),
                *(f"SELECT setval('{name}', {value}, {called})" for name, value, called in self._sequences),
            ]
            connection.exec_driver_sql(";\n".join(statements))  # one round trip (simple query protocol)
        return database

    def drop_copies(self) -> None:
        while self._copies:
            name = self._copies.pop()
            if name != self._work:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self.drop_copies()
        for name in (self._work, self._name):
            if name:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def backend_template(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendTemplate]:
    template = BackendTemplate(backend, tmp_path_factory.mktemp(f"{backend}-template"))
    template.start()
    yield template
    template.stop()


@pytest.fixture(scope="session")
def demo_template(
    backend_template: BackendTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoTemplate]:
    template = DemoTemplate(backend_template, tmp_path_factory.mktemp(f"{backend_template.backend}-demo"))
    template.start()
    yield template
    template.stop()


@pytest.fixture
def demo_database(demo_template: DemoTemplate, tmp_path: Path) -> Iterator[Database]:
    """A database holding the demo data (``tollway demo``), copied from one loaded once per backend."""
    db = demo_template.reset(tmp_path)
    yield db
    report = check(db)
    db.dispose()
    assert report.ok, "ledger check failed after the test:\n" + "\n".join(report.problems)


@pytest.fixture
def database(backend_template: BackendTemplate, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A clean, migrated database; the ledger must balance when the test is done with it."""
    db = backend_template.fresh(tmp_path)
    yield db
    if request.node.get_closest_marker("tampering") is None:
        report = check(db)
        db.dispose()
        assert report.ok, "ledger check failed after the test:\n" + "\n".join(report.problems)
    else:
        db.dispose()
