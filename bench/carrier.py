"""Benchmark: credit control at carrier speed, in one run that prints everything (issue 17).

    .venv/bin/python bench/carrier.py --quick                     # under 3 minutes: the figures after a change
    .venv/bin/python bench/carrier.py                             # the full run, about 10 minutes
    .venv/bin/python bench/carrier.py --quick --json figures.json # the headline figures as one JSON object
    .venv/bin/python bench/carrier.py --profile                   # and where the in-process engine spends its CPU
    .venv/bin/python bench/carrier.py --quick --scale-out 1,2,4   # and the HTTP peak with 1, 2 and 4 processes

It makes its own PostgreSQL database next to the one the admin URL names (``--url`` or
``TOLLWAY_BENCH_POSTGRESQL_URL``; default ``postgresql://postgres@127.0.0.1:5432/postgres``), builds the tree
of ``bench/calls.py`` (a provider, 3 L3, 10 L2 and 50 L1 resellers, thousands of retail clients, a tariff
derived at every level from a 400-row sheet), registers two switches, and measures, in this order:

* **in-process** (the engine alone, no HTTP): ``authorize_call`` (answered) then ``end_call``, as the switch's
  principal, in this process. One thread gives the CPU milliseconds, SQL statements (counted by a SQLAlchemy
  event: an executemany is one) and round trips to PostgreSQL (counted on the wire by a relay) per setup;
  several threads at once give the setups per second and CPU per setup when requests overlap.
* **HTTP**: ``tollway serve --workers N`` against the database, driven by a light asyncio generator of its
  own (one keep-alive connection per switch link) in this process. A **setup** is ``POST /calls/authorize``
  of an answered call, then ``POST /calls/{id}/end``. First the **peak**: closed loops on C links (each link
  sends its next setup when the last one is answered) for each link count given, the best rate is the peak.
  Then **80 % of the peak**: setups arrive at random (Poisson) at 0.8 x the peak rate, each on a free link
  of a large pool, and the latency of each request is measured. Server CPU (the ``tollway serve`` processes,
  from ``/proc``) and PostgreSQL CPU (the backends of the bench database) per setup, and the database's
  transactions per setup (``pg_stat_database``).
  Two variants: **spread**, calls from every funded client of the tree, and **hot**, calls only from the
  clients of one L1 reseller, so every call's chain is the same L1, L2 and L3 wallets.
* **RADIUS**: ``tollway radius`` against the same database, with a NAS acting as a third switch, driven
  by a few processes that send Access-Requests (signed with a Message-Authenticator, as gateways do)
  and, for each one accepted, an Accounting-Request Stop; authorizations per second.
* **pgbench** against the same server in scratch databases: ``-N`` (simple update) and the default TPC-B-like
  script; the setups per second are printed as a share of each, the yardstick of what this machine and
  server do in C with no Python and no HTTP.
* **scale-out** (``--scale-out 1,2,4``): the HTTP peak of each variant again with 1, 2 and 4 server
  processes, laid out two ways (``--scale-out-layouts``): ``workers``, one ``tollway serve --workers N`` (uvicorn's
  workers share one port), and ``ports``, N ``tollway serve`` processes each on a port of its own, the links
  spread over them as a load balancer in front of N hosts would. Each process has its own static cache,
  pool and keeper, so the second layout is what several application hosts do. ``--scale-out-only`` skips
  everything but the tree, the sweep and the ledger check.
* ``tollway ledger check`` at the end: the run fails if the ledger does not balance.

Durations are drawn as ``bench/calls.py`` draws them (exponential, 90 s on average) and reported at once:
the calls are virtual. Each figure is printed with the load average of the machine around it, since other
work on a shared machine shows in throughput and latency; CPU per setup and statements per setup are the
stable figures. It prints the tables, a Markdown copy for ``docs/benchmarks.md``, writes
``docs/benchmarks-carrier.png`` (``--quick``: in the temporary directory) and, with ``--json FILE``::

    {"pgbench_simple_tps": ..., "pgbench_tpcb_tps": ...,
     "variants": {"spread": {"setups_per_second": ..., "authorize_p99_ms": ...,
                             "authorize_p99_ms_at_80_percent": ..., "server_cpu_ms_per_setup": ...},
                  "hot": {...the same...}}}

With ``--scale-out`` the JSON object has one more key, ``"scale_out"``: a list of
``{"layout", "processes", "variant", "setups_per_second", "authorize_p50_ms", "authorize_p99_ms",
"server_cpu_ms_per_setup", "machine_busy"}``; without it the object is exactly the one above.

The exit status is 1 if a request failed, a figure is missing (not asked for with ``--scale-out-only``) or
the ledger check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import queue
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from calls import (
    PROVIDER_LOGIN,
    SEED,
    CpuSnapshot,
    HttpError,
    Server,
    Sheet,
    SwitchLink,
    Tally,
    Traffic,
    World,
    authorize,
    backend_pids,
    build_world,
    calls_api_present,
    client_plan,
    cpu_of,
    cpu_use,
    end,
    machine_cpu,
    merge,
    new_progress,
    percentile_milliseconds,
    reseller_plan,
    serving,
    setup_loop,
)
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scratch_database import TurnCounter, bench_database, server_facts, settle
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from tollway.access import service as access
from tollway.calls import service as calls_service
from tollway.calls.service import CallRequest
from tollway.ledger import service as ledger
from tollway.store import migrate
from tollway.store.database import Database

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_VARIABLE = "TOLLWAY_BENCH_POSTGRESQL_URL"
REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_CHART = REPOSITORY / "docs" / "benchmarks-carrier.png"
DEFAULT_SCALE_OUT_CHART = REPOSITORY / "docs" / "benchmarks-scale-out.png"
SCALE_OUT_LAYOUTS = ("workers", "ports")
VARIANTS = ("spread", "hot")
HTTP_SWITCH, RADIUS_SWITCH = "bench-sbc", "bench-radius"

# The full run; --quick overrides (see parse_options).
CLIENTS = 10_000
SERVER_WORKERS = 2  # one per core
PEAK_LINKS = (16, 64)  # closed-loop link counts tried for the peak; the best rate is the peak
POINT_SECONDS = 20.0  # per peak point and for the 80 % run
WARMUP_SECONDS = 5.0  # before each variant's first point: every worker loads every tariff and chain
STEADY_SHARE = 0.8  # the open-loop rate, as a share of the peak
STEADY_LINKS_MAX = 512  # connections in the 80 % run's pool: a setup waits for a free one only past this
INPROCESS_SECONDS = 10.0  # per in-process point
INPROCESS_THREADS = 16  # the overlapping in-process point
ROUND_TRIP_SETUPS = 200  # in-process setups through the relay that counts round trips, or as many as
ROUND_TRIP_SECONDS_MAX = 5.0  # fit in this long
RADIUS_SECONDS = 15.0
RADIUS_PROCESSES = 2  # load generators, each with this many requests in flight:
RADIUS_IN_FLIGHT = 16
RADIUS_TIMEOUT_SECONDS = 5.0  # an Access-Request unanswered this long is counted as lost (pyrad drops nothing)
PGBENCH_SCALE, PGBENCH_CLIENTS, PGBENCH_THREADS, PGBENCH_SECONDS = 10, 8, 2, 20
PGBENCH_TIMEOUT_SECONDS = 600
STATS_FLUSH_SECONDS = 1.2  # PostgreSQL 15 flushes a backend's statistics at most once a second when idle
LATENCIES_MAX = 2_000_000  # bounds memory whatever the speed
SERVER_STOP_SECONDS_MAX = 20.0
RADIUS_START_SECONDS_MAX = 60.0

console = Console() if sys.stdout.isatty() else Console(width=160)


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Say what runs, and when it is done how long it took and how loaded the machine was."""
    began = time.monotonic()
    with console.status(name):
        yield
    console.print(f"{name}: {time.monotonic() - began:.1f} s, load average {load_average()}", highlight=False)


