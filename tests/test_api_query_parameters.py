"""A query parameter a route does not take is refused, on every API route, with a reason: a misspelt filter
never silently widens an answer. The portal's pages are another surface and keep taking what htmx adds."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tollway.http.app import create_app
from tollway.store import migrate
from tollway.store.database import Database
from tollway.tree import service as tree


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Only a provider (the portal's brand): the refusal comes before anything is looked up (SQLite)."""
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('query') / 'tollway.db'}")
    migrate.upgrade(database)
    tree.create_provider(database, login="house", name="House", currency="USD")
    with TestClient(create_app(database)) as test_client:
        yield test_client
    database.dispose()


def api_operations(client: TestClient) -> list[tuple[str, str, set[str]]]:
    """(method, path with its parameters filled in, the query parameters it declares) of every API operation."""
    found = []
    for path, item in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            found.append((method.upper(), re.sub(r"\{[^}]+\}", "x1", path), declared))
    return found


def test_every_api_route_refuses_a_query_parameter_it_does_not_take(client: TestClient) -> None:
    operations = api_operations(client)
    assert len(operations) > 100
    for method, path, declared in operations:
        assert "zed_filter" not in declared
        answer = client.request(method, path, params={"zed_filter": "1"})
        assert answer.status_code == 422, (method, path, answer.text)
        assert answer.json()["reason"] == "query_parameter_unknown", (method, path)
        assert "zed_filter" in answer.json()["message"]


def test_the_refusal_names_the_parameters_the_route_takes(client: TestClient) -> None:
    answer = client.get("/api/v1/calls", params={"acount": "zed"})
    assert answer.status_code == 422
    assert answer.json()["reason"] == "query_parameter_unknown"
    assert "acount" in answer.json()["message"] and "after_id" in answer.json()["message"]


def test_declared_parameters_pass_on_to_authentication(client: TestClient) -> None:
    assert client.get("/api/v1/calls", params={"limit": "5"}).json()["reason"] == "authentication_required"
    assert client.get("/health").status_code == 200
    assert client.get("/health", params={"verbose": "1"}).status_code == 422


def test_unknown_api_paths_stay_404_and_portal_pages_take_any_parameter(client: TestClient) -> None:
    assert client.get("/api/v1/nowhere", params={"zed": "1"}).status_code == 404
    page = client.get("/login", params={"_": "1701", "hx-request": "true"})
    assert page.status_code == 200
