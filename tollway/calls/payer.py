"""Who pays for a call, decided before credit control runs: the one hook between calls and organizations.

A switch names the account that pays (``account``), or the SIP extension that placed the call
(``extension``: ``username@domain``, as it authenticated it). An extension belongs to a user of an
organization; what it maps to is the organization's business (tollway/organizations/payers.py), and what
the engine gets is a ``Payer``: the account whose chain pays, and any extra floors the call must also stay
within (a user's spending caps when its organization pays). The engine treats each floor as one more
level: it reserves, extends, posts and releases on the floor's ledger account at the first level's price,
so a cap is enforced in real time exactly as a balance is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Floor:
    """A limit besides every level's money: a ledger account with a floor, charged the first level's price
    for the call into ``sink_account_id`` (both the payer's, in its currency)."""

    label: str  # names the floor where a level's login would be (a refusal's level, limited_by)
    node_id: int
    account_id: int
    sink_account_id: int


@dataclass(frozen=True, slots=True)
class Payer:
    account: str  # the login of the account whose chain pays
    caller: str = ""  # what the call record names as its caller (the extension), if the switch sent none
    floors: tuple[Floor, ...] = ()
    internal: bool = False  # a call between two extensions of one organization: free, not sent up the chain
