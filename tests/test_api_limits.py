"""Request bodies are bounded before anything reads them: small everywhere, larger only for a rate sheet
sent with credentials (``tollway.http.limits``)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from tollway.access.model import Role
from tollway.access.service import create_api_key
from tollway.http.app import create_app
from tollway.http.limits import REQUEST_BODY_BYTES_MAX, SHEET_BODY_BYTES_MAX
from tollway.store.database import Database

CHUNK_BYTES = 16 * 1024


def login_body(total_bytes: int) -> bytes:
    """A JSON login whose password pads it to ``total_bytes``."""
    head, tail = b'{"login": "nobody", "password": "', b'"}'
    return head + b"x" * (total_bytes - len(head) - len(tail)) + tail


def chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK_BYTES):
        yield body[start : start + CHUNK_BYTES]


def test_a_login_larger_than_the_limit_is_refused_unread(database: Database) -> None:
    with TestClient(create_app(database)) as client:
        at_limit = client.post("/api/v1/sessions", content=login_body(REQUEST_BODY_BYTES_MAX))
        over = client.post("/api/v1/sessions", content=login_body(REQUEST_BODY_BYTES_MAX + 1))
        # 400 MB announced, a few bytes sent: refused from the Content-Length alone, nothing waited for.
        announced = client.post("/api/v1/sessions", content=b"{}", headers={"content-length": str(400 * 1024 * 1024)})
    assert (at_limit.status_code, at_limit.json()["reason"]) == (422, "request_invalid")  # read: password too long
    assert over.status_code == 413
    assert over.json() == {"reason": "body_too_large", "message": f"a request body is at most {65536} bytes"}
    assert over.headers["connection"] == "close"
    assert (announced.status_code, announced.json()["reason"]) == (413, "body_too_large")


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(database: Database) -> None:
    sent: list[int] = []

    def counted(body: bytes) -> Iterator[bytes]:
        for chunk in chunks(body):
            sent.append(len(chunk))
            yield chunk

    with TestClient(create_app(database)) as client:
        response = client.post(  # no Content-Length: chunked
            "/api/v1/sessions", content=counted(login_body(1024 * 1024)), headers={"content-type": "application/json"}
        )
    assert (response.status_code, response.json()["reason"]) == (413, "body_too_large")


def sheet(total_bytes: int) -> bytes:
    """A valid rate sheet of about ``total_bytes``, one prefix a line."""
    lines = [b"prefix,description,price"]
    prefix = 100_000
    while sum(len(line) + 1 for line in lines) < total_bytes:
        lines.append(b"%d,Somewhere far away,0.01" % prefix)
        prefix += 1
    return b"\n".join(lines) + b"\n"


def test_a_rate_sheet_may_be_larger_but_only_from_a_caller_with_credentials(demo_database: Database) -> None:
    _, key = create_api_key(demo_database, None, node_login="house", name="ops", role=Role.PROVIDER_ADMIN)
    body = sheet(REQUEST_BODY_BYTES_MAX * 2)
    url = "/api/v1/tariffs/house:wholesale/sheet"
    with TestClient(create_app(demo_database)) as client:
        anonymous = client.put(url, content=body, headers={"content-type": "text/csv"})
        wrong_key = client.put(url, content=body, headers={"authorization": "Bearer tw_wrong"})
        imported = client.put(url, content=body, headers={"authorization": f"Bearer {key}"})
        too_large = client.put(
            url,
            content=b"prefix,description,price\n",
            headers={"authorization": f"Bearer {key}", "content-length": str(SHEET_BODY_BYTES_MAX + 1)},
        )
    assert (anonymous.status_code, anonymous.json()["reason"]) == (413, "body_too_large")
    assert (wrong_key.status_code, wrong_key.json()["reason"]) == (401, "api_key_invalid")  # the body never read
    assert imported.status_code == 200, imported.text
    assert imported.json()["rows"] == body.count(b"\n") - 1
    assert too_large.status_code == 413
    assert too_large.json() == {"reason": "sheet_too_large", "message": "a rate sheet is at most 209715200 bytes"}
