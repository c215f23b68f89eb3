"""Random sequences of transfers, reservations, posts, voids and repeats: the ledger always balances.

(a) A state machine over the pure rules checks the invariants after every step.
(b) The same kind of sequences run against the database; its accounts must match the pure rules'. Folds of
    postings (accounts without a floor take postings, tollway.ledger.store) come in between at random, of a
    random size: balances stay those of the pure rules, and the check holds after every fold.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, rule
from sqlalchemy import Connection

from tests.test_ledger_model import NOW, Ledger
from tollway.balances import service as balances
from tollway.ledger import service as ledger_service
from tollway.ledger import store as ledger_store
from tollway.ledger.model import (
    Account,
    AccountPurpose,
    Applied,
    BatchOutcome,
    Failure,
    Phase,
    TransferError,
    TransferRequest,
    floor_broken_by,
)
from tollway.store.database import Database
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType

# Floored wallets (one with a credit limit), the house without a floor, and a EUR pair to mismatch.
WALLET, LIMITED, SPARE, HOUSE, EURO_WALLET, EURO_HOUSE = 1, 2, 3, 4, 5, 6
USD_ACCOUNTS = (WALLET, LIMITED, SPARE, HOUSE)
ALL_ACCOUNTS = (*USD_ACCOUNTS, EURO_WALLET, EURO_HOUSE)
amounts = st.integers(min_value=1, max_value=12_000_000)
timeouts = st.sampled_from([0, 30, 60])


def starting_accounts() -> dict[int, Account]:
    return {
        WALLET: Account(WALLET, "USD"),
        LIMITED: Account(LIMITED, "USD", credit_limit_micros=3_000_000),
        SPARE: Account(SPARE, "USD"),
        HOUSE: Account(HOUSE, "USD", floor=False),
        EURO_WALLET: Account(EURO_WALLET, "EUR"),
        EURO_HOUSE: Account(EURO_HOUSE, "EUR", floor=False),
    }


def assert_ledger_balances(ledger: Ledger) -> None:
    """Debits equal credits per currency; totals equal their transfers; floors hold but for overshoots."""
    debits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    credits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for account in ledger.accounts.values():
        debits[account.currency][0] += account.debits_posted
        debits[account.currency][1] += account.debits_pending
        credits[account.currency][0] += account.credits_posted
        credits[account.currency][1] += account.credits_pending
    assert debits == credits

    recomputed = {account_id: [0, 0, 0, 0] for account_id in ledger.accounts}
    overshoots = dict.fromkeys(ledger.accounts, 0)
    for transfer in ledger.recorded.values():
        posted = transfer.phase in (Phase.SINGLE, Phase.POST)
        still_pending = transfer.phase is Phase.PENDING and transfer.id not in ledger.resolutions
        column = 0 if posted else 2 if still_pending else None
        if column is not None:
            recomputed[transfer.debit_account_id][column] += transfer.amount_micros
            recomputed[transfer.credit_account_id][column + 1] += transfer.amount_micros
        overshoots[transfer.debit_account_id] += transfer.overshoot_micros
    for account_id, account in ledger.accounts.items():
        assert list(ledger.totals(account_id)) == recomputed[account_id]
        assert floor_broken_by(account) <= overshoots[account_id]


class PureLedgerMachine(RuleBasedStateMachine):
    pendings = Bundle("pendings")
    batches = Bundle("batches")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(starting_accounts())
        self.now = NOW
        self.serial = 0

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def submit(self, requests: Sequence[TransferRequest]) -> BatchOutcome:
        accounts_before = {i: a.copy() for i, a in self.ledger.accounts.items()}
        recorded_before = dict(self.ledger.recorded)
        outcome = self.ledger.submit(*requests, now=self.now)
        if isinstance(outcome, Failure):
            assert self.ledger.accounts == accounts_before
            assert self.ledger.recorded == recorded_before
        return outcome

    @initialize(target=batches)
    def fund_the_wallets(self) -> tuple[TransferRequest, ...]:
        batch = (
            TransferRequest("fund-wallet", 10_000_000, HOUSE, WALLET),
            TransferRequest("fund-limited", 2_000_000, HOUSE, LIMITED),
            TransferRequest("fund-euro", 5_000_000, EURO_HOUSE, EURO_WALLET),
        )
        assert isinstance(self.submit(batch), Applied)
        return batch

    @rule(
        target=batches,
        debit=st.sampled_from(ALL_ACCOUNTS),
        credit=st.sampled_from(ALL_ACCOUNTS),
        amount=amounts,
        overshoot=st.booleans(),
    )
    def transfer(self, debit: int, credit: int, amount: int, overshoot: bool) -> object:
        batch = (TransferRequest(self.next_id("t"), amount, debit, credit, overshoot_allowed=overshoot),)
        return batch if isinstance(self.submit(batch), Applied) else multiple()

    @rule(target=batches, first=st.sampled_from(USD_ACCOUNTS), second=st.sampled_from(USD_ACCOUNTS), amount=amounts)
    def linked_pair(self, first: int, second: int, amount: int) -> object:
        """Money through a middle account: the second leg needs the first."""
        batch = (
            TransferRequest(self.next_id("leg"), amount, first, SPARE),
            TransferRequest(self.next_id("leg"), amount, SPARE, second),
        )
        return batch if isinstance(self.submit(batch), Applied) else multiple()

    @rule(
        target=pendings,
        debit=st.sampled_from(USD_ACCOUNTS),
        credit=st.sampled_from(USD_ACCOUNTS),
        amount=amounts,
        timeout=timeouts,
    )
    def reserve(self, debit: int, credit: int, amount: int, timeout: int) -> object:
        request = TransferRequest(
            self.next_id("p"), amount, debit, credit, phase=Phase.PENDING, timeout_seconds=timeout
        )
        outcome = self.submit((request,))
        if isinstance(outcome, Applied):
            assert self.ledger.accounts[debit].debits_pending >= amount
            return request.id
        return multiple()

    @rule(target=batches, pending_id=consumes(pendings), part=st.none() | st.integers(1, 12_000_000))
    def post(self, pending_id: str, part: int | None) -> object:
        pending = self.ledger.recorded[pending_id]
        batch = (TransferRequest(self.next_id("post"), part, phase=Phase.POST, pending_id=pending_id),)
        outcome = self.submit(batch)
        expired = pending.expires_at is not None and pending.expires_at <= self.now
        if isinstance(outcome, Failure):
            too_much = part is not None and part > pending.amount_micros
            assert expired or too_much, outcome
            return multiple()
        assert not expired
        assert outcome.transfers[0].amount_micros == (pending.amount_micros if part is None else part)
        return batch

    @rule(target=batches, pending_id=consumes(pendings))
    def void(self, pending_id: str) -> object:
        batch = (TransferRequest(self.next_id("void"), None, phase=Phase.VOID, pending_id=pending_id),)
        outcome = self.submit(batch)
        assert isinstance(outcome, Applied), outcome  # an open reservation can always be released
        return batch

    @rule(batch=batches)
    def repeat(self, batch: tuple[TransferRequest, ...]) -> None:
        first = tuple(self.ledger.recorded[request.id] for request in batch)
        accounts_before = {i: a.copy() for i, a in self.ledger.accounts.items()}

        outcome = self.submit(batch)

        assert isinstance(outcome, Applied) and outcome.already_existed
        assert outcome.transfers == first
        assert self.ledger.accounts == accounts_before

    @rule(batch=batches, extra=amounts)
    def repeat_with_other_fields(self, batch: tuple[TransferRequest, ...], extra: int) -> None:
        """Another amount (a void has none of its own: another reference) under a recorded id."""
        first = batch[0]
        amount = None if first.phase is Phase.VOID else extra + self.ledger.recorded[first.id].amount_micros
        reference = "changed" if first.phase is Phase.VOID else first.reference
        changed = TransferRequest(
            first.id,
            amount,
            first.debit_account_id,
            first.credit_account_id,
            reference=reference,
            phase=first.phase,
            pending_id=first.pending_id,
            timeout_seconds=first.timeout_seconds,
        )

        outcome = self.submit((changed,))

        assert outcome == Failure(0, TransferError.EXISTS_WITH_DIFFERENT_FIELDS)

    @rule(seconds=st.sampled_from([1, 30, 61]))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @invariant()
    def ledger_balances(self) -> None:
        assert_ledger_balances(self.ledger)


PureLedgerMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
test_the_pure_ledger_balances_after_every_step = PureLedgerMachine.TestCase


# (b) Against the database. An operation names accounts by position in the example's own accounts.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("transfer"), st.integers(0, 3), st.integers(0, 3), amounts, st.booleans()),
        st.tuples(st.just("reserve"), st.integers(0, 3), st.integers(0, 3), amounts, timeouts),
        st.tuples(st.just("post"), st.integers(0, 20), st.none() | amounts),
        st.tuples(st.just("void"), st.integers(0, 20)),
        st.tuples(st.just("linked"), st.integers(0, 3), st.integers(0, 3), amounts),
        st.tuples(st.just("repeat"), st.integers(0, 20)),
        st.tuples(st.just("wait"), st.sampled_from([30, 61])),
        st.tuples(st.just("fold"), st.integers(1, 4)),
    ),
    min_size=1,
    max_size=12,
)


def fresh_accounts(database: Database, *, credit_limit_micros: int) -> list[int]:
    """A new client of the provider: wallet (floor, credit limit), revenue and issuance (no floor), plus a
    floored commission account without credit limit."""
    with database.reading() as connection:
        has_provider = tree_store.find_provider(connection) is not None
    if not has_provider:
        tree.create_provider(database, login="house", name="The House", currency="USD")
    login = f"client-{uuid.uuid4().hex[:10]}"
    node = tree.create_node(
        database,
        owner_login="house",
        new=tree.NewNode(
            tree_model.client(ClientType.RETAIL), login, "Random Client", credit_limit_micros=credit_limit_micros
        ),
    )

    def open_commission(connection: Connection) -> list[int]:
        ids = [
            balances.account_id(connection, node, purpose)
            for purpose in (AccountPurpose.WALLET, AccountPurpose.REVENUE, AccountPurpose.ISSUANCE)
        ]
        ids.append(
            ledger_store.create_account(
                connection, node_id=node.id, purpose=AccountPurpose.COMMISSION, currency="USD", floor=True, now=NOW
            )
        )
        return ids

    return database.run(open_commission)


def stored_accounts(database: Database, account_ids: list[int]) -> dict[int, Account]:
    with database.reading() as connection:
        return ledger_store.lock_accounts(connection, account_ids)


def run_on_database(database: Database, requests: Sequence[TransferRequest], now: datetime) -> BatchOutcome:
    try:
        return ledger_service.execute(database, requests, now=now)
    except ledger_store.TransferRefused as refused:
        return refused.failure


def requests_for(
    operation: tuple[object, ...],
    ids: list[int],
    prefix: str,
    serial: int,
    pendings: list[str],
    batches: list[tuple[TransferRequest, ...]],
) -> tuple[TransferRequest, ...]:
    name, *args = operation
    new_id = f"{prefix}-{serial}"
    if name == "transfer":
        debit, credit, amount, overshoot = args
        return (TransferRequest(new_id, amount, ids[debit], ids[credit], overshoot_allowed=overshoot),)
    if name == "reserve":
        debit, credit, amount, timeout = args
        return (TransferRequest(new_id, amount, ids[debit], ids[credit], phase=Phase.PENDING, timeout_seconds=timeout),)
    if name in ("post", "void") and pendings:
        pending_id = pendings[args[0] % len(pendings)]
        amount = args[1] if name == "post" else None
        return (TransferRequest(new_id, amount, phase=Phase(name), pending_id=pending_id),)
    if name == "linked":
        first, second, amount = args
        return (
            TransferRequest(new_id, amount, ids[first], ids[2]),
            TransferRequest(new_id + ".2", amount, ids[2], ids[second]),
        )
    if name == "repeat" and batches:
        return batches[args[0] % len(batches)]
    return ()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=operations, credit_limit_micros=st.sampled_from([0, 4_000_000]), funding=st.integers(0, 9_000_000))
def test_the_database_ledger_follows_the_pure_rules(
    database: Database, operations: list[tuple[object, ...]], credit_limit_micros: int, funding: int
) -> None:
    ids = fresh_accounts(database, credit_limit_micros=credit_limit_micros)
    ledger = Ledger(stored_accounts(database, ids))
    prefix = uuid.uuid4().hex[:10]
    now = NOW
    pendings: list[str] = []
    batches: list[tuple[TransferRequest, ...]] = []
    if funding:
        operations = [("transfer", 2, 0, funding, False), *operations]  # issuance → wallet

    for serial, operation in enumerate(operations):
        if operation[0] == "wait":
            now += timedelta(seconds=operation[1])
            continue
        if operation[0] == "fold":
            limit = int(operation[1])  # type: ignore[call-overload]
            database.run(lambda connection: ledger_store.fold_postings(connection, limit=limit))  # noqa: B023
            assert stored_accounts(database, ids) == ledger.accounts
            report = ledger_service.check(database)
            assert report.ok, report.problems
            continue
        requests = requests_for(operation, ids, prefix, serial, pendings, batches)
        if not requests:
            continue
        expected = ledger.submit(*requests, now=now)
        stored = run_on_database(database, requests, now)

        assert stored == expected
        if isinstance(expected, Applied) and not expected.already_existed:
            batches.append(tuple(requests))
            pendings.extend(t.id for t in expected.transfers if t.phase is Phase.PENDING)
        assert stored_accounts(database, ids) == ledger.accounts

    assert_ledger_balances(ledger)
    report = ledger_service.check(database)
    assert report.ok, report.problems
    ledger_service.settle(database)  # everything folded: the rows alone hold the same balances
    assert ledger_service.unfolded(database) == 0
    assert stored_accounts(database, ids) == ledger.accounts
    assert ledger_service.check(database).ok
