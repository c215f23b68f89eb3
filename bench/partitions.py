"""Benchmark: the ledger's transfers table as Tollway has it, against a copy partitioned by month (issue 17).

    .venv/bin/python bench/partitions.py                 # 10,000,000 transfers over 13 months (about 15 minutes)
    .venv/bin/python bench/partitions.py --rows 1000000  # a quick check

On a scratch PostgreSQL database (``--url`` or ``TOLLWAY_BENCH_POSTGRESQL_URL``, as bench/carrier.py) it
migrates Tollway's schema, so ``public.transfers`` is exactly Tollway's table (its primary key on ``id``, the
unique ``pending_id`` referring to ``id``, its indexes and its append-only trigger), and loads ``--rows``
call-like transfers spread over 13 months up to now: each call four reservations (one a level) and their
four resolutions, posted (or voided, one call in twenty), all eight at the call's instant; one call in fifty
holds its reservations with a timeout (``expires_at``), a few of those never resolved.

Then it builds the partitioned copy in a schema of its own, ``monthly``, where ``monthly.transfers`` is
partitioned by range of ``created_at``, one partition a month (PostgreSQL's declarative partitioning).
A unique index on a partitioned table must include the partition key, so neither ``id`` (a transfer's
idempotency key) nor ``pending_id`` (a reservation resolved once) could be unique across months there.
Both are kept unique by a small table that is not partitioned, ``monthly.transfer_ids (id primary key,
created_at, pending_id unique referring to id)``: a transfer claims its id (and the reservation it
resolves) there, in the same statement that inserts it; the partitioned table refers to it.

Tollway's own queries (tollway.ledger.store: ``posted_movements``, ``posted_sums``, ``expired_pending_ids``,
``get_transfers``) are run unchanged against each table by setting ``search_path``, and it measures:
inserting call-like batches (eight transfers, one transaction each) into the current month; an account's
statement for one month; the expiry query; a lookup by id; the size on disk; VACUUM ANALYZE; and taking
the oldest month away (``DELETE`` against ``DETACH PARTITION`` and ``DROP TABLE``). It prints a table and
its Markdown copy for docs/benchmarks.md, with the machine's load average: the figures are from a shared
machine.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from scratch_database import bench_database, server_facts
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from tollway.ledger import store as ledger_store
from tollway.store import migrate
from tollway.store.database import Database

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_VARIABLE = "TOLLWAY_BENCH_POSTGRESQL_URL"
ROWS = 10_000_000
MONTHS = 13  # of data, the current one included
CHUNK_CALLS = 62_500  # calls (8 transfers each) per INSERT of the load: 500,000 rows, a progress step
WALLETS, REVENUES = 20_000, 200  # ledger accounts the transfers move between
TIMED_CALLS = 20  # of 1 in 50 calls hold a timeout; 1 in TIMED_UNRESOLVED of those is never resolved
TIMED_UNRESOLVED = 2_000
INSERT_BATCHES = 1_000  # call-like batches timed per table (--rows below 2M: 300)
STATEMENT_ACCOUNTS = 30  # accounts whose month is read, each once per table
LOOKUPS = 300  # transfers looked up by id, one at a time
REPEATS = 5  # runs of the expiry query
EXPIRY_TIMEOUT_SECONDS = 20  # for Tollway's own expiry query, which does not finish at these sizes
QUERY_CANCELED, FOREIGN_KEY_VIOLATION = "57014", "23503"
# The expiry query as an anti-join: one probe of the unique index of resolutions per expired reservation.
EXPIRY_ANTI_JOIN = (
    "SELECT t.id FROM transfers AS t WHERE t.phase = 'pending' AND t.expires_at IS NOT NULL AND t.expires_at <= :now"
    " AND NOT EXISTS (SELECT 1 FROM {resolutions} AS r WHERE r.pending_id = t.id) ORDER BY t.expires_at LIMIT 100"
)

console = Console() if sys.stdout.isatty() else Console(width=160)


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


@contextmanager
def phase(name: str) -> Iterator[None]:
    began = time.monotonic()
    with console.status(name):
        yield
    console.print(f"{name}: {time.monotonic() - began:.1f} s, load average {load_average()}", highlight=False)


def month_start(moment: datetime, months_back: int = 0) -> datetime:
    index = moment.year * 12 + moment.month - 1 - months_back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


# --- the data ------------------------------------------------------------------------------------------

# Row n of the load is transfer n % 8 of call n / 8: reservation (even) then its resolution (odd), four
# levels; every call's rows at one instant, the calls evenly spread from :start over :span seconds.
GENERATE = """
INSERT INTO transfers (id, debit_account_id, credit_account_id, amount_micros, currency, kind, reference, phase,
                       pending_id, expires_at, overshoot_micros, exchange_rate, created_at)
