"""The HTTP application: health and readiness now; the management and switch APIs mount here."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tollway import __version__, metrics
from tollway.access.second_factor import Seal
from tollway.calls.keeper import Keeper
from tollway.calls.service import DEFAULT_SETTINGS, CallSettings
from tollway.config import RadiusClient
from tollway.http.access_log import AccessLog
from tollway.http.api import (
    access,
    agents,
    calls,
    cards,
    lines,
    money,
    nodes,
    notices,
    organizations,
    payments,
    plans,
    rates,
    shop_records,
    sip,
    tariffs,
)
from tollway.http.client import parse_networks
from tollway.http.docs import install_docs
from tollway.http.errors import install_error_handlers
from tollway.http.limits import RequestBodyLimits, refuse_nul_parameters, refuse_unknown_query_parameters
from tollway.logs import get_logger
from tollway.notifications.runner import NoticeRunner
from tollway.notifications.service import MailSettings
from tollway.payments.service import PaymentSettings
from tollway.portal import PortalSettings, create_portal
from tollway.store import migrate
from tollway.store.database import Database

log = get_logger("tollway.http")


API_PREFIX = "/api/v1"
OPENAPI_URL = "/api/openapi.json"


def create_app(
    database: Database,
    *,
    cookie_secure: bool = True,
    call_settings: CallSettings = DEFAULT_SETTINGS,
    keeper: bool = False,
    mail_settings: MailSettings | None = None,
    payment_settings: PaymentSettings | None = None,
    trusted_proxies: Sequence[str] = (),
    sealer: Seal | None = None,
    radius_clients: Mapping[str, RadiusClient] | None = None,
    metrics_token: str | None = None,
) -> FastAPI:
    """The application; with ``keeper`` it also runs credit control's keeper while it serves, and with
    ``mail_settings`` as well, the low-balance notices' runner."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        running = Keeper(database, settings=call_settings) if keeper else None
        mailer = NoticeRunner(database, settings=mail_settings) if keeper and mail_settings else None
        for runner in (running, mailer):
            if runner is not None:
                runner.start()
        try:
            yield
        finally:
            for runner in (running, mailer):
                if runner is not None:
                    runner.stop()

    app = FastAPI(
        title="Tollway",
        version=__version__,
        docs_url=None,  # served from local assets by install_docs
        redoc_url=None,
        openapi_url=OPENAPI_URL,
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul_parameters), Depends(refuse_unknown_query_parameters)],
    )
    app.state.database = database
    app.state.trusted_proxies = parse_networks(trusted_proxies)  # whose X-Forwarded-For is believed
    app.state.call_settings = call_settings
    app.state.cookie_secure = cookie_secure
    app.state.payment_settings = payment_settings  # None: made from the configuration when first needed
    app.state.sealer = sealer
    install_error_handlers(app)
    install_docs(app, openapi_url=OPENAPI_URL)
    for router in (
        nodes.router,
        money.router,
        access.router,
        rates.router,
        tariffs.router,
        plans.router,
        calls.router,
        calls.exports,
        agents.router,
        cards.router,
        notices.router,
        payments.router,
        shop_records.router,
        organizations.router,
        lines.router,
        sip.router,
    ):
        app.include_router(router, prefix=API_PREFIX)

    app.add_middleware(RequestBodyLimits)  # before the access log, which stays outside it: refusals are logged

    app.add_middleware(AccessLog)

    @app.get("/health", tags=["operations"], summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/ready", tags=["operations"], summary="Readiness: the database answers and is migrated")
    def ready() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            database.ping()
            checks["database"] = "ok"
            checks["schema"] = "ok" if migrate.is_up_to_date(database) else "migration_pending"
        except Exception as error:  # any failure to reach the database means "not ready"
            log.warning("readiness_failed", error=str(error))
            checks["database"] = "unreachable"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            status_code=200 if ready else 503, content={"status": "ready" if ready else "not_ready", **checks}
        )

    @app.get("/api/metrics", include_in_schema=False)  # for a scraper with the token, not for API clients
    def prometheus_metrics(request: Request) -> Response:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        if metrics_token is None or not hmac.compare_digest(presented, metrics_token.encode()):
            raise StarletteHTTPException(status_code=404, detail="Not Found")  # as any unknown path
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE, headers={"cache-control": "no-store"})

    # Last: the portal answers every path the routes above do not (an unknown /api path stays a JSON 404).
    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def api_not_found(rest: str) -> None:
        raise StarletteHTTPException(status_code=404, detail="Not Found")

    portal = create_portal(
        PortalSettings(
            database=database,
            cookie_secure=cookie_secure,
            sealer=sealer,
            payments=payment_settings,
            radius_clients=radius_clients or {},
        )
    )
    portal.state.trusted_proxies = app.state.trusted_proxies  # a login's address, as the API reads it
    app.mount("/", portal)
    return app
