"""The pure ledger rules (``tollway.ledger.model``), one rule per test, amounts in micro-units.

The cast: Alice, Bob and Carol hold USD wallets with a floor; the house's USD issuance account has
none (it creates credit); a EUR wallet stands in another currency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tollway.ledger.model import (
    BATCH_TRANSFERS_MAX,
    PENDING_TIMEOUT_SECONDS_MAX,
    REFERENCE_LENGTH_MAX,
    Account,
    Applied,
    BatchOutcome,
    Failure,
    PendingState,
    PendingView,
    Phase,
    Transfer,
    TransferError,
    TransferKind,
    TransferRequest,
    apply_batch,
    floor_broken_by,
)
from tollway.money import AMOUNT_MICROS_MAX

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALICE, BOB, CAROL, HOUSE, EURO = 1, 2, 3, 4, 5
UNKNOWN = 99


@dataclass
class Ledger:
    """The pure rules plus what a store remembers between batches, kept in memory."""

    accounts: dict[int, Account]
    recorded: dict[str, Transfer] = field(default_factory=dict)
    resolutions: dict[str, PendingState] = field(default_factory=dict)  # pending id → posted or voided

    def submit(self, *requests: TransferRequest, now: datetime = NOW) -> BatchOutcome:
        existing = {r.id: self.recorded[r.id] for r in requests if r.id in self.recorded}
        pendings = {
            r.pending_id: PendingView(self.recorded[r.pending_id], self.pending_state(r.pending_id))
            for r in requests
            if r.pending_id is not None and r.pending_id in self.recorded
        }
        outcome = apply_batch(requests, accounts=self.accounts, pendings=pendings, existing=existing, now=now)
        if isinstance(outcome, Applied) and not outcome.already_existed:
            for transfer in outcome.transfers:
                self.recorded[transfer.id] = transfer
                if transfer.pending_id is not None:
                    resolved = PendingState.POSTED if transfer.phase is Phase.POST else PendingState.VOIDED
                    self.resolutions[transfer.pending_id] = resolved
            self.accounts.update(outcome.accounts)
        return outcome

    def pending_state(self, pending_id: str) -> PendingState:
        return self.resolutions.get(pending_id, PendingState.OPEN)

    def applied(self, *requests: TransferRequest, now: datetime = NOW) -> Applied:
        outcome = self.submit(*requests, now=now)
        assert isinstance(outcome, Applied), outcome
        return outcome

    def refused(self, *requests: TransferRequest, now: datetime = NOW) -> Failure:
        outcome = self.submit(*requests, now=now)
        assert isinstance(outcome, Failure), outcome
        return outcome

    def totals(self, account_id: int) -> tuple[int, int, int, int]:
        a = self.accounts[account_id]
        return (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)


def new_ledger(*, alice_credit_limit_micros: int = 0) -> Ledger:
    return Ledger(
        {
            ALICE: Account(ALICE, "USD", credit_limit_micros=alice_credit_limit_micros),
            BOB: Account(BOB, "USD"),
            CAROL: Account(CAROL, "USD"),
            HOUSE: Account(HOUSE, "USD", floor=False),
            EURO: Account(EURO, "EUR"),
        }
    )


def pay(
    transfer_id: str, amount_micros: int | None, debit: int | None, credit: int | None, **fields: object
) -> TransferRequest:
    return TransferRequest(transfer_id, amount_micros, debit, credit, **fields)  # type: ignore[arg-type]


def reserve(transfer_id: str, amount_micros: int, debit: int, credit: int, timeout_seconds: int = 0) -> TransferRequest:
    return TransferRequest(
        transfer_id, amount_micros, debit, credit, phase=Phase.PENDING, timeout_seconds=timeout_seconds
    )


def post(transfer_id: str, pending_id: str, amount_micros: int | None = None) -> TransferRequest:
    return TransferRequest(transfer_id, amount_micros, phase=Phase.POST, pending_id=pending_id)


def void(transfer_id: str, pending_id: str) -> TransferRequest:
    return TransferRequest(transfer_id, None, phase=Phase.VOID, pending_id=pending_id)


def funded(alice_micros: int, *, alice_credit_limit_micros: int = 0) -> Ledger:
    ledger = new_ledger(alice_credit_limit_micros=alice_credit_limit_micros)
    ledger.applied(pay("topup-alice", alice_micros, HOUSE, ALICE, kind=TransferKind.TOPUP))
    return ledger


def test_a_transfer_moves_its_amount_from_the_debit_to_the_credit_account() -> None:
    ledger = funded(20_000_000)

    applied = ledger.applied(pay("t1", 12_500_000, ALICE, BOB, kind=TransferKind.PAYMENT, reference="invoice 7"))

    assert ledger.accounts[ALICE].balance_micros == 7_500_000
    assert ledger.accounts[BOB].balance_micros == 12_500_000
    assert ledger.totals(ALICE) == (12_500_000, 20_000_000, 0, 0)
    assert ledger.totals(BOB) == (0, 12_500_000, 0, 0)
    (transfer,) = applied.transfers
    assert (transfer.id, transfer.debit_account_id, transfer.credit_account_id) == ("t1", ALICE, BOB)
    assert (transfer.amount_micros, transfer.currency, transfer.phase) == (12_500_000, "USD", Phase.SINGLE)
    assert (transfer.kind, transfer.reference, transfer.overshoot_micros) == (TransferKind.PAYMENT, "invoice 7", 0)
    assert transfer.created_at == NOW
    assert set(applied.accounts) == {ALICE, BOB}


def test_a_pending_transfer_reserves_available_funds_but_leaves_the_balance() -> None:
    ledger = funded(20_000_000)

    ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB))

    alice = ledger.accounts[ALICE]
    assert (alice.balance_micros, alice.available_micros) == (20_000_000, 15_000_000)
    assert ledger.totals(ALICE) == (0, 20_000_000, 5_000_000, 0)
    assert ledger.totals(BOB) == (0, 0, 0, 5_000_000)
    assert ledger.accounts[BOB].balance_micros == 0


def test_posting_a_whole_pending_transfer_makes_the_reserved_amount_real() -> None:
    ledger = funded(20_000_000)
    ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB))

    applied = ledger.applied(post("call-1.post", "call-1"))

    assert applied.transfers[0].amount_micros == 5_000_000
    assert (applied.transfers[0].debit_account_id, applied.transfers[0].credit_account_id) == (ALICE, BOB)
    assert ledger.totals(ALICE) == (5_000_000, 20_000_000, 0, 0)
    assert ledger.totals(BOB) == (0, 5_000_000, 0, 0)
    assert ledger.accounts[ALICE].available_micros == 15_000_000


def test_posting_part_of_a_pending_transfer_releases_the_rest() -> None:
    ledger = funded(20_000_000)
    ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB))

    applied = ledger.applied(post("call-1.post", "call-1", 3_200_000))

    assert applied.transfers[0].amount_micros == 3_200_000
    assert ledger.totals(ALICE) == (3_200_000, 20_000_000, 0, 0)
    assert ledger.totals(BOB) == (0, 3_200_000, 0, 0)
    assert ledger.accounts[ALICE].available_micros == 16_800_000


def test_posting_more_than_was_reserved_is_refused() -> None:
    ledger = funded(20_000_000)
    ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB))

    assert ledger.refused(post("call-1.post", "call-1", 5_000_001)) == Failure(0, TransferError.EXCEEDS_PENDING_AMOUNT)
    assert ledger.totals(ALICE) == (0, 20_000_000, 5_000_000, 0)


def test_voiding_a_pending_transfer_releases_all_of_it() -> None:
    ledger = funded(20_000_000)
    ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB))

    applied = ledger.applied(void("call-1.void", "call-1"))

    assert applied.transfers[0].amount_micros == 5_000_000  # a void records what it released
    assert ledger.totals(ALICE) == (0, 20_000_000, 0, 0)
    assert ledger.totals(BOB) == (0, 0, 0, 0)
    assert ledger.accounts[ALICE].available_micros == 20_000_000


def test_a_posted_pending_transfer_cannot_be_posted_or_voided_again() -> None:
    ledger = funded(20_000_000)
    ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB))
    ledger.applied(post("call-1.post", "call-1", 1_000_000))

    assert ledger.refused(post("call-1.post2", "call-1")).error is TransferError.PENDING_TRANSFER_ALREADY_POSTED
    assert ledger.refused(void("call-1.void", "call-1")).error is TransferError.PENDING_TRANSFER_ALREADY_POSTED
    assert ledger.totals(ALICE) == (1_000_000, 20_000_000, 0, 0)


def test_a_voided_pending_transfer_cannot_be_voided_or_posted_again() -> None:
    ledger = funded(20_000_000)
    ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB))
    ledger.applied(void("call-1.void", "call-1"))

    assert ledger.refused(void("call-1.void2", "call-1")).error is TransferError.PENDING_TRANSFER_ALREADY_VOIDED
    assert ledger.refused(post("call-1.post", "call-1")).error is TransferError.PENDING_TRANSFER_ALREADY_VOIDED
    assert ledger.totals(ALICE) == (0, 20_000_000, 0, 0)


def test_an_expired_pending_transfer_cannot_be_posted_but_can_be_voided() -> None:
    ledger = funded(20_000_000)
    applied = ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB, timeout_seconds=60))
    assert applied.transfers[0].expires_at == NOW + timedelta(seconds=60)
    expired = NOW + timedelta(seconds=60)

    assert ledger.refused(post("call-1.post", "call-1"), now=expired).error is TransferError.PENDING_TRANSFER_EXPIRED
    ledger.applied(void("call-1.void", "call-1"), now=expired)

    assert ledger.totals(ALICE) == (0, 20_000_000, 0, 0)


def test_a_pending_transfer_can_be_posted_until_the_last_micro_second_of_its_timeout() -> None:
    ledger = funded(20_000_000)
    ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB, timeout_seconds=60))

    ledger.applied(post("call-1.post", "call-1"), now=NOW + timedelta(seconds=60) - timedelta(microseconds=1))

    assert ledger.totals(BOB) == (0, 5_000_000, 0, 0)


def test_a_pending_transfer_without_timeout_never_expires() -> None:
    ledger = funded(20_000_000)
    applied = ledger.applied(reserve("call-1", 5_000_000, ALICE, BOB))
    assert applied.transfers[0].expires_at is None

    ledger.applied(post("call-1.post", "call-1"), now=NOW + timedelta(days=3650))

    assert ledger.totals(BOB) == (0, 5_000_000, 0, 0)


def test_available_is_balance_plus_credit_limit_minus_pending_debits() -> None:
    ledger = funded(10_000_000, alice_credit_limit_micros=5_000_000)
    ledger.applied(reserve("call-1", 3_000_000, ALICE, BOB))

    assert ledger.accounts[ALICE].available_micros == 12_000_000  # 10 + 5 - 3


def test_a_floored_account_may_spend_down_to_its_credit_limit_and_not_a_micro_more() -> None:
    ledger = funded(10_000_000, alice_credit_limit_micros=5_000_000)
    ledger.applied(reserve("call-1", 3_000_000, ALICE, BOB))

    assert ledger.refused(pay("t1", 12_000_001, ALICE, BOB)).error is TransferError.INSUFFICIENT_FUNDS
    ledger.applied(pay("t2", 12_000_000, ALICE, BOB))

    alice = ledger.accounts[ALICE]
    assert (alice.balance_micros, alice.available_micros) == (-2_000_000, 0)
    assert floor_broken_by(alice) == 0


def test_a_reservation_is_held_to_the_floor_like_a_transfer() -> None:
    ledger = funded(4_000_000)

    assert ledger.refused(reserve("call-1", 4_000_001, ALICE, BOB)).error is TransferError.INSUFFICIENT_FUNDS
    ledger.applied(reserve("call-2", 4_000_000, ALICE, BOB))
    assert ledger.refused(pay("t1", 1, ALICE, BOB)).error is TransferError.INSUFFICIENT_FUNDS


def test_an_account_without_a_floor_may_go_negative() -> None:
    ledger = new_ledger()

    ledger.applied(pay("mint", AMOUNT_MICROS_MAX, HOUSE, ALICE))
    ledger.applied(reserve("mint-2", 7_000_000, HOUSE, BOB))

    house = ledger.accounts[HOUSE]
    assert (house.balance_micros, house.debits_pending) == (-AMOUNT_MICROS_MAX, 7_000_000)
    assert floor_broken_by(house) == 0


def test_an_allowed_overshoot_takes_the_account_past_its_floor_and_records_by_how_much() -> None:
    ledger = funded(2_000_000, alice_credit_limit_micros=1_000_000)

    first = ledger.applied(
        pay("call-1.charge", 5_000_000, ALICE, BOB, kind=TransferKind.CALL_CHARGE, overshoot_allowed=True)
    )
    second = ledger.applied(pay("call-2.charge", 500_000, ALICE, BOB, overshoot_allowed=True))

    assert first.transfers[0].overshoot_micros == 2_000_000  # 5 charged, 3 available
    assert second.transfers[0].overshoot_micros == 500_000  # already below the floor: all of it
    alice = ledger.accounts[ALICE]
    assert (alice.balance_micros, alice.available_micros) == (-3_500_000, -2_500_000)
    assert floor_broken_by(alice) == 2_500_000


def test_an_overshoot_allowed_transfer_within_the_floor_records_no_overshoot() -> None:
    ledger = funded(2_000_000)

    applied = ledger.applied(pay("t1", 2_000_000, ALICE, BOB, overshoot_allowed=True))

    assert applied.transfers[0].overshoot_micros == 0


def test_a_linked_batch_that_fails_at_its_third_transfer_applies_nothing() -> None:
    ledger = funded(10_000_000)
    before = {account_id: account.copy() for account_id, account in ledger.accounts.items()}

    failure = ledger.refused(
        pay("b1", 4_000_000, ALICE, BOB),
        pay("b2", 4_000_000, ALICE, CAROL),
        pay("b3", 4_000_000, ALICE, BOB),  # only 2 left
    )

    assert failure == Failure(2, TransferError.INSUFFICIENT_FUNDS)
    assert ledger.accounts == before
    assert set(ledger.recorded) == {"topup-alice"}


def test_a_refused_batch_leaves_the_accounts_it_was_given_untouched() -> None:
    ledger = funded(10_000_000)
    given_accounts = {account_id: account.copy() for account_id, account in ledger.accounts.items()}

    outcome = apply_batch(
        [pay("b1", 6_000_000, ALICE, BOB), pay("b2", 6_000_000, ALICE, BOB)],
        accounts=given_accounts,
        pendings={},
        existing={},
        now=NOW,
    )

    assert outcome == Failure(1, TransferError.INSUFFICIENT_FUNDS)
    assert given_accounts == ledger.accounts


def test_later_transfers_of_a_batch_see_the_earlier_ones() -> None:
    ledger = funded(10_000_000)

    ledger.applied(pay("b1", 10_000_000, ALICE, BOB), pay("b2", 10_000_000, BOB, CAROL))

    assert [ledger.accounts[i].balance_micros for i in (ALICE, BOB, CAROL)] == [0, 0, 10_000_000]


def test_a_pending_transfer_created_and_posted_in_the_same_batch() -> None:
    ledger = funded(10_000_000)

    applied = ledger.applied(reserve("call-1", 6_000_000, ALICE, BOB), post("call-1.post", "call-1", 2_500_000))

    assert [t.phase for t in applied.transfers] == [Phase.PENDING, Phase.POST]
    assert ledger.totals(ALICE) == (2_500_000, 10_000_000, 0, 0)
    assert ledger.totals(BOB) == (0, 2_500_000, 0, 0)
    assert ledger.pending_state("call-1") is PendingState.POSTED


def test_a_pending_transfer_cannot_be_resolved_twice_within_one_batch() -> None:
    ledger = funded(10_000_000)

    failure = ledger.refused(
        reserve("call-1", 6_000_000, ALICE, BOB), post("call-1.post", "call-1"), void("call-1.void", "call-1")
    )

    assert failure == Failure(2, TransferError.PENDING_TRANSFER_ALREADY_POSTED)
    assert ledger.totals(ALICE) == (0, 10_000_000, 0, 0)


def test_repeating_a_batch_answers_with_the_first_result_and_changes_nothing() -> None:
    ledger = funded(10_000_000)
    first = ledger.applied(pay("t1", 3_000_000, ALICE, BOB), reserve("call-1", 2_000_000, ALICE, CAROL, 60))

    again = ledger.applied(
        pay("t1", 3_000_000, ALICE, BOB), reserve("call-1", 2_000_000, ALICE, CAROL, 60), now=NOW + timedelta(seconds=5)
    )

    assert again.already_existed is True
    assert again.transfers == first.transfers
    assert again.accounts == {}
    assert ledger.totals(ALICE) == (3_000_000, 10_000_000, 2_000_000, 0)


def test_repeating_a_post_of_the_whole_amount_answers_with_the_first_result() -> None:
    ledger = funded(10_000_000)
    ledger.applied(reserve("call-1", 2_000_000, ALICE, BOB))
    first = ledger.applied(post("call-1.post", "call-1"))

    again = ledger.applied(post("call-1.post", "call-1"))

    assert (again.already_existed, again.transfers) == (True, first.transfers)
    assert ledger.totals(BOB) == (0, 2_000_000, 0, 0)


@pytest.mark.parametrize(
    "repeat",
    [
        pay("t1", 3_000_001, ALICE, BOB),
        pay("t1", 3_000_000, ALICE, CAROL),
        pay("t1", 3_000_000, ALICE, BOB, reference="other"),
        pay("t1", 3_000_000, ALICE, BOB, kind=TransferKind.FEE),
        pay("t1", 3_000_000, ALICE, BOB, exchange_rate=Decimal("1.1")),
        reserve("t1", 3_000_000, ALICE, BOB),
    ],
    ids=["amount", "credit account", "reference", "kind", "exchange rate", "phase"],
)
def test_a_repeat_under_a_used_id_with_different_fields_is_refused(repeat: TransferRequest) -> None:
    ledger = funded(10_000_000)
    ledger.applied(pay("t1", 3_000_000, ALICE, BOB))

    assert ledger.refused(repeat) == Failure(0, TransferError.EXISTS_WITH_DIFFERENT_FIELDS)
    assert ledger.totals(ALICE) == (3_000_000, 10_000_000, 0, 0)


def test_a_repeated_reservation_with_another_timeout_is_refused() -> None:
    ledger = funded(10_000_000)
    ledger.applied(reserve("call-1", 2_000_000, ALICE, BOB, timeout_seconds=60))

    failure = ledger.refused(reserve("call-1", 2_000_000, ALICE, BOB, timeout_seconds=3600))

    assert failure == Failure(0, TransferError.EXISTS_WITH_DIFFERENT_FIELDS)


def test_a_batch_that_repeats_only_some_recorded_ids_is_refused() -> None:
    ledger = funded(10_000_000)
    ledger.applied(pay("t1", 3_000_000, ALICE, BOB))

    failure = ledger.refused(pay("t1", 3_000_000, ALICE, BOB), pay("t2", 1_000_000, ALICE, BOB))

    assert failure == Failure(1, TransferError.BATCH_PARTIALLY_EXISTS)
    assert ledger.totals(ALICE) == (3_000_000, 10_000_000, 0, 0)


# Every refusal code, each reached by a small scenario: (setup, the refused batch, index, code).
Setup = Callable[[Ledger], object]


def nothing(ledger: Ledger) -> None:
    return None


def alice_reserves_5(ledger: Ledger) -> None:
    ledger.applied(reserve("p1", 5_000_000, ALICE, BOB, timeout_seconds=60))


def p1_posted_and_p2_voided(ledger: Ledger) -> None:
    ledger.applied(reserve("p1", 1_000_000, ALICE, BOB), reserve("p2", 1_000_000, ALICE, BOB))
    ledger.applied(post("p1.post", "p1"), void("p2.void", "p2"))


REFUSALS: list[tuple[str, Setup, list[TransferRequest], int, TransferError]] = [
    ("bad id", nothing, [pay("has space", 1, ALICE, BOB)], 0, TransferError.ID_INVALID),
    ("id too long", nothing, [pay("x" * 129, 1, ALICE, BOB)], 0, TransferError.ID_INVALID),
    (
        "same id twice",
        nothing,
        [pay("a", 1, ALICE, BOB), pay("a", 1, ALICE, BOB)],
        1,
        TransferError.ID_REPEATED_IN_BATCH,
    ),
    (
        "other fields",
        lambda ledger: ledger.applied(pay("a", 1, ALICE, BOB)),
        [pay("a", 2, ALICE, BOB)],
        0,
        TransferError.EXISTS_WITH_DIFFERENT_FIELDS,
    ),
    (
        "partly recorded",
        lambda ledger: ledger.applied(pay("a", 1, ALICE, BOB)),
        [pay("b", 1, ALICE, BOB), pay("a", 1, ALICE, BOB)],
        0,
        TransferError.BATCH_PARTIALLY_EXISTS,
    ),
    (
        "batch too large",
        nothing,
        [pay(f"t{i}", 1, HOUSE, BOB) for i in range(BATCH_TRANSFERS_MAX + 1)],
        BATCH_TRANSFERS_MAX,
        TransferError.BATCH_TOO_LARGE,
    ),
    ("empty batch", nothing, [], 0, TransferError.BATCH_EMPTY),
    ("zero", nothing, [pay("a", 0, ALICE, BOB)], 0, TransferError.AMOUNT_MUST_BE_POSITIVE),
    ("negative", nothing, [pay("a", -1, ALICE, BOB)], 0, TransferError.AMOUNT_MUST_BE_POSITIVE),
    ("no amount", nothing, [pay("a", None, ALICE, BOB)], 0, TransferError.AMOUNT_MUST_BE_POSITIVE),
    ("zero post", alice_reserves_5, [post("a", "p1", 0)], 0, TransferError.AMOUNT_MUST_BE_POSITIVE),
    ("too large", nothing, [pay("a", AMOUNT_MICROS_MAX + 1, HOUSE, BOB)], 0, TransferError.AMOUNT_TOO_LARGE),
    ("to itself", nothing, [pay("a", 1, ALICE, ALICE)], 0, TransferError.ACCOUNTS_MUST_BE_DIFFERENT),
    ("unknown account", nothing, [pay("a", 1, ALICE, UNKNOWN)], 0, TransferError.ACCOUNT_NOT_FOUND),
    ("no debit account", nothing, [pay("a", 1, None, BOB)], 0, TransferError.ACCOUNT_NOT_FOUND),
    ("two currencies", nothing, [pay("a", 1, ALICE, EURO)], 0, TransferError.CURRENCY_MISMATCH),
    (
        "long reference",
        nothing,
        [pay("a", 1, ALICE, BOB, reference="r" * (REFERENCE_LENGTH_MAX + 1))],
        0,
        TransferError.REFERENCE_TOO_LONG,
    ),
    ("negative timeout", nothing, [reserve("a", 1, ALICE, BOB, timeout_seconds=-1)], 0, TransferError.TIMEOUT_INVALID),
    (
        "timeout too long",
        nothing,
        [reserve("a", 1, ALICE, BOB, timeout_seconds=PENDING_TIMEOUT_SECONDS_MAX + 1)],
        0,
        TransferError.TIMEOUT_INVALID,
    ),
    ("timeout on single", nothing, [pay("a", 1, ALICE, BOB, timeout_seconds=60)], 0, TransferError.TIMEOUT_INVALID),
    ("no funds", nothing, [pay("a", 10_000_001, ALICE, BOB)], 0, TransferError.INSUFFICIENT_FUNDS),
    (
        "post without pending id",
        nothing,
        [TransferRequest("a", None, phase=Phase.POST)],
        0,
        TransferError.PENDING_ID_REQUIRED,
    ),
    (
        "pending id on single",
        alice_reserves_5,
        [pay("a", 1, ALICE, BOB, pending_id="p1")],
        0,
        TransferError.PENDING_ID_NOT_ALLOWED,
    ),
    ("unknown pending", nothing, [post("a", "nope")], 0, TransferError.PENDING_TRANSFER_NOT_FOUND),
    (
        "post a single",
        lambda ledger: ledger.applied(pay("s1", 1, ALICE, BOB)),
        [post("a", "s1")],
        0,
        TransferError.PENDING_TRANSFER_NOT_PENDING,
    ),
    ("post posted", p1_posted_and_p2_voided, [post("a", "p1")], 0, TransferError.PENDING_TRANSFER_ALREADY_POSTED),
    ("void voided", p1_posted_and_p2_voided, [void("a", "p2")], 0, TransferError.PENDING_TRANSFER_ALREADY_VOIDED),
    ("post expired", alice_reserves_5, [post("a", "p1")], 0, TransferError.PENDING_TRANSFER_EXPIRED),
    (
        "post too much",
        lambda ledger: ledger.applied(reserve("p1", 5_000_000, ALICE, BOB)),
        [post("a", "p1", 5_000_001)],
        0,
        TransferError.EXCEEDS_PENDING_AMOUNT,
    ),
    (
        "accounts on post",
        alice_reserves_5,
        [TransferRequest("a", None, ALICE, BOB, phase=Phase.POST, pending_id="p1")],
        0,
        TransferError.ACCOUNTS_NOT_ALLOWED,
    ),
    (
        "overshoot on pending",
        nothing,
        [TransferRequest("a", 1, ALICE, BOB, phase=Phase.PENDING, overshoot_allowed=True)],
        0,
        TransferError.OVERSHOOT_NOT_ALLOWED,
    ),
]


@pytest.mark.parametrize(
    ("setup", "batch", "index", "error"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS]
)
def test_a_refused_batch_names_the_transfer_and_the_reason(
    setup: Setup, batch: list[TransferRequest], index: int, error: TransferError
) -> None:
    ledger = funded(10_000_000)
    setup(ledger)
    accounts_before = {account_id: account.copy() for account_id, account in ledger.accounts.items()}
    recorded_before = dict(ledger.recorded)

    failure = ledger.refused(*batch, now=NOW + timedelta(seconds=60))  # p1, reserved for 60 s, has just expired

    assert failure == Failure(index, error)
    assert failure.reason == str(error)
    assert ledger.accounts == accounts_before
    assert ledger.recorded == recorded_before


def test_every_refusal_code_is_reached_by_a_scenario() -> None:
    assert {case[4] for case in REFUSALS} == set(TransferError)
