"""The rules of the ownership tree (docs/design.md section 1), without a database."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.errors import Refusal
from tollway.money import AMOUNT_MICROS_MAX
from tollway.tree import model
from tollway.tree.model import (
    AGENT,
    PROVIDER,
    ClientType,
    Feature,
    Grants,
    NodeKind,
    Position,
    Status,
    client,
    reseller,
)

L3 = reseller(3)
L2 = reseller(2)
L1 = reseller(1)
RETAIL = client(ClientType.RETAIL)
PBX = client(ClientType.PBX)
WHOLESALE = client(ClientType.WHOLESALE)
CALLING_CARD = client(ClientType.CALLING_CARD)
CALLSHOP = client(ClientType.CALLSHOP)
USER = client(ClientType.USER)

POSITIONS = {
    "provider": PROVIDER,
    "L3": L3,
    "L2": L2,
    "L1": L1,
    "agent": AGENT,
    "retail": RETAIL,
    "pbx": PBX,
    "wholesale": WHOLESALE,
    "calling_card": CALLING_CARD,
    "callshop": CALLSHOP,
    "user": USER,
}

# Written out by hand from the decided rules, one row per owner, columns in POSITIONS order:
#            provider L3   L2   L1   agent retail pbx  wholesale calling_card callshop user
OWNERSHIP_TABLE = {
    "provider": "no   yes  yes  yes  no    yes    yes  yes       yes          yes      no",
    "L3": "no   no   yes  no   no    no     no   no        no           no       no",
    "L2": "no   no   no   yes  yes   no     yes  no        no           no       no",
    "L1": "no   no   no   no   yes   yes    yes  yes       yes          yes      no",
    "agent": "no   no   no   no   no    no     no   no        no           no       no",
    "retail": "no   no   no   no   no    no     no   no        no           no       no",
    "pbx": "no   no   no   no   no    no     no   no        no           no       yes",
    "wholesale": "no   no   no   no   no    no     no   no        no           no       no",
    "calling_card": "no   no   no   no   no    no     no   no        no           no       no",
    "callshop": "no   no   no   no   no    no     no   no        no           no       no",
    "user": "no   no   no   no   no    no     no   no        no           no       no",
}


def ownership_cases() -> list[tuple[str, str, bool]]:
    cases = []
    for owner, row in OWNERSHIP_TABLE.items():
        answers = row.split()
        assert len(answers) == len(POSITIONS), owner
        for child, answer in zip(POSITIONS, answers, strict=True):
            cases.append((owner, child, answer == "yes"))
    return cases


def test_the_ownership_table_covers_every_pair_of_positions() -> None:
    assert {(owner, child) for owner, child, _ in ownership_cases()} == {(o, c) for o in POSITIONS for c in POSITIONS}
    assert len(ownership_cases()) == 121


@pytest.mark.parametrize(("owner", "child", "allowed"), ownership_cases())
def test_who_may_own_whom(owner: str, child: str, allowed: bool) -> None:
    assert model.may_own(POSITIONS[owner], POSITIONS[child]) is allowed
    if allowed:
        model.check_link(POSITIONS[owner], POSITIONS[child])
    else:
        with pytest.raises(Refusal) as refused:
            model.check_link(POSITIONS[owner], POSITIONS[child])
        assert refused.value.reason == "ownership_refused"


def test_an_agent_belongs_only_to_a_reseller_that_can_own_clients() -> None:
    assert [level for level in (1, 2, 3) if model.may_own(reseller(level), AGENT)] == [1, 2]
    assert not model.may_own(PROVIDER, AGENT)


@pytest.mark.parametrize(
    ("position", "reason"),
    [
        (Position(NodeKind.RESELLER), "level_invalid"),
        (Position(NodeKind.RESELLER, level=0), "level_invalid"),
        (Position(NodeKind.RESELLER, level=4), "level_invalid"),
        (Position(NodeKind.AGENT, level=1), "level_invalid"),
        (Position(NodeKind.CLIENT, level=1, client_type=ClientType.RETAIL), "level_invalid"),
        (Position(NodeKind.CLIENT), "client_type_invalid"),
        (Position(NodeKind.RESELLER, level=1, client_type=ClientType.PBX), "client_type_invalid"),
        (Position(NodeKind.AGENT, client_type=ClientType.RETAIL), "client_type_invalid"),
    ],
)
def test_a_malformed_position_is_refused_whoever_the_owner(position: Position, reason: str) -> None:
    for owner in (PROVIDER, L3, L2, L1):
        with pytest.raises(Refusal) as refused:
            model.check_link(owner, position)
        assert refused.value.reason == reason


def test_a_reseller_without_a_level_is_not_ownable_even_by_the_pure_rule() -> None:
    for owner in (L3, L2, L1):
        assert not model.may_own(owner, Position(NodeKind.RESELLER))


def test_client_types_ownable_before_narrowing() -> None:
    every_type = frozenset(ClientType) - {ClientType.USER}  # users are owned by organizations only
    assert model.client_types_ownable(PROVIDER) == every_type
    assert model.client_types_ownable(L1) == every_type
    assert model.client_types_ownable(L2) == {ClientType.PBX}
    assert model.client_types_ownable(L3) == frozenset()
    assert model.client_types_ownable(AGENT) == frozenset()
    assert model.client_types_ownable(RETAIL) == frozenset()
    assert model.client_types_ownable(PBX) == {ClientType.USER}
    assert every_type == model.ALL_CLIENT_TYPES


def test_a_sub_reseller_may_sell_what_its_owner_sells_or_less() -> None:
    owner = Grants(frozenset({ClientType.RETAIL, ClientType.PBX}), frozenset({Feature.TARIFFS, Feature.AGENTS}))
    model.check_narrowing(owner, owner)
    model.check_narrowing(owner, Grants(frozenset({ClientType.PBX}), frozenset({Feature.AGENTS})))
    model.check_narrowing(owner, Grants(frozenset(), frozenset()))


def test_a_sub_reseller_may_not_sell_a_client_type_its_owner_does_not() -> None:
    owner = Grants(frozenset({ClientType.RETAIL}), frozenset(Feature))
    with pytest.raises(Refusal) as refused:
        model.check_narrowing(owner, Grants(frozenset({ClientType.RETAIL, ClientType.CALLSHOP}), frozenset(Feature)))
    assert refused.value.reason == "client_types_wider_than_owner"
    assert "callshop" in refused.value.message


def test_a_sub_reseller_may_not_sell_a_feature_its_owner_does_not() -> None:
    owner = Grants(frozenset(ClientType), frozenset({Feature.TARIFFS}))
    with pytest.raises(Refusal) as refused:
        model.check_narrowing(owner, Grants(frozenset(ClientType), frozenset({Feature.TARIFFS, Feature.ONLINE_SHOP})))
    assert refused.value.reason == "features_wider_than_owner"
    assert "online_shop" in refused.value.message


@given(
    owner_types=st.frozensets(st.sampled_from(ClientType)),
    owner_features=st.frozensets(st.sampled_from(Feature)),
    child_types=st.frozensets(st.sampled_from(ClientType)),
    child_features=st.frozensets(st.sampled_from(Feature)),
)
def test_narrowing_is_allowed_exactly_when_the_child_grants_are_subsets(
    owner_types: frozenset[ClientType],
    owner_features: frozenset[Feature],
    child_types: frozenset[ClientType],
    child_features: frozenset[Feature],
) -> None:
    is_narrower = child_types <= owner_types and child_features <= owner_features
    try:
        model.check_narrowing(Grants(owner_types, owner_features), Grants(child_types, child_features))
    except Refusal as refusal:
        assert not is_narrower
        assert refusal.reason in {"client_types_wider_than_owner", "features_wider_than_owner"}
    else:
        assert is_narrower


def test_a_client_type_not_granted_to_the_owner_is_refused() -> None:
    owner = Grants(frozenset({ClientType.PBX}), frozenset(Feature))
    model.check_client_type_granted(owner, ClientType.PBX)
    with pytest.raises(Refusal) as refused:
        model.check_client_type_granted(owner, ClientType.RETAIL)
    assert refused.value.reason == "client_type_not_allowed"


def test_the_clients_limit_is_reached_when_the_open_clients_fill_it() -> None:
    model.check_clients_limit(None, 10_000)
    model.check_clients_limit(3, 2)
    for clients_count in (3, 4):
        with pytest.raises(Refusal) as refused:
            model.check_clients_limit(3, clients_count)
        assert refused.value.reason == "clients_limit_reached"
    with pytest.raises(Refusal):
        model.check_clients_limit(0, 0)


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ([], Status.ACTIVE),
        ([Status.ACTIVE], Status.ACTIVE),
        ([Status.ACTIVE, Status.ACTIVE, Status.ACTIVE, Status.ACTIVE, Status.ACTIVE], Status.ACTIVE),
        ([Status.SUSPENDED, Status.ACTIVE, Status.ACTIVE], Status.SUSPENDED),
        ([Status.ACTIVE, Status.ACTIVE, Status.SUSPENDED, Status.ACTIVE], Status.SUSPENDED),
        ([Status.ACTIVE, Status.CLOSED, Status.ACTIVE], Status.CLOSED),
        ([Status.SUSPENDED, Status.CLOSED, Status.ACTIVE], Status.CLOSED),
        ([Status.CLOSED, Status.SUSPENDED, Status.ACTIVE], Status.CLOSED),
    ],
)
def test_a_node_is_as_blocked_as_the_most_blocked_node_on_its_chain(chain: list[Status], expected: Status) -> None:
    assert model.effective_status(chain) is expected


SEVERITY = {Status.ACTIVE: 0, Status.SUSPENDED: 1, Status.CLOSED: 2}


@given(st.lists(st.sampled_from(Status), min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_effective_status_is_the_worst_in_the_chain_whatever_the_order(chain: list[Status], random: Random) -> None:
    shuffled = list(chain)
    random.shuffle(shuffled)
    worst = max(chain, key=SEVERITY.__getitem__)
    assert model.effective_status(chain) is worst
    assert model.effective_status(shuffled) is worst


@given(st.lists(st.sampled_from(Status), max_size=6))
def test_an_active_ancestor_never_unblocks_a_node(chain: list[Status]) -> None:
    assert model.effective_status([*chain, Status.ACTIVE]) is model.effective_status(chain)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.ACTIVE, Status.SUSPENDED),
        (Status.SUSPENDED, Status.ACTIVE),
        (Status.ACTIVE, Status.CLOSED),
        (Status.SUSPENDED, Status.CLOSED),
    ],
)
def test_allowed_status_changes(current: Status, target: Status) -> None:
    model.check_status_change(current, target, open_children=0, balance_micros=0)


@pytest.mark.parametrize("target", list(Status))
def test_a_closed_node_stays_closed(target: Status) -> None:
    with pytest.raises(Refusal) as refused:
        model.check_status_change(Status.CLOSED, target, open_children=0, balance_micros=0)
    assert refused.value.reason == "node_closed"


@pytest.mark.parametrize("status", [Status.ACTIVE, Status.SUSPENDED])
def test_setting_the_status_a_node_already_has_is_refused(status: Status) -> None:
    with pytest.raises(Refusal) as refused:
        model.check_status_change(status, status, open_children=0, balance_micros=0)
    assert refused.value.reason == "status_unchanged"


def test_closing_a_node_with_open_children_is_refused() -> None:
    with pytest.raises(Refusal) as refused:
        model.check_status_change(Status.ACTIVE, Status.CLOSED, open_children=1, balance_micros=0)
    assert refused.value.reason == "node_has_open_children"


@pytest.mark.parametrize("balance_micros", [1, -1, 25_000_000, -25_000_000])
def test_closing_a_node_whose_balance_is_not_zero_is_refused(balance_micros: int) -> None:
    with pytest.raises(Refusal) as refused:
        model.check_status_change(Status.ACTIVE, Status.CLOSED, open_children=0, balance_micros=balance_micros)
    assert refused.value.reason == "balance_not_zero"


def test_open_children_do_not_prevent_suspending() -> None:
    model.check_status_change(Status.ACTIVE, Status.SUSPENDED, open_children=3, balance_micros=5)


@pytest.mark.parametrize("login", ["al", "alice", "reseller.l3", "a_b-c@example.com", "0agent", "a" * 63])
def test_a_well_formed_login_is_accepted(login: str) -> None:
    assert model.check_login(login) == login


@pytest.mark.parametrize(
    "login",
    [
        "",
        "a",
        "a" * 64,
        "Alice",
        "-alice",
        ".alice",
        "_alice",
        "al ice",
        "alice\n",
        "\nalice",
        "alice'--",
        "élodie",
        "alice;",
        "alice/bob",
    ],
)
def test_a_malformed_login_is_refused(login: str) -> None:
    with pytest.raises(Refusal) as refused:
        model.check_login(login)
    assert refused.value.reason == "login_invalid"


@pytest.mark.parametrize(
    "name",
    [
        "Acme Telecom",
        "x",
        "Ünïcødé Telekom 東京",
        "Robert'); DROP TABLE nodes;--",
        "<script>alert(1)</script>",
        "a" * model.NAME_LENGTH_MAX,
    ],
)
def test_a_name_of_printable_characters_is_accepted(name: str) -> None:
    assert model.check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "a" * (model.NAME_LENGTH_MAX + 1),
        "Acme\nTelecom",
        "Acme\rTelecom",
        "Acme\tTelecom",
        "Acme\x00",
        "Acme\x1b[31m",
        "Acme\x7f",
        "Acme\x85Telecom",
        "Acme\u2028Telecom",
    ],
)
def test_a_name_with_control_characters_or_of_the_wrong_length_is_refused(name: str) -> None:
    with pytest.raises(Refusal) as refused:
        model.check_name(name)
    assert refused.value.reason == "name_invalid"


@pytest.mark.parametrize("language", ["en", "fr", "pt_BR", "fil", "zh_CN"])
def test_a_language_code_is_accepted(language: str) -> None:
    assert model.check_language(language) == language


@pytest.mark.parametrize("language", ["", "e", "EN", "english", "pt-BR", "pt_br", "en_", "en\n", "xx_XX_X"])
def test_a_malformed_language_code_is_refused(language: str) -> None:
    with pytest.raises(Refusal) as refused:
        model.check_language(language)
    assert refused.value.reason == "language_invalid"


@pytest.mark.parametrize("time_zone", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Asia/Kolkata"])
def test_an_iana_time_zone_is_accepted(time_zone: str) -> None:
    assert model.check_time_zone(time_zone) == time_zone


@pytest.mark.parametrize(
    "time_zone",
    [
        "",
        "Mars/Olympus_Mons",
        "Europe",
        "America",
        "/etc/passwd",
        "../../etc/passwd",
        "UTC\n",
        "+02:00",
        "localtime",
        "Factory",
        "posix/Europe/Paris",
        "right/UTC",
    ],
)
def test_anything_else_as_a_time_zone_is_refused(time_zone: str) -> None:
    with pytest.raises(Refusal) as refused:
        model.check_time_zone(time_zone)
    assert refused.value.reason == "time_zone_invalid"


@pytest.mark.parametrize("credit_limit_micros", [0, 1, 50_000_000, AMOUNT_MICROS_MAX])
def test_a_credit_limit_is_zero_or_a_positive_amount(credit_limit_micros: int) -> None:
    assert model.check_credit_limit(credit_limit_micros) == credit_limit_micros


@pytest.mark.parametrize("credit_limit_micros", [-1, -50_000_000, AMOUNT_MICROS_MAX + 1])
def test_a_negative_or_oversized_credit_limit_is_refused(credit_limit_micros: int) -> None:
    with pytest.raises(Refusal) as refused:
        model.check_credit_limit(credit_limit_micros)
    assert refused.value.reason == "credit_limit_invalid"


@pytest.mark.parametrize("name", ["clients_limit", "concurrent_calls_limit"])
def test_a_limit_is_absent_zero_or_positive(name: str) -> None:
    assert model.check_limit(name, None) is None
    assert model.check_limit(name, 0) == 0
    assert model.check_limit(name, 25) == 25
    with pytest.raises(Refusal) as refused:
        model.check_limit(name, -1)
    assert refused.value.reason == f"{name}_invalid"


def test_unknown_client_types_or_features_are_refused_with_the_given_reason() -> None:
    assert model.parse_enum_set(ClientType, ["pbx", "retail"], "client_types_invalid") == {
        ClientType.PBX,
        ClientType.RETAIL,
    }
    with pytest.raises(Refusal) as refused:
        model.parse_enum_set(Feature, ["tariffs", "teleportation"], "features_invalid")
    assert refused.value.reason == "features_invalid"
