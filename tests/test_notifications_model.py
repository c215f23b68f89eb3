"""Low-balance notices as pure rules: thresholds, crossings, retries, addresses, branding, the words."""

from __future__ import annotations

from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from babel.numbers import parse_decimal
from hypothesis import given
from hypothesis import strategies as st

from tollway.display import Rounding, rounded
from tollway.errors import InvariantBroken, Refusal
from tollway.money import AMOUNT_MICROS_MAX, to_decimal
from tollway.notifications import model
from tollway.notifications.messages import (
    LANGUAGES,
    LowBalanceNotice,
    format_money,
    render_low_balance,
    words_language,
)
from tollway.notifications.model import (
    ARMED,
    RETRY_DELAY_SECONDS_FIRST,
    RETRY_DELAY_SECONDS_MAX,
    SEND_ATTEMPTS_MAX,
    SENDER_LENGTH_MAX,
    SUBJECT_LENGTH_MAX,
    Alert,
    Branding,
    Crossing,
)
from tollway.notifications.smtp import SmtpSettings

# -- thresholds and crossings ------------------------------------------------------------------------


def test_the_level_is_balance_plus_credit_limit() -> None:
    assert model.level_micros(credits_posted=10, debits_posted=7, credit_limit_micros=5) == 8


def test_an_own_threshold_beats_the_owners_default_and_none_means_no_notices() -> None:
    assert model.effective_threshold(2, 5) == 2
    assert model.effective_threshold(0, 5) == 0
    assert model.effective_threshold(None, 5) == 5
    assert model.effective_threshold(None, None) is None


@pytest.mark.parametrize(
    ("armed", "level", "threshold", "expected"),
    [
        (True, 4, 5, Crossing.FELL),
        (True, 5, 5, Crossing.NONE),  # at the threshold is not below it
        (True, 6, 5, Crossing.NONE),
        (False, 4, 5, Crossing.NONE),  # already told: nothing until it rises
        (False, 5, 5, Crossing.ROSE),  # back at the threshold re-arms
        (False, 6, 5, Crossing.ROSE),
        (True, -1, None, Crossing.NONE),  # no threshold: nothing, whatever the level
        (False, 10, None, Crossing.NONE),
    ],
)
def test_crossing(armed: bool, level: int, threshold: int | None, expected: Crossing) -> None:
    assert model.crossing(Alert(armed, 3), level_micros=level, threshold_micros=threshold) is expected


def test_a_fall_disarms_and_counts_a_rise_rearms_and_keeps_the_count() -> None:
    fallen = model.after(ARMED, Crossing.FELL)
    assert fallen == Alert(armed=False, crossings=1)
    assert model.after(fallen, Crossing.ROSE) == Alert(armed=True, crossings=1)
    assert model.after(fallen, Crossing.NONE) is fallen
    with pytest.raises(InvariantBroken):
        Alert(armed=True, crossings=-1)


@given(
    threshold=st.integers(min_value=0, max_value=10**9),
    levels=st.lists(st.integers(min_value=-(10**9), max_value=2 * 10**9), max_size=60),
)
def test_one_notice_per_fall_below_the_threshold(threshold: int, levels: list[int]) -> None:
    """Checked after each change of level: a notice for every fall from at-or-above (or the start) to below."""
    alert = ARMED
    notices = 0
    expected = 0
    was_below = False
    for level in levels:
        change = model.crossing(alert, level_micros=level, threshold_micros=threshold)
        notices += change is Crossing.FELL
        alert = model.after(alert, change)
        below = level < threshold
        expected += below and not was_below
        was_below = below
        assert alert.armed is not below  # armed exactly when at or above
    assert notices == expected == alert.crossings


def test_the_notice_key_names_the_account_and_its_fall() -> None:
    assert model.notice_key(12, 3) == "low_balance:12:3"
    with pytest.raises(InvariantBroken):
        model.notice_key(12, 0)


