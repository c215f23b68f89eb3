"""The words of each notice, in each language, rendered with Jinja2; amounts formatted with Babel.

Notices are plain text (``text/plain; charset=utf-8``), so nothing is HTML-escaped: an account named
"O'Brien & Sons" reads as such. What a value may not do in plain text is start a new line or a new header,
so every value printed by a template goes through ``one_line`` first, and a missing value is an error
(``StrictUndefined``), never an empty gap in a sent email.

Languages: en, es, fr, de, pt. An account's language is tried most specific first and falls back to
English ('pt_BR' uses pt; 'it' uses en). Amounts are formatted for the account's own locale
(``pt_BR`` formats as Brazil does even though the words are the shared Portuguese ones), at the
currency's precision (tollway/display.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import DictLoader, Environment, StrictUndefined

from tollway.display import Rounding, format_money
from tollway.notifications.model import (
    SUBJECT_LENGTH_MAX,
    bounded,
    language_candidates,
    one_line,
)

# (subject, body) per language. {{ level }} and {{ threshold }} arrive formatted for the account's locale.
LOW_BALANCE: dict[str, tuple[str, str]] = {
    "en": (
        "{{ brand }}: low balance on your account {{ login }}",
        """Hello {{ name }},

The credit left on your account {{ login }} is {{ level }}, below the {{ threshold }} at which we warn you.

Please top up your account so that your calls are not interrupted. You will not get this notice again \
until your credit has been back to {{ threshold }} or more.

Best regards,
{{ brand }}
""",
    ),
    "es": (
        "{{ brand }}: saldo bajo en su cuenta {{ login }}",
        """Hola, {{ name }}:

El saldo disponible de su cuenta {{ login }} es de {{ level }}, por debajo del umbral de aviso de {{ threshold }}.

Recargue su cuenta para que sus llamadas no se interrumpan. No volverá a recibir este aviso hasta que su \
saldo haya vuelto a ser de {{ threshold }} o más.

Atentamente,
{{ brand }}
""",
    ),
    "fr": (
        "{{ brand }} : solde bas sur votre compte {{ login }}",
        """Bonjour {{ name }},

Le crédit restant sur votre compte {{ login }} est de {{ level }}, en dessous du seuil d'alerte de {{ threshold }}.

Veuillez recharger votre compte pour que vos appels ne soient pas interrompus. Vous ne recevrez plus cet \
avis tant que votre crédit ne sera pas revenu à {{ threshold }} ou plus.

Cordialement,
{{ brand }}
""",
    ),
    "de": (
        "{{ brand }}: Niedriges Guthaben auf Ihrem Konto {{ login }}",
        """Guten Tag {{ name }},

das verfügbare Guthaben Ihres Kontos {{ login }} beträgt {{ level }} und liegt damit unter der \
Warnschwelle von {{ threshold }}.

Bitte laden Sie Ihr Konto auf, damit Ihre Anrufe nicht unterbrochen werden. Diesen Hinweis erhalten Sie \
erst wieder, wenn Ihr Guthaben zwischenzeitlich wieder {{ threshold }} oder mehr betragen hat.

Mit freundlichen Grüßen
{{ brand }}
""",
    ),
    "pt": (
        "{{ brand }}: saldo baixo na sua conta {{ login }}",
        """Olá, {{ name }}:

O saldo disponível da sua conta {{ login }} é de {{ level }}, abaixo do limite de aviso de {{ threshold }}.

Recarregue a sua conta para que as suas chamadas não sejam interrompidas. Não voltará a receber este \
aviso até que o seu saldo tenha voltado a {{ threshold }} ou mais.

Com os melhores cumprimentos,
{{ brand }}
""",
    ),
}
LANGUAGES = tuple(LOW_BALANCE)


@dataclass(frozen=True, slots=True)
class LowBalanceNotice:
    """What a low-balance notice says, before it is put into words."""

    language: str  # the account's, e.g. 'es' or 'pt_BR'
    currency: str
    account_name: str
    login: str
    level_micros: int
    threshold_micros: int
    brand_name: str


@dataclass(frozen=True, slots=True)
class Rendered:
    language: str  # the language the words are in, after fallbacks
    subject: str
    body: str


def _printable(value: object) -> str:
    return one_line(str(value))


def _environment() -> Environment:
    templates = {f"low_balance/{language}/subject": subject for language, (subject, _) in LOW_BALANCE.items()}
    templates |= {f"low_balance/{language}/body": body for language, (_, body) in LOW_BALANCE.items()}
    # Plain text, not HTML: escaping for HTML would show "&amp;"; values are made one line instead.
    return Environment(
        loader=DictLoader(templates),
        autoescape=False,  # noqa: S701
        undefined=StrictUndefined,
        finalize=_printable,
        keep_trailing_newline=True,
        auto_reload=False,
    )


ENVIRONMENT = _environment()


def words_language(language: str) -> str:
    """The language a notice is written in: the account's, else its base language, else English."""
    return next(candidate for candidate in language_candidates(language) if candidate in LOW_BALANCE)


def render_low_balance(notice: LowBalanceNotice) -> Rendered:
    language = words_language(notice.language)
    values = {
        "brand": notice.brand_name,
        "name": notice.account_name,
        "login": notice.login,
        # At the currency's precision: the level rounded down, the threshold up, so that a level below the
        # threshold never reads as equal to it.
        "level": format_money(notice.level_micros, notice.currency, notice.language, Rounding.DOWN),
        "threshold": format_money(notice.threshold_micros, notice.currency, notice.language, Rounding.UP),
    }
    subject = ENVIRONMENT.get_template(f"low_balance/{language}/subject").render(values)
    body = ENVIRONMENT.get_template(f"low_balance/{language}/body").render(values)
    return Rendered(language=language, subject=bounded(one_line(subject), SUBJECT_LENGTH_MAX), body=body)
