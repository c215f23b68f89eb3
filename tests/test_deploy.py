"""What docs/deployment.md tells an operator to run works: the systemd units and the nginx configuration
parse, and a backup taken with its commands restores to a database whose ledger checks and whose
balances are the same, on PostgreSQL (pg_dump, pg_restore) and on SQLite (sqlite3 .backup)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tollway.ledger.service import check
from tollway.store.database import Database
from tollway.tree import store as tree_store

from .conftest import postgresql_admin_url

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
TOLLWAY = str(Path(sys.executable).parent / "tollway")
UNITS = ("tollway.service", "tollway-radius.service", "tollway-ledger-check.service", "tollway-ledger-check.timer")
TOOL_SECONDS_MAX = 120


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing (CI must run every test)")
        pytest.skip(f"{name} is not installed (Debian: scripts/install-switch-tools installs it)")
    return found


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=TOOL_SECONDS_MAX, check=False, cwd=cwd)


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    """The units as shipped, with the installed command where /opt/tollway/venv will have it."""
    analyze = tool("systemd-analyze")
    for unit in UNITS:
        text_of_unit = (DEPLOY / "systemd" / unit).read_text()
        # The environment file and the state directory exist only once installed: optional here.
        text_of_unit = text_of_unit.replace("/opt/tollway/venv/bin/tollway", TOLLWAY)
        text_of_unit = text_of_unit.replace("EnvironmentFile=/", "EnvironmentFile=-/")
        (tmp_path / unit).write_text(text_of_unit)
    result = run(analyze, "verify", *(str(tmp_path / unit) for unit in UNITS))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # not even a warning (an unknown key is only a warning)


def test_the_nginx_configuration_is_valid(tmp_path: Path) -> None:
    nginx = tool("nginx")
    openssl = tool("openssl")
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = run(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
               "-keyout", str(key), "-out", str(certificate))  # fmt: skip
    assert made.returncode == 0, made.stderr
    site = (DEPLOY / "nginx" / "tollway.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/billing.example.net/fullchain.pem", str(certificate))
    site = site.replace("/etc/letsencrypt/live/billing.example.net/privkey.pem", str(key))
    (tmp_path / "tollway.conf").write_text(site)
    temporary = "\n".join(
        f"    {kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temporary}\n    include {tmp_path / 'tollway.conf'};\n}}\n"
    )
    result = run(nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def balances_of(database: Database) -> dict[str, tuple[int, int]]:
    """Every node's wallet: (credits posted, debits posted)."""
    with database.reading() as connection:
        rows = connection.execute(
            text(
                "SELECT n.login, a.credits_posted, a.debits_posted FROM nodes n "
                "JOIN ledger_accounts a ON a.node_id = n.id WHERE a.purpose = 'wallet'"
            )
        ).all()
    return {row.login: (row.credits_posted, row.debits_posted) for row in rows}


def assert_same_books(original: Database, restored: Database) -> None:
    assert check(restored).ok
    assert balances_of(restored) == balances_of(original)
    with restored.reading() as connection:
        assert tree_store.find_provider(connection) is not None


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_a_backup_restores_with_the_same_books(demo_database: Database, tmp_path: Path) -> None:
    if demo_database.url.startswith("sqlite"):
        restore_sqlite(demo_database, tmp_path)
    else:
        restore_postgresql(demo_database, tmp_path)


def restore_postgresql(demo_database: Database, tmp_path: Path) -> None:
    pg_dump, pg_restore = tool("pg_dump"), tool("pg_restore")
    dump = tmp_path / "tollway.dump"
    dumped = run(pg_dump, "--format=custom", f"--file={dump}", f"--dbname={libpq_url(demo_database.url)}")
    assert dumped.returncode == 0, dumped.stderr
    name = f"tollway_restored_{uuid.uuid4().hex[:12]}"
    admin = create_engine(Database(postgresql_admin_url()).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    restored = Database(demo_database.url.rsplit("/", 1)[0] + f"/{name}")
    try:
        loaded = run(pg_restore, "--no-owner", "--exit-on-error", f"--dbname={libpq_url(restored.url)}", str(dump))
        assert loaded.returncode == 0, loaded.stderr
        assert_same_books(demo_database, restored)
    finally:
        restored.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def restore_sqlite(demo_database: Database, tmp_path: Path) -> None:
    sqlite3 = tool("sqlite3")
    live = demo_database.url.removeprefix("sqlite:///")
    copy = tmp_path / "backup" / "tollway.db"
    copy.parent.mkdir()
    with demo_database.reading():  # a reader is open, as when tollway serve runs: .backup does not mind
        backed_up = run(sqlite3, live, f".backup '{copy}'")
    assert backed_up.returncode == 0, backed_up.stderr
    assert run(sqlite3, str(copy), "PRAGMA integrity_check;").stdout.strip() == "ok"
    restored = Database(f"sqlite:///{copy}")
    try:
        assert_same_books(demo_database, restored)
    finally:
        restored.dispose()
