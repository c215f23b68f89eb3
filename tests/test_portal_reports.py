"""A seller's Reports page (revenue, cost, margin, ASR and ACD per day, per destination and per customer, with
charts and CSV files) and its Live calls page, over HTTP, after calls through the credit-control engine.

The world is the demo with a login per role (tests/test_portal_accounts.py), an admin of atlas-north
(``an-admin``) and one of north-metro (``nm-admin``). Prices per minute, billed per second, each level's
tariff derived from the one above (docs in tests/test_portal_operations.py):

- Germany (49): the provider 0.016, atlas pays 0.0176, atlas-north pays 0.01936 (north-city's and
  north-metro's cost), bob and alice pay north-city 0.01936 x 1.25 + 0.005 = 0.0292;
- France (33): 0.018, then 0.0198, 0.02178 (north-city's cost), bob pays 0.02178 x 1.25 + 0.005 = 0.032225.

The calls, all at noon UTC (every demo account's time zone is UTC):

| day | who   | to      | lasted | the client paid | north-city paid |
|-----|-------|---------|--------|-----------------|-----------------|
| D-2 | bob   | Germany | 60 s   | 0.029200        | 0.019360        |
| D-2 | bob   | France  | 60 s   | 0.032225        | 0.021780        |
| D-1 | bob   | Germany | 30 s   | 0.014600        | 0.009680        |
| D-1 | alice | Germany | 75 s   | 0.036500        | 0.024200        |
| D-1 | alice | Germany | no answer | 0            | 0               |
| D-1 | carol (north-metro) | Germany | 60 s | 0.025168 | north-metro pays 0.019360 |

So north-city over D-3..D0: 5 calls, 4 answered (ASR 80.0 %), 225 s answered (ACD 56.25 s, shown 56.3),
revenue 0.112525, cost 0.075020, margin 0.037505. Carol's call is north-metro's, never north-city's.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from tests.test_portal import csrf_of, user
from tests.test_portal_accounts import staff_world  # noqa: F401 - the fixture
from tests.test_portal_operations import Portal, call
from tollway.access.model import Role
from tollway.calls import reports
from tollway.calls import service as calls
from tollway.calls.service import CallRequest
from tollway.clock import utc_now
from tollway.store.database import Database

GERMANY = "+49 30 1234567"
FRANCE = "+33 1 23 45 67 89"
NOON = utc_now().replace(hour=12, minute=0, second=0, microsecond=0)


def day(offset: int) -> str:
    return (NOON + timedelta(days=offset)).date().isoformat()


PERIOD = {"since": day(-3), "until": day(0)}


@pytest.fixture
def report_world(staff_world: Database) -> Database:  # noqa: F811 - the fixture imported above
    user(staff_world, "bob", "bob", Role.CLIENT)
    user(staff_world, "atlas-north", "an-admin", Role.RESELLER_ADMIN)
    user(staff_world, "north-metro", "nm-admin", Role.RESELLER_ADMIN)
    call(staff_world, "bob-de-1", "bob", GERMANY, at=NOON - timedelta(days=2), seconds=60)
    call(staff_world, "bob-fr-1", "bob", FRANCE, at=NOON - timedelta(days=2, minutes=-5), seconds=60)
    call(staff_world, "bob-de-2", "bob", GERMANY, at=NOON - timedelta(days=1), seconds=30)
    call(staff_world, "alice-de-1", "alice", GERMANY, at=NOON - timedelta(days=1, minutes=-5), seconds=75)
    unanswered = NOON - timedelta(days=1, minutes=-10)
    answer = calls.authorize_call(staff_world, CallRequest("alice-de-2", "alice", "", GERMANY), now=unanswered)
    assert answer["status"] == "authorized", answer
    calls.end_call(staff_world, "alice-de-2", duration_seconds=0, now=unanswered + timedelta(seconds=20))
    call(staff_world, "carol-de-1", "carol", GERMANY, at=NOON - timedelta(days=1), seconds=60)
    return staff_world


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def plain(html: str) -> str:
    return re.sub(r"[ \n\t]+", " ", html)


def test_a_reseller_sees_its_revenue_cost_margin_asr_and_acd_per_day_worked_out_by_hand(
    report_world: Database,
) -> None:
    client = Portal(report_world).signed_in("nc-admin")
    page = client.get("/reports", params=PERIOD)
    assert page.status_code == 200
    text = plain(page.text)
    for name, shown in {
        "revenue": "$0.11",
        "cost": "$0.08",
        "margin": "$0.04",
        "calls": "5",
        "answered": "4",
        "asr": "80\xa0%",
        "acd": "0:56",
    }.items():
        assert f'<dd id="{name}">{shown}</dd>' in text, name
    assert text.count("<svg ") == 4 and 'role="img"' in text and '<title id="chart-days-title">' in text
    days = rows_of(client.get("/reports/days.csv", params=PERIOD).text)
    assert [row["day"] for row in days] == [day(-3), day(-2), day(-1), day(0), "total"]
    by_day = {row["day"]: row for row in days}
    assert [by_day[day(-2)][k] for k in ("calls_attempted", "calls_answered", "duration_seconds")] == ["2", "2", "120"]
    assert (by_day[day(-2)]["revenue"], by_day[day(-2)]["cost"], by_day[day(-2)]["margin"]) == (
        "0.061425",
        "0.041140",
        "0.020285",
    )
    assert (by_day[day(-2)]["asr_percent"], by_day[day(-2)]["acd_seconds"]) == ("100.0", "60.0")
    assert (by_day[day(-1)]["revenue"], by_day[day(-1)]["cost"], by_day[day(-1)]["margin"]) == (
        "0.051100",
        "0.033880",
        "0.017220",
    )
    assert (by_day[day(-1)]["asr_percent"], by_day[day(-1)]["acd_seconds"]) == ("66.7", "52.5")
    assert (by_day[day(-3)]["calls_attempted"], by_day[day(-3)]["asr_percent"], by_day[day(-3)]["revenue"]) == (
        "0",
        "",
        "0.000000",
    )
    total = by_day["total"]
    assert (total["login"], total["currency"], total["calls_attempted"], total["calls_answered"]) == (
        "north-city",
        "USD",
        "5",
        "4",
    )
    assert (total["revenue"], total["cost"], total["margin"]) == ("0.112525", "0.075020", "0.037505")
    assert (total["asr_percent"], total["acd_seconds"], total["duration_seconds"]) == ("80.0", "56.3", "225")
    assert sum(Decimal(row["margin"]) for row in days[:-1]) == Decimal(total["margin"])
    assert rows_of(client.get("/reports/quality.csv", params=PERIOD).text) == days


def test_destinations_are_grouped_as_the_sellers_own_rating_named_them(report_world: Database) -> None:
    client = Portal(report_world).signed_in("nc-admin")
    found = rows_of(client.get("/reports/destinations.csv", params=PERIOD).text)
    assert [
        (r["prefix"], r["description"], r["calls_attempted"], r["calls_answered"], r["duration_seconds"]) for r in found
    ] == [("49", "Germany", "4", "3", "165"), ("33", "France", "1", "1", "60")]
    germany, france = found
    assert (germany["revenue"], germany["cost"], germany["margin"]) == ("0.080300", "0.053240", "0.027060")
    assert (germany["asr_percent"], germany["acd_seconds"]) == ("75.0", "55.0")
    assert (france["revenue"], france["cost"], france["margin"]) == ("0.032225", "0.021780", "0.010445")
    page = plain(client.get("/reports", params=PERIOD).text)
    assert "<td>49</td> <td>Germany</td>" in page and "<title>$0.08</title>" in page  # Germany's bar: 0.0803


def test_top_customers_roll_up_each_direct_customers_subtree(report_world: Database) -> None:
    portal = Portal(report_world)
    north_city = portal.signed_in("nc-admin")
    customers = rows_of(north_city.get("/reports/customers.csv", params=PERIOD).text)
    assert [(r["login"], r["revenue"], r["cost"], r["margin"], r["duration_seconds"]) for r in customers] == [
        ("bob", "0.076025", "0.050820", "0.025205", "150"),
        ("alice", "0.036500", "0.024200", "0.012300", "75"),
    ]
    # atlas-north's direct customers are resellers: north-city with bob's and alice's calls, north-metro with
    # carol's. Its revenue is what they paid it (0.01936 a minute of Germany, 0.02178 of France); its cost what
    # it paid atlas (0.0176 and 0.0198).
    atlas_north = portal.signed_in("an-admin")
    by_margin = rows_of(atlas_north.get("/reports/customers.csv", params=PERIOD | {"by": "margin"}).text)
    assert [(r["login"], r["calls_attempted"], r["revenue"], r["cost"], r["margin"]) for r in by_margin] == [
        ("north-city", "5", "0.075020", "0.068200", "0.006820"),
        ("north-metro", "1", "0.019360", "0.017600", "0.001760"),
    ]
    page = plain(atlas_north.get("/reports", params=PERIOD | {"by": "minutes"}).text)
    assert '<strong aria-current="true">Minutes</strong>' in page
    assert page.index('<a href="/accounts/north-city">') < page.index('<a href="/accounts/north-metro">')
    assert '<dd id="revenue">$0.09</dd>' in page  # 0.075020 + 0.019360 = 0.094380


def test_another_resellers_calls_never_appear_and_other_roles_find_no_reports(report_world: Database) -> None:
    portal = Portal(report_world)
    north_metro = portal.signed_in("nm-admin")
    own = rows_of(north_metro.get("/reports/customers.csv", params=PERIOD).text)
    assert [(r["login"], r["revenue"], r["cost"]) for r in own] == [("carol", "0.025168", "0.019360")]
    destinations = rows_of(north_metro.get("/reports/destinations.csv", params=PERIOD).text)
    assert [(r["prefix"], r["calls_attempted"]) for r in destinations] == [("49", "1")]
    assert north_metro.get("/reports", params={"account": "north-city"}).status_code == 404
    assert north_metro.get("/reports/days.csv", params={"account": "north-city"}).status_code == 404
    north_city = portal.signed_in("nc-admin")
    assert "carol" not in north_city.get("/reports", params=PERIOD).text
    assert north_city.get("/reports", params={"account": "atlas-north"}).status_code == 404  # its owner
    for login in ("bob", "ana"):  # a client, an agent
        client = portal.signed_in(login)
        for path in ("/reports", "/reports/days.csv", "/live-calls", "/margin"):
            assert client.get(path).status_code == 404, (login, path)
    provider = portal.signed_in("root")
    everything = rows_of(provider.get("/reports/days.csv", params=PERIOD).text)[-1]
    # what atlas paid the house: 225 s to Germany at 0.016 a minute, 60 s to France at 0.018; it pays no one
    assert (everything["calls_attempted"], everything["revenue"], everything["cost"]) == ("6", "0.078000", "0.000000")
    assert provider.get("/reports", params={"account": "north-city"}).status_code == 200


def test_a_bad_period_is_a_form_error_never_a_server_error(report_world: Database) -> None:
    client = Portal(report_world).signed_in("nc-admin")
    for bad in (
        {"since": day(0), "until": day(-3)},  # backwards
        {"since": "0001-01-01"},
        {"until": "9999-12-31"},
        {"since": "2026-02-30"},
        {"since": "yesterday"},
        {"since": "2020-01-01", "until": "2026-01-01"},  # more than 400 days
    ):
        page = client.get("/reports", params=bad)
        assert page.status_code == 422, bad
        assert 'class="alert alert-error"' in page.text and 'aria-invalid="true"' in page.text, bad
        assert client.get("/reports/days.csv", params=bad).status_code == 422, bad
    assert client.get("/reports", params={"by": "luck"}).status_code == 422
    assert client.get("/reports/planets.csv").status_code == 404
    assert client.get("/reports", params={"since": "x" * 11}).status_code == 422
    quiet = client.get("/reports", params={"since": "2020-01-01", "until": "2020-01-31"})  # no call at all
    assert (
        quiet.status_code == 200 and '<dd id="calls">0</dd>' in quiet.text and "No calls in this period." in quiet.text
    )


def test_the_margin_page_leads_to_the_reports(report_world: Database) -> None:
    client = Portal(report_world).signed_in("nc-admin")
    moved = client.get("/margin", params=PERIOD, follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"].startswith("/reports?since=")
    assert client.get("/margin.csv", params=PERIOD).text == client.get("/reports/days.csv", params=PERIOD).text


def test_the_reports_speak_polish(report_world: Database) -> None:
    client = Portal(report_world).signed_in("nc-admin")
    client.post("/settings/language", data={"language": "pl", "csrf_token": csrf_of(client.get("/settings"))})
    page = plain(client.get("/reports", params=PERIOD).text)
    assert "Raporty" in page and '<dd id="revenue">0,11\xa0USD</dd>' in page and '<dd id="asr">80\xa0%</dd>' in page


def test_live_calls_show_a_call_in_progress_and_lose_it_when_it_ends(report_world: Database) -> None:
    portal = Portal(report_world)
    client = portal.signed_in("nc-admin")
    empty = plain(client.get("/live-calls").text)
    assert '<strong id="live-count">0</strong>' in empty and 'id="no-live-calls"' in empty
    now = utc_now()
    answer = calls.authorize_call(report_world, CallRequest("bob-live", "bob", "", GERMANY, answered=True), now=now)
    assert answer["status"] == "authorized"
    page = plain(client.get("/live-calls").text)
    assert '<strong id="live-count">1</strong>' in page and '<strong id="live-talking">1</strong>' in page
    assert "<td>bob</td>" in page and "<td>Germany</td>" in page and 'hx-trigger="every 3s"' in page
    reserved = re.findall(r'<td class="number">(\$[0-9.]+)</td>', page)
    assert len(reserved) == 2  # what bob holds for it, what north-city holds for atlas-north
    assert "bob" not in plain(portal.signed_in("nm-admin").get("/live-calls").text).split("<main")[1]
    calls.end_call(report_world, "bob-live", duration_seconds=10, now=now + timedelta(seconds=10))
    after = plain(client.get("/live-calls").text)
    assert '<strong id="live-count">0</strong>' in after and "<td>bob</td>" not in after


def test_a_call_whose_id_is_live_opens_as_any_other(report_world: Database) -> None:
    """Live calls are at /live-calls, not under /calls/: a switch's call id can be any word."""
    now = utc_now()
    calls.authorize_call(report_world, CallRequest("live", "bob", "", GERMANY, answered=True), now=now)
    calls.end_call(report_world, "live", duration_seconds=10, now=now + timedelta(seconds=10))
    page = Portal(report_world).signed_in("nc-admin").get("/calls/live")
    assert page.status_code == 200 and "<td>bob</td>" not in page.text and "Call to" in page.text


