"""Configuration: environment variables (``TOLLWAY_*``) over a TOML file over defaults.

The file is ``TOLLWAY_CONFIG`` if set, else ``tollway.toml`` in the working directory if present.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite:///var/tollway.db"
DEFAULT_CONFIG_FILE = "tollway.toml"


class RadiusClient(BaseModel):
    """A NAS (voice gateway) allowed to talk RADIUS to Tollway, keyed by its IP address in ``radius_clients``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr = Field(min_length=1, max_length=128)  # shared with the NAS
    switch: str = Field(min_length=1, max_length=63)  # the registered switch it acts as (tollway switch create)
    # Drop Access-Requests without a Message-Authenticator (RFC 3579; the BlastRADIUS countermeasure). Only
    # then is a request with a wrong secret told apart; turn it off for gateways that cannot send one.
    require_message_authenticator: bool = True


def radius_client_key(address: str) -> str:
    """A NAS's IP address written the one way ``radius_clients`` is keyed (an IPv4-mapped IPv6 address as
    IPv4, as a dual-stack socket reports it); a value that is not one address is refused."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        raise ValueError(f"a RADIUS client is named by its IP address, not {address!r}") from None
    if parsed.is_unspecified:
        raise ValueError("a RADIUS client is one NAS: 0.0.0.0 and :: are refused")
    mapped = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None
    return str(mapped or parsed)


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
    call_duration_margin_seconds: int = Field(default=5, ge=0, le=600)  # a reported duration may pass its grant by
    keeper: bool = True  # run credit control's keeper (extensions, sweeps, disconnects) in every process
    # Outgoing email (low-balance notices): the SMTP server that relays it, and the sender of last resort.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False  # upgrade with STARTTLS (certificate verified) before anything else is sent
    smtp_username: str | None = None  # log in when set; only over STARTTLS unless the server is on loopback
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)  # connecting, and each exchange after
    mail_from: str = Field(default="Tollway <billing@localhost>", min_length=3, max_length=320)  # no brand set
    # The RADIUS server (tollway radius): where it listens, and the NAS allowed to use it, by IP address.
    radius_host: str = "127.0.0.1"
    radius_auth_port: int = Field(default=1812, ge=0, le=65535)  # 0: any free port (tests)
    radius_acct_port: int = Field(default=1813, ge=0, le=65535)
    radius_clients: dict[str, RadiusClient] = Field(default_factory=dict, max_length=10_000)
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks): password attempts are
    # throttled per client address, and without this every client behind a proxy shares the proxy's.
    trusted_proxies: list[str] = Field(default_factory=list, max_length=1_000)
    # The key that seals secrets Tollway must read back (gateway keys, TOTP seeds): see tollway/sealing.py.
    # Unset, it is read from secret_key_file, which is made on first use; every host must share one key.
    secret_key: SecretStr | None = None
    secret_key_file: str = "var/secret.key"  # noqa: S105 (a path, not a secret)
    secret_keys_retired: list[SecretStr] = Field(default_factory=list, max_length=10)  # still open old seals
    # The token a Prometheus scraper presents (Authorization: Bearer ...) to read /api/metrics; unset, that
    # path answers 404 as any unknown one does (tollway/metrics.py, docs/deployment.md "Metrics").
    metrics_token: SecretStr | None = Field(default=None, min_length=16, max_length=256)
    # The online shop: where payers come back after paying (the portal's address, as they reach it), and
    # Stripe's API address (unset: Stripe's own; a test points the SDK at a local server).
    shop_public_url: str = Field(default="http://127.0.0.1:8080", pattern=r"^https?://[^\s/?#]+/?$")
    stripe_api_base: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$")

    @field_validator("radius_clients")
    @classmethod
    def _radius_clients_by_address(cls, clients: dict[str, RadiusClient]) -> dict[str, RadiusClient]:
        return {radius_client_key(address): client for address, client in clients.items()}

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies_are_networks(cls, proxies: list[str]) -> list[str]:
        for value in proxies:
            try:
                ipaddress.ip_network(value.strip(), strict=False)
            except ValueError:
                raise ValueError(f"a trusted proxy is an IP address or network, not {value!r}") from None
        return [value.strip() for value in proxies]

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
