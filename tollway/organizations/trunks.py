"""Wholesale trunks recognised by the address their calls come from.

A wholesale client (a carrier or a PBX sending calls as a trunk) lists the networks it sends from; a switch
asks which account a call from an address is (``POST /sip/trunk``), and the account pays as any other. One
network belongs to one trunk, and no two trunks' networks overlap, so an address names one account at
most. The longest network holding the address would win, but overlaps are refused when set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.access.model import Action, Decision, Principal, authorize, decide, place_of
from tollway.clock import utc_now
from tollway.errors import Refusal
from tollway.organizations import store
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType

TRUNK_NETWORKS_MAX = 20
Network = store.IPNetwork


def check_networks(networks: Sequence[str]) -> list[Network]:
    if len(networks) > TRUNK_NETWORKS_MAX:
        raise Refusal("networks_too_many", f"a trunk sends from at most {TRUNK_NETWORKS_MAX} networks")
    checked: list[Network] = []
    for text in networks:
        try:
            network = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError:
            raise Refusal(
                "network_invalid", f"{text!r} is not a network such as 198.51.100.0/24 or 192.0.2.7"
            ) from None
        if network.is_unspecified or network.prefixlen < (8 if network.version == 4 else 32):
            raise Refusal("network_too_wide", f"{network} is wider than a trunk sends from")
        checked.append(network)
    for index, network in enumerate(checked):
        if any(network.overlaps(other) for other in checked[index + 1 :] if other.version == network.version):
            raise Refusal("networks_overlap", f"{network} overlaps another network of the list")
    return checked


def set_networks(
    database: Database, *, login: str, networks: Sequence[str], principal: Principal | None = None
) -> list[str]:
    """Replace the networks a wholesale client sends its calls from (an owner's action)."""
    checked = check_networks(networks)
    now = utc_now()

    def use_case(connection: Connection) -> list[str]:
        node = tree.require_node(connection, login, lock=True)
        authorize(principal, Action.NODE_UPDATE, node)
        if node.position.client_type is not ClientType.WHOLESALE:
            raise Refusal("not_a_trunk", "only a wholesale client sends calls as a trunk")
        others = [(owner, net) for owner, net in store.trunk_networks(connection) if owner != node.id]
        for network in checked:
            clash = next((net for _, net in others if net.version == network.version and net.overlaps(network)), None)
            if clash is not None:
                raise Refusal("network_taken", f"{network} overlaps {clash}, another trunk's")
        before = store.networks_of_trunk(connection, node.id)
        store.replace_trunk_networks(connection, node.id, [str(n) for n in checked], now=now)
        after = [str(network) for network in checked]
        audit(
            connection,
            principal,
            action="trunk.networks",
            target_type="node",
            target_id=node.login,
            node=node,
            before={"networks": before},
            after={"networks": after},
        )
        return after

    return database.run(use_case)


def get_networks(database: Database, *, login: str, principal: Principal | None = None) -> list[str]:
    with database.reading() as connection:
        node = tree.require_node(connection, login)
        authorize(principal, Action.NODE_READ, node)
        return store.networks_of_trunk(connection, node.id)


def trunk_for(database: Database, *, address: str, principal: Principal | None = None) -> str | None:
    """The login of the trunk whose networks hold ``address``, if the switch may serve it."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    with database.reading() as connection:
        holders = [
            (net.prefixlen, owner)
            for owner, net in store.trunk_networks(connection)
            if net.version == ip.version and ip in net
        ]
        if not holders:
            return None
        node = tree_store.get_node(connection, max(holders)[1])
    if node is None:
        return None
    if principal is not None and decide(principal, Action.CALLS_CONTROL, place_of(node)) is not Decision.ALLOWED:
        return None
    return node.login
