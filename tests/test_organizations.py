"""Organizations through their use cases, on both databases: users, extensions, SIP secrets, limits, access."""

from __future__ import annotations

import hashlib

import pytest

from tests.organizations_world import SEALER, build_organizations, principal
from tollway.access.model import Forbidden, Role
from tollway.errors import NotFound, Refusal
from tollway.organizations import imports, model, store, trunks
from tollway.organizations import service as organizations
from tollway.organizations.model import Caps, ExtensionStatus, Limits, OrganizationRole, Wallet
from tollway.organizations.service import NewExtension, NewUser
from tollway.rating import service as rating
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import ClientType, NodeKind


def refused(reason: str) -> pytest.RaisesExc[Refusal]:
    return pytest.raises(Refusal, match=f"\\({reason}\\)")


def stored_extension(database: Database, organization: str, number: str) -> model.Extension:
    with database.reading() as connection:
        node = tree.require_node(connection, organization)
        found = store.find_extension(connection, node.id, number)
    assert found is not None
    return found


def test_two_users_with_three_extensions_each_share_their_organization(database: Database) -> None:
    build_organizations(database)
    admin = principal(database, "acme", Role.ORGANIZATION_ADMIN)
    for login, numbers in (("ann", ("101", "102", "103")), ("ben", ("201", "202", "203"))):
        user = organizations.create_user(
            database,
            organization="acme",
            new=NewUser(login=login, name=login.title(), email=f"{login}@acme.example"),
            principal=admin,
        )
        assert (user.node.position.client_type, user.node.parent_id) == (ClientType.USER, user.node.ancestor_ids[-1])
        for number in numbers:
            extension, secret = organizations.create_extension(
                database,
                organization="acme",
                new=NewExtension(user=login, number=number),
                sealer=SEALER,
                principal=admin,
            )
            assert (extension.sip_username, extension.sip_domain, extension.status) == (number, "acme", "active")
            assert len(secret) == model.SIP_SECRET_LENGTH and secret.isalnum()

    view = organizations.get_organization(database, login="acme", principal=admin)
    assert (view.users, view.extensions, view.settings.wallet) == (2, 6, Wallet.USER)
    ann = organizations.get_user(database, organization="acme", login="ann", principal=admin)
    assert (ann.extensions, ann.email, ann.role, ann.node.currency) == (
        ["101", "102", "103"],
        "ann@acme.example",
        OrganizationRole.MEMBER,
        "USD",
    )
    listed = organizations.list_extensions(database, organization="acme", principal=admin)
    assert [(e.number, e.user) for e in listed] == [
        ("101", "ann"),
        ("102", "ann"),
        ("103", "ann"),
        ("201", "ben"),
        ("202", "ben"),
        ("203", "ben"),
    ]
    # A user's account pays at its organization's tariff, and lists its own extensions.
    assert rating.tariff_of(database, login="ann") is not None
    assert rating.tariff_of(database, login="ann").name == "north-city:retail"  # type: ignore[union-attr]
    ben = principal(database, "ben", Role.ORGANIZATION_USER)
    own = organizations.list_extensions(database, organization="acme", user="ben", principal=ben)
    assert [e.number for e in own] == ["201", "202", "203"]
    # Users are the organization's, not north-city's clients: its clients limit does not count them.
    with database.reading() as connection:
        from tollway.tree import store as tree_store

        assert tree_store.count_open_clients_below(connection, tree.require_node(connection, "north-city")) == 4


