"""Which account pays for a call an extension places, with which extra floors: the organizations' side of the
hook credit control calls before it runs (tollway/calls/payer.py).

- An extension of a user whose organization lets users pay: the user's own account (user -> organization
  -> its reseller ...), every level at its own tariff.
- An extension of a user whose organization pays: the organization's account, with the user's spending
  caps per day and per month as floors.
- A call to another extension of the same organization (the callee is one of its extension numbers): free
  and not sent up the chain; credit control answers it authorized and records nothing.
- An extension of a suspended or closed user: the user's account, which credit control refuses as such.
- An extension Tollway does not know, that is disabled, or that the switch may not serve: nobody pays, and
  credit control refuses it as an unknown account.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from tollway.access.model import Action, Decision, Principal, decide, place_of
from tollway.calls.payer import Payer
from tollway.organizations import spending, store
from tollway.organizations.model import ExtensionStatus, Wallet
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Status

NOBODY = Payer(account="")  # no account has an empty login: refused as account_unknown
AOR_LENGTH_MAX = 317  # a SIP username (63), '@', a domain (253)


def resolve(database: Database, *, extension: str, callee: str, principal: Principal | None, now: datetime) -> Payer:
    """``extension``: ``username@domain`` as the switch authenticated it. Runs in its own transaction, before
    the call's: a cap's new day is started there, so the call's own transaction only reserves."""
    username, at, domain = extension.rpartition("@")
    if not at or len(extension) > AOR_LENGTH_MAX or "\x00" in extension:
        return NOBODY
    return database.run(lambda connection: _resolve(connection, username, domain, callee, principal, now))


def _resolve(
    connection: Connection, username: str, domain: str, callee: str, principal: Principal | None, now: datetime
) -> Payer:
    found = store.find_by_domain(connection, domain)
    if found is None:
        return NOBODY
    organization_id, settings = found
    extension = store.find_by_username(connection, organization_id, username)
    if extension is None or extension.status is not ExtensionStatus.ACTIVE:
        return NOBODY
    user = tree_store.get_node(connection, extension.user_node_id)
    organization = tree_store.get_node(connection, organization_id)
    if user is None or organization is None:
        return NOBODY
    if principal is not None and decide(principal, Action.CALLS_CONTROL, place_of(user)) is not Decision.ALLOWED:
        return NOBODY  # another tenant's extension is, to this switch, no extension at all
    caller = f"{organization.login}/{extension.number}"
    if user.status is not Status.ACTIVE:  # suspended or closed by its organization: refused as such, whoever pays
        return Payer(account=user.login, caller=caller)
    internal = callee.isascii() and callee.isdigit() and len(callee) == settings.extension_digits
    if internal and store.find_extension(connection, organization_id, callee) is not None:
        return Payer(account=organization.login, caller=caller, internal=True)
    if settings.wallet is Wallet.USER:
        return Payer(account=user.login, caller=caller)
    return Payer(
        account=organization.login, caller=caller, floors=spending.floors_of(connection, user, organization, now=now)
    )
