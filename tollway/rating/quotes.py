"""What one call would cost, level by level, as far as the asker may see."""

from __future__ import annotations

from datetime import datetime

from tollway.access.model import Action, Principal, authorize, place_of, sees_charge
from tollway.rating.chain import Charge, rate_call
from tollway.rating.loading import chain_of
from tollway.rating.rates import epoch_seconds
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.service import require_node


def quote(
    database: Database,
    *,
    login: str,
    dialed: str,
    start: datetime,
    duration: int,
    principal: Principal | None = None,
) -> tuple[str, list[Charge]]:
    """(the E.164 number, the charges) of a call by ``login``: only the levels the principal sees.

    A reseller sees what its clients pay it and what it pays its owner, never what its owner pays
    further up; a client sees its own charge.
    """
    with database.reading() as connection:
        account = require_node(connection, login)
        authorize(principal, Action.TARIFFS_READ, account)
        chain = chain_of(connection, account)
        visible = {n.login for n in tree_store.chain(connection, account) if sees_charge(principal, place_of(n))}
    number = chain.dial_plan.normalize(dialed)
    charges = rate_call(chain.levels, number, epoch_seconds(start), duration, chain.allowance)
    return number, [charge for charge in charges if charge.account in visible]
