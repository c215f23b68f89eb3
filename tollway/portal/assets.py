"""Static files (CSS, htmx) served with their content's digest in the address, so browsers keep them for ever."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/static/"
VERSION_LENGTH = 12


@functools.cache
def _version(path: str) -> str:
    return hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:VERSION_LENGTH]


def static_url(path: str) -> str:
    """'portal.css' -> '/static/portal.css?v=3f2a…'."""
    return f"{STATIC_PREFIX}{path}?v={_version(path)}"
