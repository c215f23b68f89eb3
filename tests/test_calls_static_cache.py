"""What credit control caches per process is never stale: a change is seen by the very next call, in every process.

Two engines on one database stand for two `tollway serve` processes: `first` makes calls (and so caches the
chain, the tariffs, the switch and its key), `second` changes something, and `first`'s next call must see it.

The world (tests/calls_world.py): alice -> north-city (L1) -> atlas-north (L2) -> atlas (L3) -> house.
A 60 s call to the UK costs alice 0.10 a minute at north-city:retail: 100,000 µ.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.calls_world import UK, build_world
from tollway.access import service as access
from tollway.access.model import Principal
from tollway.balances import service as balances
from tollway.calls import service as calls
from tollway.calls.service import CallRequest
from tollway.errors import Refusal
from tollway.rating import service as rating
from tollway.rating.dialplan import DialPlan
from tollway.rating.subscriptions import set_dial_plan
from tollway.rating.tariff import RateEntry
from tollway.store.database import Database
from tollway.store.schema import static_versions
from tollway.tree import service as tree
from tollway.tree.model import Status

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def engines(database: Database) -> Iterator[tuple[Database, Database, str]]:
    """(first, second, the switch's API key): two engines on one database, the world built, a switch registered."""
    build_world(database)
    _, key = calls.create_switch(database, name="sbc", node_login="house")
    second = Database(database.url)
    try:
        yield database, second, key
    finally:
        second.dispose()


def setup(database: Database, key: str, call_id: str, *, callee: str = UK, seconds: int = 60) -> dict[str, Any]:
    """A call of alice's as a switch makes it over HTTP: its key checked, authorized answered, ended."""
    switch = access.login_with_api_key(database, plaintext=key)
    request = CallRequest(call_id, "alice", "+1 555 0100", callee, answered=True)
    answer = calls.authorize_call(database, request, principal=switch, now=NOW)
    if answer["status"] != "authorized":
        return answer
    end = NOW + timedelta(seconds=seconds)
    return calls.end_call(database, call_id, duration_seconds=seconds, principal=switch, now=end)


def version(database: Database) -> int:
    with database.reading() as connection:
        return int(connection.execute(select(static_versions.c.version)).scalar_one())


def test_a_tariff_changed_in_another_process_prices_the_next_call(engines: tuple[Database, Database, str]) -> None:
    first, second, key = engines
    assert setup(first, key, "before")["charges"][0]["amount_micros"] == 100_000  # 60 s at 0.10 a minute
    rating.set_prefix(second, name="north-city:retail", prefix="44", entries=[RateEntry("44", "UK", 120_000)])
    after = setup(first, key, "after")
    assert after["charges"][0]["price_micros"] == 120_000
    assert after["charges"][0]["amount_micros"] == 120_000  # 60 s at 0.12 a minute


def test_a_node_suspended_in_another_process_refuses_the_next_call(engines: tuple[Database, Database, str]) -> None:
    first, second, key = engines
    assert setup(first, key, "before")["status"] == "ended"
    tree.set_status(second, login="atlas-north", status=Status.SUSPENDED)
    refused = setup(first, key, "after")
    assert (refused["status"], refused["reason"], refused["level"]) == ("refused", "account_suspended", "atlas-north")
    tree.set_status(second, login="atlas-north", status=Status.ACTIVE)
    assert setup(first, key, "again")["status"] == "ended"


def test_a_tariff_assigned_in_another_process_rates_the_next_call(engines: tuple[Database, Database, str]) -> None:
    first, second, key = engines
    assert setup(first, key, "before")["charges"][0]["tariff"] == "north-city:retail"
    rating.create_tariff(second, owner_login="north-city", name="premium")
    rating.set_prefix(second, name="north-city:premium", prefix="44", entries=[RateEntry("44", "UK", 300_000)])
    rating.assign_tariff(second, login="alice", tariff="north-city:premium")
    after = setup(first, key, "after")
    assert (after["charges"][0]["tariff"], after["charges"][0]["amount_micros"]) == ("north-city:premium", 300_000)


def test_a_dial_plan_set_in_another_process_reads_the_next_number(engines: tuple[Database, Database, str]) -> None:
    first, second, key = engines
    national = "020 7946 0000"  # a London number as dialed in the UK
    assert setup(first, key, "before", callee=national)["reason"] == "no_rate"  # 0207946… is no number priced
    set_dial_plan(second, login="alice", plan=DialPlan("44", "00", "0"))
    after = setup(first, key, "after", callee=national)
    assert (after["status"], after["number"]) == ("ended", "442079460000")


def test_a_key_revoked_in_another_process_is_refused_at_its_next_request(
    engines: tuple[Database, Database, str],
) -> None:
    first, second, key = engines
    switch: Principal = access.login_with_api_key(first, plaintext=key)
    access.revoke_api_key(second, None, key_id=key.split("_")[1])
    with pytest.raises(Refusal) as refused:
        access.login_with_api_key(first, plaintext=key)
    assert refused.value.reason == "api_key_invalid"
    assert switch.api_key_id is not None


def test_a_key_of_a_suspended_node_is_refused_at_its_next_request(database: Database) -> None:
    build_world(database)
    _, key = calls.create_switch(database, name="north", node_login="north-city")
    access.login_with_api_key(database, plaintext=key)
    tree.set_status(database, login="atlas", status=Status.SUSPENDED)  # above the switch's node
    with pytest.raises(Refusal) as refused:
        access.login_with_api_key(database, plaintext=key)
    assert refused.value.reason == "account_blocked"


def test_a_wrong_secret_is_refused_even_after_the_right_key_logged_in(engines: tuple[Database, Database, str]) -> None:
    first, _, key = engines
    access.login_with_api_key(first, plaintext=key)
    with pytest.raises(Refusal) as refused:
        access.login_with_api_key(first, plaintext=key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert refused.value.reason == "api_key_invalid"


def test_calls_and_top_ups_change_nothing_static(engines: tuple[Database, Database, str]) -> None:
    """The version moves only with a change to what is cached: never with the money a call moves."""
    first, second, key = engines
    setup(first, key, "warm")
    before = version(first)
    for number in range(3):
        setup(first, key, f"call-{number}")
    balances.topup(second, login="alice", amount_micros=1_000_000, transfer_id="more")
    assert version(first) == before
    tree.set_status(second, login="bob", status=Status.SUSPENDED)
    assert version(first) > before
