"""Benchmark: credit control under call load, through the HTTP API, on PostgreSQL.

    .venv/bin/python bench/calls.py             # full run: several minutes, most of it the 10,000 held calls
    .venv/bin/python bench/calls.py --quick     # a smoke run of about three minutes here
    .venv/bin/python bench/calls.py --workers 1,2,4 --concurrency 32 --seconds 60
    .venv/bin/python bench/calls.py --setup-only --clients 10000   # only build (and time) the hierarchy

It creates its own database (``tollway_bench_<random>``) next to the one the admin URL names,
migrates it and builds a realistic tree through the services: a provider, 3 L3, 10 L2 and 50 L1
resellers, and 10,000 retail clients spread unevenly under the L1s, all in USD. The provider imports
a rate sheet of about 500 prefixes (countries, area codes, mobile ranges, a few expensive and premium
destinations); every reseller derives its own tariff from the one it pays at (a multiplier and, for
retail, an addition per minute) and assigns it to its children. Resellers are topped up generously,
clients with 20.00, except 2 % of them who have nothing (their calls are refused). One client is
made by the services (node, tariff, top-up); the others are cloned from its rows in a few set-based
statements per batch, their top-ups going through the ledger, and one clone is checked to read back
exactly as the template does (``--setup-path services`` makes every client through the services,
about 7 ms of CPU each).

Then it creates an API key for the switch at the provider (``calls:control``), starts ``tollway serve
--workers N`` against the database and drives the credit-control API from one asyncio process, with a
minimal HTTP/1.1 client of its own (one keep-alive connection per simulated switch link, no
dependency, a few tens of microseconds of CPU per request: the load generator shares the cores with
the server and PostgreSQL, and it measures how much of them it used). Calls go from a random client
to a number that extends one of the sheet's prefixes (weighted by country, half of them mobile) and
last an exponentially distributed time, 90 s on average; they are virtual: the switch reports the
end at once with that duration.

* setups:  for each worker count (2 and 4 by default), C links each authorize an answered call and
           end it, again and again, for a fixed time. Call setups per second (authorize + end), the
           latency of each request (p50, p95, p99), refusals by reason, errors, and the CPU time per
           setup of the generator, the Tollway workers and the database's backends.
* held:    with the largest worker count and a short grant (``TOLLWAY_CALL_GRANT_SECONDS``), 10,000
           answered calls are authorized and not ended; the engine keeps extending their grants for a
           while. Calls held (counted in the database and by paging ``GET /api/v1/calls?active=true``),
           extensions per second, and calls whose grant ran out while still active (the keeper fell
           behind, and the sweeper closes those late by more than the margin). Then every call is ended
           and nothing may stay active or reserved. Authorizing, then ending, stops after 10 minutes each.
* ledger:  ``tollway.ledger.service.check`` at the end; the run fails loudly if the ledger does not
           balance.
* pgbench: a yardstick for this machine and server, in a scratch database, when pgbench is installed.

It prints the figures as a table and as Markdown, writes ``docs/benchmarks-calls.png`` (a quick run
writes its chart to the temporary directory instead) and drops its databases at the end, even after
an error or Ctrl-C. The admin URL comes from ``--url`` or ``TOLLWAY_BENCH_POSTGRESQL_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import multiprocessing
import os
import queue
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from scratch_database import bench_database, server_facts, settle
from sqlalchemy import Connection, text

from tollway.access import service as access
from tollway.access.model import Action, Role
from tollway.balances import service as balances
from tollway.clock import utc_now
from tollway.ledger import service as ledger
from tollway.ledger import store as ledger_store
from tollway.ledger.model import BATCH_TRANSFERS_MAX, AccountPurpose, TransferKind, TransferRequest
from tollway.money import to_micros
from tollway.rating import service as rating
from tollway.rating import store as rating_store
from tollway.rating.sheets import Layout
from tollway.rating.tariff import Derivation, Tariff
from tollway.store import migrate, schema
from tollway.store.database import Database
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree import store as tree_store

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_VARIABLE = "TOLLWAY_BENCH_POSTGRESQL_URL"
REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_CHART = REPOSITORY / "docs" / "benchmarks-calls.png"
API = "/api/v1/calls"
AUTHORIZE_PATH = f"{API}/authorize"

# The tree.
PROVIDER_LOGIN = "bench-house"
L3_COUNT, L2_COUNT, L1_COUNT = 3, 10, 50
CLIENTS = 10_000
CLIENT_SPREAD_EXPONENT = 0.7  # client i of an L1 ranked r goes there with weight 1 / (r + 1) ** this: uneven
ZERO_BALANCE_SHARE = 0.02  # clients left at zero: their calls are refused
TOPUP_BY_LEVEL = {3: "10000000", 2: "1000000", 1: "100000"}  # resellers, in USD
CLIENT_TOPUP = "20.00"
CLIENT_BATCH = 250  # clients per transaction
SETUP_PROCESSES = 2  # client batches run in this many processes, each with its own L1 owners
SETUP_SECONDS_MAX = 600.0
SEED = 20250301

# The load.
WORKER_COUNTS = (2, 4)
CONCURRENCY = 16  # switch links, each one keep-alive connection with one request in flight
SETUP_SECONDS = 30.0
HELD_CALLS = 10_000
HOLD_SECONDS = 60.0
GRANT_SECONDS = 30  # TOLLWAY_CALL_GRANT_SECONDS for the held calls: short, so that extensions happen
STALE_MARGIN_SECONDS = 30  # TOLLWAY_CALL_STALE_MARGIN_SECONDS
EXTEND_LEAD_SECONDS_DEFAULT = 60  # the server's call_extend_lead_seconds, capped by it at half a grant
DURATION_MEAN_SECONDS = 90.0
WARMUP_SECONDS = 5.0  # of calls before the clock starts, one client of each L1: every worker loads every tariff
HELD_STEP_SECONDS_MAX = 600.0  # authorizing, then ending, the held calls stops after this long, whatever is left
REQUEST_TIMEOUT_SECONDS = 30.0
ERRORS_PER_LINK_MAX = 200  # a link that fails this often stops: a broken server ends the run soon
PAGE_LIMIT = 500  # GET /api/v1/calls?active=true page size
PAGES_MAX = 1_000
SAMPLE_SECONDS = 1.0  # how often the held calls are looked at in the database
SERVER_START_SECONDS_MAX = 90.0
SERVER_STOP_SECONDS_MAX = 20.0
LATENCIES_PER_RUN_MAX = 2_000_000  # bounds memory whatever the speed

# The yardstick.
PGBENCH_SCALE, PGBENCH_CLIENTS, PGBENCH_THREADS, PGBENCH_SECONDS = 10, 8, 2, 30
PGBENCH_TIMEOUT_SECONDS = 600

console = Console() if sys.stdout.isatty() else Console(width=160)


# --- the rate sheet and the numbers called ---------------------------------------------------------

# code | country | fixed price | mobile price (USD a minute) | minimal time/resolution | share of calls |
# mobile ranges after the code | area codes after the code. Prices are wholesale-like; ranges are real.
COUNTRIES = """
1|USA and Canada|0.0060|0.0060|6/6|30||201 202 206 212 213 214 305 310 312 404 415 416 514 604 617 646 702 713 718 786
7|Russia|0.0250|0.0600|1/1|2|900 901 903 905 909 910 915 916 917 925 926 977|495 499 812 343
20|Egypt|0.0700|0.0900|1/1|1|10 11 12 15|2 3
27|South Africa|0.0200|0.0450|1/1|1|60 71 72 73 76 78 79 82 83 84|11 21 31
30|Greece|0.0080|0.0250|1/1|1|69|21 231
31|Netherlands|0.0090|0.0300|1/1|2|6|10 20 30 70
32|Belgium|0.0100|0.0350|1/1|1|46 47 48 49|2 3 9
33|France|0.0080|0.0250|1/1|6|6 7|1 2 3 4 5
34|Spain|0.0070|0.0200|1/1|4|6 7|91 93 95 96
36|Hungary|0.0120|0.0350|1/1|1|20 30 70|1
39|Italy|0.0080|0.0220|1/1|3|31 32 33 34 35 36 37 38 39|02 06 011 081
40|Romania|0.0100|0.0300|1/1|2|72 73 74 75 76 77 78|21 31
41|Switzerland|0.0150|0.1200|1/1|1|76 77 78 79|21 22 31 44 61
43|Austria|0.0120|0.0500|1/1|1|650 660 664 676 680 699|1 316 512 662 732
44|United Kingdom|0.0080|0.0150|1/1|10|71 72 73 74 75 77 78 79|20 113 121 131 141 161 1865 28 29
45|Denmark|0.0100|0.0200|1/1|1|20 30 40 50 60|3 8
46|Sweden|0.0080|0.0150|1/1|1|70 72 73 76 79|8 31 40
47|Norway|0.0090|0.0200|1/1|1|4 9|2 5
48|Poland|0.0090|0.0150|1/1|2|50 51 53 57 60 66 69 72 73 78 79 88|12 22 58 61 71
49|Germany|0.0090|0.0200|1/1|8|151 152 157 159 160 162 163 170 171 172 175 176 177 178 179|30 40 69 89 211 221 711
51|Peru|0.0200|0.0600|1/1|1|9|1
52|Mexico|0.0150|0.0300|60/60|6|1|33 55 81
54|Argentina|0.0200|0.1000|1/1|1|9|11 341 351
55|Brazil|0.0150|0.0500|30/6|3|119 219 319 419 519 619 719 819|11 21 31 41 51 61
56|Chile|0.0150|0.0400|1/1|1|9|2
57|Colombia|0.0150|0.0250|60/60|2|3|1 2 4 5
60|Malaysia|0.0150|0.0250|1/1|1|1|3 4
61|Australia|0.0150|0.0400|1/1|1|4|2 3 7 8
62|Indonesia|0.0400|0.0550|1/1|1|8|21 22 31
63|Philippines|0.0800|0.1300|60/60|2|9|2 32
64|New Zealand|0.0150|0.0450|1/1|1|2|3 4 9
65|Singapore|0.0100|0.0100|1/1|1|8 9|6
66|Thailand|0.0250|0.0250|1/1|1|6 8 9|2
81|Japan|0.0250|0.0800|1/1|1|70 80 90|3 6 45 52
82|South Korea|0.0200|0.0300|1/1|1|10|2 31 51
84|Vietnam|0.0600|0.0700|1/1|1|3 7 8 9|24 28
86|China|0.0100|0.0100|1/1|3|13 15 17 18 19|10 20 21 755
90|Turkey|0.0200|0.1100|1/1|2|50 53 54 55|212 216 312
91|India|0.0150|0.0150|1/1|6|6 7 8 9|11 22 33 44 80
92|Pakistan|0.0700|0.0900|1/1|2|3|21 42 51
234|Nigeria|0.0900|0.1100|30/30|1|70 80 81 90|1 9
254|Kenya|0.0600|0.0900|1/1|1|7 11|20
351|Portugal|0.0100|0.0300|1/1|1|91 92 93 96|21 22
353|Ireland|0.0100|0.0350|1/1|1|83 85 86 87 89|1 21
880|Bangladesh|0.0300|0.0300|1/1|1|1|2
971|United Arab Emirates|0.1300|0.1500|60/60|1|50 52 54 55 56 58|2 4
972|Israel|0.0150|0.0300|1/1|1|50 52 53 54 55 58|2 3
53|Cuba|0.8500|0.8500|60/60|0.2|5|7
"""
# Rows outside the pattern above: the traps of a real sheet. Prefix, description, price, connect fee, terms.
SPECIAL_ROWS = (
    ("1800", "USA - Toll free", "0", "", "1/1"),
    ("1808", "USA - Hawaii", "0.0120", "", "6/6"),
    ("1809", "Dominican Republic", "0.1200", "", "60/60"),
    ("1876", "Jamaica", "0.2000", "", "60/60"),
    ("882", "International networks", "1.2000", "0.1000", "60/60"),
    ("8816", "Satellite - Iridium", "6.5000", "0.5000", "60/60"),
)
SPECIAL_SHARE = 0.005  # of calls, to the special rows
MOBILE_SHARE = 0.5  # of calls to a country with mobile ranges
AREA_PRICE_PERCENT = (80, 101)  # an area code is priced at this share of its country's fixed price
NANP_NUMBER_DIGITS = 11
NUMBER_DIGITS = (11, 12)


@dataclass(frozen=True)
class Country:
    code: str
    weight: float
    mobile: tuple[str, ...]  # full prefixes
    fixed: tuple[str, ...]  # full prefixes, the country's own code first


@dataclass(frozen=True)
class Sheet:
    csv: str
    rows: int
    countries: tuple[Country, ...]
    special: tuple[str, ...]


def make_sheet(seed: int = SEED) -> Sheet:
    """The provider's rate sheet, in Tollway's native layout, and what the calls dial."""
    chooser = random.Random(seed)
    lines = ["prefix,description,price,connect_fee,minimal_time,resolution"]
    countries = []
    for record in COUNTRIES.strip().splitlines():
        code, name, fixed, mobile, terms, weight, mobiles, areas = record.split("|")
        minimal_time, resolution = terms.split("/")
        lines.append(f"{code},{name},{fixed},,{minimal_time},{resolution}")
        mobile_prefixes = tuple(code + rest for rest in mobiles.split())
        area_prefixes = tuple(code + rest for rest in areas.split())
        for prefix in mobile_prefixes:
            lines.append(f"{prefix},{name} - Mobile,{mobile},,{minimal_time},{resolution}")
        for prefix in area_prefixes:
            area_price = Decimal(fixed) * chooser.randrange(*AREA_PRICE_PERCENT) / 100
            lines.append(f"{prefix},{name} - Area {prefix[len(code) :]},{area_price:.4f},,{minimal_time},{resolution}")
        countries.append(Country(code, float(weight), mobile_prefixes, (code, *area_prefixes)))
    for prefix, description, price, fee, terms in SPECIAL_ROWS:
        minimal_time, resolution = terms.split("/")
        lines.append(f"{prefix},{description},{price},{fee},{minimal_time},{resolution}")
    return Sheet("\n".join(lines) + "\n", len(lines) - 1, tuple(countries), tuple(row[0] for row in SPECIAL_ROWS))


@dataclass
class Traffic:
    """Who calls, where, and for how long: random, from a seed per link."""

    clients: Sequence[str]
    sheet: Sheet
    chooser: random.Random
    cumulative_weights: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        total = 0.0
        for country in self.sheet.countries:
            total += country.weight
            self.cumulative_weights.append(total)

    def client(self) -> str:
        return self.chooser.choice(self.clients)

    def callee(self) -> str:
        chooser = self.chooser
        if chooser.random() < SPECIAL_SHARE:
            prefix = chooser.choice(self.sheet.special)
        else:
            country = chooser.choices(self.sheet.countries, cum_weights=self.cumulative_weights)[0]
            mobile = country.mobile and chooser.random() < MOBILE_SHARE
            prefix = chooser.choice(country.mobile if mobile else country.fixed)
        digits = NANP_NUMBER_DIGITS if prefix.startswith("1") else chooser.randint(*NUMBER_DIGITS)
        extra = max(digits - len(prefix), 4)
        return prefix + str(chooser.randrange(10**extra)).zfill(extra)

    def caller(self) -> str:
        return "1" + str(self.chooser.randrange(2_000_000_000, 9_999_999_999))

    def duration_seconds(self) -> int:
        return max(1, round(self.chooser.expovariate(1 / DURATION_MEAN_SECONDS)))


# --- the tree: resellers and tariffs through the services, clients in batches ----------------------


@dataclass(frozen=True)
class World:
    clients: list[str]
    warm_clients: list[str]  # a funded client of each L1, for the warm-up
    funded: int
    biggest_l1: int  # clients under the L1 with the most
    api_key: str
    sheet: Sheet
    seconds: float


def reseller_plan() -> list[tuple[str, str, int]]:
    """(login, owner, level) of every reseller, owners first; L2s and L1s spread round-robin."""
    l3 = [f"bench-l3-{n}" for n in range(L3_COUNT)]
    l2 = [f"bench-l2-{n:02d}" for n in range(L2_COUNT)]
    l1 = [f"bench-l1-{n:02d}" for n in range(L1_COUNT)]
    plan = [(login, PROVIDER_LOGIN, 3) for login in l3]
    plan += [(login, l3[n % L3_COUNT], 2) for n, login in enumerate(l2)]
    plan += [(login, l2[n % L2_COUNT], 1) for n, login in enumerate(l1)]
    return plan


def client_plan(count: int, l1_logins: Sequence[str], seed: int = SEED) -> list[tuple[str, str, bool]]:
    """(login, owner, funded) of every client: a few big L1s, many small ones, 2 % of clients at zero."""
    chooser = random.Random(seed)
    weights = [1 / (rank + 1) ** CLIENT_SPREAD_EXPONENT for rank in range(len(l1_logins))]
    owners = chooser.choices(l1_logins, weights, k=count)
    return [(f"bench-c-{n:05d}", owner, chooser.random() >= ZERO_BALANCE_SHARE) for n, owner in enumerate(owners)]


def create_resellers_and_tariffs(database: Database, sheet: Sheet, progress: Progress) -> dict[str, Tariff]:
    """The provider, the resellers topped up, and a tariff on every level; answers each L1's retail tariff."""
    plan = reseller_plan()
    task = progress.add_task("resellers and tariffs", total=len(plan) + 1)
    tree.create_provider(database, login=PROVIDER_LOGIN, name="Bench House", currency="USD")
    base = rating.create_tariff(database, owner_login=PROVIDER_LOGIN, name="wholesale")
    rating.import_sheet(database, name=base.name, stream=io.BytesIO(sheet.csv.encode()), layout=Layout.NATIVE)
    progress.advance(task)
    chooser = random.Random(SEED)
    tariff_of = {PROVIDER_LOGIN: base.name}  # the tariff each node sells to its children
    retail: dict[str, Tariff] = {}
    for login, owner, level in plan:
        position = tree_model.reseller(level)
        tree.create_node(database, owner_login=owner, new=tree.NewNode(position=position, login=login, name=login))
        amount = to_micros(TOPUP_BY_LEVEL[level])
        balances.topup(database, login=login, amount_micros=amount, transfer_id=f"bench-topup-{login}")
        rating.assign_tariff(database, login=login, tariff=tariff_of[owner])
        # Each level marks up what it pays; retail also adds a little a minute, as resellers do.
        percent = chooser.randrange(125, 151) if level == 1 else chooser.randrange(105, 116)
        addition = to_micros("0.002") if level == 1 else 0
        own = rating.create_tariff(
            database,
            owner_login=login,
            name="retail" if level == 1 else "standard",
            base_name=tariff_of[owner],
            derivation=Derivation(Decimal(percent) / 100, addition),
        )
        tariff_of[login] = own.name
        if level == 1:
            retail[login] = own
        progress.advance(task)
    progress.remove_task(task)
    return retail


