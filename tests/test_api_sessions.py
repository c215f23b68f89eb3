"""A person's session over real HTTP requests: cookie flags, CSRF on every change, logout everywhere."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tollway.access import service as access
from tollway.access.model import Role
from tollway.demo import load_demo
from tollway.http.app import create_app
from tollway.store.database import Database

PASSWORD = "correct horse battery"


def test_a_session_reads_freely_changes_only_with_its_csrf_token_and_ends_at_logout(database: Database) -> None:
    load_demo(database)
    access.create_user(database, None, node_login="north-city", login="nc", password=PASSWORD, role=Role.RESELLER_ADMIN)
    browser = TestClient(create_app(database), base_url="https://testserver")

    opened = browser.post("/api/v1/sessions", json={"login": "nc", "password": PASSWORD})
    assert opened.status_code == 200
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie
    csrf = opened.json()["csrf_token"]

    assert browser.get("/api/v1/nodes/alice/balance").json()["balance"] == "25.000000"
    forged = browser.post("/api/v1/nodes/alice/topups", json={"id": "s-1", "amount": "1"})
    assert (forged.status_code, forged.json()["reason"]) == (403, "csrf_failed")
    wrong = browser.post(
        "/api/v1/nodes/alice/topups", json={"id": "s-1", "amount": "1"}, headers={"x-csrf-token": csrf[:-1] + "x"}
    )
    assert wrong.status_code == 403
    done = browser.post("/api/v1/nodes/alice/topups", json={"id": "s-1", "amount": "1"}, headers={"x-csrf-token": csrf})
    assert done.status_code == 200 and done.json()["balance"]["balance"] == "26.000000"

    assert browser.delete("/api/v1/sessions/current", headers={"x-csrf-token": csrf}).status_code == 204
    # The cookie a thief copied before logout is dead too: the session ended on the server.
    thief = TestClient(create_app(database), base_url="https://testserver")
    thief.cookies.set("tollway_session", cookie.split(";")[0].split("=", 1)[1])
    assert thief.get("/api/v1/nodes/alice/balance").json()["reason"] == "session_invalid"


def test_a_suspended_reseller_loses_its_open_sessions_at_once(database: Database) -> None:
    from tollway.tree import service as tree
    from tollway.tree.model import Status

    load_demo(database)
    access.create_user(
        database, None, node_login="north-metro", login="nm", password=PASSWORD, role=Role.RESELLER_ADMIN
    )
    browser = TestClient(create_app(database), base_url="https://testserver")
    assert browser.post("/api/v1/sessions", json={"login": "nm", "password": PASSWORD}).status_code == 200
    assert browser.get("/api/v1/nodes/carol").status_code == 200
    tree.set_status(database, login="north-metro", status=Status.SUSPENDED)
    blocked = browser.get("/api/v1/nodes/carol")
    assert (blocked.status_code, blocked.json()["reason"]) == (403, "account_blocked")
