"""Dial-plan normalization: what a caller dialed, as E.164 digits (no ``+``, no ``00``). Pure.

Per account (inherited from the nearest owner that has one):
1. ``+`` followed by digits is already international;
2. the international prefix (``00`` in most of the world, ``011`` in North America) is dropped;
3. the national prefix (``0``, or ``1`` in North America) is replaced by the country code;
4. anything else is taken as already international digits, as most switches send them.
Spaces, dots, dashes and parentheses are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from tollway.errors import Refusal

NUMBER_DIGITS_MAX = 20
_SEPARATORS = str.maketrans("", "", " .-()/")


@dataclass(frozen=True, slots=True)
class DialPlan:
    country_code: str = ""  # "" when the account's numbers are always dialed internationally
    international_prefix: str = "00"
    national_prefix: str = "0"

    def __post_init__(self) -> None:
        for name, value, longest in (
            ("country_code", self.country_code, 3),
            ("international_prefix", self.international_prefix, 4),
            ("national_prefix", self.national_prefix, 2),
        ):
            if value and not (value.isascii() and value.isdigit() and len(value) <= longest):
                raise Refusal("dial_plan_invalid", f"{name} is up to {longest} digits, not {value!r}")
        if self.country_code.startswith("0"):
            raise Refusal("dial_plan_invalid", "a country code never starts with 0")

    def normalize(self, dialed: str) -> str:
        """The E.164 digits of ``dialed``; ``number_invalid`` if there are none."""
        # "+44 (0)20 ..." writes the national prefix in brackets after the country code: not dialed.
        number = dialed.replace("(0)", "").translate(_SEPARATORS)
        if number.startswith("+"):
            number = number[1:]
        elif self.international_prefix and number.startswith(self.international_prefix):
            number = number[len(self.international_prefix) :]
        elif self.country_code and self.national_prefix and number.startswith(self.national_prefix):
            number = self.country_code + number[len(self.national_prefix) :]
        if not (number.isascii() and number.isdigit() and len(number) <= NUMBER_DIGITS_MAX):
            raise Refusal("number_invalid", f"{dialed!r} is not a telephone number")
        return number


INTERNATIONAL = DialPlan()
E164_DIGITS = DialPlan(international_prefix="", national_prefix="")  # only "+" and separators go
