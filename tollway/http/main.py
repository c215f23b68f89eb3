"""The application as uvicorn starts it: settings from the environment and config file."""

from __future__ import annotations

from fastapi import FastAPI

from tollway.calls.service import CallSettings
from tollway.config import Settings
from tollway.http.app import create_app
from tollway.logs import configure_logging
from tollway.notifications.service import MailSettings
from tollway.sealing import Sealer
from tollway.store.database import Database


def app_factory() -> FastAPI:
    settings = Settings()
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    return create_app(
        Database(settings.database_url, pool_size=settings.database_pool_size),
        cookie_secure=settings.cookie_secure,
        call_settings=CallSettings.of(settings),
        keeper=settings.keeper,
        mail_settings=MailSettings.of(settings),
        trusted_proxies=settings.trusted_proxies,
        sealer=Sealer.from_settings(settings),
        radius_clients=settings.radius_clients,
        metrics_token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
    )
