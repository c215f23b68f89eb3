"""Refusals become HTTP answers with a machine-readable ``reason``; never a traceback."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tollway.access.model import Forbidden
from tollway.errors import NUL_MESSAGE, NUL_REASON, NotFound, Refusal
from tollway.logs import get_logger

log = get_logger(__name__)

UNAUTHORIZED = frozenset(
    {
        "authentication_required",
        "login_failed",
        "api_key_invalid",
        "session_invalid",
        "second_factor_required",
        "second_factor_expired",
        "code_wrong",
    }
)
CONFLICTS = frozenset(
    {
        "login_taken",
        "provider_exists",
        "exists_with_different_fields",
        "batch_partially_exists",
        "api_key_revoked",
        "tariff_exists",
        "tariff_in_use",
        "plan_exists",
        "batch_exists",
        "access_number_taken",
        "caller_id_exists",
        "extension_number_taken",
        "sip_username_taken",
        "sip_domain_taken",
        "call_id_ambiguous",
        "switch_exists",
    }
)


# A request the gateway must not retry as it is (a bad signature), and a gateway that did not answer.
BAD_REQUESTS = frozenset({"signature_invalid", "payload_invalid"})
BAD_GATEWAY = frozenset(
    {"gateway_unavailable", "gateway_key_invalid", "gateway_answer_invalid", "gateway_secret_unreadable"}
)


def status_for(refusal: Refusal) -> int:
    if isinstance(refusal, NotFound):
        return 404
    if isinstance(refusal, Forbidden) or refusal.reason in ("csrf_failed", "account_blocked"):
        return 403
    if refusal.reason in UNAUTHORIZED:
        return 401
    if refusal.reason in ("login_throttled", "pin_throttled"):
        return 429
    if refusal.reason in CONFLICTS:
        return 409
    if refusal.reason in BAD_REQUESTS:
        return 400
    if refusal.reason == "body_too_large":
        return 413
    if refusal.reason in BAD_GATEWAY:
        return 502
    return 422


DATABASE_UNAVAILABLE = {
    "reason": "database_unavailable",
    "message": "the database did not answer (or went away before it confirmed the change): the request may or "
    "may not have been applied; send it again as it was, with the same ids, and it is applied once",
}
DATABASE_RETRY_AFTER_SECONDS = "1"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DBAPIError)
    async def database(_request: Request, error: DBAPIError) -> JSONResponse:
        # The database unreachable, restarting or failing over (a connection lost, even during COMMIT): 503, to
        # be retried; every write is idempotent by its ids. Any other database error is a bug: a 500.
        if not (error.connection_invalidated or isinstance(error, OperationalError)):
            raise error
        log.warning("database_unavailable", error=error.__class__.__name__, detail=str(error.orig)[:200])
        return JSONResponse(
            status_code=503, content=DATABASE_UNAVAILABLE, headers={"Retry-After": DATABASE_RETRY_AFTER_SECONDS}
        )

    @app.exception_handler(Refusal)
    async def refusal(_request: Request, error: Refusal) -> JSONResponse:
        return JSONResponse(status_code=status_for(error), content={"reason": error.reason, "message": error.message})

    @app.exception_handler(StarletteHTTPException)
    async def framework(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        # The framework's own refusals (a body that is not JSON, an unknown path) in our shape too.
        reason = "request_invalid" if error.status_code == 400 else f"http_{error.status_code}"
        reason = getattr(error, "reason", reason)  # our own, such as BodyTooLarge's
        return JSONResponse(
            status_code=422 if error.status_code == 400 else error.status_code,
            content={"reason": reason, "message": str(error.detail)},
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        errors = error.errors()
        problems = [{"where": ".".join(str(part) for part in e["loc"]), "problem": e["msg"]} for e in errors]
        reason, message = "request_invalid", "the request is invalid"
        if any(e["type"] == NUL_REASON for e in errors):
            reason, message = NUL_REASON, NUL_MESSAGE
        return JSONResponse(status_code=422, content={"reason": reason, "message": message, "problems": problems})