def create_client_batch(
    connection: Connection, batch: Sequence[tuple[str, str, bool]], tariff_ids: dict[str, int]
) -> None:
    """One transaction: the clients through ``create_node_in``, their tariff, and their top-ups as one batch."""
    now = utc_now()
    position = tree_model.client(tree_model.ClientType.RETAIL)
    issuance: dict[str, int] = {}
    topups: list[TransferRequest] = []
    for login, owner_login, funded in batch:
        new = tree.NewNode(position=position, login=login, name=login)
        node = tree.create_node_in(connection, owner_login=owner_login, new=new, now=now)
        rating_store.assign(connection, node_id=node.id, tariff_id=tariff_ids[owner_login], now=now)
        if not funded:
            continue
        if owner_login not in issuance:
            owner = tree.require_node(connection, owner_login)
            issuance[owner_login] = balances.account_id(connection, owner, AccountPurpose.ISSUANCE, "USD")
        wallet = balances.account_id(connection, node, AccountPurpose.WALLET)
        topups.append(_client_topup(login, issuance[owner_login], wallet))
    for start in range(0, len(topups), BATCH_TRANSFERS_MAX):
        ledger_store.execute(connection, topups[start : start + BATCH_TRANSFERS_MAX], now=now)


def _client_topup(login: str, issuance_account_id: int, wallet_account_id: int) -> TransferRequest:
    return TransferRequest(
        id=f"bench-topup-{login}",
        amount_micros=to_micros(CLIENT_TOPUP),
        debit_account_id=issuance_account_id,
        credit_account_id=wallet_account_id,
        kind=TransferKind.TOPUP,
        reference="bench opening balance",
    )


