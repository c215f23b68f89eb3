"""The portal in a real browser: headless Chromium (Debian's) driven by Playwright, against the portal served
by uvicorn on a free port, on SQLite and PostgreSQL. Every page visited is saved under var/screenshots/.

One browser for the whole session, one server and one demo database per backend for this module; each test
has its own browser context (its own cookies) and its own logins, so tests do not see each other's state.

The shop: north-city takes cards through its own Stripe account (a local stub of Stripe's API, its checkout
page answered by the test in the browser) and bank transfers; a customer goes from the shop page to its
credited balance, the webhook signed and posted by the test.

The world is the demo (tollway demo) with a login per role: root (the provider's admin), nc-admin (north-city,
a reseller), ana (agent-ana, north-city's agent), alice and bob (north-city's retail clients), acme-user
(an organization user of acme-pbx), acme-admin (acme-pbx's admin). north-city's portal is at north.localhost,
bluewave-retail's at blue.localhost (Chromium sends every *.localhost to this machine); north-city shows
"North Voice" in green.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection

from tests import stripe_stub
from tests.browser import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    PAGE_TIMEOUT_MS,
    Camera,
    require_chromium,
    serious_violations,
    served,
)
from tests.conftest import DemoTemplate
from tests.shop_world import CITY_HOOK, CITY_KEY, SEALING_KEY, STUB_KEYS
from tollway.access import credentials
from tollway.access import store as access_store
from tollway.access.model import Role
from tollway.branding import service as branding
from tollway.branding.service import BrandChanges
from tollway.calls import service as calls
from tollway.clock import utc_now
from tollway.errors import present
from tollway.http.app import create_app
from tollway.ledger.service import check
from tollway.money import to_micros
from tollway.payments import service as shop
from tollway.payments.model import TopupOffer
from tollway.payments.service import PaymentSettings
from tollway.sealing import Sealer
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, client

PASSWORD = "correct horse battery"
LOGINS = (
    ("house", "root", Role.PROVIDER_ADMIN),
    ("north-city", "nc-admin", Role.RESELLER_ADMIN),
    ("agent-ana", "ana", Role.AGENT),
    ("alice", "alice", Role.CLIENT),
    ("bob", "bob", Role.CLIENT),
    ("carol", "carol", Role.CLIENT),
    ("acme-pbx", "acme-user", Role.ORGANIZATION_USER),
    ("acme-pbx", "acme-admin", Role.ORGANIZATION_ADMIN),
    ("mallory", "mallory", Role.CLIENT),
)
HOSTILE_NAME = '<img src=x onerror="alert(1)">Evil & Co'


@functools.cache
def password_hash() -> str:
    return credentials.hash_password(PASSWORD)


def add_logins(database: Database) -> None:
    def insert(connection: Connection) -> None:
        for node, login, role in LOGINS:
            node_id = present(tree_store.find_node(connection, node), node).id
            access_store.insert_user(
                connection, node_id=node_id, login=login, password_hash=password_hash(), role=role, now=utc_now()
            )

    database.run(insert)


SWITCH_KEYS: dict[str, str] = {}  # the test switch's API key, by the portal's address
SHOPS: dict[str, tuple[stripe_stub.StripeStub, int]] = {}  # the Stripe stub and north-city's gateway, by address


def open_shop(database: Database, stub: stripe_stub.StripeStub) -> tuple[PaymentSettings, int]:
    """north-city's shop: its Stripe account (the stub), its bank, top-ups of 10, 20, 50 or 5 to 500 USD."""
    settings = PaymentSettings(Sealer(SEALING_KEY), public_url="http://portal.invalid", stripe_api_base=stub.url)
    gateway = shop.configure_stripe(
        database, settings, seller_login="north-city", secret_key=CITY_KEY, webhook_secret=CITY_HOOK
    )
    details = {"account_holder": "North City Voice Ltd", "iban": "GB33BUKB20201555555555"}
    shop.configure_bank_transfer(database, seller_login="north-city", details=details)
    offer = TopupOffer("USD", tuple(to_micros(a) for a in ("10", "20", "50")), to_micros("5"), to_micros("500"))
    shop.put_topup_offer(database, seller_login="north-city", offer=offer)
    return settings, gateway.id


