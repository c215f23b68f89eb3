"""The ledger under real concurrency: several operating-system processes, each with its own Database.

Threads in one process would share one interpreter and, on SQLite, one file handle pool; separate
processes are what production looks like (several API workers, several RADIUS handlers). Each
worker opens ``Database(url)``, waits at a barrier so that all of them start together, runs its
transfers and reports what happened. Every figure asserted below is worked out by hand.

On PostgreSQL the accounts are locked with ``SELECT ... FOR UPDATE`` in ascending id order; on
SQLite ``BEGIN IMMEDIATE`` serializes writers. Both must give the same, exact results.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from tests.processes import START_SECONDS_MAX, race, unexpected
from tollway.balances import service as balances
from tollway.clock import utc_now
from tollway.ledger import service as ledger
from tollway.ledger import store as ledger_store
from tollway.ledger.model import Account, AccountPurpose, Phase, TransferKind, TransferRequest
from tollway.store.database import Database
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree.model import ClientType

WORKERS = 4
TEST_SECONDS_MAX = 90  # pytest-timeout's last resort, after the runner's own deadline


# --- running workers in processes ------------------------------------------------------------


@dataclass
class WorkerReport:
    """What one worker process saw: successes, refusals by reason, unexpected errors, and when it ran."""

    succeeded: list[str] = field(default_factory=list)  # transfer ids (or pending ids they resolved)
    refusals: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0  # time.time() after the start barrier
    finished: float = 0.0


def _harness(
    start: Any, results: Any, index: int, worker: Callable[..., WorkerReport], url: str, arguments: tuple[Any, ...]
) -> None:
    """Run one worker in a child process; anything it raises becomes an error in its report."""
    try:
        database = Database(url, pool_size=1)
        try:
            database.ping()  # connect before the barrier, so the race starts with every connection open
            start.wait(timeout=START_SECONDS_MAX)
            report = worker(database, *arguments)
        finally:
            database.dispose()
    except BaseException as error:
        report = WorkerReport(errors=[unexpected(f"worker {index}", error)])
    results.put((index, report))


def run_workers(
    worker: Callable[..., WorkerReport], url: str, arguments_per_worker: Sequence[tuple[Any, ...]]
) -> list[WorkerReport]:
    """Run ``worker(database, *arguments)`` in one spawned process per argument tuple, all at once."""
    return race(_harness, [(worker, url, arguments) for arguments in arguments_per_worker])


def errors_of(reports: Sequence[WorkerReport]) -> list[str]:
    return [error for report in reports for error in report.errors]


def refusals_of(reports: Sequence[WorkerReport]) -> Counter[str]:
    total: Counter[str] = Counter()
    for report in reports:
        total.update(report.refusals)
    return total


def succeeded_of(reports: Sequence[WorkerReport]) -> list[str]:
    return [transfer_id for report in reports for transfer_id in report.succeeded]


def raced(reports: Sequence[WorkerReport]) -> bool:
    """Every worker ran at the same time as at least one other: the scenario really was a race.

    (Not "all at once": on a loaded 2-core machine one process may be scheduled late.)
    """

    def overlap(one: WorkerReport, other: WorkerReport) -> bool:
        return one is not other and one.started < other.finished and other.started < one.finished

    return all(any(overlap(report, other) for other in reports) for report in reports)


# --- the tree and its accounts -----------------------------------------------------------------


def make_client(database: Database, login: str, *, topup_micros: int, credit_limit_micros: int = 0) -> int:
    """A retail client of the provider, topped up; returns its wallet's ledger account id."""
    node = tree.create_node(
        database,
        owner_login="house",
        new=tree.NewNode(
            position=tree_model.client(ClientType.RETAIL),
            login=login,
            name=login.title(),
            credit_limit_micros=credit_limit_micros,
        ),
    )
    if topup_micros:
        balances.topup(database, login=login, amount_micros=topup_micros, transfer_id=f"topup-{login}")
    return account_id(database, node.id, AccountPurpose.WALLET)


def account_id(database: Database, node_id: int, purpose: AccountPurpose) -> int:
    with database.reading() as connection:
        found = ledger_store.find_account_id(connection, node_id=node_id, purpose=purpose, currency="USD")
    assert found is not None
    return found


def account(database: Database, ledger_account_id: int) -> Account:
    with database.reading() as connection:
        found = ledger_store.get_account(connection, ledger_account_id)
    assert found is not None
    return found


