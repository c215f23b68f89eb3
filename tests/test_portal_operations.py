"""The Calls page's filters and CSV (a customer's own calls, an admin's subtree's), and the provider's
pages (switches, RADIUS clients, exchange rates, the audit log) over HTTP.

The world is the demo with a login per role (tests/test_portal_accounts.py) and bob's. Prices of a call to
Germany (49, 0.016 a minute at the provider, per second), each level's tariff derived from the one above:
atlas pays 0.016 x 1.10 = 0.0176, atlas-north 0.0176 x 1.10 = 0.01936 (north-city's cost), and bob pays
north-city 0.01936 x 1.25 + 0.005 = 0.0292 a minute.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from fastapi.testclient import TestClient

from tests.test_portal import SEALER, csrf_of, log_in, user
from tests.test_portal_accounts import staff_world  # noqa: F401 - the fixture
from tollway.access import service as access
from tollway.access.model import Role
from tollway.balances import service as balances
from tollway.calls import service as calls
from tollway.calls.service import CallRequest
from tollway.clock import utc_now
from tollway.config import RadiusClient
from tollway.errors import Refusal
from tollway.http.app import create_app
from tollway.store.database import Database

GERMANY = "+49 30 1234567"
UK = "+44 20 7946 0000"


def call(database: Database, call_id: str, account: str, callee: str, *, at: datetime, seconds: int) -> None:
    answer = calls.authorize_call(database, CallRequest(call_id, account, "", callee, answered=True), now=at)
    assert answer["status"] == "authorized", answer
    calls.end_call(database, call_id, duration_seconds=seconds, now=at + timedelta(seconds=seconds))


@pytest.fixture
def calls_world(staff_world: Database) -> Database:  # noqa: F811 - the fixture imported above
    """bob calls Germany for a minute five days ago, and the UK for 30 s yesterday; alice calls Germany."""
    user(staff_world, "bob", "bob", Role.CLIENT)
    now = utc_now().replace(hour=12, minute=0, second=0, microsecond=0)
    call(staff_world, "bob-de@portal", "bob", GERMANY, at=now - timedelta(days=5), seconds=60)
    call(staff_world, "bob-uk@portal", "bob", UK, at=now - timedelta(days=1), seconds=30)
    call(staff_world, "alice-de@portal", "alice", GERMANY, at=now - timedelta(days=1), seconds=60)
    return staff_world


class Portal:
    """One application for a test, and a signed-in client per login (building an application is slow)."""

    def __init__(self, database: Database, **options: Any) -> None:
        self.app = create_app(database, cookie_secure=True, sealer=SEALER, **options)

    def signed_in(self, login: str) -> TestClient:
        client = TestClient(self.app, base_url="https://testserver")
        assert log_in(client, login).status_code == 303, login
        return client


def days_ago(days: int) -> str:
    return (utc_now() - timedelta(days=days)).date().isoformat()


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_customer_filters_its_calls_and_downloads_them_with_its_own_charge_only(calls_world: Database) -> None:
    portal = Portal(calls_world)
    client = portal.signed_in("bob")
    everything = client.get("/calls")
    assert everything.status_code == 200
    assert GERMANY in everything.text and UK in everything.text and "alice-de" not in everything.text
    assert ">$0.03<" in everything.text  # 0.0292 for the minute to Germany, half-up at two decimals
    assert "Customer paid" not in everything.text and '<th scope="col">Account</th>' not in everything.text
    to_germany = client.get("/calls", params={"number": "+49 30"})
    assert GERMANY in to_germany.text and UK not in to_germany.text
    recent = client.get("/calls", params={"since": days_ago(3)})
    assert UK in recent.text and GERMANY not in recent.text
    older = client.get("/calls", params={"until": days_ago(3), "state": "ended"})
    assert GERMANY in older.text and UK not in older.text
    assert "No calls match." in client.get("/calls", params={"state": "refused"}).text

    exported = client.get("/calls.csv", params={"number": "49"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert [(row["call_id"], row["payer"], row["amount"]) for row in rows_of(exported.text)] == [
        ("bob-de@portal", "bob", "0.029200")
    ]
    for bad in ({"since": "last week"}, {"number": "forty-four"}, {"state": "sleeping"}):
        refused = client.get("/calls", params=bad)
        assert refused.status_code == 422, bad
        assert client.get("/calls.csv", params=bad).status_code == 422, bad
    assert client.get("/calls", params={"since": days_ago(1), "until": days_ago(3)}).status_code == 422
    assert client.get("/calls/alice-de@portal").status_code == 404  # another client's call: as if it did not exist
    assert client.get("/calls", params={"account": "alice"}).status_code == 200  # a customer's account: ignored


def test_a_reseller_sees_its_subtrees_calls_narrows_them_to_one_account_and_never_its_owners_charges(
    calls_world: Database,
) -> None:
    portal = Portal(calls_world)
    client = portal.signed_in("nc-admin")
    listed = client.get("/calls")
    assert listed.status_code == 200 and "Customer paid" in listed.text
    assert all(f'href="/calls/{name}%40portal"' in listed.text for name in ("bob-de", "bob-uk", "alice-de"))
    only_alice = client.get("/calls", params={"account": "alice"})
    assert 'href="/calls/alice-de%40portal"' in only_alice.text and "bob-de" not in only_alice.text
    lines = rows_of(client.get("/calls.csv", params={"account": "bob", "number": "49"}).text)
    assert {row["payer"]: row["amount"] for row in lines} == {"bob": "0.029200", "north-city": "0.019360"}
    page = client.get("/calls/bob-de@portal")
    assert page.status_code == 200 and "<dt>Account</dt><dd>bob</dd>" in page.text
    assert "$0.03" in page.text

    other = portal.signed_in("bw-admin")
    assert "bob-de" not in other.get("/calls").text
    assert other.get("/calls", params={"account": "bob"}).status_code == 404
    assert other.get("/calls.csv", params={"account": "north-city"}).status_code == 404
    assert other.get("/calls/bob-de@portal").status_code == 404
    agent = portal.signed_in("ana")  # an agent sees totals, never calls
    assert agent.get("/calls").status_code == 404 and 'href="/calls"' not in agent.get("/").text


PROVIDER_PAGES = ("/switches", "/radius-clients", "/exchange-rates", "/audit")


def test_a_reseller_admin_and_a_customer_find_no_provider_page(staff_world: Database) -> None:  # noqa: F811
    portal = Portal(staff_world)
    for login in ("nc-admin", "alice"):
        client = portal.signed_in(login)
        home = client.get("/")
        token = csrf_of(client.get("/settings"))
        for path in PROVIDER_PAGES:
            assert client.get(path).status_code == 404, (login, path)
            assert f'href="{path}"' not in home.text, (login, path)
        for path, data in (
            ("/switches", {"name": "sneaky", "node": "north-city"}),
            ("/exchange-rates", {"base": "EUR", "quote": "USD", "rate": "9"}),
        ):
            assert client.post(path, data={"csrf_token": token, **data}).status_code == 404, (login, path)
    root_home = portal.signed_in("root").get("/")
    assert all(f'href="{path}"' in root_home.text for path in PROVIDER_PAGES)


def test_the_provider_registers_a_switch_sees_its_key_once_and_rotates_it(staff_world: Database) -> None:  # noqa: F811
    portal = Portal(staff_world)
    client = portal.signed_in("root")
    page = client.get("/switches")
    assert page.status_code == 200
    refused = client.post("/switches", data={"name": "kam-1", "node": "house"})
    assert refused.status_code == 403  # no CSRF token
    created = client.post("/switches", data={"csrf_token": csrf_of(page), "name": "kam-1", "node": "house"})
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    key = re.search(r'<code id="api-key">([^<]+)</code>', created.text)
    assert key and access.login_with_api_key(staff_world, plaintext=key.group(1)).role is Role.PROVIDER_ADMIN
    listed = client.get("/switches")
    assert "kam-1" in listed.text and key.group(1) not in listed.text
    again = client.post("/switches", data={"csrf_token": csrf_of(page), "name": "kam-1", "node": "house"})
    assert again.status_code == 409 and "There is a switch with this name already." in again.text
    no_url = client.post(
        "/switches", data={"csrf_token": csrf_of(page), "name": "kam-2", "node": "house", "notify_kind": "kamailio"}
    )
    assert no_url.status_code == 422 and "needs the address" in no_url.text

    rotated = client.post("/switches/kam-1/rotate-key", data={"csrf_token": csrf_of(page)})
    new_key = re.search(r'<code id="api-key">([^<]+)</code>', rotated.text)
    assert rotated.status_code == 200 and new_key and new_key.group(1) != key.group(1)
    with pytest.raises(Refusal):
        access.login_with_api_key(staff_world, plaintext=key.group(1))
    assert access.login_with_api_key(staff_world, plaintext=new_key.group(1)).role is Role.PROVIDER_ADMIN
    assert client.post("/switches/kam-9/rotate-key", data={"csrf_token": csrf_of(page)}).status_code == 404


def test_the_provider_sets_an_exchange_rate_and_finds_it_in_the_audit_log(staff_world: Database) -> None:  # noqa: F811
    portal = Portal(staff_world)
    client = portal.signed_in("root")
    page = client.get("/exchange-rates")
    token = csrf_of(page)
    for typed, reason in (
        ({"base": "EUR", "quote": "USD", "rate": "-1"}, "A rate is a positive number such as 1.0850."),
        ({"base": "EUR", "quote": "EUR", "rate": "1"}, "A rate converts between two different currencies."),
        ({"base": "XYZ", "quote": "USD", "rate": "1"}, "Enter a currency&#39;s three letters, such as EUR."),
    ):
        refused = client.post("/exchange-rates", data={"csrf_token": token, **typed})
        assert refused.status_code == 422 and reason in refused.text, typed
    saved = client.post("/exchange-rates", data={"csrf_token": token, "base": "gbp", "quote": "USD", "rate": "1,2712"})
    assert saved.status_code == 200 and "The rate is set from now on." in saved.text
    assert re.search(r"<td>GBP</td>\s*<td>USD</td>\s*<td class=\"number\">1.2712</td>", saved.text)

    audit = client.get("/audit", params={"action": "rates.set"})
    assert audit.status_code == 200 and "GBP/USD" in audit.text and "1.2712" in audit.text
    assert "<td>node.create</td>" not in audit.text
    assert "No entries match." in client.get("/audit", params={"action": "rates.set", "since": days_ago(-2)}).text
    assert "GBP/USD" in client.get("/audit", params={"action": "rates.set", "until": days_ago(0)}).text
    assert client.get("/audit", params={"since": "soon"}).status_code == 422

    # 49 more rates: with the demo's EUR/USD and this GBP/USD, 51 entries: 50 on the first page, 1 on the next.
    for cents in range(49):
        balances.set_exchange_rate(staff_world, base_currency="CHF", quote_currency="USD", rate=f"1.{cents:02d}")
    first = client.get("/audit", params={"action": "rates.set"})
    assert first.text.count("<td>rates.set</td>") == 50 and "GBP/USD" in first.text and "EUR/USD" not in first.text
    following = re.search(r'href="/audit\?(action=rates.set&amp;before_id=\d+)"', first.text)
    assert following
    second = client.get("/audit?" + following.group(1).replace("&amp;", "&"))
    assert second.text.count("<td>rates.set</td>") == 1 and "EUR/USD" in second.text and "Next page" not in second.text


def test_the_provider_sees_the_radius_clients_configured_never_their_secrets(staff_world: Database) -> None:  # noqa: F811
    clients = {"192.0.2.7": RadiusClient(secret="shared-s3cret", switch="cisco-1", require_message_authenticator=False)}
    page = Portal(staff_world, radius_clients=clients).signed_in("root").get("/radius-clients")
    assert page.status_code == 200
    assert re.search(r"<td>192.0.2.7</td>\s*<td>cisco-1</td>\s*<td>No</td>", page.text)
    assert "shared-s3cret" not in page.text


def test_the_provider_trusts_a_switch_with_its_durations_only_once_it_confirms_the_risk(
    staff_world: Database,  # noqa: F811
) -> None:
    calls.create_switch(staff_world, name="kam-1", node_login="north-city")
    portal = Portal(staff_world)
    client = portal.signed_in("root")
    listed = client.get("/switches")
    assert "Capped at the grant" in listed.text and 'href="/switches/kam-1/trusted-durations"' in listed.text
    page = client.get("/switches/kam-1/trusted-durations")
    assert page.status_code == 200 and "below a prepaid balance's floor" in page.text
    token = csrf_of(page)
    unconfirmed = client.post("/switches/kam-1/trusted-durations", data={"csrf_token": token, "trusted": "yes"})
    assert (
        unconfirmed.status_code == 422 and "Tick the box to confirm that you understand the risk." in unconfirmed.text
    )
    assert not calls.list_switches(staff_world)[0].trusted_durations
    assert (
        client.post("/switches/kam-1/trusted-durations", data={"trusted": "yes", "understood": "yes"}).status_code
        == 403
    )

    trusted = client.post(
        "/switches/kam-1/trusted-durations", data={"csrf_token": token, "trusted": "yes", "understood": "yes"}
    )
    assert trusted.status_code == 200 and "they are charged as it reports them" in trusted.text
    assert "Trusted: charged as reported" in trusted.text and calls.list_switches(staff_world)[0].trusted_durations
    stopped = client.post("/switches/kam-1/trusted-durations", data={"csrf_token": token, "trusted": "no"})
    assert "capped again at what each call was granted" in stopped.text
    assert not calls.list_switches(staff_world)[0].trusted_durations
    assert (
        client.post("/switches/kam-9/trusted-durations", data={"csrf_token": token, "trusted": "no"}).status_code == 404
    )
    assert (
        client.post("/switches/kam-1/trusted-durations", data={"csrf_token": token, "trusted": "x"}).status_code == 422
    )
    audit = client.get("/audit", params={"action": "switch.trusted_durations"}).text
    assert audit.count("<td>switch.trusted_durations</td>") == 2 and "switch kam-1" in audit

    reseller = access.login_with_password(staff_world, login="nc-admin", password="correct horse battery")
    with pytest.raises(Refusal) as refused:  # its own switch: still the provider's call
        calls.set_switch_trusted_durations(staff_world, name="kam-1", trusted=True, principal=reseller)
    assert refused.value.reason == "node_not_found"
    admin = portal.signed_in("nc-admin")
    assert admin.get("/switches/kam-1/trusted-durations").status_code == 404


def pages_links(html: str, path: str) -> dict[str, dict[str, list[str]]]:
    """The pager's links of a list page: {'first': {filter: [value]}, 'next': {...}}."""
    found = re.findall(rf'<a href="{re.escape(path)}\??([^"]*)" rel="(first|next)">', html)
    return {rel: parse_qs(query.replace("&amp;", "&")) for query, rel in found}