def client_worker(url: str, batches: list[list[tuple[str, str, bool]]], tariff_ids: dict[str, int], done: Any) -> None:
    """A process that creates its batches of clients, saying after each how many it made (or what failed)."""
    database = Database(url, pool_size=1)
    try:
        for batch in batches:
            database.run(functools.partial(create_client_batch, batch=batch, tariff_ids=tariff_ids))
            done.put(len(batch))
    except Exception as error:
        done.put(f"{error.__class__.__name__}: {error}".splitlines()[0])
    finally:
        database.dispose()


def create_clients(url: str, plan: list[tuple[str, str, bool]], tariff_ids: dict[str, int], progress: Progress) -> None:
    """Clients in batches of one owner's, in processes that share no owner: no lock waits between them."""
    by_owner: dict[str, list[tuple[str, str, bool]]] = {}
    for row in plan:
        by_owner.setdefault(row[1], []).append(row)
    shares: list[list[list[tuple[str, str, bool]]]] = [[] for _ in range(SETUP_PROCESSES)]
    loads = [0] * SETUP_PROCESSES
    for rows in sorted(by_owner.values(), key=len, reverse=True):  # biggest owners first, to the lightest share
        lightest = loads.index(min(loads))
        shares[lightest] += [rows[n : n + CLIENT_BATCH] for n in range(0, len(rows), CLIENT_BATCH)]
        loads[lightest] += len(rows)
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    processes = [
        context.Process(target=client_worker, args=(url, share, tariff_ids, done), daemon=True) for share in shares
    ]
    task = progress.add_task("clients (create_node_in, tariff, top-up)", total=len(plan))
    for process in processes:
        process.start()
    created, deadline = 0, time.monotonic() + SETUP_SECONDS_MAX
    try:
        while created < len(plan):
            if time.monotonic() > deadline:
                raise RuntimeError(f"creating the clients took over {SETUP_SECONDS_MAX:.0f} s")
            try:
                message = done.get(timeout=0.5)
            except queue.Empty:
                if not any(process.is_alive() for process in processes):
                    raise RuntimeError("the client processes stopped before making every client") from None
                continue
            if isinstance(message, str):
                raise RuntimeError(f"creating clients failed: {message}")
            created += message
            progress.update(task, completed=created)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        progress.remove_task(task)


# Columns a cloned client gets of its own; every other column is copied from the template, so a column
# added to the schema later is copied too, with the value the services gave the template.
OWN_NODE_COLUMNS = frozenset({"id", "parent_id", "path", "login", "name", "created_at", "updated_at"})
OWN_ACCOUNT_COLUMNS = frozenset(
    {"id", "node_id", "created_at", "debits_posted", "credits_posted", "debits_pending", "credits_pending"}
)
CLONE_BATCH = 1_000  # clients per transaction when cloning


def create_template_client(database: Database, row: tuple[str, str, bool], retail: dict[str, Tariff]) -> int:
    """The first client, made by the services alone (node, tariff, top-up): every other one is its clone."""
    login, owner, funded = row
    position = tree_model.client(tree_model.ClientType.RETAIL)
    node = tree.create_node(database, owner_login=owner, new=tree.NewNode(position=position, login=login, name=login))
    rating.assign_tariff(database, login=login, tariff=retail[owner].name)
    if funded:
        balances.topup(database, login=login, amount_micros=to_micros(CLIENT_TOPUP), transfer_id=f"bench-topup-{login}")
    return node.id