def test_an_extensions_secret_is_stored_as_its_digest_ha1_and_sealed_and_rotates(database: Database) -> None:
    build_organizations(database)
    organizations.create_user(database, organization="acme", new=NewUser(login="ann", name="Ann"))
    _, secret = organizations.create_extension(
        database,
        organization="acme",
        new=NewExtension(user="ann", number="101", sip_username="ann-desk"),
        sealer=SEALER,
    )
    stored = stored_extension(database, "acme", "101")
    assert stored.ha1 == hashlib.md5(f"ann-desk:acme:{secret}".encode()).hexdigest()
    assert secret not in stored.secret_sealed and SEALER.unseal(stored.secret_sealed) == secret

    _, rotated = organizations.rotate_secret(database, organization="acme", number="101", sealer=SEALER)
    again = stored_extension(database, "acme", "101")
    assert rotated != secret and again.ha1 == model.digest_ha1("ann-desk", "acme", rotated)
    # A new SIP domain is a new digest realm: every HA1 is computed again from the sealed secret.
    organizations.configure(database, login="acme", sip_domain="acme.pbx.example.net", sealer=SEALER)
    assert stored_extension(database, "acme", "101").ha1 == model.digest_ha1(
        "ann-desk", "acme.pbx.example.net", rotated
    )


def test_limits_on_users_and_extensions_are_enforced_with_reasons(database: Database) -> None:
    build_organizations(database)
    city = principal(database, "north-city", Role.RESELLER_ADMIN)
    admin = principal(database, "acme", Role.ORGANIZATION_ADMIN)
    organizations.set_limits(database, login="acme", limits=Limits(users=2, extensions_per_user=3), principal=city)
    with pytest.raises(Forbidden):  # an organization never sets its own limits
        organizations.set_limits(database, login="acme", limits=Limits(users=9), principal=admin)

    for login in ("ann", "ben"):
        organizations.create_user(database, organization="acme", new=NewUser(login=login, name=login), principal=admin)
    with refused("users_limit_reached"):
        organizations.create_user(database, organization="acme", new=NewUser(login="cy", name="Cy"), principal=admin)
    for number in ("101", "102", "103"):
        organizations.create_extension(
            database, organization="acme", new=NewExtension(user="ann", number=number), sealer=SEALER, principal=admin
        )
    with refused("extensions_limit_reached"):
        organizations.create_extension(
            database, organization="acme", new=NewExtension(user="ann", number="104"), sealer=SEALER, principal=admin
        )
    organizations.create_extension(
        database, organization="acme", new=NewExtension(user="ben", number="104"), sealer=SEALER
    )
    view = organizations.get_organization(database, login="acme")
    assert (view.users, view.extensions, view.limits_in_force) == (2, 4, Limits(2, 3))
    # Nothing was left behind by the refusals.
    with database.reading() as connection:
        assert tree.require_node(connection, "acme") is not None
    with pytest.raises(NotFound):
        tree.get_node(database, None, login="cy")


def test_limits_narrow_down_the_tree_and_never_widen(database: Database) -> None:
    build_organizations(database)
    organizations.set_limits(database, login="atlas-north", limits=Limits(users=5, extensions_per_user=4))
    with refused("users_limit_wider_than_owner"):
        organizations.set_limits(database, login="north-city", limits=Limits(users=6, extensions_per_user=4))
    with refused("extensions_per_user_limit_wider_than_owner"):  # no limit is wider than any
        organizations.set_limits(database, login="acme", limits=Limits(users=3))
    organizations.set_limits(database, login="north-city", limits=Limits(users=3, extensions_per_user=4))
    organizations.set_limits(database, login="acme", limits=Limits(users=3, extensions_per_user=2))
    assert organizations.get_organization(database, login="acme").limits_in_force == Limits(3, 2)
    # globex has no limits of its own: its owners' apply.
    assert organizations.get_organization(database, login="globex").limits_in_force == Limits(3, 4)
    with refused("limits_not_applicable"):
        organizations.set_limits(database, login="alice", limits=Limits(users=1))
    with refused("users_limit_invalid"):
        organizations.set_limits(database, login="acme", limits=Limits(users=-1, extensions_per_user=1))


