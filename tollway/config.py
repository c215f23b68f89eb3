"""Configuration: environment variables (``TOLLWAY_*``) over a TOML file over defaults.

The file is ``TOLLWAY_CONFIG`` if set, else ``tollway.toml`` in the working directory if present.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite:///var/tollway.db"
DEFAULT_CONFIG_FILE = "tollway.toml"


def config_file() -> Path | None:
    path = Path(os.environ.get("TOLLWAY_CONFIG", DEFAULT_CONFIG_FILE))
    return path if path.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLWAY_", extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    database_pool_size: int = Field(default=5, ge=1, le=100)
    cookie_secure: bool = True  # session cookies only over HTTPS; false only for plain-HTTP development
    call_grant_seconds: int = Field(default=600, ge=10, le=14_400)  # talk time reserved at a time
    call_extend_lead_seconds: int = Field(default=60, ge=1, le=3_600)  # extend when less than this is left
    call_stale_margin_seconds: int = Field(default=30, ge=1, le=3_600)  # then a silent call is closed
    call_ring_timeout_seconds: int = Field(default=180, ge=10, le=3_600)  # unanswered calls are closed after
    call_max_seconds: int = Field(default=14_400, ge=60, le=14_400)  # no call lasts longer, whatever it has
    keeper: bool = True  # run credit control's keeper (extensions, sweeps, disconnects) in every process

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)
