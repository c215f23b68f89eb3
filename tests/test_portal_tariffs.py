"""The Tariffs pages over HTTP, on SQLite and PostgreSQL: a reseller's admin creates a tariff, loads a rate sheet
into it (all or nothing, every error with its line), derives a tariff from it, and sees who pays at its tariffs;
only its own tariffs, never those of its owners; agents and customers find no such page.

The world is the demo: north-city (an L1 reseller, nc-admin) sells at north-city:retail, derived from the tariff
it pays at (atlas-north:standard) x 1.25 + 0.005 a minute; bluewave-retail (bw-admin) is another reseller.
"""

from __future__ import annotations

import io
import re

import pytest
from fastapi.testclient import TestClient

from tests.test_portal import csrf_of
from tests.test_portal_accounts import signed_in, staff_world  # noqa: F401 - the fixture
from tollway.rating import service as rating
from tollway.store.database import Database


@pytest.fixture
def world(staff_world: Database) -> Database:  # noqa: F811 - the fixture imported above
    """The demo with a login per role (tests/test_portal_accounts.py)."""
    return staff_world


SHEET = b"""prefix,description,price,connect_fee,minimal_time,resolution
44,United Kingdom,0.0123,,,
4420,United Kingdom - London,0.009876,0.05,30,6
447,United Kingdom - Mobile,0.1,,,
"""
BAD_SHEET = b"""prefix,description,price
44,United Kingdom,0.02
4x,Nowhere,0.01
49,Germany,lots
33,France,0.015
34,Spain,0.0000001
"""


def create_tariff(client: TestClient, name: str, **fields: str) -> str:
    page = client.get("/tariffs")
    created = client.post(
        "/tariffs", data={"csrf_token": csrf_of(page), "name": name, **fields}, follow_redirects=False
    )
    assert created.status_code == 303, created.text
    return str(created.headers["location"])


def upload(client: TestClient, path: str, sheet: bytes, layout: str = "native"):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get(path))
    return client.post(
        f"{path}/sheet",
        data={"csrf_token": token, "layout": layout},
        files={"sheet": ("rates.csv", io.BytesIO(sheet), "text/csv")},
        follow_redirects=False,
    )


def test_a_reseller_loads_a_rate_sheet_and_sees_its_exact_rates(world: Database) -> None:
    client = signed_in(world, "nc-admin")
    assert create_tariff(client, "premium") == "/tariffs/north-city:premium?saved=created"
    loaded = upload(client, "/tariffs/north-city:premium", SHEET)
    assert (loaded.status_code, loaded.headers["location"]) == (303, "/tariffs/north-city:premium?saved=sheet&rows=3")
    page = client.get(loaded.headers["location"])
    assert "The rate sheet is loaded. 3 rows." in page.text
    for cells in (
        '<td>44</td>\n        <td>United Kingdom</td>\n        <td class="number">$0.0123</td>',
        '<td>4420</td>\n        <td>United Kingdom - London</td>\n        <td class="number">$0.009876</td>\n'
        '        <td class="number">$0.05</td>\n        <td>30/6</td>',
        '<td>447</td>\n        <td>United Kingdom - Mobile</td>\n        <td class="number">$0.10</td>',
    ):
        assert cells in page.text, cells
    searched = client.get("/tariffs/north-city:premium", params={"prefix": "442"})
    assert "United Kingdom - London" in searched.text and "United Kingdom - Mobile" not in searched.text
    bad_search = client.get("/tariffs/north-city:premium", params={"prefix": "4x"})
    assert bad_search.status_code == 422 and "A number to search for has 1 to 15 digits" in bad_search.text
    account = client.get("/accounts/bob")  # assigned with the account page's own form
    assert 'value="north-city:premium"' in account.text
    assigned = client.post(
        "/accounts/bob/tariff", data={"csrf_token": csrf_of(account), "tariff": "north-city:premium"}
    )
    assert assigned.status_code == 200 and "The tariff is assigned." in assigned.text
    assert 'href="/accounts/bob"' in client.get("/tariffs/north-city:premium").text
    download = re.search(r'href="(/api/v1/tariffs/[^"]+/sheet)" download', page.text)
    assert download, "the page links to the CSV of its rates"
    exported = client.get(download.group(1))  # the API, with the portal's session
    assert exported.status_code == 200 and "4420,United Kingdom - London,0.009876" in exported.text
    assert [e.price_micros for _, e in rating.list_rates(world, name="north-city:premium", limit=10)] == [
        12_300,
        9_876,
        100_000,
    ]


