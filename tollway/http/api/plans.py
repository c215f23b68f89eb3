"""Plans: a fee per period and included minutes, given by an owner to its clients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tollway.http.api.nodes import ERRORS
from tollway.http.api.rating_schemas import PlanIn, PlanOut, PlanPage, SubscribeIn, SubscriptionOut
from tollway.http.api.schemas import PAGE_SIZE_DEFAULT, AfterId, Login, PageSize
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.money import to_micros
from tollway.rating import subscriptions

router = APIRouter(tags=["plans"], responses=ERRORS)  # type: ignore[arg-type]


@router.get("/plans", summary="The plans a node made")
def list_plans(
    owner: Login,
    database: DatabaseDep,
    principal: PrincipalDep,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    after_id: Annotated[AfterId, Query()] = 0,
) -> PlanPage:
    plans = subscriptions.list_plans(database, owner_login=owner, limit=limit, after_id=after_id, principal=principal)
    return PlanPage(
        items=[PlanOut.of(plan) for _, plan in plans], next_after_id=plans[-1][0] if len(plans) == limit else None
    )


@router.post("/plans", status_code=201, summary="Create a plan for your clients")
def create_plan(body: PlanIn, database: DatabaseDep, principal: PrincipalDep) -> PlanOut:
    plan = subscriptions.create_plan(
        database,
        owner_login=body.owner,
        name=body.name,
        fee_micros=to_micros(body.fee),
        period=body.period,
        included_seconds=body.included_minutes * 60,
        prefixes=tuple(body.prefixes),
        rollover=body.rollover,
        principal=principal,
    )
    return PlanOut.of(plan)


@router.put(
    "/nodes/{login}/plan",
    summary="Give a client of yours one of your plans",
    description="Charges the first period's fee at once; a client who cannot pay it is refused (plan_unpaid).",
)
def subscribe(login: str, body: SubscribeIn, database: DatabaseDep, principal: PrincipalDep) -> SubscriptionOut:
    return SubscriptionOut.of(subscriptions.subscribe(database, login=login, plan_name=body.plan, principal=principal))


@router.get("/nodes/{login}/plans", summary="A client's plans, their periods and the seconds they have left")
def plans_of(login: str, database: DatabaseDep, principal: PrincipalDep) -> list[SubscriptionOut]:
    return [
        SubscriptionOut.of(subscription)
        for subscription in subscriptions.subscriptions_of(database, login=login, principal=principal)
    ]
