"""Logins, API keys and the audit log, through the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from tollway.access import service as access
from tollway.access.model import Action, Role
from tollway.clock import utc_now
from tollway.demo import load_demo
from tollway.errors import NotFound, Refusal
from tollway.store.database import Database
from tollway.store.schema import api_keys, users
from tollway.tree import service as tree
from tollway.tree.model import Status

PASSWORD = "correct horse battery"


def refusal(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(Refusal) as refused:
        call(*args, **kwargs)  # type: ignore[operator]
    return refused.value.reason


@pytest.fixture
def demo(database: Database) -> Database:
    load_demo(database)
    return database


def test_a_login_belongs_to_a_node_with_a_role_that_fits_it(demo: Database) -> None:
    user = access.create_user(
        demo, None, node_login="north-city", login="nc-admin", password=PASSWORD, role=Role.RESELLER_ADMIN
    )
    assert user.role is Role.RESELLER_ADMIN
    assert (
        refusal(
            access.create_user,
            demo,
            None,
            node_login="alice",
            login="alice-admin",
            password=PASSWORD,
            role=Role.RESELLER_ADMIN,
        )
        == "role_does_not_fit"
    )
    assert (
        refusal(
            access.create_user, demo, None, node_login="alice", login="nc-admin", password=PASSWORD, role=Role.CLIENT
        )
        == "login_taken"
    )
    assert (
        refusal(access.create_user, demo, None, node_login="alice", login="alice-2", password="short", role=Role.CLIENT)
        == "password_invalid"
    )


def test_passwords_are_stored_as_argon2id_hashes_only(demo: Database) -> None:
    access.create_user(demo, None, node_login="alice", login="alice", password=PASSWORD, role=Role.CLIENT)
    with demo.reading() as connection:
        stored = connection.execute(select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_a_password_login_gives_a_principal_at_the_users_node(demo: Database) -> None:
    access.create_user(demo, None, node_login="alice", login="alice", password=PASSWORD, role=Role.CLIENT)
    principal = access.login_with_password(demo, login="alice", password=PASSWORD)
    assert principal.role is Role.CLIENT
    assert principal.user_id is not None
    assert refusal(access.login_with_password, demo, login="alice", password="wrong password!") == "login_failed"
    assert refusal(access.login_with_password, demo, login="nobody", password=PASSWORD) == "login_failed"


def test_guessing_is_throttled_and_the_pause_doubles(demo: Database) -> None:
    access.create_user(demo, None, node_login="alice", login="alice", password=PASSWORD, role=Role.CLIENT)
    start = utc_now()
    for _ in range(5):
        assert refusal(access.login_with_password, demo, login="alice", password="guess guess", now=start) == (
            "login_failed"
        )
    # The fifth failure locked the login for 2 s: even the right password waits.
    assert refusal(access.login_with_password, demo, login="alice", password=PASSWORD, now=start) == "login_throttled"
    later = start + timedelta(seconds=3)
    assert refusal(access.login_with_password, demo, login="alice", password="guess 6 !!", now=later) == "login_failed"
    assert (
        refusal(access.login_with_password, demo, login="alice", password=PASSWORD, now=later + timedelta(seconds=3))
        == "login_throttled"
    )  # 6th failure: 4 s
    assert access.login_with_password(demo, login="alice", password=PASSWORD, now=later + timedelta(seconds=5))
    assert [access.lockout_seconds(n) for n in (4, 5, 6, 7, 20)] == [0, 2, 4, 8, 900]


def test_a_login_below_a_suspended_reseller_is_blocked(demo: Database) -> None:
    access.create_user(demo, None, node_login="carol", login="carol", password=PASSWORD, role=Role.CLIENT)
    tree.set_status(demo, login="north-metro", status=Status.SUSPENDED)
    assert refusal(access.login_with_password, demo, login="carol", password=PASSWORD) == "account_blocked"


def test_an_api_key_is_shown_once_stored_hashed_and_revocable(demo: Database) -> None:
    key, plaintext = access.create_api_key(
        demo, None, node_login="north-city", name="billing robot", role=Role.RESELLER_ADMIN
    )
    assert plaintext.startswith(f"tw_{key.key_id}_")
    with demo.reading() as connection:
        row = connection.execute(select(api_keys)).one()
    assert plaintext.split("_", 2)[2] not in str(tuple(row))
    principal = access.login_with_api_key(demo, plaintext=plaintext)
    assert principal.api_key_id == key.id and principal.role is Role.RESELLER_ADMIN
    assert refusal(access.login_with_api_key, demo, plaintext=plaintext[:-1] + "x") == "api_key_invalid"
    assert refusal(access.login_with_api_key, demo, plaintext="not a key") == "api_key_invalid"
    access.revoke_api_key(demo, None, key_id=key.key_id)
    assert refusal(access.login_with_api_key, demo, plaintext=plaintext) == "api_key_invalid"


def test_an_api_key_may_narrow_but_never_widen(demo: Database) -> None:
    _key, plaintext = access.create_api_key(
        demo, None, node_login="north-city", name="read only", role=Role.RESELLER_ADMIN, actions=[Action.BALANCE_READ]
    )
    assert access.login_with_api_key(demo, plaintext=plaintext).actions == {Action.BALANCE_READ}
    assert (
        refusal(
            access.create_api_key,
            demo,
            None,
            node_login="agent-ana",
            name="too wide",
            role=Role.AGENT,
            actions=[Action.MONEY_ADJUST],
        )
        == "scope_wider_than_role"
    )


def test_a_reseller_manages_logins_in_its_subtree_only(demo: Database) -> None:
    access.create_user(
        demo, None, node_login="north-city", login="nc-admin", password=PASSWORD, role=Role.RESELLER_ADMIN
    )
    admin = access.login_with_password(demo, login="nc-admin", password=PASSWORD)
    access.create_user(demo, admin, node_login="alice", login="alice", password=PASSWORD, role=Role.CLIENT)
    with pytest.raises(NotFound):  # carol is under north-metro: not even its existence shows
        access.create_user(demo, admin, node_login="carol", login="carol", password=PASSWORD, role=Role.CLIENT)


def test_every_write_is_audited_and_each_reseller_reads_only_its_own_subtree(demo: Database) -> None:
    for reseller in ("north-city", "north-metro"):
        access.create_user(
            demo, None, node_login=reseller, login=f"{reseller}-admin", password=PASSWORD, role=Role.RESELLER_ADMIN
        )
    city = access.login_with_password(demo, login="north-city-admin", password=PASSWORD)
    key, _ = access.create_api_key(demo, city, node_login="alice", name="alice's phone app", role=Role.CLIENT)
    access.revoke_api_key(demo, city, key_id=key.key_id)

    entries = access.read_audit(demo, city, limit=100)
    assert [(e.action, e.target_id) for e in entries if e.actor == city.label] == [
        ("api_key.revoke", key.key_id),
        ("api_key.create", key.key_id),
    ]
    create_key = next(e for e in entries if e.action == "api_key.create")
    assert create_key.after == {
        "name": "alice's phone app",
        "role": "client",
        "actions": [
            "balance:read",
            "calls:read",
            "lines:write",
            "node:edit",
            "node:read",
            "secrets:read",
            "shop:pay",
            "tariffs:read",
            "user:manage",
        ],
    }
    seen_by_city = {(e.action, e.target_id) for e in entries}
    assert ("node.create", "alice") in seen_by_city  # the demo's own writes, made at the command line
    assert ("money.topup", "alice") in seen_by_city
    assert ("node.create", "carol") not in seen_by_city  # carol is under north-metro

    metro = access.login_with_password(demo, login="north-metro-admin", password=PASSWORD)
    seen_by_metro = {(e.action, e.target_id) for e in access.read_audit(demo, metro, limit=100)}
    assert ("node.create", "carol") in seen_by_metro
    assert not {target for _, target in seen_by_metro} & {"alice", "north-city", key.key_id}


def test_the_audit_log_is_append_only(demo: Database) -> None:
    access.create_user(demo, None, node_login="alice", login="alice", password=PASSWORD, role=Role.CLIENT)
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"), demo.transaction() as connection:
            connection.execute(text(statement))


def test_injection_looking_text_is_stored_and_read_back_verbatim(demo: Database) -> None:
    name = "Robert'); DROP TABLE api_keys;-- <script>alert(1)</script> {{7*7}}"
    key, _ = access.create_api_key(demo, None, node_login="alice", name=name, role=Role.CLIENT)
    assert key.name == name


def test_the_audit_log_is_queried_by_action_target_and_actor(demo: Database) -> None:
    access.create_user(demo, None, node_login="north-city", login="nc", password=PASSWORD, role=Role.RESELLER_ADMIN)
    city = access.login_with_password(demo, login="nc", password=PASSWORD)
    key, _ = access.create_api_key(demo, city, node_login="bob", name="bob's app", role=Role.CLIENT)

    topups_of_alice = access.read_audit(demo, city, limit=10, action="money.topup", target_id="alice")
    # The demo tops alice up twice: her opening balance, then her plan's first fee (subscribing charges it).
    assert [(e.action, e.target_id, e.actor) for e in topups_of_alice] == [("money.topup", "alice", "cli")] * 2
    by_city = access.read_audit(demo, city, limit=10, actor=city.label)
    assert [(e.action, e.target_id) for e in by_city] == [("api_key.create", key.key_id)]
    assert access.read_audit(demo, city, limit=10, action="money.topup", target_id="carol") == []
