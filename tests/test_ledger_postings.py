"""Accounts without a floor take postings, not locked writes; the settler folds them; the books stay exact.

A call credits the revenue account of every level's owner, the provider's among them: every call in the
system would queue on that row if it were locked and written. Such an account can never refuse a transfer
(it has no floor), so a batch appends what it changed in it (``account_postings``) and the settler folds
postings into the row later, in batches, relatively. What must hold, on SQLite and PostgreSQL:

1. An authorize and an end lock no revenue account (PostgreSQL: one held by another transaction does not
   stop them).
2. A revenue account's balance is exact before and after a fold; the row alone is not the balance.
3. Two processes folding at once fold each posting once.
4. A settler killed with SIGKILL in the middle of its fold leaves a ledger that checks, with exact balances,
   and the next fold completes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text

from tests.calls_world import UK, build_world
from tests.processes import START_SECONDS_MAX, race, unexpected
from tollway.calls import keeper
from tollway.calls import service as calls
from tollway.calls.service import CallRequest, CallSettings
from tollway.ledger import service as ledger
from tollway.ledger import store as ledger_store
from tollway.ledger.model import Account, AccountPurpose, TransferRequest
from tollway.rating.loading import TABLES
from tollway.store.database import Database
from tollway.store.schema import account_postings, ledger_accounts
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree.model import ClientType

MINUTE = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=120)
OWNERS = ("north-city", "atlas-north", "atlas", "house")  # whose revenue a call by alice credits
WAIT_SECONDS_MAX = 30


@pytest.fixture(autouse=True)
def _fresh_tables() -> None:
    TABLES.clear()
    calls.LEVELS.clear()


def revenue_ids(database: Database) -> dict[str, int]:
    with database.reading() as connection:
        rows = connection.execute(
            text(
                "SELECT n.login, a.id FROM ledger_accounts a JOIN nodes n ON n.id = a.node_id"
                " WHERE a.purpose = :purpose"
            ),
            {"purpose": str(AccountPurpose.REVENUE)},
        )
        return {row.login: row.id for row in rows}


def stands(database: Database) -> dict[int, Account]:
    """Every account as it stands (row + unfolded postings)."""
    with database.reading() as connection:
        return {row.id: ledger_store._account(row) for row in connection.execute(ledger_store.current_accounts())}


def row_of(database: Database, account_id: int) -> tuple[int, int, int, int]:
    with database.reading() as connection:
        a = connection.execute(select(ledger_accounts).where(ledger_accounts.c.id == account_id)).one()
    return (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)


def one_call(database: Database, call_id: str, seconds: int = 45) -> None:
    request = CallRequest(call_id, "alice", "+1 555 0100", UK, answered=True)
    assert calls.authorize_call(database, request, settings=MINUTE)["status"] == "authorized"
    calls.end_call(database, call_id, duration_seconds=seconds)


def assert_checks(database: Database) -> None:
    report = ledger.check(database)
    assert report.ok, report.problems


# -- 1. the call path locks no revenue account ----------------------------------------------------------


def test_an_authorize_and_an_end_go_on_while_another_transaction_holds_every_revenue_account(
    database: Database,
) -> None:
    """A writer of the rows (``FOR NO KEY UPDATE``, the lock an UPDATE takes) holds all four revenue accounts
    a call credits; the call is authorized and ended all the same. (``FOR UPDATE`` would also stop the
    foreign-key checks of any transfer into the account, which take ``FOR KEY SHARE``.)"""
    if database.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serializes writers")
    build_world(database)
    revenue = revenue_ids(database)
    outcome: list[str] = []

    def call() -> None:
        try:
            one_call(database, "c1")
            outcome.append("done")
        except Exception as error:  # reported below, not lost in the thread
            outcome.append(repr(error))

    with database.transaction() as holder:
        holder.execute(
            text("SELECT id FROM ledger_accounts WHERE id = ANY(:ids) FOR NO KEY UPDATE"),
            {"ids": [revenue[login] for login in OWNERS]},
        )
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(WAIT_SECONDS_MAX)
        stuck = worker.is_alive()
    worker.join(WAIT_SECONDS_MAX)
    assert not stuck, "the call waited on a revenue account's lock"
    assert outcome == ["done"]
    assert (
        stands(database)[revenue["house"]].credits_posted == 50_000 + 30_000
    )  # 0.05 to connect, 45 s at 0.04 a minute
    assert_checks(database)


def test_a_wallet_is_still_locked_by_the_call_that_spends_it(database: Database) -> None:
    """The contrast: a floored account is decided under its lock, so a call waits for the holder of one."""
    if database.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serializes writers")
    build_world(database)
    with database.reading() as connection:
        wallet = connection.execute(
            text(
                "SELECT a.id FROM ledger_accounts a JOIN nodes n ON n.id = a.node_id"
                " WHERE n.login = 'alice' AND a.purpose = 'wallet'"
            )
        ).scalar_one()
    done = threading.Event()

    def call() -> None:
        one_call(database, "c1")
        done.set()

    with database.transaction() as holder:
        holder.execute(text("SELECT id FROM ledger_accounts WHERE id = :id FOR UPDATE"), {"id": wallet})
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        assert not done.wait(1.0)
    worker.join(WAIT_SECONDS_MAX)
    assert done.is_set()


# -- 2. balances exact before and after a fold ------------------------------------------------------------


def test_revenue_balances_are_exact_before_and_after_a_fold_and_the_rows_hold_them_after(database: Database) -> None:
    build_world(database)
    revenue = revenue_ids(database)
    house = revenue["house"]
    rows_before = row_of(database, house)
    for n in range(3):
        one_call(database, f"c{n}")
    before = stands(database)
    assert before[house].credits_posted == 3 * 80_000
    assert (before[house].credits_pending, before[house].debits_pending) == (0, 0)
    assert row_of(database, house) == rows_before  # no call wrote the row: it appended
    assert ledger.unfolded(database) > 0
    assert_checks(database)

    folded = ledger.settle(database)

    assert folded > 0 and ledger.unfolded(database) == 0
    assert stands(database) == before
    assert row_of(database, house) == (0, 3 * 80_000, 0, 0)
    with database.reading() as connection:
        assert ledger_store.get_account(connection, house) == before[house]
        assert ledger_store.lock_accounts(connection, [house])[house] == before[house]
    assert_checks(database)


def test_a_call_left_open_keeps_its_reservations_exact_through_a_fold(database: Database) -> None:
    """Half a call's life folded: the pending credits of the revenue accounts come back through the fold."""
    build_world(database)
    revenue = revenue_ids(database)
    request = CallRequest("open", "alice", "+1 555 0100", UK, answered=True)
    calls.authorize_call(database, request, settings=MINUTE)
    reserved = stands(database)[revenue["house"]].credits_pending
    assert reserved == 50_000 + 40_000  # a minute's grant at 0.04 and the connection fee
    ledger.settle(database)
    assert row_of(database, revenue["house"])[3] == reserved
    calls.end_call(database, "open", duration_seconds=30)
    assert stands(database)[revenue["house"]].credits_pending == 0
    assert_checks(database)
    ledger.settle(database)
    assert row_of(database, revenue["house"]) == (0, 50_000 + 20_000, 0, 0)
    assert_checks(database)


