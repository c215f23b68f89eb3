"""A newcomer's first hour: the demo prints a login per role and a switch key that work, for development only,
and ``tollway serve`` says what to open."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tollway.access import service as access
from tollway.access.model import Action, Role
from tollway.calls import service as calls
from tollway.cli.main import app
from tollway.cli.welcome import base_url, print_serve_banner
from tollway.demo_logins import DEMO_LOGINS, DEMO_SWITCH, load_logins
from tollway.errors import NotFound, Refusal
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import ClientType

from .test_cli_listings import use_database


def test_every_role_has_a_demo_login(demo_database: Database) -> None:
    load_logins(demo_database)
    roles = {demo.role for demo in DEMO_LOGINS}
    assert roles == set(Role)
    levels = {tree.get_node(demo_database, None, login=demo.node).position.level for demo in DEMO_LOGINS}
    assert {tree.get_node(demo_database, None, login=d.node).position.client_type for d in DEMO_LOGINS} >= {
        ClientType.PBX,  # the organization's admin
        ClientType.USER,  # a user of the organization, with an account of its own
        ClientType.RETAIL,
    }
    assert {1, 2, 3} <= levels  # a reseller admin at each level
    for demo in DEMO_LOGINS:
        principal = access.login_with_password(demo_database, login=demo.login, password=demo.password)
        assert principal.role is demo.role
        assert principal.place.node_id == tree.get_node(demo_database, None, login=demo.node).id


def test_the_demo_switch_key_controls_calls_and_a_rerun_replaces_it(demo_database: Database) -> None:
    first = load_logins(demo_database)
    switch = access.login_with_api_key(demo_database, plaintext=first.switch_api_key)
    assert {Action.CALLS_CONTROL, Action.CALLS_READ} == switch.actions
    again = load_logins(demo_database)
    assert [d.login for d in again.logins] == [d.login for d in first.logins]
    assert again.switch_api_key != first.switch_api_key
    with pytest.raises(Refusal) as refused:
        access.login_with_api_key(demo_database, plaintext=first.switch_api_key)
    assert refused.value.reason == "api_key_invalid"
    assert access.login_with_api_key(demo_database, plaintext=again.switch_api_key).actions == switch.actions
    # The logins made the first time still log in with the same passwords.
    alice = next(d for d in again.logins if d.login == "alice")
    assert access.login_with_password(demo_database, login="alice", password=alice.password).role is Role.CLIENT


def test_rotating_an_unknown_switch_is_not_found(database: Database) -> None:
    with pytest.raises(NotFound):
        calls.rotate_switch_key(database, name="nowhere")


def test_tollway_demo_prints_the_logins_and_says_they_are_for_development(
    demo_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_database(monkeypatch, demo_database)
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--dev"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "demo data already loaded" in first.stdout
    assert "for development only" in first.stdout
    for demo in DEMO_LOGINS:
        assert any(
            line.split() == [*demo.role_label.split(), demo.login, demo.password, demo.node]
            for line in first.stdout.splitlines()
        ), demo
    assert f"switch {DEMO_SWITCH}" in first.stdout
    key = first.stdout.splitlines()[-1]
    assert key.startswith("tw_")
    second = runner.invoke(app, ["demo", "--dev"], catch_exceptions=False)
    assert second.stdout.splitlines()[:-1] == first.stdout.splitlines()[:-1]  # the same logins
    assert second.stdout.splitlines()[-1] != key  # a new switch key, the old one revoked


def test_tollway_demo_refuses_postgresql_without_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/production")
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 2
    assert "published passwords" in result.output and "tollway demo --dev" in result.output


def test_switch_rotate_key_prints_a_working_key(demo_database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    old = load_logins(demo_database).switch_api_key
    use_database(monkeypatch, demo_database)
    result = CliRunner().invoke(app, ["switch", "rotate-key", DEMO_SWITCH], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    new = result.stdout.strip()
    assert access.login_with_api_key(demo_database, plaintext=new).actions == {Action.CALLS_CONTROL, Action.CALLS_READ}
    with pytest.raises(Refusal):
        access.login_with_api_key(demo_database, plaintext=old)


def test_the_serve_banner_names_the_portal_and_the_api_docs(capsys: pytest.CaptureFixture[str]) -> None:
    print_serve_banner("127.0.0.1", 8080)
    shown = capsys.readouterr().out
    assert "portal      http://127.0.0.1:8080/\n" in shown
    assert "API docs    http://127.0.0.1:8080/api/docs" in shown


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://127.0.0.1:8080"),
        ("::1", "http://[::1]:8080"),
        ("billing.example.net", "http://billing.example.net:8080"),
    ],
)
def test_the_address_to_open(host: str, url: str) -> None:
    assert base_url(host, 8080) == url