def test_extension_numbers_and_usernames_are_checked_and_unique_per_organization(database: Database) -> None:
    build_organizations(database)
    for organization in ("acme", "globex"):
        organizations.create_user(database, organization=organization, new=NewUser(login=f"u-{organization}", name="U"))
    new = NewExtension(user="u-acme", number="101")
    organizations.create_extension(database, organization="acme", new=new, sealer=SEALER)
    cases = {
        "extension_number_taken": NewExtension(user="u-acme", number="101", sip_username="other"),
        "sip_username_taken": NewExtension(user="u-acme", number="102", sip_username="101"),
        "extension_number_invalid": NewExtension(user="u-acme", number="1010"),
        "sip_username_invalid": NewExtension(user="u-acme", number="105", sip_username="Ann Desk"),
    }
    for reason, extension in cases.items():
        with refused(reason):
            organizations.create_extension(database, organization="acme", new=extension, sealer=SEALER)
    for number in ("012", "1a3", "10", "\uff11\uff10\uff11"):  # the last in full-width digits
        with refused("extension_number_invalid"):
            organizations.create_extension(
                database, organization="acme", new=NewExtension(user="u-acme", number=number), sealer=SEALER
            )
    with pytest.raises(NotFound):  # globex's user is not acme's
        organizations.create_extension(
            database, organization="acme", new=NewExtension(user="u-globex", number="109"), sealer=SEALER
        )
    # The same number in another organization is another extension.
    organizations.create_extension(
        database, organization="globex", new=NewExtension(user="u-globex", number="101"), sealer=SEALER
    )
    with refused("extensions_exist"):
        organizations.configure(database, login="acme", extension_digits=4)
    with refused("sip_domain_taken"):
        organizations.configure(database, login="acme", sip_domain="globex")
    organizations.configure(database, login="acme", wallet=Wallet.ORGANIZATION)
    assert organizations.get_organization(database, login="acme").settings.wallet is Wallet.ORGANIZATION


def test_an_organization_admin_cannot_see_another_organization(database: Database) -> None:
    build_organizations(database)
    organizations.create_user(database, organization="globex", new=NewUser(login="gus", name="Gus"))
    organizations.create_extension(
        database, organization="globex", new=NewExtension(user="gus", number="101"), sealer=SEALER
    )
    acme = principal(database, "acme", Role.ORGANIZATION_ADMIN)
    attempts = {
        "organization_not_found": [
            lambda: organizations.get_organization(database, login="globex", principal=acme),
            lambda: organizations.list_users(database, organization="globex", limit=10, principal=acme),
            lambda: organizations.create_user(
                database, organization="globex", new=NewUser(login="spy", name="Spy"), principal=acme
            ),
            lambda: organizations.rotate_secret(
                database, organization="globex", number="101", sealer=SEALER, principal=acme
            ),
            lambda: organizations.get_organization(database, login="alice", principal=acme),  # not an organization
        ],
        "extension_not_found": [
            lambda: organizations.get_extension(database, organization="globex", number="101", principal=acme),
        ],
        "user_not_found": [
            lambda: organizations.list_extensions(database, organization="globex", user="gus", principal=acme),
        ],
    }
    for reason, calls in attempts.items():
        for attempt in calls:
            with pytest.raises(NotFound) as hidden:
                attempt()
            assert hidden.value.reason == reason
    # The same answers as for an organization that does not exist.
    with pytest.raises(NotFound) as missing:
        organizations.get_organization(database, login="initech", principal=acme)
    assert missing.value.reason == "organization_not_found"


