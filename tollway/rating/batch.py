"""Batch rating: a CSV of calls in, one line per call and per level out (``tollway rate``).

Input columns (header required): ``call_id, account, tariff, caller, callee, start, duration``. Each
call names either an ``account`` (rated through its whole ownership chain, its number normalized by
the account's dial plan) or a ``tariff`` (rated at that tariff alone, the number taken as E.164
digits). ``start`` is ISO 8601 (UTC when it has no offset); ``duration`` whole answered seconds.

Output columns: ``call_id, level, account, tariff, prefix, description, price, billed_seconds,
plan_seconds, amount, currency, error``, each cell safe to open in a spreadsheet (``tollway.csvsafe``).
A call that cannot be rated (unknown account, no tariff, no rate, a malformed line) gets one line with
its ``error`` reason and the batch goes on; the summary counts them. Plan seconds are consumed in
memory in the order of the file, from what each account has left now: the file is priced, nothing is
stored or charged.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy import Connection

from tollway.csvsafe import safe_row
from tollway.errors import NUL, Refusal, TextContainsNul
from tollway.money import MICROS_PER_UNIT
from tollway.rating import store
from tollway.rating.chain import Charge, Level, rate_call
from tollway.rating.dialplan import E164_DIGITS
from tollway.rating.loading import TABLES, Chain, chain_of
from tollway.rating.rates import epoch_seconds
from tollway.tree import store as tree_store

INPUT_COLUMNS = ("call_id", "account", "tariff", "caller", "callee", "start", "duration")
OUTPUT_COLUMNS = (
    "call_id",
    "level",
    "account",
    "tariff",
    "prefix",
    "description",
    "price",
    "billed_seconds",
    "plan_seconds",
    "amount",
    "currency",
    "error",
)
DURATION_SECONDS_MAX = 7 * 86_400
CHAINS_CACHED_MAX = 100_000
PROGRESS_CALLS = 10_000
ERRORS_KEPT_MAX = 20


@dataclass(slots=True)
class Summary:
    calls: int = 0
    rated: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, with their line numbers

    def fail(self, line: int, error: Refusal) -> None:
        self.failed += 1
        if len(self.errors) < ERRORS_KEPT_MAX:
            self.errors.append(f"line {line}: {error.message} ({error.reason})")


class _Chains:
    """Chains per account and single-level "chains" per tariff, each loaded once per batch."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._chains: dict[tuple[str, str], Chain | Refusal] = {}
        self._seconds_left: dict[str, int] = {}

    def get(self, account: str, tariff: str) -> Chain:
        key = (account, tariff)
        found = self._chains.get(key)
        if found is None:
            try:
                found = self._load(account, tariff)
            except Refusal as refusal:
                found = refusal
            if len(self._chains) >= CHAINS_CACHED_MAX:
                self._chains.clear()
            self._chains[key] = found
        if isinstance(found, Refusal):
            raise found
        return found

    def _load(self, account: str, tariff: str) -> Chain:
        if bool(account) == bool(tariff):
            raise Refusal("call_invalid", "name either an account or a tariff")
        if account:
            node = tree_store.find_node(self._connection, account)
            if node is None:
                raise Refusal("account_not_found", f"account {account} not found")
            return chain_of(self._connection, node)
        found = store.find_tariff(self._connection, tariff)
        if found is None:
            raise Refusal("tariff_not_found", f"tariff {tariff} not found")
        level = Level("", found.name, found.currency, TABLES.table(self._connection, found))
        return Chain(account="", levels=(level,), dial_plan=E164_DIGITS, allowance=None)

    def rate(self, account: str, tariff: str, callee: str, epoch: int, duration: int) -> list[Charge]:
        chain = self.get(account, tariff)
        allowance = chain.allowance
        if allowance is not None and account in self._seconds_left:
            allowance = replace(allowance, seconds_left=self._seconds_left[account])
        charges = rate_call(chain.levels, chain.dial_plan.normalize(callee), epoch, duration, allowance)
        if allowance is not None and charges[0].plan_seconds:
            self._seconds_left[account] = allowance.seconds_left - charges[0].plan_seconds
        return charges


def rate_file(
    connection: Connection,
    calls: TextIO,
    output: TextIO,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> Summary:
    """Rate every call of ``calls`` into ``output``; ``on_progress`` gets the number of calls done."""
    reader = csv.reader(calls)
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != INPUT_COLUMNS:
        raise Refusal("header_invalid", f"line 1: the header must be {','.join(INPUT_COLUMNS)}")
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    chains = _Chains(connection)
    summary = Summary()
    for summary.calls, row in enumerate(reader, start=1):
        line = reader.line_num
        call_id = row[0].replace(NUL, "\ufffd") if row else ""  # echoed in the output, never with a NUL
        try:
            if len(row) != len(INPUT_COLUMNS):
                raise Refusal("columns_invalid", f"{len(row)} columns instead of {len(INPUT_COLUMNS)}")
            if any(NUL in cell for cell in row):
                raise TextContainsNul("the line")
            _, account, tariff, _caller, callee, start, duration = row
            charges = chains.rate(account, tariff, callee, _epoch(start), _duration(duration))
        except Refusal as refusal:
            summary.fail(line, refusal)
            writer.writerow(safe_row([call_id, "", "", "", "", "", "", "", "", "", "", refusal.reason]))
        else:
            summary.rated += 1
            writer.writerows(safe_row(_line(call_id, level, charge)) for level, charge in enumerate(charges))
        if on_progress and summary.calls % PROGRESS_CALLS == 0:
            on_progress(summary.calls)
    if on_progress:
        on_progress(summary.calls)
    return summary


def _line(call_id: str, level: int, charge: Charge) -> tuple[object, ...]:
    return (
        call_id,
        level,
        charge.account,
        charge.tariff,
        charge.prefix,
        charge.description,
        _amount_text(charge.price_micros),
        charge.billed_seconds,
        charge.plan_seconds,
        _amount_text(charge.amount_micros),
        charge.currency,
        "",
    )


def _amount_text(micros: int) -> str:
    """What ``str(to_decimal(micros))`` gives for an amount that is never negative, without Decimal."""
    return f"{micros // MICROS_PER_UNIT}.{micros % MICROS_PER_UNIT:06d}"


def _epoch(text: str) -> int:
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Refusal("start_invalid", f"{text!r} is not an ISO 8601 date and time") from None
    return epoch_seconds(instant if instant.tzinfo else instant.replace(tzinfo=UTC))


def _duration(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        raise Refusal("duration_invalid", f"{text!r} is not a whole number of seconds") from None
    if not 0 <= seconds <= DURATION_SECONDS_MAX:
        raise Refusal("duration_invalid", f"a duration runs from 0 to {DURATION_SECONDS_MAX} seconds")
    return seconds
