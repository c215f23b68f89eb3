"""The HTTP application: liveness and readiness, in-process and served for real by `tollway serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from tollway import __version__
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
