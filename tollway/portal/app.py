"""The portal as an application of its own, mounted at ``/`` by ``tollway.http.app`` after the API.

Being a mounted application, its middleware (security headers) and its error pages touch only portal
requests: the API, and the switches' ``/api/v1/calls``, never pass through them.

Every answer carries a Content-Security-Policy without 'unsafe-inline': scripts, styles and images come
from this origin only (the brand's colours are a stylesheet of their own, ``/brand/colours/…``), so text a
user typed can never run, even where an escape were missed.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollway.branding import service as branding
from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.portal import pages
from tollway.portal.assets import STATIC
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.web import (
    LoginRequired,
    PortalSettings,
    Visitor,
    check_csrf,
    refuse_nul_text,
    render,
    visitor_of,
)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
CACHED_FOR_EVER = b"public, max-age=31536000, immutable"
# A logo (an SVG one too) runs nothing even when opened on its own: no script, no plugin, a sandbox; only
# its own inline styles. Shown in a page it is an <img>, which never runs an SVG's scripts either.
LOGO_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
_COLOUR_PAIR = re.compile(r"([0-9a-f]{6})-([0-9a-f]{6})")


class SecurityHeaders:
    """Adds the security headers to every portal answer, and long caching to versioned static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        versioned = scope["path"].startswith("/static/") and b"v=" in scope.get("query_string", b"")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control" or not versioned
                ]
                headers.extend(SECURITY_HEADERS)
                if versioned:
                    headers.append((b"cache-control", CACHED_FOR_EVER))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _visitor(request: Request) -> Visitor:
    found = getattr(request.state, "visitor", None)
    return found if isinstance(found, Visitor) else visitor_of(request)


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _error: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(Refusal)
    async def refused(request: Request, error: Refusal) -> Response:
        visitor = _visitor(request)
        status = status_for(error)
        title = N_("Not found") if isinstance(error, NotFound) else N_("Refused")
        return render(
            visitor, "error.html", status_code=status, values={"title": title, "message": refusal_text(visitor, error)}
        )

    @app.exception_handler(StarletteHTTPException)
    async def framework(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            return await refused(request, NotFound("page", request.url.path))
        refusal = Refusal("request_invalid", str(error.detail))
        return render(
            _visitor(request),
            "error.html",
            status_code=error.status_code,
            values={"title": N_("Refused"), "message": refusal_text(_visitor(request), refusal)},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, _error: RequestValidationError) -> Response:
        return await refused(request, Refusal("request_invalid", "the request is invalid"))


def _install_brand_routes(app: FastAPI, settings: PortalSettings) -> None:
    @app.get("/brand/colours/{pair}.css", include_in_schema=False)
    def colours(pair: str) -> Response:
        """A brand's colours as a stylesheet: the page's only per-brand style, so no inline style is needed."""
        found = _COLOUR_PAIR.fullmatch(pair)
        if found is None:
            raise NotFound("page", pair)
        primary, accent = found.groups()
        css = f":root{{--brand:#{primary};--accent:#{accent}}}\n"
        return PlainTextResponse(css, media_type="text/css", headers={"cache-control": CACHED_FOR_EVER.decode()})

    @app.get("/brand/preview/{pair}.css", include_in_schema=False)
    def preview(pair: str) -> Response:
        """A brand's colours on its Brand page's preview only (the page itself keeps the visitor's brand)."""
        found = _COLOUR_PAIR.fullmatch(pair)
        if found is None:
            raise NotFound("page", pair)
        primary, accent = found.groups()
        css = f"main .brand-preview{{background:#{primary};--accent:#{accent}}}\n"
        return PlainTextResponse(css, media_type="text/css", headers={"cache-control": CACHED_FOR_EVER.decode()})

    @app.get("/brand/logo/{digest}", include_in_schema=False)
    def logo(digest: str) -> Response:
        found = branding.logo(settings.database, digest=digest)
        if found is None:
            raise NotFound("logo", digest)
        return Response(
            found.content,
            media_type=found.media_type,
            headers={
                "cache-control": CACHED_FOR_EVER.decode(),
                "content-security-policy": LOGO_CONTENT_SECURITY_POLICY,
                "content-disposition": 'inline; filename="logo"',
            },
        )


def create_portal(settings: PortalSettings) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = settings
    app.state.navigation = pages.NAVIGATION
    _install_error_pages(app)
    _install_brand_routes(app, settings)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in pages.ROUTERS:
        app.include_router(router, dependencies=[Depends(refuse_nul_text), Depends(check_csrf)])
    app.add_middleware(SecurityHeaders)
    return app
