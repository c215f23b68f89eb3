"""Benchmark: a batch of calling cards, on PostgreSQL (and SQLite for comparison).

    .venv/bin/python bench/cards.py                       # 100,000 cards
    .venv/bin/python bench/cards.py --sizes 10000,100000 --no-sqlite

For each size it builds a fresh database (provider → L1 reseller with a tariff) and times
``tollway.cards.service.create_batch`` (the use case the API and the CLI call) in one transaction: the
cards' client nodes, their ledger accounts and tariff, their PINs (drawn, hashed, checked unique) and card
rows. Then it times the sale of the whole batch (``activate``: one transfer of 5.00 per card), checks the
ledger and counts the cards. The goal: 100,000 cards in under 10 seconds on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch_database import bench_database, settle

from tollway.cards import service as cards
from tollway.cards.model import BatchTerms
from tollway.ledger.service import check
from tollway.logs import configure_logging
from tollway.rating import service as rating
from tollway.store import migrate
from tollway.store.database import Database
from tollway.store.schema import cards as cards_table
from tollway.tree import service as tree
from tollway.tree.model import reseller

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SIZES = (100_000,)
KEY = b"bench pin key"
console = Console()


def world(database: Database) -> None:
    migrate.upgrade(database)
    tree.create_provider(database, login="house", name="House", currency="USD")
    tree.create_node(database, owner_login="house", new=tree.NewNode(position=reseller(1), login="city", name="City"))
    rating.create_tariff(database, owner_login="city", name="retail")


def run(url: str, size: int, *, postgresql: bool) -> tuple[float, float]:
    database = Database(url)
    try:
        world(database)
        if postgresql:
            settle(url)
        terms = BatchTerms(name="bench", count=size, face_value_micros=5_000_000, tariff="city:retail")
        started = time.perf_counter()
        made = cards.create_batch(database, owner_login="city", terms=terms, pin_key=KEY)
        batch_seconds = time.perf_counter() - started
        assert len(made.cards) == size
        started = time.perf_counter()
        sold = cards.activate(database, owner_login="city", selection=cards.Selection(batch="bench"))
        sale_seconds = time.perf_counter() - started
        assert sold == size
        report = check(database)
        assert report.ok, report
        with database.reading() as connection:
            assert connection.execute(select(func.count()).select_from(cards_table)).scalar_one() == size
        return batch_seconds, sale_seconds
    finally:
        database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("TOLLWAY_BENCH_POSTGRESQL_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    configure_logging(level="warning")
    rows: list[tuple[str, int, float, float]] = []
    for size in [int(s) for s in args.sizes.split(",")]:
        with bench_database(args.url, say=lambda _: None) as url:
            rows.append(("PostgreSQL", size, *run(url, size, postgresql=True)))
        if not args.no_sqlite:
            with tempfile.TemporaryDirectory() as directory:
                rows.append(("SQLite", size, *run(f"sqlite:///{directory}/bench.db", size, postgresql=False)))
    print("| database | cards | batch (one transaction) | cards/s | sale of the batch | cards/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, size, batch_s, sale_s in rows:
        print(
            f"| {name} | {size:,} | {batch_s:.2f} s | {size / batch_s:,.0f} | {sale_s:.2f} s | {size / sale_s:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
