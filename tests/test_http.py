"""The HTTP application: liveness and readiness, in-process and served for real by `tollway serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tollway import __version__
from tollway.http.api.calls import AuthorizeOut, CallOut, ChargeOut, UpdateOut
from tollway.http.api.schemas import Reply, json_reply
from tollway.http.app import create_app
from tollway.store.database import Database

SERVE_START_SECONDS_MAX = 20


def test_health_answers_with_the_version(database: Database) -> None:
    with TestClient(create_app(database)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_ready_when_the_database_answers_and_is_migrated(database: Database) -> None:
    with TestClient(create_app(database)) as client:
        response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "schema": "ok"}


def test_not_ready_on_a_database_without_the_schema(tmp_path: Path) -> None:
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with TestClient(create_app(empty)) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready", "database": "ok", "schema": "migration_pending"}


def test_not_ready_when_the_database_is_unreachable() -> None:
    unreachable = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    with TestClient(create_app(unreachable)) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready", "database": "unreachable"}


def test_every_response_carries_a_request_id(database: Database) -> None:
    with TestClient(create_app(database)) as client:
        response = client.get("/health", headers={"x-request-id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tollway_serve_answers_over_real_http(database: Database) -> None:
    port = free_port()
    env = {**os.environ, "TOLLWAY_DATABASE_URL": database.url, "TOLLWAY_LOG_FORMAT": "json"}
    tollway = str(Path(sys.executable).parent / "tollway")
    server = subprocess.Popen(
        [tollway, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS_MAX
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else "server exited"
                assert time.monotonic() < deadline, "tollway serve did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["status"] == "ready"
    finally:
        server.terminate()
        _, logs = server.communicate(timeout=10)
    assert '"event": "http_request"' in logs and '"path": "/ready"' in logs


def _replies() -> list[Reply]:
    charge = ChargeOut(
        level=0,
        account="alice",
        tariff="north-city:retail",
        currency="USD",
        prefix="44",
        description='UK \u00e9\u4e2d "quoted"',
        price_micros=100_000,
        connect_fee_micros=0,
        billed_seconds=30,
        amount_micros=50_000,
    )
    call = {
        "call_id": "a84b4c76e66710@pc33",
        "reference": "call:1",
        "account": "alice",
        "caller": "101",
        "callee": "+44 20 7946 0000",
        "number": "442079460000",
        "status": "ended",
        "max_seconds": 3600,
        "grant_seconds": 600,
        "final": False,
        "limited_by": None,
        "reason": None,
        "level": None,
        "created_at": "2026-12-07T23:00:00+00:00",
        "answered_at": "2026-12-07T23:00:00+00:00",
        "grant_expires_at": None,
        "ended_at": "2026-12-07T23:00:30+00:00",
        "duration_seconds": 30,
        "overshoot_seconds": 0,
        "end_reason": "normal",
        "disconnect": None,
    }
    return [
        AuthorizeOut(
            call_id="c1", status="authorized", max_seconds=3600, grant_seconds=600, final=False, limited_by="alice"
        ),
        AuthorizeOut(
            call_id="c2",
            status="refused",
            reason="insufficient_funds",
            level="alice",
            sip_code=402,
            message="not enough",
        ),
        UpdateOut(call_id="c1", status="extended", max_seconds=3600, grant_seconds=1200, final=True),
        CallOut.model_validate(call),
        CallOut.model_validate(call | {"charges": [charge], "overshoot_reason": "beyond_grant"}),
    ]


def test_json_reply_is_what_the_response_model_would_answer() -> None:
    """The credit-control routes answer ``json_reply(model)``: the bytes and headers FastAPI makes of the
    same model returned through the route's ``response_model``."""
    replies = _replies()
    app = FastAPI()
    for number, reply in enumerate(replies):
        app.add_api_route(f"/model/{number}", lambda reply=reply: reply, response_model=type(reply))
        app.add_api_route(f"/reply/{number}", lambda reply=reply: json_reply(reply), response_model=type(reply))
    with TestClient(app) as client:
        for number in range(len(replies)):
            through_model, direct = client.get(f"/model/{number}"), client.get(f"/reply/{number}")
            assert direct.status_code == through_model.status_code == 200
            assert direct.content == through_model.content
            assert direct.headers == through_model.headers