def build_world(database: Database) -> str:
    """The brands, logins and switch of these tests; answers the switch's API key."""
    branding.set_brand(
        database,
        None,
        login="north-city",
        changes=BrandChanges(
            name="North Voice", colour_primary="#0b5d1e", colour_accent="#e6f4ea", support_email="help@north.example"
        ),
    )
    branding.set_hosts(database, None, login="north-city", hosts=["north.localhost"])
    branding.set_brand(database, None, login="bluewave-retail", changes=BrandChanges(name="Blue Retail"))
    branding.set_hosts(database, None, login="bluewave-retail", hosts=["blue.localhost"])
    # A reseller whose name a hostile admin typed with HTML in it; mallory is its client.
    tree.create_node(database, owner_login="north-metro", new=tree.NewNode(client(ClientType.RETAIL), "mallory", "M"))
    branding.set_brand(database, None, login="north-metro", changes=BrandChanges(name=HOSTILE_NAME))
    add_logins(database)
    # north-city's own switch, trusted with durations (the test reports them without waiting them out).
    _, key = calls.create_switch(database, name="north-switch", node_login="north-city", trusted_durations=True)
    return key


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Playwright's sync API runs an event loop in this thread while it is open: closed with the module, so
    the tests after it can run their own (asyncio.run refuses to start inside a running loop)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def switch_key(portal: str) -> str:
    return SWITCH_KEYS[portal]


@pytest.fixture(scope="module")
def portal(demo_template: DemoTemplate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The portal served for real on this backend's copy of the demo, for every test of the module."""
    require_chromium()
    database = demo_template.fresh(tmp_path_factory.mktemp("portal-browser"))
    key = build_world(database)
    with stripe_stub.running(STUB_KEYS) as stub:
        settings, gateway = open_shop(database, stub)
        app = create_app(database, cookie_secure=False, sealer=Sealer(Sealer.new_key()), payment_settings=settings)
        with served(app) as base_url:
            SWITCH_KEYS[base_url] = key
            SHOPS[base_url] = (stub, gateway)
            yield base_url
    report = check(database)
    database.dispose()
    demo_template.drop_copies()
    assert report.ok, "ledger check failed after the browser tests:\n" + "\n".join(report.problems)


@pytest.fixture
def camera(request: pytest.FixtureRequest) -> Camera:
    return Camera(request.node.name)


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 390, "height": 844}, locale="en-US")  # a phone's width
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    yield page
    context.close()


def log_in(page: Any, camera: Camera, base_url: str, login: str) -> None:
    page.goto(f"{base_url}/")
    camera.shoot(page, f"login page for {login}")
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    camera.shoot(page, f"{login} home")


@pytest.mark.parametrize(
    ("login", "heading"),
    [
        ("root", "Tollway Demo Telecom"),
        ("nc-admin", "North City VoIP (L1)"),
        ("ana", "Ana (agent)"),
        ("alice", "My account"),
        ("acme-user", "My account"),
    ],
)
def test_each_role_logs_in_and_out(portal: str, browser_page: Any, camera: Camera, login: str, heading: str) -> None:
    page = browser_page
    log_in(page, camera, portal, login)
    assert page.get_by_role("heading", level=1).inner_text() == heading
    page.get_by_role("link", name="Settings", exact=True).click()
    camera.shoot(page, "settings")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{portal}/login")
    camera.shoot(page, "logged out")
    page.goto(f"{portal}/settings")
    assert page.url.startswith(f"{portal}/login")