# --- the tree -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    world: World
    callers: dict[str, list[str]]  # variant -> the funded clients that call
    warm: dict[str, list[str]]  # variant -> a few clients that warm every chain the variant uses
    hot_owner: str  # the L1 of the hot variant
    http_key: str
    radius_secret: str


def build(url: str, database: Database, clients: int, progress: Progress) -> Bench:
    """The tree of bench/calls.py, its switches, and who calls in each variant."""
    world = build_world(url, database, clients, "clone", progress)
    l1 = sorted(login for login, _, level in reseller_plan() if level == 1)
    plan = client_plan(clients, l1)  # the same plan build_world used: same seed, same owners
    funded = [(login, owner) for login, owner, is_funded in plan if is_funded]
    sizes = Counter(owner for _, owner in funded)
    hot_owner = sizes.most_common(1)[0][0]
    hot = [login for login, owner in funded if owner == hot_owner]
    # The calls are virtual: their drawn durations are reported at once, which only a switch trusted with
    # durations may do (any other has them flagged as longer than the time since the answer).
    _, http_key = calls_service.create_switch(
        database, name=HTTP_SWITCH, node_login=PROVIDER_LOGIN, trusted_durations=True
    )
    calls_service.create_switch(database, name=RADIUS_SWITCH, node_login=PROVIDER_LOGIN, trusted_durations=True)
    console.print(
        f"variants: spread = {len(funded):,} funded clients under {len(sizes)} L1s; hot = the {len(hot):,} "
        f"funded clients of {hot_owner} (one L1, one L2, one L3 wallet for every call)"
    )
    return Bench(
        world,
        {"spread": [login for login, _ in funded], "hot": hot},
        {"spread": world.warm_clients, "hot": hot[:8]},
        hot_owner,
        http_key,
        uuid.uuid4().hex,
    )


# --- in-process: the engine alone ---------------------------------------------------------------------


@dataclass
class InProcess:
    variant: str
    threads: int
    setups: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    database_cpu_seconds: float = 0.0
    statements: int = 0
    round_trips: float = 0.0  # per setup, one thread, counted on the wire
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    setup_seconds: array[float] = field(default_factory=lambda: array("d"))  # wall time of each setup

    @property
    def per_second(self) -> float:
        return self.setups / self.seconds if self.seconds else 0.0

    def per_setup(self, amount: float) -> float:
        return amount / self.setups if self.setups else 0.0


