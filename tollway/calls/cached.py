"""What a call setup reads that is static: accounts and their chains, rated levels, switches, per process.

Each is a ``tollway.store.static.StaticCache``: valid while the database's static version is the one it
was loaded at, so a setup reads one version row instead of the tree, and any change (a node suspended, a
tariff edited, a key revoked) is seen by the next call in every process. Failures (an unknown account,
a level without a tariff) are not cached: they are read again each time, and are cheap and rare.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from tollway.calls import store
from tollway.rating.loading import Chain, LevelCache, TableCache, chain_of
from tollway.store.static import StaticCache
from tollway.tree import store as tree_store
from tollway.tree.model import Node

LEVELS = LevelCache()  # each tariff's name, currency and rate table, shared by every chain that uses it

_ACCOUNTS: StaticCache[str, Node | None] = StaticCache("accounts by login")
_NODES: StaticCache[int, Node | None] = StaticCache("nodes by id")
_CHAINS: StaticCache[int, tuple[Node, ...]] = StaticCache("chains of owners")
_RATED: StaticCache[int, Chain] = StaticCache("rated chains")
_SWITCHES: StaticCache[int, tuple[int, str, str | None] | None] = StaticCache("switches by API key")
_TRUSTED: StaticCache[int, bool] = StaticCache("switches trusted with durations")


def account(connection: Connection, login: str) -> Node | None:
    """The node of ``login``, or None."""
    if "\x00" in login:
        return None
    return _ACCOUNTS.get(connection, login, lambda c, key: tree_store.find_node(c, key))


def node(connection: Connection, node_id: int) -> Node | None:
    return _NODES.get(connection, node_id, lambda c, key: tree_store.get_node(c, key))


def nodes_by_id(connection: Connection, ids: Iterable[int]) -> dict[int, Node]:
    """The nodes of ``ids`` that exist, by id."""
    found = {node_id: node(connection, node_id) for node_id in set(ids)}
    return {node_id: value for node_id, value in found.items() if value is not None}


def chain(connection: Connection, account: Node) -> tuple[Node, ...]:
    """The account and its owners up to the provider."""
    return _CHAINS.get(connection, account.id, lambda c, _: tuple(tree_store.chain(c, account)))


def rated(connection: Connection, account: Node, nodes: Sequence[Node], tables: TableCache) -> Chain:
    """The levels that pay for a call of ``account``, with its dial plan and plan (``NoTariff`` if one has none)."""
    return _RATED.get(
        connection, account.id, lambda c, _: chain_of(c, account, tables=tables, nodes=nodes, levels=LEVELS)
    )


def switch_for_key(connection: Connection, api_key_id: int) -> tuple[int, str, str | None] | None:
    """(id, notify kind, notify url) of the switch that authenticates with this API key."""
    return _SWITCHES.get(connection, api_key_id, store.switch_for_key)


def trusts_durations(connection: Connection, switch_id: int | None) -> bool:
    """Whether the switch's reported durations are charged as they are (a trusted switch)."""
    if switch_id is None:
        return False
    return _TRUSTED.get(connection, switch_id, store.switch_trusts_durations)


def clear() -> None:
    """Forget everything (tests that rebuild a database under the same engine)."""
    for cache in (_ACCOUNTS, _NODES, _CHAINS, _RATED, _SWITCHES, _TRUSTED):
        cache.clear()
    LEVELS.clear()
