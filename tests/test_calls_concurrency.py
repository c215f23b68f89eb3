"""Credit control under real concurrency: operating-system processes share one database, and a server dies.

1. Four switch processes (two of them also running the keeper's extensions) spend one reseller's
   balance until it refuses calls; then two keepers extend twelve calls at once with money for five.
2. Three processes sweep sixty stale calls at once: each is closed and charged exactly once.
3. ``tollway serve`` is killed with SIGKILL while switch threads drive it; nothing is left half
   done, and the sweeper then releases every reservation the dead server left behind.

Each scenario runs on the small world of ``tests/calls_world.py`` (house -> atlas -> atlas-north ->
north-city -> clients; a minute to the UK costs a client 0.10, north-city 0.06 in 6 s steps,
atlas-north 0.05 by the minute, atlas 0.04 + 0.05 to connect). Workers are spawned processes, each
with its own ``Database(url)``, started together at a barrier, as in ``test_concurrency.py``. On
PostgreSQL rows are locked (``FOR UPDATE``, the keeper with ``SKIP LOCKED``); on SQLite
``BEGIN IMMEDIATE`` serializes writers. Every scenario runs on both and must leave the same books.

After every scenario ``assert_books_agree`` compares the calls with the ledger, call by call and line by
line: an active call holds exactly one open reservation per level, for the cost of its grant; an
ended call posted exactly its cost per level and holds nothing; no other call charge exists.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tests.calls_world import UK, available, balance, build_world, micros
from tests.processes import START_SECONDS_MAX, race, unexpected
from tollway.balances import service as balances
from tollway.calls import service as calls
from tollway.calls.service import CallRequest, CallSettings
from tollway.clock import utc_now
from tollway.ledger import store as ledger_store
from tollway.ledger.service import check
from tollway.rating import service as rating
from tollway.rating.cost import Pricing, cost_micros
from tollway.store.database import Database
from tollway.store.schema import call_charges, transfers
from tollway.store.schema import calls as calls_table
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree.model import ClientType

TEST_SECONDS_MAX = 120  # pytest-timeout's last resort
LEVELS = ("client", "north-city", "atlas-north", "atlas")  # who pays, position by position
ACTIVE = ("authorized", "answered")


# --- running workers in processes ------------------------------------------------------------


@dataclass
class Report:
    """What one worker process saw."""

    counts: Counter[str] = field(default_factory=Counter)  # what it did: authorized, ended, extended...
    refusals: Counter[str] = field(default_factory=Counter)  # "reason@level"
    errors: list[str] = field(default_factory=list)
    started: float = 0.0  # time.time() after the start barrier
    finished: float = 0.0


Job = tuple[Callable[..., None], tuple[Any, ...]]  # a worker and its arguments, the first its index


def _harness(
    start: Any, results: Any, index: int, worker: Callable[..., None], url: str, arguments: tuple[Any, ...]
) -> None:
    try:
        database = Database(url, pool_size=1)
        try:
            database.ping()  # connect before the barrier, so the race starts with every connection open
            start.wait(timeout=START_SECONDS_MAX)
            report = Report(started=time.time())
            try:
                worker(database, report, *arguments)
            except Exception as error:
                report.errors.append(unexpected(f"worker {index}", error))
            report.finished = time.time()
        finally:
            database.dispose()
    except BaseException as error:
        report = Report(errors=[unexpected(f"worker {index}", error)])
    results.put((index, report))
    results.close()
    results.join_thread()
    os._exit(0)  # skip tearing down the interpreter: with every worker exiting at once it takes seconds


def run_workers(url: str, jobs: Sequence[Job]) -> list[Report]:
    """Run each ``worker(database, report, *arguments)`` in a spawned process of its own, all at once."""
    return race(_harness, [(worker, url, arguments) for worker, arguments in jobs])


def errors_of(reports: Sequence[Report]) -> list[str]:
    return [error for report in reports for error in report.errors]


def total(reports: Sequence[Report], what: str) -> int:
    return sum(report.counts[what] for report in reports)


def refusals_of(reports: Sequence[Report]) -> Counter[str]:
    found: Counter[str] = Counter()
    for report in reports:
        found.update(report.refusals)
    return found


def _overlap(one: Report, other: Report) -> bool:
    return one is not other and one.started < other.finished and other.started < one.finished


def raced(reports: Sequence[Report]) -> bool:
    """Every worker ran at the same time as at least one other: the scenario really was a race.

    (Not "all at once": on a loaded 2-core machine one process may be scheduled late.)
    """
    return all(any(_overlap(report, other) for other in reports) for report in reports)


def some_raced(reports: Sequence[Report]) -> bool:
    """At least two workers ran at the same time (for short runs, where a late one may find nothing left)."""
    return any(_overlap(report, other) for report in reports for other in reports)


# --- the world and the books ---------------------------------------------------------------------


def add_clients(database: Database, count: int) -> list[str]:
    """``count`` more retail clients of north-city, on its retail tariff, with 10.00 each."""
    logins = [f"client-{number}" for number in range(1, count + 1)]
    for login in logins:
        tree.create_node(
            database,
            owner_login="north-city",
            new=tree.NewNode(position=tree_model.client(ClientType.RETAIL), login=login, name=login),
        )
        rating.assign_tariff(database, login=login, tariff="north-city:retail")
        balances.topup(database, login=login, amount_micros=micros("10"), transfer_id=f"setup-{login}")
    return logins


def pricing_of(line: Any) -> Pricing:
    return Pricing(
        price_micros=line.price_micros,
        connect_fee_micros=line.connect_fee_micros,
        minimal_time=line.minimal_time,
        resolution=line.resolution,
        grace_period=line.grace_period,
        free_seconds=line.free_seconds,
    )


@dataclass
class Books:
    states: Counter[str]
    reserved: dict[int, int]  # ledger account id -> what active calls hold on it
    pending_ids: set[str]  # the open reservations of active calls


def assert_books_agree(database: Database) -> Books:
    """The calls and the ledger tell the same story, with nothing half-done and nothing extra.

    - A refused call has no charge lines. Any other call has one line per level.
    - Every reservation a line ever had (``call:<pk>:<position>:1`` .. ``:<reservation>``) is a pending
      transfer from the level's wallet to its owner's revenue; all but the last are voided.
    - An active call's last reservation at each level is open and holds exactly the cost of its grant.
    - An ended call's last reservation is resolved: posted for exactly its cost (plus any recorded
      overshoot), or voided when it cost nothing at that level.
    - The ledger holds no other call charge, and no open reservation but those of active calls.
    - Per wallet, posted call charges are the sum of the ended calls' amounts, and pending debits the
      sum of the active calls' reservations; no floored wallet is below its floor.
    """
    with database.reading() as connection:
        call_rows = connection.execute(select(calls_table)).all()
        line_rows = connection.execute(select(call_charges)).all()
        transfer_rows = connection.execute(select(transfers).where(transfers.c.kind == "call_charge")).all()
        account_rows = connection.execute(ledger_store.current_accounts()).all()  # rows + unfolded postings
    by_id = {t.id: t for t in transfer_rows}
    resolution = {t.pending_id: t for t in transfer_rows if t.pending_id is not None}
    lines_of: dict[int, list[Any]] = defaultdict(list)
    for line_row in line_rows:
        lines_of[line_row.call_id].append(line_row)
    problems: list[str] = []
    expected_ids: set[str] = set()
    open_expected: set[str] = set()
    reserved: Counter[int] = Counter()
    charged: Counter[int] = Counter()
    states: Counter[str] = Counter()
    for call in call_rows:
        states[call.state] += 1
        lines = sorted(lines_of.get(call.id, []), key=lambda row: row.position)
        if call.state == "refused":
            if lines:
                problems.append(f"refused call {call.call_id} has charge lines")
            continue
        if [line.position for line in lines] != list(range(len(LEVELS))):
            problems.append(f"call {call.call_id} ({call.state}) has lines {[line.position for line in lines]}")
            continue
        for line in lines:
            where = f"call {call.call_id} ({call.state}) level {line.position}"
            pricing = pricing_of(line)
            pending_ids = [f"call:{call.id}:{line.position}:{number}" for number in range(1, line.reservation + 1)]
            for number, pending_id in enumerate(pending_ids, start=1):
                pending = by_id.get(pending_id)
                expected_ids.add(pending_id)
                if pending is None or pending.phase != "pending":
                    problems.append(f"{where}: reservation {pending_id} is not a pending transfer")
                    continue
                if (pending.debit_account_id, pending.credit_account_id) != (
                    line.wallet_account_id,
                    line.revenue_account_id,
                ):
                    problems.append(f"{where}: {pending_id} is between other accounts")
                resolved = resolution.get(pending_id)
                if resolved is not None:
                    expected_ids.add(resolved.id)
                    if resolved.id != f"{pending_id}:{resolved.phase}":
                        problems.append(f"{where}: {pending_id} resolved by {resolved.id}")
                last = number == len(pending_ids)
                if not last and (resolved is None or resolved.phase != "void"):
                    problems.append(f"{where}: replaced reservation {pending_id} is not voided")
                if last and call.state in ACTIVE and resolved is not None:
                    problems.append(f"{where}: current reservation {pending_id} is already {resolved.phase}")
                if last and call.state == "ended" and resolved is None:
                    problems.append(f"{where}: reservation {pending_id} still open after the end")
            current = pending_ids[-1] if pending_ids else None
            if call.state in ACTIVE:
                grant_cost = cost_micros(pricing, call.grant_seconds)
                if line.reserved_micros != grant_cost:
                    problems.append(f"{where}: reserves {line.reserved_micros}, its grant costs {grant_cost}")
                if current is None or current not in by_id or by_id[current].amount_micros != line.reserved_micros:
                    problems.append(f"{where}: its reservation {current} does not hold {line.reserved_micros}")
                elif current not in resolution:
                    open_expected.add(current)
                    reserved[line.wallet_account_id] += line.reserved_micros
                if line.amount_micros is not None:
                    problems.append(f"{where}: an active call with an amount charged")
                continue
            if call.state != "ended":
                problems.append(f"call {call.call_id}: unknown state {call.state}")
                continue
            amount = cost_micros(pricing, call.duration_seconds)
            if line.amount_micros != amount:
                problems.append(f"{where}: charged {line.amount_micros}, {call.duration_seconds} s cost {amount}")
            posted = 0
            if current is not None and current in resolution and resolution[current].phase == "post":
                posted += resolution[current].amount_micros
            over = by_id.get(f"{current}:over")
            if over is not None:
                expected_ids.add(over.id)
                posted += over.amount_micros
            if posted != amount or line.overshoot_micros != (over.amount_micros if over is not None else 0):
                problems.append(f"{where}: posted {posted} for an amount of {amount}")
            charged[line.wallet_account_id] += amount
    extra = sorted(set(by_id) - expected_ids)
    if extra:
        problems.append(f"call charges that belong to no call line: {extra[:10]}")
    open_pending = {t.id for t in transfer_rows if t.phase == "pending" and t.id not in resolution}
    if open_pending != open_expected:
        problems.append(f"open reservations {sorted(open_pending ^ open_expected)[:10]} differ from the calls'")
    posted_by_wallet: Counter[int] = Counter()
    for t in transfer_rows:
        if t.phase in ("post", "single"):
            posted_by_wallet[t.debit_account_id] += t.amount_micros
    if +posted_by_wallet != +charged:
        problems.append(
            f"posted call charges per wallet {dict(posted_by_wallet)} differ from the calls' {dict(charged)}"
        )
    for account in account_rows:
        if account.debits_pending != reserved[account.id]:
            problems.append(
                f"account {account.id}: {account.debits_pending} pending, calls hold {reserved[account.id]}"
            )
        room = account.credits_posted + account.credit_limit_micros - account.debits_posted - account.debits_pending
        if account.floor and room < 0:
            problems.append(f"account {account.id}: {-room} below its floor")
    assert problems == [], "\n".join(problems[:40])
    return Books(states, dict(reserved), open_expected)


# --- 1. one reseller balance, many calls at once ------------------------------------------------

RACE_SECONDS = 1.5  # each switch runs at least this long, and on until the shared balance refuses it a call
RACE_SECONDS_MAX = 12.0
DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE
KEEPER_AHEAD_SECONDS = 40  # a keeper this far ahead of the clock finds every call just answered due
SHARED = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=60)


def switch_worker(
    database: Database,
    report: Report,
    index: int,
    clients: list[str],
    settings: CallSettings,
    keeper: bool,
) -> None:
    """A switch: calls of random clients, each answered at once and meant to last 1 to 120 s.

    A call longer than its grant is extended by interim updates, as a switch does before the grant runs
    out; when the answer is final the switch cuts the call at the grant. Every third call is left up.
    With ``keeper`` the process also runs the keeper's extensions between calls, as every Tollway
    process does.
    """
    rng = random.Random(index)  # a reproducible mix
    began = time.monotonic()
    number = 0
    while time.monotonic() - began < RACE_SECONDS_MAX:
        if time.monotonic() - began >= RACE_SECONDS and report.refusals:
            break
        number += 1
        call_id = f"w{index}-{number}"
        authorized_before = report.counts["authorized"]
        try:
            if keeper:
                ahead = utc_now() + timedelta(seconds=KEEPER_AHEAD_SECONDS)
                report.counts["extended"] += calls.extend_due(database, settings=settings, now=ahead)
            one_call(database, report, rng, call_id, clients, settings, leave_up=number % 3 == 0)
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != DEADLOCK_DETECTED:
                raise
            report.counts["deadlocked"] += 1  # Database.run gave up after a deadlock on every try
            if report.counts["authorized"] > authorized_before:
                report.counts["left_up"] += 1  # authorized, but the switch could not end it: it stays up


def one_call(
    database: Database,
    report: Report,
    rng: random.Random,
    call_id: str,
    clients: list[str],
    settings: CallSettings,
    *,
    leave_up: bool,
) -> None:
    """One call: authorized answered; left up, or extended by updates as long as needed and ended."""
    answered_at = utc_now()
    request = CallRequest(call_id, rng.choice(clients), "", UK, answered=True)
    answer = calls.authorize_call(database, request, settings=settings, now=answered_at)
    if answer["status"] == "refused":
        report.refusals[f"{answer['reason']}@{answer['level']}"] += 1
        return
    report.counts["authorized"] += 1
    if leave_up:
        report.counts["left_up"] += 1
        return
    wanted = rng.randint(1, 120)
    grant, final = answer["grant_seconds"], answer["final"]
    for sequence in range(1, 10):
        if wanted <= grant or final:
            break
        elapsed = grant - 10
        update = calls.update_call(
            database,
            call_id,
            sequence=sequence,
            elapsed_seconds=elapsed,
            settings=settings,
            now=answered_at + timedelta(seconds=elapsed),
        )
        report.counts["updated"] += 1
        grant, final = update["grant_seconds"], update["final"]
    duration = min(wanted, grant)
    at = answered_at + timedelta(seconds=duration)
    end = calls.end_call(database, call_id, duration_seconds=duration, now=at)
    assert end["status"] == "ended" and end["overshoot_seconds"] == 0, end
    report.counts["ended"] += 1


def extend_once_worker(database: Database, report: Report, index: int, now: datetime, settings: CallSettings) -> None:
    report.counts["extended"] += calls.extend_due(database, settings=settings, now=now)


def deadlocks(database: Database) -> int:
    """Deadlocks PostgreSQL detected (and broke by failing a transaction) in this database so far."""
    with database.reading() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        query = text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return int(connection.execute(query).scalar_one())


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_a_reseller_balance_shared_by_concurrent_calls_never_goes_below_its_floor(database: Database) -> None:
    # atlas-north has 0.50: a 60 s grant reserves 0.05 there (by the minute), so 10 grants fit at once.
    build_world(database, balances_of={"atlas-north": "0.50"})
    clients = ["alice", "bob", *add_clients(database, 8)]
    deadlocks_before = 0 if database.is_sqlite else deadlocks(database)

    # Four switches at once, two of them also extending grants, until the shared balance runs out.
    reports = run_workers(database.url, [(switch_worker, (index, clients, SHARED, index < 2)) for index in range(4)])

    assert errors_of(reports) == []
    assert raced(reports)
    refusals = refusals_of(reports)
    assert refusals["insufficient_funds@atlas-north"] > 0, refusals  # the shared balance really ran out
    assert set(refusals) == {"insufficient_funds@atlas-north"}, refusals  # and nothing else refused a call
    assert total(reports, "ended") + total(reports, "left_up") == total(reports, "authorized")
    books = assert_books_agree(database)  # among others: no wallet below its floor
    assert books.states["refused"] == sum(refusals.values())
    assert books.states["ended"] == total(reports, "ended")
    assert books.states["answered"] == total(reports, "left_up")
    assert available(database, "atlas-north") >= 0

    # End the calls left up, at the end of their grants: now only new calls will be up.
    with database.reading() as connection:
        up = connection.execute(
            select(calls_table.c.call_id, calls_table.c.answered_at, calls_table.c.grant_seconds).where(
                calls_table.c.state == "answered"
            )
        ).all()
    for call_id, answered_at, grant in up:
        calls.end_call(database, call_id, duration_seconds=grant, now=answered_at + timedelta(seconds=grant))

    # Exactly enough for 12 first grants and 5 extensions: two keepers extend the 12 calls at once.
    calls_up, extensions = 12, 5
    room = available(database, "atlas-north")
    assert 0 <= room < micros("0.05") * (calls_up + extensions)
    needed = micros("0.05") * (calls_up + extensions) - room
    balances.topup(database, login="atlas-north", amount_micros=needed, transfer_id="topup-atlas-north-again")
    answered_at = utc_now()
    for number in range(calls_up):
        request = CallRequest(f"long-{number}", clients[number % len(clients)], "", UK, answered=True)
        answer = calls.authorize_call(database, request, settings=SHARED, now=answered_at)
        assert (answer["status"], answer["grant_seconds"], answer["final"]) == ("authorized", 60, False), answer
    assert available(database, "atlas-north") == micros("0.05") * extensions

    keepers_now = answered_at + timedelta(seconds=40)  # every grant ends within the lead time of 30 s
    extending = run_workers(database.url, [(extend_once_worker, (index, keepers_now, SHARED)) for index in range(2)])

    assert errors_of(extending) == []
    assert total(extending, "extended") == calls_up  # each call handled once, by one of the two
    with database.reading() as connection:
        grants = connection.execute(
            select(
                calls_table.c.grant_seconds,
                calls_table.c.final,
                calls_table.c.extensions,
                calls_table.c.reason,
                calls_table.c.level,
                calls_table.c.disconnect_state,
            ).where(calls_table.c.call_id.startswith("long-"))
        ).all()
    assert Counter(tuple(row) for row in grants) == Counter(
        {
            (120, False, 1, None, None, None): extensions,  # a second minute reserved at every level
            (60, True, 1, "insufficient_funds", "atlas-north", "due"): calls_up - extensions,  # cut at the grant
        }
    )
    assert available(database, "atlas-north") == 0  # exactly at its floor, never below
    books = assert_books_agree(database)
    assert books.states["answered"] == calls_up
    assert check(database).ok

    if not database.is_sqlite:
        # Every writer locks all the accounts it touches at once in ascending id order: no transaction
        # ever waits for another in a cycle (each deadlock would stall the switches for a second).
        assert deadlocks(database) - deadlocks_before == 0
        assert total(reports, "deadlocked") == 0


# --- 2. sweeping stale calls from several processes -------------------------------------------

STALE = CallSettings(grant_seconds=30, extend_lead_seconds=10, stale_margin_seconds=30, ring_timeout_seconds=60)
# What 30 s to the UK cost at each level: 0.10/min per second; 0.06/min in 6 s steps; 0.05 a started
# minute; 0.04/min per second plus 0.05 to connect.
STALE_COSTS = (micros("0.05"), micros("0.03"), micros("0.05"), micros("0.07"))


def sweep_worker(database: Database, report: Report, index: int, now: datetime, settings: CallSettings) -> None:
    report.counts["swept"] += calls.sweep_stale(database, settings=settings, now=now)


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_stale_calls_swept_by_several_processes_at_once_are_closed_and_charged_exactly_once(
    database: Database,
) -> None:
    build_world(database)
    started = utc_now()
    answered, ringing = 50, 10
    for number in range(answered + ringing):
        request = CallRequest(f"s{number}", ("alice", "bob")[number % 2], "", UK, answered=number < answered)
        answer = calls.authorize_call(database, request, settings=STALE, now=started)
        assert answer["grant_seconds"] == 30, answer
    # Past every grant (30 s) and ringing time (60 s), and the 30 s margin after them.
    sweep_at = started + timedelta(seconds=120)

    reports = run_workers(database.url, [(sweep_worker, (index, sweep_at, STALE)) for index in range(3)])

    assert errors_of(reports) == []
    assert some_raced(reports)
    assert total(reports, "swept") == answered + ringing  # every call closed once, by one of the three
    with database.reading() as connection:
        closed = connection.execute(
            select(
                calls_table.c.id,
                calls_table.c.call_id,
                calls_table.c.state,
                calls_table.c.end_reason,
                calls_table.c.duration_seconds,
                calls_table.c.ended_at,
            )
        ).all()
        lines = connection.execute(
            select(call_charges.c.call_id, call_charges.c.position, call_charges.c.amount_micros)
        ).all()
        resolutions = connection.execute(
            select(transfers.c.id, transfers.c.pending_id, transfers.c.phase, transfers.c.amount_micros).where(
                transfers.c.kind == "call_charge", transfers.c.phase != "pending"
            )
        ).all()
    stale_ids = {row.id for row in closed if int(row.call_id[1:]) < answered}
    assert Counter((row.state, row.end_reason, row.duration_seconds, row.ended_at) for row in closed) == Counter(
        {("ended", "stale", 30, sweep_at): answered, ("ended", "unanswered", 0, sweep_at): ringing}
    )
    assert sorted((row.call_id, row.position, row.amount_micros) for row in lines) == sorted(
        (pk, position, STALE_COSTS[position] if pk in stale_ids else 0)
        for pk in (row.id for row in closed)
        for position in range(len(LEVELS))
    )
    # One resolution per reservation, each call's first and only one: posted in full, or voided.
    assert sorted((row.id, row.pending_id, row.phase, row.amount_micros) for row in resolutions) == sorted(
        (
            f"call:{pk}:{position}:1:{'post' if pk in stale_ids else 'void'}",
            f"call:{pk}:{position}:1",
            "post" if pk in stale_ids else "void",
            STALE_COSTS[position],
        )
        for pk in (row.id for row in closed)
        for position in range(len(LEVELS))
    )
    # 25 stale calls each for alice and bob, 50 for every reseller: nothing reserved any more.
    assert [balance(database, login) for login in ("alice", "bob", "north-city", "atlas-north", "atlas")] == [
        micros("10") - 25 * STALE_COSTS[0],
        micros("10") - 25 * STALE_COSTS[0],
        micros("100") - 50 * STALE_COSTS[1],
        micros("100") - 50 * STALE_COSTS[2],
        micros("100") - 50 * STALE_COSTS[3],
    ]
    books = assert_books_agree(database)
    assert books.reserved == {} and books.pending_ids == set()
    assert calls.sweep_stale(database, settings=STALE, now=sweep_at + timedelta(hours=1)) == 0
    assert check(database).ok


# --- 3. kill -9 of a server in the middle of calls ----------------------------------------------

SERVE_START_SECONDS_MAX = 30
TRAFFIC_SECONDS = 2.0  # the kill comes after this long and TRAFFIC_ENDED_MIN calls ended ...
TRAFFIC_ENDED_MIN = 10
TRAFFIC_SECONDS_MAX = 10.0  # ... or after TRAFFIC_CALLS ended, or at the latest after this long
TRAFFIC_THREADS = 6
TRAFFIC_CALLS = 150
KILLED_APPLICATION = "tollway-killed"  # the killed server's PostgreSQL sessions, by PGAPPNAME


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Traffic:
    """What the switch threads heard back before the server died."""

    authorized: set[str] = field(default_factory=set)  # authorize answered 200 "authorized"
    ended: set[str] = field(default_factory=set)  # end answered 200
    in_flight: int = 0  # requests sent that got no answer: the server died under them
    refused_to_connect: int = 0
    server_errors: list[str] = field(default_factory=list)  # requests answered 5xx
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def drive(base_url: str, key: str, thread: int, stop: threading.Event, traffic: Traffic) -> None:
    """One switch connection: answered calls of alice and bob, most of them ended after 1 to 60 s."""
    rng = random.Random(thread)  # a reproducible mix
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        number = 0
        while not stop.is_set():
            number += 1
            call_id = f"k{thread}-{number}"
            try:
                body = {"call_id": call_id, "account": rng.choice(("alice", "bob")), "callee": UK, "answered": True}
                response = client.post("/api/v1/calls/authorize", json=body)
                if response.status_code >= 500:
                    with traffic.lock:
                        traffic.server_errors.append(f"authorize {call_id}: {response.status_code}")
                    continue
                if response.status_code != 200 or response.json()["status"] != "authorized":
                    raise AssertionError(f"authorize {call_id}: {response.status_code} {response.text}")
                with traffic.lock:
                    traffic.authorized.add(call_id)
                if rng.random() < 0.25:
                    continue  # left up: the switch goes silent about it
                ending = {"duration_seconds": rng.randint(1, 60)}
                response = client.post(f"/api/v1/calls/{call_id}/end", json=ending)
                if response.status_code >= 500:  # the call stays up, as if the switch had gone silent
                    with traffic.lock:
                        traffic.server_errors.append(f"end {call_id}: {response.status_code}")
                    continue
                if response.status_code != 200 or response.json()["status"] != "ended":
                    raise AssertionError(f"end {call_id}: {response.status_code} {response.text}")
                with traffic.lock:
                    traffic.ended.add(call_id)
            except httpx.ConnectError:
                with traffic.lock:
                    traffic.refused_to_connect += 1
                return
            except httpx.TransportError:
                with traffic.lock:
                    traffic.in_flight += 1
                return
            except Exception as error:
                with traffic.lock:
                    traffic.unexpected.append(unexpected(call_id, error))
                return


@contextmanager
def serving(database: Database, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``tollway serve`` on the test database, without a keeper, with 60 s grants: (process, URL, log)."""
    port = free_port()
    env = {
        **os.environ,
        "TOLLWAY_DATABASE_URL": database.url,
        "TOLLWAY_KEEPER": "false",
        "TOLLWAY_CALL_GRANT_SECONDS": "60",
        "TOLLWAY_LOG_LEVEL": "warning",
        "TOLLWAY_CONFIG": str(tmp_path / "no-such-file.toml"),
        "PGAPPNAME": KILLED_APPLICATION,
    }
    log = tmp_path / "serve.log"
    tollway = str(Path(sys.executable).parent / "tollway")
    with log.open("wb") as output:
        server = subprocess.Popen(
            [tollway, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS_MAX
        while True:
            try:
                if httpx.get(f"{base_url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "tollway serve did not start"
            time.sleep(0.1)
        yield server, base_url, log
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)


def traffic_done(traffic: Traffic, elapsed: float) -> bool:
    ended = len(traffic.ended)
    return (
        (elapsed >= TRAFFIC_SECONDS and ended >= TRAFFIC_ENDED_MIN)
        or ended >= TRAFFIC_CALLS
        or elapsed >= TRAFFIC_SECONDS_MAX
    )


def wait_for_dead_sessions(database: Database, application: str = KILLED_APPLICATION) -> None:
    """PostgreSQL ends a killed client's sessions (and rolls back their transactions) when it sees the
    sockets close; wait for that, so no row stays locked by a transaction that will never finish.
    ``application``: the killed process's PGAPPNAME."""
    if database.is_sqlite:
        return
    deadline = time.monotonic() + 10
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
    while True:
        with database.reading() as connection:
            left = connection.execute(query, {"name": application}).scalar_one()
        if not left:
            return
        assert time.monotonic() < deadline, f"{left} sessions of the killed server still open"
        time.sleep(0.05)


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_a_server_killed_in_the_middle_of_calls_leaves_nothing_half_done_and_the_sweeper_releases_the_rest(
    database: Database, tmp_path: Path
) -> None:
    build_world(database)
    _, key = calls.create_switch(database, name="t", node_login="house")
    traffic = Traffic()
    stop = threading.Event()
    with serving(database, tmp_path) as (server, base_url, log):
        threads = [
            threading.Thread(target=drive, args=(base_url, key, thread, stop, traffic), daemon=True)
            for thread in range(TRAFFIC_THREADS)
        ]
        for thread in threads:
            thread.start()
        began = time.monotonic()
        while not traffic_done(traffic, time.monotonic() - began):
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)  # kill -9, with requests in flight
        server.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    assert server.returncode == -signal.SIGKILL
    assert traffic.unexpected == [], traffic.unexpected[0]
    assert traffic.ended, "no call ended before the kill:\n" + log.read_text()[-2000:]
    assert traffic.in_flight >= 1, "the server was killed with no request in flight"
    wait_for_dead_sessions(database)

    # Everything the server answered is there; nothing it was doing when it died is there in part.
    books = assert_books_agree(database)
    with database.reading() as connection:
        states = dict(connection.execute(select(calls_table.c.call_id, calls_table.c.state)).all())
    assert {states.get(call_id) for call_id in traffic.authorized} <= {"answered", "ended"}
    assert {states.get(call_id) for call_id in traffic.ended} == {"ended"}
    assert books.states["ended"] >= len(traffic.ended)
    assert books.states["authorized"] == 0  # every call was authorized answered

    # The sweeper closes every call the dead server left up; nothing stays reserved.
    swept = calls.sweep_stale(database, now=utc_now() + timedelta(hours=2))
    assert swept == books.states["answered"]
    books = assert_books_agree(database)
    assert books.states["answered"] == 0 and books.states["authorized"] == 0
    assert books.reserved == {} and books.pending_ids == set()
    with database.reading() as connection:
        resolved = select(transfers.c.pending_id).where(transfers.c.pending_id.is_not(None))
        still_open = connection.execute(
            select(transfers.c.id).where(transfers.c.phase == "pending", transfers.c.id.not_in(resolved))
        ).all()
        current = ledger_store.current_accounts().subquery()  # rows + unfolded postings
        reserving = connection.execute(
            select(func.count())
            .select_from(current)
            .where((current.c.debits_pending != 0) | (current.c.credits_pending != 0))
        ).scalar_one()
    assert still_open == []  # every reservation was posted or voided, by the server or by the sweeper
    assert reserving == 0  # and no balance holds anything back any more
    report = check(database)
    assert report.ok, report.problems

    assert traffic.server_errors == []  # no request failed: nothing deadlocks, nothing is refused by mistake
