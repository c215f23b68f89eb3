"""A brand edited in the portal: a reseller's admin its own, the provider its own and a reseller's below it.

The world is the demo with a login per role (tests/test_portal_accounts.py): root (the provider, "Tollway
Demo Telecom"), nc-admin (north-city, "North City VoIP (L1)", alice's reseller), bw-admin
(bluewave-retail, dave's reseller), ana (an agent of north-city), alice (a client of north-city). Both
resellers may sell ``branded_portal``.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.test_portal import browser, csrf_of, log_in, user
from tests.test_portal_accounts import staff_world  # noqa: F401 - the fixture
from tollway.access import service as access
from tollway.access.model import Role
from tollway.branding import model as brand_model
from tollway.branding import service as branding
from tollway.portal.app import LOGO_CONTENT_SECURITY_POLICY
from tollway.store.database import Database

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # recognised by its first bytes
DRAWING = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
    b'<defs><linearGradient id="g"><stop offset="0" stop-color="#0b5d1e"/></linearGradient></defs>'
    b'<rect width="10" height="10" fill="url(#g)"/></svg>'
)
SCRIPTED = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
HANDLER = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="1" height="1"/></svg>'
ENTITIES = b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>'
OUTSIDE = b'<svg xmlns="http://www.w3.org/2000/svg"><image href="https://tracker.example/x.png"/></svg>'
GIF = b"GIF89a" + b"\x00" * 32


def signed_in(database: Database, login: str, *, host: str = "testserver") -> TestClient:
    client = browser(database, host=host)
    assert log_in(client, login).status_code == 303, login
    return client


def details(client: TestClient, path: str, **typed: str) -> dict[str, str]:
    """The brand form as it is shown, with ``typed`` changed, and the page's CSRF token."""
    page = client.get(path)
    assert page.status_code == 200, path
    fields = ("name", "colour_primary", "colour_accent", "support_email", "support_phone", "support_url")
    shown = {name: _value(page.text, name) for name in fields}
    return {"csrf_token": csrf_of(page), "customer_language": "", **shown, **typed}


