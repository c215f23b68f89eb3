"""Call ids belong to a tenant: another tenant's switch may use the same id and learns nothing from it.

The world (tests/calls_world.py) plus a second tenant under the provider:
  house -> atlas -> atlas-north -> north-city -> alice     (tenant A: north-city's switch)
  house -> meridian -> zoe                                  (tenant B: meridian's switch)
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.calls_world import UK, build_world, micros
from tollway.access import service as access
from tollway.access.model import Principal
from tollway.balances import service as balances
from tollway.calls import service as calls
from tollway.calls.service import CallRequest, CallSettings
from tollway.errors import NotFound, Refusal
from tollway.rating import service as rating
from tollway.rating.loading import TABLES
from tollway.rating.sheets import Layout
from tollway.store import migrate
from tollway.store.database import Database
from tollway.store.schema import calls as calls_table
from tollway.store.schema import nodes
from tollway.tree import service as tree
from tollway.tree.model import ClientType, NodeKind, Position

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
MINUTE = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=120)


@pytest.fixture(autouse=True)
def _fresh_tables() -> None:
    TABLES.clear()
    calls.LEVELS.clear()


def second_tenant(database: Database) -> None:
    """meridian (L1 under the provider, pays house at house:l3) and its client zoe at 0.10 a minute, per second."""
    tree.create_node(
        database,
        owner_login="house",
        new=tree.NewNode(position=Position(NodeKind.RESELLER, level=1), login="meridian", name="Meridian"),
    )
    tree.create_node(
        database,
        owner_login="meridian",
        new=tree.NewNode(position=Position(NodeKind.CLIENT, client_type=ClientType.RETAIL), login="zoe", name="Zoe"),
    )
    rating.create_tariff(database, owner_login="meridian", name="retail")
    sheet = b"prefix,description,price,connect_fee,minimal_time,resolution\n44,UK,0.10,0,0,1\n"
    rating.import_sheet(database, name="meridian:retail", stream=io.BytesIO(sheet), layout=Layout.NATIVE)
    rating.assign_tariff(database, login="zoe", tariff="meridian:retail")
    rating.assign_tariff(database, login="meridian", tariff="house:l3")
    for login in ("meridian", "zoe"):
        balances.topup(database, login=login, amount_micros=micros("100"), transfer_id=f"setup-{login}")


def switch_of(database: Database, name: str, node: str) -> Principal:
    _, key = calls.create_switch(database, name=name, node_login=node)
    return access.login_with_api_key(database, plaintext=key)


def authorize(database: Database, switch: Principal, call_id: str, account: str) -> dict[str, Any]:
    request = CallRequest(call_id, account, "+1 555 0100", UK, answered=False)
    return calls.authorize_call(database, request, principal=switch, settings=MINUTE, now=NOW)


def without_id(view: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in view.items() if key not in ("call_id", "reference")}


def at(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_a_second_tenant_using_the_same_call_id_gets_its_own_call_and_learns_nothing(database: Database) -> None:
    build_world(database)
    second_tenant(database)
    tenant_a, tenant_b = switch_of(database, "a-sbc", "north-city"), switch_of(database, "b-sbc", "meridian")
    assert authorize(database, tenant_a, "X", "alice")["status"] == "authorized"

    # To B, "X" is a fresh id: every answer is the one it gets for an id nobody used.
    reused = authorize(database, tenant_b, "X", "zoe")
    fresh = authorize(database, tenant_b, "fresh", "zoe")
    assert reused["status"] == "authorized"
    assert without_id(reused) == without_id(fresh)
    # alice is not B's: "X" is as unknown an account to it as with any other id (it was "call_id_taken").
    assert without_id(authorize(database, tenant_b, "X2", "alice")) == without_id(
        authorize(database, tenant_b, "fresh2", "alice")
    )
    for step in (
        lambda call_id: calls.answer_call(database, call_id, principal=tenant_b, now=at(1)),
        lambda call_id: calls.update_call(
            database, call_id, sequence=1, elapsed_seconds=40, principal=tenant_b, settings=MINUTE, now=at(41)
        ),
        lambda call_id: calls.end_call(database, call_id, duration_seconds=60, principal=tenant_b, now=at(61)),
        lambda call_id: calls.get_call(database, call_id, principal=tenant_b),
    ):
        assert without_id(step("X")) == without_id(step("fresh"))
    ended = calls.get_call(database, "X", principal=tenant_b)
    assert (ended["account"], ended["status"], ended["duration_seconds"]) == ("zoe", "ended", 60)

    # A's call X is A's alone, untouched by all of B's: still ringing, and A ends it.
    assert calls.get_call(database, "X", principal=tenant_a)["status"] == "authorized"
    assert calls.end_call(database, "X", duration_seconds=0, principal=tenant_a, now=at(62))["account"] == "alice"


def test_a_switch_controls_only_its_own_tenants_calls(database: Database) -> None:
    build_world(database)
    second_tenant(database)
    tenant_a, tenant_b = switch_of(database, "a-sbc", "north-city"), switch_of(database, "b-sbc", "meridian")
    authorize(database, tenant_a, "X", "alice")
    for other in (tenant_b, switch_of(database, "house-sbc", "house")):
        # Not even the provider's switch, which sees alice's calls, may end a call another switch carries.
        with pytest.raises(NotFound):
            calls.end_call(database, "X", duration_seconds=1, principal=other, now=at(1))


def test_who_sees_several_tenants_calls_finds_one_by_its_id_unless_two_carry_it(database: Database) -> None:
    build_world(database)
    second_tenant(database)
    tenant_a, tenant_b = switch_of(database, "a-sbc", "north-city"), switch_of(database, "b-sbc", "meridian")
    authorize(database, tenant_a, "only-a", "alice")
    authorize(database, tenant_a, "X", "alice")
    authorize(database, tenant_b, "X", "zoe")
    house = switch_of(database, "house-sbc", "house")
    assert calls.get_call(database, "only-a", principal=house)["account"] == "alice"
    with pytest.raises(Refusal) as both:
        calls.get_call(database, "X", principal=house)
    assert both.value.reason == "call_id_ambiguous"
    # Its own tenant's call of that id comes first: the provider's switch uses "X" too.
    authorize(database, house, "X", "zoe")
    assert calls.get_call(database, "X", principal=house)["status"] == "authorized"
    assert calls.end_call(database, "X", duration_seconds=0, principal=house, now=at(1))["account"] == "zoe"


def test_the_migration_gives_existing_calls_the_tenant_of_the_switch_that_authorized_them(database: Database) -> None:
    build_world(database)
    authorize(database, switch_of(database, "a-sbc", "north-city"), "by-switch", "alice")
    calls.authorize_call(database, CallRequest("by-operator", "alice", "+1 555 0100", UK), settings=MINUTE, now=NOW)
    migrate.downgrade(database, "0007")
    migrate.upgrade(database)
    with database.reading() as connection:
        rows = connection.execute(
            select(calls_table.c.call_id, nodes.c.login)
            .join(nodes, nodes.c.id == calls_table.c.tenant_id)
            .order_by(calls_table.c.id)
        ).all()
    assert [tuple(row) for row in rows] == [("by-switch", "north-city"), ("by-operator", "house")]
    assert calls.end_call(database, "by-operator", duration_seconds=0, now=at(1))["status"] == "ended"