def test_a_sheet_with_three_bad_lines_is_refused_with_each_line_and_reason_and_changes_nothing(
    world: Database,
) -> None:
    client = signed_in(world, "nc-admin")
    create_tariff(client, "premium")
    assert upload(client, "/tariffs/north-city:premium", SHEET).status_code == 303
    refused = upload(client, "/tariffs/north-city:premium", BAD_SHEET)
    assert refused.status_code == 422
    assert "The sheet was refused and nothing was changed. Errors: 3." in refused.text
    for line, reason in (
        (3, "The prefix is not 1 to 20 digits."),
        (4, "A price is not an amount between 0 and 1,000,000."),
        (6, "A price is not an amount between 0 and 1,000,000."),
    ):
        assert f'<tr><td class="number">{line}</td><td>{reason}</td>' in refused.text, line
    assert rating.get_tariff(world, name="north-city:premium")[1] == 3  # the three rows loaded before
    for empty in (b"", b"prefix,description,price\n"):
        answer = upload(client, "/tariffs/north-city:premium", empty)
        assert answer.status_code == 422 and "The sheet has no rate rows." in answer.text
    nul = upload(client, "/tariffs/north-city:premium", b"prefix,description,price\n44,Nul\x00here,0.01\n")
    assert nul.status_code == 422 and '<td class="number">2</td>' in nul.text
    huge = upload(client, "/tariffs/north-city:premium", b"prefix,description,price\n44,UK,99999999999999999999\n")
    assert huge.status_code == 422 and '<td class="number">2</td>' in huge.text
    wrong_layout = upload(client, "/tariffs/north-city:premium", SHEET, layout="voipswitch")
    assert wrong_layout.status_code == 422
    assert rating.get_tariff(world, name="north-city:premium")[1] == 3


def test_a_voipswitch_sheet_is_read_with_its_own_columns(world: Database) -> None:
    client = signed_in(world, "nc-admin")
    create_tariff(client, "carrier")
    sheet = (
        b"34;Spain;0.017;-1;-1;-1;-1;-1;-1;-1;-1;-1;-1;-1;-1\n"
        b"346;Spain - Mobile;0.03;-1;-1;-1;-1;-1;-1;-1;1.1;0.001;0;0;0\n"  # 0.03 x 1.1 + 0.001
    )
    assert upload(client, "/tariffs/north-city:carrier", sheet, layout="voipswitch").status_code == 303
    page = client.get("/tariffs/north-city:carrier")
    assert "$0.017</td>" in page.text and "$0.034</td>" in page.text  # 0.03 x 1.1 + 0.001


def test_a_derived_tariff_prices_its_base_times_the_multiplier_plus_the_addition(world: Database) -> None:
    client = signed_in(world, "nc-admin")
    create_tariff(client, "premium")
    upload(client, "/tariffs/north-city:premium", SHEET)
    page = client.get("/tariffs")
    derived = client.post(
        "/tariffs/derived",
        data={
            "csrf_token": csrf_of(page),
            "derived_name": "premium-plus",
            "base": "north-city:premium",
            "multiplier": "1.15",
            "addition": "0.002",
        },
        follow_redirects=False,
    )
    assert derived.headers["location"] == "/tariffs/north-city:premium-plus?saved=created"
    shown = client.get("/tariffs/north-city:premium-plus")
    assert 'href="/tariffs/north-city:premium">premium</a>' in shown.text
    # 0.0123 x 1.15 = 0.014145, + 0.002 = 0.016145; 0.009876 x 1.15 = 0.0113574 -> 0.011358 (up), + 0.002 =
    # 0.013358, its connect fee 0.05 x 1.15 = 0.0575; 0.1 x 1.15 + 0.002 = 0.117.
    for price in ("$0.016145", "$0.013358", "$0.0575", "$0.117"):
        assert f'<td class="number">{price}</td>' in shown.text, price
    for refused, reason in (
        ({"multiplier": "lots"}, "The multiplier is a number from 0 to 1,000"),
        ({"multiplier": "1e9"}, "The multiplier is a number from 0 to 1,000"),
        ({"multiplier": "1.0000001"}, "The multiplier is a number from 0 to 1,000"),
        ({"addition": "99999999999999999999"}, "This amount is too large."),
        ({"base": "atlas-north:standard"}, "Derive from one of your own tariffs."),
        ({"derived_name": "premium"}, "There is a tariff with this name already."),
    ):
        data = {"derived_name": "other", "base": "north-city:premium", "multiplier": "1", "addition": "0"} | refused
        answer = client.post("/tariffs/derived", data={"csrf_token": csrf_of(page), **data})
        assert answer.status_code in (409, 422) and reason in answer.text, refused