def test_a_customer_switches_to_polish(portal: str, browser_page: Any, camera: Camera) -> None:
    page = browser_page
    log_in(page, camera, portal, "bob")
    assert page.locator("#available").inner_text() == "$10.00"
    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_label("Language of this portal").select_option("pl")
    camera.shoot(page, "choosing polish")
    page.get_by_role("button", name="Save the language").click()
    page.wait_for_load_state()
    camera.shoot(page, "saved in polish")
    assert page.get_by_role("status").inner_text() == "Język został zapisany."
    page.get_by_role("link", name="Moje konto").click()
    camera.shoot(page, "home in polish")
    assert page.locator("html").get_attribute("lang") == "pl"
    assert page.locator("#available").inner_text() == "10,00\xa0USD"
    page.get_by_role("link", name="Ustawienia", exact=True).click()  # back to English: bob's later tests read it
    page.get_by_label("Język tego portalu").select_option("en")
    page.get_by_role("button", name="Zapisz język").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"


def test_two_resellers_hosts_show_two_brands(portal: str, browser_page: Any, camera: Camera) -> None:
    page = browser_page
    port = portal.rsplit(":", 1)[1]
    seen = {}
    for host in ("north.localhost", "blue.localhost", "localhost"):
        page.goto(f"http://{host}:{port}/login")
        camera.shoot(page, f"login at {host}")
        header = page.locator("header.top")
        seen[host] = (page.get_by_role("heading", level=1).inner_text(), header.evaluate(_background))
    assert seen["north.localhost"] == ("Log in to North Voice", "rgb(11, 93, 30)")
    assert seen["blue.localhost"] == ("Log in to Blue Retail", "rgb(31, 78, 121)")
    assert seen["localhost"][0] == "Log in to Tollway Demo Telecom"


_background = "element => getComputedStyle(element).backgroundColor"
LOGO_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40">'
    b'<rect width="120" height="40" rx="6" fill="#5b2a86"/><circle cx="20" cy="20" r="12" fill="#ffffff"/></svg>'
)


def test_the_provider_rebrands_a_reseller_and_its_host_shows_it_on_the_next_load(
    portal: str, browser_page: Any, camera: Camera
) -> None:
    page = browser_page
    port = portal.rsplit(":", 1)[1]
    log_in(page, camera, portal, "root")
    page.goto(f"{portal}/accounts/bluewave-retail/brand")
    page.get_by_label("Primary colour").fill("#5b2a86")
    page.get_by_role("button", name="Save the brand").click()
    page.wait_for_load_state()
    page.get_by_label("Logo file").set_input_files(
        files=[{"name": "logo.svg", "mimeType": "image/svg+xml", "buffer": LOGO_SVG}]
    )
    page.get_by_role("button", name="Upload the logo").click()
    page.wait_for_load_state()
    camera.shoot(page, "brand saved")
    assert page.get_by_role("status").inner_text() == "The logo is saved."
    page.goto(f"http://blue.localhost:{port}/login")
    camera.shoot(page, "login at blue.localhost, rebranded")
    assert page.locator("header.top").evaluate(_background) == "rgb(91, 42, 134)"
    logo = page.get_by_role("img", name="Blue Retail")
    assert logo.evaluate("image => image.complete && image.naturalWidth") == 120  # the SVG, drawn as an image
    page.goto(f"http://north.localhost:{port}/login")
    assert page.locator("header.top").evaluate(_background) == "rgb(11, 93, 30)"  # the other brand unchanged
    page.goto(f"{portal}/accounts/bluewave-retail/brand")  # as it was, whatever order the tests run in
    page.get_by_role("button", name="Remove the logo").click()
    page.wait_for_load_state()
    page.get_by_label("Primary colour").fill("")
    page.get_by_role("button", name="Save the brand").click()
    page.wait_for_load_state()
    assert page.get_by_role("status").inner_text() == "The brand is saved. Customers see it on their next page."


def test_a_form_posted_without_its_csrf_token_is_refused(portal: str, browser_page: Any, camera: Camera) -> None:
    page = browser_page
    log_in(page, camera, portal, "alice")
    page.goto(f"{portal}/settings")
    page.locator("form[action='/settings/language'] input[name=csrf_token]").evaluate("input => input.remove()")
    page.get_by_label("Language of this portal").select_option("es")
    page.get_by_role("button", name="Save the language").click()
    page.wait_for_load_state()
    camera.shoot(page, "refused")
    assert page.get_by_role("heading", level=1).inner_text() == "Refused"
    assert "This form has expired" in page.locator("main").inner_text()
    page.goto(f"{portal}/")
    assert page.locator("html").get_attribute("lang") == "en"  # nothing changed


