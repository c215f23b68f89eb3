"""Every CSV Tollway writes is safe to open in a spreadsheet: a cell that would run as a formula is written
with a leading apostrophe (``tollway.csvsafe``), numbers as they are. Rate sheets: ``test_rating_sheets``."""

from __future__ import annotations

import csv
import io

from tollway.agents.batch import BatchResult, NewAccount, to_csv
from tollway.rating import service as rating
from tollway.rating.batch import rate_file
from tollway.rating.tariff import RateEntry
from tollway.store.database import Database

EVIL = "=cmd|' /C calc'!A0"


def test_batch_rating_output_neutralises_formulas_from_the_file_and_the_tariff(demo_database: Database) -> None:
    rating.set_prefix(demo_database, name="house:wholesale", prefix="33", entries=[RateEntry("33", EVIL, 18_000)])
    calls = (
        "call_id,account,tariff,caller,callee,start,duration\n"
        "@SUM(A1),,house:wholesale,1,+33 1 23 45 67 89,2026-11-23T10:00:00,61\n"
    )
    output = io.StringIO()
    with demo_database.reading() as connection:
        summary = rate_file(connection, io.StringIO(calls), output)
    assert (summary.rated, summary.failed) == (1, 0)
    (row,) = list(csv.DictReader(io.StringIO(output.getvalue())))
    assert (row["call_id"], row["description"], row["amount"]) == ("'@SUM(A1)", "'" + EVIL, "0.018300")


def test_the_logins_and_passwords_of_a_batch_are_written_safe_for_spreadsheets() -> None:
    result = BatchResult("b-1", "north-city", "+prepaid", None, "USD", -1_500_000, (NewAccount("=1+1", "Xy3"),))
    rows = list(csv.reader(io.StringIO(to_csv(result))))
    assert rows == [["login", "password", "currency", "balance"], ["'=1+1", "Xy3", "USD", "-1.500000"]]