def debits_recorded(database: Database, ledger_account_id: int) -> list[str]:
    """Ids of the posted (single-phase) transfers recorded with this account on the debit side."""
    with database.reading() as connection:
        recorded = ledger_store.account_transfers(connection, ledger_account_id, limit=10_000)
    return [t.id for t in recorded if t.debit_account_id == ledger_account_id and t.phase is Phase.SINGLE]


@pytest.fixture
def house_revenue(database: Database) -> int:
    """The provider and its revenue account: no floor, the sink that clients pay into."""
    provider = tree.create_provider(database, login="house", name="House", currency="USD")
    return account_id(database, provider.id, AccountPurpose.REVENUE)


# --- (a) many processes spend one wallet ---------------------------------------------------------


def spend_worker(database: Database, worker: int, tries: int, wallet: int, revenue: int, amount: int) -> WorkerReport:
    """Charge the wallet ``tries`` times through the ledger service (with its retries)."""
    report = WorkerReport(started=time.time())
    for attempt in range(tries):
        request = TransferRequest(
            id=f"charge-w{worker}-{attempt:03d}",
            amount_micros=amount,
            debit_account_id=wallet,
            credit_account_id=revenue,
            kind=TransferKind.CALL_CHARGE,
        )
        try:
            ledger.execute(database, [request])
            report.succeeded.append(request.id)
        except ledger_store.TransferRefused as refusal:
            report.refusals[refusal.reason] += 1
        except Exception as error:
            report.errors.append(unexpected(request.id, error))
            break  # one unexpected error fails the test: no need to wait for more
    report.finished = time.time()
    return report


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_processes_spending_one_wallet_stop_exactly_at_its_floor_and_lose_no_update(
    database: Database, house_revenue: int
) -> None:
    # 400_000 on the wallet plus a 100_000 credit limit: room for exactly 50 charges of 10_000.
    wallet = make_client(database, "alice", topup_micros=400_000, credit_limit_micros=100_000)
    tries_per_worker = 30  # 4 x 30 x 10_000 = 1_200_000 asked for, 500_000 available

    reports = run_workers(
        spend_worker, database.url, [(worker, tries_per_worker, wallet, house_revenue, 10_000) for worker in range(4)]
    )

    assert errors_of(reports) == []
    assert raced(reports)
    succeeded = succeeded_of(reports)
    assert len(succeeded) == 50
    assert refusals_of(reports) == Counter({"insufficient_funds": 70})
    assert sorted(debits_recorded(database, wallet)) == sorted(succeeded)
    spent = account(database, wallet)
    assert (spent.credits_posted, spent.debits_posted, spent.debits_pending) == (400_000, 500_000, 0)
    assert spent.balance_micros == -100_000  # exactly at its floor: the whole credit limit used
    assert spent.available_micros == 0
    assert account(database, house_revenue).credits_posted == 500_000


# --- (b) crossing transfers ----------------------------------------------------------------------


def crossing_worker(database: Database, worker: int, transfers: int, alice: int, bob: int) -> WorkerReport:
    """Alternate alice→bob (3_000) and bob→alice (2_000); workers start on opposite directions.

    Each transfer runs in one plain transaction, without ``Database.run``'s retries: a deadlock
    must show up as an error here, not be retried away after PostgreSQL's deadlock timeout.
    """
    report = WorkerReport(started=time.time())
    for number in range(transfers):
        forward = (worker + number) % 2 == 0
        request = TransferRequest(
            id=f"cross-w{worker}-{number:03d}",
            amount_micros=3_000 if forward else 2_000,
            debit_account_id=alice if forward else bob,
            credit_account_id=bob if forward else alice,
        )
        try:
            with database.transaction() as connection:
                ledger_store.execute(connection, [request], now=utc_now())
            report.succeeded.append(request.id)
        except ledger_store.TransferRefused as refusal:
            report.refusals[refusal.reason] += 1
        except DBAPIError as error:  # 40P01 deadlock detected, 40001 serialization failure, ...
            report.errors.append(unexpected(request.id, error))
            break  # one deadlock fails the test; more would each cost PostgreSQL's deadlock_timeout
    report.finished = time.time()
    return report


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_crossing_transfers_from_many_processes_never_deadlock(database: Database, house_revenue: int) -> None:
    alice = make_client(database, "alice", topup_micros=1_000_000)
    bob = make_client(database, "bob", topup_micros=1_000_000)
    transfers_per_worker = 40  # 20 each way per worker: 80 of 3_000 forward, 80 of 2_000 back

    reports = run_workers(
        crossing_worker, database.url, [(worker, transfers_per_worker, alice, bob) for worker in range(4)]
    )

    assert errors_of(reports) == []
    assert raced(reports)
    assert refusals_of(reports) == Counter()
    assert len(succeeded_of(reports)) == 160
    alice_after, bob_after = account(database, alice), account(database, bob)
    assert (alice_after.debits_posted, alice_after.credits_posted) == (240_000, 1_160_000)
    assert (bob_after.debits_posted, bob_after.credits_posted) == (160_000, 1_240_000)
    assert alice_after.balance_micros == 920_000
    assert bob_after.balance_micros == 1_080_000