def test_user_text_with_html_in_it_is_shown_escaped(portal: str, browser_page: Any, camera: Camera) -> None:
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, camera, portal, "mallory")
    assert page.locator(".brand-name").inner_text() == HOSTILE_NAME
    assert page.locator("header img").count() == 0 and dialogs == []


@pytest.mark.parametrize("path", ["/login", "/", "/calls", "/payments", "/statement", "/settings", "/line"])
def test_the_customer_pages_have_no_serious_accessibility_violation(
    portal: str, browser_page: Any, camera: Camera, path: str
) -> None:
    page = browser_page
    if path != "/login":
        log_in(page, camera, portal, "carol")
    page.goto(f"{portal}{path}")
    camera.shoot(page, f"scanned {path}")
    assert serious_violations(page) == []


def test_a_customer_sees_its_call_after_a_call_through_the_credit_control_api(
    portal: str, switch_key: str, browser_page: Any, camera: Camera
) -> None:
    call = {"call_id": "portal-call-1@north", "account": "alice", "callee": "+44 20 7946 0000", "answered": True}
    with httpx.Client(base_url=f"{portal}/api/v1/calls", headers={"authorization": f"Bearer {switch_key}"}) as switch:
        assert switch.post("/authorize", json=call).json()["status"] == "authorized"
        ended = switch.post("/portal-call-1@north/end", json={"duration_seconds": 61})
    assert ended.status_code == 200, ended.text
    alice_line = next(line for line in ended.json()["charges"] if line["account"] == "alice")
    cost = Decimal(alice_line["amount_micros"]) / 1_000_000

    page = browser_page
    log_in(page, camera, portal, "alice")
    page.get_by_role("link", name="Calls", exact=True).click()
    camera.shoot(page, "calls")
    row = page.get_by_role("row").filter(has_text="+44 20 7946 0000")
    assert "1:01" in row.inner_text() and "Ended" in row.inner_text()
    row.get_by_role("link").click()
    camera.shoot(page, "the call")
    assert page.get_by_role("heading", level=1).inner_text() == "Call to +44 20 7946 0000"
    shown = page.locator("#cost").inner_text()
    assert shown == f"${cost.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"
    main = page.locator("main").inner_text()
    for upstream in ("atlas", "Atlas", "house"):  # never what the levels above paid, nor who they are
        assert upstream not in main
    page.get_by_role("link", name="Statement").click()
    camera.shoot(page, "statement")
    assert "1 call" in page.locator("#calls").locator("xpath=..").inner_text()
    page.emulate_media(media="print")
    camera.shoot(page, "statement as printed")
    assert page.locator("nav.menu").is_hidden() and page.locator("form.actions").is_hidden()
    page.emulate_media(media="screen")

    # carol, a client of another reseller, finds nothing there: as for a call that does not exist.
    carol = page.context.browser.new_context()
    other = carol.new_page()
    log_in(other, camera, portal, "carol")
    answer = other.goto(f"{portal}/calls/portal-call-1@north")
    camera.shoot(other, "carol at alice's call")
    assert answer is not None and answer.status == 404
    assert other.get_by_role("heading", level=1).inner_text() == "Not found"
    carol.close()