def clone_client_batch(
    connection: Connection, template_id: int, batch: Sequence[tuple[str, str, bool]], tariff_ids: dict[str, int]
) -> None:
    """One transaction: clients as ``create_node_in`` makes them (the template's rows, a few set-based
    statements instead of ten round trips a client), their tariffs, and their top-ups through the ledger."""
    now = utc_now()
    logins = [login for login, _, _ in batch]
    copied = [column.name for column in schema.nodes.c if column.name not in OWN_NODE_COLUMNS]
    connection.execute(
        text(
            f"INSERT INTO nodes (parent_id, path, login, name, created_at, updated_at, {', '.join(copied)}) "
            f"SELECT owner.id, '/new/' || v.login || '/', v.login, v.login, :now, :now, "
            f"{', '.join('t.' + name for name in copied)} "
            "FROM unnest(CAST(:logins AS text[]), CAST(:owners AS text[])) AS v(login, owner_login) "
            "JOIN nodes owner ON owner.login = v.owner_login JOIN nodes t ON t.id = :template"
        ),
        {"logins": logins, "owners": [owner for _, owner, _ in batch], "template": template_id, "now": now},
    )
    connection.execute(  # the path holds the node's own id, known only now (as in tree.store.insert_node)
        text(
            "UPDATE nodes n SET path = owner.path || n.id || '/' FROM nodes owner "
            "WHERE owner.id = n.parent_id AND n.login = ANY(CAST(:logins AS text[]))"
        ),
        {"logins": logins},
    )
    copied = [column.name for column in schema.ledger_accounts.c if column.name not in OWN_ACCOUNT_COLUMNS]
    connection.execute(
        text(
            "INSERT INTO ledger_accounts (node_id, created_at, debits_posted, credits_posted, debits_pending, "
            f"credits_pending, {', '.join(copied)}) SELECT n.id, :now, 0, 0, 0, 0, "
            f"{', '.join('a.' + name for name in copied)} "
            "FROM nodes n JOIN ledger_accounts a ON a.node_id = :template WHERE n.login = ANY(CAST(:logins AS text[]))"
        ),
        {"logins": logins, "template": template_id, "now": now},
    )
    connection.execute(
        text(
            "INSERT INTO tariff_assignments (node_id, tariff_id, assigned_at) SELECT n.id, v.tariff_id, :now "
            "FROM unnest(CAST(:logins AS text[]), CAST(:tariffs AS integer[])) AS v(login, tariff_id) "
            "JOIN nodes n ON n.login = v.login"
        ),
        {"logins": logins, "tariffs": [tariff_ids[owner] for _, owner, _ in batch], "now": now},
    )
    _top_up_clients(connection, [row for row in batch if row[2]], now)


def _top_up_clients(connection: Connection, funded: Sequence[tuple[str, str, bool]], now: datetime) -> None:
    rows = connection.execute(
        text(
            "SELECT n.login, a.id FROM nodes n JOIN ledger_accounts a ON a.node_id = n.id "
            "AND a.purpose = :purpose AND a.currency = n.currency WHERE n.login = ANY(CAST(:logins AS text[]))"
        ),
        {"logins": [login for login, _, _ in funded], "purpose": str(AccountPurpose.WALLET)},
    )
    wallets = {str(login): int(account_id) for login, account_id in rows}
    issuance: dict[str, int] = {}
    topups = []
    for login, owner_login, _ in funded:
        if owner_login not in issuance:
            owner = tree.require_node(connection, owner_login)
            issuance[owner_login] = balances.account_id(connection, owner, AccountPurpose.ISSUANCE, "USD")
        topups.append(_client_topup(login, issuance[owner_login], wallets[login]))
    for start in range(0, len(topups), BATCH_TRANSFERS_MAX):
        ledger_store.execute(connection, topups[start : start + BATCH_TRANSFERS_MAX], now=now)


def check_clones(database: Database, template_login: str, clone_login: str) -> None:
    """A clone must read back exactly as the template, but for what is its own."""
    with database.reading() as connection:
        template, clone = tree.require_node(connection, template_login), tree.require_node(connection, clone_login)
        owners = tree_store.chain(connection, clone)[1:]
        wallet = balances.balance_of(connection, clone)
    same = (template.position, template.currency, template.status, template.grants, template.time_zone)
    problems = []
    if same != (clone.position, clone.currency, clone.status, clone.grants, clone.time_zone):
        problems.append("differs from the template")
    if not clone.path.endswith(f"/{clone.id}/") or not owners or clone.path != f"{owners[0].path}{clone.id}/":
        problems.append(f"has the path {clone.path!r}")
    if wallet.unlimited or wallet.credit_limit_micros != 0:
        problems.append("has a wallet unlike a client's")
    if problems:
        raise RuntimeError(f"cloned client {clone_login} " + ", ".join(problems))


def clone_clients(
    database: Database, plan: list[tuple[str, str, bool]], retail: dict[str, Tariff], progress: Progress
) -> None:
    template_id = create_template_client(database, plan[0], retail)
    tariff_ids = {login: tariff.id for login, tariff in retail.items()}
    task = progress.add_task("clients (cloned from one the services made)", total=len(plan))
    progress.advance(task)
    rest = plan[1:]
    for start in range(0, len(rest), CLONE_BATCH):
        batch = rest[start : start + CLONE_BATCH]
        database.run(functools.partial(clone_client_batch, template_id=template_id, batch=batch, tariff_ids=tariff_ids))
        progress.advance(task, len(batch))
    progress.remove_task(task)
    if rest:
        check_clones(database, plan[0][0], rest[-1][0])


def build_world(url: str, database: Database, client_count: int, setup_path: str, progress: Progress) -> World:
    began = time.monotonic()
    sheet = make_sheet()
    retail = create_resellers_and_tariffs(database, sheet, progress)
    plan = client_plan(client_count, sorted(retail))
    if setup_path == "services":
        create_clients(url, plan, {login: tariff.id for login, tariff in retail.items()}, progress)
    else:
        clone_clients(database, plan, retail, progress)
    _, api_key = access.create_api_key(
        database, None, node_login=PROVIDER_LOGIN, name="bench switch", role=Role.PROVIDER_ADMIN,
        actions=[Action.CALLS_CONTROL],
    )  # fmt: skip
    seconds = time.monotonic() - began
    sizes = Counter(owner for _, owner, _ in plan)
    funded = sum(funded for _, _, funded in plan)
    console.print(
        f"tree: 1 provider, {L3_COUNT} L3, {L2_COUNT} L2, {L1_COUNT} L1, {len(plan):,} clients "
        f"({len(plan) - funded} at zero; {max(sizes.values())} under the biggest L1, {min(sizes.values())} "
        f"under the smallest); {1 + L3_COUNT + L2_COUNT + L1_COUNT} tariffs, the base one of {sheet.rows} rows; "
        f"built in {seconds:.1f} s"
    )
    warm: dict[str, str] = {}
    for login, owner, funded_client in plan:
        if funded_client:
            warm.setdefault(owner, login)
    clients = [login for login, _, _ in plan]
    return World(clients, list(warm.values()), funded, max(sizes.values()), api_key, sheet, seconds)


# --- the server -------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


@dataclass
class Server:
    """``tollway serve --workers N`` on a free port, in its own process group, its output in a file."""

    url: str  # the database's
    workers: int
    environment: dict[str, str]
    log_level: str
    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        self.log_path = self.directory / f"serve-{self.workers}-{self.port}.log"
        executable = Path(sys.executable).with_name("tollway")
        command = [str(executable)] if executable.exists() else [sys.executable, "-m", "tollway.cli.main"]
        command += ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        environment = os.environ | self.environment
        environment |= {"TOLLWAY_DATABASE_URL": self.url, "TOLLWAY_LOG_LEVEL": self.log_level}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                start_new_session=True,
            )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until /ready answers and every worker process is up (each one serves from its own pool)."""
        deadline = time.monotonic() + SERVER_START_SECONDS_MAX
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"tollway serve exited: {self.log_tail()}")
            with suppress(OSError):
                status, _ = http_get(self.base + "/ready", timeout=2)
                # With one worker uvicorn serves in its own process; with more, in that many children.
                if status == 200 and (self.workers == 1 or len(self.worker_pids()) >= self.workers):
                    return
            time.sleep(0.25)
        raise RuntimeError(f"tollway serve was not ready after {SERVER_START_SECONDS_MAX:.0f} s: {self.log_tail()}")

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []

    def pids(self) -> list[int]:
        return [self.process.pid, *self.worker_pids()] if self.process else []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # the group we started: the server and its workers
        try:
            self.process.wait(timeout=SERVER_STOP_SECONDS_MAX)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


def calls_api_present(server: Server) -> bool:
    status, body = http_get(server.base + "/api/openapi.json", timeout=10)
    return status == 200 and AUTHORIZE_PATH in json.loads(body).get("paths", {})


# --- CPU: who used the cores -------------------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()  # after the command, which may hold spaces
    except OSError:
        return None


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def cpu_of(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds (user + system) each process has used so far."""
    seconds = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every core together."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def backend_pids(database: Database) -> list[int]:
    """The PostgreSQL backends serving the bench database (the pools of the server's workers)."""
    query = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with database.reading() as connection:
        return [int(pid) for pid in connection.execute(query).scalars()]


