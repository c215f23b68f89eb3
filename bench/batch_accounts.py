"""Benchmark: batch creation of client accounts, on PostgreSQL (and SQLite for comparison).

    .venv/bin/python bench/batch_accounts.py            # 1,000, 5,000 and 10,000 accounts, reseller and agent
    .venv/bin/python bench/batch_accounts.py --sizes 10000 --no-sqlite

For each size it builds a fresh database (provider → L1 reseller with a tariff and a profile → agent)
and times ``tollway.agents.batch.create_batch`` (the use case the API and the CLI call), in one
transaction each:
* reseller: N accounts with an initial balance of 5.00 each (N top-ups from the reseller's issuance);
* agent: N accounts made for an agent at 10 % commission, 0.50 per deposit and 1.00 per account, with
  5.00 each (4 transfers per account: the deposit, its fee, its commission and the account fee).
Then it checks the ledger and that every account exists with its balance. It prints a table and the
Markdown for docs/benchmarks.md, and draws docs/benchmarks-batch.png. The goal: 10,000 accounts in under
10 seconds on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch_database import bench_database, server_facts, settle

from tollway.agents import batch as batches
from tollway.agents import service as agents
from tollway.agents.model import AgentTerms, CustomerProfile
from tollway.balances import service as balances
from tollway.ledger.service import check
from tollway.logs import configure_logging
from tollway.rating import service as rating
from tollway.store import migrate
from tollway.store.database import Database
from tollway.store.schema import nodes
from tollway.tree import service as tree
from tollway.tree.model import AGENT, reseller

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_CHART = REPOSITORY / "docs" / "benchmarks-batch.png"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SIZES = (1_000, 5_000, 10_000)
INITIAL_MICROS = 5_000_000
console = Console()


def world(database: Database, size: int) -> None:
    migrate.upgrade(database)
    tree.create_provider(database, login="house", name="House", currency="USD")
    tree.create_node(database, owner_login="house", new=tree.NewNode(position=reseller(1), login="city", name="City"))
    tree.create_node(database, owner_login="city", new=tree.NewNode(position=AGENT, login="ana", name="Ana"))
    rating.create_tariff(database, owner_login="city", name="retail")
    profile = CustomerProfile(name="prepaid", client_type="retail", login_prefix="c", tariff="city:retail")
    agents.put_profile(database, owner_login="city", profile=profile)
    agents.set_terms(database, agent_login="ana", terms=AgentTerms(100_000, 500_000, 1_000_000), profiles=["prepaid"])
    balances.topup(database, login="ana", amount_micros=size * 7_000_000, transfer_id="ana-float")


def timed(database: Database, size: int, *, by_agent: bool) -> float:
    started = time.perf_counter()
    made = batches.create_batch(
        database,
        owner_login="city",
        profile_name="prepaid",
        count=size,
        batch_id=f"bench-{'agent' if by_agent else 'reseller'}",
        initial_balance_micros=INITIAL_MICROS,
        agent_login="ana" if by_agent else None,
    )
    seconds = time.perf_counter() - started
    assert len(made.accounts) == size
    return seconds


def run(url: str, size: int, *, postgresql: bool) -> tuple[float, float]:
    database = Database(url)
    try:
        world(database, size)
        if postgresql:
            settle(url)
        reseller_seconds = timed(database, size, by_agent=False)
        agent_seconds = timed(database, size, by_agent=True)
        report = check(database)
        assert report.ok, report
        with database.reading() as connection:
            clients = connection.execute(select(func.count()).select_from(nodes).where(nodes.c.kind == "client"))
            assert clients.scalar_one() == 2 * size
        assert balances.get_balance(database, login="ana").balance_micros == size * (7_000_000 - 6_500_000)
        return reseller_seconds, agent_seconds
    finally:
        database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("TOLLWAY_BENCH_POSTGRESQL_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--chart", type=Path, default=DEFAULT_CHART)
    args = parser.parse_args()
    configure_logging(level="warning")
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, list[tuple[int, float, float]]] = {"PostgreSQL": [], "SQLite": []}
    facts: dict[str, str] = {}
    for size in sizes:
        with bench_database(args.url, say=lambda _: None) as url:
            if not facts:
                probe = Database(url)
                facts = server_facts(probe)
                probe.dispose()
            results["PostgreSQL"].append((size, *run(url, size, postgresql=True)))
        if not args.no_sqlite:
            with tempfile.TemporaryDirectory() as directory:
                results["SQLite"].append((size, *run(f"sqlite:///{directory}/bench.db", size, postgresql=False)))
        console.print(f"{size:,} accounts done")
    table = Table("database", "accounts", "reseller batch s", "accounts/s", "agent batch s", "accounts/s")
    markdown = [
        "| database | accounts | reseller batch | accounts/s | agent batch | accounts/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        for size, reseller_s, agent_s in rows:
            cells = [name, f"{size:,}", f"{reseller_s:.2f} s", f"{size / reseller_s:,.0f}", f"{agent_s:.2f} s"]
            cells.append(f"{size / agent_s:,.0f}")
            table.add_row(*cells)
            markdown.append("| " + " | ".join(cells) + " |")
    console.print(table)
    console.print(f"PostgreSQL {facts.get('version')}, synchronous_commit={facts.get('synchronous_commit')}")
    print("\n".join(markdown))
    chart(results, args.chart)
    return 0


def chart(results: dict[str, list[tuple[int, float, float]]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        console.print("matplotlib is missing (pip install -e '.[bench]'): no chart")
        return
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, rows in results.items():
        if not rows:
            continue
        sizes = [r[0] for r in rows]
        axis.plot(sizes, [r[1] for r in rows], marker="o", label=f"{name}: reseller, 1 transfer per account")
        axis.plot(
            sizes, [r[2] for r in rows], marker="s", linestyle="--", label=f"{name}: agent, 4 transfers per account"
        )
    axis.axhline(10, color="grey", linewidth=0.8, linestyle=":", label="goal: 10,000 in 10 s")
    axis.set_xlabel("accounts in one batch")
    axis.set_ylabel("seconds (one transaction)")
    axis.set_title("Batch creation of client accounts")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    console.print(f"chart: {path}")


if __name__ == "__main__":
    sys.exit(main())
