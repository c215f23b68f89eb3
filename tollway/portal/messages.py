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
    "reference_required": N_("Enter the reference you wrote on your transfer."),
    "amount_required": N_("Choose an amount."),
    "amount_out_of_range": N_("This amount is outside what this shop accepts."),
    "amount_not_offered": N_("Choose one of the amounts offered."),
    "shop_offers_no_topups": N_("This shop offers no top-ups in your currency."),
    "gateway_unavailable": N_("The payment service cannot be reached. Nothing was taken: try again in a moment."),
    "gateway_key_invalid": N_("The payment service refused this shop's key. Please contact support."),
    "refund_exceeds_unspent": N_("The payer has spent part of this money: only what is unspent can be refunded."),
    "refund_exceeds_payment": N_("This is more than what is left of the payment to refund."),
    "reason_required": N_("Say why."),
    "note_required": N_("Say why the transfer is rejected."),
    "secret_key_invalid": N_("A Stripe secret key starts with sk_ or rk_."),
    "webhook_secret_invalid": N_("A webhook signing secret starts with whsec_."),
    "secrets_required": N_("A new Stripe gateway needs both its secret key and its webhook signing secret."),
    "bank_details_invalid": N_("Bank details name the account holder and an IBAN or account number."),
    "offer_invalid": N_("Check the amounts: positive, each once, and a free amount with both limits."),
    "tax_rate_invalid": N_("A tax rate is from 0 to 100 percent."),
    "month_not_over": N_("A month's invoices are issued once it is over."),
    "forbidden": N_("You are not allowed to do this."),
    # organizations, their users and extensions; caller ids and FollowMe
    "login_taken": N_("This login is taken. Choose another."),
    "login_invalid": N_(
        "A login has 2 to 63 characters: lower-case letters, digits and . _ @ -, starting with a letter or a digit."
    ),
    "users_limit_reached": N_("The organization has as many users as it may have."),
    "extensions_limit_reached": N_("This user has as many extensions as it may have."),
    "extension_number_invalid": N_(
        "An extension number has the organization's number of digits and does not start with 0."
    ),
    "extension_number_taken": N_("The organization has an extension with this number already."),
    "sip_username_taken": N_("Another extension of the organization has this SIP username."),
    "sip_username_invalid": N_("A SIP username has lower-case letters, digits, dots, dashes or underscores."),
    "limit_invalid": N_("A limit is a whole number, or empty for none."),
    "users_limit_wider_than_owner": N_("A limit may not be wider than the one set above yours."),
    "extensions_per_user_limit_wider_than_owner": N_("A limit may not be wider than the one set above yours."),
    "number_invalid": N_("Enter a number with its country code, such as +44 20 7946 0100."),
    "caller_id_exists": N_("This line has this caller id already."),
    "caller_ids_limit_reached": N_("A line has at most 20 caller ids."),
    "caller_id_not_organizations": N_("An extension presents only its organization's verified numbers."),
    "follow_me_too_long": N_("FollowMe has at most 10 numbers."),
    "follow_me_repeated": N_("A number appears twice in FollowMe."),
    "follow_me_own_number": N_("The line's own number may only come first in its FollowMe."),
    "follow_me_extension_unknown": N_("FollowMe names an extension the organization does not have."),
    "ring_seconds_invalid": N_("A number rings for 5 to 120 seconds."),
    # calling cards
    "batch_exists": N_("A batch of that name exists already: choose another name."),
    "batch_id_invalid": N_("A batch's name has 1 to 40 letters, digits and . _ - :"),
    "batch_size_invalid": N_("That number of cards cannot be made in one batch."),
    "pin_length_invalid": N_("A PIN has 10 to 16 digits."),
    "serial_prefix_invalid": N_("A serial prefix has up to 12 letters or digits."),
    "expiry_invalid": N_(
        "Give an expiry date in the future or a number of days after activation (1 to 3650), not both."
    ),
    "profile_required": N_("Choose one of your profiles for calling cards."),
    "profile_not_allowed": N_("You may not make cards from that profile, or with another tariff than its own."),
    "plan_not_allowed": N_("An agent's cards have no plan."),
    "plan_not_owners": N_("That plan belongs to another account."),
    "tariff_not_owners": N_("That tariff belongs to another account."),
    "insufficient_funds": N_("There is not enough money in the account for this."),
    "serial_invalid": N_("A serial ends with nine digits."),
    "serial_range_invalid": N_("A range goes from a first serial to a last one, at most 100,000 cards."),
    "selection_invalid": N_("Name a serial, a range of serials or a batch, not both a range and a batch."),
    "card_not_rechargeable": N_("Only an active or depleted card can be recharged."),
    "card_not_recognized": N_("No card has this serial and PIN."),
    "pin_throttled": N_("Too many wrong PINs: try again later."),
    # filters and periods; the provider's switches and exchange rates
    "day_invalid": N_("Enter a day such as 2026-12-07."),
    "period_invalid": N_("The first day must come before the last, in a period of at most 400 days."),
    "prefix_invalid": N_("A number to search for has 1 to 15 digits, such as +44 20."),
    "state_invalid": N_("Choose one of the statuses offered."),
    "margin_for_sellers_only": N_("Only resellers and the provider sell calls: choose a reseller."),
    "rate_invalid": N_("A rate is a positive number such as 1.0850."),
    "rate_same_currency": N_("A rate converts between two different currencies."),
    "currency_invalid": N_("Enter a currency's three letters, such as EUR."),
    "name_required": N_("Enter a name."),
    "switch_exists": N_("There is a switch with this name already."),
    "notify_invalid": N_("This way of pushing disconnects needs the address where they are pushed."),
    # tariffs, rate sheets and plans
    "tariff_name_invalid": N_(
        "A name has 1 to 60 characters, without a colon, and does not start or end with a space."
    ),
    "tariff_exists": N_("There is a tariff with this name already."),
    "plan_exists": N_("There is a plan with this name already, or the account has a plan already."),
    "seconds_invalid": N_("A number of seconds is from 0 to 86,400."),
    "resolution_invalid": N_("The resolution is from 1 to 86,400 seconds."),
    "multiplier_invalid": N_("The multiplier is a number from 0 to 1,000 with at most six decimal places."),
    "price_invalid": N_("A price is from 0 to 1,000,000."),
    "base_tariff_invalid": N_("Derive from one of your own tariffs."),
    "currency_mismatch": N_("The currencies differ: choose one in the account's currency."),
    "time_zone_invalid": N_("Choose a time zone such as Europe/Madrid."),
    "layout_invalid": N_("Choose one of the formats offered."),
    "sheet_required": N_("Choose a rate sheet file."),
    "feature_not_granted": N_("Your supplier has not given you this feature."),
    "minutes_invalid": N_("Included minutes are a whole number from 0 to 166,666."),
    "plan_prefixes_invalid": N_("A plan covers at most 1,000 prefixes."),
    "plan_prefix_invalid": N_("Each destination is a prefix of 1 to 20 digits, such as 44."),
    "period_unknown": N_("Choose one of the periods offered."),
    "plan_unpaid": N_("The account cannot pay the plan's first fee: top it up first."),
    # batches of accounts; an agent's commission
    "count_invalid": N_("Enter the number of accounts as a whole number, such as 25."),
    "agent_not_of_owner": N_("This agent is not one of this reseller's agents."),
    "owner_not_active": N_("This reseller, or one above it, is suspended or closed."),
    "clients_limit_reached": N_("This would exceed the number of clients allowed."),
    "logins_exhausted": N_("No free logins are left with this profile's prefix."),
    "nothing_to_withdraw": N_("There is no commission to withdraw."),
    "password_reset_below_only": N_("You reset the logins of the accounts below yours; change your own in Settings."),
    "second_factor_reset_below_only": N_(
        "You reset the logins of the accounts below yours; change your own in Settings."
    ),
    "confirmation_required": N_("Tick the box to confirm that you understand the risk."),
    # brands
    "colour_invalid": N_("Enter a colour as # and six hexadecimal digits, such as #1f4e79."),
    "colour_contrast_too_low": N_("This colour leaves the text on it hard to read: it needs a contrast of 4.5:1."),
    "brand_name_invalid": N_("A brand name has 1 to 200 printable characters."),
    "support_phone_invalid": N_("Enter a phone number such as +1 555 0100."),
    "support_url_invalid": N_("A support page is an address starting with http:// or https://."),
    "logo_invalid": N_("A logo is a PNG, JPEG, WebP or SVG image."),
    "logo_too_large": N_("A logo is at most 256 KiB."),
    "logo_svg_unsafe": N_("An SVG logo may hold drawing only: no scripts, event handlers, links or embedded content."),
    "host_invalid": N_("Enter host names such as portal.example.com, one a line."),
    "host_taken": N_("Another brand already has this host name: a host name belongs to one brand only."),
    "too_many_hosts": N_("A brand has at most 20 host names."),
    "brand_for_resellers_only": N_("Only resellers and the provider have a brand for their customers."),
    "nothing_to_change": N_("Nothing was changed."),
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
