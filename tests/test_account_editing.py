"""Editing accounts: a node's name, language, time zone, contact email and phone; a user's own password;
an owner's reset of a user's password. Through the HTTP API and the command line, every change audited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tollway.access import service as access
from tollway.access.model import Action, Role
from tollway.errors import Refusal
from tollway.http.app import create_app
from tollway.store.database import Database
from tollway.tree import service as tree

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple battery horse correct"
TOLLWAY = str(Path(sys.executable).parent / "tollway")


def api(database: Database, node_login: str, role: Role, actions: list[Action] | None = None) -> TestClient:
    _, plaintext = access.create_api_key(database, None, node_login=node_login, name="k", role=role, actions=actions)
    client = TestClient(create_app(database), base_url="https://testserver")
    client.headers["Authorization"] = f"Bearer {plaintext}"
    return client


def browser(database: Database, login: str, password: str = PASSWORD) -> TestClient:
    """A browser logged in as ``login``, sending its CSRF token with every change."""
    client = TestClient(create_app(database), base_url="https://testserver")
    opened = client.post("/api/v1/sessions", json={"login": login, "password": password})
    assert opened.status_code == 200, opened.text
    client.headers["X-CSRF-Token"] = opened.json()["csrf_token"]
    return client


def test_an_owner_edits_a_clients_details_checked_and_audited(demo_database: Database) -> None:
    city = api(demo_database, "north-city", Role.RESELLER_ADMIN)
    edited = city.patch(
        "/api/v1/nodes/alice",
        json={
            "name": "Alice Martins",
            "language": "pt_BR",
            "time_zone": "America/Sao_Paulo",
            "email": "alice@example.com",
            "phone": "+1 (212) 555-0100",
        },
    )
    assert edited.status_code == 200, edited.text
    answer = edited.json()
    assert (answer["name"], answer["language"], answer["time_zone"]) == ("Alice Martins", "pt_BR", "America/Sao_Paulo")
    assert (answer["email"], answer["phone"]) == ("alice@example.com", "+12125550100")
    entry = next(e for e in city.get("/api/v1/audit", params={"action": "node.edit"}).json())
    assert entry["target_id"] == "alice"
    assert entry["before"] == {
        "name": "Alice (retail)",
        "language": "en",
        "time_zone": "UTC",
        "email": None,
        "phone": None,
    }
    assert entry["after"]["phone"] == "+12125550100"
    # Only what is sent changes; null clears the email.
    cleared = city.patch("/api/v1/nodes/alice", json={"email": None}).json()
    assert (cleared["email"], cleared["phone"], cleared["name"]) == (None, "+12125550100", "Alice Martins")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"language": "xx"}, "language_invalid"),  # shaped like one, but no language
        ({"language": "english"}, "language_invalid"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone_invalid"),
        ({"time_zone": "posix/Europe/Paris"}, "time_zone_invalid"),
        ({"email": "alice@examplecom"}, "email_invalid"),
        ({"email": "alice@example.com\r\nBcc: all@example.com"}, "email_invalid"),
        ({"phone": "555-0100"}, "phone_invalid"),  # no country code
        ({"phone": "+1 212 555 0100 ext 7"}, "phone_invalid"),
        ({"name": "  "}, "name_invalid"),
        ({"name": None}, "name_invalid"),
        ({"language": None}, "language_invalid"),
    ],
)
def test_a_bad_detail_is_refused_and_nothing_changes(
    demo_database: Database, body: dict[str, object], reason: str
) -> None:
    city = api(demo_database, "north-city", Role.RESELLER_ADMIN)
    refused = city.patch("/api/v1/nodes/alice", json=body | {"phone": "+12125550100"} if "phone" not in body else body)
    assert (refused.status_code, refused.json()["reason"]) == (422, reason), refused.text
    alice = city.get("/api/v1/nodes/alice").json()
    assert (alice["name"], alice["language"], alice["phone"]) == ("Alice (retail)", "en", None)


def test_a_client_and_its_agent_edit_its_details_others_do_not_even_see_it(demo_database: Database) -> None:
    assert (
        api(demo_database, "alice", Role.CLIENT)
        .patch("/api/v1/nodes/alice", json={"language": "fr"})
        .json()["language"]
        == "fr"
    )
    ana = api(demo_database, "agent-ana", Role.AGENT)
    assert ana.patch("/api/v1/nodes/alice", json={"phone": "+33 1 23 45 67 89"}).status_code == 200
    assert ana.patch("/api/v1/nodes/trunk-one", json={"name": "x"}).status_code == 404  # not one of hers
    metro = api(demo_database, "north-metro", Role.RESELLER_ADMIN)
    assert metro.patch("/api/v1/nodes/alice", json={"name": "x"}).json()["reason"] == "node_not_found"
    read_only = api(demo_database, "north-city", Role.RESELLER_ADMIN, [Action.NODE_READ])
    assert read_only.patch("/api/v1/nodes/alice", json={"name": "x"}).status_code == 403


def test_a_user_changes_its_own_password_and_its_other_sessions_end(demo_database: Database) -> None:
    access.create_user(demo_database, None, node_login="alice", login="alice-web", password=PASSWORD, role=Role.CLIENT)
    laptop, phone = browser(demo_database, "alice-web"), browser(demo_database, "alice-web")
    wrong = laptop.put(
        "/api/v1/users/alice-web/password", json={"current_password": "not it at all", "new_password": NEW_PASSWORD}
    )
    assert (wrong.status_code, wrong.json()["reason"]) == (422, "current_password_wrong")
    changed = laptop.put(
        "/api/v1/users/alice-web/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"sessions_closed": 1}
    assert phone.get("/api/v1/nodes/alice").json()["reason"] == "session_invalid"  # the other one ended
    assert laptop.get("/api/v1/nodes/alice").status_code == 200  # the one that asked goes on
    with pytest.raises(Refusal, match="login_failed"):
        access.login_with_password(demo_database, login="alice-web", password=PASSWORD)
    assert access.login_with_password(demo_database, login="alice-web", password=NEW_PASSWORD).user_id is not None
    city = api(demo_database, "north-city", Role.RESELLER_ADMIN)
    entry = city.get("/api/v1/audit", params={"action": "user.password_change"}).json()[0]
    assert entry["target_id"] == "alice-web" and entry["after"] == {"sessions_closed": 1}
    assert PASSWORD not in str(entry) and NEW_PASSWORD not in str(entry)


def test_only_the_user_itself_changes_its_password(demo_database: Database) -> None:
    access.create_user(demo_database, None, node_login="alice", login="alice-web", password=PASSWORD, role=Role.CLIENT)
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    for client, status, reason in (
        (api(demo_database, "alice", Role.CLIENT), 403, "own_password_only"),  # a key is not the user
        (api(demo_database, "north-city", Role.RESELLER_ADMIN), 403, "own_password_only"),
        (api(demo_database, "north-metro", Role.RESELLER_ADMIN), 404, "user_not_found"),
    ):
        answer = client.put("/api/v1/users/alice-web/password", json=body)
        assert (answer.status_code, answer.json()["reason"]) == (status, reason)
    missing = api(demo_database, "north-metro", Role.RESELLER_ADMIN).put("/api/v1/users/alice-wex/password", json=body)
    assert missing.json() == {"reason": "user_not_found", "message": "user alice-wex not found"}


def test_guessing_the_current_password_is_throttled_as_a_login(demo_database: Database) -> None:
    access.create_user(demo_database, None, node_login="alice", login="alice-web", password=PASSWORD, role=Role.CLIENT)
    thief = browser(demo_database, "alice-web")  # a stolen session cookie
    reasons = [
        thief.put(
            "/api/v1/users/alice-web/password",
            json={"current_password": f"guess {n} guess", "new_password": NEW_PASSWORD},
        ).json()["reason"]
        for n in range(access.FAILED_LOGINS_FREE + 1)
    ]
    assert reasons == ["current_password_wrong"] * 5 + ["login_throttled"]


def test_an_owner_resets_a_password_below_it_shown_once(demo_database: Database) -> None:
    access.create_user(demo_database, None, node_login="alice", login="alice-web", password=PASSWORD, role=Role.CLIENT)
    access.create_user(
        demo_database, None, node_login="north-city", login="nina", password=PASSWORD, role=Role.RESELLER_ADMIN
    )
    session = browser(demo_database, "alice-web")
    city = api(demo_database, "north-city", Role.RESELLER_ADMIN)
    reset = city.post("/api/v1/users/alice-web/password-reset")
    assert reset.status_code == 200, reset.text
    password = reset.json()["password"]
    assert reset.json()["login"] == "alice-web" and len(password) == access.RESET_PASSWORD_LENGTH
    assert session.get("/api/v1/nodes/alice").json()["reason"] == "session_invalid"
    assert access.login_with_password(demo_database, login="alice-web", password=password).user_id is not None
    entry = city.get("/api/v1/audit", params={"action": "user.password_reset"}).json()[0]
    assert entry["target_id"] == "alice-web" and password not in str(entry)
    for client, status, reason in (
        (city, 403, "password_reset_below_only"),  # nina is at north-city itself
        (api(demo_database, "north-metro", Role.RESELLER_ADMIN), 404, "user_not_found"),
        (api(demo_database, "atlas-north", Role.RESELLER_ADMIN, [Action.USER_MANAGE]), 403, "role_forbidden"),
    ):
        answer = client.post("/api/v1/users/nina/password-reset")
        assert (answer.status_code, answer.json()["reason"]) == (status, reason)
    assert (
        api(demo_database, "atlas-north", Role.RESELLER_ADMIN).post("/api/v1/users/nina/password-reset").status_code
        == 200
    )


def tollway(*args: str, url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOLLWAY_DATABASE_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [TOLLWAY, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_command_line_edits_nodes_and_passwords(demo_database: Database) -> None:
    url = demo_database.url
    edited = tollway("node", "edit", "alice", "--language", "fr", "--phone", "+44 20 7946 0000", url=url)
    assert edited.returncode == 0, edited.stderr
    assert edited.stdout.strip() == "alice: language fr, phone +442079460000"
    bad = tollway("node", "edit", "alice", "--time-zone", "Nowhere/Land", url=url)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "time_zone_invalid" in bad.stderr
    access.create_user(demo_database, None, node_login="alice", login="alice-web", password=PASSWORD, role=Role.CLIENT)
    changed = tollway(
        "user", "password", "alice-web", "--password-stdin", url=url, stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n"
    )
    assert changed.returncode == 0, changed.stderr
    reset = tollway("user", "reset-password", "alice-web", url=url)
    assert reset.returncode == 0, reset.stderr
    password = reset.stdout.strip()
    assert access.login_with_password(demo_database, login="alice-web", password=password).user_id is not None
    assert tree.get_node(demo_database, None, login="alice").phone == "+442079460000"
