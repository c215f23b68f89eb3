"""The `tollway` command as an operator runs it: real processes, one-line errors, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tollway.balances import service as balances
from tollway.store import migrate
from tollway.store.database import Database

TOLLWAY = str(Path(sys.executable).parent / "tollway")
HEAD = migrate.head_revision(Database("sqlite://"))


def tollway(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOLLWAY_DATABASE_URL": url, "COLUMNS": "200"}
    return subprocess.run([TOLLWAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_init_creates_the_schema_and_is_repeatable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'tollway.db'}"
    first = tollway("init", url=url)
    assert first.returncode == 0, first.stderr
    assert f"schema none → {HEAD}" in first.stdout
    again = tollway("init", url=url)
    assert again.returncode == 0 and f"schema {HEAD} → {HEAD}" in again.stdout


def test_commands_on_a_database_without_schema_say_to_run_init(tmp_path: Path) -> None:
    result = tollway("ledger", "check", url=f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: database not ready") and "run `tollway init`" in result.stderr


def test_demo_then_ledger_check_then_tree(database: Database) -> None:
    demo = tollway("demo", "--dev", url=database.url)
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.startswith("demo data loaded\n")
    assert tollway("demo", "--dev", url=database.url).stdout.startswith("demo data already loaded\n")
    check = tollway("ledger", "check", url=database.url)
    assert check.returncode == 0 and check.stdout.startswith("ledger ok:")
    tree = tollway("node", "tree", url=database.url)
    assert tree.returncode == 0
    assert "north-city (reseller L1) 400.000000 USD" in tree.stdout
    assert "amelie (retail client) 20.000000 EUR" in tree.stdout


def test_topup_is_idempotent_by_its_id(database: Database) -> None:
    assert tollway("demo", "--dev", url=database.url).returncode == 0
    first = tollway("balance", "topup", "alice", "4.75", "--id", "pay-2026-001", url=database.url)
    assert first.returncode == 0, first.stderr
    assert "topped up alice by 4.75" in first.stdout
    retry = tollway("balance", "topup", "alice", "4.75", "--id", "pay-2026-001", url=database.url)
    assert "already recorded: nothing changed" in retry.stdout
    assert balances.get_balance(database, login="alice").balance_micros == 29_750_000  # 25.00 + 4.75, once


def test_node_lifecycle_from_the_command_line(database: Database) -> None:
    assert tollway("demo", "--dev", url=database.url).returncode == 0
    created = tollway(
        "node",
        "create",
        "north-metro",
        "frank",
        "--kind",
        "client",
        "--type",
        "retail",
        "--name",
        "Frank",
        url=database.url,
    )
    assert created.returncode == 0, created.stderr
    assert "created retail client frank" in created.stdout
    assert tollway("node", "suspend", "north-metro", url=database.url).stdout.strip() == "north-metro is now suspended"
    shown = tollway("node", "show", "frank", url=database.url)
    assert "active (effective: suspended)" in shown.stdout
    assert tollway("node", "activate", "north-metro", url=database.url).returncode == 0
    assert tollway("node", "close", "frank", url=database.url).stdout.strip() == "frank is now closed"


def test_refusals_are_one_line_with_a_reason_and_exit_1(database: Database) -> None:
    assert tollway("demo", "--dev", url=database.url).returncode == 0
    cases = {
        ("balance", "topup", "nobody", "5", "--id", "t-1"): "error: node nobody not found (node_not_found)",
        (
            "balance",
            "topup",
            "alice",
            "5.1234567",
            "--id",
            "t-2",
        ): "error: 5.1234567 has more than 6 decimal places (amount_too_precise)",
        (
            "node",
            "create",
            "atlas",
            "x1",
            "--kind",
            "client",
            "--type",
            "retail",
            "--name",
            "X",
        ): "error: a reseller L3 may not own a retail client (ownership_refused)",
        (
            "balance",
            "adjust",
            "--reason",
            "correction",
            "--id",
            "t-3",
            "bob",
            "--",
            "-10.01",
        ): "error: bob needs 10.01 USD, 10.00 USD available (insufficient_funds)",
        ("node", "close", "north-city"): "error: 6 nodes below it are not closed (node_has_open_children)",
    }
    for args, message in cases.items():
        result = tollway(*args, url=database.url)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr == message + "\n", args
        assert "Traceback" not in result.stderr


def test_bad_usage_exits_2_without_a_traceback(database: Database) -> None:
    result = tollway("node", "create", "atlas", "x2", "--kind", "reseller", "--name", "X", url=database.url)
    assert result.returncode == 2
    assert result.stderr == "error: a reseller needs --level 1, 2 or 3\n"


def test_an_operator_makes_the_first_login_and_api_key_from_the_command_line(database: Database) -> None:
    from tollway.access import service as access

    assert tollway("demo", "--dev", url=database.url).returncode == 0
    env = {**os.environ, "TOLLWAY_DATABASE_URL": database.url}
    made = subprocess.run(
        [TOLLWAY, "user", "create", "house", "ops", "--role", "provider_admin", "--password-stdin"],
        input="correct horse battery\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert access.login_with_password(database, login="ops", password="correct horse battery").role.value == (
        "provider_admin"
    )
    key = tollway(
        "api-key",
        "create",
        "north-city",
        "--name",
        "switch 1",
        "--role",
        "reseller_admin",
        "--action",
        "balance:read",
        url=database.url,
    )
    assert key.returncode == 0, key.stderr
    plaintext = key.stdout.strip()
    principal = access.login_with_api_key(database, plaintext=plaintext)
    assert {str(a) for a in principal.actions} == {"balance:read"}
    key_id = plaintext.split("_")[1]
    assert tollway("api-key", "revoke", key_id, url=database.url).stdout.strip() == f"revoked API key {key_id}"
    wrong_role = tollway("api-key", "create", "alice", "--name", "x", "--role", "agent", url=database.url)
    assert wrong_role.returncode == 1
    assert wrong_role.stderr == "error: the role agent does not fit a retail client (role_does_not_fit)\n"


def test_text_with_a_nul_is_refused_with_a_clear_message(database: Database, tmp_path: Path) -> None:
    """argv cannot carry a NUL, but stdin, a terminal and files can: each is refused, naming where it was."""
    assert tollway("demo", "--dev", url=database.url).returncode == 0
    env = {**os.environ, "TOLLWAY_DATABASE_URL": database.url, "COLUMNS": "200"}
    command = [TOLLWAY, "user", "create", "north-city", "nc-admin", "--role", "reseller_admin", "--password-stdin"]
    created = subprocess.run(
        command, input="correct\x00horse battery\n", env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert created.returncode == 1
    assert created.stderr == "error: the password: text must not contain NUL characters (text_contains_nul)\n"
    calls = tmp_path / "calls.csv"
    calls.write_text(
        "call_id,account,tariff,caller,callee,start,duration\nc1,ali\x00ce,,1,442079460000,2026-11-23,60\n"
    )
    rated = tollway("rate", str(calls), "-o", str(tmp_path / "rated.csv"), url=database.url)
    assert rated.returncode == 1
    assert f"{calls}: line 2: the line: text must not contain NUL characters (text_contains_nul)" in rated.stderr
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("prefix,description,price\n44,U\x00K,0.02\n")
    imported = tollway("tariff", "import", "house:wholesale", str(sheet), url=database.url)
    assert imported.returncode == 1 and f"{sheet}:2: " in imported.stderr and "(description_invalid)" in imported.stderr