# -- retries --------------------------------------------------------------------------------------------


def test_retries_wait_30_seconds_then_double_up_to_an_hour() -> None:
    delays = [model.retry_delay_seconds(attempt) for attempt in range(1, 11)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


@given(st.integers(min_value=1, max_value=10**12))
def test_every_retry_delay_is_bounded(attempt: int) -> None:
    assert RETRY_DELAY_SECONDS_FIRST <= model.retry_delay_seconds(attempt) <= RETRY_DELAY_SECONDS_MAX


def test_an_email_is_given_up_on_after_the_last_attempt_or_a_permanent_refusal() -> None:
    assert model.next_attempt_in_seconds(1, retryable=True) == 30
    assert model.next_attempt_in_seconds(SEND_ATTEMPTS_MAX - 1, retryable=True) == 3600
    assert model.next_attempt_in_seconds(SEND_ATTEMPTS_MAX, retryable=True) is None
    assert model.next_attempt_in_seconds(1, retryable=False) is None
    with pytest.raises(InvariantBroken):
        model.retry_delay_seconds(0)


# -- addresses, names, amounts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["alice@example.com", "a.b+tag@mail.example.co.uk", "o'brien@example.ie", "x@xn--bcher-kva.example", "1@a.io"],
)
def test_plain_addresses_pass(address: str) -> None:
    assert model.check_email(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "",
        "alice",
        "alice@",
        "@example.com",
        "alice@examplecom",  # one label: a typo, most likely
        "al ice@example.com",
        "alice@example.com\n",
        "alice@exa_mple.com",
        ".alice@example.com",
        "alice.@example.com",
        "al..ice@example.com",
        '"alice"@example.com',
        "alice@-example.com",
        "alice@example-.com",
        "alice@example..com",
        "alice@1.2.3.4",
        "alicé@example.com",
        "alice@exämple.com",
        "a@b@example.com",
        "Alice <alice@example.com>",
        "alice@example.com\r\nBcc: all@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_anything_else_is_refused(address: str) -> None:
    with pytest.raises(Refusal) as refused:
        model.check_email(address)
    assert refused.value.reason == "email_invalid"


def test_a_configured_sender_may_be_on_a_one_label_domain() -> None:
    assert model.check_email("billing@localhost", dotted_domain=False) == "billing@localhost"
    assert model.parse_mailbox("Tollway <billing@localhost>") == Branding("Tollway", "billing@localhost")
    assert model.parse_mailbox("billing@example.com") == Branding("billing@example.com", "billing@example.com")
    for text in ("Tollway", "Tollway <>", "<billing@exa mple.com>"):
        with pytest.raises(Refusal) as refused:
            model.parse_mailbox(text)
        assert refused.value.reason == "mail_from_invalid"


@given(st.emails())
def test_every_address_that_passes_is_one_address_in_a_header(address: str) -> None:
    try:
        model.check_email(address)
    except Refusal:
        return
    assert address.isascii() and address.isprintable() and " " not in address
    message = EmailMessage(policy=default_policy)
    message["To"] = address
    header = message["To"]
    assert [a.addr_spec for a in header.addresses] == [address]


def test_brand_names_and_thresholds_are_checked() -> None:
    assert model.check_brand_name("North & Sons, «Telecom»") == "North & Sons, «Telecom»"
    for name in ("", "   ", "two\nlines", "tab\there", "x" * 201):
        with pytest.raises(Refusal) as refused:
            model.check_brand_name(name)
        assert refused.value.reason == "brand_name_invalid"
    assert model.check_threshold(0) == 0
    assert model.check_threshold(AMOUNT_MICROS_MAX) == AMOUNT_MICROS_MAX
    for micros in (-1, AMOUNT_MICROS_MAX + 1):
        with pytest.raises(Refusal) as refused:
            model.check_threshold(micros)
        assert refused.value.reason == "threshold_invalid"


# -- branding ---------------------------------------------------------------------------------------------

DEFAULT = Branding("Tollway", "billing@localhost")


def test_the_nearest_brand_name_and_the_nearest_sender_up_the_chain_each_win() -> None:
    north = ("North Telecom", "billing@north.example")
    atlas = ("Atlas Voice", "billing@atlas.example")
    assert model.branding([north, atlas], default=DEFAULT) == Branding("North Telecom", "billing@north.example")
    assert model.branding([(None, None), atlas], default=DEFAULT) == Branding("Atlas Voice", "billing@atlas.example")
    assert model.branding([("North", None), atlas], default=DEFAULT) == Branding("North", "billing@atlas.example")
    assert model.branding([(None, "n@north.example"), (None, None)], default=DEFAULT) == Branding(
        "Tollway", "n@north.example"
    )
    assert model.branding([], default=DEFAULT) == DEFAULT


def test_the_from_header_quotes_what_it_must() -> None:
    assert model.mailbox(Branding("North Telecom", "b@north.example")) == "North Telecom <b@north.example>"
    assert model.mailbox(Branding('North "NT", Inc.', "b@north.example")) == '"North \\"NT\\", Inc." <b@north.example>'


@given(name=st.text(min_size=1, max_size=200), local=st.text("abcxyz.", min_size=1, max_size=64))
def test_the_from_header_always_fits_and_parses_back_to_its_address(name: str, local: str) -> None:
    address = f"{local.strip('.').replace('..', '.') or 'x'}@{'d' * 60}.{'e' * 60}.{'f' * 60}.example"
    try:
        model.check_email(address)
    except Refusal:
        return
    text = model.mailbox(Branding(name, address))
    assert len(text) <= SENDER_LENGTH_MAX
    message = EmailMessage(policy=default_policy)
    message["From"] = text
    assert [a.addr_spec for a in message["From"].addresses] == [address]


def test_one_line_leaves_nothing_that_starts_a_new_line() -> None:
    assert model.one_line("a\r\nb\tc\u2028d\x00e") == "a  b c d e"


# -- languages and words -------------------------------------------------------------------------------


def test_a_language_falls_back_to_its_base_then_to_english() -> None:
    assert model.language_candidates("pt_BR") == ["pt_BR", "pt", "en"]
    assert model.language_candidates("pt-BR") == ["pt_BR", "pt", "en"]
    assert model.language_candidates("es") == ["es", "en"]
    assert model.language_candidates("en") == ["en"]
    assert words_language("pt_BR") == "pt"
    assert words_language("de_AT") == "de"
    assert words_language("it") == "en"
    assert words_language("zz_ZZ") == "en"
    assert set(LANGUAGES) >= {"en", "es", "fr", "de", "pt"}


def notice(language: str = "en", **changes: object) -> LowBalanceNotice:
    values: dict[str, object] = {
        "language": language,
        "currency": "EUR",
        "account_name": "Ana Pérez",
        "login": "ana",
        "level_micros": 12_345_670_000,
        "threshold_micros": 20_000_000_000,
        "brand_name": "North Telecom",
    }
    return LowBalanceNotice(**(values | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("language", "subject", "level", "greeting"),
    [
        ("en", "North Telecom: low balance on your account ana", "€12,345.67", "Hello Ana Pérez,"),
        ("es", "North Telecom: saldo bajo en su cuenta ana", "12.345,67\xa0€", "Hola, Ana Pérez:"),
        ("fr", "North Telecom : solde bas sur votre compte ana", "12\u202f345,67\xa0€", "Bonjour Ana Pérez,"),
        ("de", "North Telecom: Niedriges Guthaben auf Ihrem Konto ana", "12.345,67\xa0€", "Guten Tag Ana Pérez,"),
        ("pt", "North Telecom: saldo baixo na sua conta ana", "€\xa012.345,67", "Olá, Ana Pérez:"),
        ("pt_PT", "North Telecom: saldo baixo na sua conta ana", "12\xa0345,67\xa0€", "Olá, Ana Pérez:"),
        ("it", "North Telecom: low balance on your account ana", "12.345,67\xa0€", "Hello Ana Pérez,"),
    ],
)
def test_each_language_has_its_words_and_its_amounts(language: str, subject: str, level: str, greeting: str) -> None:
    rendered = render_low_balance(notice(language))
    assert rendered.subject == subject
    assert rendered.body.startswith(greeting + "\n")
    assert level in rendered.body
    assert rendered.body.rstrip().endswith("North Telecom")


def test_values_are_printed_as_they_are_but_on_one_line() -> None:
    rendered = render_low_balance(notice(account_name="O'Brien & <Sons>", brand_name="A\nBcc: x@example.com"))
    assert "O'Brien & <Sons>" in rendered.body  # plain text: no HTML escaping
    assert "\nBcc:" not in rendered.body and "\n" not in rendered.subject
    assert "A Bcc: x@example.com" in rendered.subject


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_longest_subject_fits(language: str) -> None:
    rendered = render_low_balance(notice(language, brand_name="B" * 200, login="l" * 63))
    assert len(rendered.subject) <= SUBJECT_LENGTH_MAX
    assert model.bounded("x" * 301, SUBJECT_LENGTH_MAX) == "x" * 299 + "…"
    assert model.bounded("x" * 300, SUBJECT_LENGTH_MAX) == "x" * 300


def test_amounts_are_shown_at_the_currencys_precision_never_six_decimals() -> None:
    assert format_money(4_999_000, "USD", "en") == "$5.00"
    assert format_money(4_999_999, "USD", "en", Rounding.DOWN) == "$4.99"
    assert format_money(4_990_001, "USD", "en", Rounding.UP) == "$5.00"
    assert format_money(4_500_000, "USD", "en") == "$4.50"
    assert format_money(100_000_000, "USD", "en") == "$100.00"
    assert format_money(-500_000, "EUR", "es") == "-0,50\xa0€"
    assert format_money(1_234_567_890, "EUR", "pl") == "1\xa0234,57\xa0€"
    assert format_money(12_345_678_900, "EUR", "pt") == "€\xa012.345,68"
    assert format_money(1_500_000, "JPY", "en") == "¥2"
    assert format_money(1_234_500, "KWD", "en") == "KWD1.235"


def test_a_level_below_its_threshold_never_reads_as_equal_to_it() -> None:
    notice = LowBalanceNotice(
        language="en",
        currency="USD",
        account_name="Ana",
        login="ana",
        level_micros=4_999_999,
        threshold_micros=5_000_000,
        brand_name="North",
    )
    assert "is $4.99, below the $5.00" in render_low_balance(notice).body


@given(
    st.integers(min_value=-AMOUNT_MICROS_MAX, max_value=AMOUNT_MICROS_MAX),
    st.sampled_from(list(Rounding)),
)
def test_a_formatted_amount_reads_back_as_the_amount_at_the_currencys_precision(
    micros: int, rounding: Rounding
) -> None:
    text = format_money(micros, "EUR", "de", rounding)
    number = parse_decimal(text.removesuffix("\xa0€"), locale="de")
    assert number == rounded(micros, "EUR", rounding)
    assert number.as_tuple().exponent == -2
    assert abs(number - to_decimal(micros)) < Decimal("0.01")
    if rounding is Rounding.DOWN:
        assert number <= to_decimal(micros)
    if rounding is Rounding.UP:
        assert number >= to_decimal(micros)


def test_the_smtp_settings_never_show_the_password() -> None:
    settings = SmtpSettings(username="relay", password="s3cret-value")
    assert "s3cret-value" not in repr(settings)


def test_addresses_in_headers_are_the_standard_librarys() -> None:
    assert str(Address(display_name="", addr_spec="a@b.example")) == "a@b.example"
