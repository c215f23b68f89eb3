"""Extensions of organizations through the real Kamailio (deploy/kamailio/kamailio.cfg) and sipp.

The phones are sipp processes on 127.0.0.2, outside TRUSTED_NETWORK (127.0.0.1 here), so Kamailio takes
them for extensions: it challenges their REGISTER and INVITE and checks the digest against the HA1 Tollway
gives it (POST /api/v1/sip/lookup). The carrier behind Kamailio is the sipp of tests/test_kamailio.py's rig,
on 127.0.0.1 (tests/sipp/uas.xml, which answers every call).

The world (tests/organizations_world.py): acme (an organization, SIP domain "acme") -> north-city (L1) ->
atlas-north (L2) -> atlas (L3) -> house. acme's users: ann with extensions 101, 102, 103 and ben with 201,
202, 203. Grants of 10 s, extended when 5 s are left. What each level pays for d seconds to a UK landline:
  a user of acme  0.10 a minute, per second (acme's tariff)     ceil(100,000 d / 60)
  acme            0.10 a minute, per second                     ceil(100,000 d / 60)
  north-city      0.06 a minute, in 6-second steps              1,000 x (d rounded up to a multiple of 6)
  atlas-north     0.05 a minute, by the minute                  50,000 for each minute begun
  atlas           0.04 a minute per second + 0.05 to connect    50,000 + ceil(40,000 d / 60)
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.calls_world import balance, micros
from tests.organizations_world import SEALER, build_organizations
from tests.test_kamailio import (
    CALL_SECONDS_MAX,
    LANDLINE,
    SCENARIOS,
    Rig,
    Tools,
    Trace,
    free_port,
    wait_until,
)
from tests.test_kamailio import _fresh_tables as _fresh_tables
from tests.test_kamailio import tools as tools
from tollway.balances import service as balances
from tollway.ledger.service import check
from tollway.lines import service as lines
from tollway.lines.model import FollowMeEntry
from tollway.organizations import service as organizations
from tollway.organizations import trunks
from tollway.organizations.model import Caps, Wallet
from tollway.organizations.service import NewExtension, NewUser
from tollway.rating import service as rating
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import ClientType, Status, client

PHONES = "127.0.0.2"  # where the extensions' phones are: not in TRUSTED_NETWORK
USERS = {"ann": ("101", "102", "103"), "ben": ("201", "202", "203")}
UP = ("acme", "north-city", "atlas-north", "atlas")
MOBILE_NUMBER = "+447700900123"


def landline(d: int) -> list[int]:
    """[the user, acme, north-city, atlas-north, atlas] for d seconds to the UK, from the prices above."""
    per_second = -(-100_000 * d // 60)
    return [per_second, per_second, 1_000 * (-(-d // 6) * 6), 50_000 * -(-d // 60), 50_000 + -(-40_000 * d // 60)]


# Worked out by hand (and checked against landline() above): every duration a test may see.
LANDLINE_CHARGES = {
    2: [3_334, 3_334, 6_000, 50_000, 51_334],
    3: [5_000, 5_000, 6_000, 50_000, 52_000],
    4: [6_667, 6_667, 6_000, 50_000, 52_667],
    9: [15_000, 15_000, 12_000, 50_000, 56_000],
    10: [16_667, 16_667, 12_000, 50_000, 56_667],
    11: [18_334, 18_334, 12_000, 50_000, 57_334],
    12: [20_000, 20_000, 12_000, 50_000, 58_000],
    13: [21_667, 21_667, 18_000, 50_000, 58_667],
    18: [30_000, 30_000, 18_000, 50_000, 62_000],
    19: [31_667, 31_667, 24_000, 50_000, 62_667],
    20: [33_334, 33_334, 24_000, 50_000, 63_334],
    21: [35_000, 35_000, 24_000, 50_000, 64_000],
}


def test_the_worked_out_charges_follow_the_prices() -> None:
    assert {d: landline(d) for d in LANDLINE_CHARGES} == LANDLINE_CHARGES


class Phones:
    """The extensions' secrets and the sipp phones a test runs, on 127.0.0.2."""

    def __init__(self, rig: Rig, secrets: dict[str, str]) -> None:
        self.rig = rig
        self.secrets = secrets

    def _sipp(self, scenario: str, name: str, user: str, secret: str, extra: list[str]) -> str:
        tools = self.rig.tools
        port = free_port(socket.SOCK_DGRAM)
        argv = [tools.sipp, "-sf", str(SCENARIOS / scenario), "-i", PHONES, "-p", str(port), "-nostdin", "-m", "1"]
        argv += ["-key", "domain", "acme", "-key", "user", user, "-au", user, "-ap", secret]
        argv += ["-cid_str", name, "-timeout", f"{CALL_SECONDS_MAX}s", "-timeout_error"]
        argv += ["-trace_msg", "-message_file", str(self.rig.directory / f"{name}.trace")]
        argv += ["-trace_err", "-error_file", str(self.rig.directory / f"{name}.errors")]
        self.rig.programs.start(name, [*argv, *extra, f"127.0.0.1:{self.rig.sip_port}"])
        return name

    def register(self, number: str, *, secret: str | None = None, contact: str | None = None) -> str:
        """REGISTER extension ``number`` (its username is its number); the registrar's final answer."""
        name = f"register-{number}-{free_port(socket.SOCK_DGRAM)}"
        key = secret if secret is not None else self.secrets[number]
        self._sipp("ext_register.xml", name, number, key, ["-key", "contact", contact or f"{PHONES}:5999"])
        trace = self.rig.finish(name)
        return [m for m in trace.messages if m.received][-1].first_line.removeprefix("SIP/2.0 ")

    def phone(self, number: str, scenario: str = "uas.xml") -> str:
        """A phone of extension ``number`` that takes one call (``scenario``), registered at its address."""
        port = free_port(socket.SOCK_DGRAM)
        name = f"phone-{number}"
        argv = [self.rig.tools.sipp, "-sf", str(SCENARIOS / scenario), "-i", PHONES, "-p", str(port), "-nostdin"]
        argv += ["-m", "1", "-trace_msg", "-message_file", str(self.rig.directory / f"{name}.trace")]
        argv += ["-trace_err", "-error_file", str(self.rig.directory / f"{name}.errors")]
        self.rig.programs.start(name, argv)
        wait_until(f"sipp ({name})", lambda: _bound(port), lambda: self.rig.programs.exited(name), 20)
        assert self.register(number, contact=f"{PHONES}:{port}") == "200 OK"
        return name

    def call(self, scenario: str, *, call_id: str, number: str, callee: str, hold_ms: int | None = None) -> str:
        extra = ["-s", callee] + (["-d", str(hold_ms)] if hold_ms is not None else [])
        return self._sipp(scenario, call_id, number, self.secrets[number], extra)


