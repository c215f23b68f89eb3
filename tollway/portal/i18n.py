"""The portal's languages: gettext catalogues read with Babel, one Jinja2 environment per language.

The words are written in English in the templates (``{% trans %}``, ``_()``) and in the code (``N_()``
marks a text translated later, when it is shown); each other language has its catalogue in
``locale/<language>/LC_MESSAGES/messages.po``, read and compiled in memory at start (no compiled files
to keep in step). ``tests/test_portal_catalogues.py`` extracts every message and fails when a catalogue
misses one or has it empty or fuzzy; ``scripts/portal-messages`` brings the catalogues up to date.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "templates"
LOCALES = PACKAGE / "locale"
DOMAIN = "messages"
SOURCE_LANGUAGE = "en"
# The languages the portal speaks, each in its own words (the language menu shows them so).
LANGUAGES: dict[str, str] = {"en": "English", "es": "Español", "pl": "Polski", "pt": "Português"}
ACCEPT_LANGUAGE_LENGTH_MAX = 200


def N_(text: str) -> str:
    """Mark ``text`` for the catalogues; it is translated where it is shown."""
    return text


def catalogue_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(language: str) -> NullTranslations:
    """The compiled catalogue of ``language``; English (the source) translates nothing."""
    if language == SOURCE_LANGUAGE:
        return NullTranslations()
    with catalogue_path(language).open("rb") as source:
        catalogue = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def spoken(language: str | None) -> str | None:
    """The portal language for a stored language code ('pt_BR' -> 'pt'), or None if it speaks none of it."""
    if not language:
        return None
    base = language.replace("-", "_").split("_", 1)[0].lower()
    return base if base in LANGUAGES else None


def negotiate(accept_language: str) -> str | None:
    """The best of the portal's languages for a browser's Accept-Language header, if any."""
    wanted = []
    for part in accept_language[:ACCEPT_LANGUAGE_LENGTH_MAX].split(","):
        tag = part.split(";", 1)[0].strip()
        if tag and tag != "*":
            wanted.append(tag.replace("-", "_"))
    for tag in wanted:
        found = spoken(tag)
        if found:
            return found
    try:
        negotiated = Locale.negotiate(wanted, list(LANGUAGES))
    except (UnknownLocaleError, ValueError):
        return None
    return spoken(str(negotiated)) if negotiated else None


def environment(language: str) -> Environment:
    """The templates, escaped (every value is HTML-escaped unless marked safe) and speaking ``language``."""
    return _environments()[language]


@functools.cache
def _environments() -> dict[str, Environment]:
    loader = FileSystemLoader(TEMPLATES)
    found = {}
    for language in LANGUAGES:
        env = Environment(
            loader=loader,
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
        found[language] = env
    return found
