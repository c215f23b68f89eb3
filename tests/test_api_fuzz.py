"""The management API under generated requests (schemathesis), and hostile text stored verbatim.

The fuzz test loads the OpenAPI schema the app serves (``/api/openapi.json``) in-process over ASGI and, for
every operation, sends a bounded number of generated requests, both valid by the schema and not, as a
provider admin over the demo tree. Path logins are drawn from the demo as well as generated, so requests
reach the use cases and not only the 404 of an unknown login. Checked on every response:

- ``not_a_server_error``: no 5xx, ever; every failure must be a typed refusal.
- ``status_code_conformance``: the status is one the schema documents for that operation.
- ``content_type_conformance`` and ``response_schema_conformance``: a documented status carries a body
  of the documented media type and shape (``Problem`` for refusals).

The examples are derandomized, so a failure reproduces with the same requests.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from tollway.access.model import Role
from tollway.access.service import create_api_key
from tollway.demo import DEMO_NODES, load_demo
from tollway.http.app import create_app
from tollway.store.database import Database

EXAMPLES_PER_OPERATION_MAX = 25
# Logins of the demo tree a provider admin sees: its own node, resellers on each level, an agent, clients.
DEMO_LOGINS = ("house", "atlas", "atlas-north", "north-city", "agent-ana", "alice", "carol", "trunk-one", "erin")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION_MAX,
    deadline=None,
    derandomize=True,
    database=None,
)


def provider_admin_key(database: Database) -> str:
    _key, plaintext = create_api_key(database, None, node_login="house", name="fuzz", role=Role.PROVIDER_ADMIN)
    return plaintext


def cases_of(operation: Any) -> st.SearchStrategy[Case[Any]]:
    strategies = [operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    if "{login}" in operation.path:
        strategies += [operation.as_strategy(path_parameters={"login": login}) for login in DEMO_LOGINS]
    return st.one_of(strategies)


def fuzz(operation: Any, headers: dict[str, str], examples: Counter[str]) -> None:
    """Send one operation its bounded examples; raise the first failure hypothesis keeps."""

    @FUZZ_SETTINGS
    @given(case=cases_of(operation))
    def run(case: Case[Any]) -> None:
        examples[operation.label] += 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def operations() -> list[tuple[str, str]]:
    """Every operation of the published schema, one test each (so they spread over the test workers)."""
    paths = create_app(Database("sqlite://")).openapi()["paths"]
    return sorted((path, method.upper()) for path, methods in paths.items() for method in methods)


SCHEMAS: dict[str, tuple[FastAPI, Any]] = {}


def schema_serving(database: Database) -> Any:
    """One application and loaded schema per backend (building the schema takes seconds), on this test's database."""
    backend = database.engine.dialect.name
    if backend not in SCHEMAS:
        app = create_app(database, cookie_secure=False)
        SCHEMAS[backend] = (app, schemathesis.openapi.from_asgi("/api/openapi.json", app))
    app, schema = SCHEMAS[backend]
    app.state.database = database
    return schema


@pytest.mark.parametrize(("path", "method"), operations(), ids=lambda value: str(value))
def test_no_generated_request_breaks_the_api(demo_database: Database, path: str, method: str) -> None:
    headers = {"Authorization": f"Bearer {provider_admin_key(demo_database)}"}
    operation = schema_serving(demo_database)[path][method]
    examples: Counter[str] = Counter()
    fuzz(operation, headers, examples)
    assert examples[operation.label] > 0


INJECTION = "Robert'); DROP TABLE nodes;-- <script>alert(1)</script> {{7*7}} ${7*7}"


def test_hostile_text_is_stored_and_returned_verbatim(database: Database) -> None:
    load_demo(database)
    headers = {"Authorization": f"Bearer {provider_admin_key(database)}"}
    with TestClient(create_app(database, cookie_secure=False)) as client:
        created = client.post(
            "/api/v1/nodes",
            headers=headers,
            json={
                "owner": "north-city",
                "login": "bobby-tables",
                "name": INJECTION,
                "kind": "client",
                "client_type": "retail",
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["name"] == INJECTION
        read = client.get("/api/v1/nodes/bobby-tables", headers=headers)
    assert read.status_code == 200
    assert read.json()["name"] == INJECTION
    assert read.headers["content-type"] == "application/json"
    with database.reading() as connection:  # the table is still there, and holds the text as sent
        stored = connection.execute(text("SELECT name FROM nodes WHERE login = :login"), {"login": "bobby-tables"})
        assert stored.scalar_one() == INJECTION
        assert connection.execute(text("SELECT count(*) FROM nodes")).scalar_one() == 1 + len(DEMO_NODES) + 1


# Gaps the fuzzing found once (answered but undocumented, or not in the Problem shape), kept fixed.


def api_paths(database: Database) -> dict[str, Any]:
    with TestClient(create_app(database)) as client:
        paths: dict[str, Any] = client.get("/api/openapi.json").json()["paths"]
    return paths


def test_the_schema_documents_conflicts(database: Database) -> None:
    assert "409" in api_paths(database)["/api/v1/nodes/{login}/topups"]["post"]["responses"]


def test_the_schema_documents_login_throttling(database: Database) -> None:
    assert "429" in api_paths(database)["/api/v1/sessions"]["post"]["responses"]


def test_a_body_that_is_not_text_is_a_request_invalid_problem(database: Database) -> None:
    with TestClient(create_app(database)) as client:
        response = client.post("/api/v1/sessions", content=b"\xff", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["reason"] == "request_invalid"


def test_exchange_rate_changes_reach_the_providers_audit_log(database: Database) -> None:
    load_demo(database)
    _, plaintext = create_api_key(database, None, node_login="house", name="ops", role=Role.PROVIDER_ADMIN)
    headers = {"Authorization": f"Bearer {plaintext}"}
    with TestClient(create_app(database), base_url="https://testserver") as client:
        created = client.post(
            "/api/v1/exchange-rates",
            json={"base_currency": "GBP", "quote_currency": "USD", "rate": "1.27"},
            headers=headers,
        )
        assert created.status_code == 201
        entries = client.get("/api/v1/audit", headers=headers, params={"limit": 5}).json()
    assert (entries[0]["action"], entries[0]["target_id"], entries[0]["after"]["rate"]) == (
        "rates.set",
        "GBP/USD",
        "1.27",
    )
