"""Configuration: environment over the TOML file over defaults; unknown keys are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tollway.config import DEFAULT_DATABASE_URL, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TOLLWAY_DATABASE_URL", "TOLLWAY_HTTP_PORT", "TOLLWAY_LOG_FORMAT", "TOLLWAY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_need_nothing() -> None:
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.http_port == 8080


def test_the_config_file_overrides_defaults_and_the_environment_overrides_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "tollway.toml").write_text('database_url = "sqlite:///from-file.db"\nhttp_port = 9000\n')
    assert Settings().database_url == "sqlite:///from-file.db"
    assert Settings().http_port == 9000
    monkeypatch.setenv("TOLLWAY_HTTP_PORT", "9100")
    assert Settings().http_port == 9100


def test_a_config_file_named_by_tollway_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "etc" / "tollway.toml"
    path.parent.mkdir()
    path.write_text('log_format = "json"\n')
    monkeypatch.setenv("TOLLWAY_CONFIG", str(path))
    assert Settings().log_format == "json"


def test_unknown_or_invalid_settings_are_refused(tmp_path: Path) -> None:
    (tmp_path / "tollway.toml").write_text("databse_url = 'typo'\n")
    with pytest.raises(ValidationError, match="databse_url"):
        Settings()
    (tmp_path / "tollway.toml").write_text("http_port = 70000\n")
    with pytest.raises(ValidationError, match="http_port"):
        Settings()