def test_the_tariff_it_sells_at_shows_its_own_prices_never_its_owners(world: Database) -> None:
    client = signed_in(world, "nc-admin")
    listed = client.get("/tariffs")
    assert 'href="/tariffs/north-city:retail"' in listed.text and "atlas-north" not in listed.text
    page = client.get("/tariffs/north-city:retail", params={"prefix": "4420"})
    # London: 0.015 (house) x 1.10 (atlas) x 1.10 (atlas-north) = 0.01815 it pays; x 1.25 = 0.0226875 -> 0.022688,
    # + 0.005 = 0.027688 it sells at.
    assert '<td class="number">$0.027688</td>' in page.text
    assert "the tariff you pay at" in page.text
    assert "atlas-north" not in page.text and "0.01815" not in page.text
    for login in ("alice", "bob", "corner-shop"):
        assert f'href="/accounts/{login}"' in page.text, login
    assert client.get("/tariffs/atlas-north:standard").status_code == 404  # the tariff it pays at
    assert client.get("/tariffs/house:wholesale").status_code == 404


def test_another_resellers_tariff_answers_404_to_read_and_to_load(world: Database) -> None:
    client = signed_in(world, "bw-admin")
    page = client.get("/tariffs/bluewave-retail:retail")
    assert page.status_code == 200
    assert client.get("/tariffs/north-city:retail").status_code == 404
    assert client.get("/tariffs/north-city:nothing").status_code == 404
    refused = client.post(
        "/tariffs/north-city:retail/sheet",
        data={"csrf_token": csrf_of(page), "layout": "native"},
        files={"sheet": ("rates.csv", io.BytesIO(SHEET), "text/csv")},
    )
    assert refused.status_code == 404 and "north-city" not in refused.text.replace("/tariffs/north-city", "")
    assert rating.get_tariff(world, name="north-city:retail")[1] == 1  # its one override, untouched


@pytest.mark.parametrize("login", ["ana", "alice"])
def test_agents_and_customers_have_no_tariffs_pages(world: Database, login: str) -> None:
    client = signed_in(world, login)
    assert 'href="/tariffs"' not in client.get("/").text
    for path in ("/tariffs", "/tariffs/north-city:retail"):
        assert client.get(path).status_code == 404, path


def test_bad_tariff_forms_answer_a_form_error(world: Database) -> None:
    client = signed_in(world, "nc-admin")
    token = csrf_of(client.get("/tariffs"))
    for fields, reason in (
        ({"name": ""}, "A name has 1 to 60 characters"),
        ({"name": "a:b"}, "A name has 1 to 60 characters"),
        ({"name": "x", "resolution": "0"}, "The resolution is from 1 to 86,400 seconds."),
        ({"name": "x", "minimal_time": "99999999999"}, "A number of seconds is from 0 to 86,400."),
        ({"name": "x", "currency": "ZZZ1"}, "three letters, such as EUR."),
        ({"name": "retail"}, "There is a tariff with this name already."),
    ):
        answer = client.post("/tariffs", data={"csrf_token": token, **fields})
        assert answer.status_code in (409, 422) and reason in answer.text, fields
    assert client.post("/tariffs", data={"name": "x"}).status_code == 403  # no CSRF token
    assert client.post("/tariffs", data={"csrf_token": token, "name": "nul\x00"}).status_code == 422


def test_a_sheet_of_100000_lines_is_loaded_and_its_rates_paged_by_prefix(world: Database) -> None:
    lines = [b"prefix,description,price"] + [
        b"%d,Destination %d,0.%06d" % (n, n, n % 999_999 + 1) for n in range(100_000, 200_000)
    ]
    client = signed_in(world, "nc-admin")
    create_tariff(client, "large")
    loaded = upload(client, "/tariffs/north-city:large", b"\n".join(lines) + b"\n")
    assert loaded.headers["location"] == "/tariffs/north-city:large?saved=sheet&rows=100000"
    first = client.get("/tariffs/north-city:large")
    assert "<td>100049</td>" in first.text and "<td>100050</td>" not in first.text
    assert 'href="/tariffs/north-city:large?after=100049">Next page</a>' in first.text
    second = client.get("/tariffs/north-city:large", params={"after": "100049"})
    assert "<td>100050</td>" in second.text and "<td>100049</td>" not in second.text
    token = csrf_of(first)
    data = {"csrf_token": token, "derived_name": "large-x2", "base": "north-city:large", "multiplier": "2"}
    assert client.post("/tariffs/derived", data=data, follow_redirects=False).status_code == 303
    deep = client.get("/tariffs/north-city:large-x2", params={"after": "150000"})
    # 150001's price: 0.150002 (150001 % 999999 + 1 micro-units), twice that in the derived tariff.
    assert (
        '<td>150001</td>\n        <td>Destination 150001</td>\n        <td class="number">$0.300004</td>' in deep.text
    )