def test_a_customer_exports_its_calls_and_sets_its_caller_id_and_follow_me(
    portal: str, switch_key: str, browser_page: Any, camera: Camera
) -> None:
    call = {"call_id": "portal-call-2@north", "account": "bob", "callee": "+34 91 123 4567", "answered": True}
    with httpx.Client(base_url=f"{portal}/api/v1/calls", headers={"authorization": f"Bearer {switch_key}"}) as switch:
        assert switch.post("/authorize", json=call).json()["status"] == "authorized"
        assert switch.post("/portal-call-2@north/end", json={"duration_seconds": 30}).status_code == 200

    page = browser_page
    log_in(page, camera, portal, "bob")
    page.get_by_role("link", name="Calls", exact=True).click()
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download as CSV").click()
    exported = downloading.value
    assert exported.suggested_filename == "calls.csv"
    rows = Path(exported.path()).read_text(encoding="utf-8").splitlines()
    assert len(rows) == 2 and "portal-call-2@north" in rows[1] and "atlas" not in rows[1]  # its own charge only

    page.get_by_role("link", name="Caller ID and FollowMe").click()
    camera.shoot(page, "line")
    page.get_by_label("Number, with its country code").fill("+44 20 7946 0100")
    page.get_by_role("button", name="Add the caller id").click()
    camera.shoot(page, "caller id added")
    assert "The caller ids are saved." in page.locator("main").inner_text()
    assert "Waiting for verification" in page.locator("#caller-ids").inner_text()

    page.locator("#f-fm-number-1").fill("+44 7700 900123")
    page.locator("#f-fm-ring-1").fill("20")
    page.locator("#f-fm-number-2").fill("+44 20 7946 0999")
    page.locator("#f-fm-ring-2").fill("15")
    page.get_by_role("button", name="Save FollowMe").click()
    camera.shoot(page, "follow me saved")
    steps = page.locator("#follow-me li").all_inner_texts()
    assert len(steps) == 2 and "20 s" in steps[0] and "15 s" in steps[1]


def test_a_reseller_creates_a_client(portal: str, browser_page: Any, camera: Camera) -> None:
    page = browser_page
    log_in(page, camera, portal, "nc-admin")
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("link", name="Create an account").click()
    camera.shoot(page, "create an account")
    page.get_by_label("Login", exact=True).fill("zoe-browser")
    page.get_by_label("Name", exact=True).fill("Zoë <b>Browser</b>")
    page.get_by_label("Credit limit (USD)").fill("12.50")
    page.get_by_role("button", name="Create the account").click()
    page.wait_for_load_state()
    camera.shoot(page, "the new client")
    assert page.url.endswith("/accounts/zoe-browser?saved=created")
    main = page.locator("main").inner_text()
    assert "Zoë <b>Browser</b>" in main  # shown as typed, not as markup
    assert "12.50" in main


def test_a_reseller_loads_a_rate_sheet_and_sees_its_rates(portal: str, browser_page: Any, camera: Camera) -> None:
    """The sheet goes up by XMLHttpRequest (portal.js, with its progress bar); a refused one lists its errors;
    then a plan's page with who holds it."""
    page = browser_page
    log_in(page, camera, portal, "nc-admin")
    page.get_by_role("link", name="Tariffs", exact=True).click()
    camera.shoot(page, "tariffs")
    assert serious_violations(page) == []
    page.get_by_label("Name", exact=True).first.fill("browser-rates")  # the first form: a tariff of its own
    page.get_by_role("button", name="Create the tariff").click()
    page.wait_for_url("**/tariffs/north-city:browser-rates?saved=created")
    sheet = b"prefix,description,price,connect_fee\n44,United Kingdom,0.0123,\n4420,London,0.009876,0.05\n"
    page.get_by_label("Rate sheet (CSV)").set_input_files({"name": "uk.csv", "mimeType": "text/csv", "buffer": sheet})
    page.get_by_role("button", name="Load the sheet").click()
    page.wait_for_url("**/tariffs/north-city:browser-rates?saved=sheet&rows=2")
    camera.shoot(page, "the sheet loaded")
    rows = page.locator("#rates tbody tr").all_inner_texts()
    assert [row.split("\t")[:4] for row in rows] == [
        ["44", "United Kingdom", "$0.0123", "$0.00"],
        ["4420", "London", "$0.009876", "$0.05"],
    ]
    bad = b"prefix,description,price\n4x,Nowhere,0.01\n49,Germany,lots\n"
    page.get_by_label("Rate sheet (CSV)").set_input_files({"name": "bad.csv", "mimeType": "text/csv", "buffer": bad})
    page.get_by_role("button", name="Load the sheet").click()
    page.locator("#sheet-errors").wait_for()
    camera.shoot(page, "the sheet refused")
    errors = page.locator("#sheet-errors tbody tr").all_inner_texts()
    assert [row.split("\t")[0] for row in errors] == ["2", "3"]
    assert serious_violations(page) == []
    assert page.locator("#rates tbody tr").count() == 2  # nothing changed
    page.get_by_role("link", name="Plans", exact=True).click()
    page.get_by_role("link", name="talk-100").click()
    camera.shoot(page, "a plan and who holds it")
    assert "Alice" in page.locator("#subscribers").inner_text()
    assert serious_violations(page) == []


