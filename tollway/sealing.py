"""Secrets Tollway must read back (a gateway's API key, a TOTP seed, a SIP password), sealed at rest.

Passwords and API keys are hashed: Tollway never needs them back. Some secrets it must use again, so they
are encrypted with a key that lives outside the database (Fernet: AES-128-CBC with HMAC-SHA256, from the
``cryptography`` package): a copy of the database alone gives none of them away.

The key comes from the settings: ``secret_key`` (``TOLLWAY_SECRET_KEY``) if set, else the file named by
``secret_key_file``, made on first use (mode 0600) so that a laptop needs no setup. Every process and
host of one installation must share the key (set it in production: see docs/deployment.md). To rotate,
put the new key in ``secret_key`` and the old one in ``secret_keys_retired``: sealed values still open,
and ``reseal`` moves one onto the new key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tollway.config import Settings
from tollway.errors import TollwayError
from tollway.logs import get_logger

log = get_logger("tollway.sealing")

__all__ = ["SealBroken", "Sealer"]


class SealBroken(TollwayError):
    """A sealed value does not open with any configured key: the key is wrong or the value was altered."""


class Sealer:
    """Seals and opens short secrets with the installation's key (and opens with retired keys)."""

    def __init__(self, key: str, retired: tuple[str, ...] = ()) -> None:
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in (key, *retired)])
            self._key = key.encode()
        except ValueError:
            raise ValueError("a secret key is 32 bytes in URL-safe base64: make one with Sealer.new_key()") from None

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer:
        retired = tuple(k.get_secret_value() for k in settings.secret_keys_retired)
        if settings.secret_key is not None:
            return cls(settings.secret_key.get_secret_value(), retired)
        return cls(_key_from_file(Path(settings.secret_key_file)), retired)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SealBroken("a sealed secret does not open with the configured keys (secret_key)") from None

    def digest_key(self, purpose: str) -> bytes:
        """A key for keyed hashes (HMAC) of secrets looked up but never read back, such as calling cards'
        PINs: derived from the current key, one per ``purpose``. Such digests do not follow a rotation:
        keep the old key as ``secret_key`` while digests made with it must still match."""
        return hmac.new(self._key, b"tollway digest key: " + purpose.encode(), hashlib.sha256).digest()

    def reseal(self, sealed: str) -> str:
        """The same secret sealed with the current key (after a rotation)."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise SealBroken("a sealed secret does not open with the configured keys (secret_key)") from None


def _key_from_file(path: Path) -> str:
    """The key in ``path``; made there (0600) if there is none, atomically, so racing processes agree."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-key-")  # mode 0600
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(Sealer.new_key() + "\n")
            os.link(temporary, path)  # fails if another process made the file first: then theirs is used
            log.warning("secret_key_created", path=str(path), hint="every host of an installation needs this key")
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text().strip()