def _bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((PHONES, port))
        except OSError:
            return True
        return False


def final_answer(trace: Trace) -> str:
    """The INVITE's final answer after the digest (the first is the 407 challenge), as 'code phrase'."""
    finals = [
        m.first_line.removeprefix("SIP/2.0 ")
        for m in trace.messages
        if m.received and re.match(r"SIP/2\.0 [2-6]\d\d ", m.first_line) and "INVITE" in m.cseq
    ]
    assert finals[:1] == ["407 Proxy Authentication Required"], finals
    return finals[-1]


def received(rig: Rig, name: str, request: str) -> str:
    """The first ``request`` (INVITE, BYE ...) a sipp received, whole, from its message trace."""
    text = (rig.directory / f"{name}.trace").read_text(errors="replace")
    found = re.search(rf"UDP message received[^\n]*\n\n({request} [^\n]*\n.*?)(?=\n-{{20}}|\Z)", text, re.DOTALL)
    assert found is not None, f"{name} received no {request}"
    return found.group(1)


def acme(database: Database, *, wallet: Wallet = Wallet.USER) -> dict[str, str]:
    """ann and ben with three extensions each (usernames are their numbers); their secrets by number."""
    build_organizations(database)
    organizations.configure(database, login="acme", wallet=wallet)
    secrets = {}
    for user, numbers in USERS.items():
        organizations.create_user(database, organization="acme", new=NewUser(login=user, name=user.title()))
        for number in numbers:
            _, secret = organizations.create_extension(
                database, organization="acme", new=NewExtension(user=user, number=number), sealer=SEALER
            )
            secrets[number] = secret
    return secrets


