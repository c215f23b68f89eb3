"""The portal over HTTP, as a browser uses it (forms, cookies, redirects), on SQLite and PostgreSQL.

The world is the demo (tollway demo): alice and bob are retail clients of north-city (L1), under
atlas-north (L2), atlas (L3) and the house (the provider, "Tollway Demo Telecom"); carol is a client of
north-metro; dave of bluewave-retail. Alice has 25.00 USD and the plan talk-100 (100 minutes, 5.00 a month).
"""

from __future__ import annotations

import functools
import re
import time

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Connection

from tollway.access import credentials, second_factor
from tollway.access import store as access_store
from tollway.access.model import Role
from tollway.branding import service as branding
from tollway.branding.service import BrandChanges
from tollway.clock import utc_now
from tollway.errors import present
from tollway.http.app import create_app
from tollway.portal.app import CONTENT_SECURITY_POLICY
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.tree import model as tree_model
from tollway.tree import service as tree
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType

PASSWORD = "correct horse battery"
SEALER = Sealer(Sealer.new_key())
UPSTREAM = ("Atlas", "atlas", "Tollway Demo Telecom", "house")


def browser(database: Database, *, host: str = "testserver") -> TestClient:
    return TestClient(create_app(database, cookie_secure=True, sealer=SEALER), base_url=f"https://{host}")


def csrf_of(page: Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def log_in(client: TestClient, login: str, password: str = PASSWORD) -> Response:
    form = client.get("/login")
    return client.post(
        "/login", data={"login": login, "password": password, "csrf_token": csrf_of(form)}, follow_redirects=False
    )


@functools.cache
def password_hash() -> str:
    return credentials.hash_password(PASSWORD)  # slow on purpose (argon2id): once for every test


def user(database: Database, node: str, login: str, role: Role) -> str:
    """A login with PASSWORD (as access.create_user makes it, without hashing the same password again)."""

    def insert(connection: Connection) -> None:
        node_id = present(tree_store.find_node(connection, node), node).id
        access_store.insert_user(
            connection, node_id=node_id, login=login, password_hash=password_hash(), role=role, now=utc_now()
        )

    database.run(insert)
    return login


@pytest.fixture
def world(demo_database: Database) -> Database:
    for node, login, role in (
        ("alice", "alice", Role.CLIENT),
        ("carol", "carol", Role.CLIENT),
        ("north-city", "nc-admin", Role.RESELLER_ADMIN),
        ("house", "root", Role.PROVIDER_ADMIN),
        ("agent-ana", "ana", Role.AGENT),
    ):
        user(demo_database, node, login, role)
    return demo_database


def test_a_customer_logs_in_and_sees_its_balance_and_plan_under_its_resellers_brand(world: Database) -> None:
    client = browser(world)
    first = client.get("/", follow_redirects=False)
    assert (first.status_code, first.headers["location"]) == (303, "/login?next=%2F")

    wrong = log_in(client, "alice", "not her password")
    assert wrong.status_code == 401 and "Wrong login or password." in wrong.text
    signed = log_in(client, "alice")
    assert (signed.status_code, signed.headers["location"]) == (303, "/")
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith("tollway_session="))
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie

    home = client.get("/")
    assert home.status_code == 200
    assert '<p class="figure" id="available">$25.00</p>' in home.text  # the currency's precision, never 25.000000
    assert "talk-100" in home.text and "North City VoIP (L1)" in home.text
    for name in UPSTREAM:  # never the name of anyone above its reseller
        assert name not in home.text, name


def test_each_role_logs_in_to_its_own_home(world: Database) -> None:
    for login, seen in (("root", "Unlimited"), ("nc-admin", "$400.00"), ("ana", "$100.00"), ("carol", "$12.50")):
        client = browser(world)
        assert log_in(client, login).status_code == 303, login
        home = client.get("/")
        assert home.status_code == 200 and seen in home.text, login
        assert client.get("/settings").status_code == 200


