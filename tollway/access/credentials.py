"""Secrets: passwords hashed with argon2id, API keys from a cryptographic source, stored hashed.

An API key reads ``tw_<key id>_<secret>``; only a SHA-256 of the secret is stored. The secret has
256 bits of entropy, so a fast hash is enough for it (unlike a password) and lookups stay cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tollway.errors import Refusal

PASSWORD_LENGTH_MIN = 10
PASSWORD_LENGTH_MAX = 256
API_KEY_PREFIX = "tw"
API_KEY_ID_BYTES = 6
API_KEY_SECRET_BYTES = 32

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def check_password_strength(password: str) -> str:
    if not PASSWORD_LENGTH_MIN <= len(password) <= PASSWORD_LENGTH_MAX:
        raise Refusal("password_invalid", f"a password has {PASSWORD_LENGTH_MIN} to {PASSWORD_LENGTH_MAX} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password_strength(password))


GENERATED_SCHEME = "sha256$"  # a generated secret's hash, until its first login rehashes it with argon2id
GENERATED_ALPHABET = string.ascii_letters + string.digits


def generate_secret(length: int) -> str:
    """A password from a cryptographic source, for accounts made in batches (shown once)."""
    return "".join(secrets.choice(GENERATED_ALPHABET) for _ in range(length))


def hash_generated_secret(secret: str) -> str:
    """Generated secrets carry ~95 bits of entropy: a fast hash is enough for them, as for API keys, so
    ten thousand accounts are made in seconds. The first login replaces it with argon2id."""
    return GENERATED_SCHEME + hash_secret(secret)


def verify_password(password_hash: str, password: str) -> bool:
    if password_hash.startswith(GENERATED_SCHEME):
        _spend_a_check(password)  # as long as any other login's check: timing tells nothing
        return secret_matches(password, password_hash.removeprefix(GENERATED_SCHEME))
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _spend_a_check(password: str) -> None:
    with contextlib.suppress(VerifyMismatchError, VerificationError, InvalidHashError):
        _hasher.verify(DUMMY_PASSWORD_HASH, password)


def password_needs_rehash(password_hash: str) -> bool:
    return password_hash.startswith(GENERATED_SCHEME) or _hasher.check_needs_rehash(password_hash)


# Verifying against this when a login does not exist costs the same time as a real check,
# so response times do not tell which logins exist.
DUMMY_PASSWORD_HASH = _hasher.hash("not a real password, only for timing")


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key_id: str
    secret_hash: str
    plaintext: str  # shown once, never stored


def new_api_key() -> NewApiKey:
    key_id = secrets.token_hex(API_KEY_ID_BYTES)
    secret = secrets.token_urlsafe(API_KEY_SECRET_BYTES)
    return NewApiKey(key_id, hash_secret(secret), f"{API_KEY_PREFIX}_{key_id}_{secret}")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_api_key(plaintext: str) -> tuple[str, str] | None:
    """``tw_<id>_<secret>`` → (id, secret), or None if it is not shaped like a key."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != API_KEY_ID_BYTES * 2:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)
