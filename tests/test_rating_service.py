"""Tariffs as a provider and its resellers run them, on SQLite and PostgreSQL: names, assignment,
rate sheets refused whole, derived tariffs following their base, quotes through the whole chain.

Demo chain of alice: alice pays north-city at north-city:retail (x1.25 + 0.005 on atlas-north:standard),
north-city pays atlas-north at atlas-north:standard (x1.10 on atlas:standard), atlas-north pays atlas
at atlas:standard (x1.10 on house:wholesale), atlas pays the provider at house:wholesale.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tollway.demo import load_demo
from tollway.errors import NotFound, Refusal
from tollway.rating import service as rating
from tollway.rating import subscriptions
from tollway.rating.loading import TABLES
from tollway.rating.plans import Period
from tollway.rating.quotes import quote
from tollway.rating.sheets import Layout, SheetRefused
from tollway.rating.tariff import Defaults, Derivation
from tollway.store.database import Database

MONDAY_10_UTC = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
LONDON = "+44 20 7946 0000"


@pytest.fixture(autouse=True)
def _fresh_tables() -> None:
    TABLES.clear()  # each test has its own database, whose tariff ids start again at 1


def amounts(database: Database, login: str, number: str, duration: int, start: datetime = MONDAY_10_UTC) -> list[int]:
    return [c.amount_micros for c in quote(database, login=login, dialed=number, start=start, duration=duration)[1]]


def sheet(text: str) -> io.BytesIO:
    return io.BytesIO(text.encode())


def test_a_call_to_london_is_charged_at_every_level_of_alices_chain(database: Database) -> None:
    load_demo(database)
    number, charges = quote(database, login="alice", dialed=LONDON, start=MONDAY_10_UTC, duration=95)
    assert number == "442079460000"
    assert [(c.account, c.tariff, c.prefix) for c in charges] == [
        ("alice", "north-city:retail", "4420"),
        ("north-city", "atlas-north:standard", "4420"),
        ("atlas-north", "atlas:standard", "4420"),
        ("atlas", "house:wholesale", "4420"),
    ]
    # house:wholesale 4420 is 0.015; x1.10 = 0.0165; x1.10 = 0.01815; x1.25 = 0.0226875 -> 0.022688 + 0.005.
    assert [c.price_micros for c in charges] == [27_688, 18_150, 16_500, 15_000]
    # 95 s per second: 27688 x 95 / 60 = 43839.33 -> 43840; 18150 x 95 / 60 = 28737.5 -> 28738; exact below.
    assert [c.amount_micros for c in charges] == [43_840, 28_738, 26_125, 23_750]


def test_a_reseller_sees_its_own_levels_of_a_quote_and_never_its_owners(database: Database) -> None:
    from tollway.access import service as access
    from tollway.access.model import Role

    load_demo(database)
    _, key = access.create_api_key(database, None, node_login="north-city", name="q", role=Role.RESELLER_ADMIN)
    principal = access.login_with_api_key(database, plaintext=key)
    _, charges = quote(database, login="alice", dialed=LONDON, start=MONDAY_10_UTC, duration=95, principal=principal)
    assert [c.account for c in charges] == ["alice", "north-city"]


def test_a_plan_pays_for_covered_calls_before_money_at_the_clients_level_only(database: Database) -> None:
    load_demo(database)  # alice has north-city:talk-100: 100 minutes a month to prefix 1
    _, charges = quote(database, login="alice", dialed="1 212 555 1234", start=MONDAY_10_UTC, duration=120)
    assert (charges[0].plan_seconds, charges[0].amount_micros) == (120, 0)
    # north-city still pays atlas-north for New York: house 0.009 x1.1 x1.1 = 0.01089 a minute, 6 s steps.
    assert (charges[1].billed_seconds, charges[1].amount_micros) == (120, 21_780)


def test_tariff_names_carry_their_owners_login_and_only_owners_of_clients_make_them(database: Database) -> None:
    load_demo(database)
    tariff = rating.create_tariff(database, owner_login="north-metro", name="Night owls")
    assert (tariff.name, tariff.currency, tariff.time_zone) == ("north-metro:Night owls", "USD", "UTC")
    with pytest.raises(Refusal) as exists:
        rating.create_tariff(database, owner_login="north-metro", name="Night owls")
    assert exists.value.reason == "tariff_exists"
    for owner, reason in [("alice", "tariff_owner_invalid"), ("agent-ana", "tariff_owner_invalid")]:
        with pytest.raises(Refusal) as refused:
            rating.create_tariff(database, owner_login=owner, name="mine")
        assert refused.value.reason == reason
    with pytest.raises(Refusal) as bad_name:
        rating.create_tariff(database, owner_login="north-metro", name="a:b")
    assert bad_name.value.reason == "tariff_name_invalid"


def test_an_owner_assigns_only_its_own_tariffs_in_the_childs_currency(database: Database) -> None:
    load_demo(database)
    assert rating.assign_tariff(database, login="bob", tariff="north-city:wholesale").name == "north-city:wholesale"
    cases = [
        ("bob", "north-metro:retail", "tariff_not_owners"),  # another reseller's tariff
        ("north-city", "atlas:euro", "tariff_not_owners"),  # the owner's owner's
        ("atlas-north", "atlas:euro", "currency_mismatch"),  # atlas-north is in USD
        ("agent-ana", "north-city:retail", "tariff_not_assignable"),  # agents are not rated
    ]
    for login, tariff, reason in cases:
        with pytest.raises(Refusal) as refused:
            rating.assign_tariff(database, login=login, tariff=tariff)
        assert refused.value.reason == reason, (login, tariff)
    with pytest.raises(NotFound):
        rating.assign_tariff(database, login="bob", tariff="north-city:nothing")


def test_a_derived_tariff_follows_every_change_of_its_base(database: Database) -> None:
    load_demo(database)
    before = amounts(database, "alice", LONDON, 60)
    rating.import_sheet(
        database, name="house:wholesale", stream=sheet("prefix,description,price\n44,UK,0.030\n"), layout=Layout.NATIVE
    )
    # 0.030 x1.1 = 0.033; x1.1 = 0.0363; x1.25 = 0.045375 + 0.005 = 0.050375 a minute, for one minute.
    assert amounts(database, "alice", LONDON, 60) == [50_375, 36_300, 33_000, 30_000] != before
    rating.update_tariff(database, name="atlas:standard", derivation=Derivation(Decimal("2"), 0))
    # atlas:standard now 0.060; atlas-north x1.1 = 0.066; north-city x1.25 + 0.005 = 0.0875.
    assert amounts(database, "alice", LONDON, 60) == [87_500, 66_000, 60_000, 30_000]


def test_an_override_replaces_every_row_of_its_prefix_in_a_derived_tariff(database: Database) -> None:
    load_demo(database)
    from tollway.rating.tariff import RateEntry

    rating.set_prefix(database, name="north-city:retail", prefix="44", entries=[RateEntry("44", "UK flat", 10_000)])
    peak, weekend = MONDAY_10_UTC, datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert amounts(database, "alice", "+44 1632 960000", 60, peak)[0] == 10_000
    assert amounts(database, "alice", "+44 1632 960000", 60, weekend)[0] == 10_000
    # north-city still pays atlas-north its peak and weekend prices: 0.020 and 0.010 x1.1 x1.1.
    assert amounts(database, "alice", "+44 1632 960000", 60, peak)[1] == 24_200
    assert amounts(database, "alice", "+44 1632 960000", 60, weekend)[1] == 12_100
    assert amounts(database, "alice", "+44 7700 900000", 60, peak)[0] != 10_000  # 447 still follows the base


GOOD = "prefix,description,price,resolution\n44,UK,0.02,60\n447,UK mobile,0.05,1\n33,France,0.018,\n"
MALFORMED = {
    "bad digits": ("prefix,description,price\n44,UK,0.02\n4x7,UK mobile,0.05\n", [(3, "prefix_invalid")]),
    "negative price": ("prefix,description,price\n44,UK,-0.02\n", [(2, "price_invalid")]),
    "resolution 0": ("prefix,description,price,resolution\n44,UK,0.02,0\n", [(2, "resolution_invalid")]),
    "overlapping windows": (
        "prefix,description,price,from_day,to_day,from_time,to_time\n"
        "44,UK day,0.02,0,6,08:00,20:00\n44,UK evening,0.01,0,6,19:00,23:00\n",
        [(3, "rows_overlap")],
    ),
    "wrong column count": ("prefix,description,price\n44,UK,0.02,9\n", [(2, "columns_invalid")]),
    "not UTF-8": ("prefix,description,price\n44,UK,0.02\n33,Fran\udce7e,0.01\n", [(3, "encoding_invalid")]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_sheet_is_refused_whole_with_line_numbers_and_the_tariff_is_unchanged(
    database: Database, case: str
) -> None:
    load_demo(database)
    rating.create_tariff(database, owner_login="north-city", name="imports", defaults=Defaults(resolution=6))
    assert rating.import_sheet(database, name="north-city:imports", stream=sheet(GOOD), layout=Layout.NATIVE) == 3
    exported = "".join(rating.export_sheet(database, name="north-city:imports", layout=Layout.NATIVE))
    tariff_before, rows_before = rating.get_tariff(database, name="north-city:imports")
    text, expected = MALFORMED[case]
    with pytest.raises(SheetRefused) as refused:
        rating.import_sheet(
            database,
            name="north-city:imports",
            stream=io.BytesIO(text.encode("utf-8", "surrogateescape")),
            layout=Layout.NATIVE,
        )
    assert [(e.line, e.reason) for e in refused.value.errors] == expected
    assert rating.get_tariff(database, name="north-city:imports") == (tariff_before, rows_before)
    assert "".join(rating.export_sheet(database, name="north-city:imports", layout=Layout.NATIVE)) == exported


def test_a_voipswitch_sheet_imports_with_its_minus_ones_as_the_tariffs_defaults(database: Database) -> None:
    load_demo(database)
    rating.create_tariff(database, owner_login="north-city", name="vs", defaults=Defaults(30, 6, 3))
    text = (
        "prefix;description;voice_rate;from_day;to_day;from_hour;to_hour;grace_period;minimal_time;resolution;"
        "rate_multiplier;rate_addition;surcharge_time;surcharge_amount;free_seconds\n"
        "44;UK;0.0123;-1;-1;-1;-1;-1;-1;-1;1.15;0.002;-1;-1;-1\n"
    )
    rating.import_sheet(database, name="north-city:vs", stream=sheet(text), layout=Layout.VOIPSWITCH)
    rating.assign_tariff(database, login="bob", tariff="north-city:vs")
    # 0.0123 x 1.15 + 0.002 = 0.016145 a minute; 31 s: minimal 30, 6 s steps -> 36 s -> 0.009687.
    assert amounts(database, "bob", LONDON, 31)[0] == 9_687
    assert amounts(database, "bob", LONDON, 3)[0] == 0  # the tariff's 3 s grace period


def test_a_tariff_in_use_cannot_be_deleted(database: Database) -> None:
    load_demo(database)
    for name in ("north-city:retail", "atlas:standard"):  # assigned; followed by other tariffs
        with pytest.raises(Refusal) as refused:
            rating.delete_tariff(database, name=name)
        assert refused.value.reason == "tariff_in_use"
    rating.create_tariff(database, owner_login="north-city", name="unused")
    rating.delete_tariff(database, name="north-city:unused")
    with pytest.raises(NotFound):
        rating.get_tariff(database, name="north-city:unused")


def test_a_derived_tariff_follows_only_its_owners_tariffs_or_the_one_its_owner_pays_at(database: Database) -> None:
    load_demo(database)
    made = rating.create_tariff(database, owner_login="north-metro", name="m", base_name="atlas-north:standard")
    assert made.base_tariff_id is not None  # north-metro pays at atlas-north:standard
    for base, reason in [("north-city:retail", "base_tariff_invalid"), ("atlas:euro", "base_tariff_invalid")]:
        with pytest.raises(Refusal) as refused:
            rating.create_tariff(database, owner_login="north-metro", name="x", base_name=base)
        assert refused.value.reason == reason


def test_a_call_with_no_rate_or_no_tariff_says_which_level_refused(database: Database) -> None:
    load_demo(database)
    with pytest.raises(Refusal) as no_rate:
        quote(database, login="alice", dialed="+7 495 123 4567", start=MONDAY_10_UTC, duration=60)
    assert no_rate.value.reason == "no_rate" and "alice" in no_rate.value.message
    rating.create_tariff(database, owner_login="north-city", name="empty")
    subscriptions.create_plan(
        database, owner_login="north-city", name="p", fee_micros=0, period=Period.MONTH, included_seconds=0
    )
    from tollway.tree import service as tree
    from tollway.tree.model import ClientType, client

    tree.create_node(
        database, owner_login="north-city", new=tree.NewNode(position=client(ClientType.RETAIL), login="zed", name="Z")
    )
    with pytest.raises(Refusal) as no_tariff:
        quote(database, login="zed", dialed=LONDON, start=MONDAY_10_UTC, duration=60)
    assert no_tariff.value.reason == "no_tariff"


def test_a_free_destination_spends_no_included_minutes(database: Database) -> None:
    load_demo(database)  # north-city:retail keeps 1800 free; alice's plan covers prefix 1
    _, charges = quote(database, login="alice", dialed="1 800 555 1234", start=MONDAY_10_UTC, duration=60)
    assert (charges[0].prefix, charges[0].plan_seconds, charges[0].amount_micros) == ("1800", 0, 0)
