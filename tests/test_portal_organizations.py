"""Organizations in the portal, over HTTP as a browser uses it: an organization's admin manages its users,
extensions, caller ids and FollowMe; a user sees its own extensions; a reseller sees and limits its
organizations; a client sets its caller id and FollowMe. Another organization answers 404.

The world is the demo (tollway demo): acme-pbx is an organization of atlas-north (an L2 reseller, which
owns it directly), with its admin acme-admin; globex-pbx, made here, is an organization of north-city; alice
is a retail client of north-city.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.test_portal import SEALER, browser, csrf_of, log_in, user
from tollway.access.model import Role
from tollway.lines import service as lines
from tollway.organizations import model, sip
from tollway.organizations import service as organizations
from tollway.organizations.service import NewExtension, NewUser
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import ClientType, Status, client


@pytest.fixture
def org_world(demo_database: Database) -> Database:
    new = tree.NewNode(position=client(ClientType.PBX), login="globex-pbx", name="Globex")
    tree.create_node(demo_database, owner_login="north-city", new=new)
    organizations.create_user(demo_database, organization="globex-pbx", new=NewUser("gina", "Gina"))
    organizations.create_extension(
        demo_database, organization="globex-pbx", new=NewExtension("gina", "301"), sealer=SEALER
    )
    organizations.create_user(demo_database, organization="acme-pbx", new=NewUser("acme-reception", "Reception"))
    organizations.create_extension(
        demo_database, organization="acme-pbx", new=NewExtension("acme-reception", "100"), sealer=SEALER
    )
    lines.add_caller_id(demo_database, login="acme-pbx", number="+442079460100")  # verified: the house adds it
    for node, login, role in (
        ("acme-pbx", "acme-admin", Role.ORGANIZATION_ADMIN),
        ("acme-reception", "reception", Role.ORGANIZATION_USER),
        ("atlas-north", "an-admin", Role.RESELLER_ADMIN),
        ("north-city", "nc-admin", Role.RESELLER_ADMIN),
        ("alice", "alice", Role.CLIENT),
    ):
        user(demo_database, node, login, role)
    return demo_database


def signed_in(database: Database, login: str) -> TestClient:
    client = browser(database)
    assert log_in(client, login).status_code == 303
    return client


def post(client: TestClient, page: str, action: str, data: dict[str, str | list[str]]) -> object:
    form = client.get(page)
    assert form.status_code == 200, form.text
    return client.post(action, data={"csrf_token": csrf_of(form), **data}, follow_redirects=False)


def secret_in(text: str) -> str:
    found = re.search(r'<code id="secret">([A-Za-z0-9]+)</code>', text)
    assert found, "the page shows no secret"
    return found.group(1)


def test_an_organization_admin_creates_a_user_and_an_extension_whose_secret_is_shown_once(org_world: Database) -> None:
    admin = signed_in(org_world, "acme-admin")
    assert admin.get("/organization", follow_redirects=False).headers["location"] == "/organizations/acme-pbx"
    made = post(
        admin,
        "/organizations/acme-pbx",
        "/organizations/acme-pbx/users",
        {"user": "ann", "name": "Ann <b>Lee</b>", "email": "ann@acme.example", "language": "pl", "role": "member"},
    )
    assert (made.status_code, made.headers["location"]) == (303, "/organizations/acme-pbx/users/ann?saved=user_created")
    page = admin.get("/organizations/acme-pbx/users/ann?saved=user_created")
    assert "The user is created." in page.text and "Ann &lt;b&gt;Lee&lt;/b&gt;" in page.text

    created = post(
        admin,
        "/organizations/acme-pbx",
        "/organizations/acme-pbx/extensions",
        {"user": "ann", "number": "101", "voicemail": "on"},
    )
    assert created.status_code == 200
    secret = secret_in(created.text)
    assert len(secret) == model.SIP_SECRET_LENGTH
    extension = organizations.get_extension(org_world, organization="acme-pbx", number="101")
    assert (extension.user, extension.voicemail, extension.recording) == ("ann", True, False)
    # The HA1 the switch checks is that secret's, and the secret is on no other page.
    found = sip.lookup(org_world, domain="acme-pbx", username="101")
    assert found.ha1 == model.digest_ha1("101", "acme-pbx", secret)
    for path in (
        "/organizations/acme-pbx",
        "/organizations/acme-pbx/extensions/101",
        "/organizations/acme-pbx/users/ann",
    ):
        assert secret not in admin.get(path).text, path

    rotated = post(admin, "/organizations/acme-pbx/extensions/101", "/organizations/acme-pbx/extensions/101/secret", {})
    assert rotated.status_code == 200 and secret_in(rotated.text) != secret
    assert sip.lookup(org_world, domain="acme-pbx", username="101").ha1 == model.digest_ha1(
        "101", "acme-pbx", secret_in(rotated.text)
    )
    # A number already taken is refused on the form again, with the reason.
    taken = post(
        admin, "/organizations/acme-pbx", "/organizations/acme-pbx/extensions", {"user": "ann", "number": "101"}
    )
    assert taken.status_code == 409 and "The organization has an extension with this number already." in taken.text


def test_an_organization_admin_edits_and_suspends_a_user_and_an_extension(org_world: Database) -> None:
    admin = signed_in(org_world, "acme-admin")
    base = "/organizations/acme-pbx"
    edited = post(
        admin,
        f"{base}/users/acme-reception",
        f"{base}/users/acme-reception",
        {"name": "Front desk", "email": "desk@acme.example", "language": "es", "role": "admin"},
    )
    assert edited.status_code == 303
    view = organizations.get_user(org_world, organization="acme-pbx", login="acme-reception")
    assert (view.node.name, view.email, view.node.language, view.role) == (
        "Front desk",
        "desk@acme.example",
        "es",
        model.OrganizationRole.ADMIN,
    )
    suspended = post(
        admin, f"{base}/users/acme-reception", f"{base}/users/acme-reception/status", {"status": "suspended"}
    )
    assert suspended.status_code == 303
    assert tree.get_node(org_world, None, login="acme-reception").status is Status.SUSPENDED
    assert sip.lookup(org_world, domain="acme-pbx", username="100").status == "unknown"
    closed = post(admin, f"{base}/users/acme-reception", f"{base}/users/acme-reception/status", {"status": "closed"})
    assert closed.status_code == 422  # the portal offers active and suspended only

    flags = post(admin, f"{base}/extensions/100", f"{base}/extensions/100", {"recording": "on", "status": "disabled"})
    assert flags.status_code == 303
    extension = organizations.get_extension(org_world, organization="acme-pbx", number="100")
    assert (extension.voicemail, extension.recording, extension.status) == (False, True, model.ExtensionStatus.DISABLED)


def test_an_extension_takes_the_organizations_number_and_a_follow_me_list(org_world: Database) -> None:
    admin = signed_in(org_world, "acme-admin")
    page = "/organizations/acme-pbx/extensions/100"
    added = post(admin, page, f"{page}/caller-ids", {"do": "add", "number": "+442079460100"})
    assert (added.status_code, added.headers["location"]) == (303, f"{page}?saved=caller_id")
    not_ours = post(admin, page, f"{page}/caller-ids", {"do": "add", "number": "+442079460199"})
    assert not_ours.status_code == 422
    assert "An extension presents only its organization&#39;s verified numbers." in not_ours.text
    rows = {"number": ["+44 7700 900123", "", ""], "ring_seconds": ["25", "20", "20"]}
    saved = post(admin, page, f"{page}/follow-me", rows)
    assert saved.status_code == 303
    line = lines.get_line(org_world, login="acme-pbx", extension="100")
    assert (line.default_caller_id, [(e.number, e.ring_seconds) for e in line.follow_me]) == (
        "+442079460100",
        [("+447700900123", 25)],
    )
    too_short = post(admin, page, f"{page}/follow-me", {"number": ["+447700900123"], "ring_seconds": ["2"]})
    assert too_short.status_code == 422 and "A number rings for 5 to 120 seconds." in too_short.text

    # The user itself sees its extensions and sets its FollowMe; it has no organization page.
    reception = signed_in(org_world, "reception")
    mine = reception.get("/extensions")
    assert f'href="{page}"' in mine.text
    assert "+442079460100" in reception.get(page).text
    assert reception.get("/organizations/acme-pbx").status_code == 404
    assert 'action="/organizations/acme-pbx/extensions/100/secret"' not in reception.get(page).text
    off = post(reception, page, f"{page}/follow-me", {"number": [""], "ring_seconds": ["20"]})
    assert off.status_code == 303 and lines.get_line(org_world, login="acme-pbx", extension="100").follow_me == []


def test_nobody_opens_another_organizations_pages(org_world: Database) -> None:
    admin = signed_in(org_world, "acme-admin")
    for path in (
        "/organizations/globex-pbx",
        "/organizations/globex-pbx/users/gina",
        "/organizations/globex-pbx/extensions/301",
        "/organizations/no-such-pbx",
        "/organizations/acme-pbx/users/gina",  # globex's user, named under acme
        "/organizations/acme-pbx/extensions/301",
        "/organizations",  # the staff's list
        "/line",
    ):
        assert admin.get(path).status_code == 404, path
    for action, data in (
        ("/organizations/globex-pbx/users", {"user": "mole", "name": "Mole"}),
        ("/organizations/globex-pbx/extensions", {"user": "gina", "number": "302"}),
        ("/organizations/globex-pbx/extensions/301/secret", {}),
        ("/organizations/globex-pbx/extensions/301/delete", {}),
        ("/organizations/globex-pbx/settings", {"wallet": "organization"}),
        ("/organizations/globex-pbx/caller-ids", {"do": "add", "number": "+442079460100"}),
        ("/organizations/globex-pbx/extensions/301/follow-me", {"number": ["+447700900123"], "ring_seconds": ["20"]}),
    ):
        assert post(admin, "/organizations/acme-pbx", action, data).status_code == 404, action
    assert organizations.get_extension(org_world, organization="globex-pbx", number="301").status.value == "active"
    # A reseller sees its own organizations only; a client none.
    assert signed_in(org_world, "nc-admin").get("/organizations/acme-pbx").status_code == 404
    assert signed_in(org_world, "alice").get("/organizations/acme-pbx").status_code == 404


def test_a_reseller_lists_opens_and_limits_its_organizations(org_world: Database) -> None:
    reseller = signed_in(org_world, "an-admin")
    listed = reseller.get("/organizations")
    assert 'href="/organizations/acme-pbx"' in listed.text and "globex-pbx" in listed.text  # north-city's is below
    assert 'href="/accounts/alice"' not in listed.text
    assert 'href="/organizations/acme-pbx"' in reseller.get("/accounts/acme-pbx").text  # from its account too
    page = reseller.get("/organizations/acme-pbx")
    assert page.status_code == 200 and "acme-reception" in page.text
    limited = post(
        reseller, "/organizations/acme-pbx", "/organizations/acme-pbx/limits", {"users": "1", "extensions_per_user": ""}
    )
    assert limited.status_code == 303
    assert organizations.get_organization(org_world, login="acme-pbx").limits_in_force.users == 1
    # acme has its reception user: a second one is refused, with the reason.
    admin = signed_in(org_world, "acme-admin")
    refused = post(admin, "/organizations/acme-pbx", "/organizations/acme-pbx/users", {"user": "ann", "name": "Ann"})
    assert refused.status_code == 422 and "The organization has as many users as it may have." in refused.text
    # Its admin sets no limits: an owner's action.
    assert "/organizations/acme-pbx/limits" not in admin.get("/organizations/acme-pbx").text
    own = post(admin, "/organizations/acme-pbx", "/organizations/acme-pbx/limits", {"users": "9"})
    assert own.status_code == 403


def test_a_client_adds_a_caller_id_its_reseller_verifies_and_sets_its_follow_me(org_world: Database) -> None:
    alice = signed_in(org_world, "alice")
    added = post(alice, "/line", "/line/caller-ids", {"do": "add", "number": "+1 212 555 0100"})
    assert (added.status_code, added.headers["location"]) == (303, "/line?saved=caller_id")
    assert "Waiting for verification" in alice.get("/line").text
    assert post(alice, "/line", "/line/caller-ids", {"do": "verify", "number": "+12125550100"}).status_code == 422
    assert lines.get_line(org_world, login="alice").default_caller_id is None  # nothing verified to present
    # Her reseller verifies it from her account's page.
    reseller = signed_in(org_world, "nc-admin")
    verified = post(
        reseller, "/accounts/alice", "/accounts/alice/caller-ids", {"do": "verify", "number": "+12125550100"}
    )
    assert (verified.status_code, verified.headers["location"]) == (303, "/accounts/alice?saved=caller_id")
    assert lines.get_line(org_world, login="alice").default_caller_id == "+12125550100"
    assert "Presented by default" in alice.get("/line").text
    # A client has no staff pages: posting to one answers 404.
    assert (
        post(alice, "/line", "/accounts/alice/caller-ids", {"do": "remove", "number": "+12125550100"}).status_code
        == 404
    )
    rows = {"number": ["+12125550111", "+12125550122"], "ring_seconds": ["15", "30"]}
    assert post(alice, "/line", "/line/follow-me", rows).status_code == 303
    page = alice.get("/line?saved=follow_me")
    assert "FollowMe is saved." in page.text and "+12125550122 for 30 s" in page.text
    assert [e.ring_seconds for e in lines.get_line(org_world, login="alice").follow_me] == [15, 30]


def test_an_organization_admin_chooses_who_pays_renames_its_domain_and_deletes_an_extension(
    org_world: Database,
) -> None:
    admin = signed_in(org_world, "acme-admin")
    base = "/organizations/acme-pbx"
    secret = organizations.rotate_secret(org_world, organization="acme-pbx", number="100", sealer=SEALER)[1]
    saved = post(admin, base, f"{base}/settings", {"wallet": "organization", "sip_domain": "acme.pbx.example"})
    assert (saved.status_code, saved.headers["location"]) == (303, f"{base}?saved=settings")
    settings = organizations.get_organization(org_world, login="acme-pbx").settings
    assert (settings.wallet, settings.sip_domain) == (model.Wallet.ORGANIZATION, "acme.pbx.example")
    # The phone keeps its password: the HA1 is computed again for the new realm.
    found = sip.lookup(org_world, domain="acme.pbx.example", username="100")
    assert found.ha1 == model.digest_ha1("100", "acme.pbx.example", secret)
    # With extensions, their numbers keep their length.
    refused = post(admin, base, f"{base}/settings", {"wallet": "organization", "extension_digits": "4"})
    assert refused.status_code == 422 and "extensions_exist" in refused.text

    deleted = post(admin, f"{base}/extensions/100", f"{base}/extensions/100/delete", {})
    assert (deleted.status_code, deleted.headers["location"]) == (303, f"{base}?saved=extension_deleted")
    assert admin.get(f"{base}/extensions/100").status_code == 404
    assert sip.lookup(org_world, domain="acme.pbx.example", username="100").status == "unknown"
