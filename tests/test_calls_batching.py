"""Authorizations decided in batches (group commit), as a busy process decides them.

1. The mechanism alone: requests that arrive while a batch is in flight are decided together in the
   next one; each request gets its own outcome, an error only in its own thread; nobody waits for
   more than the batch before its own.
2. A batch decides as one-by-one would: on the small world of ``tests/calls_world.py`` (a 60 s grant
   to the UK reserves 0.05 at atlas-north), atlas-north has 0.50, and twelve authorizations come in one
   batch: the first ten get a grant, the last two are refused naming atlas-north, which is then exactly
   at its floor; an unknown account in the middle is refused alone; a repeated call id splits the batch
   and is answered its first answer. The accounts of the whole batch are locked by one statement.
3. Eight processes drain atlas-north through batches: it never goes below its floor, and the books agree.
4. A process killed between a batch's statements and its commit (SIGKILL) leaves nothing of that batch:
   no call, no reservation; the switch's retries then authorize each of those calls once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text

from tests.calls_world import UK, available, build_world, micros
from tests.test_calls_concurrency import (
    SHARED,
    TEST_SECONDS_MAX,
    Report,
    add_clients,
    assert_books_agree,
    errors_of,
    one_call,
    raced,
    refusals_of,
    run_workers,
    total,
)
from tollway.calls import service as calls
from tollway.calls.batching import GroupCommit
from tollway.calls.service import Authorization, CallRequest, Ending
from tollway.clock import utc_now
from tollway.ledger.service import check
from tollway.rating.loading import TABLES
from tollway.store.database import Database
from tollway.store.schema import calls as calls_table
from tollway.store.schema import transfers

# --- 1. the mechanism -----------------------------------------------------------------------------


def test_requests_arriving_during_a_batch_are_decided_together_in_the_next_each_with_its_own_outcome() -> None:
    first_started, release_first = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def decide(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(items))
        if len(batches) == 1:
            first_started.set()
            assert release_first.wait(timeout=10)
        return [ValueError(f"no {item}") if item == 3 else item * 10 for item in items]

    group: GroupCommit[int, int] = GroupCommit(decide)
    outcomes: dict[int, object] = {}

    def submit(item: int) -> None:
        try:
            outcomes[item] = group.submit(item)
        except ValueError as error:
            outcomes[item] = str(error)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    assert first_started.wait(timeout=10)  # request 0 leads a batch of its own and is deciding it
    others = [threading.Thread(target=submit, args=(item,)) for item in range(1, 6)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while len(group._queue) < 5:  # the five others queue behind it
        assert time.monotonic() < deadline
        time.sleep(0.005)
    release_first.set()
    for thread in (first, *others):
        thread.join(timeout=10)

    assert batches[0] == [0]
    assert sorted(batches[1]) == [1, 2, 3, 4, 5]  # all five in the next batch, whoever leads it
    assert len(batches) == 2
    assert outcomes == {0: 0, 1: 10, 2: 20, 3: "no 3", 4: 40, 5: 50}  # an error only in its own thread
    assert (group.batches, group.items) == (2, 6)
    assert not group._leading and group._queue == []


def test_a_batch_that_breaks_wakes_every_request_of_it_with_the_error_and_the_next_request_leads_again() -> None:
    calls_made: list[list[int]] = []

    def decide(items: Sequence[int]) -> list[int | BaseException]:
        calls_made.append(list(items))
        if items == [1]:
            raise RuntimeError("the database went away")
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(decide)
    with pytest.raises(RuntimeError, match="went away"):
        group.submit(1)
    assert group.submit(2) == 2  # no one is left leading a dead batch
    assert calls_made == [[1], [2]]


# --- 2. a batch decides as one by one would --------------------------------------------------------


def authorization(call_id: str, account: str) -> Authorization:
    return Authorization(CallRequest(call_id, account, "", UK, answered=True), None, SHARED, None, TABLES)


def count_account_locks(database: Database) -> list[str]:
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "FOR UPDATE" in statement and "ledger_accounts" in statement:
            seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", before)
    return seen


def test_twelve_authorizations_in_one_batch_get_ten_grants_and_two_refusals_naming_the_reseller_that_ran_dry(
    database: Database,
) -> None:
    build_world(database, balances_of={"atlas-north": "0.50"})  # ten first grants of 0.05 at atlas-north
    clients = ["alice", "bob", *add_clients(database, 4)]
    items = [authorization(f"b{number}", clients[number % len(clients)]) for number in range(12)]
    items.insert(5, authorization("b-unknown", "nobody"))
    locks = count_account_locks(database)

    answers = calls.decide_batch(database, items)

    assert [(a["call_id"], a["status"], a.get("reason"), a.get("level")) for a in answers] == [
        *[(f"b{n}", "authorized", None, None) for n in range(5)],
        ("b-unknown", "refused", "account_unknown", None),
        *[(f"b{n}", "authorized", None, None) for n in range(5, 10)],
        ("b10", "refused", "insufficient_funds", "atlas-north"),
        ("b11", "refused", "insufficient_funds", "atlas-north"),
    ]
    assert all(a["grant_seconds"] == 60 for a in answers if a["status"] == "authorized")
    if not database.is_sqlite:  # (SQLite locks the whole database for a writer: BEGIN IMMEDIATE)
        assert len(locks) == 1  # the whole batch's accounts, locked once
    assert available(database, "atlas-north") == 0  # exactly at its floor
    books = assert_books_agree(database)
    assert books.states == Counter({"answered": 10, "refused": 3})
    assert check(database).ok


def test_a_call_id_repeated_in_a_batch_splits_it_and_the_repeat_gets_the_first_answer(database: Database) -> None:
    build_world(database)
    already = calls.authorize_call(database, CallRequest("first", "alice", "", UK, answered=True), settings=SHARED)
    items = [authorization("x1", "alice"), authorization("first", "alice"), authorization("x2", "bob")]

    answers = calls.decide_batch(database, items)

    assert [a["status"] for a in answers] == ["authorized", "authorized", "authorized"]
    assert answers[1] == already  # the first answer, not a second call
    books = assert_books_agree(database)
    assert books.states == Counter({"answered": 3})


def test_ten_ends_in_one_batch_post_each_call_exactly_and_lock_the_accounts_once(database: Database) -> None:
    build_world(database, balances_of={"atlas-north": "0.50"})
    clients = ["alice", "bob", *add_clients(database, 3)]
    answered_at = utc_now() - timedelta(seconds=40)  # so that 30 s is believable when the ends come
    for number in range(10):
        request = CallRequest(f"e{number}", clients[number % len(clients)], "", UK, answered=True)
        assert calls.authorize_call(database, request, settings=SHARED, now=answered_at)["status"] == "authorized"
    assert available(database, "atlas-north") == 0
    locks = count_account_locks(database)
    ends = [Ending(f"e{number}", 30, "normal", None, SHARED, None) for number in range(10)]
    ends.insert(3, Ending("no-such-call", 30, "normal", None, SHARED, None))

    outcomes = calls.decide_ends(database, ends)

    unknown = outcomes.pop(3)
    assert isinstance(unknown, calls.CallUnknown)  # raised in its own request's thread only
    assert [(o["call_id"], o["status"], o["duration_seconds"]) for o in outcomes] == [  # type: ignore[index]
        (f"e{number}", "ended", 30) for number in range(10)
    ]
    if not database.is_sqlite:
        assert len(locks) == 1  # after each call's row, the accounts of all ten at once
    # 30 s cost atlas-north 0.05 (a started minute) of each 0.05 reserved: nothing released there.
    assert available(database, "atlas-north") == 0
    books = assert_books_agree(database)
    assert books.states == Counter({"ended": 10})
    assert check(database).ok


# --- 3. eight processes drain one reseller through batches ----------------------------------------

THREADS_PER_PROCESS = 6


def batching_switch_worker(database: Database, report: Report, index: int, clients: list[str]) -> None:
    """A switch process with several links: each thread places calls until the shared balance refuses one."""
    import random

    def link(thread: int) -> None:
        rng = random.Random(index * 100 + thread)
        for number in range(1, 200):
            if report.refusals:
                return
            one_call(database, report, rng, f"p{index}-{thread}-{number}", clients, SHARED, leave_up=number % 2 == 0)

    threads = [threading.Thread(target=link, args=(thread,)) for thread in range(THREADS_PER_PROCESS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batches, items = calls.authorization_batches(database)
    report.counts["batches"] += batches
    report.counts["batched_items"] += items


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_eight_processes_drain_a_reseller_through_batches_and_it_never_goes_below_its_floor(
    database: Database,
) -> None:
    build_world(database, balances_of={"atlas-north": "1.50"})  # thirty first grants at atlas-north
    clients = ["alice", "bob", *add_clients(database, 6)]

    reports = run_workers(database.url, [(batching_switch_worker, (index, clients)) for index in range(8)])

    assert errors_of(reports) == []
    assert raced(reports)
    assert set(refusals_of(reports)) == {"insufficient_funds@atlas-north"}  # it ran dry, and nothing else refused
    assert total(reports, "batched_items") > total(reports, "batches")  # some batches held several calls
    assert available(database, "atlas-north") >= 0
    books = assert_books_agree(database)  # among others: no wallet below its floor
    assert books.states["answered"] == total(reports, "left_up")
    assert books.states["ended"] == total(reports, "ended")
    assert check(database).ok


# --- 4. killed between a batch and its commit -----------------------------------------------------

KILLED_CHILD = """
import os, signal, sys, threading, time
from tollway.calls import service as calls
from tollway.calls.service import CallRequest, CallSettings
from tollway.store.database import Database