class StatementCounter:
    """Statements sent through an engine (an executemany counts once), from any thread."""

    def __init__(self, database: Database) -> None:
        self.count = 0
        self._lock = threading.Lock()
        event.listen(database.engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        with self._lock:
            self.count += 1


def warm_up(database: Database, principal: Any, bench: Bench, variant: str, tag: str, seconds: float) -> None:
    """A setup from each warm-up client in turn, for at most ``seconds``: chains and tariffs loaded."""
    warm = Traffic(bench.warm[variant], bench.world.sheet, random.Random(f"{SEED}-warm"))
    lock, ignored = threading.Lock(), InProcess(variant, 1)
    deadline = time.monotonic() + seconds
    for number, client in enumerate(bench.warm[variant]):
        warm.clients = [client]
        engine_setup(database, principal, warm, f"{tag}.warm{number}", ignored, lock)
        if time.monotonic() > deadline:
            return


def engine_setup(
    database: Database, principal: Any, traffic: Traffic, call_id: str, result: InProcess, lock: threading.Lock
) -> None:
    """One setup through the service layer: authorize an answered call, end it with the drawn duration."""
    request = CallRequest(call_id, traffic.client(), traffic.caller(), traffic.callee(), answered=True)
    began = time.perf_counter()
    try:
        answer = calls_service.authorize_call(database, request, principal=principal)
        if answer["status"] != "authorized":
            with lock:
                result.refused[str(answer["reason"])] += 1
            return
        duration = min(traffic.duration_seconds(), int(answer["max_seconds"]))
        calls_service.end_call(database, call_id, duration_seconds=duration, principal=principal)
    except Exception as error:  # counted and shown: a benchmark reports failures, it does not stop at one
        with lock:
            result.errors[f"{error.__class__.__name__}: {str(error)[:120]}"] += 1
        return
    with lock:
        result.setups += 1
        if len(result.setup_seconds) < LATENCIES_MAX:
            result.setup_seconds.append(time.perf_counter() - began)


def in_process(
    url: str,
    bench: Bench,
    variant: str,
    threads: int,
    seconds: float,
    warmup_seconds: float,
    profile: cProfile.Profile | None = None,
) -> InProcess:
    """Setups in this process for ``seconds``, on ``threads`` threads at once; CPU, statements per setup."""
    database = Database(url, pool_size=max(5, threads))
    result = InProcess(variant, threads)
    try:
        principal = access.login_with_api_key(database, plaintext=bench.http_key)
        counter = StatementCounter(database)
        lock = threading.Lock()
        tag = f"p{uuid.uuid4().hex[:6]}.{variant}.{threads}"
        warm_up(database, principal, bench, variant, tag, warmup_seconds)
        pids = backend_pids(database)
        database_before = sum(cpu_of(pids).values())
        statements_before = counter.count
        deadline = time.monotonic() + seconds

        def loop(index: int) -> None:
            traffic = Traffic(bench.callers[variant], bench.world.sheet, random.Random(f"{SEED}-{variant}-{index}"))
            number = 0
            if profile is not None:  # cProfile sees the thread that enables it only
                profile.enable()
            while time.monotonic() < deadline:
                number += 1
                engine_setup(database, principal, traffic, f"{tag}.{index}.{number}", result, lock)
            if profile is not None:
                profile.disable()

        cpu_before, began = time.process_time(), time.monotonic()
        workers = [threading.Thread(target=loop, args=(index,)) for index in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        result.seconds = time.monotonic() - began
        result.cpu_seconds = time.process_time() - cpu_before
        result.statements = counter.count - statements_before
        pids = backend_pids(database)
        result.database_cpu_seconds = sum(cpu_of(pids).values()) - database_before
    finally:
        database.dispose()
    return result


def count_round_trips(url: str, bench: Bench, variant: str, warmup_seconds: float) -> float:
    """Round trips to PostgreSQL per setup, one at a time, from pool checkout to commit, on the wire."""
    parsed = make_url(url)
    counter = TurnCounter(parsed.host or "127.0.0.1", parsed.port or 5432)
    database = Database(parsed.set(host="127.0.0.1", port=counter.port).render_as_string(hide_password=False))
    result, lock = InProcess(variant, 1), threading.Lock()
    tag = f"r{uuid.uuid4().hex[:6]}.{variant}"
    try:
        principal = access.login_with_api_key(database, plaintext=bench.http_key)
        warm_up(database, principal, bench, variant, tag, warmup_seconds)
        traffic = Traffic(bench.callers[variant], bench.world.sheet, random.Random(f"{SEED}-{variant}-turns"))
        before = counter.turns
        deadline = time.monotonic() + ROUND_TRIP_SECONDS_MAX
        for number in range(ROUND_TRIP_SETUPS):
            engine_setup(database, principal, traffic, f"{tag}.{number}", result, lock)
            if time.monotonic() > deadline:
                break
        turns = counter.turns - before
    finally:
        database.dispose()
    return turns / result.setups if result.setups else 0.0


# --- HTTP: the peak, then 80 % of it --------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    """The server processes one HTTP run drives: one ``tollway serve --workers N`` (layout "workers"), or N
    ``tollway serve`` each on a port of its own (layout "ports"), as N hosts behind a load balancer."""

    servers: tuple[Server, ...]
    layout: str
    processes: int

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def port_of(self, link: int) -> int:
        """Link ``link``'s server: links are dealt out over the ports in turn, as a balancer's round robin."""
        return self.servers[link % len(self.servers)].port

    def pids(self) -> list[int]:
        return [pid for server in self.servers for pid in server.pids()]


def fleet_snapshot(fleet: Fleet, database: Database) -> CpuSnapshot:
    busy, total = machine_cpu()
    return CpuSnapshot(time.process_time(), cpu_of(fleet.pids()), cpu_of(backend_pids(database)), busy, total)


@dataclass
class DatabaseStats:
    transactions: int
    inserted: int
    updated: int


def database_stats(database: Database) -> DatabaseStats:
    query = text(
        "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated FROM pg_stat_database "
        "WHERE datname = current_database()"
    )
    with database.reading() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = connection.execute(query).one()
    return DatabaseStats(int(row[0]), int(row[1]), int(row[2]))


@dataclass
class HttpRun:
    variant: str
    mode: str  # "peak" (closed loop) or "80 %" (open loop)
    links: int
    seconds: float
    tally: Tally
    server_cpu_seconds: float
    database_cpu_seconds: float
    machine_busy: float
    transactions: int
    rows_written: int
    load: str  # the machine's load average after the run
    target_per_second: float = 0.0  # the open loop's arrival rate
    queued_seconds: array[float] = field(default_factory=lambda: array("d"))  # waits for a free link
    layout: str = "workers"  # the fleet's (Fleet)
    processes: int = 0  # server processes that served it

    @property
    def per_second(self) -> float:
        return self.tally.setups / self.seconds if self.seconds else 0.0

    def per_setup(self, amount: float) -> float:
        return amount / self.tally.setups if self.tally.setups else 0.0

    def authorize_ms(self, percent: int) -> float:
        return percentile_milliseconds(self.tally.authorize_seconds, percent)

    def end_ms(self, percent: int) -> float:
        return percentile_milliseconds(self.tally.end_seconds, percent)


async def measured(
    fleet: Fleet, database: Database, work: Callable[[], Any], variant: str, mode: str, links: int
) -> HttpRun:
    """Run ``work`` and say what it cost: CPU of the servers and of PostgreSQL, transactions, rows."""
    stats_before = await asyncio.to_thread(database_stats, database)
    before = await asyncio.to_thread(fleet_snapshot, fleet, database)
    began = time.monotonic()
    tally, extra = await work()
    seconds = time.monotonic() - began
    after = await asyncio.to_thread(fleet_snapshot, fleet, database)
    await asyncio.sleep(STATS_FLUSH_SECONDS)
    stats_after = await asyncio.to_thread(database_stats, database)
    used = cpu_use(before, after)
    run = HttpRun(
        variant, mode, links, seconds, tally, used.server, used.database,
        used.machine_busy / used.machine_total if used.machine_total else 0.0,
        stats_after.transactions - stats_before.transactions,
        stats_after.inserted - stats_before.inserted + stats_after.updated - stats_before.updated,
        load_average(),
    )  # fmt: skip
    if extra is not None:
        run.target_per_second, run.queued_seconds = extra
    run.layout, run.processes = fleet.layout, fleet.processes
    return run


async def closed_loop(fleet: Fleet, bench: Bench, variant: str, links: int, seconds: float) -> tuple[Tally, None]:
    connections = [SwitchLink("127.0.0.1", fleet.port_of(n), bench.http_key) for n in range(links)]
    traffics = [
        Traffic(bench.callers[variant], bench.world.sheet, random.Random(f"{SEED}-{variant}-{links}-{n}"))
        for n in range(links)
    ]
    tallies = [Tally() for _ in connections]
    tag = f"c{uuid.uuid4().hex[:6]}.{variant}.{links}"
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(setup_loop(link, traffic, f"{tag}.{n}", deadline, tally)
          for n, (link, traffic, tally) in enumerate(zip(connections, traffics, tallies, strict=True)))
    )  # fmt: skip
    for link in connections:
        await link.close()
    return merge(tallies), None


async def open_loop(
    fleet: Fleet, bench: Bench, variant: str, rate: float, seconds: float
) -> tuple[Tally, tuple[float, array[float]]]:
    """Setups arriving at random at ``rate`` a second, each on the next free link of a pool."""
    size = max(16, min(STEADY_LINKS_MAX, int(rate * 0.25)))  # a quarter of a second of arrivals
    free: asyncio.Queue[SwitchLink] = asyncio.Queue()
    for n in range(size):
        free.put_nowait(SwitchLink("127.0.0.1", fleet.port_of(n), bench.http_key))
    traffic = Traffic(bench.callers[variant], bench.world.sheet, random.Random(f"{SEED}-{variant}-open"))
    tally, waits = Tally(), array("d")
    tag = f"o{uuid.uuid4().hex[:6]}.{variant}"
    chooser = random.Random(f"{SEED}-arrivals")
    running: set[asyncio.Task[None]] = set()

    async def one(number: int, due: float) -> None:
        link = await free.get()
        waits.append(max(0.0, time.monotonic() - due))
        call_id = f"{tag}.{number}"
        try:
            max_seconds = await authorize(link, traffic, call_id, tally)
            if max_seconds is not None:
                # Awaited first, then counted: ``tally.setups += await …`` reads the count before the await, and
                # the setups that end meanwhile on other links (one tally for all) would be lost.
                ended = await end(link, call_id, min(traffic.duration_seconds(), max_seconds), tally)
                tally.setups += ended
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError) as error:
            tally.error(error.__class__.__name__, error)
            await link.close()
        finally:
            free.put_nowait(link)

    began = time.monotonic()
    due, number = began, 0
    while due < began + seconds:
        due += chooser.expovariate(rate)
        pause = due - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        number += 1
        task = asyncio.create_task(one(number, due))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running)
    while not free.empty():
        await free.get_nowait().close()
    return tally, (rate, waits)


WARM_LINKS_MIN = 4  # links of the warm-up; at least two a server process, so every process warms its caches


async def drive_peaks(
    fleet: Fleet, database: Database, bench: Bench, variant: str, options: argparse.Namespace, progress: Any
) -> list[HttpRun]:
    """Warm every process up, then a closed loop for each link count: the best of them is the peak."""
    task = progress.add_task(f"HTTP {variant}: warming up", total=0)
    warm_tally = Tally()
    warm_traffic = Traffic(bench.warm[variant], bench.world.sheet, random.Random(f"{SEED}-warm-http"))
    tag = f"w{uuid.uuid4().hex[:6]}.{variant}"
    links = [SwitchLink("127.0.0.1", fleet.port_of(n), bench.http_key)
             for n in range(max(WARM_LINKS_MIN, 2 * fleet.processes))]  # fmt: skip
    await asyncio.gather(
        *(setup_loop(link, warm_traffic, f"{tag}.{n}", time.monotonic() + options.warmup_seconds, warm_tally)
          for n, link in enumerate(links))
    )  # fmt: skip
    for link in links:
        await link.close()
    runs: list[HttpRun] = []
    link_counts: list[int] = options.peak_links
    for count in link_counts:
        progress.update(task, description=f"HTTP {variant}: peak, {count} links, {options.seconds:g} s")
        runs.append(
            await measured(
                fleet, database, partial(closed_loop, fleet, bench, variant, count, options.seconds),
                variant, "peak", count,
            )
        )  # fmt: skip
    progress.remove_task(task)
    return runs


async def drive_variant(
    fleet: Fleet, database: Database, bench: Bench, variant: str, options: argparse.Namespace, progress: Progress
) -> list[HttpRun]:
    runs = await drive_peaks(fleet, database, bench, variant, options, progress)
    task = progress.add_task(f"HTTP {variant}: 80 %", total=0)
    peak = max(runs, key=lambda run: run.per_second)
    rate = max(1.0, STEADY_SHARE * peak.per_second)
    progress.update(task, description=f"HTTP {variant}: {rate:,.0f} setups/s arriving at random, {options.seconds:g} s")
    runs.append(
        await measured(
            fleet, database, lambda: open_loop(fleet, bench, variant, rate, options.seconds), variant, "80 %",
            max(16, min(STEADY_LINKS_MAX, int(rate * 0.25))),
        )
    )  # fmt: skip
    progress.remove_task(task)
    return runs


# --- RADIUS -----------------------------------------------------------------------------------------------


@dataclass
class RadiusTally:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    stops: int = 0
    lost: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    access_seconds: array[float] = field(default_factory=lambda: array("d"))


def radius_generator(
    start: Any, results: Any, index: int, port: int, acct_port: int, secret: str, clients: list[str],
    sheet: Sheet, seconds: float,
) -> None:  # fmt: skip
    """One load process: RADIUS_IN_FLIGHT requests in flight, Access-Request then Stop, until the deadline."""
    tally = RadiusTally()
    try:
        start.wait(timeout=RADIUS_START_SECONDS_MAX)
        asyncio.run(_radius_loops(port, acct_port, secret, clients, sheet, seconds, index, tally))
    except Exception as error:
        tally.errors[f"{error.__class__.__name__}: {error}"] += 1
    results.put((index, tally))


async def _radius_loops(
    port: int, acct_port: int, secret: str, clients: list[str], sheet: Sheet, seconds: float, index: int,
    tally: RadiusTally,
) -> None:  # fmt: skip
    from pyrad import packet as radius_packet  # type: ignore[import-untyped]

    from tollway.radius.attributes import dictionary

    loop = asyncio.get_running_loop()
    waiting: dict[tuple[str, int], asyncio.Future[bytes]] = {}

    class Replies(asyncio.DatagramProtocol):
        def __init__(self, kind: str) -> None:
            self.kind = kind

        def datagram_received(self, data: bytes, addr: Any) -> None:
            future = waiting.pop((self.kind, data[1]), None) if len(data) > 1 else None
            if future is not None and not future.done():
                future.set_result(data)

    auth, _ = await loop.create_datagram_endpoint(lambda: Replies("auth"), remote_addr=("127.0.0.1", port))
    acct, _ = await loop.create_datagram_endpoint(lambda: Replies("acct"), remote_addr=("127.0.0.1", acct_port))
    radius_dictionary = dictionary()
    identifiers = [asyncio.Queue[int]() for _ in range(2)]
    for queue_ in identifiers:
        for identifier in range(256):
            queue_.put_nowait(identifier)
    deadline = time.monotonic() + seconds
    traffic = Traffic(clients, sheet, random.Random(f"{SEED}-radius-{index}"))
    secret_bytes = secret.encode()

    async def exchange(kind: str, make: Callable[[int], Any]) -> bytes | None:
        pool = identifiers[0 if kind == "auth" else 1]
        identifier = await pool.get()
        try:
            request = make(identifier)
            future: asyncio.Future[bytes] = loop.create_future()
            waiting[(kind, identifier)] = future
            (auth if kind == "auth" else acct).sendto(request.RequestPacket())
            try:
                return await asyncio.wait_for(future, RADIUS_TIMEOUT_SECONDS)
            except TimeoutError:
                waiting.pop((kind, identifier), None)
                return None
        finally:
            pool.put_nowait(identifier)

    async def one_loop(link: int) -> None:
        number = 0
        while time.monotonic() < deadline:
            number += 1
            conf_id = f"{index:08X} {link:08X} {number:08X} {random.getrandbits(32):08X}"
            account, callee = traffic.client(), traffic.callee()

            def access_request(
                identifier: int, account: str = account, callee: str = callee, conf_id: str = conf_id
            ) -> Any:
                request = radius_packet.AuthPacket(id=identifier, secret=secret_bytes, dict=radius_dictionary)
                request["User-Name"] = account
                request["Called-Station-Id"] = callee
                request["Calling-Station-Id"] = traffic.caller()
                request["h323-conf-id"] = f"h323-conf-id={conf_id}"
                request.add_message_authenticator()
                return request

            began = time.perf_counter()
            reply = await exchange("auth", access_request)
            if reply is None:
                tally.lost += 1
                continue
            tally.access_seconds.append(time.perf_counter() - began)
            answer = radius_packet.Packet(packet=reply, dict=radius_dictionary)
            if answer.code != radius_packet.AccessAccept:
                codes = answer.get("h323-return-code") or ["?"]
                tally.rejected[str(codes[0])] += 1
                continue
            tally.accepted += 1
            duration = max(1, round(traffic.duration_seconds()))

            def stop(identifier: int, account: str = account, conf_id: str = conf_id, duration: int = duration) -> Any:
                request = radius_packet.AcctPacket(id=identifier, secret=secret_bytes, dict=radius_dictionary)
                request["Acct-Status-Type"] = 2
                request["User-Name"] = account
                request["h323-conf-id"] = f"h323-conf-id={conf_id}"
                request["Acct-Session-Time"] = duration
                return request

            if await exchange("acct", stop) is not None:
                tally.stops += 1
            else:
                tally.lost += 1

    await asyncio.gather(*(one_loop(link) for link in range(RADIUS_IN_FLIGHT)))
    auth.close()
    acct.close()


@dataclass
class RadiusRun:
    seconds: float
    tally: RadiusTally
    server_cpu_seconds: float
    load: str
    error: str = ""

    @property
    def per_second(self) -> float:
        return self.tally.accepted / self.seconds if self.seconds else 0.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def radius_server(url: str, secret: str, directory: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """``tollway radius`` on two free UDP ports, its NAS 127.0.0.1 acting as the RADIUS switch."""
    auth_port, acct_port = free_udp_port(), free_udp_port()
    clients = {"127.0.0.1": {"secret": secret, "switch": RADIUS_SWITCH, "require_message_authenticator": True}}
    environment = os.environ | {
        "TOLLWAY_DATABASE_URL": url,
        "TOLLWAY_RADIUS_CLIENTS": json.dumps(clients),
        "TOLLWAY_LOG_LEVEL": "warning",
    }
    executable = Path(sys.executable).with_name("tollway")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "tollway.cli.main"]
    command += ["radius", "--auth-port", str(auth_port), "--acct-port", str(acct_port)]
    log_path = directory / "radius.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=directory, start_new_session=True
        )
    try:
        deadline = time.monotonic() + RADIUS_START_SECONDS_MAX
        while "RADIUS on" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tollway radius did not start: {log_path.read_text(errors='replace')[-800:]}")
            time.sleep(0.2)
        yield process, auth_port, acct_port
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=SERVER_STOP_SECONDS_MAX)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait()


def radius_run(url: str, bench: Bench, seconds: float, directory: Path) -> RadiusRun:
    with radius_server(url, bench.radius_secret, directory) as (process, auth_port, acct_port):
        context = multiprocessing.get_context("spawn")
        start, results = context.Barrier(RADIUS_PROCESSES + 1), context.Queue()
        arguments = (auth_port, acct_port, bench.radius_secret, bench.callers["spread"], bench.world.sheet, seconds)
        generators = [
            context.Process(target=radius_generator, args=(start, results, index, *arguments), daemon=True)
            for index in range(RADIUS_PROCESSES)
        ]
        for generator in generators:
            generator.start()
        start.wait(timeout=RADIUS_START_SECONDS_MAX)
        cpu_before, began = cpu_of([process.pid]), time.monotonic()
        tallies: list[RadiusTally] = []
        try:
            for _ in generators:
                tallies.append(results.get(timeout=seconds + RADIUS_START_SECONDS_MAX)[1])
        except queue.Empty:
            return RadiusRun(time.monotonic() - began, RadiusTally(), 0.0, load_average(), "a generator hung")
        elapsed = time.monotonic() - began
        cpu_after = cpu_of([process.pid])
        for generator in generators:
            generator.join(timeout=5)
    merged = RadiusTally()
    for tally in tallies:
        merged.accepted += tally.accepted
        merged.rejected.update(tally.rejected)
        merged.stops += tally.stops
        merged.lost += tally.lost
        merged.errors.update(tally.errors)
        merged.access_seconds.extend(tally.access_seconds)
    used = cpu_after.get(process.pid, 0.0) - cpu_before.get(process.pid, 0.0)
    return RadiusRun(elapsed, merged, used, load_average())


# --- pgbench --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pgbench:
    script: str  # "simple-update" (-N) or "tpcb-like"
    tps: float
    latency_ms: float
    load: str


def run_pgbench(admin_url: str, scale: int, seconds: int) -> list[Pgbench]:
    binary = shutil.which("pgbench")
    if binary is None:
        console.print("[yellow]pgbench not found (Debian: postgresql-client): no yardstick")
        return []
    found = []
    with bench_database(admin_url, "_pgbench", say=console.print) as url:
        plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
        subprocess.run([binary, "-i", "-q", "-s", str(scale), plain], check=True, capture_output=True,
                       timeout=PGBENCH_TIMEOUT_SECONDS)  # fmt: skip
        for script, flags in (("simple-update", ["-N"]), ("tpcb-like", [])):
            command = [binary, *flags, "-c", str(PGBENCH_CLIENTS), "-j", str(PGBENCH_THREADS), "-T", str(seconds)]
            with console.status(f"pgbench {script}, {seconds} s"):
                done = subprocess.run([*command, plain], check=True, capture_output=True, text=True,
                                      timeout=PGBENCH_TIMEOUT_SECONDS)  # fmt: skip
            tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
            latency = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
            found.append(
                Pgbench(script, float(tps.group(1)) if tps else 0.0, float(latency.group(1)) if latency else 0.0,
                        load_average())
            )  # fmt: skip
    return found


# --- report -----------------------------------------------------------------------------------------------


@dataclass
class Results:
    facts: dict[str, str]
    in_process: list[InProcess] = field(default_factory=list)
    http: list[HttpRun] = field(default_factory=list)
    radius: RadiusRun | None = None
    pgbench: list[Pgbench] = field(default_factory=list)
    scale_out: list[HttpRun] = field(default_factory=list)  # the peak of each (layout, processes, variant)
    check_ok: bool = False
    check_summary: str = ""
    profile: str = ""

    def peak(self, variant: str) -> HttpRun | None:
        peaks = [run for run in self.http if run.variant == variant and run.mode == "peak"]
        return max(peaks, key=lambda run: run.per_second) if peaks else None

    def steady(self, variant: str) -> HttpRun | None:
        return next((run for run in self.http if run.variant == variant and run.mode == "80 %"), None)

    def pgbench_tps(self, script: str) -> float | None:
        return next((run.tps for run in self.pgbench if run.script == script), None)

    def figures(self) -> dict[str, Any]:
        """The headline figures, in the shape issue 17 asks for."""
        variants: dict[str, Any] = {}
        for variant in VARIANTS:
            peak, steady = self.peak(variant), self.steady(variant)
            variants[variant] = {
                "setups_per_second": round(peak.per_second, 1) if peak else None,
                "authorize_p99_ms": round(peak.authorize_ms(99), 2) if peak else None,
                "authorize_p99_ms_at_80_percent": round(steady.authorize_ms(99), 2) if steady else None,
                "server_cpu_ms_per_setup": round(peak.per_setup(peak.server_cpu_seconds) * 1000, 3) if peak else None,
            }
        simple, tpcb = self.pgbench_tps("simple-update"), self.pgbench_tps("tpcb-like")
        figures: dict[str, Any] = {
            "pgbench_simple_tps": round(simple, 1) if simple is not None else None,
            "pgbench_tpcb_tps": round(tpcb, 1) if tpcb is not None else None,
            "variants": variants,
        }
        if self.scale_out:  # an extra key, only when the sweep was asked for
            figures["scale_out"] = [
                {
                    "layout": run.layout,
                    "processes": run.processes,
                    "variant": run.variant,
                    "setups_per_second": round(run.per_second, 1),
                    "authorize_p50_ms": round(run.authorize_ms(50), 2),
                    "authorize_p99_ms": round(run.authorize_ms(99), 2),
                    "server_cpu_ms_per_setup": round(run.per_setup(run.server_cpu_seconds) * 1000, 3),
                    "machine_busy": round(run.machine_busy, 3),
                }
                for run in self.scale_out
            ]
        return figures


def _ms(run: HttpRun, what: Callable[[int], float]) -> str:
    return " / ".join(f"{what(percent):.1f}" for percent in (50, 95, 99))


def report(results: Results) -> list[str]:
    """Print every table; answer the Markdown copy."""
    markdown: list[str] = []

    def emit(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if not rows:  # a phase that did not run (--in-process-only, --scale-out-only)
            return
        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="right")
        markdown.extend([f"**{title}**", "", "| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)])
        for row in rows:
            table.add_row(*row)
            markdown.append("| " + " | ".join(row) + " |")
        markdown.append("")
        console.print(table)

    emit(
        "In-process engine (authorize answered + end, no HTTP), PostgreSQL",
        ("variant", "threads", "setups/s", "setups", "CPU ms a setup", "PostgreSQL CPU ms a setup",
         "statements a setup", "round trips a setup", "wall ms a setup p50 / p99", "refused", "errors"),
        [(r.variant, str(r.threads), f"{r.per_second:,.0f}", f"{r.setups:,}",
          f"{r.per_setup(r.cpu_seconds) * 1000:.2f}", f"{r.per_setup(r.database_cpu_seconds) * 1000:.2f}",
          f"{r.per_setup(r.statements):.1f}", f"{r.round_trips:.1f}" if r.round_trips else "",
          f"{percentile_milliseconds(r.setup_seconds, 50):.1f} / {percentile_milliseconds(r.setup_seconds, 99):.1f}",
          f"{r.refused.total():,}", f"{r.errors.total():,}") for r in results.in_process],
    )  # fmt: skip
    emit(
        "HTTP: call setups (authorize answered + end), tollway serve on PostgreSQL",
        ("variant", "load", "links", "setups/s", "setups", "authorize ms p50 / p95 / p99", "end ms p50 / p95 / p99",
         "server CPU ms a setup", "PostgreSQL CPU ms a setup", "transactions a setup", "rows written a setup",
         "machine busy", "refused", "errors", "load average"),
        [(r.variant, r.mode if r.mode == "peak" else f"80 %: {r.target_per_second:,.0f}/s", str(r.links),
          f"{r.per_second:,.0f}", f"{r.tally.setups:,}", _ms(r, r.authorize_ms), _ms(r, r.end_ms),
          f"{r.per_setup(r.server_cpu_seconds) * 1000:.2f}", f"{r.per_setup(r.database_cpu_seconds) * 1000:.2f}",
          f"{r.per_setup(r.transactions):.2f}", f"{r.per_setup(r.rows_written):.1f}", f"{r.machine_busy:.0%}",
          f"{r.tally.refusals.total():,}", f"{r.tally.errors.total():,}", r.load) for r in results.http],
    )  # fmt: skip
    if results.scale_out:
        single = {(run.layout, run.variant): run.per_second for run in results.scale_out if run.processes == 1}
        emit(
            "Scale-out: the HTTP peak (authorize answered + end) by server processes, PostgreSQL",
            ("layout", "processes", "variant", "links", "setups/s", "vs 1 process", "authorize ms p50 / p99",
             "server CPU ms a setup", "PostgreSQL CPU ms a setup", "transactions a setup", "rows written a setup",
             "machine busy", "errors", "load average"),
            [(point.layout, str(point.processes), point.variant, str(point.links), f"{point.per_second:,.0f}",
              f"{point.per_second / single[(point.layout, point.variant)]:.2f}"
              if single.get((point.layout, point.variant)) else "",
              f"{point.authorize_ms(50):.1f} / {point.authorize_ms(99):.1f}",
              f"{point.per_setup(point.server_cpu_seconds) * 1000:.2f}",
              f"{point.per_setup(point.database_cpu_seconds) * 1000:.2f}",
              f"{point.per_setup(point.transactions):.2f}", f"{point.per_setup(point.rows_written):.1f}",
              f"{point.machine_busy:.0%}", f"{point.tally.errors.total():,}", point.load)
             for point in sorted(results.scale_out, key=lambda r: (SCALE_OUT_LAYOUTS.index(r.layout), r.processes))],
        )  # fmt: skip
    for http_run in [*results.http, *results.scale_out]:
        for sample in http_run.tally.samples[:3]:
            console.print(f"[red]{http_run.variant} {http_run.mode}: {sample}", markup=True, highlight=False)
    if results.radius is not None:
        radius = results.radius
        access_ms = " / ".join(f"{percentile_milliseconds(radius.tally.access_seconds, p):.1f}" for p in (50, 95, 99))
        emit(
            "RADIUS: Access-Request (authorize) then Accounting Stop, tollway radius on PostgreSQL",
            ("authorizations/s", "accepted", "rejected", "stops", "lost", "Access-Request ms p50 / p95 / p99",
             "server CPU ms an authorization + stop", "load average"),
            [(f"{radius.per_second:,.0f}", f"{radius.tally.accepted:,}", f"{radius.tally.rejected.total():,}",
              f"{radius.tally.stops:,}", f"{radius.tally.lost:,}", access_ms,
              f"{radius.server_cpu_seconds * 1000 / max(1, radius.tally.accepted):.2f}", radius.load)],
        )  # fmt: skip
        if radius.error or radius.tally.errors:
            console.print(f"[red]RADIUS: {radius.error} {dict(radius.tally.errors)}", highlight=False)
    if results.pgbench:
        rows = []
        for run in results.pgbench:
            ratios = []
            for variant in VARIANTS:
                peak = results.peak(variant)
                if peak is not None and run.tps:
                    ratios.append(f"{variant} {peak.per_second / run.tps:.3f}")
            rows.append((run.script, f"{run.tps:,.0f}", f"{run.latency_ms:.2f}", ", ".join(ratios), run.load))
        emit(
            f"pgbench on the same server (scale {PGBENCH_SCALE}, {PGBENCH_CLIENTS} clients, {PGBENCH_THREADS} threads)",
            ("script", "tps", "latency average ms", "peak setups/s / tps", "load average"),
            rows,
        )
    console.print(
        f"PostgreSQL {results.facts.get('version')}; "
        + ", ".join(f"{key}={value}" for key, value in results.facts.items() if key != "version")
        + f"; cores (nproc): {len(os.sched_getaffinity(0))}"
    )
    console.print(f"ledger check: {results.check_summary}")
    console.print("figures (--json):", json.dumps(results.figures()), highlight=False)
    return markdown


def chart(results: Results, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = {"spread": "tab:blue", "hot": "tab:red"}
    for run in results.http:
        if run.mode == "peak" and run is not results.peak(run.variant):
            continue
        ordered = sorted(run.tally.authorize_seconds)
        if not ordered:
            continue
        step = max(1, len(ordered) // 2_000)
        points = [(ordered[n] * 1000, (n + 1) / len(ordered)) for n in range(0, len(ordered), step)]
        points.append((ordered[-1] * 1000, 1.0))
        xs, ys = zip(*points, strict=True)
        style = "-" if run.mode == "peak" else "--"
        label = f"{run.variant}, {'peak' if run.mode == 'peak' else '80 % of peak'}"
        latency.plot(xs, ys, style, color=colours[run.variant], label=label)
    latency.axvline(25, color="grey", linestyle=":", linewidth=1)
    latency.text(25, 0.02, " 25 ms", color="grey", fontsize=8)
    latency.set(title="Authorize latency seen by the switch (CDF)", xlabel="milliseconds", ylabel="share of requests")
    latency.set_xscale("log")
    latency.grid(True, which="both", alpha=0.3)
    latency.legend(fontsize=8, loc="lower right")
    labels, values, colour_list = [], [], []
    for variant in VARIANTS:
        peak = results.peak(variant)
        if peak is not None:
            labels.append(f"HTTP\n{variant}")
            values.append(peak.per_second)
            colour_list.append(colours[variant])
    for engine_run in results.in_process:
        if engine_run.threads > 1:
            labels.append(f"in-process\n{engine_run.variant}, {engine_run.threads} thr.")
            values.append(engine_run.per_second)
            colour_list.append("tab:grey")
    if results.radius is not None:
        labels.append("RADIUS\nauthorizations")
        values.append(results.radius.per_second)
        colour_list.append("tab:green")
    bars = throughput.bar(labels, values, color=colour_list)
    throughput.bar_label(bars, labels=[f"{value:,.0f}/s" for value in values], fontsize=8)
    throughput.axhline(1000, color="grey", linestyle=":", linewidth=1)
    notes = [f"pgbench {run.script}: {run.tps:,.0f} tps" for run in results.pgbench]
    if notes:
        throughput.text(0.02, 0.98, "\n".join(notes), transform=throughput.transAxes, va="top", fontsize=8)
    throughput.set(title="Call setups per second (authorize + end)", ylabel="per second")
    throughput.set_ylim(0, max([*values, 1000]) * 1.25)
    throughput.tick_params(axis="x", labelsize=7)
    throughput.grid(True, axis="y", alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    console.print(f"chart written to {path}")


def scale_out_chart(results: Results, path: Path, title: str) -> None:
    """Setups per second and server CPU per setup against the count of server processes, per layout and variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (throughput, cost) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = {"spread": "tab:blue", "hot": "tab:red"}
    styles = {"workers": "-o", "ports": "--s"}
    counts = sorted({run.processes for run in results.scale_out})
    for layout in SCALE_OUT_LAYOUTS:
        for variant in VARIANTS:
            runs = sorted((r for r in results.scale_out if r.layout == layout and r.variant == variant),
                          key=lambda r: r.processes)  # fmt: skip
            if not runs:
                continue
            label = f"{variant}, {'--workers N' if layout == 'workers' else 'N processes on N ports'}"
            xs = [run.processes for run in runs]
            throughput.plot(xs, [run.per_second for run in runs], styles[layout], color=colours[variant], label=label)
            cost.plot(xs, [run.per_setup(run.server_cpu_seconds) * 1000 for run in runs], styles[layout],
                      color=colours[variant], label=label)  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    for axes in (throughput, cost):
        axes.set_xticks(counts)
        axes.axvline(cores, color="grey", linestyle=":", linewidth=1)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_ylim(bottom=0)
    at_cores = throughput.get_xaxis_transform()
    throughput.text(cores, 0.02, f" {cores} cores", color="grey", fontsize=8, transform=at_cores)
    throughput.set(title="Peak call setups per second", xlabel="server processes", ylabel="per second")
    cost.set(title="Server CPU per setup", xlabel="server processes", ylabel="CPU milliseconds")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    console.print(f"chart written to {path}")


# --- main -----------------------------------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL),
                        help=f"admin URL of the PostgreSQL server (env {ADMIN_URL_VARIABLE})")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="under 3 minutes: 2,000 clients, 6 s per point")
    parser.add_argument("--json", type=Path, help="write the headline figures to this file as JSON")
    parser.add_argument("--workers", type=int, default=SERVER_WORKERS, help="tollway serve --workers")
    parser.add_argument("--links", default=",".join(map(str, PEAK_LINKS)), help="closed-loop link counts for the peak")
    parser.add_argument("--seconds", type=float, default=POINT_SECONDS, help="per HTTP point")
    parser.add_argument("--warmup-seconds", type=float, default=WARMUP_SECONDS)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="spread,hot")
    parser.add_argument("--inprocess-seconds", type=float, default=INPROCESS_SECONDS)
    parser.add_argument("--inprocess-threads", type=int, default=INPROCESS_THREADS)
    parser.add_argument("--radius-seconds", type=float, default=RADIUS_SECONDS, help="0: no RADIUS run")
    parser.add_argument("--pgbench-seconds", type=int, default=PGBENCH_SECONDS, help="0: no pgbench")
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process engine (one thread)")
    parser.add_argument("--in-process-only", action="store_true", help="the engine alone: no HTTP, RADIUS, pgbench")
    parser.add_argument("--chart", type=Path, default=DEFAULT_CHART)
    parser.add_argument("--log-level", default="warning", help="the servers' (info logs every request)")
    parser.add_argument("--scale-out", default="", help="server process counts for the sweep of the peak, e.g. 1,2,4")
    parser.add_argument("--scale-out-layouts", default=",".join(SCALE_OUT_LAYOUTS),
                        help="workers (tollway serve --workers N), ports (N serve, N ports), or both")  # fmt: skip
    parser.add_argument("--scale-out-only", action="store_true",
                        help="the tree, the sweep, the check; no in-process, 80 %%, RADIUS, pgbench")  # fmt: skip
    parser.add_argument("--scale-out-chart", type=Path, default=DEFAULT_SCALE_OUT_CHART)
    options = parser.parse_args(argv)
    if options.quick:
        options.clients, options.seconds, options.warmup_seconds = 2_000, 6.0, 2.0
        options.links = "32"
        options.inprocess_seconds, options.radius_seconds, options.pgbench_seconds = 4.0, 6.0, 6
        if options.chart == DEFAULT_CHART:
            options.chart = Path(tempfile.gettempdir()) / "benchmarks-carrier-quick.png"
        if options.scale_out_chart == DEFAULT_SCALE_OUT_CHART:
            options.scale_out_chart = Path(tempfile.gettempdir()) / "benchmarks-scale-out-quick.png"
    options.peak_links = [int(n) for n in options.links.split(",") if n]
    options.variant_list = [v for v in options.variants.split(",") if v]
    if not options.peak_links or any(v not in VARIANTS for v in options.variant_list):
        parser.error("give at least one link count, and variants among spread,hot")
    options.scale_out_counts = [int(n) for n in options.scale_out.split(",") if n]
    options.layout_list = [layout for layout in options.scale_out_layouts.split(",") if layout]
    if any(not 1 <= n <= 64 for n in options.scale_out_counts) or any(
        layout not in SCALE_OUT_LAYOUTS for layout in options.layout_list
    ):
        parser.error("scale-out counts between 1 and 64, layouts among workers,ports")
    if options.scale_out_only:
        if not options.scale_out_counts:
            parser.error("--scale-out-only needs --scale-out")
        options.radius_seconds, options.pgbench_seconds = 0, 0
    return options


