"""Rate sheets as carriers send them, read in Tollway's own layout: their column names, separators, prefixes,
decimal commas and billing increments; and a clear word when a sheet is given in the wrong layout."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from tollway.rating.sheets import Layout, SheetRefused, read_sheet
from tollway.rating.tariff import RateEntry

# An A-Z deck from a wholesale carrier: Country and Description both (the Description is used), "+" and
# "00" prefixes, the rate with its currency in brackets, effective dates, a Change column for the reader,
# and the billing increment as first/next seconds.
AZ_DECK = """\
Country,Description,Code,Rate (USD),Effective Date,Change,Billing Increment
United Kingdom,UK - Fixed,+44,0.0065,2026-12-01,Unchanged,1/1
United Kingdom,UK - Mobile,447,0.0120,2026-12-01,Increase,60/60
France,France - Fixed,0033,0.0071,2026-12-08,Decrease,30/6
"""

# A European carrier: semicolons, decimal commas, a connect fee, its own spelling of every name.
SEMICOLONS = """\
Dial Code;Destination;Rate per minute;Connection Fee;Increment
49;Germany;0,0090;0,0100;60/60
4915;Germany - Mobile;0,0450;0;1/1
"""

# Tab-separated, upper case, with spaces around the names.
TABS = "PREFIX \t DESTINATION\t PRICE/MIN \tNEXT INCREMENT\n1212\tNew York\t0.004\t6\n1\tUSA\t0.005\t\n"

VOIPSWITCH_SHEET = """\
prefix;description;voice_rate;from_day;to_day;from_hour;to_hour;grace_period;minimal_time;resolution;\
rate_multiplier;rate_addition;surcharge_time;surcharge_amount;free_seconds
44;UK;0.05;-1;-1;-1;-1;-1;-1;-1;1;0;0;0;0
"""


def read(text: str, layout: Layout = Layout.NATIVE) -> list[RateEntry]:
    return read_sheet(io.BytesIO(text.encode()), layout=layout, time_zone="UTC")


def problems(text: str, layout: Layout = Layout.NATIVE) -> list[tuple[int, str, str]]:
    with pytest.raises(SheetRefused) as refused:
        read(text, layout)
    return [(e.line, e.reason, e.message) for e in refused.value.errors]


def test_an_a_to_z_deck_is_read_with_its_own_column_names() -> None:
    december = datetime(2026, 12, 1, tzinfo=UTC)
    assert read(AZ_DECK) == [
        RateEntry("44", "UK - Fixed", 6_500, minimal_time=1, resolution=1, valid_from=december),
        RateEntry("447", "UK - Mobile", 12_000, minimal_time=60, resolution=60, valid_from=december),
        RateEntry("33", "France - Fixed", 7_100, minimal_time=30, resolution=6, valid_from=december.replace(day=8)),
    ]


def test_a_semicolon_sheet_with_decimal_commas_is_read() -> None:
    assert read(SEMICOLONS) == [
        RateEntry("49", "Germany", 9_000, connect_fee_micros=10_000, minimal_time=60, resolution=60),
        RateEntry("4915", "Germany - Mobile", 45_000, minimal_time=1, resolution=1),
    ]


def test_a_tab_separated_sheet_in_capitals_is_read_and_an_empty_increment_is_the_tariffs() -> None:
    assert read(TABS) == [RateEntry("1212", "New York", 4_000, resolution=6), RateEntry("1", "USA", 5_000)]


def test_an_increment_tollway_bills_differently_is_refused_on_its_line() -> None:
    sheet = "Code,Destination,Rate,Increment\n44,UK,0.01,45/30\n33,France,0.01,sixty\n1,USA,0.01,60\n"
    found = problems(sheet)
    assert [(line, reason) for line, reason, _ in found] == [(2, "increment_unsupported"), (3, "increment_invalid")]
    assert "only when 45 is a multiple of 30" in found[0][2]


def test_two_columns_for_one_thing_and_unknown_columns_are_refused_on_line_1() -> None:
    found = problems("Code,Destination,Rate,Price,Country Code\n44,UK,0.01,0.02,44\n")
    assert [(line, reason) for line, reason, _ in found] == [(1, "header_invalid"), (1, "header_invalid")]
    messages = " | ".join(message for _, _, message in found)
    assert "unknown column 'Country Code'" in messages
    assert "column 'price' appears 2 times: 'Rate', 'Price'" in messages
    steps_twice = problems("Code,Destination,Rate,Increment,Resolution\n44,UK,0.01,1/1,1\n")
    assert steps_twice[0][1] == "header_invalid" and "give the billing steps twice" in steps_twice[0][2]


def test_a_voipswitch_sheet_given_as_native_says_which_layout_it_is() -> None:
    headerless = VOIPSWITCH_SHEET.split("\n", 1)[1]
    for sheet in (VOIPSWITCH_SHEET, headerless):
        ((line, reason, message),) = problems(sheet)
        assert (line, reason) == (1, "layout_mismatch")
        assert message.startswith("this is a VoipSwitch sheet: import it in the VoipSwitch layout (format=voipswitch")


def test_a_native_or_carrier_sheet_given_as_voipswitch_says_so() -> None:
    for sheet in ("prefix,description,price\n44,UK,0.05\n", "prefix;description;price\n44;UK;0.05\n", AZ_DECK):
        ((line, reason, message),) = problems(sheet, Layout.VOIPSWITCH)
        assert (line, reason) == (1, "layout_mismatch")
        assert message == (
            "this is not a VoipSwitch sheet: import it in Tollway's own layout, which reads carriers' sheets too "
            "(format=native)"
        )
    assert read(VOIPSWITCH_SHEET, Layout.VOIPSWITCH) == [RateEntry("44", "UK", 50_000)]
