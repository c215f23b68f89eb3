"""Dial plans: what a caller dialed, as E.164 digits."""

from __future__ import annotations

import pytest

from tollway.errors import Refusal
from tollway.rating.dialplan import E164_DIGITS, INTERNATIONAL, NUMBER_DIGITS_MAX, DialPlan

UK = DialPlan(country_code="44")  # 00 international, 0 national
NANP = DialPlan(country_code="1", international_prefix="011", national_prefix="1")
LONDON = "442079460000"
NEW_YORK = "12125550100"


def reason_of(dial_plan: DialPlan, dialed: str) -> str:
    with pytest.raises(Refusal) as refusal:
        dial_plan.normalize(dialed)
    return refusal.value.reason


@pytest.mark.parametrize("dial_plan", [INTERNATIONAL, UK, NANP, E164_DIGITS], ids=["intl", "uk", "nanp", "e164"])
def test_a_plus_number_is_international_under_every_dial_plan(dial_plan: DialPlan) -> None:
    assert dial_plan.normalize("+44 20 7946 0000") == LONDON
    assert dial_plan.normalize("+1 212 555 0100") == NEW_YORK
    assert dial_plan.normalize("+442079460000") == LONDON


def test_the_international_prefix_00_is_dropped() -> None:
    assert UK.normalize("0033 1 23 45 67 89") == "33123456789"
    assert INTERNATIONAL.normalize("00 44 20 7946 0000") == LONDON


def test_north_americas_international_prefix_011_is_dropped() -> None:
    assert NANP.normalize("011 44 20 7946 0000") == LONDON
    assert NANP.normalize("01133123456789") == "33123456789"


def test_the_uk_national_prefix_0_becomes_the_country_code_44() -> None:
    assert UK.normalize("020 7946 0000") == LONDON
    assert UK.normalize("07700 900123") == "447700900123"


def test_the_north_american_national_prefix_1_becomes_the_country_code_1() -> None:
    assert NANP.normalize("1 (212) 555-0100") == NEW_YORK
    assert NANP.normalize("1-800-555-0199") == "18005550199"


def test_the_international_prefix_is_recognized_before_the_national_one() -> None:
    assert UK.normalize("0044 20 7946 0000") == LONDON  # not 44 + "044..."


def test_anything_else_is_taken_as_international_digits_already() -> None:
    assert UK.normalize(LONDON) == LONDON
    assert NANP.normalize(LONDON) == LONDON
    assert INTERNATIONAL.normalize(LONDON) == LONDON


def test_without_a_country_code_the_national_prefix_is_left_alone() -> None:
    assert INTERNATIONAL.normalize("020 7946 0000") == "02079460000"
    assert DialPlan(country_code="", national_prefix="0").normalize("07700900123") == "07700900123"


@pytest.mark.parametrize(
    "dialed", ["+44 (20) 7946-0000", "+44.20.7946.0000", "+44/20/7946/0000", "+44 - 20 - 7946 0000", " +442079460000 "]
)
def test_spaces_dots_dashes_parentheses_and_slashes_are_ignored(dialed: str) -> None:
    assert UK.normalize(dialed) == LONDON


@pytest.mark.parametrize(
    "dialed",
    [
        "",
        "   ",
        "+",
        "++44 20 7946 0000",
        "00",
        "abc",
        "+44 20 ABCD 0000",
        "*21#",
        "+44\t2079460000",
        "+44_2079460000",
        "+٤٤٢٠٧٩٤٦٠٠٠٠",  # digits, but not ASCII ones
        "+" + "1" * (NUMBER_DIGITS_MAX + 1),
    ],
)
def test_a_dialed_string_with_no_number_or_anything_but_digits_left_is_refused(dialed: str) -> None:
    assert reason_of(UK, dialed) == "number_invalid"


def test_an_international_prefix_alone_is_refused() -> None:
    assert reason_of(NANP, "011") == "number_invalid"
    assert reason_of(INTERNATIONAL, "00 ") == "number_invalid"


@pytest.mark.parametrize("dialed", ["", "+", "abc", "+44 20 ABCD 0000", "*21#"])
def test_garbage_is_refused_under_e164_digits_too(dialed: str) -> None:
    assert reason_of(E164_DIGITS, dialed) == "number_invalid"


def test_a_number_of_twenty_digits_is_the_longest_accepted() -> None:
    assert UK.normalize("+" + "1" * 20) == "1" * 20
    assert reason_of(UK, "0" + "1" * 20) == "number_invalid"  # 44 + 20 digits: 22


def test_the_refusal_quotes_what_was_dialed() -> None:
    with pytest.raises(Refusal, match="'\\*21#'"):
        UK.normalize("*21#")


@pytest.mark.parametrize(
    "fields",
    [
        {"country_code": "0"},
        {"country_code": "044"},
        {"country_code": "4444"},
        {"country_code": "4a"},
        {"country_code": "+44"},
        {"country_code": "٤٤"},
        {"international_prefix": "00000"},
        {"international_prefix": "0x"},
        {"international_prefix": "+"},
        {"national_prefix": "000"},
        {"national_prefix": "a"},
    ],
)
def test_an_invalid_dial_plan_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(Refusal) as refusal:
        DialPlan(**fields)
    assert refusal.value.reason == "dial_plan_invalid"


def test_dial_plans_of_the_longest_allowed_parts_or_of_empty_parts_are_accepted() -> None:
    assert DialPlan(country_code="971", international_prefix="0011", national_prefix="06").country_code == "971"
    assert DialPlan(country_code="", international_prefix="", national_prefix="") == E164_DIGITS


def test_e164_digits_drops_only_the_plus_and_separators() -> None:
    assert E164_DIGITS.normalize("+44 20 7946 0000") == LONDON
    assert E164_DIGITS.normalize(LONDON) == LONDON
    assert E164_DIGITS.normalize("0044 20 7946 0000") == "00442079460000"  # no international prefix to drop
    assert E164_DIGITS.normalize("020 7946 0000") == "02079460000"  # nor a national one


def test_the_default_dial_plan_is_international_with_00() -> None:
    assert DialPlan() == INTERNATIONAL
    assert (INTERNATIONAL.country_code, INTERNATIONAL.international_prefix) == ("", "00")


def test_a_bracketed_national_prefix_after_the_country_code_is_not_dialed() -> None:
    assert DialPlan("44").normalize("+44 (0)20 7946 0000") == "442079460000"
    assert DialPlan("44").normalize("0044 (0)20 7946 0000") == "442079460000"