@pytest.fixture
def rig(database: Database, tools: Tools, tmp_path: Path) -> Iterator[Rig]:
    started = Rig(database, tools, tmp_path)
    started.defines = {"TRUSTED_NETWORK": '"127.0.0.1/32"', "RING_SECONDS": "4"}
    try:
        yield started
    finally:
        started.stop()


def charges(view: dict[str, Any]) -> dict[str, int]:
    return {line["account"]: line["amount_micros"] for line in view["charges"]}


# -- REGISTER ----------------------------------------------------------------------------------------


def test_extensions_register_with_their_digest_and_a_wrong_secret_or_name_is_refused(
    database: Database, rig: Rig
) -> None:
    secrets = acme(database)
    rig.start()
    phones = Phones(rig, secrets)
    answers = {number: phones.register(number) for number in (*USERS["ann"], *USERS["ben"])}
    wrong = phones.register("101", secret=secrets["102"])
    unknown = phones.register("109", secret="not-a-secret-of-anyone")
    print(f"\nREGISTER answers: {answers}; a wrong secret: {wrong}; an unknown extension: {unknown}")

    assert set(answers.values()) == {"200 OK"}
    assert (wrong, unknown) == ("403 Forbidden", "403 Forbidden")
    # The challenge came first, in acme's realm.
    first = Trace.read(rig.directory / next(p.name for p in rig.directory.glob("register-101-*.trace")))
    assert first.messages[1].first_line == "SIP/2.0 401 Unauthorized"
    challenge = (rig.directory / next(p.name for p in rig.directory.glob("register-101-*.trace"))).read_text()
    assert 'WWW-Authenticate: Digest realm="acme"' in challenge


# -- calls inside the organization -----------------------------------------------------------------------


def test_an_internal_call_is_connected_with_its_caller_id_and_never_reaches_credit_control(
    database: Database, rig: Rig
) -> None:
    secrets = acme(database)
    # The flags Tollway keeps for the switch: 101 records its calls, 202 has voicemail.
    organizations.update_extension(database, organization="acme", number="101", recording=True)
    organizations.update_extension(database, organization="acme", number="202", voicemail=True)
    before = {login: balance(database, login) for login in ("ann", "ben", *UP)}
    rig.start()
    phones = Phones(rig, secrets)
    phone = phones.phone("202")
    trace = rig.finish(phones.call("ext_call.xml", call_id="inside-1", number="101", callee="202", hold_ms=2_000))
    rig.programs.wait(phone, 10)
    invite = received(rig, phone, "INVITE")
    print(f"\nan internal call: the caller's answer {final_answer(trace)}; the phone of 202 got:\n{invite}")

    assert final_answer(trace) == "200 OK"
    assert "P-Asserted-Identity: <sip:101@acme>" in invite
    assert "X-Tollway-Record: yes" in invite and "X-Tollway-Voicemail: yes" in invite
    assert rig.call_if_known("inside-1") is None  # Tollway was never asked: nothing recorded, nothing charged
    assert {login: balance(database, login) for login in ("ann", "ben", *UP)} == before
    assert check(database).ok


def test_an_unanswered_extension_follows_its_follow_me_to_a_mobile_which_it_pays_for(
    database: Database, rig: Rig
) -> None:
    secrets = acme(database)
    balances.topup(database, login="ann", amount_micros=micros("1"), transfer_id="ann-1")
    follow_me = [FollowMeEntry("101", 5), FollowMeEntry(MOBILE_NUMBER, 20)]
    lines.set_follow_me(database, login="acme", extension="101", entries=follow_me)
    rig.start()
    phones = Phones(rig, secrets)
    phone = phones.phone("101", "uas_no_answer.xml")
    call = phones.call("ext_call.xml", call_id="follow-1", number="201", callee="101", hold_ms=3_000)
    trace = rig.finish(call)
    rig.programs.wait(phone, 10)
    leg = rig.ended("follow-1&fm2")
    carrier_invite = received(rig, "callee", "INVITE")
    print(
        f"\nFollowMe: 101's phone rang and was cancelled; the caller got {final_answer(trace)} from the mobile; "
        f"Tollway charged the forwarded leg {leg['call_id']} ({leg['account']}, {leg['caller']}) "
        f"{leg['duration_seconds']} s: {charges(leg)}"
    )

    assert final_answer(trace) == "200 OK"
    assert "CANCEL" in (rig.directory / f"{phone}.trace").read_text()
    assert carrier_invite.startswith(f"INVITE sip:{MOBILE_NUMBER}@")
    # ann, whose extension forwards the call, pays for the leg to the mobile; ben, who called 101, nothing.
    assert (leg["account"], leg["caller"], leg["number"]) == ("ann", "acme/101", "447700900123")
    duration = leg["duration_seconds"]
    assert duration in (2, 3, 4)
    assert list(charges(leg).values()) == LANDLINE_CHARGES[duration]
    assert balance(database, "ben") == 0
    assert check(database).ok


