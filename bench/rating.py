"""Benchmark: rating calls through a 4-level chain, the memory of a large tariff, batch rating, sheet import.

    .venv/bin/python bench/rating.py                       # full run, about twelve minutes here
    .venv/bin/python bench/rating.py --quick               # a smoke run of about ten seconds
    .venv/bin/python bench/rating.py --parts core,memory   # only some parts (core, memory, batch, import)
    .venv/bin/python bench/rating.py --parts core --sizes 100000 --profile

Four parts, each one of the goals of the rating issue:

* core:   four ``RateTable``s (the client's tariff and the L1, L2 and L3 buying tariffs) over the same
          prefixes with different prices, and 1,000,000 calls, each rated by
          ``tollway.rating.chain.rate_call`` (4 charges a call). Only the rating loop is timed, best of
          ``--repeat`` runs, for tariffs of 10,000, 100,000 and 1,000,000 prefixes. Goal: 100,000 calls/s.
* memory: one ``RateTable`` of 1,000,000 prefixes built in a fresh process from rows made one at a
          time (as ``tollway.rating.loading`` streams them from the database), measured once with
          tracemalloc (what the table keeps, exactly) and once without it (growth of the resident set,
          from /proc/self/statm). Goal: under 300 MB.
* batch:  ``tollway rate`` without the terminal: a 1,000,000-call CSV rated by
          ``tollway.rating.batch.rate_file`` against a SQLite database holding a provider, L3, L2, L1 and
          a client, with four 100,000-prefix tariffs imported by ``import_sheet`` and assigned.
* import: a 1,000,000-row rate sheet in Tollway's native CSV layout imported by
          ``tollway.rating.service.import_sheet`` into a fresh PostgreSQL database
          (``tollway_bench_<random>``, dropped at the end), timed as parsing then writing (COPY).
          Goal: under 20 s. The admin URL comes from ``--url`` or ``TOLLWAY_BENCH_POSTGRESQL_URL``.

The tariffs are made up but shaped like real ones, from fixed seeds: country codes of 1 to 3 digits,
area and mobile ranges down to 9 digits, 4,284 destination descriptions (14 for each of 306 country
codes), billing terms of 0/1, 1/1, 30/6, 60/6 and 60/60 (minimal time / resolution), one prefix in
ten priced on its own, and on the client's tariff (time zone Europe/Berlin) 5 % of the prefixes in
three rows: weekday peak, weekday off-peak and weekend. Calls go to 10 to 13-digit numbers that
extend a prefix picked at random; about 3 % extend a prefix altered so that a shorter prefix must
price them. They start over March 2025 (Berlin's clocks change on the 30th) and last 45 s at the
median with a long tail.
It prints the figures as a table and as Markdown, and writes ``docs/benchmarks-rating.png``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as clock
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.table import Table
from scratch_database import bench_database
from sqlalchemy import text

from tollway.rating import service as rating
from tollway.rating.batch import INPUT_COLUMNS, rate_file
from tollway.rating.chain import Level, rate_call
from tollway.rating.cost import Pricing
from tollway.rating.loading import TableCache, chain_of
from tollway.rating.rates import ALWAYS, RateRow, RateTable, WeeklyWindow
from tollway.rating.sheets import NATIVE_COLUMNS, Layout, amount_text, time_text
from tollway.store import migrate
from tollway.store.database import Database
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree import store as tree_store

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_VARIABLE = "TOLLWAY_BENCH_POSTGRESQL_URL"
REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_CHART = REPOSITORY / "docs" / "benchmarks-rating.png"
PARTS = ("core", "memory", "batch", "import")

SIZES = (10_000, 100_000, 1_000_000)  # prefixes per tariff
CALLS = 1_000_000
REPEATS = 5
MEMORY_SIZES = (10_000, 100_000, 1_000_000)
BATCH_PREFIXES = 100_000
BATCH_CALLS = 1_000_000
IMPORT_ROWS = 1_000_000
PROFILE_CALLS = 200_000
YARDSTICK_KEYS = 100_000
YARDSTICK_PROBES = 1_000_000

GOAL_CALLS_PER_SECOND = 100_000
GOAL_MEMORY_MB = 300
GOAL_IMPORT_SECONDS = 20.0

SEED = 20250301
MONTH_START = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp())
MONTH_SECONDS = 31 * 86_400
DURATION_MEDIAN_SECONDS = 45
DURATION_SIGMA = 1.1
DURATION_SECONDS_MAX = 4 * 3_600
NUMBER_DIGITS = (10, 13)
FALLBACK_SHARE = 0.03  # calls whose longest prefix is left out on purpose: a shorter one prices them
OWN_PRICE_SHARE = 0.10  # prefixes priced on their own rather than at their destination's price
WINDOWED_SHARE = 0.05  # prefixes of the client's tariff with peak, off-peak and weekend rows
PREFIX_DIGITS_MAX = 9
MB = 1024 * 1024

console = Console() if sys.stdout.isatty() else Console(width=160)


# --- the made-up world: countries, destinations, prefixes ------------------------------------------

# Real country calling codes of 1 and 2 digits; the 3-digit ones are every other 2xx-9xx that no
# shorter code covers, as in ITU-T E.164.
SHORT_COUNTRY_CODES = (
    "1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 62 63 64 65 66 "
    "81 82 84 86 90 91 92 93 94 95 98"
).split()
COUNTRY_WEIGHT = {1: 60, 2: 5, 3: 1}  # share of a tariff's prefixes, by length of the country code
# Extra digits after the country code, and how often (area codes and mobile ranges mostly 2 to 5).
EXTRA_DIGITS_WEIGHTS = {1: 2, 2: 10, 3: 20, 4: 25, 5: 22, 6: 15, 7: 6, 8: 2}
FIXED_REGIONS = 8
MOBILE_OPERATORS = 4
# (minimal time, resolution): per country and level.
BILLING_TERMS = ((0, 1), (0, 1), (1, 1), (30, 6), (60, 6), (60, 60))
# Prices per minute in micro-units, by kind of destination: (lowest, highest).
PRICE_RANGES = {
    "": (8_000, 60_000),
    "Fixed": (4_000, 50_000),
    "Mobile": (10_000, 250_000),
    "Premium": (300_000, 1_500_000),
}
PREMIUM_CONNECT_FEE = 50_000
PRICE_STEP = 100  # prices are whole ten-thousandths
PEAK = WeeklyWindow(0, 4, clock(8), clock(20))
OFF_PEAK = WeeklyWindow(0, 4, clock(20), clock(8))
WEEKEND = WeeklyWindow(5, 6)
PERIODS = ((PEAK, 100), (OFF_PEAK, 70), (WEEKEND, 60))  # window, percent of the peak price


@dataclass(frozen=True, slots=True)
class LevelSpec:
    """One tariff of the chain: whose it is, its markup over the provider's cost, its time zone."""

    name: str
    markup_percent: int
    time_zone: str
    windows: bool