def test_an_organization_admin_makes_a_user_and_an_extension_and_sees_its_secret_once(
    portal: str, browser_page: Any, camera: Camera
) -> None:
    page = browser_page
    log_in(page, camera, portal, "acme-admin")
    page.get_by_role("link", name="Organization", exact=True).click()
    camera.shoot(page, "the organization")
    assert page.get_by_role("heading", level=1).inner_text() == "ACME Corp (PBX)"
    assert serious_violations(page) == []
    page.get_by_label("Login").fill("ann")
    page.get_by_label("Name").fill("Ann Lee")
    page.get_by_label("Email (optional)").fill("ann@acme.example")
    page.get_by_role("button", name="Create the user").click()
    page.wait_for_load_state()
    camera.shoot(page, "the user")
    assert page.get_by_role("status").inner_text() == "The user is created."
    page.get_by_role("link", name="Back to the organization").click()
    page.get_by_label("User", exact=True).select_option("ann")
    page.get_by_label("Number", exact=True).fill("101")
    page.get_by_label("Voicemail").check()
    page.get_by_role("button", name="Create the extension").click()
    page.wait_for_load_state()
    camera.shoot(page, "the secret, once")
    secret = page.locator("#secret").inner_text()
    assert len(secret) == 24 and secret.isalnum()
    page.get_by_role("link", name="Done").click()
    page.wait_for_load_state()
    camera.shoot(page, "the extension")
    assert page.get_by_role("heading", level=1).inner_text() == "Extension 101"
    assert page.locator("#voicemail").inner_text() == "On" and secret not in page.content()
    assert serious_violations(page) == []
    page.goto(f"{portal}/organization")
    assert "101" in page.locator("#extensions").inner_text() and secret not in page.content()


def test_a_customer_tops_up_by_card_from_the_shop_page_to_its_credited_balance(
    portal: str, browser_page: Any, camera: Camera
) -> None:
    stub, gateway = SHOPS[portal]
    page = browser_page
    stripe_pages: list[str] = []  # Stripe's checkout, answered here: the network is closed

    def stripe_checkout(route: Any) -> None:
        stripe_pages.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Stripe test checkout</h1>")

    page.route("https://checkout.stripe.com/**", stripe_checkout)
    log_in(page, camera, portal, "alice")
    before = Decimal(page.locator("#available").inner_text().lstrip("$"))
    page.get_by_role("link", name="Shop").click()
    camera.shoot(page, "the shop")
    assert serious_violations(page) == []
    page.get_by_label("$20.00").check()
    page.get_by_role("button", name="Pay by card").click()
    page.wait_for_url("https://checkout.stripe.com/c/pay/cs_test_*")
    camera.shoot(page, "stripe's checkout")
    session_id = stripe_pages[0].rsplit("/", 1)[1]

    paid = stub.pay(CITY_KEY, session_id)  # the customer pays at Stripe, which sends it back to the portal
    back = paid["success_url"].replace("http://portal.invalid", portal)
    page.goto(back)
    camera.shoot(page, "back from stripe: waiting")
    assert page.locator("#state").inner_text() == "Waiting for confirmation"
    body = stripe_stub.event("checkout.session.completed", paid)
    with httpx.Client(base_url=portal) as stripe_webhooks:
        delivered = stripe_webhooks.post(
            f"/api/v1/payments/stripe/{gateway}/webhook",
            content=body,
            headers={"Stripe-Signature": stripe_stub.signature(body, CITY_HOOK), "Content-Type": "application/json"},
        )
    assert delivered.json()["outcome"] == "credited"
    page.locator("#state", has_text="Confirmed").wait_for()  # the page asks again every 3 s (htmx)
    camera.shoot(page, "confirmed")
    assert "$20.00 was added to your balance." in page.locator("main").inner_text()
    page.get_by_role("link", name="Receipt", exact=True).click()
    camera.shoot(page, "the receipt")
    assert "$20.00" in page.locator("body").inner_text()
    page.goto(f"{portal}/")
    assert Decimal(page.locator("#available").inner_text().lstrip("$")) == before + Decimal("20.00")