def test_the_calls_pagers_links_keep_every_filter_for_a_customer_and_an_admin(calls_world: Database) -> None:
    """bob calls Berlin 51 times two days ago: with its four filters (and an admin's account), 50 and 1."""
    at = utc_now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)
    for number in range(51):
        call(
            calls_world, f"bob-berlin-{number:02d}@portal", "bob", GERMANY, at=at + timedelta(minutes=number), seconds=6
        )
    portal = Portal(calls_world)
    customer = {"since": days_ago(3), "until": days_ago(0), "number": "+49 30", "state": "ended"}
    for login, filters in (("bob", customer), ("nc-admin", customer | {"account": "bob"})):
        client = portal.signed_in(login)
        first = client.get("/calls", params=filters)
        assert first.text.count('href="/calls/bob-berlin-') == 50, login
        links = pages_links(first.text, "/calls")
        assert set(links) == {"next"}, login  # no first-page link on the first page
        following = links["next"]
        assert {name: values for name, values in following.items() if name != "after_id"} == {
            name: [value] for name, value in filters.items()
        }, login
        second = client.get("/calls", params={name: values[0] for name, values in following.items()})
        assert second.text.count('href="/calls/bob-berlin-') == 1 and "bob-de%40portal" not in second.text, login
        back = pages_links(second.text, "/calls")
        assert set(back) == {"first"} and back["first"] == {name: [value] for name, value in filters.items()}, login
        csv_link = re.search(r'href="/calls.csv\?([^"]*)" download', second.text)
        assert csv_link and parse_qs(csv_link.group(1).replace("&amp;", "&")) == back["first"], login


def test_the_audit_logs_pager_keeps_every_filter(staff_world: Database) -> None:  # noqa: F811
    for cents in range(51):  # with the demo's EUR/USD (set the same way): 52 entries of the operator's
        balances.set_exchange_rate(staff_world, base_currency="CHF", quote_currency="USD", rate=f"1.{cents:02d}")
    client = Portal(staff_world).signed_in("root")
    filters = {"actor": "cli", "action": "rates.set", "since": days_ago(1), "until": days_ago(0)}
    first = client.get("/audit", params=filters)
    assert first.text.count("<td>rates.set</td>") == 50
    following = pages_links(first.text, "/audit")["next"]
    assert {name: values for name, values in following.items() if name != "before_id"} == {
        name: [value] for name, value in filters.items()
    }
    second = client.get("/audit", params={name: values[0] for name, values in following.items()})
    assert second.text.count("<td>rates.set</td>") == 2 and "1.00" in second.text and "EUR/USD" in second.text
    assert "<td>node.create</td>" not in second.text  # the demo's older entries of other actions stay filtered out
    assert pages_links(second.text, "/audit") == {"first": {name: [value] for name, value in filters.items()}}
