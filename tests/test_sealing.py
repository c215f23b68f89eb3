"""Secrets Tollway must read back are sealed with a key kept outside the database."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from tollway.config import Settings
from tollway.sealing import SealBroken, Sealer


def test_a_sealed_secret_opens_with_its_key_and_hides_the_plaintext() -> None:
    sealer = Sealer(Sealer.new_key())
    sealed = sealer.seal("sk_test_51Hxyz")
    assert "sk_test" not in sealed
    assert sealer.unseal(sealed) == "sk_test_51Hxyz"
    assert sealer.seal("same") != sealer.seal("same")  # a fresh IV every time


def test_another_key_or_a_changed_value_does_not_open() -> None:
    sealed = Sealer(Sealer.new_key()).seal("secret")
    with pytest.raises(SealBroken):
        Sealer(Sealer.new_key()).unseal(sealed)
    sealer = Sealer(Sealer.new_key())
    tampered = sealer.seal("secret")[:-4] + "AAAA"
    with pytest.raises(SealBroken):
        sealer.unseal(tampered)


def test_a_retired_key_still_opens_and_reseal_moves_to_the_new_key() -> None:
    old, new = Sealer.new_key(), Sealer.new_key()
    sealed = Sealer(old).seal("totp-seed")
    rotated = Sealer(new, (old,))
    assert rotated.unseal(sealed) == "totp-seed"
    assert Sealer(new).unseal(rotated.reseal(sealed)) == "totp-seed"


def test_a_malformed_key_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="new_key"):
        Sealer("not a key")


def test_the_key_comes_from_the_settings_or_a_file_made_once(tmp_path: Path) -> None:
    key = Sealer.new_key()
    configured = Sealer.from_settings(Settings(secret_key=SecretStr(key), secret_key_file=str(tmp_path / "unused")))
    assert Sealer(key).unseal(configured.seal("x")) == "x"
    assert not (tmp_path / "unused").exists()

    path = tmp_path / "var" / "secret.key"
    first = Sealer.from_settings(Settings(secret_key_file=str(path)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Sealer.from_settings(Settings(secret_key_file=str(path)))
    assert second.unseal(first.seal("x")) == "x"
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]
