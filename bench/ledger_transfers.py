"""Benchmark: single-phase ledger transfers between wallets with floors, on PostgreSQL.

    .venv/bin/python bench/ledger_transfers.py            # full run, about two and a half minutes
    .venv/bin/python bench/ledger_transfers.py --quick    # a smoke run of a few seconds

It creates its own database (``tollway_bench_<random>``) next to the one the admin URL names,
migrates it, creates a provider and many client wallets, tops them up, then for 1, 2, 4 and 8
worker processes runs transfers for a fixed number of seconds, in two variants:

* spread: each transfer debits a random wallet and credits another one (little contention);
* hot:    each transfer debits the same wallet (one row every transfer must lock).

Every transfer goes through ``tollway.ledger.service.execute``: one transaction that locks both
accounts ``FOR UPDATE``, checks the floor, inserts the transfer and updates both accounts. Before the
timed runs, 200 transfers go through a TCP relay that counts round trips to the server.
It prints transfers per second and p50/p99 latency per configuration, writes a chart to
``docs/benchmarks-ledger.png``, runs pgbench as a yardstick when it is installed, and drops the
database at the end. The admin URL comes from ``--url`` or ``TOLLWAY_BENCH_POSTGRESQL_URL``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from scratch_database import TurnCounter, bench_database, server_facts, settle
from sqlalchemy.engine import make_url

from tollway.balances import service as balances
from tollway.ledger import service as ledger
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose, TransferKind, TransferRequest
from tollway.store import migrate
from tollway.store.database import Database
from tollway.tree import model as tree_model
from tollway.tree import service as tree

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_VARIABLE = "TOLLWAY_BENCH_POSTGRESQL_URL"
REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_CHART = REPOSITORY / "docs" / "benchmarks-ledger.png"

WORKER_COUNTS = (1, 2, 4, 8)
VARIANTS = ("spread", "hot")
SECONDS_PER_RUN = 8.0
WALLETS = 1_000
WALLET_TOPUP_MICROS = 10**12  # a million units: no transfer of the run can reach a floor
AMOUNT_MICROS = 1_000
WARMUP_TRANSFERS = 10  # per worker, before the clock starts: connection, compiled statements
TRANSFERS_PER_WORKER_MAX = 200_000  # bounds the run and the latency arrays, whatever the speed
START_SECONDS_MAX = 60.0  # spawning 8 Python processes on 2 cores takes a few seconds
PGBENCH_SECONDS = 10
ROUND_TRIP_TRANSFERS = 200  # counted one by one through a relay, before the timed runs
PGBENCH_TIMEOUT_SECONDS = 120

console = Console()


@dataclass
class WorkerResult:
    latencies_seconds: array[float] = field(default_factory=lambda: array("d"))
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


@dataclass(frozen=True)
class Measurement:
    variant: str
    workers: int
    transfers: int
    refused: int
    errors: int
    seconds: float
    p50_milliseconds: float
    p99_milliseconds: float

    @property
    def per_second(self) -> float:
        return self.transfers / self.seconds if self.seconds > 0 else 0.0


# --- the worker process ----------------------------------------------------------------------------


def transfer_worker(
    url: str, variant: str, index: int, wallets: Sequence[int], seconds: float, start: Any, results: Any
) -> None:
    """Run transfers for ``seconds`` after the start barrier; report latencies through ``results``."""
    result = WorkerResult()
    database = Database(url, pool_size=1)
    chooser = random.Random(index)
    hot = wallets[0]
    try:
        prefix = f"{variant}.{uuid.uuid4().hex[:8]}.{index}"
        for number in range(WARMUP_TRANSFERS):
            ledger.execute(database, [_request(f"{prefix}.warm{number}", variant, hot, wallets, chooser)])
        start.wait(timeout=START_SECONDS_MAX)
        result.started = time.time()
        deadline = time.monotonic() + seconds
        number = 0
        while time.monotonic() < deadline and number < TRANSFERS_PER_WORKER_MAX:
            request = _request(f"{prefix}.{number}", variant, hot, wallets, chooser)
            began = time.perf_counter()
            try:
                ledger.execute(database, [request])
            except ledger_store.TransferRefused:
                result.refused += 1
            result.latencies_seconds.append(time.perf_counter() - began)
            number += 1
        result.finished = time.time()
    except Exception as error:
        result.errors.append(f"{error.__class__.__name__}: {error}".splitlines()[0])
    finally:
        database.dispose()
    results.put((index, result))


def _request(
    transfer_id: str, variant: str, hot: int, wallets: Sequence[int], chooser: random.Random
) -> TransferRequest:
    if variant == "hot":
        debit, credit = hot, chooser.choice(wallets[1:])
    else:
        debit, credit = chooser.sample(wallets, 2)
    return TransferRequest(
        id=transfer_id,
        amount_micros=AMOUNT_MICROS,
        debit_account_id=debit,
        credit_account_id=credit,
        kind=TransferKind.TRANSFER,
    )


# --- round trips: a relay that counts them ---------------------------------------------------------


def count_round_trips(url: str, wallets: Sequence[int]) -> float:
    """Round trips per single hot transfer on the wire: pool checkout, BEGIN and COMMIT included."""
    parsed = make_url(url)
    counter = TurnCounter(parsed.host or "127.0.0.1", parsed.port or 5432)
    database = Database(parsed.set(host="127.0.0.1", port=counter.port).render_as_string(hide_password=False))
    chooser = random.Random(0)
    prefix = f"turns.{uuid.uuid4().hex[:8]}"
    try:
        for number in range(WARMUP_TRANSFERS):
            ledger.execute(database, [_request(f"{prefix}.warm{number}", "hot", wallets[0], wallets, chooser)])
        before = counter.turns
        for number in range(ROUND_TRIP_TRANSFERS):
            ledger.execute(database, [_request(f"{prefix}.{number}", "hot", wallets[0], wallets, chooser)])
    finally:
        database.dispose()
    return (counter.turns - before) / ROUND_TRIP_TRANSFERS


# --- the parent: database, runs, report ------------------------------------------------------------


def create_wallets(database: Database, count: int, progress: Progress) -> list[int]:
    provider = tree.create_provider(database, login="bench-house", name="Bench House", currency="USD")
    task = progress.add_task("creating and topping up wallets", total=count)
    wallets: list[int] = []
    for number in range(count):
        login = f"bench-client-{number:05d}"
        node = tree.create_node(
            database,
            owner_login=provider.login,
            new=tree.NewNode(position=tree_model.client(tree_model.ClientType.RETAIL), login=login, name=login),
        )
        balances.topup(database, login=login, amount_micros=WALLET_TOPUP_MICROS, transfer_id=f"topup-{login}")
        with database.reading() as connection:
            wallet = ledger_store.find_account_id(
                connection, node_id=node.id, purpose=AccountPurpose.WALLET, currency="USD"
            )
        assert wallet is not None
        wallets.append(wallet)
        progress.advance(task)
    progress.remove_task(task)
    return wallets


def run_configuration(
    url: str, variant: str, workers: int, wallets: Sequence[int], seconds: float, progress: Progress
) -> Measurement:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(workers + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=transfer_worker, args=(url, variant, index, wallets, seconds, start, results), daemon=True
        )
        for index in range(workers)
    ]
    task = progress.add_task(f"{variant:>6}, {workers} worker(s): starting", total=seconds)
    for process in processes:
        process.start()
    collected: dict[int, WorkerResult] = {}
    try:
        start.wait(timeout=START_SECONDS_MAX)
        began = time.monotonic()
        progress.update(task, description=f"{variant:>6}, {workers} worker(s): running")
        deadline = began + seconds + START_SECONDS_MAX
        while len(collected) < workers and time.monotonic() < deadline:
            progress.update(task, completed=min(seconds, time.monotonic() - began))
            try:
                index, result = results.get(timeout=0.25)
                collected[index] = result
            except queue.Empty:
                continue
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        progress.remove_task(task)
    return _measure(variant, workers, list(collected.values()), expected=workers)


def _measure(variant: str, workers: int, results: list[WorkerResult], *, expected: int) -> Measurement:
    errors = [error for result in results for error in result.errors]
    if len(results) < expected:
        errors.append(f"{expected - len(results)} worker(s) never reported")
    for error in errors[:5]:
        console.print(f"[red]{variant}/{workers}: {error}")
    latencies = sorted(value for result in results for value in result.latencies_seconds)
    timed = [result for result in results if result.finished > 0]
    seconds = max(r.finished for r in timed) - min(r.started for r in timed) if timed else 0.0
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return Measurement(
        variant=variant,
        workers=workers,
        transfers=len(latencies),
        refused=sum(result.refused for result in results),
        errors=len(errors),
        seconds=seconds,
        p50_milliseconds=cuts[49] * 1000,
        p99_milliseconds=cuts[98] * 1000,
    )


def run_pgbench(url: str) -> dict[str, str] | None:
    """pgbench's TPC-B-like script (scale 1) as a yardstick for this machine and server."""
    binary = shutil.which("pgbench")
    if binary is None:
        console.print("[yellow]pgbench not found on PATH: no yardstick this time")
        return None
    plain_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with console.status("pgbench -i (scale 1)"):
        initialize = [binary, "-i", "-q", plain_url]
        subprocess.run(initialize, check=True, capture_output=True, timeout=PGBENCH_TIMEOUT_SECONDS)
    command = [binary, "-T", str(PGBENCH_SECONDS), "-c", "4", "-j", "2", plain_url]
    with console.status(f"pgbench -T {PGBENCH_SECONDS} -c 4 -j 2 ({PGBENCH_SECONDS} s)"):
        finished = subprocess.run(command, check=True, capture_output=True, text=True, timeout=PGBENCH_TIMEOUT_SECONDS)
    found = {
        "tps": re.search(r"tps = ([0-9.]+) \(without initial connection time\)", finished.stdout),
        "latency_milliseconds": re.search(r"latency average = ([0-9.]+) ms", finished.stdout),
        "transactions": re.search(r"number of transactions actually processed: (\d+)", finished.stdout),
    }
    return {key: match.group(1) for key, match in found.items() if match is not None}


