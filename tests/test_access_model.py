"""The one authorization rule, on a small tree whose answers are written out by hand.

P provider /1/
└── A L3 /1/2/
    ├── B L2 /1/2/3/
    │   ├── C L1 /1/2/3/4/
    │   │   ├── G agent, X client managed by G, Y client of C, H agent, Z client managed by H
    │   └── D L1 /1/2/3/10/ ── W client
    └── (E L2 /1/2/12/ ── V client: a sibling subtree)
"""

from __future__ import annotations

import pytest

from tollway.access.model import ROLE_ACTIONS, Action, Decision, Place, Principal, Role, decide, limited_view, sees
from tollway.tree.model import NodeKind

K = NodeKind
PLACES = {
    "P": Place(1, "/1/", K.PROVIDER),
    "A": Place(2, "/1/2/", K.RESELLER, 1),
    "B": Place(3, "/1/2/3/", K.RESELLER, 2),
    "C": Place(4, "/1/2/3/4/", K.RESELLER, 3),
    "G": Place(5, "/1/2/3/4/5/", K.AGENT, 4),
    "X": Place(6, "/1/2/3/4/6/", K.CLIENT, 4, managed_by_agent_id=5),
    "Y": Place(7, "/1/2/3/4/7/", K.CLIENT, 4),
    "H": Place(8, "/1/2/3/4/8/", K.AGENT, 4),
    "Z": Place(9, "/1/2/3/4/9/", K.CLIENT, 4, managed_by_agent_id=8),
    "D": Place(10, "/1/2/3/10/", K.RESELLER, 3),
    "W": Place(11, "/1/2/3/10/11/", K.CLIENT, 10),
    "E": Place(12, "/1/2/12/", K.RESELLER, 2),
    "V": Place(13, "/1/2/12/13/", K.CLIENT, 12),
}


def principal(name: str, role: Role, actions: frozenset[Action] | None = None) -> Principal:
    return Principal(PLACES[name], role, ROLE_ACTIONS[role] if actions is None else actions, user_id=1)


PRINCIPALS = {
    "provider admin": principal("P", Role.PROVIDER_ADMIN),
    "L2 admin B": principal("B", Role.RESELLER_ADMIN),
    "L1 admin C": principal("C", Role.RESELLER_ADMIN),
    "agent G": principal("G", Role.AGENT),
    "client X": principal("X", Role.CLIENT),
}

VISIBLE = {
    "provider admin": set(PLACES),
    "L2 admin B": {"B", "C", "G", "X", "Y", "H", "Z", "D", "W"},
    "L1 admin C": {"C", "G", "X", "Y", "H", "Z"},
    "agent G": {"G", "X"},
    "client X": {"X"},
}


@pytest.mark.parametrize("who", sorted(PRINCIPALS))
def test_each_principal_sees_exactly_its_own_part_of_the_tree(who: str) -> None:
    assert {name for name, place in PLACES.items() if sees(PRINCIPALS[who], place)} == VISIBLE[who]


@pytest.mark.parametrize("who", sorted(PRINCIPALS))
@pytest.mark.parametrize("action", sorted(set(Action) - {Action.EXCHANGE_RATES_READ, Action.EXCHANGE_RATES_WRITE}))
def test_whatever_the_action_a_node_out_of_sight_answers_not_found(who: str, action: Action) -> None:
    for name, place in PLACES.items():
        if name not in VISIBLE[who] and not (action is Action.NODE_CREATE and who == "agent G" and name == "C"):
            assert decide(PRINCIPALS[who], action, place) is Decision.NOT_FOUND, (who, action, name)


CASES = [
    # (principal, action, target, decision)
    ("L1 admin C", Action.MONEY_TOPUP, "X", Decision.ALLOWED),
    ("L1 admin C", Action.MONEY_TOPUP, "C", Decision.FORBIDDEN),  # nobody tops itself up
    ("L1 admin C", Action.NODE_UPDATE, "C", Decision.FORBIDDEN),  # nor suspends itself
    ("L1 admin C", Action.NODE_CREATE, "C", Decision.ALLOWED),
    ("L1 admin C", Action.CALLS_READ, "Y", Decision.ALLOWED),
    ("L1 admin C", Action.EXCHANGE_RATES_WRITE, None, Decision.FORBIDDEN),
    ("L2 admin B", Action.MONEY_ADJUST, "W", Decision.ALLOWED),
    ("L2 admin B", Action.AUDIT_READ, "B", Decision.ALLOWED),
    ("provider admin", Action.EXCHANGE_RATES_WRITE, None, Decision.ALLOWED),
    ("provider admin", Action.NODE_UPDATE, "V", Decision.ALLOWED),
    ("agent G", Action.MONEY_TOPUP, "X", Decision.ALLOWED),
    ("agent G", Action.MONEY_TOPUP, "G", Decision.FORBIDDEN),
    ("agent G", Action.BALANCE_READ, "X", Decision.ALLOWED),
    ("agent G", Action.NODE_CREATE, "C", Decision.ALLOWED),  # clients for its own reseller
    ("agent G", Action.NODE_UPDATE, "X", Decision.FORBIDDEN),
    ("agent G", Action.MONEY_ADJUST, "X", Decision.FORBIDDEN),
    ("agent G", Action.CALLS_READ, "X", Decision.FORBIDDEN),  # totals only, never call details
    ("agent G", Action.SECRETS_READ, "X", Decision.FORBIDDEN),  # never SIP secrets
    ("agent G", Action.USER_MANAGE, "X", Decision.FORBIDDEN),
    ("agent G", Action.AUDIT_READ, "G", Decision.FORBIDDEN),
    ("agent G", Action.EXCHANGE_RATES_READ, None, Decision.ALLOWED),
    ("client X", Action.BALANCE_READ, "X", Decision.ALLOWED),
    ("client X", Action.CALLS_READ, "X", Decision.ALLOWED),
    ("client X", Action.SECRETS_READ, "X", Decision.ALLOWED),
    ("client X", Action.MONEY_TOPUP, "X", Decision.FORBIDDEN),
    ("client X", Action.NODE_CREATE, "X", Decision.FORBIDDEN),
    ("client X", Action.EXCHANGE_RATES_WRITE, None, Decision.FORBIDDEN),
]


@pytest.mark.parametrize(("who", "action", "target", "expected"), CASES)
def test_what_each_principal_may_do_to_what_it_sees(
    who: str, action: Action, target: str | None, expected: Decision
) -> None:
    assert decide(PRINCIPALS[who], action, PLACES[target] if target else None) is expected


def test_an_api_key_narrows_its_role() -> None:
    read_only = principal("C", Role.RESELLER_ADMIN, frozenset({Action.NODE_READ, Action.BALANCE_READ}))
    assert decide(read_only, Action.BALANCE_READ, PLACES["X"]) is Decision.ALLOWED
    assert decide(read_only, Action.MONEY_TOPUP, PLACES["X"]) is Decision.FORBIDDEN
    assert decide(read_only, Action.MONEY_TOPUP, PLACES["W"]) is Decision.NOT_FOUND


def test_agents_get_the_limited_view_of_their_clients_and_no_one_else_does() -> None:
    assert limited_view(PRINCIPALS["agent G"], PLACES["X"])
    assert not limited_view(PRINCIPALS["L1 admin C"], PLACES["X"])
    assert not limited_view(PRINCIPALS["client X"], PLACES["X"])


def test_a_node_action_without_a_target_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="needs a target"):
        decide(PRINCIPALS["provider admin"], Action.MONEY_TOPUP, None)
