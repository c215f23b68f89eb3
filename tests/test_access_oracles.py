"""What you may not see answers 404 exactly as a thing that does not exist: no reason, message or status
tells "exists, but not yours" from "does not exist".

Each case sends the same request twice, naming a thing of another tenant and a thing that does not
exist (a name of the same length); the answers must be the same bytes once the name the caller sent
itself is put back in place of the other.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tollway.access import service as access
from tollway.access.model import Role
from tollway.http.app import create_app
from tollway.rating import subscriptions
from tollway.rating.plans import Period
from tollway.store.database import Database


def api(database: Database, node_login: str, role: Role) -> TestClient:
    _, plaintext = access.create_api_key(database, None, node_login=node_login, name="k", role=role)
    client = TestClient(create_app(database), base_url="https://testserver")
    client.headers["Authorization"] = f"Bearer {plaintext}"
    return client


def same_answer(client: TestClient, method: str, path: str, body: Any, hidden: str, missing: str) -> tuple[int, Any]:
    """Send the request naming ``hidden`` then ``missing``; both answers must match byte for byte."""
    assert len(hidden) == len(missing) and hidden != missing
    answers = []
    for name in (hidden, missing):
        response = client.request(method, path.replace("{name}", name), json=_named(body, name))
        answers.append((response.status_code, response.content.replace(name.encode(), b"{name}")))
    assert answers[0] == answers[1], answers
    return answers[0][0], answers[0][1]


def _named(body: Any, name: str) -> Any:
    return None if body is None else {key: name if value == "{name}" else value for key, value in body.items()}


def test_another_tenants_tariff_is_not_found_as_a_missing_one(demo_database: Database) -> None:
    city = api(demo_database, "north-city", Role.RESELLER_ADMIN)
    status, body = same_answer(
        city, "PUT", "/api/v1/nodes/alice/tariff", {"tariff": "{name}"}, "north-metro:retail", "north-metro:retaix"
    )
    assert status == 404 and b'"tariff_not_found"' in body


def test_another_tenants_tariff_in_a_profile_is_not_found_as_a_missing_one(demo_database: Database) -> None:
    metro = api(demo_database, "north-metro", Role.RESELLER_ADMIN)
    status, body = same_answer(
        metro,
        "PUT",
        "/api/v1/nodes/north-metro/profiles/p1",
        {"tariff": "{name}"},
        "north-city:retail",
        "north-city:retaix",
    )
    assert status == 404 and b'"tariff_not_found"' in body


def test_another_tenants_plan_is_not_found_as_a_missing_one(demo_database: Database) -> None:
    subscriptions.create_plan(
        demo_database, owner_login="euro-paris", name="talk-9", fee_micros=0, period=Period.MONTH, included_seconds=60
    )
    city = api(demo_database, "north-city", Role.RESELLER_ADMIN)
    status, body = same_answer(
        city, "PUT", "/api/v1/nodes/bob/plan", {"plan": "{name}"}, "euro-paris:talk-9", "euro-paris:talk-0"
    )
    assert status == 404 and b'"plan_not_found"' in body


@pytest.mark.parametrize("caller", ["north-metro", "agent-ana"])
def test_an_agent_out_of_sight_named_as_manager_is_not_found_as_a_missing_one(
    demo_database: Database, caller: str
) -> None:
    """north-metro may not see north-city's agents; an agent sees no other agent (agent-ben is euro-paris')."""
    client = api(demo_database, caller, Role.RESELLER_ADMIN if caller == "north-metro" else Role.AGENT)
    owner = "north-metro" if caller == "north-metro" else "north-city"
    hidden = "agent-ana" if caller == "north-metro" else "agent-ben"
    body = {"owner": owner, "login": "newbie", "name": "N", "kind": "client", "client_type": "retail"}
    status, answer = same_answer(
        client, "POST", "/api/v1/nodes", body | {"managed_by_agent": "{name}"}, hidden, "agent-zzz"
    )
    assert status == 404 and b'"node_not_found"' in answer


def test_another_tenants_api_key_is_not_found_as_a_missing_one_without_its_owners_login(
    demo_database: Database,
) -> None:
    key, _ = access.create_api_key(demo_database, None, node_login="alice", name="alice's app", role=Role.CLIENT)
    metro = api(demo_database, "north-metro", Role.RESELLER_ADMIN)
    missing = "0" * len(key.key_id) if key.key_id != "0" * len(key.key_id) else "1" * len(key.key_id)
    status, body = same_answer(metro, "DELETE", "/api/v1/api-keys/{name}", None, key.key_id, missing)
    assert status == 404 and b'"api_key_not_found"' in body and b"alice" not in body
    # Its owner still revokes it.
    assert (
        api(demo_database, "north-city", Role.RESELLER_ADMIN).delete(f"/api/v1/api-keys/{key.key_id}").status_code
        == 204
    )
