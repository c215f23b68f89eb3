"""A NUL character in any text the API reads is refused at the edge, on every route.

PostgreSQL cannot store NUL in text (SQLite can), so a NUL that reached a use case used to answer 500 on
PostgreSQL only. The walk below reads the OpenAPI schema the app serves and, for every operation, sends
one request per text slot (each string path or query parameter, each string in the JSON body, nested
ones and list items included) with a NUL in that slot alone. Every one must be refused with 422 and the
reason ``text_contains_nul``, before any use case runs. Rate sheets (``text/csv`` bodies) have their own
rule and tests (``test_rating_sheets``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient

from tollway.access.model import Role
from tollway.access.service import create_api_key
from tollway.http.app import create_app
from tollway.store.database import Database

NUL_TEXT = "north\x00city"
JSON = "application/json"
NESTING_MAX = 6  # deeper than any body the API reads
Spec = dict[str, Any]


@dataclass(frozen=True)
class Slot:
    """Where a text travels: a path or query parameter by name, or a place in the JSON body."""

    where: str  # "path", "query" or "body"
    name: str = ""
    body_path: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        return f"{self.where}:{self.name or '.'.join(map(str, self.body_path)) or '(whole body)'}"


def resolved(spec: Spec, schema: Spec) -> Spec:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def alternatives(spec: Spec, schema: Spec) -> list[Spec]:
    """The non-null schemas a value may follow (``anyOf [X, null]`` is X)."""
    schema = resolved(spec, schema)
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return [resolved(spec, option) for option in options if option.get("type") != "null"]


def is_text(spec: Spec, schema: Spec) -> bool:
    return any(option.get("type") == "string" for option in alternatives(spec, schema))


def text_places(spec: Spec, schema: Spec, depth: int = 0) -> Iterator[tuple[str | int, ...]]:
    """Every place in a document of ``schema`` where a string may stand."""
    if depth > NESTING_MAX:
        return
    for option in alternatives(spec, schema):
        if option.get("type") == "string":
            yield ()
        elif option.get("type") == "array":
            for place in text_places(spec, option.get("items", {}), depth + 1):
                yield (0, *place)
        elif option.get("type") == "object" or "properties" in option:
            for name, child in option.get("properties", {}).items():
                for place in text_places(spec, child, depth + 1):
                    yield (name, *place)


def sample(spec: Spec, schema: Spec) -> Any:
    """A plain value of ``schema``, its required fields filled: with the schema's examples where it has
    them, so that most requests would pass validation but for the NUL and reach the use cases."""
    options = alternatives(spec, schema)
    option = options[0] if options else {}
    if "examples" in option or "default" in option:
        return option["examples"][0] if "examples" in option else option["default"]
    if "enum" in option:
        return option["enum"][0]
    kind = option.get("type")
    if kind == "object" or "properties" in option:
        return {name: sample(spec, option["properties"][name]) for name in option.get("required", [])}
    if kind == "array":
        return []
    return {"string": "x", "integer": 1, "number": 1, "boolean": False}.get(str(kind), "x")


def with_text(spec: Spec, schema: Spec, place: tuple[str | int, ...], text: str) -> Any:
    """A document of ``schema`` holding ``text`` at ``place``."""
    if not place:
        return text
    head, rest = place[0], place[1:]
    options = alternatives(spec, schema)
    if isinstance(head, int):
        array = next(o for o in options if o.get("type") == "array")
        return [with_text(spec, array["items"], rest, text)]
    shape = next(o for o in options if "properties" in o)
    document = sample(spec, shape)
    document[head] = with_text(spec, shape["properties"][head], rest, text)
    return document


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    slot: Slot
    params: dict[str, str]
    body: Any

    def send(self, client: TestClient, headers: dict[str, str]) -> tuple[int, Any]:
        response = client.request(
            self.method, self.path, params=self.params, headers=headers, json=self.body if self.body != () else None
        )
        is_json = response.headers.get("content-type") == JSON
        return response.status_code, response.json() if is_json else response.text


def probes(spec: Spec) -> Iterator[Probe]:
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            parameters = operation.get("parameters", [])
            content = operation.get("requestBody", {}).get("content", {})
            body_schema = content.get(JSON, {}).get("schema")
            path_values = {p["name"]: "alice" for p in parameters if p["in"] == "path"}
            body = sample(spec, body_schema) if body_schema else ()
            slots = [Slot(p["in"], p["name"]) for p in parameters if is_text(spec, p["schema"])]
            slots += [Slot("body", body_path=place) for place in text_places(spec, body_schema or {})]
            for slot in slots:
                values = {**path_values, **({slot.name: NUL_TEXT} if slot.where == "path" else {})}
                path = template.format(**{name: quote(value, safe="") for name, value in values.items()})
                params = {slot.name: NUL_TEXT} if slot.where == "query" else {}
                sent = with_text(spec, body_schema, slot.body_path, NUL_TEXT) if slot.where == "body" else body
                yield Probe(method.upper(), path, slot, params, sent)


def test_a_nul_in_any_text_of_any_route_is_refused_before_it_reaches_the_database(demo_database: Database) -> None:
    database = demo_database
    _, key = create_api_key(database, None, node_login="house", name="walker", role=Role.PROVIDER_ADMIN)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(database, cookie_secure=False), raise_server_exceptions=False) as client:
        spec = client.get("/api/openapi.json").json()
        sent = list(probes(spec))
        answers = {(p.method, p.path, str(p.slot)): p.send(client, headers) for p in sent}
    wrong = {probe: answer for probe, answer in answers.items() if answer[0] != 422 or not _nul_refusal(answer[1])}
    server_errors = sum(1 for status, _ in wrong.values() if status >= 500)
    print(f"\nNUL walk: {len(sent)} slots, {len(wrong)} not refused, {server_errors} server errors")
    assert len(sent) > 150  # every route with text: bodies, paths and queries
    assert not wrong, "\n".join(f"{m} {p} {slot}: {status} {body}" for (m, p, slot), (status, body) in wrong.items())


def _nul_refusal(body: Any) -> bool:
    return isinstance(body, dict) and body.get("reason") == "text_contains_nul"


def test_logging_in_with_a_nul_in_the_login_is_refused_without_a_key(database: Database) -> None:
    with TestClient(create_app(database), raise_server_exceptions=False) as client:
        response = client.post("/api/v1/sessions", json={"login": NUL_TEXT, "password": "whatever-it-is"})
    assert response.status_code == 422
    assert response.json()["reason"] == "text_contains_nul"
    assert response.json()["problems"] == [{"where": "body.login", "problem": "text must not contain NUL characters"}]
