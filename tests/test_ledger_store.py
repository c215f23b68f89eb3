"""The ledger through the database: idempotency, linked batches, reservations, append-only transfers,
and the balance use cases (top-up, adjustment, credit limit, conversion).

The tree: the house (provider, USD) owns North Telecom (reseller L1, USD), which owns Alice and Bob
(retail clients, USD); the house also owns Eloise (retail client, EUR).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tollway.balances import service as balances
from tollway.errors import Refusal
from tollway.ledger import service as ledger
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose, Failure, Phase, Transfer, TransferError, TransferKind, TransferRequest
from tollway.store.database import Database
from tollway.store.schema import ledger_accounts, transfers
from tollway.tree import service as tree
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, client, reseller

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def build_tree(database: Database) -> None:
    tree.create_provider(database, login="house", name="The House", currency="USD")
    tree.create_node(database, owner_login="house", new=tree.NewNode(reseller(1), "north", "North Telecom"))
    for login in ("alice", "bob"):
        new = tree.NewNode(client(ClientType.RETAIL), login, login.title())
        tree.create_node(database, owner_login="north", new=new)
    tree.create_node(
        database, owner_login="house", new=tree.NewNode(client(ClientType.RETAIL), "eloise", "Eloise", currency="EUR")
    )


def account(
    database: Database, login: str, purpose: AccountPurpose = AccountPurpose.WALLET, currency: str | None = None
) -> int:
    with database.reading() as connection:
        node = tree.require_node(connection, login)
        found = ledger_store.find_account_id(
            connection, node_id=node.id, purpose=purpose, currency=currency or node.currency
        )
    assert found is not None
    return found


def balance(database: Database, account_id: int) -> int:
    with database.reading() as connection:
        found = ledger_store.get_account(connection, account_id)
    assert found is not None
    return found.balance_micros


def totals(database: Database, account_id: int) -> tuple[int, int, int, int]:
    with database.reading() as connection:
        a = ledger_store.get_account(connection, account_id)
    assert a is not None
    return (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)


def stored_transfer(database: Database, transfer_id: str) -> Transfer:
    with database.reading() as connection:
        return ledger_store.get_transfers(connection, [transfer_id])[transfer_id]


def snapshot(database: Database) -> tuple[list[Any], int]:
    """Every ledger account as it stands (row + unfolded postings) and the number of transfers."""
    with database.reading() as connection:
        query = ledger_store.current_accounts().order_by(ledger_accounts.c.id)
        rows = [tuple(row) for row in connection.execute(query)]
        count = connection.execute(select(func.count()).select_from(transfers)).scalar_one()
    return rows, count


def refusal(call: Any, **arguments: Any) -> str:
    with pytest.raises(Refusal) as refused:
        call(**arguments)
    return refused.value.reason


def test_a_retried_topup_is_credited_once_and_answers_with_the_first_transfer(database: Database) -> None:
    build_tree(database)

    first = balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")
    again = balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")

    assert again.already_existed is True
    assert again.transfers == first.transfers
    assert balances.get_balance(database, login="alice").balance_micros == 25_000_000
    assert balance(database, account(database, "north", AccountPurpose.ISSUANCE)) == -25_000_000
    assert snapshot(database)[1] == 1


def test_a_different_topup_under_a_used_id_is_refused(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")

    reason = refusal(balances.topup, database=database, login="alice", amount_micros=30_000_000, transfer_id="pay-1")

    assert reason == "exists_with_different_fields"
    assert balances.get_balance(database, login="alice").balance_micros == 25_000_000


def test_the_same_id_for_another_node_is_refused(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")

    reason = refusal(balances.topup, database=database, login="bob", amount_micros=25_000_000, transfer_id="pay-1")

    assert reason == "exists_with_different_fields"
    assert balances.get_balance(database, login="bob").balance_micros == 0


def test_a_linked_batch_that_fails_writes_nothing(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=10_000_000, transfer_id="pay-1")
    alice, bob = account(database, "alice"), account(database, "bob")
    north = account(database, "north", AccountPurpose.REVENUE)
    before = snapshot(database)

    with pytest.raises(ledger_store.TransferRefused) as refused:
        ledger.execute(
            database,
            [
                TransferRequest("fee-1", 4_000_000, alice, north, kind=TransferKind.FEE),
                TransferRequest("gift-1", 4_000_000, alice, bob),
                TransferRequest("gift-2", 4_000_000, alice, bob),  # 2 left
            ],
        )

    assert refused.value.failure == Failure(2, TransferError.INSUFFICIENT_FUNDS)
    assert refused.value.reason == "insufficient_funds"
    assert snapshot(database) == before


def test_a_linked_batch_that_succeeds_writes_every_transfer(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=10_000_000, transfer_id="pay-1")
    alice, bob = account(database, "alice"), account(database, "bob")
    north = account(database, "north", AccountPurpose.REVENUE)

    ledger.execute(
        database,
        [
            TransferRequest("fee-1", 4_000_000, alice, north, kind=TransferKind.FEE),
            TransferRequest("gift-1", 6_000_000, alice, bob),
        ],
    )

    assert [balance(database, i) for i in (alice, bob, north)] == [0, 6_000_000, 4_000_000]
    assert snapshot(database)[1] == 3


def test_a_reservation_is_posted_in_part_and_another_voided_through_the_database(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=20_000_000, transfer_id="pay-1")
    alice, north = account(database, "alice"), account(database, "north", AccountPurpose.REVENUE)

    ledger.execute(
        database,
        [
            TransferRequest(
                "call-1",
                5_000_000,
                alice,
                north,
                kind=TransferKind.CALL_CHARGE,
                phase=Phase.PENDING,
                timeout_seconds=300,
            )
        ],
    )
    ledger.execute(
        database,
        [TransferRequest("call-2", 4_000_000, alice, north, kind=TransferKind.CALL_CHARGE, phase=Phase.PENDING)],
    )
    reserved = balances.get_balance(database, login="alice")
    assert (reserved.balance_micros, reserved.pending_micros, reserved.available_micros) == (
        20_000_000,
        9_000_000,
        11_000_000,
    )

    ledger.execute(
        database,
        [
            TransferRequest(
                "call-1.post", 3_200_000, kind=TransferKind.CALL_CHARGE, phase=Phase.POST, pending_id="call-1"
            ),
            TransferRequest("call-2.void", None, kind=TransferKind.CALL_CHARGE, phase=Phase.VOID, pending_id="call-2"),
        ],
    )

    settled = balances.get_balance(database, login="alice")
    assert (settled.balance_micros, settled.pending_micros, settled.available_micros) == (16_800_000, 0, 16_800_000)
    assert totals(database, north) == (0, 3_200_000, 0, 0)
    assert stored_transfer(database, "call-2.void").amount_micros == 4_000_000
    with pytest.raises(ledger_store.TransferRefused) as refused:
        ledger.execute(database, [TransferRequest("call-1.again", None, phase=Phase.POST, pending_id="call-1")])
    assert refused.value.reason == "pending_transfer_already_posted"


def test_a_reservation_created_and_posted_in_one_batch_through_the_database(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=20_000_000, transfer_id="pay-1")
    alice, north = account(database, "alice"), account(database, "north", AccountPurpose.REVENUE)

    ledger.execute(
        database,
        [
            TransferRequest("call-1", 5_000_000, alice, north, phase=Phase.PENDING),
            TransferRequest("call-1.post", 1_500_000, phase=Phase.POST, pending_id="call-1"),
        ],
    )

    assert totals(database, alice) == (1_500_000, 20_000_000, 0, 0)
    assert totals(database, north) == (0, 1_500_000, 0, 0)


def test_void_expired_releases_reservations_past_their_timeout_once(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=20_000_000, transfer_id="pay-1")
    alice, north = account(database, "alice"), account(database, "north", AccountPurpose.REVENUE)

    def reserve(transfer_id: str, amount_micros: int, timeout_seconds: int) -> None:
        ledger.execute(
            database,
            [
                TransferRequest(
                    transfer_id, amount_micros, alice, north, phase=Phase.PENDING, timeout_seconds=timeout_seconds
                )
            ],
            now=T0,
        )

    reserve("call-short", 1_000_000, 60)
    reserve("call-long", 2_000_000, 600)
    reserve("call-posted", 3_000_000, 60)
    reserve("call-open", 4_000_000, 0)  # no timeout: its owner must resolve it
    ledger.execute(
        database,
        [TransferRequest("call-posted.post", None, phase=Phase.POST, pending_id="call-posted")],
        now=T0 + timedelta(seconds=30),
    )

    assert ledger.void_expired(database, now=T0 + timedelta(seconds=59)) == 0
    assert ledger.void_expired(database, now=T0 + timedelta(seconds=60)) == 1
    assert ledger.void_expired(database, now=T0 + timedelta(seconds=60)) == 0

    assert totals(database, alice) == (3_000_000, 20_000_000, 6_000_000, 0)
    void = stored_transfer(database, ledger.expiry_void_id("call-short"))
    assert (void.phase, void.pending_id, void.amount_micros) == (Phase.VOID, "call-short", 1_000_000)

    assert ledger.void_expired(database, now=T0 + timedelta(days=1)) == 1  # call-long
    assert totals(database, alice) == (3_000_000, 20_000_000, 4_000_000, 0)


def test_void_expired_works_through_more_than_one_batch(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=20_000_000, transfer_id="pay-1")
    alice, north = account(database, "alice"), account(database, "north", AccountPurpose.REVENUE)
    ledger.execute(
        database,
        [
            TransferRequest(f"call-{i}", 1_000_000, alice, north, phase=Phase.PENDING, timeout_seconds=10)
            for i in range(5)
        ],
        now=T0,
    )

    assert ledger.void_expired(database, now=T0 + timedelta(seconds=10), batch_size=2) == 5

    assert totals(database, alice) == (0, 20_000_000, 0, 0)


@pytest.mark.parametrize("statement", ["UPDATE transfers SET amount_micros = 1", "DELETE FROM transfers"])
def test_transfers_are_append_only_at_the_database(database: Database, statement: str) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")

    with pytest.raises(DBAPIError, match="append-only"), database.transaction() as connection:
        connection.execute(text(statement))

    assert stored_transfer(database, "pay-1").amount_micros == 25_000_000


def test_topups_and_adjustments_move_exact_amounts(database: Database) -> None:
    build_tree(database)

    balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1", reference="card 42")
    balances.adjust(database, login="alice", amount_micros=-5_250_000, reason="double-billed call", transfer_id="adj-1")
    balances.adjust(database, login="alice", amount_micros=250_000, reason="goodwill", transfer_id="adj-2")

    assert balances.get_balance(database, login="alice").balance_micros == 20_000_000
    assert balance(database, account(database, "north", AccountPurpose.ISSUANCE)) == -20_000_000
    correction = stored_transfer(database, "adj-1")
    assert (correction.kind, correction.reference, correction.amount_micros) == (
        TransferKind.ADJUSTMENT,
        "double-billed call",
        5_250_000,
    )
    assert correction.debit_account_id == account(database, "alice")


def test_an_adjustment_down_respects_the_floor(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")

    assert (
        refusal(
            balances.adjust,
            database=database,
            login="alice",
            amount_micros=-25_000_001,
            reason="x",
            transfer_id="adj-1",
        )
        == "insufficient_funds"
    )
    assert (
        refusal(balances.adjust, database=database, login="alice", amount_micros=0, reason="x", transfer_id="adj-2")
        == "amount_must_not_be_zero"
    )
    assert (
        refusal(balances.adjust, database=database, login="alice", amount_micros=1, reason="  ", transfer_id="adj-3")
        == "reason_required"
    )
    assert balances.get_balance(database, login="alice").balance_micros == 25_000_000


def test_the_provider_has_no_owner_to_top_it_up(database: Database) -> None:
    build_tree(database)

    assert refusal(balances.topup, database=database, login="house", amount_micros=1, transfer_id="t") == (
        "provider_has_no_owner"
    )
    assert refusal(balances.set_credit_limit, database=database, login="house", credit_limit_micros=1) == (
        "provider_has_no_owner"
    )


def test_a_credit_limit_lets_a_wallet_go_below_zero_and_cannot_drop_below_what_is_used(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=20_000_000, transfer_id="pay-1")

    limited = balances.set_credit_limit(database, login="alice", credit_limit_micros=10_000_000)
    assert (limited.balance_micros, limited.credit_limit_micros, limited.available_micros) == (
        20_000_000,
        10_000_000,
        30_000_000,
    )
    balances.adjust(database, login="alice", amount_micros=-27_000_000, reason="calls billed late", transfer_id="adj-1")
    assert balances.get_balance(database, login="alice").available_micros == 3_000_000  # -7 + 10

    assert refusal(balances.set_credit_limit, database=database, login="alice", credit_limit_micros=6_999_999) == (
        "credit_limit_below_usage"
    )
    assert refusal(balances.set_credit_limit, database=database, login="alice", credit_limit_micros=-1) == (
        "credit_limit_invalid"
    )
    lowered = balances.set_credit_limit(database, login="alice", credit_limit_micros=7_000_000)

    assert (lowered.balance_micros, lowered.credit_limit_micros, lowered.available_micros) == (-7_000_000, 7_000_000, 0)


def test_a_reservation_counts_as_usage_for_the_credit_limit(database: Database) -> None:
    build_tree(database)
    balances.set_credit_limit(database, login="alice", credit_limit_micros=10_000_000)
    ledger.execute(
        database,
        [
            TransferRequest(
                "call-1",
                4_000_000,
                account(database, "alice"),
                account(database, "north", AccountPurpose.REVENUE),
                phase=Phase.PENDING,
            )
        ],
    )

    assert refusal(balances.set_credit_limit, database=database, login="alice", credit_limit_micros=3_999_999) == (
        "credit_limit_below_usage"
    )
    ledger.execute(database, [TransferRequest("call-1.void", None, phase=Phase.VOID, pending_id="call-1")])
    assert balances.set_credit_limit(database, login="alice", credit_limit_micros=0).available_micros == 0


def currency_sums(database: Database) -> dict[str, tuple[int, int]]:
    current = ledger_store.current_accounts().subquery()  # rows + unfolded postings
    with database.reading() as connection:
        rows = connection.execute(
            select(current.c.currency, func.sum(current.c.debits_posted), func.sum(current.c.credits_posted)).group_by(
                current.c.currency
            )
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in rows}


def exchange_account(database: Database, currency: str) -> int:
    return account(database, "house", AccountPurpose.EXCHANGE, currency)


def test_ten_dollars_to_a_euro_wallet_arrive_as_nine_euros_twenty(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")
    balances.set_exchange_rate(database, base_currency="USD", quote_currency="EUR", rate="0.92")

    applied = balances.move_between_wallets(
        database, from_login="alice", to_login="eloise", amount_micros=10_000_000, transfer_id="fx-1"
    )

    assert balances.get_balance(database, login="alice").balance_micros == 15_000_000
    assert balances.get_balance(database, login="eloise").balance_micros == 9_200_000
    assert [(t.id, t.currency, t.amount_micros, t.exchange_rate) for t in applied.transfers] == [
        ("fx-1", "USD", 10_000_000, Decimal("0.92")),
        ("fx-1.fx", "EUR", 9_200_000, Decimal("0.92")),
    ]
    assert stored_transfer(database, "fx-1.fx").exchange_rate == Decimal("0.92")
    assert balance(database, exchange_account(database, "USD")) == 10_000_000
    assert balance(database, exchange_account(database, "EUR")) == -9_200_000
    sums = currency_sums(database)
    assert sums["USD"] == (35_000_000, 35_000_000)  # top-up 25 + conversion leg 10
    assert sums["EUR"] == (9_200_000, 9_200_000)


def test_a_conversion_uses_the_inverse_of_the_reverse_rate_when_only_that_exists(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="eloise", amount_micros=10_000_000, transfer_id="pay-1")
    balances.set_exchange_rate(database, base_currency="USD", quote_currency="EUR", rate="1.25")

    applied = balances.move_between_wallets(
        database, from_login="eloise", to_login="alice", amount_micros=5_000_000, transfer_id="fx-1"
    )

    assert balances.get_balance(database, login="alice").balance_micros == 4_000_000  # 5 EUR / 1.25
    assert balances.get_balance(database, login="eloise").balance_micros == 5_000_000
    assert [t.exchange_rate for t in applied.transfers] == [Decimal("0.8"), Decimal("0.8")]
    assert [stored_transfer(database, i).exchange_rate for i in ("fx-1", "fx-1.fx")] == [Decimal("0.8")] * 2
    assert currency_sums(database) == {"USD": (4_000_000, 4_000_000), "EUR": (15_000_000, 15_000_000)}


def test_a_conversion_without_a_rate_is_refused_and_moves_nothing(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")
    before = snapshot(database)

    assert (
        refusal(
            balances.move_between_wallets,
            database=database,
            from_login="alice",
            to_login="eloise",
            amount_micros=10_000_000,
            transfer_id="fx-1",
        )
        == "exchange_rate_missing"
    )
    assert snapshot(database) == before


def test_a_conversion_beyond_the_funds_is_refused_as_a_whole(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=5_000_000, transfer_id="pay-1")
    balances.set_exchange_rate(database, base_currency="USD", quote_currency="EUR", rate="0.92")
    with database.reading() as connection:  # open the exchange accounts first, so the snapshot counts them
        provider = tree_store.find_provider(connection)
    assert provider is not None
    database.run(
        lambda connection: [
            balances.account_id(connection, provider, AccountPurpose.EXCHANGE, currency) for currency in ("USD", "EUR")
        ]
    )
    before = snapshot(database)

    assert (
        refusal(
            balances.move_between_wallets,
            database=database,
            from_login="alice",
            to_login="eloise",
            amount_micros=5_000_001,
            transfer_id="fx-1",
        )
        == "insufficient_funds"
    )
    assert snapshot(database) == before


def test_a_retried_conversion_answers_with_the_first_rate_even_after_the_rate_changed(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=25_000_000, transfer_id="pay-1")
    balances.set_exchange_rate(database, base_currency="USD", quote_currency="EUR", rate="0.92")
    first = balances.move_between_wallets(
        database, from_login="alice", to_login="eloise", amount_micros=10_000_000, transfer_id="fx-1"
    )
    balances.set_exchange_rate(database, base_currency="USD", quote_currency="EUR", rate="0.95")

    retry = balances.move_between_wallets(
        database, from_login="alice", to_login="eloise", amount_micros=10_000_000, transfer_id="fx-1"
    )

    assert retry.already_existed
    assert retry.transfers == first.transfers
    assert balances.get_balance(database, login="eloise").balance_micros == 9_200_000  # once, at 0.92


def test_a_batch_that_repeats_only_some_recorded_ids_is_refused_and_writes_nothing(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=10_000_000, transfer_id="pay-1")
    alice, bob = account(database, "alice"), account(database, "bob")
    ledger.execute(database, [TransferRequest("gift-1", 1_000_000, alice, bob)])
    before = snapshot(database)

    for batch, index in (
        ([TransferRequest("gift-1", 1_000_000, alice, bob), TransferRequest("gift-2", 1_000_000, alice, bob)], 1),
        ([TransferRequest("gift-3", 1_000_000, alice, bob), TransferRequest("gift-1", 1_000_000, alice, bob)], 0),
    ):
        with pytest.raises(ledger_store.TransferRefused) as refused:
            ledger.execute(database, batch)
        assert refused.value.failure == Failure(index, TransferError.BATCH_PARTIALLY_EXISTS)

    assert snapshot(database) == before


def test_a_repeat_answers_with_the_recorded_transfer_even_when_it_could_not_be_made_again(database: Database) -> None:
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=10_000_000, transfer_id="pay-1")
    alice, bob = account(database, "alice"), account(database, "bob")
    first = ledger.execute(database, [TransferRequest("all-of-it", 10_000_000, alice, bob)])
    reserved = ledger.execute(database, [TransferRequest("hold", 5_000_000, bob, alice, phase=Phase.PENDING)])
    posted = ledger.execute(database, [TransferRequest("hold.post", None, phase=Phase.POST, pending_id="hold")])
    before = snapshot(database)

    # Alice has nothing left and "hold" is posted: only the lookup of earlier attempts can answer these.
    for request, recorded in (
        (TransferRequest("all-of-it", 10_000_000, alice, bob), first),
        (TransferRequest("hold", 5_000_000, bob, alice, phase=Phase.PENDING), reserved),
        (TransferRequest("hold.post", None, phase=Phase.POST, pending_id="hold"), posted),
    ):
        again = ledger.execute(database, [request])
        assert (again.already_existed, again.transfers) == (True, recorded.transfers)

    assert snapshot(database) == before


def test_a_transfer_goes_through_after_its_pooled_connection_was_cut(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("a server-side disconnect exists only on PostgreSQL")
    build_tree(database)
    balances.topup(database, login="alice", amount_micros=10_000_000, transfer_id="pay-1")
    alice, bob = account(database, "alice"), account(database, "bob")
    with database.reading() as connection:
        backend_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    cutter = Database(database.url)
    try:
        with cutter.reading() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid}).scalar_one()
    finally:
        cutter.dispose()

    ledger.execute(database, [TransferRequest("gift-1", 1_000_000, alice, bob)])

    assert balance(database, bob) == 1_000_000
    assert stored_transfer(database, "gift-1").amount_micros == 1_000_000