def test_revenue_in_another_currency_is_shown_apart_and_left_out_of_the_margin(report_world: Database) -> None:
    """amelie (euro-paris, in EUR, below atlas-euro) calls Germany: atlas is paid in euros for it by atlas-euro."""
    user(report_world, "atlas", "atlas-admin", Role.RESELLER_ADMIN)
    call(report_world, "amelie-de-1", "amelie", GERMANY, at=NOON - timedelta(days=1), seconds=60)
    client = Portal(report_world).signed_in("atlas-admin")
    days = rows_of(client.get("/reports/days.csv", params=PERIOD).text)
    # in dollars, what atlas-north paid atlas: 225 s to Germany at 0.0176 a minute, 60 s to France at 0.0198
    assert (days[-1]["currency"], days[-1]["revenue"], days[-1]["calls_attempted"]) == ("USD", "0.085800", "7")
    page = plain(client.get("/reports", params=PERIOD).text)
    assert "Also sold in other currencies (not in the margin): €" in page


def test_a_day_is_a_day_in_the_readers_time_zone_across_a_change_of_summer_time(report_world: Database) -> None:
    """Madrid moves to summer time on 2027-03-28 (a day of 23 hours, 23:00Z to 22:00Z): a call at 23:30Z on
    the 27th is on the 28th there, and one at 22:30Z on the 28th on the 29th."""
    for call_id, at in (("dst-1", "2027-03-27T22:30Z"), ("dst-2", "2027-03-27T23:30Z"), ("dst-3", "2027-03-28T22:30Z")):
        call(report_world, call_id, "bob", GERMANY, at=datetime.fromisoformat(at), seconds=60)
    found = reports.call_report(
        report_world,
        None,
        login="north-city",
        first_day=date(2027, 3, 27),
        last_day=date(2027, 3, 29),
        time_zone="Europe/Madrid",
    )
    assert [(day.isoformat(), figures.calls_attempted) for day, figures in found.days] == [
        ("2027-03-27", 1),
        ("2027-03-28", 1),
        ("2027-03-29", 1),
    ]
    assert found.total.revenue_micros == 3 * 29_200
