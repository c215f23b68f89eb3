"""An admin resets the login of a user below it: its second factor (a lost phone) or its password.

The world is the demo with a login per role (tests/test_portal_accounts.py): root (the provider), nc-admin
(north-city, L1, under atlas-north), bw-admin (bluewave-retail, another reseller), ana (an agent of
north-city), alice (a client of north-city); here also an-admin (atlas-north, L2, north-city's owner) and
nc-admin-2 (a second admin of north-city).
"""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from tests.test_portal import PASSWORD, SEALER, browser, csrf_of, log_in, user
from tests.test_portal_accounts import staff_world  # noqa: F401 - the fixture
from tollway.access import second_factor
from tollway.access import service as access
from tollway.access.model import Role
from tollway.store.database import Database


@pytest.fixture
def logins_world(staff_world: Database) -> Database:  # noqa: F811 - the fixture imported above
    user(staff_world, "atlas-north", "an-admin", Role.RESELLER_ADMIN)
    user(staff_world, "north-city", "nc-admin-2", Role.RESELLER_ADMIN)
    return staff_world


def signed_in(database: Database, login: str) -> TestClient:
    client = browser(database)
    assert log_in(client, login).status_code == 303, login
    return client


def turn_on_second_factor(database: Database, login: str) -> str:
    """The login sets up its authenticator and confirms it: its secret."""
    principal = access.login_with_password(database, login=login, password=PASSWORD)
    enrolment = second_factor.enrol(database, principal, sealer=SEALER, issuer="test")
    second_factor.confirm(database, principal, sealer=SEALER, code=second_factor.code_now(enrolment.secret))
    return enrolment.secret


def signed_in_with_code(database: Database, login: str, secret: str) -> TestClient:
    client = browser(database)
    half = log_in(client, login)
    assert half.headers["location"].startswith("/login/code"), login
    form = client.get(half.headers["location"])
    code = second_factor.code_now(secret, at=time.time() + 30)  # the enrolment used this step's code
    entered = client.post("/login/code", data={"code": code, "csrf_token": csrf_of(form)}, follow_redirects=False)
    assert entered.status_code == 303
    return client


def audited(database: Database, action: str) -> list[tuple[str, object, object]]:
    root = access.login_with_password(database, login="root", password=PASSWORD)
    return [(e.target_id, e.before, e.after) for e in access.read_audit(database, root, limit=50, action=action)]


def test_a_resellers_admin_turns_off_the_second_factor_of_a_login_below_it(logins_world: Database) -> None:
    secret = turn_on_second_factor(logins_world, "nc-admin")
    lost_phone = signed_in_with_code(logins_world, "nc-admin", secret)
    assert lost_phone.get("/").status_code == 200

    owner = signed_in(logins_world, "an-admin")
    account = owner.get("/accounts/north-city")
    assert 'href="/accounts/north-city/logins"' in account.text
    listed = owner.get("/accounts/north-city/logins")
    assert listed.status_code == 200
    assert re.search(r"<td>nc-admin</td>\s*<td>Reseller admin</td>\s*<td>Yes</td>\s*<td>On</td>", listed.text)
    assert re.search(r"<td>nc-admin-2</td>\s*<td>Reseller admin</td>\s*<td>Yes</td>\s*<td>Off</td>", listed.text)
    reset_path = "/accounts/north-city/logins/nc-admin/second-factor/reset"
    assert owner.post(reset_path, data={}).status_code == 403  # no CSRF token
    done = owner.post(reset_path, data={"csrf_token": csrf_of(listed)}, follow_redirects=False)
    saved = "/accounts/north-city/logins?saved=second_factor_reset"
    assert (done.status_code, done.headers["location"]) == (303, saved)
    after = owner.get(done.headers["location"]).text
    assert "Two-step verification is off for this login; its sessions are closed." in after
    assert re.search(r"<td>nc-admin</td>\s*<td>Reseller admin</td>\s*<td>Yes</td>\s*<td>Off</td>", after)

    assert lost_phone.get("/", follow_redirects=False).status_code == 303  # its sessions ended
    again = browser(logins_world)
    assert log_in(again, "nc-admin").headers["location"] == "/"  # the password alone, until it sets up anew
    assert "Set up two-step verification" in again.get("/settings").text
    [(target, before, after_reset)] = audited(logins_world, "user.second_factor_reset")
    assert (target, before, after_reset) == ("nc-admin", {"on": True}, {"on": False, "sessions_closed": 1})
    twice = owner.post(reset_path, data={"csrf_token": csrf_of(listed)})
    assert twice.status_code == 422 and "Two-step verification is off." in twice.text


def test_a_login_above_beside_or_of_its_own_account_is_not_an_admins_to_reset(logins_world: Database) -> None:
    turn_on_second_factor(logins_world, "an-admin")
    turn_on_second_factor(logins_world, "bw-admin")
    secret = turn_on_second_factor(logins_world, "nc-admin-2")
    nc_admin = signed_in(logins_world, "nc-admin")
    token = csrf_of(nc_admin.get("/accounts/north-city/logins"))
    for account, login in (("atlas-north", "an-admin"), ("bluewave-retail", "bw-admin"), ("house", "root")):
        assert nc_admin.get(f"/accounts/{account}/logins").status_code == 404, account
        for action in ("second-factor/reset", "password"):
            path = f"/accounts/{account}/logins/{login}/{action}"
            assert nc_admin.post(path, data={"csrf_token": token}).status_code == 404, path
            # named under an account it does see, the user is still not found
            path = f"/accounts/alice/logins/{login}/{action}"
            assert nc_admin.post(path, data={"csrf_token": token}).status_code == 404, path
    own = nc_admin.get("/accounts/north-city/logins").text
    assert "nc-admin-2" in own and "Turn off two-step verification" not in own  # its own account: no forms
    beside = nc_admin.post("/accounts/north-city/logins/nc-admin-2/second-factor/reset", data={"csrf_token": token})
    assert beside.status_code == 403 and "change your own in Settings" in beside.text
    for login in ("ana", "alice"):
        client = signed_in(logins_world, login)
        assert client.get("/accounts/alice/logins").status_code == 404, login
    assert audited(logins_world, "user.second_factor_reset") == []
    assert signed_in_with_code(logins_world, "nc-admin-2", secret).get("/").status_code == 200  # still on


def test_the_provider_gives_a_login_below_it_a_new_password_shown_once(logins_world: Database) -> None:
    alice = signed_in(logins_world, "alice")
    root = signed_in(logins_world, "root")
    listed = root.get("/accounts/alice/logins")
    assert listed.status_code == 200 and "<td>alice</td>" in listed.text
    answer = root.post("/accounts/alice/logins/alice/password", data={"csrf_token": csrf_of(listed)})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    found = re.search(r'<code id="password" class="secret">([A-Za-z0-9]+)</code>', answer.text)
    assert found and len(found.group(1)) == access.RESET_PASSWORD_LENGTH
    password = found.group(1)
    assert password not in root.get("/accounts/alice/logins").text and password not in root.get("/accounts/alice").text

    assert alice.get("/", follow_redirects=False).status_code == 303  # its session ended
    assert log_in(browser(logins_world), "alice").status_code == 401  # the old password no longer works
    assert log_in(browser(logins_world), "alice", password).status_code == 303
    assert [target for target, _, _ in audited(logins_world, "user.password_reset")] == ["alice"]

    other = signed_in(logins_world, "bw-admin")
    refused = other.post("/accounts/alice/logins/alice/password", data={"csrf_token": csrf_of(other.get("/settings"))})
    assert refused.status_code == 404
