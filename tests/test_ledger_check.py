"""The ledger check finds a ledger broken by hand, and ``tollway ledger check`` says so in one line.

Every test here breaks the ledger on purpose, so the after-test check is off (``tampering``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from tollway.balances import service as balances
from tollway.ledger import service as ledger
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose, Phase, TransferRequest
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import ClientType, client

pytestmark = pytest.mark.tampering
TOLLWAY_COMMAND = Path(sys.executable).parent / "tollway"


def alice_topped_up_25(database: Database) -> tuple[int, int]:
    """The house owns Alice (retail, USD) and tops her up 25.00; answers (Alice's wallet, house issuance)."""
    tree.create_provider(database, login="house", name="The House", currency="USD")
    tree.create_node(database, owner_login="house", new=tree.NewNode(client(ClientType.RETAIL), "alice", "Alice"))
    balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")
    with database.reading() as connection:
        ids = [
            ledger_store.find_account_id(
                connection, node_id=tree.require_node(connection, login).id, purpose=purpose, currency="USD"
            )
            for login, purpose in (("alice", AccountPurpose.WALLET), ("house", AccountPurpose.ISSUANCE))
        ]
    assert ids[0] is not None and ids[1] is not None
    return ids[0], ids[1]


def tamper(database: Database, statement: str) -> None:
    with database.transaction() as connection:
        connection.execute(text(statement))


@contextmanager
def append_only_trigger_dropped(database: Database) -> Iterator[None]:
    """Drop the trigger that refuses edits of transfers, and put it back afterwards: on PostgreSQL the
    tests share one database, whose schema outlives each test's truncated data."""
    if database.is_sqlite:
        tamper(database, "DROP TRIGGER transfers_no_update")
    else:
        tamper(database, "DROP TRIGGER transfers_append_only ON transfers")
    try:
        yield
    finally:
        if database.is_sqlite:
            tamper(
                database,
                "CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers "
                "BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END",
            )
        else:
            tamper(
                database,
                "CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers "
                "FOR EACH ROW EXECUTE FUNCTION tollway_refuse_transfer_change()",
            )


def run_check_command(database: Database, directory: Path) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TOLLWAY_")}
    environment["TOLLWAY_DATABASE_URL"] = database.url
    return subprocess.run(
        [str(TOLLWAY_COMMAND), "ledger", "check"],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_healthy_ledger_passes_the_check(database: Database) -> None:
    alice_topped_up_25(database)

    report = ledger.check(database)

    assert report.problems == []
    assert (report.accounts, report.transfers, report.currencies) == (6, 1, 1)


def test_credits_raised_by_hand_on_an_account_are_reported(database: Database) -> None:
    alice, _ = alice_topped_up_25(database)

    tamper(database, f"UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = {alice}")

    assert ledger.check(database).problems == [
        f"account {alice}: cached totals (0, 25000001, 0, 0) differ from its transfers (0, 25000000, 0, 0) "
        "(debits posted, credits posted, debits pending, credits pending)",
        "USD: debits posted 25000000 differ from credits posted 25000001",
    ]


def test_a_transfer_edited_behind_a_dropped_trigger_is_reported(database: Database) -> None:
    alice, house = alice_topped_up_25(database)
    with append_only_trigger_dropped(database):
        tamper(database, "UPDATE transfers SET amount_micros = 30000000 WHERE id = 'pay-1'")

    problems = ledger.check(database).problems
    assert sorted(problems) == sorted(
        [
            f"account {alice}: cached totals (0, 25000000, 0, 0) differ from its transfers (0, 30000000, 0, 0) "
            "(debits posted, credits posted, debits pending, credits pending)",
            f"account {house}: cached totals (25000000, 0, 0, 0) differ from its transfers (30000000, 0, 0, 0) "
            "(debits posted, credits posted, debits pending, credits pending)",
        ]
    )


def test_a_post_edited_to_exceed_its_reservation_is_reported(database: Database) -> None:
    alice, house = alice_topped_up_25(database)
    ledger.execute(
        database,
        [
            TransferRequest("call-1", 5_000_000, alice, house, phase=Phase.PENDING),
            TransferRequest("call-1.post", 2_000_000, phase=Phase.POST, pending_id="call-1"),
        ],
    )
    with append_only_trigger_dropped(database):
        tamper(database, "UPDATE transfers SET amount_micros = 6000000 WHERE id = 'call-1.post'")

    assert "transfer call-1.post: posts more than was reserved" in ledger.check(database).problems


def test_a_wallet_pushed_below_its_floor_without_overshoot_is_reported(database: Database) -> None:
    alice, _ = alice_topped_up_25(database)
    balances.set_credit_limit(database, login="alice", credit_limit_micros=5_000_000)
    balances.adjust(database, login="alice", amount_micros=-28_000_000, reason="late calls", transfer_id="adj-1")

    tamper(database, f"UPDATE ledger_accounts SET credit_limit_micros = 1000000 WHERE id = {alice}")

    assert ledger.check(database).problems == [
        f"account {alice}: 2000000 micro-units below its floor, only 0 of it recorded as overshoot"
    ]


def test_a_recorded_overshoot_is_not_a_problem(database: Database) -> None:
    alice, house = alice_topped_up_25(database)

    ledger.execute(database, [TransferRequest("call-1.charge", 26_000_000, alice, house, overshoot_allowed=True)])

    assert ledger.check(database).ok


def test_the_check_command_exits_0_on_a_healthy_ledger(database: Database, tmp_path: Path) -> None:
    alice_topped_up_25(database)

    result = run_check_command(database, tmp_path)

    assert result.returncode == 0, result.stderr
    assert "ledger ok" in result.stdout
    assert result.stderr == ""


def test_the_check_command_exits_1_with_one_error_line_on_a_tampered_ledger(database: Database, tmp_path: Path) -> None:
    alice, _ = alice_topped_up_25(database)
    tamper(database, f"UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = {alice}")

    result = run_check_command(database, tmp_path)

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("error:")] == [
        "error: ledger check failed: 2 problems (6 accounts, 1 transfers, 1 currencies)"
    ]
    assert lines[-1].startswith("error: ledger check failed")
    assert f"problem: account {alice}: cached totals (0, 25000001, 0, 0)" in result.stderr
    assert "Traceback" not in result.stderr