SELECT
  'call:' || c || ':' || p || '\\:1' || CASE WHEN NOT r THEN '' WHEN c % 20 = 0 THEN '\\:void' ELSE '\\:post' END,
  1 + (c * 7919 + p * 104729) % CAST(:wallets AS bigint),
  CAST(:wallets AS bigint) + 1 + (c + p) % CAST(:revenues AS bigint),
  1 + (c % 997) * 100,
  'USD', 'call_charge', 'call:' || c,
  CASE WHEN NOT r THEN 'pending' WHEN unresolved THEN 'single' WHEN c % 20 = 0 THEN 'void' ELSE 'post' END,
  CASE WHEN r AND NOT unresolved THEN 'call:' || c || ':' || p || '\\:1' END,
  CASE WHEN NOT r AND c % CAST(:timed AS bigint) = 0 THEN at + interval '1 hour' END,
  0, NULL, at
FROM (
  SELECT n / 8 AS c, (n % 8) / 2 AS p, n % 2 = 1 AS r,
         (n / 8) % (CAST(:timed AS bigint) * CAST(:unresolved_every AS bigint)) = 0 AS unresolved,
         CAST(:start AS timestamptz) + make_interval(secs => (n / 8) * CAST(:step AS float8)) AS at
  FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
) AS calls
"""

ACCOUNTS = """
INSERT INTO ledger_accounts (id, node_id, purpose, currency, debits_posted, credits_posted, debits_pending,
                             credits_pending, credit_limit_micros, floor, created_at)
SELECT a, 1, CASE WHEN a <= CAST(:wallets AS bigint) THEN 'wallet' ELSE 'revenue' END || a, 'USD',
       0, 0, 0, 0, 0, false, now()