def test_a_form_without_its_csrf_token_is_refused(world: Database) -> None:
    client = browser(world)
    client.get("/login")
    refused = client.post("/login", data={"login": "alice", "password": PASSWORD})
    assert refused.status_code == 403 and "This form has expired" in refused.text
    assert log_in(client, "alice").status_code == 303
    token = csrf_of(client.get("/settings"))
    for sent in ({}, {"csrf_token": ""}, {"csrf_token": token[:-2] + "xx"}):
        answer = client.post("/settings/language", data={"language": "pl", **sent})
        assert answer.status_code == 403, sent
    assert 'lang="en"' in client.get("/settings").text  # nothing changed
    done = client.post("/settings/language", data={"language": "pl", "csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303


def test_another_sessions_token_does_not_pass(world: Database) -> None:
    mine, theirs = browser(world), browser(world)
    log_in(mine, "alice")
    log_in(theirs, "carol")
    stolen = csrf_of(theirs.get("/settings"))
    assert mine.post("/settings/language", data={"language": "es", "csrf_token": stolen}).status_code == 403


def test_a_login_picks_its_language_and_amounts_follow_its_locale(world: Database) -> None:
    client = browser(world)
    log_in(client, "alice")
    token = csrf_of(client.get("/settings"))
    client.post("/settings/language", data={"language": "pl", "csrf_token": token})
    home = client.get("/")
    assert '<html lang="pl">' in home.text and "Moje konto" in home.text
    assert '<p class="figure" id="available">25,00\xa0USD</p>' in home.text
    assert browser(world).get("/login", headers={"accept-language": "es-ES,es;q=0.9"}).text.count("Iniciar sesión")
    chosen = browser(world)
    chosen.get("/language/pt?next=/login")
    assert '<html lang="pt">' in chosen.get("/login").text


def test_two_resellers_hosts_show_two_brands_and_any_other_host_the_providers(world: Database) -> None:
    branding.set_brand(
        world, None, login="north-city", changes=BrandChanges(name="North Voice", colour_primary="#0b5d1e")
    )
    branding.set_hosts(world, None, login="north-city", hosts=["portal.north.example"])
    branding.set_brand(world, None, login="bluewave-retail", changes=BrandChanges(name="Blue Retail"))
    branding.set_hosts(world, None, login="bluewave-retail", hosts=["my.blue.example"])

    north = browser(world, host="portal.north.example").get("/login").text
    blue = browser(world, host="My.Blue.Example:8443").get("/login").text
    other = browser(world, host="unknown.example").get("/login").text
    assert "Log in to North Voice" in north and "/brand/colours/0b5d1e-e8f0f8.css" in north
    assert "Log in to Blue Retail" in blue and "North Voice" not in blue
    assert "Log in to Tollway Demo Telecom" in other
    colours = browser(world).get("/brand/colours/0b5d1e-e8f0f8.css")
    assert colours.text == ":root{--brand:#0b5d1e;--accent:#e8f0f8}\n"
    assert browser(world).get("/brand/colours/red-blue.css").status_code == 404


def test_user_text_with_html_in_it_is_shown_escaped(world: Database) -> None:
    tree.create_node(
        world, owner_login="north-city", new=tree.NewNode(tree_model.client(ClientType.RETAIL), "mallory", "M")
    )
    branding.set_brand(world, None, login="north-city", changes=BrandChanges(name='<script>alert("x")</script>'))
    user(world, "mallory", "mallory", Role.CLIENT)
    client = browser(world)
    log_in(client, "mallory")
    home = client.get("/").text
    assert "<script>alert" not in home
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in home
    login_page = browser(world).get('/login?next=/"><script>x</script>').text
    assert "<script>x" not in login_page


def test_a_customer_of_one_reseller_finds_nothing_of_another(world: Database) -> None:
    client = browser(world)
    log_in(client, "carol")
    assert client.get("/").status_code == 200 and "Alice" not in client.get("/").text
    # Staff pages do not exist for a customer, exactly as a page that does not exist.
    assert client.get("/no-such-page").status_code == 404


def test_every_portal_answer_carries_the_security_headers_and_the_api_none(world: Database) -> None:
    client = browser(world)
    page = client.get("/login")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    static = client.get("/static/portal.css?v=1")
    assert static.status_code == 200 and "immutable" in static.headers["cache-control"]
    api = client.get("/api/v1/nodes")
    assert api.status_code == 401 and "content-security-policy" not in api.headers  # the API's own path
    unknown_api = client.get("/api/v1/no-such-thing")
    assert (unknown_api.status_code, unknown_api.json()["reason"]) == (404, "http_404")


def test_a_login_after_the_redirect_goes_back_only_within_the_portal(world: Database) -> None:
    client = browser(world)
    form = client.get("/login?next=/settings")
    answer = client.post(
        "/login",
        data={"login": "alice", "password": PASSWORD, "next": "/settings", "csrf_token": csrf_of(form)},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/settings"
    for hostile in ("https://evil.example/", "//evil.example", "/\\evil.example"):
        client = browser(world)
        form = client.get("/login")
        answer = client.post(
            "/login",
            data={"login": "alice", "password": PASSWORD, "next": hostile, "csrf_token": csrf_of(form)},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/", hostile


def test_logout_ends_the_session_on_the_server(world: Database) -> None:
    client = browser(world)
    log_in(client, "alice")
    session = client.cookies["tollway_session"]
    token = csrf_of(client.get("/"))
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).headers["location"] == "/login"
    thief = browser(world)
    thief.cookies.set("tollway_session", session)
    assert thief.get("/", follow_redirects=False).status_code == 303


def test_a_customer_sets_its_own_low_balance_warning(world: Database) -> None:
    client = browser(world)
    log_in(client, "alice")
    token = csrf_of(client.get("/settings"))
    saved = client.post(
        "/settings/notices", data={"email": "alice@example.com", "threshold": "7.50", "csrf_token": token}
    )
    assert saved.status_code == 200 and "Your low-balance warning is saved." in saved.text
    assert "We email you when your available credit falls below $7.50." in client.get("/").text
    bad = client.post("/settings/notices", data={"email": "not an address", "threshold": "", "csrf_token": token})
    assert bad.status_code == 422 and "Enter an email address" in bad.text


def test_two_step_verification_guards_a_resellers_login_in_the_portal_and_the_api(world: Database) -> None:
    client = browser(world)
    log_in(client, "nc-admin")
    token = csrf_of(client.get("/settings"))
    started = client.post("/settings/second-factor/start", data={"csrf_token": token})
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', started.text)
    assert secret and "<svg" in started.text
    wrong = client.post("/settings/second-factor/confirm", data={"code": "000000", "csrf_token": token})
    assert wrong.status_code == 401
    code = second_factor.code_now(secret.group(1))
    on = client.post("/settings/second-factor/confirm", data={"code": code, "csrf_token": token})
    assert "Two-step verification is on." in on.text

    again = browser(world)
    half = log_in(again, "nc-admin")
    assert half.headers["location"].startswith("/login/code")
    assert "tollway_session" not in again.cookies  # no session before the code
    code_form = again.get(half.headers["location"])
    reused = again.post("/login/code", data={"code": code, "csrf_token": csrf_of(code_form)})
    assert reused.status_code == 401  # a code works once
    later = second_factor.code_now(secret.group(1), at=time.time() + 30)
    entered = again.post("/login/code", data={"code": later, "csrf_token": csrf_of(code_form)}, follow_redirects=False)
    assert entered.status_code == 303 and "tollway_session" in again.cookies

    api = browser(world)
    refused = api.post("/api/v1/sessions", json={"login": "nc-admin", "password": PASSWORD})
    assert (refused.status_code, refused.json()["reason"]) == (401, "second_factor_required")
    assert (
        api.post("/api/v1/sessions", json={"login": "nc-admin", "password": PASSWORD, "code": "123"}).status_code == 401
    )


def test_a_customer_has_no_second_factor_to_set(world: Database) -> None:
    client = browser(world)
    log_in(client, "alice")
    token = csrf_of(client.get("/settings"))
    assert "Two-step verification" not in client.get("/settings").text
    assert client.post("/settings/second-factor/start", data={"csrf_token": token}).status_code == 404


def test_new_clients_speak_their_resellers_default_language(world: Database) -> None:
    branding.set_brand(world, None, login="north-metro", changes=BrandChanges(customer_language="es"))
    created = tree.create_node(
        world, owner_login="north-metro", new=tree.NewNode(tree_model.client(ClientType.RETAIL), "pepe", "Pepe")
    )
    assert created.language == "es"
    sub = tree.create_node(world, owner_login="atlas", new=tree.NewNode(tree_model.reseller(2), "atlas-south", "South"))
    assert sub.language == "en"


def test_text_with_a_nul_character_is_refused_before_any_use_case(world: Database) -> None:
    client = browser(world)
    form = client.get("/login")
    answer = client.post("/login", data={"login": "ali\x00ce", "password": PASSWORD, "csrf_token": csrf_of(form)})
    assert answer.status_code == 422 and "holds characters that are not allowed" in answer.text
    assert client.get("/login?next=/%00").status_code == 422


def test_a_customer_sees_its_payments_and_its_monthly_statement(world: Database) -> None:
    client = browser(world)
    log_in(client, "alice")
    payments = client.get("/payments").text
    # The demo topped alice up 25.00, then 5.00 for her plan's first fee, which was then charged.
    rows = re.findall(r"<td>(Top-up|Plan fee)</td>\s*<td>([^<]*)</td>\s*<td class=\"number\">([^<]+)</td>", payments)
    assert sorted(rows) == [
        ("Plan fee", "north-city:talk-100", "-$5.00"),
        ("Top-up", "demo opening balance", "$25.00"),
        ("Top-up", "demo: her plan&#39;s first fee", "$5.00"),
    ]
    statement = client.get("/statement").text
    assert re.search(r'id="opening">\$0.00<', statement) and re.search(r'id="closing">\$25.00<', statement)
    assert re.search(r"0 calls</td>\s*<td></td>\s*<td class=\"number\" id=\"calls\">\$0.00<", statement)
    assert 'media="print"' in statement and "data-print" in statement
    assert client.get("/statement?month=1999-01").status_code == 422
    assert client.get("/statement?month=garbage").status_code == 422


def test_money_pages_are_for_customers_only(world: Database) -> None:
    client = browser(world)
    log_in(client, "nc-admin")
    assert client.get("/payments").status_code == 404
    assert client.get("/statement").status_code == 404


def test_a_login_changes_its_password_and_its_other_sessions_end(world: Database) -> None:
    here, elsewhere = browser(world), browser(world)
    log_in(here, "alice")
    log_in(elsewhere, "alice")
    token = csrf_of(here.get("/settings"))
    form = {"current_password": PASSWORD, "new_password": "a brand new secret", "csrf_token": token}
    mismatch = here.post("/settings/password", data=form | {"new_password_again": "something else"})
    assert mismatch.status_code == 422 and "The two new passwords are not the same." in mismatch.text
    wrong = here.post(
        "/settings/password", data=form | {"current_password": "not it", "new_password_again": "a brand new secret"}
    )
    assert "The current password is wrong." in wrong.text
    done = here.post("/settings/password", data=form | {"new_password_again": "a brand new secret"})
    assert "Your password is changed. Your other sessions are closed." in done.text
    assert here.get("/", follow_redirects=False).status_code == 200  # this session stays
    assert elsewhere.get("/", follow_redirects=False).status_code == 303  # the other one ended
    assert log_in(browser(world), "alice", "a brand new secret").status_code == 303