def test_users_roles_caps_and_details_change_through_the_organization(database: Database) -> None:
    build_organizations(database)
    admin = principal(database, "acme", Role.ORGANIZATION_ADMIN)
    organizations.create_user(database, organization="acme", new=NewUser(login="ann", name="Ann"), principal=admin)
    changed = organizations.update_user(
        database,
        organization="acme",
        login="ann",
        name="Ann Lee",
        email="ann@acme.example",
        language="pl",
        role=OrganizationRole.ADMIN,
        caps=Caps(day_micros=2_000_000, month_micros=30_000_000),
        principal=admin,
    )
    assert (changed.node.name, changed.node.language, changed.email, changed.role, changed.caps) == (
        "Ann Lee",
        "pl",
        "ann@acme.example",
        OrganizationRole.ADMIN,
        Caps(2_000_000, 30_000_000),
    )
    for field, value, reason in (
        ("email", "not-an-email", "email_invalid"),
        ("language", "Polish", "language_invalid"),
        ("name", "Ann\nLee", "name_invalid"),
    ):
        with refused(reason):
            organizations.update_user(database, organization="acme", login="ann", principal=admin, **{field: value})
    with refused("daily_cap_invalid"):
        organizations.update_user(database, organization="acme", login="ann", caps=Caps(day_micros=-1))
    ann = principal(database, "ann", Role.ORGANIZATION_USER)
    with pytest.raises(NotFound):  # a member manages nothing of its organization
        organizations.update_user(database, organization="acme", login="ann", name="Me", principal=ann)
    # The generic node creation refuses to make a user behind the organization's back.
    with refused("user_through_organization"):
        tree.create_node(
            database,
            owner_login="acme",
            new=tree.NewNode(
                position=tree.Position(NodeKind.CLIENT, client_type=ClientType.USER), login="x1", name="X"
            ),
        )


def test_an_extension_is_disabled_and_deleted_with_its_lines(database: Database) -> None:
    build_organizations(database)
    organizations.create_user(database, organization="acme", new=NewUser(login="ann", name="Ann"))
    organizations.create_extension(
        database, organization="acme", new=NewExtension(user="ann", number="101"), sealer=SEALER
    )
    updated = organizations.update_extension(
        database, organization="acme", number="101", voicemail=True, recording=True, status=ExtensionStatus.DISABLED
    )
    assert (updated.voicemail, updated.recording, updated.status) == (True, True, ExtensionStatus.DISABLED)
    organizations.delete_extension(database, organization="acme", number="101")
    with pytest.raises(NotFound):
        organizations.get_extension(database, organization="acme", number="101")
    organizations.create_extension(
        database, organization="acme", new=NewExtension(user="ann", number="101"), sealer=SEALER
    )


IMPORT = """login,name,email,language,extension,sip_username,secret,voicemail,recording
cara,Cara Diaz,cara@acme.example,es,301,,,yes,no
dan,Dan Ek,,pl,302,dan-desk,KeepThisSecret2024x,no,yes
=eve,Eve,,,303,,,,
"""


def test_voippanel_extension_accounts_become_users_with_one_extension_each(database: Database) -> None:
    build_organizations(database)
    imported = imports.import_extension_accounts(
        database, organization="acme", text=IMPORT.replace("=eve", "eve"), sealer=SEALER
    )
    assert [(i.extension.user, i.extension.number, i.extension.sip_username) for i in imported] == [
        ("cara", "301", "301"),
        ("dan", "302", "dan-desk"),
        ("eve", "303", "303"),
    ]
    assert imported[1].secret == "KeepThisSecret2024x"  # the phones keep working with the secret they have
    assert stored_extension(database, "acme", "302").ha1 == model.digest_ha1("dan-desk", "acme", "KeepThisSecret2024x")
    assert len(imported[0].secret) == model.SIP_SECRET_LENGTH
    cara = organizations.get_user(database, organization="acme", login="cara")
    assert (cara.node.name, cara.email, cara.node.language, cara.role, cara.extensions) == (
        "Cara Diaz",
        "cara@acme.example",
        "es",
        OrganizationRole.MEMBER,
        ["301"],
    )
    voicemail = organizations.get_extension(database, organization="acme", number="301")
    assert (voicemail.voicemail, voicemail.recording) == (True, False)
    assert imports.secrets_csv(imported).splitlines()[1:] == [
        f"cara,301,301,acme,{imported[0].secret}",
        "dan,302,dan-desk,acme,KeepThisSecret2024x",
        f"eve,303,303,acme,{imported[2].secret}",
    ]


