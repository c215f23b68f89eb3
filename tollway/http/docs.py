"""The API's interactive docs, served whole by Tollway: no page loads anything from another host.

Operators of billing systems often run without internet, so Swagger UI and ReDoc come from the
``fastapi-offline`` package's copies of their distribution files (Swagger UI 5, ReDoc 2), mounted
under ``/api/docs/assets`` and wired through FastAPI's own page builders.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/api/docs"
REDOC_PATH = "/api/redoc"
ASSETS_PATH = "/api/docs/assets"
# Swagger UI's default validator badge is an image from validator.swagger.io: off, nothing leaves.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def assets_directory() -> Path:
    """Where the installed package keeps Swagger UI's and ReDoc's files."""
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, *, openapi_url: str) -> None:
    """Serve Swagger UI at ``/api/docs`` and ReDoc at ``/api/redoc`` from local assets."""
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_directory()), name="docs-assets")
    title = app.title

    @app.get(DOCS_PATH, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get(REDOC_PATH, include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: API reference",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
