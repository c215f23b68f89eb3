"""Never mint more than you hold: the three attacks found in review, driven through the HTTP API.

Whoever creates a user, an API key, a session or a node's settings gives it no action it does not
itself hold. An agent cannot grant credit, a key narrowed to ``user:manage`` cannot make an admin, a
key narrowed to ``node:create`` cannot set limits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollway.access import service as access
from tollway.access.model import NODE_FIELD_ACTIONS, ROLE_ACTIONS, ROLE_KINDS, Action, Forbidden, NodeField, Role
from tollway.agents import service as agents
from tollway.balances import service as balances
from tollway.errors import Refusal
from tollway.http.app import create_app
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import ClientType, Grants, client, reseller

PASSWORD = "correct horse battery"


def api(database: Database, node_login: str, role: Role, actions: Iterable[Action] | None = None) -> TestClient:
    _, plaintext = access.create_api_key(database, None, node_login=node_login, name="k", role=role, actions=actions)
    client = TestClient(create_app(database), base_url="https://testserver")
    client.headers["Authorization"] = f"Bearer {plaintext}"
    return client


def new_client(login: str, **fields: object) -> dict[str, object]:
    return {"owner": "north-city", "login": login, "name": login, "kind": "client", "client_type": "retail"} | fields


def test_an_agent_creates_clients_but_never_grants_them_credit_or_limits(demo_database: Database) -> None:
    ana = api(demo_database, "agent-ana", Role.AGENT)
    credit = ana.post("/api/v1/nodes", json=new_client("c1", credit_limit="1000000"))
    assert credit.status_code == 403, credit.text
    assert credit.json()["reason"] == "credit_limit_forbidden"
    assert "credit_limit" in credit.json()["message"] and "money:adjust" in credit.json()["message"]
    calls = ana.post("/api/v1/nodes", json=new_client("c2", concurrent_calls_limit=500))
    assert (calls.status_code, calls.json()["reason"]) == (403, "concurrent_calls_limit_forbidden")
    # Nothing was created by the refusals; a plain client at the defaults is still hers to make.
    north_city = api(demo_database, "north-city", Role.RESELLER_ADMIN)
    assert north_city.get("/api/v1/nodes/c1").status_code == 404
    assert ana.post("/api/v1/nodes", json=new_client("c3", credit_limit="0")).status_code == 201
    assert balances.get_balance(demo_database, login="c3").credit_limit_micros == 0


def test_a_key_narrowed_to_user_manage_cannot_make_a_full_power_user(demo_database: Database) -> None:
    narrowed = api(demo_database, "north-city", Role.RESELLER_ADMIN, [Action.USER_MANAGE])
    made = narrowed.post(
        "/api/v1/nodes/north-city/users", json={"login": "boss", "password": PASSWORD, "role": "reseller_admin"}
    )
    assert made.status_code == 403, made.text
    assert made.json()["reason"] == "role_forbidden"
    assert "money:adjust" in made.json()["message"]
    # No such user: logging in as it fails, and so does changing a client's credit limit through it.
    browser = TestClient(create_app(demo_database), base_url="https://testserver")
    assert browser.post("/api/v1/sessions", json={"login": "boss", "password": PASSWORD}).status_code == 401
    assert balances.get_balance(demo_database, login="alice").credit_limit_micros == 0
    # Nor a key with more than it holds, whether the actions are listed or left to the role's.
    key = narrowed.post("/api/v1/nodes/alice/api-keys", json={"name": "x", "role": "client"})
    assert (key.status_code, key.json()["reason"]) == (403, "actions_forbidden")
    listed = narrowed.post(
        "/api/v1/nodes/alice/api-keys", json={"name": "x", "role": "client", "actions": ["user:manage", "node:read"]}
    )
    assert (listed.status_code, listed.json()["reason"]) == (403, "actions_forbidden")
    assert (
        narrowed.post(
            "/api/v1/nodes/alice/api-keys", json={"name": "x", "role": "client", "actions": ["user:manage"]}
        ).status_code
        == 201
    )


def test_a_key_narrowed_to_node_create_makes_nodes_at_their_defaults_only(demo_database: Database) -> None:
    narrowed = api(demo_database, "north-city", Role.RESELLER_ADMIN, [Action.NODE_CREATE])
    for field, value, reason in (
        ("credit_limit", "1000000", "credit_limit_forbidden"),
        ("concurrent_calls_limit", 10, "concurrent_calls_limit_forbidden"),
        ("clients_limit", 10, "clients_limit_forbidden"),
        ("managed_by_agent", "agent-ana", "managed_by_agent_forbidden"),
        ("language", "fr", "language_forbidden"),
    ):
        refused = narrowed.post("/api/v1/nodes", json=new_client(f"n-{reason[:8]}", **{field: value}))
        assert (refused.status_code, refused.json()["reason"]) == (403, reason), field
        assert field in refused.json()["message"]
    above = api(demo_database, "atlas-north", Role.RESELLER_ADMIN, [Action.NODE_CREATE])
    grants = above.post(
        "/api/v1/nodes",
        json={"owner": "atlas-north", "login": "sub", "name": "Sub", "kind": "reseller", "level": 1, "features": []},
    )
    assert (grants.status_code, grants.json()["reason"]) == (403, "grants_forbidden")
    assert narrowed.post("/api/v1/nodes", json=new_client("plain")).status_code == 201
    assert balances.get_balance(demo_database, login="plain").credit_limit_micros == 0


def test_an_admin_holding_the_actions_still_sets_every_field(demo_database: Database) -> None:
    city = api(demo_database, "north-city", Role.RESELLER_ADMIN)
    made = city.post(
        "/api/v1/nodes",
        json=new_client(
            "full", credit_limit="50", concurrent_calls_limit=4, managed_by_agent="agent-ana", language="fr"
        ),
    )
    assert made.status_code == 201, made.text
    assert made.json()["concurrent_calls_limit"] == 4 and made.json()["language"] == "fr"
    assert balances.get_balance(demo_database, login="full").credit_limit_micros == 50_000_000


@pytest.mark.parametrize("role", [Role.RESELLER_ADMIN, Role.CLIENT])
def test_a_session_is_opened_only_for_the_user_itself(demo_database: Database, role: Role) -> None:
    node = "north-city" if role is Role.RESELLER_ADMIN else "alice"
    access.create_user(demo_database, None, node_login=node, login="someone", password=PASSWORD, role=role)
    principal = access.login_with_password(demo_database, login="someone", password=PASSWORD)
    session = access.open_session(demo_database, principal)
    held, _ = access.principal_for_session(demo_database, session.token)
    assert held.actions <= principal.actions and held.user_id == principal.user_id


def test_a_key_narrowed_to_node_create_uses_no_profile_that_sets_more(demo_database: Database) -> None:
    """The demo's 'prepaid' profile names north-city's retail tariff: assigning a tariff is node:update."""
    narrowed = api(demo_database, "north-city", Role.RESELLER_ADMIN, [Action.NODE_CREATE])
    refused = narrowed.post("/api/v1/nodes/north-city/batches", json={"id": "b-1", "profile": "prepaid", "count": 2})
    assert (refused.status_code, refused.json()["reason"]) == (403, "tariff_forbidden"), refused.text


# Where each role's creator stands, and the nodes it may manage logins of (its own and below).
CREATORS = {
    Role.PROVIDER_ADMIN: ("house", ("house", "north-city", "agent-ana", "alice")),
    Role.RESELLER_ADMIN: ("north-city", ("north-city", "agent-ana", "alice")),
    Role.AGENT: ("agent-ana", ("agent-ana", "alice")),
    Role.CLIENT: ("alice", ("alice",)),
    Role.ORGANIZATION_USER: ("alice", ("alice",)),
}
NODE_KINDS = {"house": "provider", "north-city": "reseller", "agent-ana": "agent", "alice": "client"}


@st.composite
def minting(draw: st.DrawFn) -> tuple[Role, frozenset[Action], str, Role, frozenset[Action] | None]:
    """A creator's role and narrowed key; the node, role and actions (None: the role's) it asks for."""
    creator_role = draw(st.sampled_from(sorted(CREATORS)))
    held = frozenset(draw(st.sets(st.sampled_from(sorted(ROLE_ACTIONS[creator_role])))))
    target = draw(st.sampled_from(CREATORS[creator_role][1]))
    asked_role = draw(st.sampled_from([r for r in sorted(Role) if NODE_KINDS[target] in ROLE_KINDS[r]]))
    asked = draw(st.none() | st.sets(st.sampled_from(sorted(ROLE_ACTIONS[asked_role]))).map(frozenset))
    return creator_role, held, target, asked_role, asked


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=minting(), as_user=st.booleans())
def test_nothing_created_holds_an_action_its_creator_does_not(
    demo_database: Database, case: tuple[Role, frozenset[Action], str, Role, frozenset[Action] | None], as_user: bool
) -> None:
    """Every role x every narrowing of the creator's key x every role and actions asked: a user (and the
    session it opens) or a key is created exactly when the creator may manage logins there and holds all
    it would carry; and then what it carries is within what the creator holds."""
    creator_role, held, target, asked_role, asked = case
    database = demo_database
    _, plaintext = access.create_api_key(
        database, None, node_login=CREATORS[creator_role][0], name="creator", role=creator_role, actions=held
    )
    creator = access.login_with_api_key(database, plaintext=plaintext)
    carried = ROLE_ACTIONS[asked_role] if as_user or asked is None else asked
    may = Action.USER_MANAGE in held and carried <= held
    login = f"u{uuid.uuid4().hex[:12]}"
    try:
        if as_user:
            access.create_user(database, creator, node_login=target, login=login, password=PASSWORD, role=asked_role)
            created = access.login_with_password(database, login=login, password=PASSWORD)
            session = access.open_session(database, created)
            created_by_session, _ = access.principal_for_session(database, session.token)
            assert created_by_session.actions == created.actions
        else:
            _, secret = access.create_api_key(
                database, creator, node_login=target, name=login, role=asked_role, actions=asked
            )
            created = access.login_with_api_key(database, plaintext=secret)
    except Refusal as refusal:
        assert not may, refusal
        assert isinstance(refusal, Forbidden) and refusal.reason in ("forbidden", "role_forbidden", "actions_forbidden")
        return
    assert may
    assert created.actions <= creator.actions


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    held=st.sets(st.sampled_from(sorted(ROLE_ACTIONS[Role.RESELLER_ADMIN]))).map(frozenset),
    fields=st.sets(st.sampled_from(sorted(set(NodeField) - {NodeField.MAX_CALL_SECONDS, NodeField.TARIFF}))),
)
def test_a_node_is_created_exactly_when_its_creator_holds_each_fields_action(
    demo_database: Database, held: frozenset[Action], fields: set[NodeField]
) -> None:
    """A reseller admin's key, narrowed to any subset, creates a client of north-city (or a sub-reseller of
    atlas-north when grants are set) with any fields set away from their defaults."""
    database = demo_database
    owner = "atlas-north" if NodeField.GRANTS in fields else "north-city"
    _, plaintext = access.create_api_key(
        database, None, node_login=owner, name="creator", role=Role.RESELLER_ADMIN, actions=held
    )
    creator = access.login_with_api_key(database, plaintext=plaintext)
    login = f"n{uuid.uuid4().hex[:12]}"
    values: dict[NodeField, object] = {
        NodeField.CREDIT_LIMIT: {"credit_limit_micros": 5_000_000},
        NodeField.CLIENTS_LIMIT: {"clients_limit": 3},
        NodeField.CONCURRENT_CALLS_LIMIT: {"concurrent_calls_limit": 2},
        NodeField.GRANTS: {"grants": Grants(frozenset({ClientType.RETAIL}), frozenset())},
        NodeField.MANAGED_BY_AGENT: {"managed_by_agent_login": "agent-ana"},
        NodeField.LANGUAGE: {"language": "fr"},
        NodeField.TIME_ZONE: {"time_zone": "Europe/Paris"},
    }
    position = reseller(1) if NodeField.GRANTS in fields else client(ClientType.RETAIL)
    if NodeField.GRANTS in fields and NodeField.MANAGED_BY_AGENT in fields:
        fields = fields - {NodeField.MANAGED_BY_AGENT}  # agents manage clients only
    arguments: dict[str, object] = {}
    for field in fields:
        arguments |= values[field]  # type: ignore[arg-type]
    new = tree.NewNode(position=position, login=login, name=login, **arguments)  # type: ignore[arg-type]
    needed = {Action.NODE_CREATE} | {NODE_FIELD_ACTIONS[field] for field in fields}
    try:
        agents.create_node(database, owner_login=owner, new=new, principal=creator)
    except Refusal as refusal:
        assert not needed <= held, refusal
        assert isinstance(refusal, Forbidden)
        if Action.NODE_CREATE not in held:
            assert refusal.reason == "forbidden"
        else:  # the refusal names a field whose action the creator lacks
            missing = {f"{field}_forbidden" for field in fields if NODE_FIELD_ACTIONS[field] not in held}
            assert refusal.reason in missing
        return
    assert needed <= held
