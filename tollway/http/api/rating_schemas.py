"""What the rating endpoints read and write. Prices travel as decimal strings, never as JSON numbers."""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field

from tollway.http.api.schemas import Login, PositiveAmount, Strict
from tollway.money import to_decimal, to_micros
from tollway.rating.chain import Charge
from tollway.rating.plans import Period, Plan, Subscription, SubscriptionStatus
from tollway.rating.rates import WeeklyWindow
from tollway.rating.tariff import Derivation, RateEntry, Tariff

TariffName = Annotated[str, Field(min_length=1, max_length=60, examples=["retail"])]
Seconds = Annotated[int, Field(ge=0, le=86_400)]
Multiplier = Annotated[str, Field(pattern=r"^[0-9]{1,4}(\.[0-9]{1,6})?$", examples=["1.15"])]
Addition = Annotated[str, Field(pattern=r"^-?[0-9]{1,6}(\.[0-9]{1,6})?$", examples=["0.002"])]
Digits = Annotated[str, Field(pattern=r"^[0-9]{1,20}$", examples=["4420"])]


class TariffIn(Strict):
    owner: Login
    name: TariffName = Field(description="the tariff is known as <owner>:<name>")
    currency: Annotated[str | None, Field(pattern=r"^[A-Z]{3}$")] = None
    time_zone: Annotated[str | None, Field(max_length=64)] = None
    minimal_time: Seconds = 0
    resolution: Annotated[int, Field(ge=1, le=86_400)] = 1
    grace_period: Seconds = 0
    base: Annotated[str | None, Field(max_length=128, description="follow this tariff (derived tariff)")] = None
    multiplier: Multiplier = "1"
    addition: Addition = Field("0", description="per minute, added after the multiplier")

    def derivation(self) -> Derivation | None:
        return None if self.base is None else Derivation(Decimal(self.multiplier), to_micros(self.addition))


class TariffUpdate(Strict):
    time_zone: Annotated[str | None, Field(max_length=64)] = None
    minimal_time: Seconds | None = None
    resolution: Annotated[int | None, Field(ge=1, le=86_400)] = None
    grace_period: Seconds | None = None
    multiplier: Multiplier | None = None
    addition: Addition | None = None


class TariffOut(BaseModel):
    name: str
    currency: str
    time_zone: str
    minimal_time: int
    resolution: int
    grace_period: int
    base: str | None = None
    multiplier: Decimal | None = None
    addition: Decimal | None = None
    rows: int | None = Field(None, description="rows of its own (a derived tariff's overrides)")

    @classmethod
    def of(cls, tariff: Tariff, *, base: str | None = None, rows: int | None = None) -> TariffOut:
        d = tariff.derivation
        return cls(
            name=tariff.name,
            currency=tariff.currency,
            time_zone=tariff.time_zone,
            minimal_time=tariff.defaults.minimal_time,
            resolution=tariff.defaults.resolution,
            grace_period=tariff.defaults.grace_period,
            base=base,
            multiplier=None if d is None else d.multiplier,
            addition=None if d is None else to_decimal(d.addition_micros),
            rows=rows,
        )


class TariffPage(BaseModel):
    items: list[TariffOut]
    next_after_id: int | None


class RateIn(Strict):
    description: Annotated[str, Field(max_length=200)] = ""
    price: PositiveAmount = Field(description="per minute")
    connect_fee: PositiveAmount = "0"
    minimal_time: Seconds | None = Field(None, description="null: the tariff's default")
    resolution: Annotated[int | None, Field(ge=1, le=86_400)] = None
    grace_period: Seconds | None = None
    free_seconds: Seconds = 0
    from_day: Annotated[int, Field(ge=0, le=6, description="0 = Monday")] = 0
    to_day: Annotated[int, Field(ge=0, le=6)] = 6
    from_time: time = time(0)
    to_time: time | None = Field(None, description="exclusive; null: the end of the day")
    valid_from: datetime | None = Field(None, description="inclusive, with an offset")
    valid_to: datetime | None = Field(None, description="exclusive, with an offset")

    def entry(self, prefix: str) -> RateEntry:
        return RateEntry(
            prefix=prefix,
            description=self.description,
            price_micros=to_micros(self.price),
            connect_fee_micros=to_micros(self.connect_fee),
            minimal_time=self.minimal_time,
            resolution=self.resolution,
            grace_period=self.grace_period,
            free_seconds=self.free_seconds,
            window=WeeklyWindow(self.from_day, self.to_day, self.from_time, self.to_time),
            valid_from=self.valid_from,
            valid_to=self.valid_to,
        )


