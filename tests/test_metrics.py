"""An operator scrapes Tollway's counters with Prometheus at /api/metrics, with the token it configured; anyone
else finds nothing there, exactly as at a path that does not exist. A switch reporting an unbelievable duration
shows on tollway_call_overshoots_total; the processes of one host add up when they share a directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tests.calls_world import UK, build_world
from tollway import metrics
from tollway.calls import service as calls
from tollway.calls.service import CallSettings
from tollway.http.app import create_app
from tollway.store.database import Database

TOKEN = "scrape-me-7f3e9c1d0002"
MINUTE = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=120)


def scraped(client: TestClient, token: str | None) -> tuple[int, str]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    answer = client.get("/api/metrics", headers=headers)
    return answer.status_code, answer.text


def test_without_its_token_the_metrics_path_answers_as_a_path_that_does_not_exist(database: Database) -> None:
    for configured in (None, TOKEN):
        client = TestClient(create_app(database, metrics_token=configured), base_url="https://testserver")
        missing = client.get("/api/no-such-path")
        assert missing.status_code == 404
        for token in (None, "", "scrape-me", TOKEN + "x", TOKEN.upper()):
            if token == configured:
                continue
            assert scraped(client, token) == (404, missing.text)


def test_an_unbelievable_duration_is_counted_on_the_overshoots_metric(database: Database) -> None:
    build_world(database, balances_of={"alice": "0.20"})
    _, key = calls.create_switch(database, name="sbc-1", node_login="house")
    switch = {"Authorization": f"Bearer {key}"}
    client = TestClient(create_app(database, call_settings=MINUTE, metrics_token=TOKEN), base_url="https://testserver")
    before = metrics.sample(metrics.CALL_OVERSHOOTS, reason="beyond_grant")

    call = {"call_id": "c1", "account": "alice", "callee": UK, "answered": True}
    assert client.post("/api/v1/calls/authorize", json=call, headers=switch).status_code == 200
    ended = client.post("/api/v1/calls/c1/end", json={"duration_seconds": 20_000}, headers=switch).json()
    assert ended["overshoot_reason"] == "beyond_grant"

    status, text = scraped(client, TOKEN)
    assert status == 200
    assert f'tollway_call_overshoots_total{{reason="beyond_grant"}} {before + 1}' in text.splitlines()
    assert "# HELP tollway_card_pin_locks_total Calling-card PIN guessing locks" in text


COUNT_ONE_LOCK = "from tollway import metrics; metrics.CARD_PIN_LOCKS.labels(counter='caller').inc()"
SHOW = "import sys; from tollway import metrics; sys.stdout.buffer.write(metrics.exposition())"


def test_the_processes_of_a_host_sharing_a_directory_add_up(tmp_path: Path) -> None:
    environment = {**os.environ, metrics.MULTIPROCESS_DIRECTORY: str(tmp_path)}
    for _ in range(3):  # three processes each lock a caller out, then end
        subprocess.run([sys.executable, "-c", COUNT_ONE_LOCK], env=environment, check=True, timeout=60)
    shown = subprocess.run(
        [sys.executable, "-c", SHOW], env=environment, check=True, timeout=60, capture_output=True, text=True
    )
    assert 'tollway_card_pin_locks_total{counter="caller"} 3.0' in shown.stdout.splitlines()
