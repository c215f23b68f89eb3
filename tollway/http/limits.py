"""What a request may carry, checked before any use case runs: text without NUL characters.

A NUL in the text of a JSON body is refused by ``Strict`` (``tollway.http.api.schemas``), the base of
every body the API reads; a NUL in a path or query parameter by ``refuse_nul_parameters``, a dependency
of the whole application. Both answer 422 with the reason ``text_contains_nul``: PostgreSQL cannot store
NUL in text, and no login, name, reference or number ever holds one.
"""

from __future__ import annotations

from fastapi import Request

from tollway.errors import NUL, TextContainsNul


def refuse_nul_parameters(request: Request) -> None:
    """Refuse a request whose path or query parameters hold a NUL character (any of them, typed or not)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            raise TextContainsNul(f"path parameter {name}")
    for name, value in request.query_params.multi_items():
        if NUL in value or NUL in name:
            raise TextContainsNul(f"query parameter {name.replace(NUL, '?')}")