def _value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" type="[a-z]+" value="([^"]*)"', html)
    assert found, name
    return found.group(1)


def audited(database: Database, action: str) -> list[tuple[str, object, object]]:
    root = access.login_with_password(database, login="root", password="correct horse battery")
    entries = access.read_audit(database, root, limit=50, action=action)
    return [(entry.target_id, entry.before, entry.after) for entry in entries]


def test_a_resellers_admin_rebrands_and_its_customer_sees_it_on_the_next_page_on_any_host(
    staff_world: Database,  # noqa: F811
) -> None:
    branding.set_hosts(staff_world, None, login="north-city", hosts=["portal.north.example"])
    branding.set_hosts(staff_world, None, login="bluewave-retail", hosts=["my.blue.example"])
    alice = signed_in(staff_world, "alice", host="portal.north.example")
    assert "North City VoIP (L1)" in alice.get("/").text

    admin = signed_in(staff_world, "nc-admin")
    page = admin.get("/brand")
    assert page.status_code == 200 and "Your brand" in page.text and 'href="/brand"' in admin.get("/").text
    assert "portal.north.example" in page.text and 'name="hosts"' not in page.text  # its owners set them
    typed = details(
        admin,
        "/brand",
        name="North Voice",
        colour_primary="#0B5D1E",
        support_email="help@north.example",
        support_phone="+1 555 0100",
        support_url="https://north.example/help",
        customer_language="es",
    )
    saved = admin.post("/accounts/north-city/brand", data=typed, follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, "/brand?saved=brand")
    own_page = admin.get(saved.headers["location"]).text
    assert "Customers see it on their next page." in own_page
    assert '<link rel="stylesheet" href="/brand/preview/0b5d1e-e8f0f8.css">' in own_page  # the preview's colours
    preview = browser(staff_world).get("/brand/preview/0b5d1e-e8f0f8.css")
    assert preview.text == "main .brand-preview{background:#0b5d1e;--accent:#e8f0f8}\n"
    assert browser(staff_world).get("/brand/preview/red-blue.css").status_code == 404

    home = alice.get("/").text  # the same session, the next page
    assert "North Voice" in home and "North City VoIP (L1)" not in home
    assert "/brand/colours/0b5d1e-e8f0f8.css" in home and 'href="mailto:help@north.example"' in home
    before_login = browser(staff_world, host="portal.north.example").get("/login").text
    assert '<html lang="es">' in before_login and "North Voice" in before_login  # its customers' language
    assert "Log in to North Voice" not in browser(staff_world, host="my.blue.example").get("/login").text
    assert "Log in to Tollway Demo Telecom" in browser(staff_world, host="other.example").get("/login").text
    assert branding.get_brand(staff_world, None, login="north-city").row.customer_language == "es"

    [(target, before, after)] = audited(staff_world, "node.brand")
    assert target == "north-city" and before["brand_name"] is None  # type: ignore[index]
    assert after["brand_name"] == "North Voice" and after["colour_primary"] == "#0b5d1e"  # type: ignore[index]

    cleared = details(admin, "/brand", name="")
    admin.post("/accounts/north-city/brand", data=cleared)
    assert "North City VoIP (L1)" in alice.get("/").text  # an empty name: the account's own again


def test_colours_that_leave_text_unreadable_and_other_bad_input_answer_a_form_error(
    staff_world: Database,  # noqa: F811
) -> None:
    admin = signed_in(staff_world, "nc-admin")
    # #777777 under white text: (1.05) / (0.1845 + 0.05) = 4.478:1, just short of 4.5:1, shown rounded down.
    grey = admin.post("/accounts/north-city/brand", data=details(admin, "/brand", colour_primary="#777777"))
    assert grey.status_code == 422
    assert "The primary colour #777777 has a contrast of 4.47:1 with the text on it; it needs at least 4.5:1." in (
        grey.text
    )
    assert 'value="#777777"' in grey.text  # what was typed is kept
    assert brand_model.contrast("#777777", "#ffffff") == pytest.approx(4.478, abs=0.001)
    dark_accent = admin.post("/accounts/north-city/brand", data=details(admin, "/brand", colour_accent="#555555"))
    assert dark_accent.status_code == 422 and "The accent colour #555555 has a contrast of" in dark_accent.text
    for typed, message in (
        ({"colour_primary": "red"}, "Enter a colour as # and six hexadecimal digits, such as #1f4e79."),
        ({"support_url": "javascript:alert(1)"}, "A support page is an address starting with http:// or https://."),
        ({"support_phone": "call us"}, "Enter a phone number such as +1 555 0100."),
        ({"support_email": "nobody"}, "Enter an email address such as name@example.com."),
        ({"customer_language": "xx"}, "Choose one of the languages offered."),
        ({"name": "x" * 201}, "A brand name has 1 to 200 printable characters."),
    ):
        refused = admin.post("/accounts/north-city/brand", data=details(admin, "/brand", **typed))
        assert refused.status_code == 422 and message in refused.text, typed
    with_nul = admin.post("/accounts/north-city/brand", data=details(admin, "/brand", name="North\x00Voice"))
    assert with_nul.status_code == 422  # refused before any use case: PostgreSQL stores no NUL
    typed = details(admin, "/brand", name="Sneaky")
    without_token = {key: value for key, value in typed.items() if key != "csrf_token"}
    assert admin.post("/accounts/north-city/brand", data=without_token).status_code == 403
    assert audited(staff_world, "node.brand") == []  # nothing half-applied, nothing saved
    assert branding.get_brand(staff_world, None, login="north-city").brand_name is None


def test_a_logo_is_checked_by_its_bytes_and_an_svg_one_is_drawing_only_and_runs_nothing(
    staff_world: Database,  # noqa: F811
) -> None:
    admin = signed_in(staff_world, "nc-admin")
    token = csrf_of(admin.get("/brand"))

    def upload(content: bytes, name: str, media_type: str):  # type: ignore[no-untyped-def]
        files = {"logo": (name, content, media_type)}
        return admin.post("/accounts/north-city/brand/logo", data={"csrf_token": token}, files=files)

    for content, message in (
        (SCRIPTED, "An SVG logo may hold drawing only"),
        (HANDLER, "An SVG logo may hold drawing only"),
        (ENTITIES, "An SVG logo may hold drawing only"),
        (OUTSIDE, "An SVG logo may hold drawing only"),
        (GIF, "A logo is a PNG, JPEG, WebP or SVG image."),
        (b"<svg", "A logo is a PNG, JPEG, WebP or SVG image."),
        (PNG[:8] + b"\x00" * (brand_model.LOGO_BYTES_MAX + 1), "A logo is at most 256 KiB."),
    ):
        refused = upload(content, "logo.svg", "image/svg+xml")
        assert refused.status_code in (413, 422) and message in refused.text, content[:40]
    assert upload(SCRIPTED, "logo.png", "image/png").status_code == 422  # a declared type is not believed

    assert upload(DRAWING, "logo.svg", "image/svg+xml").status_code == 200
    digest = branding.get_brand(staff_world, None, login="north-city").row.logo_digest
    assert digest
    alice_home = signed_in(staff_world, "alice").get("/").text
    assert f'<img src="/brand/logo/{digest}" alt="North City VoIP (L1)" class="logo">' in alice_home
    assert "<svg" not in alice_home.split("<main", 1)[0]  # shown through <img>, never inlined
    served = browser(staff_world).get(f"/brand/logo/{digest}")
    assert served.status_code == 200 and served.content == DRAWING
    assert served.headers["content-type"] == "image/svg+xml"
    policies = served.headers.get_list("content-security-policy")
    assert LOGO_CONTENT_SECURITY_POLICY in policies and "sandbox" in LOGO_CONTENT_SECURITY_POLICY
    assert "script-src" not in LOGO_CONTENT_SECURITY_POLICY  # default-src 'none': no script at all
    assert served.headers["x-content-type-options"] == "nosniff"

    assert upload(PNG, "logo.png", "image/png").status_code == 200
    assert branding.get_brand(staff_world, None, login="north-city").row.logo_digest != digest
    removed = admin.post("/accounts/north-city/brand/logo/remove", data={"csrf_token": token}, follow_redirects=False)
    assert removed.headers["location"] == "/brand?saved=logo_removed"
    assert branding.get_brand(staff_world, None, login="north-city").row.logo_digest is None
    assert [after["logo_digest"] is None for _, _, after in audited(staff_world, "node.brand")] == [True, False, False]  # type: ignore[index]


def test_the_provider_sets_a_resellers_hosts_and_sender_and_a_host_taken_is_a_clear_form_error(
    staff_world: Database,  # noqa: F811
) -> None:
    root = signed_in(staff_world, "root")
    account = root.get("/accounts/north-city")
    assert 'href="/accounts/north-city/brand"' in account.text
    page = root.get("/accounts/north-city/brand")
    assert page.status_code == 200 and "Brand of North City VoIP (L1)" in page.text and 'name="hosts"' in page.text
    token = csrf_of(page)
    hosts = root.post(
        "/accounts/north-city/brand/hosts",
        data={"csrf_token": token, "hosts": "Portal.North.Example\nvoice.north.example"},
        follow_redirects=False,
    )
    assert hosts.headers["location"] == "/accounts/north-city/brand?saved=hosts"
    assert branding.get_brand(staff_world, None, login="north-city").hosts == [
        "portal.north.example",
        "voice.north.example",
    ]
    typed = {"csrf_token": token, "hosts": "my.blue.example, VOICE.north.example"}
    taken = root.post("/accounts/bluewave-retail/brand/hosts", data=typed)
    assert taken.status_code == 422
    assert "Another brand already has voice.north.example: a host name belongs to one brand only." in taken.text
    assert "my.blue.example, VOICE.north.example" in taken.text  # what was typed is kept
    assert branding.get_brand(staff_world, None, login="bluewave-retail").hosts == []
    bad = root.post("/accounts/bluewave-retail/brand/hosts", data={"csrf_token": token, "hosts": "not a host!"})
    assert bad.status_code == 422 and "Enter host names such as portal.example.com" in bad.text

    sender = root.post(
        "/accounts/north-city/brand/sender", data={"csrf_token": token, "sender": "billing@north.example"}
    )
    assert sender.status_code == 200 and "The email sender is saved." in sender.text
    assert (
        "Enter an email address"
        in root.post("/accounts/north-city/brand/sender", data={"csrf_token": token, "sender": "billing"}).text
    )
    [(target, _, after)] = audited(staff_world, "node.brand_hosts")
    assert target == "north-city" and after == {"hosts": ["portal.north.example", "voice.north.example"]}
    assert [after["email_from"] for _, _, after in audited(staff_world, "node.notices")] == ["billing@north.example"]  # type: ignore[index]

    own = signed_in(staff_world, "nc-admin")
    own_page = own.get("/brand").text
    assert "billing@north.example" in own_page and "portal.north.example, voice.north.example" in own_page
    mine = own.post("/accounts/north-city/brand/hosts", data={"csrf_token": csrf_of(own.get("/brand")), "hosts": ""})
    assert mine.status_code == 403  # a reseller does not claim a domain for itself
    assert len(branding.get_brand(staff_world, None, login="north-city").hosts) == 2


def test_a_brand_above_beside_or_of_a_customer_is_not_found_and_the_page_is_for_admins_only(
    staff_world: Database,  # noqa: F811
) -> None:
    user(staff_world, "north-city", "nc-admin-2", Role.RESELLER_ADMIN)
    admin = signed_in(staff_world, "nc-admin")
    token = csrf_of(admin.get("/brand"))
    for login in ("bluewave-retail", "atlas-north", "house", "alice", "nobody"):
        assert admin.get(f"/accounts/{login}/brand").status_code == 404, login
        posted = admin.post(f"/accounts/{login}/brand", data={"csrf_token": token, "name": "Mine now"})
        assert posted.status_code == 404, login
    assert signed_in(staff_world, "nc-admin-2").get("/accounts/north-city/brand").status_code == 200
    for login in ("alice", "ana"):
        client = signed_in(staff_world, login)
        assert client.get("/brand").status_code == 404 and 'href="/brand"' not in client.get("/").text, login
        assert client.get("/accounts/north-city/brand").status_code == 404, login
    root = signed_in(staff_world, "root")
    assert root.get("/brand").status_code == 200 and "Your brand" in root.get("/brand").text