@dataclass
class CpuSnapshot:
    generator: float
    server: dict[int, float]
    database: dict[int, float]
    machine_busy: float
    machine_total: float


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds used during a run, by whom."""

    generator: float
    server: float
    database: float
    machine_busy: float
    machine_total: float

    @property
    def other(self) -> float:
        return max(0.0, self.machine_busy - self.generator - self.server - self.database)


def cpu_snapshot(server: Server, database: Database) -> CpuSnapshot:
    busy, total = machine_cpu()
    return CpuSnapshot(time.process_time(), cpu_of(server.pids()), cpu_of(backend_pids(database)), busy, total)


def cpu_use(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    def grown(start: dict[int, float], end: dict[int, float]) -> float:
        return sum(seconds - start.get(pid, 0.0) for pid, seconds in end.items())

    return CpuUse(
        after.generator - before.generator,
        grown(before.server, after.server),
        grown(before.database, after.database),
        after.machine_busy - before.machine_busy,
        after.machine_total - before.machine_total,
    )


# --- the switch: a minimal HTTP/1.1 client -----------------------------------------------------------


class HttpError(Exception):
    pass


class SwitchLink:
    """One keep-alive connection to the engine, one request at a time, as one link of a switch.

    A hand-written client on asyncio streams: a request costs a few tens of microseconds of CPU here,
    several times less than a general-purpose client, and the generator shares the cores with what it
    measures. It speaks just what the server does: Content-Length or chunked bodies, JSON.
    """

    def __init__(self, host: str, port: int, api_key: str) -> None:
        self.host, self.port = host, port
        self.headers = f"Host: {host}:{port}\r\nAuthorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def request(self, method: str, path: str, payload: object | None = None) -> tuple[int, Any]:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        message = f"{method} {path} HTTP/1.1\r\n{self.headers}Content-Length: {len(body)}\r\n\r\n".encode() + body
        async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
            fresh = self.writer is None
            if fresh:
                await self._connect()
            try:
                return await self._exchange(message)
            except (ConnectionError, asyncio.IncompleteReadError):
                if fresh:
                    raise
                # The server closed a kept-alive connection: once more on a new one (every call
                # request repeats safely, the call id is its idempotency key).
                await self.close()
                await self._connect()
                self.reconnects += 1
                return await self._exchange(message)

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def _exchange(self, message: bytes) -> tuple[int, Any]:
        reader, writer = self.reader, self.writer
        if reader is None or writer is None:
            raise ConnectionError("not connected")
        writer.write(message)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {head[0]!r}")
        length, chunked, closing = 0, False, False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                closing = value == "close"
        body = await self._chunks(reader) if chunked else await reader.readexactly(length)
        if closing:
            await self.close()
        try:
            return int(parts[1]), json.loads(body) if body else None
        except ValueError:
            return int(parts[1]), body.decode(errors="replace")

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += await reader.readexactly(size + 2)  # the chunk and its CRLF; the last one is CRLF alone
            del body[-2:]
            if size == 0:
                return bytes(body)

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()


# --- phase 1: call setups, authorize then end, as fast as the server answers -------------------------


@dataclass
class Tally:
    """What one link saw."""

    authorize_seconds: array[float] = field(default_factory=lambda: array("d"))
    end_seconds: array[float] = field(default_factory=lambda: array("d"))
    setups: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # the first errors, in full
    charges: Counter[int] = field(default_factory=Counter)  # charge lines per ended call
    overshoots: int = 0  # calls that lasted longer than their grant: charged beyond what was reserved

    def error(self, kind: str, detail: object = "") -> None:
        self.errors[kind] += 1
        if len(self.samples) < 3:
            self.samples.append(f"{kind}: {str(detail)[:300]}")


def call_request(traffic: Traffic, call_id: str) -> dict[str, object]:
    return {
        "call_id": call_id,
        "account": traffic.client(),
        "caller": traffic.caller(),
        "callee": traffic.callee(),
        "answered": True,
    }


async def authorize(link: SwitchLink, traffic: Traffic, call_id: str, tally: Tally) -> int | None:
    """Authorize an answered call; answer its maximum seconds, or None if it was refused or failed."""
    began = time.perf_counter()
    status, answer = await link.request("POST", AUTHORIZE_PATH, call_request(traffic, call_id))
    tally.authorize_seconds.append(time.perf_counter() - began)
    if status != 200 or not isinstance(answer, dict):
        tally.error(f"authorize HTTP {status}", answer)
        return None
    if answer.get("status") == "refused":
        tally.refusals[str(answer.get("reason"))] += 1
        return None
    if answer.get("status") != "authorized" or not isinstance(answer.get("max_seconds"), int):
        tally.error("authorize answer unexpected", answer)
        return None
    return int(answer["max_seconds"])


async def end(link: SwitchLink, call_id: str, duration_seconds: int, tally: Tally) -> bool:
    began = time.perf_counter()
    payload = {"duration_seconds": duration_seconds, "reason": "normal"}
    status, record = await link.request("POST", f"{API}/{call_id}/end", payload)
    tally.end_seconds.append(time.perf_counter() - began)
    if status != 200 or not isinstance(record, dict):
        tally.error(f"end HTTP {status}", record)
        return False
    tally.charges[len(record.get("charges") or ())] += 1
    tally.overshoots += int(record.get("overshoot_seconds") or 0) > 0
    return True


async def setup_loop(link: SwitchLink, traffic: Traffic, tag: str, deadline: float, tally: Tally) -> None:
    """Call after call until the deadline: authorize (answered), then end with the drawn duration."""
    number = 0
    while time.monotonic() < deadline and len(tally.authorize_seconds) < LATENCIES_PER_RUN_MAX:
        number += 1
        call_id = f"{tag}.{number}"
        try:
            max_seconds = await authorize(link, traffic, call_id, tally)
            if max_seconds is not None:
                ended = await end(link, call_id, min(traffic.duration_seconds(), max_seconds), tally)
                tally.setups += ended
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError) as error:
            tally.error(error.__class__.__name__, error)
            await link.close()
        if tally.errors.total() >= ERRORS_PER_LINK_MAX:
            return


@dataclass(frozen=True)
class SetupResult:
    workers: int
    concurrency: int
    seconds: float
    tally: Tally  # every link's, merged
    cpu: CpuUse
    reconnects: int

    @property
    def per_second(self) -> float:
        return self.tally.setups / self.seconds if self.seconds > 0 else 0.0

    def cpu_milliseconds_per_setup(self, seconds: float) -> float:
        return seconds * 1000 / self.tally.setups if self.tally.setups else 0.0


def merge(tallies: Sequence[Tally]) -> Tally:
    merged = Tally()
    for tally in tallies:
        merged.authorize_seconds.extend(tally.authorize_seconds)
        merged.end_seconds.extend(tally.end_seconds)
        merged.setups += tally.setups
        merged.refusals.update(tally.refusals)
        merged.errors.update(tally.errors)
        merged.samples += tally.samples[: max(0, 5 - len(merged.samples))]
        merged.charges.update(tally.charges)
        merged.overshoots += tally.overshoots
    return merged


def percentile_milliseconds(values: Sequence[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1] * 1000


async def ticking(progress: Progress, task: Any, total: float) -> None:
    """Move a time bar along while the loops run (cheap: twice a second)."""
    began = time.monotonic()
    while True:
        progress.update(task, completed=min(total, time.monotonic() - began))
        await asyncio.sleep(0.5)


async def drive_setups(
    server: Server, database: Database, world: World, options: argparse.Namespace, progress: Progress
) -> SetupResult:
    concurrency, seconds = options.concurrency, options.seconds
    links = [SwitchLink("127.0.0.1", server.port, world.api_key) for _ in range(concurrency)]
    traffics = [Traffic(world.clients, world.sheet, random.Random(f"{SEED}-{n}")) for n in range(concurrency)]
    tag = f"s{uuid.uuid4().hex[:6]}.w{server.workers}"
    task = progress.add_task(f"setups, {server.workers} workers: warming up", total=seconds)
    # The same calls, from one client of each L1 in turn: tariffs load on first use, once per worker.
    warmers = [Traffic(world.warm_clients, world.sheet, random.Random(f"{SEED}-warm-{n}")) for n in range(concurrency)]
    warmups = [Tally() for _ in links]
    warm_deadline = time.monotonic() + options.warmup_seconds
    await asyncio.gather(
        *(setup_loop(link, traffic, f"{tag}.warm{n}", warm_deadline, tally)
          for n, (link, traffic, tally) in enumerate(zip(links, warmers, warmups, strict=True)))
    )  # fmt: skip
    warm = merge(warmups)
    if warm.errors:
        console.print(f"[yellow]warm-up errors: {dict(warm.errors)}; first: {warm.samples[:1]}")
    progress.update(task, description=f"setups, {server.workers} workers, {concurrency} links")
    before = cpu_snapshot(server, database)
    began = time.monotonic()
    ticker = asyncio.create_task(ticking(progress, task, seconds))
    tallies = [Tally() for _ in links]
    await asyncio.gather(
        *(setup_loop(link, traffic, f"{tag}.{n}", began + seconds, tally)
          for n, (link, traffic, tally) in enumerate(zip(links, traffics, tallies, strict=True)))
    )  # fmt: skip
    elapsed = time.monotonic() - began
    ticker.cancel()
    after = cpu_snapshot(server, database)
    for link in links:
        await link.close()
    progress.remove_task(task)
    return SetupResult(
        server.workers, concurrency, elapsed, merge(tallies), cpu_use(before, after), sum(x.reconnects for x in links)
    )


# --- phase 2: calls held while the engine keeps extending their grants ------------------------------


ACTIVE = "state IN ('authorized', 'answered')"
HELD_QUERY = text(
    f"""
    SELECT count(*) FILTER (WHERE {ACTIVE}) AS active,
           count(*) FILTER (WHERE {ACTIVE} AND grant_expires_at < now()) AS overdue,
           coalesce(extract(epoch FROM max(now() - grant_expires_at) FILTER (WHERE {ACTIVE})), 0) AS late_seconds,
           coalesce(sum(extensions), 0) AS extensions,
           count(*) FILTER (WHERE state = 'ended') AS ended,
           count(*) FILTER (WHERE end_reason = 'stale') AS stale,
           count(*) FILTER (WHERE disconnect_state IS NOT NULL) AS disconnects
    FROM calls WHERE call_id LIKE :pattern
    """
)


@dataclass(frozen=True)
class HeldSample:
    at: float  # monotonic
    active: int
    overdue: int  # active calls whose grant has run out: the keeper is behind
    late_seconds: float  # how far behind, at worst
    extensions: int  # made so far, over every held call
    ended: int  # ended by the engine before the switch ended them
    stale: int  # of those, swept as stale: their grant ran out longer than the margin ago
    disconnects: int  # calls the engine wants ended (a level ran dry, or was suspended)


def held_sample(database: Database, tag: str) -> HeldSample:
    with database.reading() as connection:
        row = connection.execute(HELD_QUERY, {"pattern": f"{tag}.%"}).one()
    late = max(0.0, float(row.late_seconds))
    return HeldSample(
        time.monotonic(), row.active, row.overdue, late, int(row.extensions), row.ended, row.stale, row.disconnects
    )


@dataclass
class HeldResult:
    workers: int
    requested: int
    grant_seconds: int
    authorized: int = 0
    authorize_seconds: float = 0.0
    tally: Tally = field(default_factory=Tally)
    samples: list[HeldSample] = field(default_factory=list)
    hold_cpu: CpuUse | None = None
    listed: int = 0  # active calls counted by paging the API
    list_seconds: float = 0.0
    list_error: str = ""
    ended: int = 0
    end_seconds: float = 0.0
    active_after: int = -1
    reserved_after_micros: int = -1

    @property
    def hold_seconds(self) -> float:
        return self.samples[-1].at - self.samples[0].at if len(self.samples) > 1 else 0.0

    @property
    def extensions_per_second(self) -> float:
        grown = self.samples[-1].extensions - self.samples[0].extensions if self.samples else 0
        return grown / self.hold_seconds if self.hold_seconds else 0.0

    @property
    def overdue_max(self) -> int:
        return max((s.overdue for s in self.samples), default=0)

    @property
    def late_seconds_max(self) -> float:
        return max((s.late_seconds for s in self.samples), default=0.0)

    @property
    def ended_by_engine(self) -> int:
        return self.samples[-1].ended if self.samples else 0

    @property
    def swept_stale(self) -> int:
        return self.samples[-1].stale if self.samples else 0

    @property
    def extend_lead_seconds(self) -> int:
        """As ``tollway.http.main.call_settings`` makes it: the default lead, at most half a grant."""
        return min(EXTEND_LEAD_SECONDS_DEFAULT, self.grant_seconds // 2)

    @property
    def ok(self) -> bool:
        return self.active_after == 0 and self.reserved_after_micros == 0


async def authorize_many(
    links: Sequence[SwitchLink], world: World, tag: str, count: int, deadline: float, tally: Tally, progress: Progress
) -> dict[str, float]:
    """Authorize ``count`` answered calls over every link (or as many as the deadline lets); answer when each began."""
    held: dict[str, float] = {}
    numbers = iter(range(count))
    task = progress.add_task(f"held calls: authorizing {count:,}", total=count)

    async def loop(link: SwitchLink, traffic: Traffic) -> None:
        for number in numbers:  # shared: each link takes the next number
            if time.monotonic() > deadline:
                return
            call_id = f"{tag}.{number}"
            try:
                if await authorize(link, traffic, call_id, tally) is not None:
                    held[call_id] = time.monotonic()
            except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError) as error:
                tally.error(error.__class__.__name__, error)
                await link.close()
            progress.advance(task)
            if tally.errors.total() >= ERRORS_PER_LINK_MAX * len(links):
                return

    traffics = [Traffic(world.clients, world.sheet, random.Random(f"{SEED}-held-{n}")) for n in range(len(links))]
    await asyncio.gather(*(loop(link, traffic) for link, traffic in zip(links, traffics, strict=True)))
    progress.remove_task(task)
    return held


async def hold(database: Database, tag: str, seconds: float, result: HeldResult, progress: Progress) -> None:
    task = progress.add_task(f"held calls: holding {result.authorized:,}", total=seconds)
    began = time.monotonic()
    while True:
        sample = await asyncio.to_thread(held_sample, database, tag)
        result.samples.append(sample)
        elapsed = time.monotonic() - began
        progress.update(
            task,
            completed=min(seconds, elapsed),
            description=f"held calls: {sample.active:,} active, {sample.extensions:,} extensions, "
            f"{sample.overdue} overdue",
        )
        if elapsed >= seconds:
            break
        await asyncio.sleep(min(SAMPLE_SECONDS, seconds - elapsed))
    progress.remove_task(task)


async def count_listed(link: SwitchLink, result: HeldResult) -> None:
    """Page through GET /api/v1/calls?active=true, as a switch would after a restart."""
    began, after_id, listed = time.perf_counter(), 0, 0
    for _ in range(PAGES_MAX):
        status, page = await link.request("GET", f"{API}?active=true&limit={PAGE_LIMIT}&after_id={after_id}")
        if status != 200 or not isinstance(page, dict):
            result.list_error = f"HTTP {status}: {str(page)[:200]}"
            return
        items = page.get("items") or []
        listed += len(items)
        following = page.get("next_after_id")
        if not items or following is None:
            break
        after_id = int(following)
    result.listed, result.list_seconds = listed, time.perf_counter() - began


async def end_many(
    links: Sequence[SwitchLink], held: dict[str, float], deadline: float, tally: Tally, progress: Progress
) -> int:
    """End every held call with the time it has really lasted (those left at the deadline, the sweeper will)."""
    pending = iter(list(held.items()))
    task = progress.add_task(f"held calls: ending {len(held):,}", total=len(held))
    ended = 0

    async def loop(link: SwitchLink) -> None:
        nonlocal ended
        for call_id, began in pending:
            if time.monotonic() > deadline:
                return
            try:
                done = await end(link, call_id, max(1, int(time.monotonic() - began)), tally)
                ended += done  # after the await: ``ended += await ...`` would read it before, and lose counts
            except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError) as error:
                tally.error(error.__class__.__name__, error)
                await link.close()
            progress.advance(task)

    await asyncio.gather(*(loop(link) for link in links))
    progress.remove_task(task)
    return ended


def leftovers(database: Database, tag: str) -> tuple[int, int]:
    """Held calls still active, and money still reserved on any wallet: both must be zero at the end."""
    with database.reading() as connection:
        active = connection.execute(
            text(f"SELECT count(*) FROM calls WHERE call_id LIKE :pattern AND {ACTIVE}"), {"pattern": f"{tag}.%"}
        ).scalar_one()
        reserved = connection.execute(text("SELECT coalesce(sum(debits_pending), 0) FROM ledger_accounts")).scalar_one()
    return int(active), int(reserved)


async def drive_held(
    server: Server, database: Database, world: World, options: argparse.Namespace, progress: Progress
) -> HeldResult:
    result = HeldResult(server.workers, options.held, options.grant_seconds)
    links = [SwitchLink("127.0.0.1", server.port, world.api_key) for _ in range(options.concurrency)]
    tag = f"h{uuid.uuid4().hex[:6]}"
    began = time.monotonic()
    deadline = began + options.held_step_seconds
    held = await authorize_many(links, world, tag, options.held, deadline, result.tally, progress)
    result.authorized, result.authorize_seconds = len(held), time.monotonic() - began
    before = await asyncio.to_thread(cpu_snapshot, server, database)
    await hold(database, tag, options.hold_seconds, result, progress)
    result.hold_cpu = cpu_use(before, await asyncio.to_thread(cpu_snapshot, server, database))
    await count_listed(links[0], result)
    began = time.monotonic()
    result.ended = await end_many(links, held, began + options.held_step_seconds, result.tally, progress)
    result.end_seconds = time.monotonic() - began
    for link in links:
        await link.close()
    result.active_after, result.reserved_after_micros = await asyncio.to_thread(leftovers, database, tag)
    return result


# --- the database, the yardstick -------------------------------------------------------------------


@dataclass(frozen=True)
class Yardstick:
    scale: int
    clients: int
    seconds: int
    tps: str
    latency_milliseconds: str


def run_pgbench(admin_url: str, scale: int, seconds: int) -> Yardstick | None:
    """pgbench's simple-update script (-N) in a scratch database: what this machine and server do in C."""
    binary = shutil.which("pgbench")
    if binary is None:
        console.print(
            "[yellow]pgbench not found on PATH: no yardstick this time "
            "(Debian has it in postgresql-contrib and postgresql-client)"
        )
        return None
    with bench_database(admin_url, "_pgbench", say=console.print) as url:
        plain_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with console.status(f"pgbench -i -s {scale}"):
            initialize = [binary, "-i", "-q", "-s", str(scale), plain_url]
            subprocess.run(initialize, check=True, capture_output=True, timeout=PGBENCH_TIMEOUT_SECONDS)
        command = [binary, "-N", "-c", str(PGBENCH_CLIENTS), "-j", str(PGBENCH_THREADS), "-T", str(seconds), plain_url]
        with console.status(f"pgbench -N -c {PGBENCH_CLIENTS} -j {PGBENCH_THREADS} -T {seconds}"):
            finished = subprocess.run(
                command, check=True, capture_output=True, text=True, timeout=PGBENCH_TIMEOUT_SECONDS
            )
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", finished.stdout)
    latency = re.search(r"latency average = ([0-9.]+) ms", finished.stdout)
    return Yardstick(
        scale,
        PGBENCH_CLIENTS,
        seconds,
        f"{float(tps.group(1)):,.0f}" if tps else "?",
        f"{float(latency.group(1)):.2f}" if latency else "?",
    )


