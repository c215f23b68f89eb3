"""A switch is not trusted with money: a reported duration is charged at most what was granted, over HTTP.

The world (tests/calls_world.py): alice -> north-city (L1) -> atlas-north (L2) -> atlas (L3) -> house.
A minute to the UK costs alice 0.10, north-city 0.06, atlas-north 0.05, atlas 0.04 + 0.05 to connect.
alice has 0.20 here: 120 s, of which a first grant of 60 s is reserved at every level.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.calls_world import UK, available, build_world, micros
from tollway.balances import service as balances
from tollway.calls import service as calls
from tollway.calls.service import CallSettings
from tollway.http.app import create_app
from tollway.store.database import Database

MINUTE = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=120)


def switch_client(database: Database, *, trusted: bool) -> tuple[TestClient, dict[str, str]]:
    build_world(database, balances_of={"alice": "0.20"})
    _, key = calls.create_switch(database, name="sbc-1", node_login="house", trusted_durations=trusted)
    client = TestClient(create_app(database, call_settings=MINUTE), base_url="https://testserver")
    return client, {"Authorization": f"Bearer {key}"}


def call_and_end(client: TestClient, headers: dict[str, str], duration_seconds: int) -> dict[str, Any]:
    authorized = client.post(
        "/api/v1/calls/authorize",
        json={"call_id": "c1", "account": "alice", "callee": UK, "answered": True},
        headers=headers,
    )
    assert authorized.status_code == 200 and authorized.json()["grant_seconds"] == 60, authorized.text
    ended = client.post("/api/v1/calls/c1/end", json={"duration_seconds": duration_seconds}, headers=headers)
    assert ended.status_code == 200, ended.text
    body: dict[str, Any] = ended.json()
    return body


def test_a_20000_second_call_reported_a_second_after_its_answer_is_charged_its_grant(database: Database) -> None:
    client, headers = switch_client(database, trusted=False)
    ended = call_and_end(client, headers, 20_000)
    assert (ended["duration_seconds"], ended["reported_duration_seconds"]) == (60, 20_000)
    assert (ended["overshoot_seconds"], ended["overshoot_reason"]) == (19_940, "beyond_grant")
    assert [line["amount_micros"] for line in ended["charges"]] == [100_000, 60_000, 50_000, 90_000]
    assert [line["overshoot_micros"] for line in ended["charges"]] == [0, 0, 0, 0]
    assert available(database, "alice") == micros("0.10")  # the floor holds: 0.20 less the 60 s granted


def test_a_trusted_switch_is_charged_what_it_reports_below_the_floor(database: Database) -> None:
    client, headers = switch_client(database, trusted=True)
    ended = call_and_end(client, headers, 20_000)
    assert (ended["duration_seconds"], ended["overshoot_reason"]) == (20_000, None)
    # 20,000 s at 0.10 a minute: 33.333334 charged to alice, 33.133334 of it past her floor, recorded so.
    assert ended["charges"][0]["amount_micros"] == 33_333_334
    assert ended["charges"][0]["overshoot_micros"] == 33_233_334
    assert balances.get_balance(database, login="alice").balance_micros == micros("0.20") - 33_333_334
