"""The shop's pure rules: payment states, Stripe's minor units, top-up offers, the refund policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.errors import Refusal
from tollway.ledger.model import TRANSFER_ID_PATTERN
from tollway.money import AMOUNT_MICROS_MAX, ISO_4217_CODES
from tollway.payments.model import (
    TRANSITIONS,
    GatewayKind,
    PaymentState,
    TopupOffer,
    check_refund,
    check_topup,
    check_transition,
    micros_from_minor,
    minor_from_micros,
    minor_unit_exponent,
    payment_transfer_id,
    refund_transfer_id,
    refundable_micros,
    unspent_micros,
)

S = PaymentState


def test_a_payment_moves_only_along_its_arrows() -> None:
    arrows = {
        S.CREATED: {S.PENDING, S.CONFIRMED, S.FAILED, S.CANCELED},
        S.PENDING: {S.CONFIRMED, S.FAILED, S.CANCELED},
        S.FAILED: {S.CONFIRMED},  # the gateway's word that money arrived wins
        S.CANCELED: {S.CONFIRMED},
        S.CONFIRMED: {S.REFUNDED},
        S.REFUNDED: set(),
    }
    assert arrows == TRANSITIONS
    with pytest.raises(Refusal, match="a confirmed payment cannot become pending"):
        check_transition(S.CONFIRMED, S.PENDING)
    for state in S:
        with pytest.raises(Refusal):
            check_transition(state, state)  # a repeat is not a move: callers answer it without one


@pytest.mark.parametrize(
    ("currency", "minor", "micros"),
    [
        ("USD", 2000, 20_000_000),  # 20.00
        ("EUR", 1, 10_000),  # one cent
        ("JPY", 1500, 1_500_000_000),  # zero-decimal: 1,500 yen
        ("KRW", 1, 1_000_000),
        ("KWD", 1234, 1_234_000),  # three-decimal: 1.234 dinars
        ("BHD", 10, 10_000),
    ],
)
def test_stripe_minor_units_convert_exactly(currency: str, minor: int, micros: int) -> None:
    assert micros_from_minor(minor, currency) == micros
    assert minor_from_micros(micros, currency) == minor


def test_an_amount_finer_than_the_currency_is_refused_not_rounded() -> None:
    with pytest.raises(Refusal, match="JPY is paid with 0 decimals"):
        minor_from_micros(1_500_500_000, "JPY")
    with pytest.raises(Refusal, match="USD is paid with 2 decimals"):
        minor_from_micros(20_005_000, "USD")
    for wrong in (-1, 1.5, True, "2000", None):
        with pytest.raises(Refusal, match="not an amount"):
            micros_from_minor(wrong, "USD")


@given(st.sampled_from(sorted(ISO_4217_CODES)), st.integers(min_value=0, max_value=10**9))
def test_minor_units_round_trip_for_every_currency(currency: str, minor: int) -> None:
    micros = micros_from_minor(minor, currency)
    assert minor_from_micros(micros, currency) == minor
    assert micros * 10 ** minor_unit_exponent(currency) == minor * 10**6


def test_a_top_up_is_a_fixed_amount_or_a_free_one_within_bounds() -> None:
    offer = TopupOffer("USD", (10_000_000, 20_000_000), free_min_micros=5_000_000, free_max_micros=500_000_000)
    check_topup(offer, 20_000_000)
    check_topup(offer, 37_450_000)
    for amount, reason in ((4_990_000, "amount_out_of_range"), (500_010_000, "amount_out_of_range")):
        with pytest.raises(Refusal) as refused:
            check_topup(offer, amount)
        assert refused.value.reason == reason
    with pytest.raises(Refusal, match="2 decimals"):
        check_topup(offer, 37_455_000)
    fixed_only = TopupOffer("USD", (10_000_000,))
    with pytest.raises(Refusal) as refused:
        check_topup(fixed_only, 11_000_000)
    assert refused.value.reason == "amount_not_offered"
    with pytest.raises(Refusal) as refused:
        check_topup(None, 10_000_000)
    assert refused.value.reason == "shop_offers_no_topups"


@pytest.mark.parametrize(
    "offer",
    [
        {"amounts_micros": (10_000_000, 10_000_000)},  # twice
        {"amounts_micros": (1_500_000,), "currency": "JPY"},  # 1.5 yen
        {"free_min_micros": 5_000_000},  # a minimum without a maximum
        {"free_min_micros": 9_000_000, "free_max_micros": 5_000_000},
        {"amounts_micros": tuple(range(1_000_000, 14_000_000, 1_000_000))},  # 13 amounts
        {"amounts_micros": (AMOUNT_MICROS_MAX + 1,)},
    ],
)
def test_an_offer_that_cannot_be_paid_is_refused_when_it_is_set(offer: dict[str, object]) -> None:
    with pytest.raises(Refusal) as refused:
        TopupOffer(**{"currency": "USD", **offer})  # type: ignore[arg-type]
    assert refused.value.reason in ("offer_invalid", "amount_too_precise")


def test_a_refund_takes_only_unspent_money_and_no_more_than_is_left() -> None:
    # Paid 20.00, 5.00 refunded already, 12.00 in the wallet with 1.00 reserved by a call: 11.00 unspent.
    unspent = unspent_micros(balance_micros=12_000_000, pending_micros=1_000_000)
    assert unspent == 11_000_000
    assert refundable_micros(paid_micros=20_000_000, refunded_micros=5_000_000, unspent=unspent) == 11_000_000
    check_refund(
        amount_micros=11_000_000, paid_micros=20_000_000, refunded_micros=5_000_000, unspent=unspent, currency="USD"
    )
    with pytest.raises(Refusal, match=r"11\.000000 USD is unspent"):
        check_refund(
            amount_micros=11_000_001, paid_micros=20_000_000, refunded_micros=5_000_000, unspent=unspent, currency="USD"
        )
    with pytest.raises(Refusal, match=r"15\.000000 USD of this payment is left"):
        check_refund(
            amount_micros=16_000_000,
            paid_micros=20_000_000,
            refunded_micros=5_000_000,
            unspent=50_000_000,
            currency="USD",
        )
    assert unspent_micros(balance_micros=-3_000_000, pending_micros=0) == 0  # on credit: nothing is unspent


@given(
    paid=st.integers(1, 10**12),
    refunded=st.integers(0, 10**12),
    balance=st.integers(-(10**12), 10**12),
    pending=st.integers(0, 10**12),
    amount=st.integers(1, 10**12),
)
def test_an_allowed_refund_never_exceeds_the_payment_nor_the_unspent_balance(
    paid: int, refunded: int, balance: int, pending: int, amount: int
) -> None:
    refunded = min(refunded, paid)
    unspent = unspent_micros(balance_micros=balance, pending_micros=pending)
    try:
        check_refund(amount_micros=amount, paid_micros=paid, refunded_micros=refunded, unspent=unspent, currency="EUR")
    except Refusal:
        assert amount > refundable_micros(paid_micros=paid, refunded_micros=refunded, unspent=unspent)
    else:
        assert amount <= paid - refunded and amount <= balance - pending
        assert amount <= refundable_micros(paid_micros=paid, refunded_micros=refunded, unspent=unspent)


def test_transfer_ids_derive_from_the_gateways_ids_and_fit_the_ledger() -> None:
    session = "cs_test_a1" + "B" * 56  # 66 characters, as Stripe's are
    credit = payment_transfer_id(GatewayKind.STRIPE, 12, session)
    assert credit == f"pay:stripe:12:{session}"
    assert payment_transfer_id(GatewayKind.STRIPE, 12, session) == credit
    long_id = "cs_" + "x" * 97
    hashed = payment_transfer_id(GatewayKind.STRIPE, 12, long_id)
    assert hashed == payment_transfer_id(GatewayKind.STRIPE, 12, long_id) and long_id not in hashed
    longest = [  # the longest ids the shop makes, from the longest session id kept whole
        refund_transfer_id(payment_transfer_id(GatewayKind.STRIPE, 2**31 - 1, "cs_" + "x" * 69), key)
        for key in (f"total-{AMOUNT_MICROS_MAX}", "r2147483647:post", "r2147483647:void")
    ]
    for transfer_id in (credit, hashed, *longest):
        assert TRANSFER_ID_PATTERN.match(transfer_id), transfer_id
    with pytest.raises(Refusal):
        payment_transfer_id(GatewayKind.STRIPE, 12, "cs_test/../../x")


def test_the_webhook_tolerance_is_the_sdks_and_commands_start_without_the_sdk() -> None:
    import subprocess
    import sys

    import stripe

    from tollway.payments.gateways.stripe import WEBHOOK_TOLERANCE_SECONDS

    assert WEBHOOK_TOLERANCE_SECONDS == stripe.Webhook.DEFAULT_TOLERANCE == 300
    loaded = "import sys, tollway.cli.main; print(sorted({'stripe', 'weasyprint'} & set(sys.modules)))"
    answer = subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True, check=True, timeout=120)
    assert answer.stdout.strip() == "[]"  # imported when a payment, a refund, a webhook or a PDF needs them