def test_the_keeper_folds_postings_on_its_tick(database: Database) -> None:
    build_world(database)
    one_call(database, "c1")
    backlog = ledger.unfolded(database)
    assert keeper.tick(database, settings=MINUTE).settled == backlog
    assert ledger.unfolded(database) == 0


def test_the_check_counts_postings_and_catches_one_lost(database: Database) -> None:
    build_world(database)
    one_call(database, "c1")
    report = ledger.check(database)
    assert report.ok and report.unfolded == ledger.unfolded(database) > 0


@pytest.mark.tampering
def test_a_posting_deleted_by_hand_is_a_problem_of_the_check(database: Database) -> None:
    build_world(database)
    one_call(database, "c1")
    house = revenue_ids(database)["house"]
    with database.transaction() as connection:
        newest = connection.execute(
            select(func.max(account_postings.c.id)).where(account_postings.c.account_id == house)
        ).scalar_one()
        connection.execute(account_postings.delete().where(account_postings.c.id == newest))
    problems = ledger.check(database).problems
    assert any(problem.startswith(f"account {house}: cached totals") for problem in problems), problems
    assert any(problem.startswith("USD: debits posted") for problem in problems), problems


# -- 3. two processes folding at once ---------------------------------------------------------------------


def many_postings(database: Database, accounts: int, batches: int) -> list[int]:
    """Clients of the provider, and batches between their revenue and issuance accounts (no floor)."""
    tree.create_provider(database, login="house", name="House", currency="USD")
    ids: list[int] = []
    for n in range(accounts):
        node = tree.create_node(
            database, owner_login="house", new=tree.NewNode(tree_model.client(ClientType.RETAIL), f"c{n}", f"c{n}")
        )
        with database.reading() as connection:
            ids += [
                ledger_store.find_account_id(connection, node_id=node.id, purpose=purpose, currency="USD") or 0
                for purpose in (AccountPurpose.REVENUE, AccountPurpose.ISSUANCE)
            ]
    for n in range(batches):
        debit, credit = ids[n % len(ids)], ids[(3 * n + 1) % len(ids)]
        if debit == credit:
            continue
        ledger.execute(database, [TransferRequest(f"t{n}", 1_000 + n, debit, credit)])
    return ids


