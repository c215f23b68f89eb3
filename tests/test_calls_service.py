"""Credit control through the whole chain, on SQLite and PostgreSQL, with amounts worked out by hand.

The world (tests/calls_world.py): alice -> north-city (L1) -> atlas-north (L2) -> atlas (L3) -> house.
A call to the UK costs, at each level's own tariff:
  alice       0.10 a minute, per second              60 s: 100,000 µ   95 s: 158,334 µ
  north-city  0.06 a minute, in 6-second steps        60 s:  60,000 µ   95 s (96):  96,000 µ
  atlas-north 0.05 a minute, by the minute            60 s:  50,000 µ   95 s (120): 100,000 µ
  atlas       0.04 a minute + 0.05 to connect         60 s:  90,000 µ   95 s: 113,334 µ
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from tests.calls_world import UK, available, balance, build_world, micros
from tollway import metrics
from tollway.access import service as access
from tollway.balances import service as balances
from tollway.calls import keeper
from tollway.calls import service as calls
from tollway.calls.service import CallRequest, CallSettings
from tollway.errors import NotFound, Refusal
from tollway.rating import subscriptions
from tollway.rating.loading import TABLES
from tollway.rating.plans import Period
from tollway.store.database import Database
from tollway.store.schema import subscriptions as subscriptions_table
from tollway.store.schema import transfers
from tollway.tree import service as tree
from tollway.tree.model import Status

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
LEVELS = ("alice", "north-city", "atlas-north", "atlas")
MINUTE = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=120)


@pytest.fixture(autouse=True)
def _fresh_tables() -> None:
    TABLES.clear()
    calls.LEVELS.clear()


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def call(
    database: Database, call_id: str, account: str = "alice", *, answered: bool = True, **kw: Any
) -> dict[str, Any]:
    settings = kw.pop("settings", MINUTE)
    request = CallRequest(call_id, account, "+1 555 0100", kw.pop("callee", UK), answered=answered)
    return calls.authorize_call(
        database, request, settings=settings, now=kw.pop("now", NOW), principal=kw.pop("principal", None)
    )


def availables(database: Database) -> list[int]:
    return [available(database, login) for login in LEVELS]


def charges(view: dict[str, Any]) -> list[int]:
    return [line["amount_micros"] for line in view["charges"]]


# -- how long a call may last ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tight", "amount", "seconds"),
    [
        ("alice", "0.20", 120),  # 0.20 at 0.10 a minute, per second
        ("north-city", "0.10", 96),  # 100 s of money, but in 6 s steps 102 s would cost 0.102: 96
        ("atlas-north", "0.10", 120),  # two whole minutes at 0.05; 121 s bills three
        ("atlas", "0.10", 75),  # 0.05 to connect leaves 0.05: 75 s at 0.04 a minute
    ],
)
def test_the_longest_call_is_the_least_every_level_can_pay_and_names_that_level(
    database: Database, tight: str, amount: str, seconds: int
) -> None:
    build_world(database, balances_of={tight: amount})
    answer = call(database, "c1", settings=CallSettings())
    assert answer == {
        "call_id": "c1",
        "status": "authorized",
        "max_seconds": seconds,
        "grant_seconds": seconds,  # the quota (600 s) is longer: one grant is the whole call
        "final": True,
        "limited_by": tight,
    }


def test_an_accounts_own_longest_call_caps_what_its_money_would_allow(database: Database) -> None:
    build_world(database)
    tree.set_limits(database, login="alice", clients_limit=None, concurrent_calls_limit=None, max_call_seconds=90)
    assert call(database, "c1")["max_seconds"] == 90
    assert call(database, "c1")["limited_by"] is None


# -- refusals: why, and which level -----------------------------------------------------------------


def test_refusals_say_why_which_level_and_the_sip_code(database: Database) -> None:
    build_world(database, balances_of={"atlas-north": "0"})
    refused = call(database, "broke")
    assert refused == {
        "call_id": "broke",
        "status": "refused",
        "reason": "insufficient_funds",
        "level": "atlas-north",
        "sip_code": 402,
        "message": f"atlas-north cannot pay for a call to {UK}",
    }
    assert call(database, "nobody", "mallory")["reason"] == "account_unknown"
    assert call(database, "nobody", "mallory")["sip_code"] == 404
    no_rate = call(database, "tokyo", callee="+81 3 1234 5678")
    assert (no_rate["reason"], no_rate["level"], no_rate["sip_code"]) == ("no_rate", "alice", 404)
    assert call(database, "bad-number", callee="hello")["reason"] == "number_invalid"
    tree.set_status(database, login="north-city", status=Status.SUSPENDED)
    suspended = call(database, "suspended")
    assert (suspended["reason"], suspended["level"], suspended["sip_code"]) == ("account_suspended", "north-city", 403)
    assert availables(database)[0] == micros("10")  # nothing reserved by any refusal


def test_concurrent_call_limits_hold_per_account_and_per_reseller_subtree(database: Database) -> None:
    build_world(database)
    tree.set_limits(database, login="alice", clients_limit=None, concurrent_calls_limit=1)
    tree.set_limits(database, login="atlas-north", clients_limit=None, concurrent_calls_limit=2)
    assert call(database, "a1")["status"] == "authorized"
    assert (call(database, "a2")["reason"], call(database, "a2")["level"]) == ("concurrent_calls_limit", "alice")
    assert call(database, "b1", "bob")["status"] == "authorized"
    assert call(database, "b2", "bob")["level"] == "atlas-north"  # two calls below atlas-north already
    calls.end_call(database, "a1", duration_seconds=10, now=at(10))
    assert call(database, "b3", "bob")["status"] == "authorized"


# -- grants: reserved a quota at a time at every level ---------------------------------------------


def test_a_grant_reserves_one_quota_at_every_level_and_the_keeper_extends_it(database: Database) -> None:
    build_world(database)
    before = availables(database)
    answer = call(database, "c1")
    assert (answer["grant_seconds"], answer["final"]) == (60, False)
    reserved = [b - a for b, a in zip(before, availables(database), strict=True)]
    assert reserved == [100_000, 60_000, 50_000, 90_000]
    assert calls.extend_due(database, settings=MINUTE, now=at(20)) == 0  # 40 s left: not yet
    assert calls.extend_due(database, settings=MINUTE, now=at(31)) == 1  # 29 s left: one more minute
    reserved = [b - a for b, a in zip(before, availables(database), strict=True)]
    assert reserved == [200_000, 120_000, 100_000, 130_000]  # what 120 s cost at each level
    view = calls.end_call(database, "c1", duration_seconds=95, now=at(95))
    assert charges(view) == [158_334, 96_000, 100_000, 113_334]
    assert [b - a for b, a in zip(before, availables(database), strict=True)] == charges(view)


def test_a_level_that_cannot_fund_a_whole_quota_gets_what_it_can_and_the_call_is_then_pushed_off(
    database: Database,
) -> None:
    build_world(database, balances_of={"atlas-north": "0.15"})  # three minutes at 0.05
    received: list[dict[str, Any]] = []
    with jsonrpc_switch(received) as url:
        _, key = calls.create_switch(database, name="sbc-1", node_login="house", notify_kind="jsonrpc", notify_url=url)
        switch = access.login_with_api_key(database, plaintext=key)
        assert call(database, "alice-1", principal=switch)["max_seconds"] == 180
        # bob's two calls take the other two minutes of atlas-north's money.
        assert call(database, "bob-1", "bob", principal=switch)["status"] == "authorized"
        assert call(database, "bob-2", "bob", principal=switch)["status"] == "authorized"
        assert available(database, "atlas-north") == 0
        # bob-2's one minute was all atlas-north could give it: final from the start, the switch's timeout ends it.
        assert calls.extend_due(database, settings=MINUTE, now=at(31)) == 2
        view = calls.get_call(database, "alice-1")
        assert (view["grant_seconds"], view["final"], view["reason"], view["level"]) == (
            60,
            True,
            "insufficient_funds",
            "atlas-north",
        )
        assert view["disconnect"] == "due"
        assert keeper.push_disconnects(database, now=at(59)) == 0  # not before the grant ends
        assert keeper.push_disconnects(database, now=at(60)) == 2
    assert {r["params"]["call_id"] for r in received} == {"alice-1", "bob-1"}
    assert received[0]["method"] == "tollway.disconnect"
    assert (received[0]["params"]["reason"], received[0]["params"]["level"]) == ("insufficient_funds", "atlas-north")
    ended = calls.end_call(database, "alice-1", duration_seconds=60, reason="disconnected", now=at(60))
    assert charges(ended) == [100_000, 60_000, 50_000, 90_000]
    assert ended["disconnect"] == "sent"
    for other in ("bob-1", "bob-2"):
        calls.end_call(database, other, duration_seconds=60, now=at(60))
    assert balance(database, "atlas-north") == 0  # three minutes, exactly what it had; never below


def test_a_top_up_reversed_mid_call_leaves_the_call_its_grant_and_then_ends_it(database: Database) -> None:
    build_world(database, balances_of={"alice": "1"})
    call(database, "c1")  # 0.10 of alice's 1.00 reserved for the first minute
    balances.adjust(database, login="alice", amount_micros=-micros("0.90"), reason="chargeback", transfer_id="cb-1")
    assert available(database, "alice") == 0  # all that is left is what the call holds
    assert calls.extend_due(database, settings=MINUTE, now=at(31)) == 1
    view = calls.get_call(database, "c1")
    assert (view["grant_seconds"], view["final"], view["level"], view["disconnect"]) == (60, True, "alice", "due")
    assert charges(calls.end_call(database, "c1", duration_seconds=60, now=at(60))) == [100_000, 60_000, 50_000, 90_000]
    assert balance(database, "alice") == 0


def test_an_interim_update_extends_the_grant_and_a_repeat_gets_the_first_answer(database: Database) -> None:
    build_world(database)
    call(database, "c1")
    first = calls.update_call(database, "c1", sequence=1, elapsed_seconds=40, settings=MINUTE, now=at(40))
    assert (first["grant_seconds"], first["final"]) == (120, False)
    # A switch that sends updates is extended by its updates only: if it goes silent, its calls get no more.
    assert calls.extend_due(database, settings=MINUTE, now=at(100)) == 0
    assert calls.update_call(database, "c1", sequence=1, elapsed_seconds=40, settings=MINUTE, now=at(101)) == first
    assert calls.update_call(database, "c1", sequence=2, elapsed_seconds=101, settings=MINUTE)["grant_seconds"] == 180


# -- the end: exact charges, overshoot, idempotency -------------------------------------------------


def test_a_trusted_switchs_call_longer_than_its_grant_is_charged_in_full_and_the_overshoot_recorded(
    database: Database,
) -> None:
    build_world(database)
    _, key = calls.create_switch(database, name="own-sbc", node_login="house", trusted_durations=True)
    switch = access.login_with_api_key(database, plaintext=key)
    tree.set_limits(database, login="alice", clients_limit=None, concurrent_calls_limit=None, max_call_seconds=60)
    assert call(database, "c1", principal=switch)["final"] is True
    view = calls.end_call(database, "c1", duration_seconds=95, principal=switch, settings=MINUTE, now=at(95))
    assert (view["overshoot_seconds"], view["overshoot_reason"], view["duration_seconds"]) == (35, None, 95)
    assert charges(view) == [158_334, 96_000, 100_000, 113_334]
    # Past the 60 s reservation: 58,334 / 36,000 / 50,000 / 23,334 charged beyond it.
    assert [line["overshoot_micros"] for line in view["charges"]] == [58_334, 36_000, 50_000, 23_334]


def test_a_duration_past_the_grant_by_more_than_the_margin_is_charged_the_grant_and_flagged(
    database: Database,
) -> None:
    build_world(database)
    tree.set_limits(database, login="alice", clients_limit=None, concurrent_calls_limit=None, max_call_seconds=60)
    before = availables(database)
    assert call(database, "c1")["final"] is True
    flagged = metrics.sample(metrics.CALL_OVERSHOOTS, reason="beyond_grant")
    view = calls.end_call(database, "c1", duration_seconds=95, settings=MINUTE, now=at(95))
    # 95 s reported for a 60 s grant, past the 5 s margin: the 60 s granted (and reserved) are charged.
    assert (view["duration_seconds"], view["reported_duration_seconds"]) == (60, 95)
    assert (view["overshoot_seconds"], view["overshoot_reason"]) == (35, "beyond_grant")
    assert charges(view) == [100_000, 60_000, 50_000, 90_000]
    assert [line["overshoot_micros"] for line in view["charges"]] == [0, 0, 0, 0]
    assert [b - a for b, a in zip(before, availables(database), strict=True)] == [100_000, 60_000, 50_000, 90_000]
    assert metrics.sample(metrics.CALL_OVERSHOOTS, reason="beyond_grant") == flagged + 1


def test_a_duration_within_the_margin_past_the_grant_is_charged_as_reported(database: Database) -> None:
    build_world(database)
    tree.set_limits(database, login="alice", clients_limit=None, concurrent_calls_limit=None, max_call_seconds=60)
    call(database, "c1")
    view = calls.end_call(database, "c1", duration_seconds=63, settings=MINUTE, now=at(63))
    # A switch's timer runs a little late: 3 s past the grant, within the margin, charged as an overshoot.
    assert (view["duration_seconds"], view["overshoot_seconds"], view["overshoot_reason"]) == (63, 3, None)
    # alice 0.10/min per second: 105,000; north-city 6 s steps: 66 s, 66,000; atlas-north 2 minutes; atlas.
    assert charges(view) == [105_000, 66_000, 100_000, 92_000]
    assert [line["overshoot_micros"] for line in view["charges"]] == [5_000, 6_000, 50_000, 2_000]


def test_a_duration_longer_than_the_time_since_the_answer_is_flagged_and_never_charged_past_the_grant(
    database: Database,
) -> None:
    build_world(database)
    call(database, "c1", settings=CallSettings())  # a 600 s grant
    call(database, "c2", settings=CallSettings())
    # Ten seconds after the answer, a switch says 50 s: the grant covers it, it is charged, and flagged.
    early = calls.end_call(database, "c1", duration_seconds=50, now=at(10))
    assert (early["duration_seconds"], early["overshoot_seconds"], early["overshoot_reason"]) == (
        50,
        0,
        "beyond_wall_clock",
    )
    # One second after the answer, a switch says 20,000 s: at most the 600 s granted are charged.
    wild = calls.end_call(database, "c2", duration_seconds=20_000, now=at(1))
    assert (wild["duration_seconds"], wild["reported_duration_seconds"], wild["overshoot_reason"]) == (
        600,
        20_000,
        "beyond_grant",
    )


def test_a_prepaid_balance_cannot_be_pushed_below_its_floor_by_a_long_reported_call(database: Database) -> None:
    build_world(database, balances_of={"alice": "0.20"})  # 120 s at 0.10 a minute
    authorized = call(database, "c1")
    assert (authorized["max_seconds"], authorized["grant_seconds"]) == (120, 60)
    view = calls.end_call(database, "c1", duration_seconds=20_000, settings=MINUTE, now=at(1))
    assert (view["duration_seconds"], view["overshoot_reason"]) == (60, "beyond_grant")
    assert balance(database, "alice") == micros("0.10")
    assert available(database, "alice") >= 0


def test_an_update_whose_elapsed_time_cannot_be_true_is_flagged_on_the_call(database: Database) -> None:
    build_world(database)
    call(database, "c1")
    calls.update_call(database, "c1", sequence=1, elapsed_seconds=500, settings=MINUTE, now=at(2))
    assert calls.get_call(database, "c1")["overshoot_reason"] == "beyond_grant"
    ended = calls.end_call(database, "c1", duration_seconds=30, settings=MINUTE, now=at(30))
    # The end itself is believable and charged as reported; the call keeps the mark its update earned.
    assert (ended["duration_seconds"], ended["overshoot_reason"]) == (30, "beyond_grant")


def test_repeated_requests_answer_the_first_answer_and_charge_once(database: Database) -> None:
    build_world(database)
    first = call(database, "c1")
    assert call(database, "c1", now=at(5)) == first
    ended = calls.end_call(database, "c1", duration_seconds=95, now=at(95))
    after = availables(database)
    assert calls.end_call(database, "c1", duration_seconds=95, now=at(96)) == ended
    assert calls.end_call(database, "c1", duration_seconds=300, now=at(97)) == ended  # the first end stands
    assert call(database, "c1", now=at(98)) == first
    assert availables(database) == after
    with pytest.raises(NotFound):
        calls.end_call(database, "never-authorized", duration_seconds=1)


def test_an_unanswered_call_costs_nothing_and_releases_its_reservation(database: Database) -> None:
    build_world(database)
    before = availables(database)
    call(database, "ringing", answered=False)
    assert availables(database) != before
    view = calls.end_call(database, "ringing", duration_seconds=0, reason="no_answer", now=at(20))
    assert charges(view) == [0, 0, 0, 0]
    assert availables(database) == before


def test_a_bad_call_id_or_duration_is_refused_before_anything_happens(database: Database) -> None:
    build_world(database)
    for bad in ("has space", "a/b", "50%", "", "x" * 129):
        with pytest.raises(Refusal) as bad_id:
            call(database, bad)
        assert bad_id.value.reason == "call_id_invalid"
    assert call(database, "resellers-make-no-calls", "north-city")["reason"] == "account_not_rated"
    call(database, "c1")
    with pytest.raises(Refusal) as bad_duration:
        calls.end_call(database, "c1", duration_seconds=-1)
    assert bad_duration.value.reason == "duration_invalid"


# -- stale calls and blocked accounts ---------------------------------------------------------------


def test_the_sweeper_closes_silent_calls_charging_what_was_granted(database: Database) -> None:
    build_world(database)
    before = availables(database)
    call(database, "silent")
    call(database, "never-answered", answered=False)
    assert calls.sweep_stale(database, settings=MINUTE, now=at(89)) == 0  # 60 s granted + 30 s margin: not yet
    assert calls.sweep_stale(database, settings=MINUTE, now=at(90)) == 1
    silent = calls.get_call(database, "silent")
    assert (silent["status"], silent["end_reason"], silent["duration_seconds"]) == ("ended", "stale", 60)
    assert charges(silent) == [100_000, 60_000, 50_000, 90_000]
    assert calls.sweep_stale(database, settings=MINUTE, now=at(151)) == 1  # rang 120 s + 30 s margin
    unanswered = calls.get_call(database, "never-answered")
    assert (unanswered["end_reason"], charges(unanswered)) == ("unanswered", [0, 0, 0, 0])
    assert [b - a for b, a in zip(before, availables(database), strict=True)] == [100_000, 60_000, 50_000, 90_000]
    # The switch reports the end late: the first close stands, nothing is charged twice.
    assert charges(calls.end_call(database, "silent", duration_seconds=200, now=at(200))) == charges(silent)


def test_a_suspended_reseller_ends_the_calls_below_it_at_once(database: Database) -> None:
    build_world(database)
    call(database, "c1")
    tree.set_status(database, login="atlas-north", status=Status.SUSPENDED)
    assert calls.flag_blocked(database, now=at(30)) == 1
    assert calls.flag_blocked(database, now=at(31)) == 0  # flagged once
    view = calls.get_call(database, "c1")
    assert (view["reason"], view["level"], view["disconnect"], view["grant_seconds"]) == (
        "account_suspended",
        "atlas-north",
        "due",
        30,  # the grant shrinks to the time talked: a switch that never answers is charged up to here
    )
    assert calls.sweep_stale(database, settings=MINUTE, now=at(61)) == 1
    assert charges(calls.get_call(database, "c1")) == [50_000, 30_000, 50_000, 70_000]


# -- plans ------------------------------------------------------------------------------------------


def test_plan_seconds_are_reserved_with_the_call_and_used_before_money(database: Database) -> None:
    build_world(database)
    subscriptions.create_plan(
        database,
        owner_login="north-city",
        name="uk-2",
        fee_micros=0,
        period=Period.MONTH,
        included_seconds=120,
        prefixes=("44",),
        rollover=False,
    )
    subscriptions.subscribe(database, login="alice", plan_name="north-city:uk-2")
    call(database, "c1")  # the first minute comes out of the plan: no money reserved at alice's level
    assert seconds_left(database) == 60
    call(database, "c2")  # so does the second call's
    assert seconds_left(database) == 0
    calls.update_call(database, "c1", sequence=1, elapsed_seconds=40, settings=MINUTE, now=at(40))  # to 120 s
    view = calls.end_call(database, "c1", duration_seconds=95, now=at(95))
    # c1 holds 60 plan seconds, and the plan has none left: 35 s paid, 0.10 a minute.
    assert (view["charges"][0]["plan_seconds"], view["charges"][0]["amount_micros"]) == (60, 58_334)
    assert charges(view)[1:] == [96_000, 100_000, 113_334]  # owners pay as always
    calls.end_call(database, "c2", duration_seconds=20, now=at(20))
    assert seconds_left(database) == 40  # c2 used 20 of its 60


def seconds_left(database: Database) -> int:
    with database.reading() as connection:
        return int(connection.execute(select(subscriptions_table.c.seconds_left)).scalar_one())


def test_no_reservation_outlives_its_call(database: Database) -> None:
    build_world(database)
    for index in range(5):
        call(database, f"c{index}", answered=index % 2 == 0)
    calls.extend_due(database, settings=MINUTE, now=at(31))
    calls.sweep_stale(database, settings=MINUTE, now=at(3600))
    with database.reading() as connection:
        pendings = set(connection.execute(select(transfers.c.id).where(transfers.c.phase == "pending")).scalars())
        resolved = set(
            connection.execute(select(transfers.c.pending_id).where(transfers.c.pending_id.is_not(None))).scalars()
        )
    assert pendings and pendings == resolved


# -- a JSON-RPC switch on loopback --------------------------------------------------------------------


class _Switch(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.received.append(body)
        answer = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": "ok"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


class jsonrpc_switch:
    def __init__(self, received: list[dict[str, Any]]) -> None:
        handler = type("Handler", (_Switch,), {"received": received})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