LEVELS = (
    LevelSpec("client", 135, "Europe/Berlin", True),
    LevelSpec("L1", 117, "UTC", False),
    LevelSpec("L2", 108, "UTC", False),
    LevelSpec("L3", 100, "UTC", False),
)


@dataclass(frozen=True, slots=True)
class Destination:
    description: str
    country: str
    kind: str
    price_micros: int  # the provider's cost, per minute


@dataclass
class Plan:
    """The prefixes of a tariff and what they are: one list for every level of the chain."""

    prefixes: list[str]
    destinations: list[Destination]
    destination_of: list[int]  # per prefix
    own_price_percent: bytearray  # per prefix: 0, or the prefix's price in percent of its destination's
    windowed: bytearray  # per prefix: 1 when the client's tariff prices it by peak, off-peak and weekend
    prefix_set: set[str] = field(default_factory=set)

    @property
    def rows_per_level(self) -> dict[str, int]:
        extra = sum(self.windowed) * (len(PERIODS) - 1)
        return {spec.name: len(self.prefixes) + (extra if spec.windows else 0) for spec in LEVELS}


def country_codes() -> list[str]:
    short = set(SHORT_COUNTRY_CODES)
    three = [
        f"{first}{second}{third}"
        for first in "23456789"
        for second in "0123456789"
        for third in "0123456789"
        if first + second not in short and first not in short
    ]
    return SHORT_COUNTRY_CODES + three


def destinations_of(code: str, chooser: random.Random) -> list[Destination]:
    """The country itself (its prefix alone prices the rest of it), fixed regions, mobile operators, premium."""
    country = f"Country +{code}"
    named = [(country, ""), *((f"{country} Fixed region {r + 1}", "Fixed") for r in range(FIXED_REGIONS))]
    named += [(f"{country} Mobile operator {o + 1}", "Mobile") for o in range(MOBILE_OPERATORS)]
    named.append((f"{country} Premium", "Premium"))
    destinations = []
    for description, kind in named:
        low, high = PRICE_RANGES[kind]
        price = chooser.randrange(low, high) // PRICE_STEP * PRICE_STEP
        destinations.append(Destination(description, code, kind, price))
    return destinations


def destination_index(prefix: str, code: str, first: int) -> int:
    """Which of a country's destinations a prefix belongs to: by the digits after the country code."""
    rest = prefix[len(code) :]
    if not rest:
        return first
    digit = int(rest[0])
    following = int(rest[1]) if len(rest) > 1 else 0
    if 1 <= digit <= 5 or digit == 0:
        return first + 1 + (digit * 10 + following) % FIXED_REGIONS
    if digit <= 8:
        return first + 1 + FIXED_REGIONS + (digit + following) % MOBILE_OPERATORS
    return first + 1 + FIXED_REGIONS + MOBILE_OPERATORS


def make_plan(size: int, seed: int = SEED) -> Plan:
    """``size`` distinct prefixes: every country code, then ranges under them, weighted by country."""
    chooser = random.Random(seed)
    codes = country_codes()
    destinations: list[Destination] = []
    first_of: dict[str, int] = {}
    for code in codes:
        first_of[code] = len(destinations)
        destinations.extend(destinations_of(code, chooser))
    chosen = codes[: min(size, len(codes))]
    seen = set(chosen)
    weights = [COUNTRY_WEIGHT[len(code)] for code in codes]
    extra_lengths, extra_weights = zip(*EXTRA_DIGITS_WEIGHTS.items(), strict=True)
    while len(chosen) < size:
        batch = min(100_000, 2 * (size - len(chosen)))
        picked = chooser.choices(codes, weights, k=batch)
        extras = chooser.choices(extra_lengths, extra_weights, k=batch)
        for code, extra in zip(picked, extras, strict=True):
            extra = min(extra, PREFIX_DIGITS_MAX - len(code))
            prefix = code + str(chooser.randrange(10**extra)).zfill(extra)
            if prefix not in seen:
                seen.add(prefix)
                chosen.append(prefix)
                if len(chosen) == size:
                    break
    chooser.shuffle(chosen)
    destination_of = []
    for prefix in chosen:
        code = next(prefix[:n] for n in (1, 2, 3) if prefix[:n] in first_of)
        destination_of.append(destination_index(prefix, code, first_of[code]))
    own = bytearray(chooser.randrange(85, 126) if chooser.random() < OWN_PRICE_SHARE else 0 for _ in chosen)
    windowed = bytearray(chooser.random() < WINDOWED_SHARE for _ in chosen)
    return Plan(chosen, destinations, destination_of, own, windowed, seen)