def _folder(start: Any, results: Any, index: int, url: str, fold_size: int) -> None:
    try:
        database = Database(url, pool_size=1)
        database.ping()
        start.wait(timeout=START_SECONDS_MAX)
        report: Any = ledger.settle(database, fold_size=fold_size)
        database.dispose()
    except BaseException as error:
        report = unexpected(f"folder {index}", error)
    results.put((index, report))
    results.close()
    results.join_thread()
    os._exit(0)


def test_two_processes_folding_at_once_fold_each_posting_once(database: Database) -> None:
    many_postings(database, accounts=6, batches=300)
    before = stands(database)
    backlog = ledger.unfolded(database)
    assert backlog > 250

    folded = race(_folder, [(database.url, 7), (database.url, 7)])

    assert all(isinstance(count, int) for count in folded), folded
    leftover = ledger.unfolded(database)  # a fold that found every account taken stops; the next run goes on
    assert sum(folded) + leftover == backlog
    ledger.settle(database)
    assert ledger.unfolded(database) == 0
    assert stands(database) == before
    assert_checks(database)


# -- 4. a settler killed mid-fold ----------------------------------------------------------------------------


def _killed_folder(url: str, folding: Any) -> None:
    """Fold, then say so and sleep before the fold's transaction commits: the test kills us there."""
    original = ledger_store.fold_postings

    def fold_then_hang(connection: Any, *, limit: int) -> int:
        folded = original(connection, limit=limit)
        folding.put(folded)
        time.sleep(600)
        return folded

    ledger_store.fold_postings = fold_then_hang  # type: ignore[assignment]
    database = Database(url, pool_size=1)
    ledger.settle(database, fold_size=50)


def test_a_settler_killed_mid_fold_leaves_a_ledger_that_checks_and_the_next_fold_completes(
    database: Database,
) -> None:
    many_postings(database, accounts=3, batches=80)
    before = stands(database)
    backlog = ledger.unfolded(database)
    context = multiprocessing.get_context("spawn")
    folding = context.Queue()
    settler = context.Process(target=_killed_folder, args=(database.url, folding), daemon=True)
    settler.start()
    try:
        assert folding.get(timeout=START_SECONDS_MAX + WAIT_SECONDS_MAX) > 0  # deleted and added, not committed
        os.kill(settler.pid or 0, signal.SIGKILL)
        settler.join(WAIT_SECONDS_MAX)
    finally:
        if settler.is_alive():
            settler.kill()
            settler.join()
    assert settler.exitcode == -signal.SIGKILL

    deadline = time.monotonic() + WAIT_SECONDS_MAX  # PostgreSQL rolls back once it sees the connection gone
    while time.monotonic() < deadline and ledger.unfolded(database) != backlog:
        time.sleep(0.1)
    assert ledger.unfolded(database) == backlog  # nothing folded, nothing lost
    assert stands(database) == before
    assert_checks(database)

    assert ledger.settle(database) == backlog
    assert stands(database) == before
    assert_checks(database)