def report(measurements: Sequence[Measurement], facts: dict[str, str], pgbench: dict[str, str] | None) -> None:
    table = Table(title="Ledger transfers on PostgreSQL (single-phase, floors checked)")
    for column in ("variant", "workers", "transfers", "transfers/s", "p50 ms", "p99 ms", "refused", "errors"):
        table.add_column(column, justify="right")
    for m in measurements:
        table.add_row(
            m.variant,
            str(m.workers),
            str(m.transfers),
            f"{m.per_second:,.0f}",
            f"{m.p50_milliseconds:.2f}",
            f"{m.p99_milliseconds:.2f}",
            str(m.refused),
            str(m.errors),
        )
    console.print(table)
    cores = len(os.sched_getaffinity(0))
    console.print(
        f"cores (nproc): {cores}; PostgreSQL {facts['version']}; "
        + ", ".join(f"{k}={v}" for k, v in facts.items() if k != "version")
    )
    if pgbench:
        console.print(
            f"pgbench (TPC-B-like, scale 1, -c 4 -j 2, {PGBENCH_SECONDS} s): "
            f"{pgbench.get('tps', '?')} tps, latency average {pgbench.get('latency_milliseconds', '?')} ms"
        )
    console.print("\nMarkdown:\n")
    print("| variant | workers | transfers/s | p50 ms | p99 ms | transfers | refused | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m in measurements:
        print(
            f"| {m.variant} | {m.workers} | {m.per_second:,.0f} | {m.p50_milliseconds:.2f} | "
            f"{m.p99_milliseconds:.2f} | {m.transfers} | {m.refused} | {m.errors} |"
        )


def chart(measurements: Sequence[Measurement], pgbench: dict[str, str] | None, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.5))
    for variant, colour in zip(VARIANTS, ("tab:blue", "tab:red"), strict=True):
        rows = [m for m in measurements if m.variant == variant]
        workers = [m.workers for m in rows]
        throughput.plot(workers, [m.per_second for m in rows], "o-", color=colour, label=f"{variant} accounts")
        latency.plot(workers, [m.p50_milliseconds for m in rows], "o-", color=colour, label=f"{variant} p50")
        latency.plot(workers, [m.p99_milliseconds for m in rows], "s--", color=colour, label=f"{variant} p99")
    if pgbench and "tps" in pgbench:
        label = "pgbench TPC-B-like, 4 clients (C, no Python)"
        throughput.plot([4], [float(pgbench["tps"])], "k*", markersize=12, label=label)
    throughput.set(title="Throughput", xlabel="worker processes", ylabel="transfers per second", xscale="log")
    latency.set(
        title="Latency per transfer", xlabel="worker processes", ylabel="milliseconds", xscale="log", yscale="log"
    )
    for axes in (throughput, latency):
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xticks(list(WORKER_COUNTS), [str(n) for n in WORKER_COUNTS])
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    throughput.set_ylim(bottom=0)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    console.print(f"chart written to {path}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--url",
        default=os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL),
        help=f"admin URL of the PostgreSQL server (env {ADMIN_URL_VARIABLE})",
    )
    parser.add_argument("--seconds", type=float, default=SECONDS_PER_RUN, help="seconds per configuration")
    parser.add_argument("--wallets", type=int, default=WALLETS)
    parser.add_argument("--workers", default=",".join(map(str, WORKER_COUNTS)), help="e.g. 1,2,4,8")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="spread,hot (in that order by default)")
    parser.add_argument("--chart", type=Path, default=DEFAULT_CHART)
    parser.add_argument("--no-pgbench", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2 s per run, 100 wallets: a smoke run")
    options = parser.parse_args(argv)
    if options.quick:
        options.seconds, options.wallets = 2.0, 100
    worker_counts = [int(n) for n in options.workers.split(",")]
    variants = [v for v in options.variants.split(",") if v in VARIANTS]
    began = time.monotonic()
    with bench_database(options.url, say=console.print) as url:
        database = Database(url)
        migrate.upgrade(database)
        facts = server_facts(database)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TimeRemainingColumn(),
            console=console,
        )
        with progress:
            wallets = create_wallets(database, options.wallets, progress)
            round_trips = count_round_trips(url, wallets)
            settle(url)
            load_before = os.getloadavg()
            overall = progress.add_task("configurations", total=len(variants) * len(worker_counts))
            measurements: list[Measurement] = []
            for variant in variants:
                for workers in worker_counts:
                    measurements.append(run_configuration(url, variant, workers, wallets, options.seconds, progress))
                    progress.advance(overall)
        load_after = os.getloadavg()
        check = ledger.check(database)
        database.dispose()
        pgbench = None if options.no_pgbench else run_pgbench(url)
        report(measurements, facts, pgbench)
        console.print(f"round trips per single transfer (pool checkout to COMMIT): {round_trips:.2f}")
        console.print(
            f"load average (1, 5, 15 min) before the runs {load_before}, after {load_after}: "
            "other work on the machine shows here"
        )
        console.print(
            f"ledger check after the run: {'ok' if check.ok else check.problems[:3]} "
            f"({check.transfers} transfers, {check.accounts} accounts)"
        )
        cores = len(os.sched_getaffinity(0))
        chart(
            measurements,
            pgbench,
            options.chart,
            f"Tollway ledger, single-phase transfers, PostgreSQL {facts['version']}, {cores} cores, "
            f"{options.seconds:g} s per point, {options.wallets} wallets",
        )
    console.print(f"total {time.monotonic() - began:.0f} s")
    failed = not check.ok or any(m.errors for m in measurements)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
