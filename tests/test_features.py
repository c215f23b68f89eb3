"""A reseller's features: every one is enforced."""

from __future__ import annotations

import pytest

from tollway.branding import service as branding
from tollway.branding.service import BrandChanges
from tollway.cards import service as cards
from tollway.cards.model import BatchTerms
from tollway.errors import Refusal
from tollway.payments import service as shop
from tollway.rating import service as rating
from tollway.rating import subscriptions
from tollway.rating.plans import Period
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import (
    AGENT,
    ALL_CLIENT_TYPES,
    FEATURES_AVAILABLE,
    FEATURES_COMING,
    Feature,
    Grants,
    reseller,
)
from tollway.tree.service import NewNode


def reseller_selling(database: Database, features: set[Feature]) -> None:
    tree.create_provider(database, login="house", name="The House", currency="USD")
    grants = Grants(ALL_CLIENT_TYPES, frozenset(features))
    tree.create_node(database, owner_login="house", new=NewNode(reseller(1), login="shop", name="Shop", grants=grants))


def refusal_of(action: object) -> str:
    with pytest.raises(Refusal) as refused:
        action()  # type: ignore[operator]
    return refused.value.reason


def make_agent(database: Database) -> None:
    tree.create_node(database, owner_login="shop", new=NewNode(AGENT, login="shop-agent", name="Agent"))


def make_tariff(database: Database) -> None:
    rating.create_tariff(database, owner_login="shop", name="retail")


def make_plan(database: Database) -> None:
    subscriptions.create_plan(
        database, owner_login="shop", name="talk", fee_micros=1_000_000, period=Period.MONTH, included_seconds=600
    )


def make_shop(database: Database) -> None:
    shop.configure_bank_transfer(database, seller_login="shop", details={"account_holder": "Shop", "iban": "DE89"})


def make_brand(database: Database) -> None:
    branding.set_brand(database, None, login="shop", changes=BrandChanges(name="Shop Voice"))


def make_cards(database: Database) -> None:
    terms = BatchTerms(name="shop-cards", count=1, face_value_micros=5_000_000)
    cards.create_batch(database, owner_login="shop", terms=terms, pin_key=b"test pin key")


MAKERS = {
    Feature.CALLING_CARDS: make_cards,
    Feature.AGENTS: make_agent,
    Feature.TARIFFS: make_tariff,
    Feature.PLANS: make_plan,
    Feature.ONLINE_SHOP: make_shop,
    Feature.BRANDED_PORTAL: make_brand,
}


def test_the_features_that_exist_and_those_coming() -> None:
    assert set(MAKERS) == FEATURES_AVAILABLE
    assert set() == FEATURES_COMING
    assert set(Feature) == FEATURES_AVAILABLE | FEATURES_COMING


@pytest.mark.parametrize("feature", sorted(FEATURES_AVAILABLE))
def test_a_reseller_without_a_feature_may_not_sell_it(database: Database, feature: Feature) -> None:
    reseller_selling(database, set(Feature) - {feature})
    assert refusal_of(lambda: MAKERS[feature](database)) == "feature_not_granted"
    for other in FEATURES_AVAILABLE - {feature}:
        MAKERS[other](database)  # the others it may


def test_a_reseller_granted_every_feature_sells_all_that_exist(database: Database) -> None:
    reseller_selling(database, set(Feature))
    for make in MAKERS.values():
        make(database)
