"""Lines: the caller ids and FollowMe of a client, and of an extension of an organization, on both databases."""

from __future__ import annotations

import pytest

from tests.organizations_world import SEALER, build_organizations, principal
from tollway.access.model import Forbidden, Role
from tollway.errors import NotFound, Refusal
from tollway.lines import model
from tollway.lines import service as lines
from tollway.lines.model import CallerId, FollowMeEntry
from tollway.organizations import service as organizations
from tollway.organizations.service import NewExtension, NewUser
from tollway.store.database import Database

LONDON = "+44 20 7946 0001"


def refused(reason: str) -> pytest.RaisesExc[Refusal]:
    return pytest.raises(Refusal, match=f"\\({reason}\\)")


def test_a_clients_number_is_presented_once_its_reseller_has_verified_it(database: Database) -> None:
    build_organizations(database, organizations=())
    alice = principal(database, "alice", Role.CLIENT)
    city = principal(database, "north-city", Role.RESELLER_ADMIN)

    asked = lines.add_caller_id(database, login="alice", number=LONDON, principal=alice)
    assert asked.caller_ids == [CallerId("+442079460001", verified=False, default=True)]
    assert asked.default_caller_id is None  # nothing may be presented before it is verified
    with pytest.raises(Forbidden):  # nobody verifies its own number
        lines.verify_caller_id(database, login="alice", number=LONDON, principal=alice)
    verified = lines.verify_caller_id(database, login="alice", number="+442079460001", principal=city)
    assert verified.default_caller_id == "+442079460001"

    # Added by her reseller, a number is verified at once; the default moves when she asks.
    lines.add_caller_id(database, login="alice", number="+1 (415) 555-0100", principal=city)
    moved = lines.set_default_caller_id(database, login="alice", number="+14155550100", principal=alice)
    assert [(c.number, c.verified, c.default) for c in moved.caller_ids] == [
        ("+442079460001", True, False),
        ("+14155550100", True, True),
    ]
    # Removing the default makes the first remaining number the default.
    after = lines.remove_caller_id(database, login="alice", number="+14155550100", principal=alice)
    assert after.default_caller_id == "+442079460001"


def test_a_line_is_invisible_to_anyone_who_may_not_see_its_account(database: Database) -> None:
    build_organizations(database, organizations=())
    bob = principal(database, "bob", Role.CLIENT)
    with pytest.raises(NotFound) as hidden:
        lines.get_line(database, login="alice", principal=bob)
    assert hidden.value.reason == "line_not_found"
    with pytest.raises(NotFound) as missing:
        lines.get_line(database, login="nobody", principal=bob)
    assert (missing.value.reason, missing.value.message) == ("line_not_found", "line nobody not found")
    with pytest.raises(NotFound):
        lines.set_follow_me(database, login="alice", entries=[], principal=bob)
    with pytest.raises(NotFound):  # a reseller has no line
        lines.get_line(database, login="north-city")


def test_bad_numbers_and_bad_follow_me_lists_are_refused_with_reasons(database: Database) -> None:
    build_organizations(database, organizations=())
    for number in ("12345", "+0123456789", "not a number", "+4420794600001234", "+44\x0020"):
        with refused("number_invalid"):
            lines.add_caller_id(database, login="alice", number=number)
    lines.add_caller_id(database, login="alice", number=LONDON)
    with refused("caller_id_exists"):
        lines.add_caller_id(database, login="alice", number="+442079460001")
    cases = {
        "ring_seconds_invalid": [FollowMeEntry("+447700900123", 4)],
        "follow_me_too_long": [FollowMeEntry(f"+4477009001{i:02}", 20) for i in range(11)],
        "follow_me_repeated": [FollowMeEntry("+447700900123"), FollowMeEntry("+44 7700 900123")],
        "number_invalid": [FollowMeEntry("101")],  # a client has no extensions to ring
    }
    for reason, entries in cases.items():
        with refused(reason):
            lines.set_follow_me(database, login="alice", entries=entries)
    assert lines.get_line(database, login="alice").follow_me == []


def test_a_clients_follow_me_is_kept_in_order_and_replaced_whole(database: Database) -> None:
    build_organizations(database, organizations=())
    alice = principal(database, "alice", Role.CLIENT)
    entries = [FollowMeEntry("+44 7700 900123", 25), FollowMeEntry("+33 1 23 45 67 89", 15)]
    view = lines.set_follow_me(database, login="alice", entries=entries, principal=alice)
    assert view.follow_me == [FollowMeEntry("+447700900123", 25), FollowMeEntry("+33123456789", 15)]
    assert model.follow_me_seconds(view.follow_me) == 40
    assert lines.set_follow_me(database, login="alice", entries=[], principal=alice).follow_me == []