def test_an_import_with_bad_lines_names_each_one_and_imports_nothing(database: Database) -> None:
    build_organizations(database)
    organizations.create_user(database, organization="acme", new=NewUser(login="ann", name="Ann"))
    organizations.create_extension(
        database, organization="acme", new=NewExtension(user="ann", number="101"), sealer=SEALER
    )
    bad = (
        "login,name,email,extension,secret,voicemail\n"
        "cara,Cara,cara@acme.example,301,,\n"
        "ann,Ann again,,302,,\n"  # line 3: ann exists
        "dan,Dan,not-an-email,303,,\n"  # line 4
        "eve,Eve,,101,,\n"  # line 5: 101 is ann's
        "fay,Fay,,301,,\n"  # line 6: 301 is cara's, on line 2
        "gus,Gus,,304,short,\n"  # line 7: a secret too short to keep
        "hal,Hal,,305,,maybe\n"  # line 8
    )
    with pytest.raises(imports.ImportRefused) as refused:
        imports.import_extension_accounts(database, organization="acme", text=bad, sealer=SEALER)
    assert refused.value.problems == [
        "line 3: login_taken: the login 'ann' is taken",
        "line 4: email_invalid: 'not-an-email' is not an email address",
        "line 5: extension_number_taken: acme has an extension 101 already",
        "line 6: extension_repeated: 301 is on line 2 already",
        "line 7: secret_invalid: a secret is 12 to 64 visible characters, without spaces or quotes",
        "line 8: voicemail_invalid: voicemail is yes or no",
    ]
    assert organizations.get_organization(database, login="acme").users == 1  # cara was not kept either
    with pytest.raises(imports.ImportRefused, match="line 1: the columns are"):
        imports.import_extension_accounts(database, organization="acme", text="user,number\nx,1\n", sealer=SEALER)
    organizations.set_limits(database, login="acme", limits=Limits(users=2))
    with pytest.raises(imports.ImportRefused) as refused:
        imports.import_extension_accounts(
            database, organization="acme", text=IMPORT.replace("=eve", "eve"), sealer=SEALER
        )
    assert refused.value.problems[0].startswith("line 3: users_limit_reached")


def test_a_trunks_networks_are_checked_never_overlap_another_trunks_and_name_one_account(database: Database) -> None:
    build_organizations(database, organizations=())
    for login in ("carrier-x", "carrier-y"):
        tree.create_node(
            database,
            owner_login="north-city",
            new=tree.NewNode(
                position=tree.Position(NodeKind.CLIENT, client_type=ClientType.WHOLESALE), login=login, name=login
            ),
        )
    assert trunks.set_networks(database, login="carrier-x", networks=["198.51.100.0/24", " 2001:db8::/48"]) == [
        "198.51.100.0/24",
        "2001:db8::/48",
    ]
    for networks, reason in (
        (["198.51.100.128/25"], "network_taken"),  # inside carrier-x's
        (["198.51.100.1/24"], "network_invalid"),  # host bits set
        (["10.0.0.0/7"], "network_too_wide"),
        (["192.0.2.0/24", "192.0.2.7"], "networks_overlap"),
        (["not an address"], "network_invalid"),
        ([f"192.0.2.{i}" for i in range(21)], "networks_too_many"),
    ):
        with refused(reason):
            trunks.set_networks(database, login="carrier-y", networks=networks)
    with refused("not_a_trunk"):
        trunks.set_networks(database, login="alice", networks=["192.0.2.7"])
    trunks.set_networks(database, login="carrier-y", networks=["192.0.2.7"])
    assert trunks.trunk_for(database, address="198.51.100.200") == "carrier-x"
    assert trunks.trunk_for(database, address="2001:db8::1") == "carrier-x"
    assert trunks.trunk_for(database, address="192.0.2.7") == "carrier-y"
    assert trunks.trunk_for(database, address="192.0.2.8") is None
    assert trunks.trunk_for(database, address="not-an-ip") is None
    # A switch of another reseller's subtree does not learn whose it is.
    tree.create_node(
        database,
        owner_login="atlas-north",
        new=tree.NewNode(position=tree.Position(NodeKind.RESELLER, level=1), login="other-l1", name="Other"),
    )
    other = principal(database, "other-l1", Role.RESELLER_ADMIN)
    assert trunks.trunk_for(database, address="192.0.2.7", principal=other) is None