def test_a_reseller_sees_its_report_with_charts_and_its_live_calls_update_without_reload(
    portal: str, switch_key: str, browser_page: Any, camera: Camera
) -> None:
    """trunk-one (north-city's wholesale client) pays 0.01936 x 1.05 = 0.020328 a minute to Germany, north-city
    pays atlas-north 0.01936: ten minutes bring north-city $0.20 (0.20328), cost it $0.19 (0.1936) and leave
    $0.01 (0.00968)."""
    headers = {"authorization": f"Bearer {switch_key}"}
    call = {"call_id": "portal-report-1@north", "account": "trunk-one", "callee": "+49 30 1234567", "answered": True}
    with httpx.Client(base_url=f"{portal}/api/v1/calls", headers=headers) as switch:
        assert switch.post("/authorize", json=call).json()["status"] == "authorized"
        assert switch.post("/portal-report-1@north/end", json={"duration_seconds": 600}).status_code == 200

    page = browser_page
    log_in(page, camera, portal, "nc-admin")
    page.get_by_role("link", name="Reports", exact=True).click()
    page.wait_for_load_state()
    camera.shoot(page, "reports")
    assert page.get_by_role("heading", level=1).inner_text() == "Reports on calls"
    for chart in ("#chart-days", "#chart-quality", "#chart-destinations", "#chart-customers"):
        assert page.locator(chart).is_visible(), chart
    assert page.locator("#chart-days-title").text_content() == "Revenue and cost per day"
    row = page.locator("#customers tr").filter(has_text="trunk-one")
    assert row.locator("td").all_inner_texts()[3:] == ["10:00", "$0.20", "$0.19", "$0.01"]
    germany = page.locator("#destinations tr").filter(has_text="Germany").inner_text()
    assert "49" in germany
    page.locator("#customers-heading").scroll_into_view_if_needed()
    camera.shoot(page, "reports: top customers")
    assert serious_violations(page) == []  # the charts have their names; the tables stay the figures' source

    call["call_id"] = "portal-live-1@north"
    with httpx.Client(base_url=f"{portal}/api/v1/calls", headers=headers) as switch:
        assert switch.post("/authorize", json=call).json()["status"] == "authorized"
        page.get_by_role("link", name="Live calls", exact=True).click()
        page.wait_for_load_state()
        camera.shoot(page, "live calls")
        live = page.locator("#live-calls tr").filter(has_text="trunk-one")
        assert live.count() == 1 and "Germany" in live.inner_text()
        assert serious_violations(page) == []
        page.evaluate("window.notReloaded = true")
        assert switch.post("/portal-live-1@north/end", json={"duration_seconds": 5}).status_code == 200
    page.locator("#live-calls tr").filter(has_text="trunk-one").wait_for(state="detached", timeout=10_000)
    camera.shoot(page, "live calls after the call ended")
    assert page.evaluate("window.notReloaded === true")  # the list changed; the page was not loaded again


