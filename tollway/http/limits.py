"""What a request may carry, checked before any use case runs: a bounded body, text without NUL characters.

Bodies. ``RequestBodyLimits``, a plain ASGI middleware, refuses with 413 and a reason a body larger than
its route takes: at once when the ``Content-Length`` says so (before a byte of it is read), or as soon as
the bytes streamed in (chunked, without a length) pass the limit. Every route takes
``REQUEST_BODY_BYTES_MAX``; a rate-sheet upload takes ``SHEET_BODY_BYTES_MAX``, but only from a request
that carries credentials, and its route reads the body only once they are checked (the sheet is streamed
by the route itself, after its dependencies have authenticated the caller): a stranger never gets more
than the small limit. The credit-control path pays one header scan per request.

A NUL in the text of a JSON body is refused by ``Strict`` (``tollway.http.api.schemas``), the base of
every body the API reads; a NUL in a path or query parameter by ``refuse_nul_parameters``, a dependency
of the whole application. Both answer 422 with the reason ``text_contains_nul``: PostgreSQL cannot store
NUL in text, and no login, name, reference or number ever holds one.

Query parameters. ``refuse_unknown_query_parameters``, another dependency of the whole API, refuses with 422
``query_parameter_unknown`` a query parameter its route does not declare (``GET /calls?acount=zed`` would
otherwise list every call, the misspelt filter silently ignored). What a route declares is read from the
route itself (its parameters and its dependencies'), so a new parameter needs nothing more. The portal, a
mounted application of its own, is not concerned: htmx adds parameters of its own to a page's URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollway.branding.model import LOGO_BYTES_MAX
from tollway.errors import NUL, Refusal, TextContainsNul
from tollway.http.auth import SESSION_COOKIE
from tollway.organizations.imports import IMPORT_BYTES_MAX
from tollway.rating.sheets import SHEET_BYTES_MAX


@dataclass(frozen=True, slots=True)
class BodyLimit:
    bytes_max: int
    reason: str  # the refusal's reason
    what: str  # what the body is, for the message

    @property
    def message(self) -> str:
        return f"{self.what} is at most {self.bytes_max} bytes"


REQUEST_BODY_BYTES_MAX = 64 * 1024  # any JSON body: the largest the API takes (50 rate rows) is about 15 kB
SHEET_BODY_BYTES_MAX = SHEET_BYTES_MAX  # a rate sheet: a million rows take about 60 MB
DEFAULT_BODY_LIMIT = BodyLimit(REQUEST_BODY_BYTES_MAX, "body_too_large", "a request body")
SHEET_BODY_LIMIT = BodyLimit(SHEET_BODY_BYTES_MAX, "sheet_too_large", "a rate sheet")
# (method, path, limit): the routes that take more than the default, from a caller with credentials only.
IMPORT_BODY_LIMIT = BodyLimit(IMPORT_BYTES_MAX, "import_too_large", "an import of extension accounts")
# A logo upload from the portal: four times a logo, so one a little too large gets the form's own refusal.
LOGO_UPLOAD_LIMIT = BodyLimit(4 * LOGO_BYTES_MAX, "logo_too_large", "a logo upload")
LARGER_BODIES: tuple[tuple[str, re.Pattern[str], BodyLimit], ...] = (
    ("PUT", re.compile(r"^/api/v1/tariffs/[^/]+/sheet$"), SHEET_BODY_LIMIT),
    ("POST", re.compile(r"^/api/v1/organizations/[^/]+/imports$"), IMPORT_BODY_LIMIT),
    ("POST", re.compile(r"^/tariffs/.+/sheet$"), SHEET_BODY_LIMIT),  # the portal's upload (a form around it)
    ("POST", re.compile(r"^/accounts/[^/]+/brand/logo$"), LOGO_UPLOAD_LIMIT),
)


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; the application's handler answers it (``reason`` included)."""

    def __init__(self, limit: BodyLimit) -> None:
        super().__init__(status_code=413, detail=limit.message)
        self.reason = limit.reason


class RequestBodyLimits:
    """Refuses request bodies larger than their route takes (413, with the limit's reason)."""

    def __init__(
        self,
        app: ASGIApp,
        default: BodyLimit = DEFAULT_BODY_LIMIT,
        larger: tuple[tuple[str, re.Pattern[str], BodyLimit], ...] = LARGER_BODIES,
    ) -> None:
        self.app = app
        self.default = default
        self.larger = larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, credentials = _content_length_and_credentials(scope)
        limit = self._limit_of(scope) if credentials else self.default
        if declared is not None:
            if declared > limit.bytes_max:
                await refusal(limit)(scope, receive, send)
            else:  # the server never hands over more than the length it was given
                await self.app(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.bytes_max:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)

    def _limit_of(self, scope: Scope) -> BodyLimit:
        for method, path, limit in self.larger:
            if scope["method"] == method and path.match(scope["path"]):
                return limit
        return self.default


def refusal(limit: BodyLimit) -> JSONResponse:
    """The 413 answer; the connection closes, since the body it carries is left unread."""
    content = {"reason": limit.reason, "message": limit.message}
    return JSONResponse(status_code=413, content=content, headers={"connection": "close"})


def _content_length_and_credentials(scope: Scope) -> tuple[int | None, bool]:
    declared: int | None = None
    credentials = False
    cookie = SESSION_COOKIE.encode() + b"="
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = int(value) if value.isdigit() else None
        elif name == b"authorization" or (name == b"cookie" and cookie in value):
            credentials = True
    return declared, credentials


async def refuse_nul_parameters(request: Request) -> None:  # async: no I/O, so no thread hop
    """Refuse a request whose path or query parameters hold a NUL character (any of them, typed or not)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            raise TextContainsNul(f"path parameter {name}")
    for name, value in request.query_params.multi_items():
        if NUL in value or NUL in name:
            raise TextContainsNul(f"query parameter {name.replace(NUL, '?')}")


PARAMETER_NAME_SHOWN_MAX = 64  # characters of an unknown parameter's name quoted back


def declared_query_parameters(route: APIRoute) -> frozenset[str]:
    """The query parameters a route reads: its own and its dependencies', by the name they travel under."""
    names: set[str] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(field.alias for field in dependant.query_params)
        pending.extend(dependant.dependencies)
    return frozenset(names)


async def refuse_unknown_query_parameters(request: Request) -> None:  # async: no I/O, so no thread hop
    """Refuse a request to an API route with a query parameter that route does not declare."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute) or not route.include_in_schema:
        return  # nothing to check; the catch-all of unknown /api paths answers 404 whatever it is sent
    declared = declared_query_parameters(route)  # a walk over a handful of dependencies: not worth a cache
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        names = ", ".join(name[:PARAMETER_NAME_SHOWN_MAX] for name in unknown[:5])
        raise Refusal("query_parameter_unknown", f"unknown query parameter {names} (this route takes: {known})")