# -- calls to the outside --------------------------------------------------------------------------------


def test_parallel_outside_calls_of_one_user_drain_its_shared_balance_and_are_cut_mid_call(
    database: Database, rig: Rig
) -> None:
    secrets = acme(database)
    balances.topup(database, login="ann", amount_micros=micros("0.05"), transfer_id="ann-1")  # 30 s in all
    rig.start()
    phones = Phones(rig, secrets)
    phones.call("ext_call_wait_bye.xml", call_id="drain-101", number="101", callee=LANDLINE)
    first = rig.wait_for("drain-101", lambda view: view["status"] == "answered", "answered")
    phones.call("ext_call_wait_bye.xml", call_id="drain-102", number="102", callee=LANDLINE)
    second = rig.wait_for("drain-102", lambda view: view["status"] == "answered", "answered")
    cuts = {name: rig.finish(name).cut_off_seconds() for name in ("drain-101", "drain-102")}
    ended = {name: rig.ended(name) for name in ("drain-101", "drain-102")}
    print(f"\nann's two calls: cut {cuts} s after their answers")
    for name, view in ended.items():
        grant, end, duration = view["grant_seconds"], view["end_reason"], view["duration_seconds"]
        print(f"  {name}: grant {grant} s, {end}, {duration} s, {charges(view)}")

    # Both are ann's: the first may last 30 s (10 reserved), the second what is left, 19 s.
    assert (first["max_seconds"], first["limited_by"], first["account"]) == (30, "ann", "ann")
    assert (second["max_seconds"], second["limited_by"], second["caller"]) == (19, "ann", "acme/102")
    # The keeper extended them when 5 s were left: ann's balance paid 19 s of one and 10 of the other (in
    # the order they came due), and Tollway cut each at the end of its last grant.
    assert sorted(view["grant_seconds"] for view in ended.values()) == [10, 19]
    for name, view in ended.items():
        assert view["final"] and view["reason"] == "insufficient_funds" and view["level"] == "ann"
        assert view["grant_seconds"] - 1 <= view["duration_seconds"] <= view["grant_seconds"] + 2
        assert abs(cuts[name] - view["grant_seconds"]) <= 2.5
        assert list(charges(view).values()) == LANDLINE_CHARGES[view["duration_seconds"]]
    spent = [sum(column) for column in zip(*(charges(v).values() for v in ended.values()), strict=True)]
    assert micros("0.05") - balance(database, "ann") == spent[0]
    assert [
        micros(amount) - balance(database, login) for login, amount in zip(UP, ("50", "100", "100", "100"), strict=True)
    ] == spent[1:]
    assert check(database).ok


def test_a_users_daily_cap_cuts_its_call_when_the_organization_pays_and_the_caller_id_is_presented(
    database: Database, rig: Rig
) -> None:
    secrets = acme(database, wallet=Wallet.ORGANIZATION)
    organizations.update_user(database, organization="acme", login="ann", caps=Caps(day_micros=micros("0.02")))
    lines.add_caller_id(database, login="acme", number="+442079460100")
    lines.add_caller_id(database, login="acme", extension="103", number="+442079460100")
    rig.start()
    phones = Phones(rig, secrets)
    trace = rig.finish(phones.call("ext_call_wait_bye.xml", call_id="cap-1", number="103", callee=LANDLINE))
    call = rig.ended("cap-1")
    invite = received(rig, "callee", "INVITE")
    cut = trace.cut_off_seconds()
    print(f"\nann's daily cap of 0.02: her call was cut {cut:.3f} s after its answer; {charges(call)}")
    refused = rig.finish(phones.call("ext_call_refused.xml", call_id="cap-2", number="101", callee=LANDLINE))

    # acme pays, but ann may spend 0.02 a day at acme's price: 12 s, which Kamailio's timeout enforces.
    assert (call["account"], call["max_seconds"], call["limited_by"]) == ("acme", 12, "ann:day_cap")
    assert abs(cut - 12) <= 1.0
    duration = call["duration_seconds"]
    assert duration in (11, 12, 13)
    expected = LANDLINE_CHARGES[duration]
    assert charges(call) == {
        "acme": expected[1],
        "north-city": expected[2],
        "atlas-north": expected[3],
        "atlas": expected[4],
        "ann:day_cap": expected[0],
    }
    assert balance(database, "ann") == 0 and micros("50") - balance(database, "acme") == expected[1]
    assert "P-Asserted-Identity: <sip:+442079460100@acme>" in invite
    assert "X-Tollway-Record" not in invite  # 103 does not record its calls
    # The cap is spent for today, on any of her extensions.
    assert final_answer(refused) == "402 spending_cap_reached"
    assert check(database).ok


