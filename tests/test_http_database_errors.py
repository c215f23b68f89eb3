"""A database that does not answer gets a 503 with a machine-readable reason, never a bare 500.

A PostgreSQL failover (docs/deployment.md) or restart drops every connection; a request caught by it,
even one whose COMMIT was on its way, answers 503 ``database_unavailable`` with ``Retry-After``. The
switch sends it again as it was: every write is idempotent by its ids, so it is applied once.
"""

from __future__ import annotations

import socket

from fastapi.testclient import TestClient

from tollway.http.app import create_app
from tollway.store.database import Database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_call_authorized_while_the_database_is_away_answers_503_to_be_retried() -> None:
    away = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    with TestClient(create_app(away)) as client:
        response = client.post(
            "/api/v1/calls/authorize",
            headers={"Authorization": "Bearer tw_0123456789ab_notarealkeybutwellformed"},
            json={"call_id": "c1@sbc", "account": "alice", "callee": "+44 20 7946 0000"},
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["reason"] == "database_unavailable"
    assert "same ids" in response.json()["message"]