database = Database(sys.argv[1])
settings = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=60)
decide = calls._authorize_batch
first = []

def deciding_then_dying(connection, items):
    if not first:
        first.append(len(items))
        time.sleep(0.5)  # the first batch takes its time, so the others queue for the next
    answers = decide(connection, items)
    if len(items) > 1:  # every statement of the batch done, its commit not yet sent
        print("killed", *[item.request.call_id for item in items], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return answers

calls._authorize_batch = deciding_then_dying
start = threading.Barrier(8)

def switch(number):
    start.wait()
    calls.authorize_call(database, CallRequest(f"k{number}", ("alice", "bob")[number % 2], "", sys.argv[2],
                         answered=True), settings=settings)

threads = [threading.Thread(target=switch, args=(number,)) for number in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_a_process_killed_between_a_batch_and_its_commit_loses_nothing_and_leaves_no_reservation(
    database: Database, tmp_path: Path
) -> None:
    build_world(database)
    before = {login: available(database, login) for login in ("alice", "bob", "north-city", "atlas-north", "atlas")}
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    child = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, database.url, UK],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )

    assert child.returncode == -signal.SIGKILL, child.stderr
    killed = next(line.split()[1:] for line in child.stdout.splitlines() if line.startswith("killed"))
    assert len(killed) > 1
    _wait_for_the_dead_session(database)
    with database.reading() as connection:
        recorded = set(connection.execute(select(calls_table.c.call_id)).scalars())
        reservations = connection.execute(
            select(func.count()).where(transfers.c.kind == "call_charge", transfers.c.phase == "pending")
        ).scalar_one()
    assert recorded.isdisjoint(killed)  # nothing of the killed batch
    assert reservations == 4 * len(recorded)  # one reservation per level of each call that did commit
    committed = {login: available(database, login) for login in before}
    assert committed["atlas-north"] == before["atlas-north"] - micros("0.05") * len(recorded)
    books = assert_books_agree(database)
    assert books.states == Counter({"answered": len(recorded)})
    assert check(database).ok

    # The switch retries what got no answer: each call is authorized once, and the books still agree.
    unanswered = [f"k{number}" for number in range(8) if f"k{number}" not in recorded]
    assert set(killed) <= set(unanswered)
    for call_id in unanswered:
        account = ("alice", "bob")[int(call_id[1:]) % 2]
        answer = calls.authorize_call(database, CallRequest(call_id, account, "", UK, answered=True), settings=SHARED)
        assert answer["status"] == "authorized", answer
    books = assert_books_agree(database)
    assert books.states == Counter({"answered": 8})
    assert available(database, "atlas-north") == before["atlas-north"] - micros("0.05") * 8
    assert check(database).ok


def _wait_for_the_dead_session(database: Database) -> None:
    """PostgreSQL rolls back a killed client's transaction once it sees the connection closed."""
    if database.is_sqlite:
        return
    deadline = time.monotonic() + 20
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in%'"
    while True:
        with database.reading() as connection:
            if not connection.execute(text(query)).scalar_one():
                return
        assert time.monotonic() < deadline, "the killed process's transaction is still open"
        time.sleep(0.05)


def test_a_batch_stamps_its_calls_with_the_moment_it_decides_them(database: Database) -> None:
    build_world(database)
    before = utc_now()
    (answer,) = calls.decide_batch(database, [authorization("stamped", "alice")])
    after = utc_now()
    assert answer["status"] == "authorized"
    with database.reading() as connection:
        created = connection.execute(
            select(calls_table.c.created_at).where(calls_table.c.call_id == "stamped")
        ).scalar_one()
    assert before <= created <= after