# --- report ----------------------------------------------------------------------------------------


def milliseconds(values: Sequence[float]) -> str:
    return " / ".join(f"{percentile_milliseconds(values, p):.1f}" for p in (50, 95, 99))


def setup_rows(results: Sequence[SetupResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in results:
        cpu, per = r.cpu, r.cpu_milliseconds_per_setup
        rows.append(
            (
                str(r.workers), str(r.concurrency), f"{r.per_second:,.0f}", f"{r.tally.setups:,}",
                milliseconds(r.tally.authorize_seconds), milliseconds(r.tally.end_seconds),
                f"{r.tally.refusals.total():,}", f"{r.tally.errors.total():,}",
                f"{per(cpu.generator):.1f} / {per(cpu.server):.1f} / {per(cpu.database):.1f} / {per(cpu.other):.1f}",
                f"{100 * cpu.machine_busy / cpu.machine_total:.0f} %" if cpu.machine_total else "?",
            )
        )  # fmt: skip
    return rows


SETUP_COLUMNS = (
    "workers", "links", "setups/s", "setups", "authorize ms p50/p95/p99", "end ms p50/p95/p99", "refused",
    "errors", "CPU ms a setup: generator / tollway / postgres / other", "machine busy",
)  # fmt: skip
HELD_COLUMNS = (
    "workers", "grant s (lead s)", "authorized", "authorize calls/s", "active (db)", "listed by the API",
    "extensions/s", "overdue at worst", "late at worst s", "swept stale", "ended by the switch", "overshoots",
    "left active", "left reserved",
)  # fmt: skip


def held_row(h: HeldResult) -> tuple[str, ...]:
    active = h.samples[-1].active if h.samples else 0
    listed = h.list_error or f"{h.listed:,} in {h.list_seconds:.2f} s"
    return (
        str(h.workers), f"{h.grant_seconds} ({h.extend_lead_seconds})", f"{h.authorized:,} of {h.requested:,}",
        f"{h.authorized / h.authorize_seconds:,.0f}" if h.authorize_seconds else "?", f"{active:,}", listed,
        f"{h.extensions_per_second:,.1f}", f"{h.overdue_max:,}", f"{h.late_seconds_max:.1f}",
        f"{h.swept_stale:,}", f"{h.ended:,}", f"{h.tally.overshoots:,}", str(h.active_after),
        str(h.reserved_after_micros),
    )  # fmt: skip


def report(
    results: Sequence[SetupResult], held: HeldResult | None, yardstick: Yardstick | None, facts: dict[str, str]
) -> None:
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

    if results:
        emit("Call setups (authorize answered + end), HTTP API, PostgreSQL", SETUP_COLUMNS, setup_rows(results))
        for r in results:
            refusals = ", ".join(f"{reason} {count:,}" for reason, count in r.tally.refusals.most_common())
            charges = ", ".join(f"{size} lines: {count:,}" for size, count in sorted(r.tally.charges.items()))
            console.print(
                f"{r.workers} workers: refused {refusals or 'none'}; charge lines per call {charges or 'none'}; "
                f"{r.tally.overshoots} calls longer than their grant; reconnects {r.reconnects}"
            )
            for sample in r.tally.samples:
                console.print(f"[red]{r.workers} workers: {sample}", markup=True, highlight=False)
    if held is not None:
        emit("Calls held while the engine extends their grants", HELD_COLUMNS, [held_row(held)])
        refusals = ", ".join(f"{reason} {count:,}" for reason, count in held.tally.refusals.most_common())
        last = held.samples[-1] if held.samples else None
        console.print(
            f"held: refused {refusals or 'none'}; ended by the engine while held {held.ended_by_engine:,}; "
            f"disconnects scheduled {last.disconnects if last else 0:,}"
        )
        if held.hold_cpu is not None and held.hold_seconds:
            cpu, seconds = held.hold_cpu, held.hold_seconds
            console.print(
                f"while holding: tollway workers {cpu.server / seconds:.0%} of a core, postgres backends "
                f"{cpu.database / seconds:.0%}, generator {cpu.generator / seconds:.0%}, everything else "
                f"{cpu.other / seconds:.0%}"
            )
        for sample in held.tally.samples:
            console.print(f"[red]held: {sample}", markup=True, highlight=False)
    cores = len(os.sched_getaffinity(0))
    console.print(
        f"cores (nproc): {cores}; PostgreSQL {facts['version']}; "
        + ", ".join(f"{k}={v}" for k, v in facts.items() if k != "version")
    )
    if yardstick:
        lines.append(
            f"pgbench -N (scale {yardstick.scale}, -c {yardstick.clients} -j {PGBENCH_THREADS}, "
            f"{yardstick.seconds} s): {yardstick.tps} tps, latency average {yardstick.latency_milliseconds} ms"
        )
        console.print(lines[-1])
    console.print("\nMarkdown:\n")
    print("\n".join(lines))


def chart(
    results: Sequence[SetupResult], held: HeldResult | None, yardstick: Yardstick | None, path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    for index, result in enumerate(results):
        colour = colours[index % len(colours)]
        for values, style, request in ((result.tally.authorize_seconds, "-", "authorize"),
                                       (result.tally.end_seconds, ":", "end")):  # fmt: skip
            ordered = sorted(values)
            if not ordered:
                continue
            step = max(1, len(ordered) // 2_000)  # at most a few thousand points a curve
            points = [(ordered[n] * 1000, (n + 1) / len(ordered)) for n in range(0, len(ordered), step)]
            points.append((ordered[-1] * 1000, 1.0))
            xs, ys = zip(*points, strict=True)
            latency.plot(xs, ys, style, color=colour, label=f"{request}, {result.workers} workers")
    latency.set(title="Latency seen by the switch (CDF)", xlabel="milliseconds", ylabel="share of requests")
    latency.set_xscale("log")
    latency.grid(True, which="both", alpha=0.3)
    latency.legend(fontsize=8)
    labels = [f"{r.workers} workers\n{r.concurrency} links" for r in results]
    bars = throughput.bar(labels, [r.per_second for r in results], color=colours[: len(results)])
    throughput.bar_label(bars, labels=[f"{r.per_second:,.0f}/s" for r in results], fontsize=9)
    notes = []
    if held is not None:
        notes.append(
            f"{held.authorized:,} calls held ({held.grant_seconds} s grants): "
            f"{held.extensions_per_second:,.0f} extensions/s, {held.overdue_max} overdue at worst"
        )
    if yardstick is not None:
        notes.append(f"pgbench -N, {yardstick.clients} clients: {yardstick.tps} tps (C, no Python, no HTTP)")
    if notes:
        throughput.text(0.02, 0.98, "\n".join(notes), transform=throughput.transAxes, va="top", fontsize=8)
    throughput.set(title="Call setups per second (authorize + end)", ylabel="setups per second")
    throughput.set_ylim(0, max([r.per_second for r in results], default=1) * 1.35)
    throughput.grid(True, axis="y", alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    console.print(f"chart written to {path}")


# --- main ------------------------------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--url",
        default=os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL),
        help=f"admin URL of the PostgreSQL server (env {ADMIN_URL_VARIABLE})",
    )
    parser.add_argument("--workers", default=",".join(map(str, WORKER_COUNTS)), help="server workers, e.g. 1,2,4")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="switch links (connections)")
    parser.add_argument("--seconds", type=float, default=SETUP_SECONDS, help="seconds of setups per worker count")
    parser.add_argument("--warmup-seconds", type=float, default=WARMUP_SECONDS, help="untimed, before each count")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--held", type=int, default=HELD_CALLS, help="calls held at once (0: skip that phase)")
    parser.add_argument("--hold-seconds", type=float, default=HOLD_SECONDS)
    parser.add_argument("--grant-seconds", type=int, default=GRANT_SECONDS, help="grant quota of the held calls")
    parser.add_argument("--stale-margin-seconds", type=int, default=STALE_MARGIN_SECONDS)
    parser.add_argument("--log-level", default="warning", help="the server's (info logs every request)")
    parser.add_argument("--chart", type=Path, default=DEFAULT_CHART)
    parser.add_argument("--no-pgbench", action="store_true")
    parser.add_argument("--setup-only", action="store_true", help="build and time the tree, check the ledger, stop")
    parser.add_argument(
        "--setup-path",
        choices=("clone", "services"),
        default="clone",
        help="clients cloned from one the services made (fast), or each one by tree.create_node_in (slow)",
    )
    parser.add_argument("--quick", action="store_true", help="2,000 clients, 5 s of setups, 1,000 calls held 10 s")
    options = parser.parse_args(argv)
    options.worker_counts = [int(n) for n in options.workers.split(",") if n]
    options.pgbench_scale, options.pgbench_seconds = PGBENCH_SCALE, PGBENCH_SECONDS
    options.held_step_seconds = HELD_STEP_SECONDS_MAX
    if options.quick:
        options.clients, options.seconds, options.held = 2_000, 5.0, 1_000
        options.warmup_seconds, options.held_step_seconds = 2.0, 120.0
        options.hold_seconds, options.grant_seconds, options.stale_margin_seconds = 10.0, 10, 10
        options.pgbench_scale, options.pgbench_seconds = 1, 5
        if options.chart == DEFAULT_CHART:  # a smoke run draws its chart, but not over the published one
            options.chart = Path(tempfile.gettempdir()) / "benchmarks-calls-quick.png"
    if not options.worker_counts or options.concurrency < 1:
        parser.error("give at least one worker count and one link")
    return options


def new_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=2,  # the generator's CPU is precious
    )


def run_load(
    url: str, database: Database, world: World, options: argparse.Namespace, scratch: Path
) -> tuple[list[SetupResult], HeldResult | None] | None:
    """Every HTTP phase; None if the server has no calls API yet."""
    results: list[SetupResult] = []
    with new_progress() as progress:
        for workers in options.worker_counts:
            with serving(Server(url, workers, {}, options.log_level, scratch)) as server:
                if not calls_api_present(server):
                    console.print(f"[red]the server has no {AUTHORIZE_PATH} in /api/openapi.json: no calls API yet")
                    return None
                results.append(asyncio.run(drive_setups(server, database, world, options, progress)))
            r = results[-1]
            console.print(
                f"{workers} workers: {r.per_second:,.0f} setups/s, authorize p50 "
                f"{percentile_milliseconds(r.tally.authorize_seconds, 50):.1f} ms, {r.tally.errors.total()} errors"
            )
        if options.held <= 0:
            return results, None
        environment = {
            "TOLLWAY_CALL_GRANT_SECONDS": str(options.grant_seconds),
            "TOLLWAY_CALL_STALE_MARGIN_SECONDS": str(options.stale_margin_seconds),
        }
        with serving(Server(url, max(options.worker_counts), environment, options.log_level, scratch)) as server:
            held = asyncio.run(drive_held(server, database, world, options, progress))
    return results, held


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    began = time.monotonic()
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="tollway-bench-calls-") as scratch,
        bench_database(options.url, say=console.print) as url,
    ):
        database = Database(url)
        try:
            migrate.upgrade(database)
            facts = server_facts(database)
            with new_progress() as progress:
                world = build_world(url, database, options.clients, options.setup_path, progress)
            outcome = None
            if not options.setup_only:
                settle(url)
                outcome = run_load(url, database, world, options, Path(scratch))
                if outcome is None:
                    return 2
            check = ledger.check(database)
        finally:
            database.dispose()
    load_after = os.getloadavg()
    results, held = outcome or ([], None)
    yardstick = None
    if outcome is not None and not options.no_pgbench:
        yardstick = run_pgbench(options.url, options.pgbench_scale, options.pgbench_seconds)
    report(results, held, yardstick, facts)
    console.print(
        f"load average (1, 5, 15 min) before {load_before}, after {load_after}: other work on the machine shows here"
    )
    console.print(
        f"ledger check: {'ok' if check.ok else 'FAILED'} ({check.accounts:,} accounts, {check.transfers:,} transfers)"
    )
    for problem in check.problems[:10]:
        console.print(f"[red]ledger: {problem}", markup=True, highlight=False)
    if results:
        cores = len(os.sched_getaffinity(0))
        title = (
            f"Tollway credit control over HTTP: {world.funded:,} funded clients of {len(world.clients):,}, "
            f"PostgreSQL {facts['version']}, {cores} cores, {options.seconds:g} s per point"
        )
        chart(results, held, yardstick, options.chart, title)
    console.print(f"total {time.monotonic() - began:.0f} s")
    failed = not check.ok or any(r.tally.errors for r in results)
    failed |= held is not None and (not held.ok or bool(held.tally.errors))
    if not check.ok:
        console.print("[bold red]THE LEDGER DOES NOT BALANCE")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
