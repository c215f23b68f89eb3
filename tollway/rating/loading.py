"""Tariffs loaded for rating: rate tables cached per process, the chain of levels above an account.

A table is rebuilt when its tariff, or any tariff it derives from, has a new revision; every change
to a tariff or its rows bumps its revision, so a cached table is never stale for longer than the
query that checks the revisions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from tollway.errors import Refusal, present
from tollway.rating import store
from tollway.rating.chain import Allowance, Level
from tollway.rating.dialplan import INTERNATIONAL, DialPlan
from tollway.rating.plans import SubscriptionStatus
from tollway.rating.rates import RateTable
from tollway.rating.service import effective_rows
from tollway.rating.tariff import DERIVATION_DEPTH_MAX, Tariff
from tollway.store.database import identity
from tollway.store.static import StaticCache
from tollway.tree import store as tree_store
from tollway.tree.model import Node, NodeKind

TABLE_CACHE_TARIFFS_MAX = 512  # every tariff of a provider with hundreds of resellers stays loaded


class NoTariff(Refusal):
    def __init__(self, login: str) -> None:
        super().__init__("no_tariff", f"{login} has no tariff assigned")
        self.account = login


@dataclass(frozen=True, slots=True)
class Chain:
    """Everything needed to rate calls of one account: its levels, dial plan and plan allowance."""

    account: str  # login; "" when a tariff is rated on its own
    levels: tuple[Level, ...]
    dial_plan: DialPlan
    allowance: Allowance | None


class TableCache:
    """Rate tables by tariff id, checked against the revisions of the tariff and its bases."""

    def __init__(self, size: int = TABLE_CACHE_TARIFFS_MAX) -> None:
        self._size = size
        self._tables: OrderedDict[tuple[str, int], tuple[tuple[tuple[int, int], ...], RateTable]] = OrderedDict()
        self._lock = threading.Lock()

    def table(self, connection: Connection, tariff: Tariff) -> RateTable:
        key = _revision_key(connection, tariff)
        slot = (identity(connection), tariff.id)  # tariff ids mean something else in another database
        with self._lock:
            cached = self._tables.get(slot)
            if cached is not None and cached[0] == key:
                self._tables.move_to_end(slot)
                return cached[1]
        table = RateTable(effective_rows(connection, tariff), time_zone=tariff.time_zone)
        with self._lock:
            self._tables[slot] = (key, table)
            self._tables.move_to_end(slot)
            while len(self._tables) > self._size:
                self._tables.popitem(last=False)
        return table

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()


TABLES = TableCache()


def _revision_key(connection: Connection, tariff: Tariff) -> tuple[tuple[int, int], ...]:
    ids = [tariff.id]
    current = tariff
    while current.base_tariff_id is not None and len(ids) <= DERIVATION_DEPTH_MAX:
        ids.append(current.base_tariff_id)
        current = present(store.get_tariff(connection, current.base_tariff_id), "base tariff")
    revisions = store.revisions(connection, ids)
    return tuple((i, revisions[i]) for i in ids)


class LevelCache:
    """What each tariff prices at (name, currency, table), by tariff id, while the static version holds.

    Every client of a reseller pays at one of a few tariffs, and every reseller above it at one more:
    a tariff is shared by thousands of accounts. Checking its revisions (and its bases') costs a few
    queries, so with this cache it happens once per tariff after each change of the static version
    (``tollway.store.static``: any change to a tariff or its rates bumps it), not per call.
    Credit control uses it; quotes and batch rating read the tariffs fresh.
    """

    def __init__(self) -> None:
        self._tariffs: StaticCache[int, tuple[str, str, RateTable]] = StaticCache("tariffs rated")

    def level(self, connection: Connection, login: str, tariff_id: int, tables: TableCache) -> Level:
        name, currency, table = self._tariffs.get(connection, tariff_id, lambda c, key: _loaded(c, key, login, tables))
        return Level(login, name, currency, table)

    def clear(self) -> None:
        self._tariffs.clear()


def _loaded(connection: Connection, tariff_id: int, login: str, tables: TableCache) -> tuple[str, str, RateTable]:
    tariff = present(store.get_tariff(connection, tariff_id), f"tariff of {login}")
    return tariff.name, tariff.currency, tables.table(connection, tariff)


def chain_of(
    connection: Connection,
    account: Node,
    *,
    tables: TableCache = TABLES,
    nodes: Sequence[Node] | None = None,
    levels: LevelCache | None = None,
) -> Chain:
    """The levels that pay for a call of ``account``: itself, then each owner up to the provider's child.

    ``nodes``: the account and its owners, when the caller has read them already; ``levels``: a cache
    of tariffs to take them from (credit control), instead of reading each tariff now.
    """
    if account.position.kind in (NodeKind.PROVIDER, NodeKind.AGENT):
        raise Refusal("account_not_rated", f"{account.login} does not make calls")
    chain = tree_store.chain(connection, account) if nodes is None else nodes
    payers = [n for n in chain if n.position.kind is not NodeKind.PROVIDER]
    assigned = store.assigned_tariff_ids(connection, [n.id for n in payers])
    found: list[Level] = []
    for payer in payers:
        tariff_id = assigned.get(payer.id)
        if tariff_id is None:
            raise NoTariff(payer.login)
        if levels is not None:
            found.append(levels.level(connection, payer.login, tariff_id, tables))
        else:
            found.append(Level(payer.login, *_loaded(connection, tariff_id, payer.login, tables)))
    return Chain(account.login, tuple(found), dial_plan_of(connection, payers), allowance_of(connection, account))


def dial_plan_of(connection: Connection, nodes: Sequence[Node]) -> DialPlan:
    """The account's own dial plan, or the nearest owner's, or international numbers only."""
    plans = store.dial_plans_of(connection, [n.id for n in nodes])
    return next((plans[n.id] for n in nodes if n.id in plans), INTERNATIONAL)


def allowance_of(connection: Connection, account: Node) -> Allowance | None:
    for subscription in store.subscriptions_of(connection, [account.id]):
        if subscription.status is SubscriptionStatus.ACTIVE:  # a suspended plan's seconds are not for use
            return Allowance(subscription.plan, subscription.seconds_left)
    return None