def test_an_agent_batch_creates_customers_and_downloads_their_passwords_once(
    portal: str, browser_page: Any, camera: Camera
) -> None:
    page = browser_page
    log_in(page, camera, portal, "ana")
    page.get_by_role("link", name="New accounts in a batch").click()
    camera.shoot(page, "the batch form")
    page.get_by_label("Profile", exact=True).select_option("prepaid")
    page.get_by_label("Number of accounts").fill("10")
    page.get_by_label("Initial balance of each (optional)").fill("1")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()
    camera.shoot(page, "what the batch costs")
    assert page.locator("#batch-cost").inner_text() == "$25.00"  # 10 x (account fee 1.00 + 1.00 + its fee 0.50)
    page.get_by_role("button", name="Create the accounts").click()
    page.wait_for_load_state()
    camera.shoot(page, "the accounts are made")
    assert page.get_by_role("status").inner_text() == "10 accounts are created from prepaid."
    download_button = page.get_by_role("button", name="Download the logins and passwords (CSV)")
    with page.expect_download() as downloading:
        download_button.click()
    rows = list(csv.DictReader(io.StringIO(Path(downloading.value.path()).read_text())))
    assert len(rows) == 10 and all(row["balance"] == "1.000000" for row in rows)
    download_button.click()  # again: the file is gone
    page.wait_for_load_state()
    camera.shoot(page, "the second download is refused")
    assert page.get_by_role("heading", level=1).inner_text() == "Download no longer available"
    assert rows[0]["password"] not in page.content()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()
    page.get_by_label("Login").fill(rows[0]["login"])  # a new customer logs in with its password from the file
    page.get_by_label("Password").fill(rows[0]["password"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    camera.shoot(page, "a new customer's home")
    assert page.locator("#available").inner_text() == "$1.00"


def test_an_agent_sees_its_commission_and_prints_its_statement(portal: str, browser_page: Any, camera: Camera) -> None:
    page = browser_page
    log_in(page, camera, portal, "ana")
    page.get_by_role("link", name="Commission", exact=True).click()
    page.wait_for_load_state()
    camera.shoot(page, "commission")
    assert page.get_by_role("heading", level=1).inner_text() == "Commission"
    assert serious_violations(page) == []
    page.get_by_label("Amount (USD)").fill("1000")  # more than it has
    page.get_by_role("button", name="Withdraw", exact=True).click()
    page.wait_for_load_state()
    camera.shoot(page, "a withdrawal over the balance")
    assert page.get_by_role("alert").inner_text() == "This is more than your commission balance."
    page.get_by_role("link", name="Statement", exact=True).click()
    page.wait_for_load_state()
    camera.shoot(page, "statement")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Statement for ")
    assert page.get_by_role("button", name="Print").is_visible()
    assert serious_violations(page) == []


def test_a_reseller_makes_calling_cards_and_a_holder_sees_one_with_its_pin(
    portal: str, browser_page: Any, camera: Camera
) -> None:
    page = browser_page
    log_in(page, camera, portal, "nc-admin")
    page.get_by_role("link", name="Calling cards").click()
    page.get_by_label("Name of the batch").fill("browser-cards")
    page.get_by_label("Number of cards").fill("2")
    page.get_by_label("Face value of each card").fill("5.00")
    camera.shoot(page, "the batch form")
    page.get_by_role("button", name="Make the cards").click()
    page.wait_for_load_state()
    camera.shoot(page, "the cards are made")
    download_button = page.get_by_role("button", name="Download the serials and PINs (CSV)")
    with page.expect_download() as downloading:
        download_button.click()
    rows = list(csv.DictReader(io.StringIO(Path(downloading.value.path()).read_text())))
    assert len(rows) == 2 and rows[0]["face_value"] == "5.000000"
    page.goto(f"{portal}/cards/{rows[0]['serial']}")
    page.get_by_label("Action").select_option("activate")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    camera.shoot(page, "a card sold")
    # The holder, on north-city's own host: its card's balance with its serial and PIN.
    port = portal.rsplit(":", 1)[1]
    page.goto(f"http://north.localhost:{port}/card")
    assert serious_violations(page) == []
    page.get_by_label("Serial (optional)").fill(rows[0]["serial"])
    page.get_by_label("PIN").fill(rows[0]["pin"])
    page.get_by_role("button", name="Show my card").click()
    page.wait_for_load_state()
    camera.shoot(page, "the holder's card")
    assert "$5.00" in page.locator("main").inner_text() and rows[0]["pin"] not in page.content()
    assert serious_violations(page) == []