# --- (c) reservations from one shared balance --------------------------------------------------


def reserve_worker(database: Database, worker: int, tries: int, wallet: int, revenue: int) -> WorkerReport:
    """Try to reserve 20_000 ``tries`` times; keep every reservation open."""
    report = WorkerReport(started=time.time())
    for attempt in range(tries):
        request = TransferRequest(
            id=f"hold-w{worker}-{attempt:02d}",
            amount_micros=20_000,
            debit_account_id=wallet,
            credit_account_id=revenue,
            kind=TransferKind.CALL_CHARGE,
            phase=Phase.PENDING,
            timeout_seconds=600,
        )
        try:
            ledger.execute(database, [request])
            report.succeeded.append(request.id)
        except ledger_store.TransferRefused as refusal:
            report.refusals[refusal.reason] += 1
        except Exception as error:
            report.errors.append(unexpected(request.id, error))
            break  # one unexpected error fails the test: no need to wait for more
    report.finished = time.time()
    return report


def resolve_worker(database: Database, worker: int, decisions: list[tuple[str, str]]) -> WorkerReport:
    """Try to resolve every reservation as decided ("post" 12_000 of it, or "void" it).

    Every worker goes through the same list in the same order, so they collide on each one;
    ``succeeded`` lists the pending ids this worker resolved first.
    """
    report = WorkerReport(started=time.time())
    for pending_id, decision in decisions:
        request = TransferRequest(
            id=f"{decision}-w{worker}-{pending_id}",
            amount_micros=12_000 if decision == "post" else None,
            kind=TransferKind.CALL_CHARGE,
            phase=Phase.POST if decision == "post" else Phase.VOID,
            pending_id=pending_id,
        )
        try:
            ledger.execute(database, [request])
            report.succeeded.append(pending_id)
        except ledger_store.TransferRefused as refusal:
            report.refusals[refusal.reason] += 1
        except Exception as error:
            report.errors.append(unexpected(request.id, error))
            break  # one unexpected error fails the test: no need to wait for more
    report.finished = time.time()
    return report


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_processes_never_reserve_more_than_is_available_and_resolve_each_reservation_once(
    database: Database, house_revenue: int
) -> None:
    """Pending debits only grow while reserving and only shrink while resolving, so their peak is
    the checkpoint between the two runs: there they must be exactly what was available."""
    wallet = make_client(database, "carol", topup_micros=300_000)  # room for exactly 15 holds of 20_000

    reserving = run_workers(reserve_worker, database.url, [(worker, 10, wallet, house_revenue) for worker in range(4)])

    assert errors_of(reserving) == []
    assert raced(reserving)
    holds = sorted(succeeded_of(reserving))
    assert len(holds) == 15
    assert refusals_of(reserving) == Counter({"insufficient_funds": 25})
    checkpoint = account(database, wallet)
    assert (checkpoint.debits_pending, checkpoint.debits_posted, checkpoint.available_micros) == (300_000, 0, 0)

    # In id order, holds are alternately posted in part (8 of them) and voided (7).
    decisions = [(hold, "post" if position % 2 == 0 else "void") for position, hold in enumerate(holds)]
    resolving = run_workers(resolve_worker, database.url, [(worker, decisions) for worker in range(4)])

    assert errors_of(resolving) == []
    assert raced(resolving)
    assert sorted(succeeded_of(resolving)) == holds  # each hold resolved once, by exactly one worker
    # The three losers of each race: 3 x 8 posts and 3 x 7 voids refused.
    assert refusals_of(resolving) == Counter(
        {"pending_transfer_already_posted": 24, "pending_transfer_already_voided": 21}
    )
    final = account(database, wallet)
    assert (final.credits_posted, final.debits_posted, final.debits_pending) == (300_000, 96_000, 0)
    assert final.available_micros == 204_000
    revenue = account(database, house_revenue)
    assert (revenue.credits_posted, revenue.credits_pending) == (96_000, 0)
