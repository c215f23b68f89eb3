"""Ids are 64-bit everywhere, the migrations make exactly the schema ``schema.py`` describes, and every
integer the API reads is bounded (an id past 2**31 - 1 is an id, not a server error)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Integer, text
from sqlalchemy.dialects import postgresql

from tests.calls_world import UK, build_world
from tests.test_api_nul import Spec, alternatives
from tollway.access.model import Role
from tollway.access.service import create_api_key
from tollway.calls import service as calls
from tollway.calls.service import CallRequest
from tollway.http.app import create_app
from tollway.store.database import Database
from tollway.store.schema import metadata
from tollway.store.types import ID_MAX

PAST_32_BITS = 2**31 + 1_000  # where every id starts in the scenario below


def test_the_migrations_make_the_schema_that_schema_py_describes(database: Database) -> None:
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
    assert differences == []


def test_every_id_and_every_column_referring_to_one_is_64_bit() -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    narrow = [
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.columns
        if (column.name == "id" and isinstance(column.type, Integer)) or column.foreign_keys
        if isinstance(column.type, Integer) and column.type.compile(dialect=dialect) != "BIGINT"
    ]
    assert narrow == [], "use tollway.store.types.Id for these columns"


def start_ids_past_32_bits(database: Database) -> None:
    """Every sequence of PostgreSQL goes past 2**31 (SQLite's rowids hold 64 bits without asking)."""
    if database.engine.dialect.name != "postgresql":
        return
    with database.transaction() as connection:
        sequences = connection.execute(text("SELECT schemaname, sequencename FROM pg_sequences")).all()
        for schema, name in sequences:
            connection.execute(
                text("SELECT setval(:name, :value)"), {"name": f'"{schema}"."{name}"', "value": PAST_32_BITS}
            )


def test_rows_with_ids_past_32_bits_are_written_and_read(database: Database) -> None:
    start_ids_past_32_bits(database)
    build_world(database)
    authorized = calls.authorize_call(database, CallRequest("call-big-id", "alice", "1", UK, answered=True))
    assert authorized["status"] == "authorized"
    ended = calls.end_call(database, "call-big-id", duration_seconds=60)
    assert ended["charges"][0]["amount_micros"] == 100_000  # 60 s at 0.10 a minute
    _, key = create_api_key(database, None, node_login="house", name="ops", role=Role.PROVIDER_ADMIN)
    headers = {"Authorization": f"Bearer {key}"}
    first_id = 2**31 if database.engine.dialect.name == "postgresql" else 0  # SQLite's rowids start at 1
    with TestClient(create_app(database)) as client:
        nodes = client.get("/api/v1/nodes", params={"after_id": first_id}, headers=headers)
        listed = client.get("/api/v1/calls", params={"after_id": first_id, "limit": 1}, headers=headers)
        audit = client.get("/api/v1/audit", params={"before_id": 2**40}, headers=headers)
        past_all = client.get("/api/v1/calls", params={"after_id": ID_MAX}, headers=headers)
    assert nodes.status_code == 200 and [n["login"] for n in nodes.json()["items"]][:2] == ["house", "atlas"]
    if database.engine.dialect.name == "postgresql":
        assert min(n["id"] for n in nodes.json()["items"]) > 2**31
        assert listed.json()["next_after_id"] > 2**31
    assert [c["call_id"] for c in listed.json()["items"]] == ["call-big-id"]
    assert audit.status_code == 200 and audit.json()
    assert past_all.json() == {"items": [], "next_after_id": None}


def integer_parameters(spec: Spec) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, name, schema) of every integer path and query parameter."""
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                for option in alternatives(spec, parameter["schema"]):
                    if option.get("type") == "integer":
                        found.append((method.upper(), path, parameter["name"], option))
    return found


def test_every_integer_parameter_is_bounded_within_64_bits(database: Database) -> None:
    build_world(database)
    _, key = create_api_key(database, None, node_login="house", name="ops", role=Role.PROVIDER_ADMIN)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(database), raise_server_exceptions=False) as client:
        spec = client.get("/api/openapi.json").json()
        parameters = integer_parameters(spec)
        unbounded = [
            (m, p, n)
            for m, p, n, s in parameters
            if not 0 <= s.get("minimum", -1) <= s.get("maximum", ID_MAX + 1) <= ID_MAX
        ]
        answers = {}
        for method, path, name, schema in parameters:
            if "{" in path:  # the integer parameters are all on lists; none is in a path today
                continue
            required = {p["name"]: "house" for p in spec["paths"][path][method.lower()]["parameters"] if p["required"]}
            for value in (schema["minimum"] - 1, schema["maximum"] + 1, 2**63, 2**31):
                params = {**required, name: value}
                answers[(method, path, name, value)] = client.request(
                    method, path, params=params, headers=headers
                ).status_code
    assert len(parameters) >= 10
    assert unbounded == []
    refused = {k: status for k, status in answers.items() if k[3] != 2**31 or k[2] == "limit"}
    assert set(refused.values()) == {422}, refused
    ids = {k: status for k, status in answers.items() if k[3] == 2**31 and k[2] != "limit"}
    assert set(ids.values()) == {200}, ids