def organization_with_extensions(database: Database) -> None:
    """acme (3-digit extensions): ann has 101 and 102, ben has 103; globex: gus has 101."""
    build_organizations(database)
    for organization, user, numbers in (
        ("acme", "ann", ("101", "102")),
        ("acme", "ben", ("103",)),
        ("globex", "gus", ("101",)),
    ):
        organizations.create_user(database, organization=organization, new=NewUser(login=user, name=user.title()))
        for number in numbers:
            new = NewExtension(user=user, number=number)
            organizations.create_extension(database, organization=organization, new=new, sealer=SEALER)


def test_an_extension_presents_one_of_its_organizations_verified_numbers(database: Database) -> None:
    organization_with_extensions(database)
    admin = principal(database, "acme", Role.ORGANIZATION_ADMIN)
    city = principal(database, "north-city", Role.RESELLER_ADMIN)
    ann = principal(database, "ann", Role.ORGANIZATION_USER)

    # The organization's own number, asked for by its admin, waits for north-city to verify it.
    assert (
        lines.add_caller_id(database, login="acme", number="+442079460100", principal=admin).default_caller_id is None
    )
    with refused("caller_id_not_organizations"):
        lines.add_caller_id(database, login="acme", extension="101", number="+442079460100", principal=ann)
    with pytest.raises(Forbidden):
        lines.verify_caller_id(database, login="acme", number="+442079460100", principal=admin)
    lines.verify_caller_id(database, login="acme", number="+442079460100", principal=city)
    lines.add_caller_id(database, login="acme", number="+442079460199", principal=city)

    view = lines.add_caller_id(database, login="acme", extension="101", number="+44 20 7946 0100", principal=ann)
    assert view.caller_ids == [CallerId("+442079460100", verified=True, default=True)]
    assert view.choices == ["+442079460100", "+442079460199"]
    assert view.default_caller_id == "+442079460100"
    # A number the organization gives up is no extension's any more.
    lines.remove_caller_id(database, login="acme", number="+442079460100", principal=admin)
    assert lines.get_line(database, login="acme", extension="101", principal=ann).caller_ids == []


def test_an_extensions_follow_me_rings_its_organizations_extensions_and_outside_numbers(database: Database) -> None:
    organization_with_extensions(database)
    ann = principal(database, "ann", Role.ORGANIZATION_USER)
    entries = [FollowMeEntry("101", 15), FollowMeEntry("103", 10), FollowMeEntry("+44 7700 900123", 20)]
    view = lines.set_follow_me(database, login="acme", extension="101", entries=entries, principal=ann)
    assert view.follow_me == [FollowMeEntry("101", 15), FollowMeEntry("103", 10), FollowMeEntry("+447700900123", 20)]
    with refused("follow_me_extension_unknown"):
        lines.set_follow_me(database, login="acme", extension="101", entries=[FollowMeEntry("109")], principal=ann)
    with refused("follow_me_own_number"):
        lines.set_follow_me(
            database, login="acme", extension="101", entries=[FollowMeEntry("103"), FollowMeEntry("101")], principal=ann
        )
    with refused("follow_me_per_extension"):
        lines.set_follow_me(database, login="acme", entries=[FollowMeEntry("+447700900123")])


def test_an_extension_is_seen_by_its_user_its_organizations_admins_and_the_owners_above_only(
    database: Database,
) -> None:
    organization_with_extensions(database)
    watchers = {
        "ann": principal(database, "ann", Role.ORGANIZATION_USER),
        "acme": principal(database, "acme", Role.ORGANIZATION_ADMIN),
        "north-city": principal(database, "north-city", Role.RESELLER_ADMIN),
    }
    for who in watchers.values():
        assert lines.get_line(database, login="acme", extension="101", principal=who).extension == "101"
    strangers = {
        "ben": principal(database, "ben", Role.ORGANIZATION_USER),  # same organization, another user
        "globex": principal(database, "globex", Role.ORGANIZATION_ADMIN),
        "gus": principal(database, "gus", Role.ORGANIZATION_USER),
        "alice": principal(database, "alice", Role.CLIENT),
    }
    for name, who in strangers.items():
        for extension in ("101", "199"):  # one that exists, one that does not: the same answer
            with pytest.raises(NotFound) as hidden:
                lines.get_line(database, login="acme", extension=extension, principal=who)
            assert (hidden.value.reason, hidden.value.message) == (
                "extension_not_found",
                f"extension acme/{extension} not found",
            ), name