def level_rows(plan: Plan, spec: LevelSpec, *, distinct_prices: bool = False) -> Iterator[RateRow]:
    """The rows of one level's tariff, made one at a time, each prefix a string of its own.

    ``distinct_prices``: every prefix gets a price of its own (the worst case for memory).
    """
    terms: dict[str, tuple[int, int]] = {}
    pricings: dict[tuple[int, int, int, int], Pricing] = {}
    chooser = random.Random(f"{SEED}-{spec.name}")
    for index, prefix in enumerate(plan.prefixes):
        destination = plan.destinations[plan.destination_of[index]]
        minimal_time, resolution = terms.get(destination.country) or terms.setdefault(
            destination.country, chooser.choice(BILLING_TERMS)
        )
        if destination.kind == "Premium":
            minimal_time, resolution = 60, 60
        fee = PREMIUM_CONNECT_FEE if destination.kind == "Premium" else 0
        base = destination.price_micros * (plan.own_price_percent[index] or 100)
        if distinct_prices:
            base += index * 10_000  # every price differs from the next by at least one step
        price = -(-base * spec.markup_percent // (100 * 100 * PRICE_STEP)) * PRICE_STEP
        own_prefix = prefix.encode().decode()  # loaded from a database, each table has its own strings
        periods = PERIODS if spec.windows and plan.windowed[index] else ((ALWAYS, 100),)
        for window, percent in periods:
            period_price = price * percent // 100
            key = (period_price, fee, minimal_time, resolution)
            pricing = pricings.get(key)
            if pricing is None:
                pricing = pricings[key] = Pricing(period_price, fee, minimal_time, resolution)
            yield RateRow(own_prefix, destination.description, pricing, window)


@dataclass
class Calls:
    numbers: list[str]
    epochs: list[int]
    durations: list[int]

    def __len__(self) -> int:
        return len(self.numbers)


def make_calls(plan: Plan, count: int, seed: int = SEED + 1) -> Calls:
    chooser = random.Random(seed)
    numbers: list[str] = []
    prefixes, known = plan.prefixes, plan.prefix_set
    low, high = NUMBER_DIGITS
    mu = math.log(DURATION_MEDIAN_SECONDS)
    while len(numbers) < count:
        prefix = chooser.choice(prefixes)
        if chooser.random() < FALLBACK_SHARE and len(prefix) >= 4:
            altered = prefix[:-1] + str((int(prefix[-1]) + chooser.randrange(1, 10)) % 10)
            if altered in known:
                continue
            prefix = altered
        length = max(chooser.randint(low, high), len(prefix) + 1)
        extra = length - len(prefix)
        numbers.append(prefix + str(chooser.randrange(10**extra)).zfill(extra))
    epochs = [MONTH_START + chooser.randrange(MONTH_SECONDS) for _ in range(count)]
    durations = [min(DURATION_SECONDS_MAX, math.ceil(chooser.lognormvariate(mu, DURATION_SIGMA))) for _ in range(count)]
    return Calls(numbers, epochs, durations)


def build_levels(plan: Plan) -> tuple[list[Level], float]:
    levels = []
    began = time.perf_counter()
    for spec in LEVELS:
        table = RateTable(level_rows(plan, spec), time_zone=spec.time_zone)
        levels.append(Level(f"bench-{spec.name.lower()}", f"bench:{spec.name}", "USD", table))
    return levels, time.perf_counter() - began


# --- part 1: the rating core -----------------------------------------------------------------------


class Timing(NamedTuple):
    wall: float  # seconds on the clock
    cpu: float  # seconds of this process on a CPU: less sensitive to other work on the machine


@dataclass(frozen=True)
class CoreResult:
    prefixes: int
    rows: int
    calls: int
    runs: list[Timing]  # rate_call, one per repeat
    selects: list[Timing]  # 4 x RateTable.select_at and no charges, one per repeat
    build_seconds: float  # the four tables, from rows in memory
    yardstick: float  # probes per second of a fixed loop that uses no Tollway code: the machine's speed then

    @property
    def best(self) -> float:
        return self.calls / min(run.wall for run in self.runs)

    @property
    def median(self) -> float:
        return self.calls / statistics.median(run.wall for run in self.runs)

    @property
    def best_cpu(self) -> float:
        return self.calls / min(run.cpu for run in self.runs)

    @property
    def select_best(self) -> float:
        return self.calls / min(run.wall for run in self.selects)


def time_loop(levels: Sequence[Level], calls: Calls, mode: str) -> Timing:
    """Time one pass over the calls: ``rate`` (rate_call), ``select`` (select_at at each level) or ``empty``."""
    numbers, epochs, durations = calls.numbers, calls.epochs, calls.durations
    gc.collect()
    began, began_cpu = time.perf_counter(), time.process_time()
    if mode == "rate":
        rate = rate_call
        for number, epoch, duration in zip(numbers, epochs, durations, strict=True):
            rate(levels, number, epoch, duration)
    elif mode == "select":
        selects = [level.table.select_at for level in levels]
        for number, epoch, _duration in zip(numbers, epochs, durations, strict=True):
            for select in selects:
                select(number, epoch)
    else:
        for _number, _epoch, _duration in zip(numbers, epochs, durations, strict=True):
            pass
    return Timing(time.perf_counter() - began, time.process_time() - began_cpu)


def make_yardstick() -> Callable[[], float]:
    """A fixed loop much like ``select_at``'s (string slices probed in a dictionary) but no Tollway code.

    Its speed, measured next to every run, tells how fast this machine was at the time: figures of
    different runs compare through it, and a change to Tollway does not move it.
    """
    chooser = random.Random(SEED + 2)
    keys = [str(chooser.randrange(10**8, 10**9)) for _ in range(YARDSTICK_KEYS)]
    table = dict.fromkeys(keys, 0)
    numbers = [chooser.choice(keys) + "0000" for _ in range(YARDSTICK_PROBES // 4)]

    def run() -> float:
        get = table.get
        gc.collect()
        began = time.perf_counter()
        for number in numbers:
            get(number[:9]), get(number[:8]), get(number[:7]), get(number[:6])
        return YARDSTICK_PROBES / (time.perf_counter() - began)

    return run


def check_charges(levels: Sequence[Level], calls: Calls, sample: int = 10_000) -> None:
    """Every call of a sample gets one charge per level (rate_call raises NoRate if a level has no rate)."""
    numbers, epochs, durations = calls.numbers[:sample], calls.epochs[:sample], calls.durations[:sample]
    for number, epoch, duration in zip(numbers, epochs, durations, strict=True):
        charges = rate_call(levels, number, epoch, duration)
        assert len(charges) == len(LEVELS), charges


def run_core(sizes: Sequence[int], call_count: int, repeats: int, profile: bool) -> list[CoreResult]:
    results = []
    yardstick = make_yardstick()
    for size in sizes:
        with console.status(f"core, {size:,} prefixes: making the tariffs and {call_count:,} calls"):
            plan = make_plan(size)
            levels, build_seconds = build_levels(plan)
            calls = make_calls(plan, call_count)
        console.print(
            f"core, {size:,} prefixes: 4 tables of {', '.join(f'{n:,}' for n in plan.rows_per_level.values())} rows "
            f"built in {build_seconds:.1f} s"
        )
        check_charges(levels, calls)
        empty = time_loop(levels, calls, "empty")
        runs, selects, yardsticks = [], [], []
        for repeat in range(repeats):  # interleaved, so that all three see the same machine
            with console.status(f"core, {size:,} prefixes: run {repeat + 1} of {repeats}"):
                yardsticks.append(yardstick())
                selects.append(time_loop(levels, calls, "select"))
                runs.append(time_loop(levels, calls, "rate"))
        rows = sum(plan.rows_per_level.values())
        result = CoreResult(size, rows, len(calls), runs, selects, build_seconds, max(yardsticks))
        console.print(
            f"core, {size:,} prefixes: {result.best:,.0f} calls/s (best of {repeats} runs: "
            + ", ".join(f"{len(calls) / run.wall:,.0f}" for run in runs)
            + f"; by CPU time {result.best_cpu:,.0f}); 4 x select_at alone {result.select_best:,.0f} calls/s; "
            f"the empty loop takes {empty.wall:.2f} s; yardstick {result.yardstick / 1e6:.2f} M probes/s"
        )
        results.append(result)
        if profile:
            profile_rating(levels, calls)
        del plan, levels, calls
        gc.collect()
    return results


def profile_rating(levels: Sequence[Level], calls: Calls) -> None:
    part = Calls(calls.numbers[:PROFILE_CALLS], calls.epochs[:PROFILE_CALLS], calls.durations[:PROFILE_CALLS])
    profiler = cProfile.Profile()
    profiler.enable()
    time_loop(levels, part, "rate")
    profiler.disable()
    console.print(f"cProfile of {len(part):,} calls (the profiler itself slows every call down):")
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(8)
    console.print(stream.getvalue(), markup=False, highlight=False)


# --- part 2: memory of a loaded tariff, in a fresh process -----------------------------------------


@dataclass(frozen=True)
class MemoryResult:
    prefixes: int
    rows: int
    distinct_prices: bool
    retained_mb: float  # tracemalloc: what the table keeps
    peak_mb: float  # tracemalloc: the most allocated while building it
    rss_mb: float  # resident set growth, without tracemalloc
    build_seconds: float  # without tracemalloc
    distinct_rates: int


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(size: int, distinct_prices: bool, traced: bool) -> dict[str, float]:
    """Run in a fresh process: build the client's table of ``size`` prefixes and say what it costs."""
    plan = make_plan(size)
    spec = LEVELS[0]
    gc.collect()
    if traced:
        tracemalloc.start()
    before = resident_bytes()
    began = time.perf_counter()
    table = RateTable(level_rows(plan, spec, distinct_prices=distinct_prices), time_zone=spec.time_zone)
    seconds = time.perf_counter() - began
    gc.collect()
    figures: dict[str, float] = {"rows": len(table), "prefixes": table.prefixes, "seconds": seconds}
    figures["rss"] = resident_bytes() - before
    if traced:
        figures["current"], figures["peak"] = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    figures["rates"] = len({row.rate for row in table.rows()})  # the table keeps one Rate per distinct one
    return figures


def run_memory(sizes: Sequence[int]) -> list[MemoryResult]:
    variants = [(size, False) for size in sizes] + [(max(sizes), True)]
    results = []
    for size, distinct in variants:
        figures = {}
        for traced in (False, True):
            label = f"memory, {size:,} prefixes{', every price distinct' if distinct else ''}, "
            label += "tracemalloc" if traced else "resident set"
            with console.status(label):
                command = [sys.executable, __file__, "--memory-child", f"{size},{int(distinct)},{int(traced)}"]
                finished = subprocess.run(command, check=True, capture_output=True, text=True, timeout=1_800)
            figures[traced] = json.loads(finished.stdout.strip().splitlines()[-1])
        untraced, traced_figures = figures[False], figures[True]
        result = MemoryResult(
            prefixes=int(untraced["prefixes"]),
            rows=int(untraced["rows"]),
            distinct_prices=distinct,
            retained_mb=traced_figures["current"] / MB,
            peak_mb=traced_figures["peak"] / MB,
            rss_mb=untraced["rss"] / MB,
            build_seconds=untraced["seconds"],
            distinct_rates=int(untraced["rates"]),
        )
        console.print(
            f"memory, {size:,} prefixes{' (every price distinct)' if distinct else ''}: "
            f"{result.retained_mb:.0f} MB kept (tracemalloc), {result.rss_mb:.0f} MB resident set growth, "
            f"peak while building {result.peak_mb:.0f} MB, built in {result.build_seconds:.1f} s"
        )
        results.append(result)
    return results


# --- sheets and call files -------------------------------------------------------------------------


def sheet_cells(row: RateRow) -> list[str]:
    """A row in the native layout (the columns of ``NATIVE_COLUMNS``); 0/1 billing terms left to the defaults."""
    pricing, window = row.pricing, row.window
    default_terms = (pricing.minimal_time, pricing.resolution) == (0, 1)
    whole_week = window == ALWAYS
    return [
        row.prefix,
        row.description,
        amount_text(pricing.price_micros),
        amount_text(pricing.connect_fee_micros) if pricing.connect_fee_micros else "",
        "" if default_terms else str(pricing.minimal_time),
        "" if default_terms else str(pricing.resolution),
        "",
        "",
        "" if whole_week else str(window.from_day),
        "" if whole_week else str(window.to_day),
        "" if whole_week else time_text(window.from_time),
        "" if whole_week or window.to_time is None else time_text(window.to_time),
        "",
        "",
    ]


def write_sheet_file(path: Path, rows: Iterator[RateRow], limit: int | None = None) -> int:
    import csv

    count = 0
    with path.open("w", encoding="utf-8", newline="") as sheet:
        writer = csv.writer(sheet, lineterminator="\n")
        writer.writerow(NATIVE_COLUMNS)
        for row in rows:
            writer.writerow(sheet_cells(row))
            count += 1
            if count == limit:
                break
    return count


def write_calls_file(path: Path, calls: Calls, account: str) -> None:
    import csv

    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(INPUT_COLUMNS)
        for index, (number, epoch, duration) in enumerate(
            zip(calls.numbers, calls.epochs, calls.durations, strict=True)
        ):
            start = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow((f"c{index}", account, "", "+4930123456", "+" + number, start, duration))


@dataclass
class ImportTiming:
    rows: int = 0
    began: float = field(default_factory=time.perf_counter)
    parsed: float = 0.0  # the last progress report of the parser
    parsed_cpu: float = 0.0  # this process's CPU time then
    finished: float = 0.0
    finished_cpu: float = 0.0

    def on_read(self, _size: int) -> None:
        self.parsed, self.parsed_cpu = time.perf_counter(), time.process_time()

    def on_write(self, rows: int) -> None:
        self.rows = rows

    @property
    def total(self) -> float:
        return self.finished - self.began

    @property
    def parse(self) -> float:
        return self.parsed - self.began

    @property
    def write(self) -> float:
        return self.finished - self.parsed

    @property
    def write_cpu(self) -> float:
        """CPU time of this process while writing: the rest of the write is the database server's."""
        return self.finished_cpu - self.parsed_cpu


def timed_import(database: Database, tariff: str, path: Path) -> ImportTiming:
    gc.collect()
    timing = ImportTiming()
    with path.open("rb") as stream:
        count = rating.import_sheet(
            database, name=tariff, stream=stream, layout=Layout.NATIVE, on_read=timing.on_read, on_write=timing.on_write
        )
    timing.finished, timing.finished_cpu = time.perf_counter(), time.process_time()
    timing.rows = count
    return timing


# --- part 3: batch rating, ``tollway rate`` without the terminal -----------------------------------


@dataclass(frozen=True)
class BatchResult:
    prefixes: int
    calls: int
    rated: int
    failed: int
    import_seconds: list[float]  # per level, client first
    load_seconds: float  # the four tables, from the database
    rate_seconds: float  # rate_file, tables already loaded
    input_mb: float
    output_mb: float

    @property
    def per_second(self) -> float:
        return self.calls / self.rate_seconds

    @property
    def end_to_end(self) -> float:
        return self.calls / (self.load_seconds + self.rate_seconds)


def setup_chain(database: Database) -> list[str]:
    """A provider, L3, L2, L1 and a retail client, each level below paying at the tariff of the one above."""
    tree.create_provider(database, login="bench-house", name="Bench House", currency="USD")
    owners = ["bench-house"]
    for level in (3, 2, 1):
        login = f"bench-l{level}"
        position = tree_model.reseller(level)
        tree.create_node(database, owner_login=owners[-1], new=tree.NewNode(position=position, login=login, name=login))
        owners.append(login)
    client = tree_model.client(tree_model.ClientType.RETAIL)
    tree.create_node(
        database, owner_login=owners[-1], new=tree.NewNode(position=client, login="bench-client", name="c")
    )
    # LEVELS runs from the client up: the client pays at L1's tariff, L1 at L2's, L2 at L3's, L3 at the house's.
    payers = ["bench-client", "bench-l1", "bench-l2", "bench-l3"]
    owners_of = ["bench-l1", "bench-l2", "bench-l3", "bench-house"]
    names = []
    for spec, payer, owner in zip(LEVELS, payers, owners_of, strict=True):
        tariff = rating.create_tariff(database, owner_login=owner, name=spec.name, time_zone=spec.time_zone)
        rating.assign_tariff(database, login=payer, tariff=tariff.name)
        names.append(tariff.name)
    return names


def run_batch(prefixes: int, call_count: int, directory: Path, profile: bool) -> BatchResult:
    with console.status(f"batch: writing 4 rate sheets of {prefixes:,} prefixes and {call_count:,} calls"):
        plan = make_plan(prefixes)
        sheets = []
        for spec in LEVELS:
            sheets.append(directory / f"sheet-{spec.name}.csv")
            write_sheet_file(sheets[-1], level_rows(plan, spec))
        calls_path, rated_path = directory / "calls.csv", directory / "rated.csv"
        write_calls_file(calls_path, make_calls(plan, call_count), "bench-client")
        del plan
    database = Database(f"sqlite:///{directory / 'bench.sqlite'}")
    try:
        migrate.upgrade(database)
        names = setup_chain(database)
        imports = []
        for name, path in zip(names, sheets, strict=True):
            with console.status(f"batch: importing {path.name} into SQLite"):
                imports.append(timed_import(database, name, path))
        console.print(
            "batch: imported "
            + ", ".join(f"{t.rows:,} rows in {t.total:.1f} s" for t in imports)
            + " (SQLite, client's tariff first)"
        )
        tables = TableCache()
        with database.reading() as connection, console.status("batch: loading the chain's four tables"):
            began = time.perf_counter()
            node = tree_store.find_node(connection, "bench-client")
            assert node is not None
            chain_of(connection, node, tables=tables)
            load_seconds = time.perf_counter() - began
        # rate_file loads the chain through the process-wide cache, as `tollway rate` does: load it
        # there first, so that the timed run below is the rating alone.
        with database.reading() as connection:
            chain_of(connection, node)
        gc.collect()
        with (
            calls_path.open(encoding="utf-8", newline="") as source,
            rated_path.open("w", encoding="utf-8", newline="") as sink,
            database.reading() as connection,
            console.status(f"batch: rate_file, {call_count:,} calls"),
        ):
            began = time.perf_counter()
            summary = rate_file(connection, source, sink)
            rate_seconds = time.perf_counter() - began
        if profile:
            profile_batch(database, calls_path)
    finally:
        database.dispose()
    result = BatchResult(
        prefixes=prefixes,
        calls=summary.calls,
        rated=summary.rated,
        failed=summary.failed,
        import_seconds=[t.total for t in imports],
        load_seconds=load_seconds,
        rate_seconds=rate_seconds,
        input_mb=calls_path.stat().st_size / MB,
        output_mb=rated_path.stat().st_size / MB,
    )
    console.print(
        f"batch: {result.per_second:,.0f} calls/s through rate_file ({rate_seconds:.1f} s, {result.rated:,} rated, "
        f"{result.failed} failed); loading the 4 tables took {load_seconds:.1f} s"
    )
    for error in summary.errors[:5]:
        console.print(f"[red]batch: {error}", markup=True)
    return result


def profile_batch(database: Database, calls_path: Path) -> None:
    with calls_path.open(encoding="utf-8", newline="") as source:
        head = io.StringIO("".join(line for _, line in zip(range(PROFILE_CALLS + 1), source, strict=False)))
    profiler = cProfile.Profile()
    with database.reading() as connection, open(os.devnull, "w", encoding="utf-8", newline="") as sink:
        profiler.enable()
        rate_file(connection, head, sink)
        profiler.disable()
    console.print(f"cProfile of rate_file over {PROFILE_CALLS:,} calls (the profiler itself slows every call down):")
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(14)
    console.print(stream.getvalue(), markup=False, highlight=False)


# --- part 4: importing a sheet into PostgreSQL -----------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    rows: int
    file_mb: float
    total_seconds: float
    parse_seconds: float
    write_seconds: float
    write_cpu_seconds: float  # of this process, while writing
    load_seconds: float  # the imported tariff read back into a RateTable
    server_version: str


def run_import(admin_url: str, row_count: int, directory: Path) -> ImportResult:
    path = directory / "import-sheet.csv"
    with console.status(f"import: writing a sheet of {row_count:,} rows"):
        plan = make_plan(row_count)
        written = write_sheet_file(path, level_rows(plan, LEVELS[0]), limit=row_count)
        del plan
        gc.collect()
    with bench_database(admin_url, say=lambda line: console.print(f"import: {line}")) as url:
        database = Database(url)
        try:
            migrate.upgrade(database)
            with database.reading() as connection:
                version = str(connection.execute(text("SHOW server_version")).scalar_one())
            tree.create_provider(database, login="bench-house", name="Bench House", currency="USD")
            tariff = rating.create_tariff(database, owner_login="bench-house", name="import", time_zone="Europe/Berlin")
            with console.status(f"import: import_sheet, {written:,} rows into PostgreSQL"):
                timing = timed_import(database, tariff.name, path)
            with database.reading() as connection, console.status("import: loading it into a RateTable"):
                began = time.perf_counter()
                table = TableCache().table(connection, rating.require_tariff(connection, tariff.name))
                load_seconds = time.perf_counter() - began
            assert len(table) == timing.rows == written, (len(table), timing.rows, written)
        finally:
            database.dispose()
    result = ImportResult(
        rows=timing.rows,
        file_mb=path.stat().st_size / MB,
        total_seconds=timing.total,
        parse_seconds=timing.parse,
        write_seconds=timing.write,
        write_cpu_seconds=timing.write_cpu,
        load_seconds=load_seconds,
        server_version=version,
    )
    console.print(
        f"import: {result.rows:,} rows in {result.total_seconds:.1f} s (parse {result.parse_seconds:.1f} s, "
        f"write {result.write_seconds:.1f} s, {result.write_cpu_seconds:.1f} s of it on this process's CPU); "
        f"read back into a RateTable in {load_seconds:.1f} s"
    )
    return result


# --- report ----------------------------------------------------------------------------------------


@dataclass
class Results:
    core: list[CoreResult] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)
    batch: BatchResult | None = None
    imported: ImportResult | None = None


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(results: Results) -> None:
    lines: list[str] = []

    def emit(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="right")
        lines.extend(["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)])
        for row in rows:
            table.add_row(*row)
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        console.print(table)

    if results.core:
        emit(
            "Rating core: rate_call through 4 levels (4 charges a call), one process",
            ("prefixes", "rows (4 tariffs)", "calls", "calls/s best", "µs/call", "calls/s median",
             "calls/s by CPU time", "4 x select_at calls/s", "build s", "yardstick M probes/s"),
            [
                (f"{r.prefixes:,}", f"{r.rows:,}", f"{r.calls:,}", f"{r.best:,.0f}", f"{1e6 / r.best:.2f}",
                 f"{r.median:,.0f}", f"{r.best_cpu:,.0f}", f"{r.select_best:,.0f}", f"{r.build_seconds:.1f}",
                 f"{r.yardstick / 1e6:.2f}")
                for r in results.core
            ],
        )  # fmt: skip
    if results.memory:
        emit(
            "Memory of one loaded RateTable (the client's tariff)",
            ("prefixes", "rows", "prices", "distinct rates", "kept MB (tracemalloc)", "RSS growth MB",
             "peak MB while building", "build s"),
            [
                (f"{m.prefixes:,}", f"{m.rows:,}", "one each" if m.distinct_prices else "as generated",
                 f"{m.distinct_rates:,}", f"{m.retained_mb:.0f}", f"{m.rss_mb:.0f}", f"{m.peak_mb:.0f}",
                 f"{m.build_seconds:.1f}")
                for m in results.memory
            ],
        )  # fmt: skip
    if results.batch:
        b = results.batch
        emit(
            "Batch rating: rate_file, CSV in and out, SQLite, 4-level chain",
            ("prefixes", "calls", "rated", "failed", "calls/s (rating)", "table load s", "calls/s incl. load",
             "in MB", "out MB"),
            [
                (f"{b.prefixes:,}", f"{b.calls:,}", f"{b.rated:,}", f"{b.failed:,}", f"{b.per_second:,.0f}",
                 f"{b.load_seconds:.1f}", f"{b.end_to_end:,.0f}", f"{b.input_mb:.0f}", f"{b.output_mb:.0f}")
            ],
        )  # fmt: skip
    if results.imported:
        i = results.imported
        emit(
            f"Sheet import into PostgreSQL {i.server_version} (import_sheet, native CSV)",
            ("rows", "file MB", "total s", "parse s", "write s", "of which Python CPU s", "rows/s",
             "read back into a RateTable s"),
            [
                (f"{i.rows:,}", f"{i.file_mb:.0f}", f"{i.total_seconds:.1f}", f"{i.parse_seconds:.1f}",
                 f"{i.write_seconds:.1f}", f"{i.write_cpu_seconds:.1f}", f"{i.rows / i.total_seconds:,.0f}",
                 f"{i.load_seconds:.1f}")
            ],
        )  # fmt: skip
    goals = goal_lines(results)
    for line in goals:
        console.print(line, markup=False)
    console.print("\nMarkdown:\n")
    print("\n".join(lines + [f"- {line}" for line in goals]))


def goal_lines(results: Results) -> list[str]:
    goals = []
    headline = next((r for r in results.core if r.prefixes == 100_000), None)
    if headline is not None:
        goals.append(
            f"rating, 100,000 prefixes: {headline.best:,.0f} calls/s against {GOAL_CALLS_PER_SECOND:,}: "
            f"{verdict(headline.best >= GOAL_CALLS_PER_SECOND)} ({headline.best / GOAL_CALLS_PER_SECOND:.0%} of it)"
        )
    largest = next((m for m in results.memory if m.prefixes >= 1_000_000 and not m.distinct_prices), None)
    if largest is not None:
        worst = max(largest.retained_mb, largest.rss_mb)
        goals.append(
            f"memory, {largest.prefixes:,} prefixes: {largest.retained_mb:.0f} MB kept, {largest.rss_mb:.0f} MB "
            f"resident against {GOAL_MEMORY_MB} MB: {verdict(worst < GOAL_MEMORY_MB)}"
        )
    if results.imported is not None and results.imported.rows >= 1_000_000:
        seconds = results.imported.total_seconds
        goals.append(
            f"import, {results.imported.rows:,} rows: {seconds:.1f} s against {GOAL_IMPORT_SECONDS:.0f} s: "
            f"{verdict(seconds < GOAL_IMPORT_SECONDS)}"
        )
    return goals


def chart(results: Results, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullLocator

    panels = 2 if results.memory else 1
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), squeeze=False)
    throughput = axes[0][0]
    sizes = [r.prefixes for r in results.core]
    throughput.plot(sizes, [r.best for r in results.core], "o-", color="tab:blue", label="rate_call, 4 levels (best)")
    throughput.plot(
        sizes,
        [r.select_best for r in results.core],
        "s--",
        color="tab:green",
        label="4 x select_at only (no charges)",
    )
    if results.batch:
        b = results.batch
        label = "rate_file: CSV in and out (SQLite)"
        throughput.plot([b.prefixes], [b.per_second], "D", color="tab:purple", label=label)
    throughput.axhline(GOAL_CALLS_PER_SECOND, color="tab:red", linestyle=":", label="goal: 100,000 calls/s")
    throughput.set(title="Throughput, one process", xlabel="prefixes per tariff", ylabel="calls per second")
    throughput.set_xscale("log")
    throughput.set_ylim(bottom=0)
    throughput.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    if results.memory:
        memory = axes[0][1]
        rows = [m for m in results.memory if not m.distinct_prices]
        sizes = [m.prefixes for m in rows]
        memory.plot(sizes, [m.retained_mb for m in rows], "o-", color="tab:blue", label="kept (tracemalloc)")
        memory.plot(sizes, [m.rss_mb for m in rows], "s--", color="tab:orange", label="resident set growth")
        memory.plot(sizes, [m.peak_mb for m in rows], "^:", color="tab:gray", label="peak while building")
        for m in results.memory:
            if m.distinct_prices:
                memory.plot(
                    [m.prefixes],
                    [m.retained_mb],
                    "x",
                    color="black",
                    markersize=9,
                    label="kept, every prefix its own price",
                )
        memory.axhline(GOAL_MEMORY_MB, color="tab:red", linestyle=":", label=f"goal: {GOAL_MEMORY_MB} MB")
        memory.set(title="Memory of one loaded tariff", xlabel="prefixes per tariff", ylabel="MB")
        memory.set_xscale("log")
        memory.set_ylim(bottom=0)
    for panel in axes[0]:
        ticks = sorted({r.prefixes for r in results.core} | {m.prefixes for m in results.memory})
        panel.xaxis.set_minor_locator(NullLocator())
        panel.set_xticks(ticks, [_short(n) for n in ticks])
        panel.grid(True, which="both", alpha=0.3)
        panel.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    console.print(f"chart written to {path}")


def _short(count: int) -> str:
    """10000 -> 10k, 1000000 -> 1M."""
    for divisor, suffix in ((1_000_000, "M"), (1_000, "k")):
        if count >= divisor and count % divisor == 0:
            return f"{count // divisor}{suffix}"
    return f"{count:,}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {','.join(PARTS)}")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="prefixes per tariff, for core")
    parser.add_argument("--calls", type=int, default=CALLS, help="calls rated per size, for core")
    parser.add_argument("--repeat", type=int, default=REPEATS, help="timed runs per size, for core")
    parser.add_argument("--memory-sizes", default=",".join(map(str, MEMORY_SIZES)))
    parser.add_argument("--batch-prefixes", type=int, default=BATCH_PREFIXES)
    parser.add_argument("--batch-calls", type=int, default=BATCH_CALLS)
    parser.add_argument("--import-rows", type=int, default=IMPORT_ROWS)
    parser.add_argument(
        "--url",
        default=os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL),
        help=f"admin URL of the PostgreSQL server, for import (env {ADMIN_URL_VARIABLE})",
    )
    parser.add_argument("--chart", type=Path, default=DEFAULT_CHART)
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help=f"cProfile {PROFILE_CALLS:,} calls (core: per size; batch)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke run")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.memory_child:
        size, distinct, traced = (int(part) for part in options.memory_child.split(","))
        print(json.dumps(memory_child(size, bool(distinct), bool(traced))))
        return 0
    if options.quick:
        options.sizes, options.calls, options.repeat, options.memory_sizes = "1000,10000", 20_000, 1, "10000"
        options.batch_prefixes, options.batch_calls, options.import_rows = 2_000, 10_000, 20_000
        if options.chart == DEFAULT_CHART:  # a smoke run draws its chart, but not over the published one
            options.chart = Path(tempfile.gettempdir()) / "benchmarks-rating-quick.png"
    parts = [part for part in options.parts.split(",") if part]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}: choose among {','.join(PARTS)}")
    began = time.monotonic()
    results = Results()
    if "core" in parts:
        results.core = run_core(
            [int(n) for n in options.sizes.split(",")], options.calls, options.repeat, options.profile
        )
    if "memory" in parts:
        results.memory = run_memory([int(n) for n in options.memory_sizes.split(",")])
    with tempfile.TemporaryDirectory(prefix="tollway-bench-rating-") as scratch:
        if "batch" in parts:
            results.batch = run_batch(options.batch_prefixes, options.batch_calls, Path(scratch), options.profile)
        if "import" in parts:
            results.imported = run_import(options.url, options.import_rows, Path(scratch))
    report(results)
    cores = len(os.sched_getaffinity(0))
    console.print(f"Python {sys.version.split()[0]}, {cores} cores; total {time.monotonic() - began:.0f} s")
    if results.core and not options.no_chart:
        calls, version = results.core[0].calls, sys.version.split()[0]
        title = f"Tollway rating: {calls:,} calls per tariff size, 4-level chain, Python {version}, {cores} cores"
        chart(results, options.chart, title)
    failed = results.batch is not None and results.batch.failed > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