def test_an_extension_with_a_wrong_secret_or_another_organizations_name_cannot_call(
    database: Database, rig: Rig
) -> None:
    secrets = acme(database)
    organizations.update_user(database, organization="acme", login="ben", status=Status.SUSPENDED)
    rig.start()
    phones = Phones(rig, secrets | {"109": "no-such-extension-secret"})
    wrong = Phones(rig, secrets | {"101": secrets["201"]})
    answers = [
        final_answer(rig.finish(wrong.call("ext_call_refused.xml", call_id="bad-1", number="101", callee=LANDLINE))),
        final_answer(rig.finish(phones.call("ext_call_refused.xml", call_id="bad-2", number="109", callee=LANDLINE))),
        # ben is suspended by his organization: his own secret opens nothing.
        final_answer(rig.finish(phones.call("ext_call_refused.xml", call_id="bad-3", number="201", callee=LANDLINE))),
    ]
    assert answers == ["403 Forbidden", "403 Forbidden", "403 Forbidden"]
    assert all(rig.call_if_known(call_id) is None for call_id in ("bad-1", "bad-2", "bad-3"))


# -- wholesale trunks by address -----------------------------------------------------------------------


def test_a_wholesale_trunk_is_recognised_by_the_address_its_calls_come_from(database: Database, rig: Rig) -> None:
    build_organizations(database, organizations=())
    tree.create_node(
        database,
        owner_login="north-city",
        new=tree.NewNode(position=client(ClientType.WHOLESALE), login="carrier-x", name="Carrier X"),
    )
    rating.assign_tariff(database, login="carrier-x", tariff="north-city:retail")
    balances.topup(database, login="carrier-x", amount_micros=micros("1"), transfer_id="carrier-x-1")
    trunks.set_networks(database, login="carrier-x", networks=["127.0.0.3/32"])
    rig.start()
    argv = [rig.tools.sipp, "-sf", str(SCENARIOS / "uac_hangup.xml"), "-i", "127.0.0.3", "-nostdin", "-m", "1"]
    argv += ["-p", str(free_port(socket.SOCK_DGRAM)), "-s", LANDLINE, "-key", "account", "anything", "-d", "3000"]
    argv += ["-cid_str", "trunk-1", "-timeout", f"{CALL_SECONDS_MAX}s", "-timeout_error"]
    argv += ["-trace_msg", "-message_file", str(rig.directory / "trunk-1.trace")]
    argv += ["-trace_err", "-error_file", str(rig.directory / "trunk-1.errors")]
    rig.programs.start("trunk-1", [*argv, f"127.0.0.1:{rig.sip_port}"])
    trace = rig.finish("trunk-1")
    call = rig.ended("trunk-1")
    print(f"\na call from 127.0.0.3: {trace.final_answer()}, charged to {call['account']}: {charges(call)}")

    # No digest asked: the address is carrier-x's, whatever its From says, and carrier-x pays.
    assert trace.final_answer() == "200 OK"
    assert call["account"] == "carrier-x"
    duration = call["duration_seconds"]
    assert duration in (2, 3, 4)
    expected = LANDLINE_CHARGES[duration]
    assert charges(call) == {
        "carrier-x": expected[0],
        "north-city": expected[2],
        "atlas-north": expected[3],
        "atlas": expected[4],
    }
    assert micros("1") - balance(database, "carrier-x") == expected[0]
    assert check(database).ok
