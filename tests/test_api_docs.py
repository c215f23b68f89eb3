"""The API docs work offline: every page and asset comes from Tollway itself, none from a CDN."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from tollway.http.app import create_app
from tollway.store.database import Database

DOCS_PAGES = ("/api/docs", "/api/redoc")
ABSOLUTE_URL = re.compile(r"(?:https?:)?//[\w.-]+", re.IGNORECASE)


class References(HTMLParser):
    """Every address a page makes the browser load: script sources, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in {"src", "href", "spec-url"}:
                self.found.append(value)


def references_of(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.found


@pytest.fixture
def client(demo_database: Database) -> TestClient:
    return TestClient(create_app(demo_database))  # the portal answers unknown paths for the provider's brand


@pytest.mark.parametrize("page", DOCS_PAGES)
def test_a_docs_page_names_no_other_host(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert ABSOLUTE_URL.findall(response.text) == []
    assert references_of(response.text), "the page loads its assets"


@pytest.mark.parametrize("page", DOCS_PAGES)
def test_every_asset_a_docs_page_loads_is_served_by_tollway(client: TestClient, page: str) -> None:
    for address in references_of(client.get(page).text):
        assert address.startswith("/api/"), address
        response = client.get(address)
        assert response.status_code == 200, address
        assert response.content, address


def test_swagger_ui_reads_the_schema_tollway_serves(client: TestClient) -> None:
    page = client.get("/api/docs").text
    assert "url: '/api/openapi.json'" in page
    assert '"validatorUrl": null' in page  # the default validator badge is an image from another host
    assert client.get("/api/openapi.json").json()["info"]["title"] == "Tollway"


def test_the_cdn_pages_fastapi_serves_by_default_are_gone(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