def run_in_process(url: str, bench: Bench, options: argparse.Namespace, results: Results) -> None:
    profile = cProfile.Profile() if options.profile else None
    for variant in options.variant_list:
        with phase(f"in-process {variant}: 1 thread, {options.inprocess_seconds:g} s"):
            single = in_process(url, bench, variant, 1, options.inprocess_seconds, options.warmup_seconds, profile)
        with phase(f"in-process {variant}: round trips (up to {ROUND_TRIP_SETUPS} setups)"):
            single.round_trips = count_round_trips(url, bench, variant, options.warmup_seconds)
        results.in_process.append(single)
        threads = options.inprocess_threads
        with phase(f"in-process {variant}: {threads} threads, {options.inprocess_seconds:g} s"):
            results.in_process.append(
                in_process(url, bench, variant, threads, options.inprocess_seconds, options.warmup_seconds)
            )
    if profile is not None:
        stream = io.StringIO()
        pstats.Stats(profile, stream=stream).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(30)
        results.profile = stream.getvalue()


def run_http(url: str, database: Database, bench: Bench, options: argparse.Namespace, scratch: Path,
             results: Results) -> None:  # fmt: skip
    with new_progress() as progress, serving(Server(url, options.workers, {}, options.log_level, scratch)) as server:
        if not calls_api_present(server):
            raise RuntimeError("the server has no calls API")
        fleet = Fleet((server,), "workers", options.workers)
        for variant in options.variant_list:
            results.http += asyncio.run(drive_variant(fleet, database, bench, variant, options, progress))
            peak, steady = results.peak(variant), results.steady(variant)
            if peak and steady:
                console.print(
                    f"HTTP {variant}: peak {peak.per_second:,.0f} setups/s ({peak.links} links, p99 authorize "
                    f"{peak.authorize_ms(99):.1f} ms); at {steady.target_per_second:,.0f}/s p99 authorize "
                    f"{steady.authorize_ms(99):.1f} ms; load {steady.load}"
                )


