"""Call records as each principal sees them: a customer its own charge, a reseller its own line and those
below it, the provider every level; the same filter on one call, on the answer to a switch, in listings.

The world is tests/calls_world.py, built once per backend for the module (its tests only read it). Its
switch city-sbc serves north-city; alice's call r1 to the UK, at 10:00, lasts 90 s; each level pays its owner:
  alice       -> north-city   0.10/min per second              90 s        0.150000
  north-city  -> atlas-north  0.06/min in 6-s steps            90 s        0.090000
  atlas-north -> atlas        0.05/min by the minute           120 s       0.100000
  atlas       -> house        0.04/min per second + 0.05       90 s        0.110000
Then, all by the same switch: bob's call r2 to New York at 11:00, 60 s (bob pays 0.020000, north-city
0.012000, atlas-north 0.011000, atlas 0.010000); alice's call r3 to Paris at 12:00, refused (no rate); and
alice's call r4 to the UK at 13:00, up now.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.calls_world import UK, build_world
from tests.conftest import BackendTemplate
from tollway.access import service as access
from tollway.access.model import Principal, Role
from tollway.calls import service as calls
from tollway.calls.service import CallFilter, CallRequest
from tollway.cli.main import app
from tollway.errors import NotFound, Refusal
from tollway.http.app import create_app
from tollway.ledger.service import check
from tollway.rating.loading import TABLES
from tollway.store.database import Database

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NEW_YORK = "+1 212 555 0199"
PARIS = "+33 1 40 00 00 00"
CHARGES = {"alice": 150_000, "north-city": 90_000, "atlas-north": 100_000, "atlas": 110_000}
READERS = {
    "house": Role.PROVIDER_ADMIN,
    "atlas-north": Role.RESELLER_ADMIN,
    "north-city": Role.RESELLER_ADMIN,
    "alice": Role.CLIENT,
    "bob": Role.CLIENT,
}


@dataclass(frozen=True)
class World:
    database: Database
    keys: dict[str, str]  # login -> an API key of READERS' role there; "city-sbc": the switch's

    def principal(self, login: str) -> Principal:
        return access.login_with_api_key(self.database, plaintext=self.keys[login])

    def bearer(self, login: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[login]}"}


def call(
    database: Database, call_id: str, account: str, callee: str, at: datetime, seconds: int | None, *, switch: Principal
) -> None:
    """A call authorized (answered) at ``at`` and ended ``seconds`` later; None: left up."""
    request = CallRequest(call_id, account, "+1 212 555 0100", callee, answered=True)
    calls.authorize_call(database, request, principal=switch, now=at)
    if seconds is not None:
        calls.end_call(
            database, call_id, duration_seconds=seconds, principal=switch, now=at + timedelta(seconds=seconds)
        )


@pytest.fixture(scope="module")
def world(backend_template: BackendTemplate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    TABLES.clear()
    calls.LEVELS.clear()
    database = backend_template.fresh(tmp_path_factory.mktemp("records"))
    build_world(database)
    keys = {login: key_of(database, login, role) for login, role in READERS.items()}
    _, keys["city-sbc"] = calls.create_switch(database, name="city-sbc", node_login="north-city")
    switch = access.login_with_api_key(database, plaintext=keys["city-sbc"])
    call(database, "r1", "alice", UK, NOW, 90, switch=switch)
    call(database, "r2", "bob", NEW_YORK, NOW + timedelta(hours=1), 60, switch=switch)
    call(database, "r3", "alice", PARIS, NOW + timedelta(hours=2), None, switch=switch)
    call(database, "r4", "alice", UK, NOW + timedelta(hours=3), None, switch=switch)
    yield World(database, keys)
    report = check(database)
    database.dispose()
    assert report.ok, "\n".join(report.problems)


def key_of(database: Database, login: str, role: Role) -> str:
    _, plaintext = access.create_api_key(database, None, node_login=login, name=f"{login} key", role=role)
    return plaintext


def amounts(view: dict[str, Any]) -> dict[str, int]:
    return {line["account"]: line["amount_micros"] for line in view.get("charges", [])}


def test_the_provider_sees_every_levels_charge(world: World) -> None:
    assert amounts(calls.get_call(world.database, "r1")) == CHARGES  # the command line
    assert amounts(calls.get_call(world.database, "r1", principal=world.principal("house"))) == CHARGES


@pytest.mark.parametrize(
    ("login", "seen"),
    [
        ("alice", {"alice": 150_000}),
        ("north-city", {"alice": 150_000, "north-city": 90_000}),
        ("atlas-north", {"alice": 150_000, "north-city": 90_000, "atlas-north": 100_000}),
    ],
)
def test_a_call_shows_its_own_line_and_those_below_never_its_owners(
    world: World, login: str, seen: dict[str, int]
) -> None:
    view = calls.get_call(world.database, "r1", principal=world.principal(login))
    assert amounts(view) == seen
    assert [line["account"] for line in view["charges"]] == list(seen)  # no login, tariff or price of a level above


def test_the_end_answer_to_a_reseller_scoped_switch_has_its_levels_only(world: World) -> None:
    switch = world.principal("city-sbc")
    repeated = calls.end_call(world.database, "r1", duration_seconds=90, principal=switch)  # the switch's retry
    assert amounts(repeated) == {"alice": 150_000, "north-city": 90_000}


def test_over_http_a_switch_and_a_customer_see_their_lines_of_one_call(world: World) -> None:
    with TestClient(create_app(world.database)) as client:
        ended = client.post("/api/v1/calls/r1/end", json={"duration_seconds": 90}, headers=world.bearer("city-sbc"))
        assert ended.status_code == 200
        assert amounts(ended.json()) == {"alice": 150_000, "north-city": 90_000}
        mine = client.get("/api/v1/calls/r1", headers=world.bearer("alice"))
        assert amounts(mine.json()) == {"alice": 150_000}
        provider = client.get("/api/v1/calls/r1", headers=world.bearer("house"))
        assert amounts(provider.json()) == CHARGES


def listed(world: World, login: str | None, **where: Any) -> list[str]:
    reader = None if login is None else world.principal(login)
    page, _ = calls.list_calls(world.database, principal=reader, where=CallFilter(**where))
    return [view["call_id"] for view in page]


def test_the_list_filters_by_account_subtree_period_prefix_and_state(world: World) -> None:
    assert listed(world, "north-city") == ["r1", "r2", "r3", "r4"]
    assert listed(world, "north-city", account="bob") == ["r2"]
    assert listed(world, "north-city", account="alice") == ["r1", "r3", "r4"]
    assert listed(world, "atlas-north", account="north-city") == ["r1", "r2", "r3", "r4"]  # a subtree
    assert listed(world, "house", since=NOW + timedelta(minutes=30), until=NOW + timedelta(hours=2)) == ["r2"]
    assert listed(world, "house", since=NOW + timedelta(hours=2)) == ["r3", "r4"]
    assert listed(world, None, prefix="44") == ["r1", "r4"]
    assert listed(world, None, prefix="1212") == ["r2"]
    assert listed(world, "alice", state="ended") == ["r1"]
    assert listed(world, "alice", state="refused") == ["r3"]
    assert listed(world, "alice", state="answered", prefix="44") == ["r4"]
    assert listed(world, "bob") == ["r2"]


def test_the_list_pages_by_id(world: World) -> None:
    reader = world.principal("north-city")
    first, after = calls.list_calls(world.database, principal=reader, limit=3)
    rest, end = calls.list_calls(world.database, principal=reader, limit=3, after_id=after or 0)
    assert [v["call_id"] for v in first] == ["r1", "r2", "r3"]
    assert [v["call_id"] for v in rest] == ["r4"]
    assert end is None


def test_each_listed_call_carries_the_charges_its_reader_may_see(world: World) -> None:
    def costs(login: str) -> dict[str, dict[str, int]]:
        page, _ = calls.list_calls(world.database, principal=world.principal(login), where=CallFilter(state="ended"))
        return {view["call_id"]: amounts(view) for view in page}

    assert costs("north-city") == {
        "r1": {"alice": 150_000, "north-city": 90_000},
        "r2": {"bob": 20_000, "north-city": 12_000},
    }
    assert costs("alice") == {"r1": {"alice": 150_000}}
    assert costs("house")["r2"] == {"bob": 20_000, "north-city": 12_000, "atlas-north": 11_000, "atlas": 10_000}


@pytest.mark.parametrize(
    ("login", "where"),
    [("alice", {"account": "bob"}), ("north-city", {"account": "atlas"}), ("north-city", {"account": "nobody"})],
)
def test_an_account_the_reader_may_not_see_is_not_found(world: World, login: str, where: dict[str, str]) -> None:
    with pytest.raises(NotFound):
        listed(world, login, **where)


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ({"state": "gone"}, "state_invalid"),
        ({"prefix": "+44"}, "prefix_invalid"),
        ({"since": NOW, "until": NOW}, "period_invalid"),
        ({"since": datetime(2026, 11, 23)}, "time_zone_missing"),
    ],
)
def test_a_bad_filter_is_refused_with_its_reason(world: World, where: dict[str, Any], reason: str) -> None:
    with pytest.raises(Refusal) as refused:
        listed(world, None, **where)
    assert refused.value.reason == reason


def test_over_http_the_list_filters_and_refuses_what_it_does_not_know(world: World) -> None:
    with TestClient(create_app(world.database)) as client:
        city = world.bearer("north-city")
        found = client.get("/api/v1/calls", params={"account": "bob", "state": "ended"}, headers=city).json()
        assert [(v["call_id"], amounts(v)) for v in found["items"]] == [("r2", {"bob": 20_000, "north-city": 12_000})]
        period = {"since": "2026-11-23T10:30:00Z", "until": "2026-11-23T12:00:00+00:00"}
        assert [v["call_id"] for v in client.get("/api/v1/calls", params=period, headers=city).json()["items"]] == [
            "r2"
        ]
        assert client.get("/api/v1/calls", params={"account": "atlas"}, headers=city).status_code == 404
        assert client.get("/api/v1/calls", params={"prefix": "44x"}, headers=city).status_code == 422
        assert client.get("/api/v1/calls", params={"acount": "bob"}, headers=city).json()["reason"] == (
            "query_parameter_unknown"
        )


def export(world: World, login: str, **params: str) -> list[dict[str, str]]:
    with TestClient(create_app(world.database)) as client:
        answer = client.get("/api/v1/calls.csv", params=params, headers=world.bearer(login))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


def test_the_csv_export_has_a_line_per_charge_the_reader_may_see(world: World) -> None:
    rows = export(world, "north-city", state="ended")
    assert [(r["call_id"], r["payer"], r["billed_seconds"], r["amount"], r["currency"]) for r in rows] == [
        ("r1", "alice", "90", "0.150000", "USD"),
        ("r1", "north-city", "90", "0.090000", "USD"),
        ("r2", "bob", "60", "0.020000", "USD"),
        ("r2", "north-city", "60", "0.012000", "USD"),
    ]
    first = rows[0]
    assert (first["number"], first["duration_seconds"], first["end_reason"]) == ("442079460000", "90", "normal")
    assert (first["created_at"], first["ended_at"]) == ("2026-11-23T10:00:00+00:00", "2026-11-23T10:01:30+00:00")
    assert first["tariff"] == "north-city:retail"
    assert (first["caller"], first["price_per_minute"]) == ("'+1 212 555 0100", "0.100000")  # csvsafe: no formula
    assert [(r["call_id"], r["payer"], r["amount"]) for r in export(world, "alice", account="alice")] == [
        ("r1", "alice", "0.150000"),
        ("r3", "", ""),  # refused: no charge
        ("r4", "alice", ""),  # up now: reserved, not yet charged
    ]


def test_the_csv_export_streams_every_call_page_by_page(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "EXPORT_PAGE_CALLS", 1)
    lines = list(calls.export_calls(world.database, where=CallFilter(account="north-city")))
    assert lines[0].startswith("call_id,account,caller,callee,number,status,")
    assert [line.split(",")[0] for line in lines[1:]] == ["r1"] * 4 + ["r2"] * 4 + ["r3"] + ["r4"] * 4


def test_the_csv_export_refuses_before_its_first_line(world: World) -> None:
    with TestClient(create_app(world.database)) as client:
        hidden = client.get("/api/v1/calls.csv", params={"account": "atlas"}, headers=world.bearer("north-city"))
        assert (hidden.status_code, hidden.json()["reason"]) == (404, "node_not_found")


def test_the_command_line_lists_call_records_with_those_filters(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tollway.cli.calls.database", lambda: world.database)
    result = CliRunner().invoke(
        app, ["calls", "list", "--account", "north-city", "--state", "ended", "--format", "csv"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["call_id"], r["account"], r["seconds"], r["charged"]) for r in rows] == [
        ("r1", "alice", "90", "0.150000"),
        ("r2", "bob", "60", "0.020000"),
    ]
    refused = CliRunner().invoke(app, ["calls", "list", "--prefix", "+44"], catch_exceptions=False)
    assert refused.exit_code == 1 and "digits" in refused.output


DAY = {"since": "2026-11-23T00:00:00Z", "until": "2026-11-24T00:00:00Z"}


def margin(world: World, reader: str, seller: str, **period: str) -> Any:
    with TestClient(create_app(world.database)) as client:
        answer = client.get(f"/api/v1/nodes/{seller}/margin", params=period or DAY, headers=world.bearer(reader))
    return answer.status_code, answer.json()


def test_a_reseller_sees_its_revenue_cost_and_margin_on_calls_exactly(world: World) -> None:
    status, city = margin(world, "north-city", "north-city")
    assert status == 200
    # r1 and r2 ended that day (r4 is up: reserved, not yet charged): alice 0.15 + bob 0.02 sold,
    # 0.09 + 0.012 bought from atlas-north.
    assert {k: city[k] for k in ("currency", "calls_sold", "revenue", "calls_bought", "cost", "margin")} == {
        "currency": "USD",
        "calls_sold": 2,
        "revenue": "0.170000",
        "calls_bought": 2,
        "cost": "0.102000",
        "margin": "0.068000",
    }
    assert city["revenue_other_currencies"] == {}
    # atlas-north sells to north-city at 0.102 and buys at 0.111 (by the minute): it loses 0.009.
    _, north = margin(world, "atlas-north", "atlas-north")
    assert (north["revenue"], north["cost"], north["margin"]) == ("0.102000", "0.111000", "-0.009000")
    # Its owner reads north-city's margin too; from 11:00 only bob's r2 counts.
    _, later = margin(world, "atlas-north", "north-city", since="2026-11-23T11:00:00Z", until="2026-11-24T00:00:00Z")
    assert (later["calls_sold"], later["revenue"], later["cost"], later["margin"]) == (
        1,
        "0.020000",
        "0.012000",
        "0.008000",
    )


def test_nobody_below_a_seller_or_beside_it_reads_its_margin(world: World) -> None:
    for reader, seller in (("alice", "north-city"), ("north-city", "atlas-north"), ("north-city", "atlas")):
        status, answer = margin(world, reader, seller)
        assert (status, answer["reason"]) == (404, "node_not_found")
    assert margin(world, "house", "alice")[1]["reason"] == "margin_for_sellers_only"
    assert margin(world, "house", "north-city", since="2026-11-24T00:00:00Z", until="2026-11-23T00:00:00Z")[0] == 422


def test_a_clients_statement_shows_a_calls_reservation_released_once_not_as_a_second_charge(world: World) -> None:
    with TestClient(create_app(world.database)) as client:
        found = client.get("/api/v1/nodes/alice/transfers", headers=world.bearer("alice")).json()
    calls_seen = sorted(
        (t["created_at"][:19], t["phase"], t["status"], t["effect"], t["amount"])
        for t in found
        if t["kind"] == "call_charge"
    )
    assert calls_seen == [
        ("2026-11-23T10:00:00", "pending", "released", "0.000000", "1.000000"),  # r1's first grant, 600 s
        ("2026-11-23T10:01:30", "post", "posted", "-0.150000", "0.150000"),  # r1's cost, once
        ("2026-11-23T13:00:00", "pending", "reserved", "0.000000", "1.000000"),  # r4, up now
    ]
    topped_up = [t for t in found if t["kind"] == "topup"]
    assert [(t["status"], t["effect"]) for t in topped_up] == [("posted", "10.000000")]


def test_the_command_line_prints_a_sellers_margin(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tollway.cli.main.database", lambda: world.database)
    arguments = ["balance", "margin", "north-city", "--since", "2026-11-23", "--until", "2026-11-24", "--format", "csv"]
    result = CliRunner().invoke(app, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        ",calls,amount,amount_currency",
        "revenue,2,0.170000,USD",
        "cost,2,0.102000,USD",
        "margin,,0.068000,USD",
    ]


def test_the_command_lines_statement_counts_each_call_once_at_its_cost(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tollway.cli.main.database", lambda: world.database)
    arguments = ["balance", "statement", "alice", "--month", "2026-11", "--format", "csv"]
    result = CliRunner().invoke(app, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # November: r1's 0.15, once (its reservation of 1.00 is no charge; r4's, still held, neither). The
    # world's top-ups are dated by the clock when it was built: in the opening balance or after the month.
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["at", "movement", "amount", "amount_currency"]
    assert [row[1] for row in rows[1:]] == ["opening balance", "calls (1)", "closing balance"]
    opening, calls_total, closing = (Decimal(row[2]) for row in rows[1:])
    assert calls_total == Decimal("-0.150000")
    assert closing == opening - Decimal("0.150000")