class RateOut(BaseModel):
    id: int
    prefix: str
    description: str
    price: Decimal
    connect_fee: Decimal
    minimal_time: int | None
    resolution: int | None
    grace_period: int | None
    free_seconds: int
    from_day: int
    to_day: int
    from_time: time
    to_time: time | None
    valid_from: datetime | None
    valid_to: datetime | None

    @classmethod
    def of(cls, row_id: int, e: RateEntry) -> RateOut:
        return cls(
            id=row_id,
            prefix=e.prefix,
            description=e.description,
            price=to_decimal(e.price_micros),
            connect_fee=to_decimal(e.connect_fee_micros),
            minimal_time=e.minimal_time,
            resolution=e.resolution,
            grace_period=e.grace_period,
            free_seconds=e.free_seconds,
            from_day=e.window.from_day,
            to_day=e.window.to_day,
            from_time=e.window.from_time,
            to_time=e.window.to_time,
            valid_from=e.valid_from,
            valid_to=e.valid_to,
        )


class RatePage(BaseModel):
    items: list[RateOut]
    next_after_id: int | None


class RowsOut(BaseModel):
    rows: int


class SheetProblem(BaseModel):
    line: int
    reason: str
    message: str


class AssignTariffIn(Strict):
    tariff: Annotated[str, Field(max_length=128, examples=["north-city:retail"])]


class DialPlanIn(Strict):
    country_code: Annotated[str, Field(pattern=r"^([1-9][0-9]{0,2})?$")] = ""
    international_prefix: Annotated[str, Field(pattern=r"^[0-9]{0,4}$")] = "00"
    national_prefix: Annotated[str, Field(pattern=r"^[0-9]{0,2}$")] = "0"


class QuoteIn(Strict):
    number: Annotated[str, Field(min_length=1, max_length=40, examples=["011 44 20 7946 0000"])]
    duration: Annotated[int, Field(ge=0, le=604_800)] = 60
    start: datetime | None = Field(None, description="with an offset; default: now")


class ChargeOut(BaseModel):
    account: str
    tariff: str
    currency: str
    prefix: str
    description: str
    price: Decimal
    billed_seconds: int
    plan_seconds: int
    amount: Decimal

    @classmethod
    def of(cls, c: Charge) -> ChargeOut:
        return cls(
            account=c.account,
            tariff=c.tariff,
            currency=c.currency,
            prefix=c.prefix,
            description=c.description,
            price=to_decimal(c.price_micros),
            billed_seconds=c.billed_seconds,
            plan_seconds=c.plan_seconds,
            amount=to_decimal(c.amount_micros),
        )


class QuoteOut(BaseModel):
    number: str = Field(description="the dialed number as E.164 digits")
    charges: list[ChargeOut] = Field(description="one per level you may see, the account's first")


class PlanIn(Strict):
    owner: Login
    name: TariffName
    fee: PositiveAmount
    period: Period = Period.MONTH
    included_minutes: Annotated[int, Field(ge=0, le=166_666)] = 0
    prefixes: Annotated[list[Digits], Field(default_factory=list, max_length=1000)]
    rollover: bool = False


class PlanOut(BaseModel):
    name: str
    currency: str
    fee: Decimal
    period: Period
    included_minutes: Decimal
    prefixes: list[str]
    rollover: bool

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        return cls(
            name=plan.name,
            currency=plan.currency,
            fee=to_decimal(plan.fee_micros),
            period=plan.period,
            included_minutes=Decimal(plan.included_seconds) / 60,
            prefixes=list(plan.prefixes),
            rollover=plan.rollover,
        )


class PlanPage(BaseModel):
    items: list[PlanOut]
    next_after_id: int | None


class SubscribeIn(Strict):
    plan: Annotated[str, Field(max_length=128, examples=["north-city:talk-100"])]


class SubscriptionOut(BaseModel):
    plan: PlanOut
    status: SubscriptionStatus
    status_reason: str | None = Field(None, description="why it is suspended or ended, e.g. plan_unpaid")
    seconds_left: int
    period_start: datetime
    period_end: datetime | None = Field(
        None, description="when the next fee is due; for a plan suspended for its fee, when it is tried again"
    )

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionOut:
        return cls(
            plan=PlanOut.of(subscription.plan),
            status=subscription.status,
            status_reason=subscription.status_reason,
            seconds_left=subscription.seconds_left,
            period_start=subscription.period_start,
            period_end=subscription.period_end,
        )
