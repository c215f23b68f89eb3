"""What a refusal says to a person, in the visitor's language.

Services refuse in English with a machine-readable reason; a page shows the reason's sentence from here,
translated, and for a reason not listed a general sentence with the reason's code (support can look it up).
"""

from __future__ import annotations

from typing import Protocol

from tollway.errors import NotFound, Refusal
from tollway.portal.i18n import N_

REFUSALS: dict[str, str] = {
    "login_failed": N_("Wrong login or password."),
    "login_throttled": N_("Too many failed attempts. Wait a few minutes, then try again."),
    "account_blocked": N_("This account is suspended or closed. Please contact support."),
    "csrf_failed": N_("This form has expired or was not sent from this portal. Reload the page and try again."),
    "code_wrong": N_("The code is wrong or was used already. Enter the code your app shows now."),
    "second_factor_on": N_("Two-step verification is already on."),
    "second_factor_off": N_("Two-step verification is off."),
    "second_factor_not_enrolling": N_("Start the set-up of two-step verification first."),
    "second_factor_not_offered": N_("Two-step verification is for provider, reseller and agent logins."),
    "second_factor_unavailable": N_("Two-step verification needs a secret key on the server. Ask your provider."),
    "second_factor_expired": N_("The login took too long. Enter your password again."),
    "language_invalid": N_("Choose one of the languages offered."),
    "email_invalid": N_("Enter an email address such as name@example.com."),
    "threshold_invalid": N_("Enter an amount of zero or more."),
    "amount_invalid": N_("Enter an amount such as 5 or 12.50."),
    "amount_too_precise": N_("An amount has at most six decimal places."),
    "amount_too_large": N_("This amount is too large."),
    "field_invalid": N_("A field is too long or holds characters that are not allowed."),
    "text_contains_nul": N_("A field is too long or holds characters that are not allowed."),
    "password_mismatch": N_("The two new passwords are not the same."),
    "password_invalid": N_("A password has 10 to 256 characters."),
    "current_password_wrong": N_("The current password is wrong."),
    "password_unchanged": N_("The new password is the current one."),
    "password_changed_meanwhile": N_("The password was changed meanwhile. Try again."),
    "request_invalid": N_("The request is not valid."),
    "forbidden": N_("You are not allowed to do this."),
}
NOT_FOUND = N_("There is nothing here, or you may not see it.")
GENERAL = N_("The request was refused (%(reason)s).")


class Speaker(Protocol):
    def gettext(self, message: str, **values: str) -> str: ...


def refusal_text(speaker: Speaker, refusal: Refusal) -> str:
    if isinstance(refusal, NotFound):
        return speaker.gettext(NOT_FOUND)
    known = REFUSALS.get(refusal.reason)
    if known is not None:
        return speaker.gettext(known)
    return speaker.gettext(GENERAL, reason=refusal.reason)
