"""Organizations, lines and the SIP lookup through the HTTP API, as an organization's admin, its users and a
switch use them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.organizations_world import SEALER, build_organizations
from tollway.access import service as access
from tollway.access.model import Role
from tollway.calls import service as calls
from tollway.http.app import create_app
from tollway.organizations import model
from tollway.store.database import Database


@pytest.fixture
def api(database: Database) -> Iterator[TestClient]:
    build_organizations(database)
    app = create_app(database)
    app.state.sealer = SEALER
    with TestClient(app, base_url="https://testserver") as client:
        yield client


def key(database: Database, login: str, role: Role) -> dict[str, str]:
    _, plaintext = access.create_api_key(database, None, node_login=login, name="test", role=role)
    return {"Authorization": f"Bearer {plaintext}"}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_an_organization_admin_makes_users_and_extensions_and_sees_no_other_organization(
    api: TestClient, database: Database
) -> None:
    admin = key(database, "acme", Role.ORGANIZATION_ADMIN)
    user = ok(
        api.post(
            "/api/v1/organizations/acme/users",
            json={"login": "ann", "name": "Ann", "email": "ann@acme.example", "language": "pl", "daily_cap": "2.50"},
            headers=admin,
        ),
        201,
    )
    assert (user["organization"], user["language"], user["role"], user["daily_cap"], user["monthly_cap"]) == (
        "acme",
        "pl",
        "member",
        "2.500000",
        None,
    )
    made = ok(
        api.post("/api/v1/organizations/acme/extensions", json={"user": "ann", "number": "101"}, headers=admin), 201
    )
    assert (made["sip_username"], made["sip_domain"], len(made["secret"])) == ("101", "acme", model.SIP_SECRET_LENGTH)
    read = ok(api.get("/api/v1/organizations/acme/extensions/101", headers=admin))
    assert "secret" not in read  # shown once
    rotated = ok(api.post("/api/v1/organizations/acme/extensions/101/secret", headers=admin))
    assert rotated["secret"] != made["secret"]
    organization = ok(api.get("/api/v1/organizations/acme", headers=admin))
    assert (organization["users"], organization["extensions"], organization["wallet"]) == (1, 1, "user")

    # Another organization, whether it exists or not, is not there for acme's admin.
    for path in ("/api/v1/organizations/globex", "/api/v1/organizations/initech", "/api/v1/organizations/globex/users"):
        answer = api.get(path, headers=admin)
        assert (answer.status_code, answer.json()["reason"]) == (404, "organization_not_found")
    # Its admin sets no limits of its own; north-city does.
    assert api.put("/api/v1/nodes/acme/organization-limits", json={"users_limit": 9}, headers=admin).status_code == 403
    city = key(database, "north-city", Role.RESELLER_ADMIN)
    limits = ok(api.put("/api/v1/nodes/acme/organization-limits", json={"users_limit": 1}, headers=city))
    assert limits == {"users_limit": 1, "extensions_per_user_limit": None}
    refused = api.post("/api/v1/organizations/acme/users", json={"login": "ben", "name": "Ben"}, headers=admin)
    assert (refused.status_code, refused.json()["reason"]) == (422, "users_limit_reached")


def test_a_user_sets_its_extensions_follow_me_and_caller_id_and_a_switch_reads_them(
    api: TestClient, database: Database
) -> None:
    admin = key(database, "acme", Role.ORGANIZATION_ADMIN)
    city = key(database, "north-city", Role.RESELLER_ADMIN)
    for login in ("ann", "ben"):
        ok(api.post("/api/v1/organizations/acme/users", json={"login": login, "name": login}, headers=admin), 201)
    for user, number in (("ann", "101"), ("ben", "102")):
        body = {"user": user, "number": number, "sip_username": f"{user}-desk"}
        ok(api.post("/api/v1/organizations/acme/extensions", json=body, headers=admin), 201)
    ok(api.post("/api/v1/lines/acme/caller-ids", json={"number": "+442079460100"}, headers=city), 201)

    ann = key(database, "ann", Role.ORGANIZATION_USER)
    ok(api.post("/api/v1/lines/acme/extensions/101/caller-ids", json={"number": "+442079460100"}, headers=ann), 201)
    follow_me = {"entries": [{"number": "102", "ring_seconds": 10}, {"number": "+447700900123", "ring_seconds": 20}]}
    line = ok(api.put("/api/v1/lines/acme/extensions/101/follow-me", json=follow_me, headers=ann))
    assert line["follow_me"] == follow_me["entries"] and line["default_caller_id"] == "+442079460100"
    assert api.get("/api/v1/lines/acme/extensions/102", headers=ann).status_code == 404  # ben's

    # The switch (a key with calls:control at north-city) reads the credential and the route.
    _, switch_key = calls.create_switch(database, name="kamailio-1", node_login="north-city")
    switch = {"Authorization": f"Bearer {switch_key}"}
    found = ok(
        api.post("/api/v1/sip/lookup", json={"domain": "acme", "username": "ben-desk", "callee": "101"}, headers=switch)
    )
    assert found == {
        "status": "found",
        "ha1": found["ha1"],
        "organization": "acme",
        "extension": "102",
        "caller_id": "",
        "caller_ids": "",
        "route": "internal",
        "target": "ann-desk",
        "follow_me": "ext:ben-desk:10 out:+447700900123:20",
        "voicemail": False,
        "recording": False,
        "target_voicemail": False,
        "target_recording": False,
    }
    outside = ok(
        api.post(
            "/api/v1/sip/lookup",
            json={"domain": "acme", "username": "ann-desk", "callee": "+442079460000"},
            headers=switch,
        )
    )
    assert (outside["route"], outside["caller_id"], outside["caller_ids"]) == (
        "outside",
        "+442079460100",
        "+442079460100",
    )
    for unknown in ({"domain": "acme", "username": "nobody"}, {"domain": "globex", "username": "ann-desk"}):
        assert ok(api.post("/api/v1/sip/lookup", json=unknown, headers=switch))["status"] == "unknown"
    assert api.post("/api/v1/sip/lookup", json={"domain": "acme", "username": "x"}, headers=ann).status_code == 403

    # Credit control takes the extension instead of an account: ann pays (acme lets its users pay).
    authorize = {"call_id": "h-1", "extension": "ann-desk@acme", "callee": "+44 20 7946 0000"}
    answer = ok(api.post("/api/v1/calls/authorize", json=authorize, headers=switch))
    assert (answer["status"], answer["reason"], answer["level"]) == ("refused", "insufficient_funds", "ann")
    internal = ok(
        api.post("/api/v1/calls/authorize", json=authorize | {"call_id": "h-2", "callee": "102"}, headers=switch)
    )
    assert (internal["status"], internal["internal"]) == ("authorized", True)
    both = api.post("/api/v1/calls/authorize", json=authorize | {"account": "alice"}, headers=switch)
    assert (both.status_code, both.json()["reason"]) == (422, "request_invalid")


def test_an_import_over_http_answers_every_secret_once_or_every_bad_line(api: TestClient, database: Database) -> None:
    admin = key(database, "acme", Role.ORGANIZATION_ADMIN) | {"content-type": "text/csv"}
    bad = api.post(
        "/api/v1/organizations/acme/imports", content="login,extension\nann,101\nben,1x1\nann,102\n", headers=admin
    )
    assert bad.status_code == 422
    assert bad.json()["reason"] == "import_invalid"
    assert bad.json()["problems"] == [
        "line 3: extension_number_invalid: an extension number here has 3 digits, not starting with 0",
        "line 4: login_repeated: ann is on line 2 already",
    ]
    made = ok(
        api.post("/api/v1/organizations/acme/imports", content="login,extension\nann,101\nben,102\n", headers=admin),
        201,
    )
    assert made["imported"] == 2
    assert [(e["user"], e["number"], len(e["secret"])) for e in made["extensions"]] == [
        ("ann", "101", 24),
        ("ben", "102", 24),
    ]
    too_large = api.post("/api/v1/organizations/acme/imports", content="x" * (3 * 1024 * 1024), headers=admin)
    assert (too_large.status_code, too_large.json()["reason"]) == (413, "import_too_large")


def test_voicemail_and_recording_flags_reach_the_switch_and_a_suspended_users_extensions_stop(
    api: TestClient, database: Database
) -> None:
    admin = key(database, "acme", Role.ORGANIZATION_ADMIN)
    for user, number in (("ann", "101"), ("ben", "102")):
        ok(api.post("/api/v1/organizations/acme/users", json={"login": user, "name": user}, headers=admin), 201)
        ok(api.post("/api/v1/organizations/acme/extensions", json={"user": user, "number": number}, headers=admin), 201)
    flags = ok(api.patch("/api/v1/organizations/acme/extensions/101", json={"voicemail": True}, headers=admin))
    assert (flags["voicemail"], flags["recording"]) == (True, False)
    ok(api.patch("/api/v1/organizations/acme/extensions/102", json={"recording": True}, headers=admin))
    _, switch_key = calls.create_switch(database, name="kamailio-1", node_login="north-city")
    switch = {"Authorization": f"Bearer {switch_key}"}

    def lookup(username: str, callee: str) -> Any:
        body = {"domain": "acme", "username": username, "callee": callee}
        return ok(api.post("/api/v1/sip/lookup", json=body, headers=switch))

    # ben (102, recording) calls ann (101, voicemail): the switch gets both extensions' flags.
    found = lookup("102", "101")
    assert (found["route"], found["voicemail"], found["recording"]) == ("internal", False, True)
    assert (found["target_voicemail"], found["target_recording"]) == (True, False)
    outside = lookup("101", "+442079460000")
    assert (outside["voicemail"], outside["recording"], outside["target_voicemail"]) == (True, False, False)

    # acme suspends ben: his extension is unknown to the switch, and credit control refuses him as suspended.
    suspended = ok(api.patch("/api/v1/organizations/acme/users/ben", json={"status": "suspended"}, headers=admin))
    assert suspended["status"] == "suspended"
    assert lookup("102", "101")["status"] == "unknown"
    authorize = {"call_id": "s-1", "extension": "102@acme", "callee": "+44 20 7946 0000"}
    answer = ok(api.post("/api/v1/calls/authorize", json=authorize, headers=switch))
    assert (answer["status"], answer["reason"]) == ("refused", "account_suspended")
    # Closing a user is its owners' action, not its organization's.
    closing = api.patch("/api/v1/organizations/acme/users/ben", json={"status": "closed"}, headers=admin)
    assert closing.status_code == 403
    ok(api.patch("/api/v1/organizations/acme/users/ben", json={"status": "active"}, headers=admin))
    assert lookup("102", "101")["status"] == "found"
