"""Use cases on plans, their subscriptions and accounts' dial plans; each runs in one transaction.

A plan belongs to the provider or a reseller, like a tariff, is named ``<owner>:<name>`` and is given
to the owner's own clients in their currency. A subscription starts with the plan's included seconds
and its first period's fee, charged as it is made; the fees of the periods after it are charged by the
recurring-charges scheduler (``tollway.rating.renewals``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.access.model import Action, Principal, authorize, hidden_from
from tollway.balances.service import account_id
from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal
from tollway.ledger.model import AccountPurpose
from tollway.money import check_currency, format_amount
from tollway.rating import store
from tollway.rating.dialplan import DialPlan
from tollway.rating.plans import Period, Plan, Subscription, SubscriptionStatus, period_end
from tollway.rating.renewals import charge_fee, fee_request
from tollway.rating.tariff import tariff_name
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Feature, Node, NodeKind, check_feature_granted
from tollway.tree.service import require_node


def create_plan(
    database: Database,
    *,
    owner_login: str,
    name: str,
    fee_micros: int,
    period: Period,
    included_seconds: int,
    prefixes: tuple[str, ...] = (),
    rollover: bool = False,
    currency: str | None = None,
    principal: Principal | None = None,
) -> Plan:
    def use_case(connection: Connection) -> Plan:
        owner = require_node(connection, owner_login)
        authorize(principal, Action.TARIFFS_WRITE, owner)
        if owner.position.kind not in (NodeKind.PROVIDER, NodeKind.RESELLER):
            raise Refusal("plan_owner_invalid", "only the provider and resellers make plans")
        check_feature_granted(owner.grants, Feature.PLANS)
        full_name = tariff_name(owner.login, name)
        if store.find_plan(connection, full_name) is not None:
            raise Refusal("plan_exists", f"plan {full_name} already exists")
        plan = Plan(
            full_name,
            check_currency(currency or owner.currency),
            fee_micros,
            period,
            included_seconds,
            tuple(sorted(set(prefixes))),
            rollover,
        )
        store.insert_plan(connection, owner_id=owner.id, plan=plan, now=utc_now())
        audit(
            connection,
            principal,
            action="plan.create",
            target_type="plan",
            target_id=plan.name,
            node=owner,
            after={"fee_micros": fee_micros, "period": str(period), "included_seconds": included_seconds},
        )
        return plan

    return database.run(use_case)


def list_plans(
    database: Database, *, owner_login: str, limit: int, after_id: int = 0, principal: Principal | None = None
) -> list[tuple[int, Plan]]:
    with database.reading() as connection:
        owner = require_node(connection, owner_login)
        authorize(principal, Action.TARIFFS_READ, owner)
        return [
            (plan_id, plan) for plan_id, _, plan in store.plans_of(connection, owner.id, limit=limit, after_id=after_id)
        ]


def _readable_plan(connection: Connection, name: str, principal: Principal | None) -> tuple[int, Plan, Node]:
    """(id, plan, owner) of a plan the principal may read (its owner's tariffs and plans); else not found."""
    found = store.find_plan(connection, name)
    owner = None if found is None else tree_store.get_node(connection, found[1])
    if found is None or owner is None:
        raise NotFound("plan", name)
    try:
        authorize(principal, Action.TARIFFS_READ, owner)
    except NotFound:
        raise NotFound("plan", name) from None
    return found[0], found[2], owner


def get_plan(database: Database, *, name: str, principal: Principal | None = None) -> tuple[Plan, Node]:
    """A plan and its owner, for whoever may read the owner's tariffs and plans."""
    with database.reading() as connection:
        _, plan, owner = _readable_plan(connection, name, principal)
        return plan, owner


def subscribers_of(
    database: Database, *, name: str, limit: int, principal: Principal | None = None
) -> list[tuple[Node, Subscription]]:
    """The accounts that hold a plan (active or suspended), with their subscription, for its owner's readers."""
    with database.reading() as connection:
        plan_id, _, _ = _readable_plan(connection, name, principal)
        held = store.subscribers_of(connection, plan_id, limit=limit)
        nodes = tree_store.nodes_by_id(connection, [subscription.node_id for subscription in held])
        return [(nodes[s.node_id], s) for s in held if not hidden_from(principal, nodes[s.node_id])]


def subscribe(
    database: Database,
    *,
    login: str,
    plan_name: str,
    principal: Principal | None = None,
    now: datetime | None = None,
) -> Subscription:
    """An owner gives one of its clients one of its plans, from now, with its included seconds.

    The first period's fee is charged at once, in the same transaction: a client who cannot pay it
    gets no plan (``plan_unpaid``). A monthly plan is anchored on the day it starts, in UTC.
    """
    instant = (now or utc_now()).replace(microsecond=0)
    return database.run(
        lambda connection: subscribe_in(connection, login=login, plan_name=plan_name, principal=principal, now=instant)
    )


def subscribe_in(
    connection: Connection, *, login: str, plan_name: str, principal: Principal | None, now: datetime
) -> Subscription:
    """``subscribe`` inside the caller's transaction (a shop payment that buys a plan confirms and subscribes
    in one), at ``now``, a whole second."""
    instant = now.replace(microsecond=0)
    node = require_node(connection, login, lock=True)
    authorize(principal, Action.NODE_UPDATE, node)
    found = store.find_plan(connection, plan_name)
    seller = None if found is None else tree_store.get_node(connection, found[1])
    if found is None or seller is None or hidden_from(principal, seller):
        raise NotFound("plan", plan_name)  # another tenant's plan: exactly as one that does not exist
    plan_id, owner_id, plan = found
    if node.position.kind is not NodeKind.CLIENT:
        raise Refusal("plan_not_assignable", "plans are given to clients")
    if owner_id != node.parent_id:
        raise Refusal("plan_not_owners", f"{plan.name} does not belong to {login}'s owner")
    if plan.currency != node.currency:
        raise Refusal("currency_mismatch", f"{plan.name} is in {plan.currency}, {login} in {node.currency}")
    held = store.subscriptions_of(connection, [node.id])
    if any(subscription.status is not SubscriptionStatus.ENDED for subscription in held):
        raise Refusal("plan_exists", f"{login} already has a plan")
    end = period_end(plan.period, instant)
    subscription_id = store.insert_subscription(
        connection,
        node_id=node.id,
        plan_id=plan_id,
        period_start=instant,
        period_end=end,
        seconds_left=plan.included_seconds,
        now=instant,
    )
    request = fee_request(
        subscription_id,
        plan,
        instant,
        wallet_id=account_id(connection, node, AccountPurpose.WALLET),
        revenue_id=account_id(connection, seller, AccountPurpose.REVENUE, plan.currency),
    )
    if not charge_fee(connection, request, now=instant):
        fee = format_amount(plan.fee_micros, plan.currency)
        raise Refusal("plan_unpaid", f"{login} cannot pay the first fee of {plan.name}, {fee}")
    audit(
        connection,
        principal,
        action="plan.subscribe",
        target_type="node",
        target_id=node.login,
        node=node,
        after={
            "plan": plan.name,
            "amount_micros": plan.fee_micros,
            "period_start": instant.isoformat(),
            "period_end": end.isoformat(),
            "transfer": request.id if plan.fee_micros else None,
        },
    )
    return Subscription(
        id=subscription_id,
        node_id=node.id,
        plan_id=plan_id,
        plan_owner_id=owner_id,
        plan=plan,
        status=SubscriptionStatus.ACTIVE,
        period_start=instant,
        period_end=end,
        seconds_left=plan.included_seconds,
    )


def subscriptions_of(database: Database, *, login: str, principal: Principal | None = None) -> list[Subscription]:
    """An account's subscriptions: plan, status (and why), period, seconds left."""
    with database.reading() as connection:
        node = require_node(connection, login)
        authorize(principal, Action.TARIFFS_READ, node)
        return store.subscriptions_of(connection, [node.id])


def set_dial_plan(database: Database, *, login: str, plan: DialPlan, principal: Principal | None = None) -> DialPlan:
    """An owner sets how an account's dialed numbers become E.164 (its children inherit it)."""

    def use_case(connection: Connection) -> DialPlan:
        node = require_node(connection, login, lock=True)
        authorize(principal, Action.NODE_UPDATE, node)
        before = store.dial_plans_of(connection, [node.id]).get(node.id)
        store.set_dial_plan(connection, node.id, plan)
        audit(
            connection,
            principal,
            action="node.dial_plan",
            target_type="node",
            target_id=node.login,
            node=node,
            before=None if before is None else _dial_plan_summary(before),
            after=_dial_plan_summary(plan),
        )
        return plan

    return database.run(use_case)


def _dial_plan_summary(plan: DialPlan) -> dict[str, str]:
    return {
        "country_code": plan.country_code,
        "international_prefix": plan.international_prefix,
        "national_prefix": plan.national_prefix,
    }
