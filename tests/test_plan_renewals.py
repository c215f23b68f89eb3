"""Recurring charges on SQLite and PostgreSQL: plan fees at the start of each period, exactly once.

The world is tests/calls_world.py: alice and bob are north-city's clients (10.00 USD each unless told
otherwise); alice pays north-city 0.10 a minute to the UK, per second. The plan north-city:uk costs
3.000000 USD a month (1.000000 a day for the daily one) and includes 120 s to 44. Every fee leaves the
client's wallet for north-city's revenue account, as transfer ``plan:<subscription>:<period start>``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.calls_world import UK, balance, build_world, micros
from tests.processes import START_SECONDS_MAX, race
from tests.test_cli import tollway
from tollway.balances import service as balances
from tollway.balances.service import account_id
from tollway.calls import service as calls
from tollway.calls.service import CallRequest, CallSettings
from tollway.clock import utc_now
from tollway.errors import Refusal
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose
from tollway.rating import renewals, subscriptions
from tollway.rating import store as rating_store
from tollway.rating.loading import TABLES
from tollway.rating.plans import PLAN_UNPAID, Period, Subscription, SubscriptionStatus
from tollway.rating.renewals import RenewalOutcome, renew_due
from tollway.store.database import Database
from tollway.store.schema import audit_log, transfers
from tollway.store.schema import subscriptions as subscriptions_table
from tollway.tree import service as tree
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, NodeKind, Position, Status

JAN_31 = datetime(2026, 1, 31, 10, 30, tzinfo=UTC)  # a month anchored on the 31st
FEB_28 = datetime(2026, 2, 28, 10, 30, tzinfo=UTC)
MAR_31 = datetime(2026, 3, 31, 10, 30, tzinfo=UTC)
APR_30 = datetime(2026, 4, 30, 10, 30, tzinfo=UTC)
MINUTE = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=120)
FEE = 3_000_000
DAILY_FEE = 1_000_000


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    TABLES.clear()
    calls.LEVELS.clear()


def uk_plan(database: Database, *, period: Period = Period.MONTH, rollover: bool = False, name: str = "uk") -> str:
    subscriptions.create_plan(
        database,
        owner_login="north-city",
        name=name,
        fee_micros=FEE if period is Period.MONTH else DAILY_FEE,
        period=period,
        included_seconds=120,
        prefixes=("44",),
        rollover=rollover,
    )
    return f"north-city:{name}"


def plan_of(database: Database, login: str = "alice") -> Subscription:
    (subscription,) = subscriptions.subscriptions_of(database, login=login)
    return subscription


def fees(database: Database) -> list[tuple[str, int]]:
    """Every plan fee in the ledger: (transfer id, amount)."""
    with database.reading() as connection:
        rows = connection.execute(
            select(transfers.c.id, transfers.c.amount_micros)
            .where(transfers.c.kind == "subscription")
            .order_by(transfers.c.created_at, transfers.c.id)
        )
        return [(row.id, row.amount_micros) for row in rows]


def revenue(database: Database, login: str) -> int:
    with database.reading() as connection:
        node = tree_store.find_node(connection, login)
        assert node is not None
        account = ledger_store.get_account(connection, account_id(connection, node, AccountPurpose.REVENUE))
        assert account is not None
        return account.balance_micros


def audited(database: Database, action: str) -> list[str]:
    with database.reading() as connection:
        rows = connection.execute(select(audit_log.c.target_id).where(audit_log.c.action == action))
        return [row.target_id for row in rows]


def outcomes(report: renewals.RenewalReport) -> list[tuple[str, str, int]]:
    return [(r.login, str(r.outcome), r.amount_micros) for r in report.renewals]


def call(database: Database, call_id: str, at: datetime, *, account: str = "alice") -> dict[str, Any]:
    request = CallRequest(call_id, account, "+1 555 0100", UK, answered=True)
    calls.authorize_call(database, request, settings=MINUTE, now=at)
    view = calls.get_call(database, call_id)
    charge: dict[str, Any] = view["charges"][0]
    return charge


# -- subscribing --------------------------------------------------------------------------------


def test_subscribing_charges_the_first_fee_and_a_rerun_at_the_same_instant_charges_nothing(
    database: Database,
) -> None:
    build_world(database)
    plan = uk_plan(database)
    made = subscriptions.subscribe(database, login="alice", plan_name=plan, now=JAN_31 + timedelta(microseconds=7))
    assert (made.period_start, made.period_end, made.seconds_left) == (JAN_31, FEB_28, 120)
    # 10.000000 - 3.000000 = 7.000000, and north-city earned the 3.000000.
    assert balance(database, "alice") == 7_000_000
    assert revenue(database, "north-city") == FEE
    assert fees(database) == [(f"plan:{made.id}:20260131T103000Z", FEE)]
    assert plan_of(database) == made
    for instant in (JAN_31, FEB_28 - timedelta(seconds=1)):
        report = renew_due(database, now=instant)
        assert (report.renewals, report.more) == ((), False)
    assert balance(database, "alice") == 7_000_000 and len(fees(database)) == 1


def test_a_client_who_cannot_pay_the_first_fee_gets_no_plan_and_pays_nothing(database: Database) -> None:
    build_world(database, balances_of={"alice": "2.999999"})
    plan = uk_plan(database)
    with pytest.raises(Refusal) as refused:
        subscriptions.subscribe(database, login="alice", plan_name=plan, now=JAN_31)
    assert refused.value.reason == "plan_unpaid" and "3.000000 USD" in refused.value.message
    assert subscriptions.subscriptions_of(database, login="alice") == []
    assert balance(database, "alice") == 2_999_999 and fees(database) == []
    assert audited(database, "plan.subscribe") == []


def test_a_plan_with_no_fee_charges_nothing_but_its_periods_still_roll(database: Database) -> None:
    build_world(database)
    subscriptions.create_plan(
        database, owner_login="north-city", name="free", fee_micros=0, period=Period.DAY, included_seconds=60
    )
    subscriptions.subscribe(database, login="alice", plan_name="north-city:free", now=JAN_31)
    report = renew_due(database, now=JAN_31 + timedelta(days=1))
    assert outcomes(report) == [("alice", "renewed", 0)] and report.renewals[0].transfer_id is None
    assert plan_of(database).period_end == JAN_31 + timedelta(days=2)
    assert fees(database) == [] and balance(database, "alice") == 10_000_000


# -- renewing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("rollover", "seconds_after"), [(False, 120), (True, 190)])
def test_a_period_is_charged_once_at_its_end_and_its_seconds_start_again(
    database: Database, rollover: bool, seconds_after: int
) -> None:
    build_world(database)
    subscriptions.subscribe(database, login="alice", plan_name=uk_plan(database, rollover=rollover), now=JAN_31)
    assert call(database, "c1", JAN_31 + timedelta(hours=1))["plan_seconds_reserved"] == 60
    calls.end_call(database, "c1", duration_seconds=50, now=JAN_31 + timedelta(hours=1, seconds=50))
    assert plan_of(database).seconds_left == 70  # 50 s from the plan, nothing in money
    assert balance(database, "alice") == 7_000_000

    report = renew_due(database, now=FEB_28)
    assert outcomes(report) == [("alice", "renewed", FEE)]
    renewed = report.renewals[0]
    assert (renewed.period_start, renewed.period_end) == (FEB_28, MAR_31)
    assert renewed.transfer_id == f"plan:{renewed.subscription_id}:20260228T103000Z"
    # Without rollover the period starts with its 120 s; with it, 120 + the 70 left.
    renewed_plan = plan_of(database)
    assert (renewed_plan.period_start, renewed_plan.period_end) == (FEB_28, MAR_31)
    assert (renewed_plan.status, renewed_plan.seconds_left) == (SubscriptionStatus.ACTIVE, seconds_after)
    assert balance(database, "alice") == 4_000_000  # 7.000000 - 3.000000

    for instant in (FEB_28, FEB_28 + timedelta(days=1)):
        assert renew_due(database, now=instant).renewals == ()
    assert balance(database, "alice") == 4_000_000
    assert [amount for _, amount in fees(database)] == [FEE, FEE]
    assert audited(database, "plan.renew") == ["alice"]


def test_a_month_anchored_on_the_31st_is_charged_on_the_28th_of_february_then_on_the_31st_again(
    database: Database,
) -> None:
    build_world(database)
    made = subscriptions.subscribe(database, login="alice", plan_name=uk_plan(database), now=JAN_31)
    for instant in (FEB_28, MAR_31):
        assert outcomes(renew_due(database, now=instant)) == [("alice", "renewed", FEE)]
    assert (plan_of(database).period_start, plan_of(database).period_end) == (MAR_31, APR_30)
    assert [transfer for transfer, _ in fees(database)] == [
        f"plan:{made.id}:20260131T103000Z",
        f"plan:{made.id}:20260228T103000Z",
        f"plan:{made.id}:20260331T103000Z",
    ]
    assert balance(database, "alice") == 1_000_000  # 10 - 3 x 3.000000


def test_a_client_who_cannot_pay_loses_the_plan_not_the_account_until_a_top_up_resumes_it(
    database: Database,
) -> None:
    build_world(database, balances_of={"alice": "4"})
    made = subscriptions.subscribe(database, login="alice", plan_name=uk_plan(database), now=JAN_31)
    assert balance(database, "alice") == 1_000_000  # 4.000000 - 3.000000: not enough for the next period

    report = renew_due(database, now=FEB_28)
    assert outcomes(report) == [("alice", "suspended", FEE)]
    assert [(r.login, r.plan) for r in report.of(RenewalOutcome.SUSPENDED)] == [("alice", "north-city:uk")]
    suspended = plan_of(database)
    assert (suspended.status, suspended.status_reason, suspended.seconds_left) == (
        SubscriptionStatus.SUSPENDED,
        PLAN_UNPAID,
        0,
    )
    assert (suspended.period_start, suspended.period_end) == (FEB_28, FEB_28 + timedelta(minutes=5))
    assert audited(database, "plan.suspend") == ["alice"]
    assert balance(database, "alice") == 1_000_000  # nothing charged
    assert tree.effective_status(database, login="alice") is Status.ACTIVE  # the account is untouched

    # Credit control no longer uses the plan: the first minute is reserved in money, 0.10 a minute.
    charge = call(database, "c1", FEB_28 + timedelta(minutes=1))
    assert (charge["plan_seconds_reserved"], charge["reserved_micros"]) == (0, 100_000)
    ended = calls.end_call(database, "c1", duration_seconds=30, now=FEB_28 + timedelta(minutes=1, seconds=30))
    assert (ended["charges"][0]["plan_seconds"], ended["charges"][0]["amount_micros"]) == (0, 50_000)
    assert balance(database, "alice") == 950_000  # 1.000000 - 0.050000

    assert renew_due(database, now=FEB_28 + timedelta(minutes=4)).renewals == ()  # not tried again yet
    retried = renew_due(database, now=FEB_28 + timedelta(minutes=5))
    assert outcomes(retried) == [("alice", "unpaid", FEE)]  # still unpaid: tried again in 5 minutes
    assert plan_of(database).period_end == FEB_28 + timedelta(minutes=10)
    assert audited(database, "plan.suspend") == ["alice"]  # a failed retry changes nothing worth recording

    balances.topup(database, login="alice", amount_micros=micros("5"), transfer_id="alice-more")
    resume_at = datetime(2026, 3, 1, 9, 0, 0, 500_000, tzinfo=UTC)
    resumed = renew_due(database, now=resume_at)
    assert outcomes(resumed) == [("alice", "resumed", FEE)]
    # A new period from now, anchored on the 1st of March, with the plan's 120 s and no rollover.
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    active = plan_of(database)
    assert (active.status, active.status_reason, active.seconds_left) == (SubscriptionStatus.ACTIVE, None, 120)
    assert (active.period_start, active.period_end) == (start, datetime(2026, 4, 1, 9, 0, tzinfo=UTC))
    assert fees(database)[-1] == (f"plan:{made.id}:20260301T090000Z", FEE)
    assert balance(database, "alice") == 2_950_000  # 0.950000 + 5.000000 - 3.000000
    assert renew_due(database, now=resume_at).renewals == ()  # charged once
    assert balance(database, "alice") == 2_950_000
    assert audited(database, "plan.resume") == ["alice"]
    assert call(database, "c2", resume_at + timedelta(minutes=1))["plan_seconds_reserved"] == 60  # in use again


def test_a_scheduler_that_was_down_charges_each_missed_period_in_order_up_to_the_first_unpaid(
    database: Database,
) -> None:
    build_world(database, balances_of={"bob": "3.5"})
    plan = uk_plan(database, period=Period.DAY, rollover=True, name="uk-daily")
    alice = subscriptions.subscribe(database, login="alice", plan_name=plan, now=JAN_31)
    bob = subscriptions.subscribe(database, login="bob", plan_name=plan, now=JAN_31)
    later = JAN_31 + timedelta(days=3, hours=1)  # three periods began while no scheduler ran

    first = renew_due(database, now=later, limit=2)  # a bounded run stops and says there is more
    assert (outcomes(first), first.more) == ([("alice", "renewed", DAILY_FEE)] * 2, True)
    rest = renew_due(database, now=later)
    assert outcomes(rest) == [
        ("alice", "renewed", DAILY_FEE),  # alice's third missed day
        ("bob", "renewed", DAILY_FEE),  # bob: 3.5 - 1 at subscribing = 2.5; day 2: 1.5; day 3: 0.5
        ("bob", "renewed", DAILY_FEE),
        ("bob", "suspended", DAILY_FEE),  # day 4 unpaid: the catch-up stops there
    ]
    assert rest.more is False
    day = timedelta(days=1)
    assert [r.period_start for r in first.renewals + rest.renewals] == [
        JAN_31 + day,
        JAN_31 + 2 * day,
        JAN_31 + 3 * day,
        JAN_31 + day,
        JAN_31 + 2 * day,
        JAN_31 + 3 * day,
    ]
    caught_up = plan_of(database, "alice")
    # Rollover, at most one period's worth: 120 -> 240 -> 240 -> 240.
    assert (caught_up.period_start, caught_up.period_end, caught_up.seconds_left) == (
        JAN_31 + 3 * day,
        JAN_31 + 4 * day,
        240,
    )
    assert balance(database, "alice") == 6_000_000  # 10 - 4 days
    assert balance(database, "bob") == 500_000
    assert (plan_of(database, "bob").status, plan_of(database, "bob").period_start) == (
        SubscriptionStatus.SUSPENDED,
        JAN_31 + 3 * day,
    )
    assert len([t for t, _ in fees(database) if t.startswith(f"plan:{alice.id}:")]) == 4
    assert len([t for t, _ in fees(database) if t.startswith(f"plan:{bob.id}:")]) == 3
    assert renew_due(database, now=later).renewals == ()


def test_a_subscription_made_before_fees_were_charged_pays_once_for_the_period_it_is_in(
    database: Database,
) -> None:
    build_world(database)
    uk_plan(database)
    jan_10 = datetime(2026, 1, 10, 10, 0, 0, 250, tzinfo=UTC)
    with database.transaction() as connection:  # as the code before recurring charges made them
        plan_id = rating_store.find_plan(connection, "north-city:uk")
        assert plan_id is not None
        for login in ("alice", "bob"):
            node = tree_store.find_node(connection, login)
            assert node is not None
            rating_store.insert_subscription(
                connection,
                node_id=node.id,
                plan_id=plan_id[0],
                period_start=jan_10,
                period_end=None,
                seconds_left=100,
                now=jan_10,
            )
    # Still in its first period: that period, from its own start; the 100 s it has stand.
    first = renew_due(database, now=datetime(2026, 1, 20, tzinfo=UTC))
    assert outcomes(first) == [("alice", "renewed", FEE), ("bob", "renewed", FEE)]
    assert (plan_of(database).period_start, plan_of(database).period_end) == (jan_10, jan_10.replace(month=2))
    assert plan_of(database).seconds_left == 100
    assert fees(database)[0] == ("plan:1:20260110T100000Z", FEE)
    assert renew_due(database, now=datetime(2026, 1, 20, tzinfo=UTC)).renewals == ()
    assert balance(database, "alice") == 7_000_000


def test_a_closed_accounts_plan_ends_instead_of_being_charged(database: Database) -> None:
    build_world(database, balances_of={"alice": "3"})
    subscriptions.subscribe(database, login="alice", plan_name=uk_plan(database), now=JAN_31)
    tree.set_status(database, login="alice", status=Status.CLOSED)  # its balance is 0 after the fee
    assert outcomes(renew_due(database, now=FEB_28)) == [("alice", "ended", 0)]
    ended = plan_of(database)
    assert (ended.status, ended.status_reason) == (SubscriptionStatus.ENDED, "account_closed")
    assert renew_due(database, now=MAR_31).renewals == ()
    assert len(fees(database)) == 1 and audited(database, "plan.end") == ["alice"]


def test_the_command_renews_what_is_due_and_sums_it_up(database: Database) -> None:
    build_world(database, balances_of={"bob": "1"})
    plan = uk_plan(database, period=Period.DAY, name="uk-daily")
    yesterday = utc_now() - timedelta(days=1, hours=1)
    for login in ("alice", "bob"):  # bob's 1.000000 pays only the first day
        subscriptions.subscribe(database, login=login, plan_name=plan, now=yesterday)
    renewed = tollway("plan", "renew", url=database.url)
    assert renewed.returncode == 0, renewed.stderr
    rows = [line.split() for line in renewed.stdout.splitlines()]
    # piped, so plain columns (a table only on a terminal it fits)
    assert ["renewed", "1", "1.000000", "USD"] in rows
    assert ["suspended", "1", "1.000000", "USD"] in rows
    assert ["bob", "north-city:uk-daily", "1.000000", "USD"] in rows
    assert tollway("plan", "renew", url=database.url).stdout.strip() == "nothing due"
    assert balance(database, "alice") == 8_000_000 and balance(database, "bob") == 0


# -- several schedulers at once -----------------------------------------------------------------


def test_a_plan_another_transaction_holds_is_left_to_it_and_taken_by_the_next_run(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite has no row locks: its one writer at a time already serializes every renewal")
    build_world(database)
    made = subscriptions.subscribe(database, login="alice", plan_name=uk_plan(database), now=JAN_31)
    with database.engine.connect() as holder, holder.begin():
        holder.execute(select(subscriptions_table.c.id).where(subscriptions_table.c.id == made.id).with_for_update())
        held = renew_due(database, now=FEB_28)
        assert (held.renewals, held.busy, held.more) == ((), 1, False)
    assert outcomes(renew_due(database, now=FEB_28)) == [("alice", "renewed", FEE)]
    assert balance(database, "alice") == 4_000_000


RACE_CLIENTS = 8
RACE_WORKERS = 3


def _renew_in_process(start: Any, results: Any, index: int, url: str, now: datetime) -> None:
    database = Database(url, pool_size=1)
    try:
        database.ping()
        start.wait(timeout=START_SECONDS_MAX)
        report = renew_due(database, now=now)
        results.put((index, sorted(r.transfer_id or "" for r in report.renewals)))
    except BaseException as error:
        results.put((index, [f"error: {error!r}"]))
    finally:
        database.dispose()


def _race_world(database: Database) -> tuple[str, datetime]:
    build_world(database)
    plan = uk_plan(database, period=Period.DAY, name="uk-daily")
    for number in range(RACE_CLIENTS):
        login = f"client-{number}"
        new = tree.NewNode(position=Position(NodeKind.CLIENT, client_type=ClientType.RETAIL), login=login, name=login)
        tree.create_node(database, owner_login="north-city", new=new)
        balances.topup(database, login=login, amount_micros=micros("10"), transfer_id=f"setup-{login}")
        subscriptions.subscribe(database, login=login, plan_name=plan, now=JAN_31)
    return plan, JAN_31 + timedelta(days=2, hours=1)  # two periods due for each


def _check_race(database: Database, charged: Sequence[list[str]]) -> None:
    every = [transfer for worker in charged for transfer in worker]
    assert not [t for t in every if t.startswith("error")], every
    assert len(every) == len(set(every)) == 2 * RACE_CLIENTS  # each period by exactly one scheduler
    assert len(fees(database)) == 3 * RACE_CLIENTS  # the first fees, then two periods each, once
    for number in range(RACE_CLIENTS):
        assert balance(database, f"client-{number}") == 7_000_000  # 10 - 3 x 1.000000


def test_schedulers_in_several_processes_charge_each_period_exactly_once(database: Database) -> None:
    _, later = _race_world(database)
    charged = race(_renew_in_process, [(database.url, later)] * RACE_WORKERS)
    _check_race(database, charged)


def test_schedulers_in_several_threads_charge_each_period_exactly_once(database: Database) -> None:
    _, later = _race_world(database)
    barrier = threading.Barrier(RACE_WORKERS)
    charged: list[list[str]] = [[] for _ in range(RACE_WORKERS)]

    def work(index: int) -> None:
        barrier.wait(timeout=START_SECONDS_MAX)
        charged[index] = [r.transfer_id or "" for r in renew_due(database, now=later).renewals]

    threads = [threading.Thread(target=work, args=(index,)) for index in range(RACE_WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    _check_race(database, charged)