@contextmanager
def fleet_of(url: str, layout: str, processes: int, options: argparse.Namespace, scratch: Path) -> Iterator[Fleet]:
    """``processes`` server processes in ``layout``, started one after the other, stopped whatever happens."""
    if layout == "workers":
        servers = [Server(url, processes, {}, options.log_level, scratch)]
    else:
        servers = [Server(url, 1, {}, options.log_level, scratch) for _ in range(processes)]
    try:
        for server in servers:
            server.start()
        yield Fleet(tuple(servers), layout, processes)
    finally:
        for server in servers:
            server.stop()


def run_scale_out(url: str, database: Database, bench: Bench, options: argparse.Namespace, scratch: Path,
                  results: Results) -> None:  # fmt: skip
    """The peak of each variant with each count of server processes, in each layout (the layouts of one count
    one after the other, so that a change in the machine's load falls on both alike)."""
    for processes in options.scale_out_counts:
        for layout in options.layout_list:
            described = f"{processes} x tollway serve" if layout == "ports" else f"tollway serve --workers {processes}"
            with (
                phase(f"scale-out: {described}"),
                new_progress() as progress,
                fleet_of(url, layout, processes, options, scratch) as fleet,
            ):
                for variant in options.variant_list:
                    runs = asyncio.run(drive_peaks(fleet, database, bench, variant, options, progress))
                    results.scale_out.append(max(runs, key=lambda run: run.per_second))
            for run in results.scale_out[-len(options.variant_list) :]:
                console.print(
                    f"scale-out {layout} {processes}: {run.variant} {run.per_second:,.0f} setups/s, p99 authorize "
                    f"{run.authorize_ms(99):.1f} ms, server CPU {run.per_setup(run.server_cpu_seconds) * 1000:.2f} "
                    f"ms a setup, machine busy {run.machine_busy:.0%}, load {run.load}",
                    highlight=False,
                )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    began = time.monotonic()
    console.print(f"load average (1 / 5 / 15 min) at the start: {load_average()}")
    with (
        tempfile.TemporaryDirectory(prefix="tollway-bench-carrier-") as scratch,
        bench_database(options.url, say=console.print) as url,
    ):
        database = Database(url)
        try:
            migrate.upgrade(database)
            results = Results(server_facts(database))
            with new_progress() as progress:
                bench = build(url, database, options.clients, progress)
            with phase("VACUUM ANALYZE, CHECKPOINT"):
                settle(url)
            if not options.scale_out_only:
                run_in_process(url, bench, options, results)
            if not options.in_process_only and not options.scale_out_only:
                run_http(url, database, bench, options, Path(scratch), results)
            if options.scale_out_counts and not options.in_process_only:
                run_scale_out(url, database, bench, options, Path(scratch), results)
            if options.radius_seconds > 0 and not options.in_process_only:
                with phase(f"RADIUS: {options.radius_seconds:g} s"):
                    results.radius = radius_run(url, bench, options.radius_seconds, Path(scratch))
            check = ledger.check(database)
            results.check_ok = check.ok
            results.check_summary = (
                f"{'ok' if check.ok else 'FAILED'} ({check.accounts:,} accounts, {check.transfers:,} transfers)"
            )
            for problem in check.problems[:10]:
                console.print(f"[red]ledger: {problem}", markup=True, highlight=False)
        finally:
            database.dispose()
    if options.pgbench_seconds > 0 and not options.in_process_only:
        results.pgbench = run_pgbench(options.url, PGBENCH_SCALE, options.pgbench_seconds)
    markdown = report(results)
    if results.profile:
        console.print(results.profile, highlight=False, markup=False)
    console.print("\nMarkdown:\n")
    print("\n".join(markdown))
    title = (
        f"Tollway credit control, {len(bench.world.clients):,} clients, tollway serve --workers {options.workers}, "
        f"PostgreSQL {results.facts.get('version')}, {len(os.sched_getaffinity(0))} cores; load at the end "
        f"{load_average()}"
    )
    if results.http or results.in_process:
        chart(results, options.chart, title)
    if results.scale_out:
        scale_out_title = (
            f"Tollway credit control, {len(bench.world.clients):,} clients, HTTP peak by server processes, "
            f"PostgreSQL {results.facts.get('version')}, {len(os.sched_getaffinity(0))} cores; load at the end "
            f"{load_average()}"
        )
        scale_out_chart(results, options.scale_out_chart, scale_out_title)
    figures = results.figures()
    if options.json is not None:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")
        console.print(f"figures written to {options.json}")
    console.print(f"load average at the end: {load_average()}; total {time.monotonic() - began:.0f} s")
    failed = not results.check_ok
    failed |= any(run.tally.errors for run in results.http) or any(run.errors for run in results.in_process)
    failed |= any(run.tally.errors for run in results.scale_out)
    if not options.scale_out_only:
        failed |= any(value is None for variant in figures["variants"].values() for value in variant.values())
    if not results.check_ok:
        console.print("[bold red]THE LEDGER DOES NOT BALANCE")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
