"""Every language of the portal says everything: each message of the templates and the code is in each
catalogue, translated, not fuzzy, with the same placeholders. Extracted with Babel as scripts/portal-messages does."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tollway.portal import i18n

PORTAL = Path(i18n.__file__).resolve().parent
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
TRANSLATED = [language for language in i18n.LANGUAGES if language != i18n.SOURCE_LANGUAGE]


def extracted() -> dict[str, str]:
    """msgid -> where it was found."""
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        PORTAL, METHODS, options_map=OPTIONS, keywords=KEYWORDS
    ):
        msgid = message if isinstance(message, str) else message[0]
        if msgid:
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


MESSAGES = extracted()


def key(message: Message) -> str:
    """A message's id; a plural message is known by its singular."""
    return message.id if isinstance(message.id, str) else message.id[0]


def translated(message: Message) -> bool:
    """Every form of it has words (a plural message has one per plural form)."""
    return all(message.string) if isinstance(message.string, tuple) else bool(message.string)


def catalogue(language: str) -> Catalog:
    with i18n.catalogue_path(language).open("rb") as source:
        return read_po(source, locale=language)


def test_the_portal_has_messages_to_translate() -> None:
    assert len(MESSAGES) > 50
    assert "Log in" in MESSAGES and "Wrong login or password." in MESSAGES


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(language: str) -> None:
    found = catalogue(language)
    missing = sorted(f"{msgid!r} ({where})" for msgid, where in MESSAGES.items() if msgid not in found)
    assert not missing, f"{language} misses (run scripts/portal-messages, then translate):\n" + "\n".join(missing)
    empty = sorted(key(m) for m in found if m.id and key(m) in MESSAGES and not translated(m))
    fuzzy = sorted(key(m) for m in found if m.id and m.fuzzy)
    assert not empty, f"{language} has untranslated messages: {empty}"
    assert not fuzzy, f"{language} has fuzzy messages (check and clear the flag): {fuzzy}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_their_placeholders(language: str) -> None:
    found = catalogue(language)
    problems = [(m.id, [str(e) for e in errors]) for m, errors in found.check() if errors]
    assert not problems, problems


@pytest.mark.parametrize("language", TRANSLATED)
def test_no_catalogue_keeps_messages_nobody_uses(language: str) -> None:
    stale = sorted(key(m) for m in catalogue(language) if m.id and key(m) not in MESSAGES)
    assert not stale, f"{language} keeps messages no template or code uses (run scripts/portal-messages): {stale}"


def test_the_english_words_are_the_source_and_each_language_answers_in_its_own() -> None:
    assert i18n.translations("en").gettext("Log in") == "Log in"
    assert i18n.translations("es").gettext("Log in") != "Log in"
    assert i18n.translations("pl").gettext("Log in") != "Log in"
    assert i18n.translations("pt").gettext("Log in") != "Log in"