FROM generate_series(1, CAST(:accounts AS bigint)) AS a
"""

MONTHLY_SCHEMA = """
CREATE SCHEMA monthly;
CREATE TABLE monthly.transfer_ids (
  id varchar(128) PRIMARY KEY,
  created_at timestamptz NOT NULL,
  pending_id varchar(128) UNIQUE REFERENCES monthly.transfer_ids (id)
);
CREATE TABLE monthly.transfers (LIKE public.transfers INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
  PARTITION BY RANGE (created_at);
"""

MONTHLY_KEYS = """
ALTER TABLE monthly.transfers ADD PRIMARY KEY (id, created_at);
ALTER TABLE monthly.transfers ADD FOREIGN KEY (id) REFERENCES monthly.transfer_ids (id);
ALTER TABLE monthly.transfers ADD FOREIGN KEY (debit_account_id) REFERENCES public.ledger_accounts (id);
ALTER TABLE monthly.transfers ADD FOREIGN KEY (credit_account_id) REFERENCES public.ledger_accounts (id);
CREATE INDEX ON monthly.transfers (debit_account_id, created_at);
CREATE INDEX ON monthly.transfers (credit_account_id, created_at);
CREATE INDEX ON monthly.transfers (reference);
CREATE INDEX ON monthly.transfers (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX ON monthly.transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON monthly.transfers
  FOR EACH ROW EXECUTE FUNCTION public.tollway_refuse_transfer_change();
"""


def partition_name(start: datetime) -> str:
    return f"monthly.transfers_{start:%Y_%m}"


def create_partitions(connection: Connection, first: datetime, months: int) -> list[datetime]:
    starts = [month_start(first, -offset) for offset in range(months)]
    for start in starts:
        until = month_start(start, -1)
        connection.execute(
            text(f"CREATE TABLE {partition_name(start)} PARTITION OF monthly.transfers "
                 f"FOR VALUES FROM ('{start.isoformat()}') TO ('{until.isoformat()}')")
        )  # fmt: skip
    return starts


def load(engine: Engine, rows: int, now: datetime) -> tuple[datetime, list[datetime]]:
    """Tollway's table filled, then the partitioned copy; answers the first month and the partitions."""
    first = month_start(now, MONTHS - 1)
    calls = rows // 8
    step = (now - first).total_seconds() / calls
    columns = TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    with engine.connect() as connection, Progress(*columns, console=console) as progress:
        # The load only: no foreign-key checks or triggers (the rows are consistent by design), kept for the session.
        connection.execute(text("SET session_replication_role = replica"))
        connection.execute(text(ACCOUNTS), {"wallets": WALLETS, "accounts": WALLETS + REVENUES})
        task = progress.add_task("public.transfers (Tollway's table), rows", total=calls * 8)
        for chunk in range(0, calls, CHUNK_CALLS):
            last_call = min(calls, chunk + CHUNK_CALLS) - 1
            connection.execute(
                text(GENERATE),
                {"wallets": WALLETS, "revenues": REVENUES, "timed": TIMED_CALLS, "unresolved_every": TIMED_UNRESOLVED,
                 "start": first, "step": step, "first": chunk * 8, "last": last_call * 8 + 7},
            )  # fmt: skip
            connection.commit()
            progress.update(task, completed=(last_call + 1) * 8)
        for statement in MONTHLY_SCHEMA.split(";\n"):
            if statement.strip():
                connection.execute(text(statement))
        starts = create_partitions(connection, first, MONTHS + 1)  # and next month's, made ahead
        for statement in MONTHLY_KEYS.split(";\n"):
            if statement.strip():
                connection.execute(text(statement))
        connection.commit()
        task = progress.add_task("monthly.transfers (by month) and monthly.transfer_ids, months", total=MONTHS)
        for start in starts[:MONTHS]:
            span = {"since": start, "until": month_start(start, -1)}
            where = "WHERE created_at >= :since AND created_at < :until"
            connection.execute(
                text(
                    f"INSERT INTO monthly.transfer_ids SELECT id, created_at, pending_id FROM public.transfers {where}"
                ),
                span,
            )
            connection.execute(text(f"INSERT INTO monthly.transfers SELECT * FROM public.transfers {where}"), span)
            connection.commit()
            progress.advance(task)
        connection.execute(text("RESET session_replication_role"))  # the pool's connection, for what follows
        connection.commit()
    return first, starts


# --- the measurements -------------------------------------------------------------------------------------

TOLLWAY = "public"
MONTHLY = "monthly, public"  # the partitioned transfers first; ledger_accounts from public


@contextmanager
def on(engine: Engine, search_path: str) -> Iterator[Connection]:
    with engine.connect() as connection:
        connection.execute(text(f"SET search_path = {search_path}"))
        connection.commit()
        yield connection


def timed(run: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` runs."""
    found = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        found.append((time.perf_counter() - began) * 1000)
    return found


def median_ms(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else ""


def p99_ms(values: Sequence[float]) -> str:
    return f"{statistics.quantiles(values, n=100)[98]:.2f}" if len(values) >= 2 else ""


UNNEST = (
    "SELECT * FROM unnest(CAST(:id AS VARCHAR[]), CAST(:debit AS BIGINT[]), CAST(:credit AS BIGINT[]),"
    " CAST(:amount AS BIGINT[]), CAST(:currency AS VARCHAR[]), CAST(:kind AS VARCHAR[]), CAST(:reference AS VARCHAR[]),"
    " CAST(:phase AS VARCHAR[]), CAST(:pending_id AS VARCHAR[]), CAST(:expires_at AS TIMESTAMPTZ[]),"
    " CAST(:overshoot AS BIGINT[]), CAST(:exchange_rate AS VARCHAR[]), CAST(:created_at AS TIMESTAMPTZ[]))"
    " AS t(id, debit_account_id, credit_account_id, amount_micros, currency, kind, reference, phase, pending_id,"
    " expires_at, overshoot_micros, exchange_rate, created_at)"
)
COLUMNS = (
    "(id, debit_account_id, credit_account_id, amount_micros, currency, kind, reference, phase, pending_id,"
    " expires_at, overshoot_micros, exchange_rate, created_at)"
)
# Tollway's insert (tollway.ledger.store._INSERT_AND_UPDATE, without its accounts' update, which is the same
# for both tables): a repeated id is skipped, and the caller told.
INSERT_TOLLWAY = f"INSERT INTO transfers {COLUMNS} {UNNEST} ON CONFLICT (id) DO NOTHING RETURNING id"
# The same on the partitioned table: the ids (and the reservations resolved) claimed in transfer_ids first;
# only the transfers whose id was free go in.
INSERT_MONTHLY = (
    "WITH batch AS MATERIALIZED (" + UNNEST + "),"
    " claimed AS (INSERT INTO transfer_ids (id, created_at, pending_id)"
    " SELECT id, created_at, pending_id FROM batch ON CONFLICT DO NOTHING RETURNING id)"
    f" INSERT INTO transfers {COLUMNS} SELECT batch.* FROM batch JOIN claimed USING (id) RETURNING id"
)
# What the partitioned table alone could say: unique per (id, created_at), so the same id at another instant
# (a retry in another month) would be a second transfer; here the reference to transfer_ids refuses it.
INSERT_MONTHLY_UNGUARDED = (
    f"INSERT INTO transfers {COLUMNS} {UNNEST} ON CONFLICT (id, created_at) DO NOTHING RETURNING id"
)


def call_batch(number: int, now: datetime) -> dict[str, list[Any]]:
    """One call's end: four reservations (one a level) and their resolutions, as the engine writes them."""
    call = f"bench{number}"
    ids, pending_ids, phases = [], [], []
    for position in range(4):
        ids += [f"call:{call}:{position}:1", f"call:{call}:{position}:1:post"]
        pending_ids += [None, f"call:{call}:{position}:1"]
        phases += ["pending", "post"]
    return {
        "id": ids,
        "debit": [1 + (number * 31 + position) % WALLETS for position in range(4) for _ in range(2)],
        "credit": [WALLETS + 1 + position for position in range(4) for _ in range(2)],
        "amount": [1_000] * 8,
        "currency": ["USD"] * 8,
        "kind": ["call_charge"] * 8,
        "reference": [f"call:{call}"] * 8,
        "phase": phases,
        "pending_id": pending_ids,
        "expires_at": [None] * 8,
        "overshoot": [0] * 8,
        "exchange_rate": [None] * 8,
        "created_at": [now] * 8,
    }


def insert_rate(engine: Engine, search_path: str, statement: str, batches: int, tag: str) -> tuple[float, list[float]]:
    """Batches a second, and each batch's milliseconds, one transaction a batch on one connection."""
    latencies = []
    with on(engine, search_path) as connection:
        began = time.perf_counter()
        for number in range(batches):
            values = call_batch(number, datetime.now(UTC))
            values["id"] = [f"{tag}.{value}" for value in values["id"]]
            values["pending_id"] = [None if value is None else f"{tag}.{value}" for value in values["pending_id"]]
            start = time.perf_counter()
            inserted = connection.execute(text(statement), values).all()
            connection.commit()
            latencies.append((time.perf_counter() - start) * 1000)
            if len(inserted) != 8:
                raise RuntimeError(f"{tag}: {len(inserted)} of 8 transfers inserted")
        seconds = time.perf_counter() - began
    return batches / seconds, latencies


def repeat_is_refused(engine: Engine, search_path: str, statement: str) -> str:
    """What the table says to a batch repeated a month later (a retry across a month's end)."""
    values = call_batch(10**9, datetime.now(UTC))
    with on(engine, search_path) as connection:
        first = len(connection.execute(text(statement), values).all())
        values["created_at"] = [month_start(datetime.now(UTC), -1) + timedelta(days=1)] * 8  # next month's
        again = len(connection.execute(text(statement), values).all())
        connection.rollback()
    return f"{first} inserted, repeat: {again} inserted" + (" (a duplicate!)" if again else " (refused)")


def refused_or_not(engine: Engine, statement: str) -> str:
    """What the partitioned table says to ``statement`` (a batch, rolled back)."""
    try:
        with on(engine, MONTHLY) as connection:
            connection.execute(text(statement), call_batch(2 * 10**9, datetime.now(UTC)))
            connection.rollback()
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == FOREIGN_KEY_VIOLATION:
            return "refused: its id is not in transfer_ids (foreign key)"
        return "refused: " + str(error.orig).splitlines()[0][:90]
    return "works"


@dataclass
class Figures:
    name: str
    insert_per_second: float = 0.0
    insert_ms: list[float] | None = None
    # "wallet" or "revenue" -> (posted_movements ms, posted_sums ms, movements in the month on average)
    statements: dict[str, tuple[list[float], list[float], int]] = field(default_factory=dict)
    expiry_ms: list[float] | None = None
    expiry_tollway: str = ""
    expired_found: int = 0
    lookup_ms: list[float] | None = None
    lookup_by_claim_ms: list[float] | None = None
    size_bytes: int = 0
    size_note: str = ""
    vacuum_seconds: float = 0.0
    vacuum_current_seconds: float = 0.0
    archive_seconds: float = 0.0
    archive_vacuum_seconds: float = 0.0
    archive_rows: int = 0
    repeat: str = ""


def read_queries(engine: Engine, search_path: str, figures: Figures, month: datetime, now: datetime) -> None:
    until = month_start(month, -1)
    chooser = random.Random(7)
    wallets = chooser.sample(range(1, WALLETS + 1), STATEMENT_ACCOUNTS)  # a client's: a few calls a month
    revenues = chooser.sample(range(WALLETS + 1, WALLETS + REVENUES + 1), STATEMENT_ACCOUNTS)  # a reseller's
    with on(engine, search_path) as connection:
        for accounts, kind in ((wallets, "wallet"), (revenues, "revenue")):
            rows: list[int] = []
            movements, sums = [], []
            for account in accounts:
                began = time.perf_counter()
                page = ledger_store.posted_movements(connection, account, limit=100, since=month, until=until)
                movements.append((time.perf_counter() - began) * 1000)
                rows.append(len(page))
                began = time.perf_counter()
                total = ledger_store.posted_sums(connection, account, since=month, until=until)
                sums.append((time.perf_counter() - began) * 1000)
                rows[-1] = max(rows[-1], total[2])
            figures.statements[kind] = (movements, sums, round(statistics.mean(rows)))
        connection.rollback()
        figures.expiry_tollway = tollway_expiry(connection, now)
        resolutions = "transfers" if search_path == TOLLWAY else "transfer_ids"  # one index, not one a month
        query = text(EXPIRY_ANTI_JOIN.format(resolutions=resolutions))
        found: list[str] = []

        def expiry() -> None:
            found[:] = connection.execute(query, {"now": now}).scalars().all()

        figures.expiry_ms = timed(expiry, REPEATS)
        figures.expired_found = len(found)
        connection.rollback()


def tollway_expiry(connection: Connection, now: datetime) -> str:
    """Tollway's expired_pending_ids, once, given EXPIRY_TIMEOUT_SECONDS: its NOT IN (subquery) is a hashed
    subplan only while the resolved ids fit in work_mem; past that PostgreSQL runs the subquery once per row."""
    connection.execute(text(f"SET LOCAL statement_timeout = '{EXPIRY_TIMEOUT_SECONDS}s'"))
    began = time.perf_counter()
    try:
        found = ledger_store.expired_pending_ids(connection, now=now, limit=100)
    except DBAPIError as error:
        connection.rollback()
        if getattr(error.orig, "sqlstate", None) != QUERY_CANCELED:
            raise
        return f"cancelled after {EXPIRY_TIMEOUT_SECONDS} s"
    connection.rollback()
    return f"{(time.perf_counter() - began) * 1000:,.1f} ms ({len(found)} found)"


def lookups(engine: Engine, search_path: str, ids: list[str], figures: Figures) -> None:
    with on(engine, search_path) as connection:
        figures.lookup_ms = []
        for transfer_id in ids:
            began = time.perf_counter()
            got = ledger_store.get_transfers(connection, [transfer_id])
            figures.lookup_ms.append((time.perf_counter() - began) * 1000)
            if transfer_id not in got:
                raise RuntimeError(f"{transfer_id} not found")
        if search_path == MONTHLY:  # the month first, from the table of ids: one partition probed
            query = text(
                "SELECT t.* FROM transfer_ids AS i JOIN transfers AS t ON t.id = i.id AND t.created_at = i.created_at"
                " WHERE i.id = :id"
            )
            figures.lookup_by_claim_ms = []
            for transfer_id in ids:
                began = time.perf_counter()
                connection.execute(query, {"id": transfer_id}).one()
                figures.lookup_by_claim_ms.append((time.perf_counter() - began) * 1000)
        connection.rollback()


def sizes(engine: Engine, figures: dict[str, Figures], starts: list[datetime]) -> None:
    with engine.connect() as connection:
        figures["tollway"].size_bytes = int(
            connection.execute(text("SELECT pg_total_relation_size('public.transfers')")).scalar_one()
        )
        parts = [
            int(connection.execute(text(f"SELECT pg_total_relation_size('{partition_name(s)}')")).scalar_one())
            for s in starts
        ]
        ids = int(connection.execute(text("SELECT pg_total_relation_size('monthly.transfer_ids')")).scalar_one())
    figures["monthly"].size_bytes = sum(parts) + ids
    figures[
        "monthly"
    ].size_note = f"of which transfer_ids {ids / 2**20:,.0f} MB; the largest month {max(parts) / 2**20:,.0f} MB"


def vacuums(engine: Engine, figures: dict[str, Figures], current: datetime) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for name, target in (("tollway", "public.transfers"), ("monthly", "monthly.transfers, monthly.transfer_ids")):
            with phase(f"VACUUM ANALYZE {target}"):
                began = time.perf_counter()
                connection.execute(text(f"VACUUM (ANALYZE) {target}"))
                figures[name].vacuum_seconds = time.perf_counter() - began
        began = time.perf_counter()
        connection.execute(text(f"VACUUM (ANALYZE) {partition_name(current)}"))
        figures["monthly"].vacuum_current_seconds = time.perf_counter() - began


def archive_oldest(engine: Engine, figures: dict[str, Figures], oldest: datetime) -> None:
    """The oldest month taken away: DELETE (then VACUUM, to have the space back) against DETACH and DROP."""
    until = month_start(oldest, -1)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        with phase("DELETE the oldest month of public.transfers"):
            began = time.perf_counter()
            connection.execute(text("ALTER TABLE public.transfers DISABLE TRIGGER transfers_append_only"))
            deleted = connection.execute(
                text("DELETE FROM public.transfers WHERE created_at < :until"), {"until": until}
            ).rowcount
            connection.execute(text("ALTER TABLE public.transfers ENABLE TRIGGER transfers_append_only"))
            figures["tollway"].archive_seconds = time.perf_counter() - began
            figures["tollway"].archive_rows = deleted
        with phase("VACUUM public.transfers after the DELETE"):
            began = time.perf_counter()
            connection.execute(text("VACUUM public.transfers"))
            figures["tollway"].archive_vacuum_seconds = time.perf_counter() - began
        name = partition_name(oldest)
        with phase(f"DETACH PARTITION {name} CONCURRENTLY, DROP TABLE"):
            count = int(connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
            began = time.perf_counter()
            connection.execute(text(f"ALTER TABLE monthly.transfers DETACH PARTITION {name} CONCURRENTLY"))
            connection.execute(text(f"DROP TABLE {name}"))
            figures["monthly"].archive_seconds = time.perf_counter() - began
            figures["monthly"].archive_rows = count


# --- report ---------------------------------------------------------------------------------------------


def statement_lines(tollway: Figures, monthly: Figures) -> list[tuple[str, str, str]]:
    lines = []
    for kind, whose in (("wallet", "a client's wallet"), ("revenue", "a reseller's revenue account")):
        left, right = tollway.statements[kind], monthly.statements[kind]
        lines += [
            (f"statement of one month, {whose} (about {left[2]:,} calls): posted_movements (100 a page), ms p50 / p99",
             f"{median_ms(left[0])} / {p99_ms(left[0])}", f"{median_ms(right[0])} / {p99_ms(right[0])}"),
            ("  and its sums (posted_sums), ms p50 / p99",
             f"{median_ms(left[1])} / {p99_ms(left[1])}", f"{median_ms(right[1])} / {p99_ms(right[1])}"),
        ]  # fmt: skip
    return lines


def report(figures: dict[str, Figures], rows: int, facts: dict[str, str], unguarded: str,
           tollway_on_monthly: str) -> list[str]:  # fmt: skip
    tollway, monthly = figures["tollway"], figures["monthly"]
    assert tollway.insert_ms and monthly.insert_ms and tollway.lookup_ms and monthly.lookup_ms
    lines = [
        ("inserts: call-like batches of 8 (one transaction each) into the current month, batches/s",
         f"{tollway.insert_per_second:,.0f}", f"{monthly.insert_per_second:,.0f}"),
        ("  a batch's ms, p50 / p99", f"{median_ms(tollway.insert_ms)} / {p99_ms(tollway.insert_ms)}",
         f"{median_ms(monthly.insert_ms)} / {p99_ms(monthly.insert_ms)}"),
        ("  Tollway's insert as it is (ON CONFLICT (id))", "works", tollway_on_monthly),
        ("  an insert that skips transfer_ids (ON CONFLICT (id, created_at))", "", unguarded),
        ("  the same 8 ids again, a month later", tollway.repeat, monthly.repeat),
        *statement_lines(tollway, monthly),
        ("expiry query as Tollway has it (expired_pending_ids: NOT IN (subquery), limit 100)", tollway.expiry_tollway,
         monthly.expiry_tollway),
        (f"  the same as an anti-join (NOT EXISTS; on transfer_ids when partitioned; found {tollway.expired_found} / "
         f"{monthly.expired_found}), ms p50", median_ms(tollway.expiry_ms or []), median_ms(monthly.expiry_ms or [])),
        ("lookup by id (get_transfers), ms p50 / p99", f"{median_ms(tollway.lookup_ms)} / {p99_ms(tollway.lookup_ms)}",
         f"{median_ms(monthly.lookup_ms)} / {p99_ms(monthly.lookup_ms)}"),
        ("  by id through transfer_ids (its month first), ms p50 / p99", "",
         f"{median_ms(monthly.lookup_by_claim_ms or [])} / {p99_ms(monthly.lookup_by_claim_ms or [])}"),
        ("size on disk, table and indexes", f"{tollway.size_bytes / 2**20:,.0f} MB",
         f"{monthly.size_bytes / 2**20:,.0f} MB ({monthly.size_note})"),
        ("VACUUM (ANALYZE), s", f"{tollway.vacuum_seconds:.1f}",
         f"{monthly.vacuum_seconds:.1f} (the current month alone: {monthly.vacuum_current_seconds:.2f})"),
        (f"the oldest month taken away ({tollway.archive_rows:,} rows), s",
         f"DELETE {tollway.archive_seconds:.1f} + VACUUM {tollway.archive_vacuum_seconds:.1f}",
         f"DETACH CONCURRENTLY + DROP {monthly.archive_seconds:.2f}"),
    ]  # fmt: skip
    title = f"transfers: Tollway's table against partitioned by month, {rows:,} rows over {MONTHS} months"
    table = Table(title=title)
    for column in ("", "Tollway's table", "partitioned by month"):
        table.add_column(column, justify="right" if column else "left")
    markdown = [f"**{title}**", "", "| | Tollway's table | partitioned by month |", "|---|---:|---:|"]
    for label, left, right in lines:
        table.add_row(label, left, right)
        markdown.append(f"| {label} | {left} | {right} |")
    console.print(table)
    facts_line = (
        f"PostgreSQL {facts.get('version')}; "
        + ", ".join(f"{key}={value}" for key, value in facts.items() if key != "version")
        + f"; cores (nproc): {len(os.sched_getaffinity(0))}; load average at the end {load_average()}"
    )
    console.print(facts_line)
    markdown += ["", facts_line]
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL),
                        help=f"admin URL of the PostgreSQL server (env {ADMIN_URL_VARIABLE})")  # fmt: skip
    parser.add_argument("--rows", type=int, default=ROWS, help="transfers to load (a multiple of 8)")
    parser.add_argument("--batches", type=int, default=0, help="call-like batches timed per table")
    options = parser.parse_args(argv)
    if options.rows < 8 * CHUNK_CALLS // 10:
        parser.error(f"at least {8 * CHUNK_CALLS // 10:,} rows")
    batches = options.batches or (INSERT_BATCHES if options.rows >= 2_000_000 else 300)
    began = time.monotonic()
    console.print(f"load average (1 / 5 / 15 min) at the start: {load_average()}")
    now = datetime.now(UTC)
    with bench_database(options.url, "_partitions", say=console.print) as url:
        database = Database(url)
        migrate.upgrade(database)
        facts = server_facts(database)
        engine = create_engine(database.url)
        try:
            with phase(f"load {options.rows:,} transfers, twice"):
                first, starts = load(engine, options.rows, now)
            figures = {"tollway": Figures("tollway"), "monthly": Figures("monthly")}
            vacuums(engine, figures, month_start(now))
            with phase("inserts"):
                for name, search_path, statement in (("tollway", TOLLWAY, INSERT_TOLLWAY),
                                                     ("monthly", MONTHLY, INSERT_MONTHLY)):  # fmt: skip
                    figures[name].insert_per_second, figures[name].insert_ms = insert_rate(
                        engine, search_path, statement, batches, name
                    )
                    figures[name].repeat = repeat_is_refused(engine, search_path, statement)
                tollway_on_monthly = refused_or_not(engine, INSERT_TOLLWAY)
                unguarded = refused_or_not(engine, INSERT_MONTHLY_UNGUARDED)
            month = month_start(now, MONTHS // 2)
            with engine.connect() as connection:
                sample = connection.execute(
                    text(f"SELECT id FROM public.transfers TABLESAMPLE BERNOULLI (0.01) LIMIT {LOOKUPS}")
                ).scalars().all()  # fmt: skip
            with phase("reads: statements, sums, expiry, lookups"):
                for name, search_path in (("tollway", TOLLWAY), ("monthly", MONTHLY)):
                    read_queries(engine, search_path, figures[name], month, now)
                    lookups(engine, search_path, list(sample), figures[name])
            sizes(engine, figures, starts)
            archive_oldest(engine, figures, first)
        finally:
            engine.dispose()
            database.dispose()
    markdown = report(figures, options.rows, facts, unguarded, tollway_on_monthly)
    console.print("\nMarkdown:\n")
    print("\n".join(markdown))
    console.print(f"total {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
