"""The application as uvicorn starts it: settings from the environment and config file."""

from __future__ import annotations

from fastapi import FastAPI

from tollway.calls.service import CallSettings
from tollway.config import Settings
from tollway.http.app import create_app
from tollway.logs import configure_logging
from tollway.store.database import Database


def app_factory() -> FastAPI:
    settings = Settings()
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    return create_app(
        Database(settings.database_url, pool_size=settings.database_pool_size),
        cookie_secure=settings.cookie_secure,
        call_settings=call_settings(settings),
        keeper=settings.keeper,
    )


def call_settings(settings: Settings) -> CallSettings:
    return CallSettings(
        grant_seconds=settings.call_grant_seconds,
        extend_lead_seconds=min(settings.call_extend_lead_seconds, settings.call_grant_seconds // 2),
        stale_margin_seconds=settings.call_stale_margin_seconds,
        ring_timeout_seconds=settings.call_ring_timeout_seconds,
        max_call_seconds=settings.call_max_seconds,
    )
