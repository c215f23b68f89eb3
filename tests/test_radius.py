"""The RADIUS server driven by the real ``radclient`` (FreeRADIUS), on SQLite and PostgreSQL.

The world (tests/calls_world.py): alice -> north-city (L1) -> atlas-north (L2) -> atlas (L3) -> house.
A call to the UK costs, at each level's own tariff:
  alice       0.10 a minute, per second              95 s: 158,334 µ
  north-city  0.06 a minute, in 6-second steps        95 s (96):  96,000 µ
  atlas-north 0.05 a minute, by the minute            95 s (120): 100,000 µ
  atlas       0.04 a minute + 0.05 to connect         95 s: 113,334 µ

Every request below is a real packet from ``radclient``, or bytes written by hand to a UDP socket for
what radclient will not send (malformed packets). A gateway's disconnect port is played by a UDP
listener that decodes what it gets with pyrad and answers it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyrad import packet as radius_packet

from tests.calls_world import UK, available, build_world, micros
from tollway.access import service as access
from tollway.access.model import Role
from tollway.balances import service as balances
from tollway.calls import keeper
from tollway.calls import service as calls
from tollway.calls.notify import Disconnect, NotifyFailed, NotifyFailure, RadiusNotifier, notifier_for
from tollway.calls.service import CallSettings
from tollway.config import RadiusClient
from tollway.errors import Refusal
from tollway.radius import model
from tollway.radius.attributes import dictionary
from tollway.radius.model import ReturnCode, SessionKey
from tollway.radius.server import RadiusServer
from tollway.rating.loading import TABLES
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import Status

RADCLIENT = shutil.which("radclient")
SECRET = "s3cret-nas-1"
NAS = "127.0.0.1"
LAX_NAS = "127.0.0.3"  # a gateway that cannot send a Message-Authenticator
STRANGER = "127.0.0.2"  # no NAS of ours
CONF_ID = "12AB34CD 56EF7890 0A0B0C0D 0E0F1011"
CALL_ID = "h323-12AB34CD-56EF7890-0A0B0C0D-0E0F1011"
NO_ANSWER_SECONDS = 0.5  # how long radclient waits for an answer that must not come
MINUTE = CallSettings(grant_seconds=60, extend_lead_seconds=30, stale_margin_seconds=30, ring_timeout_seconds=120)
LEVELS = ("alice", "north-city", "atlas-north", "atlas")


@pytest.fixture(autouse=True)
def _fresh_tables() -> None:
    TABLES.clear()
    calls.LEVELS.clear()


@pytest.fixture(scope="session")
def radclient() -> str:
    if RADCLIENT is None:
        reason = "radclient (freeradius-utils) is not installed: run scripts/install-switch-tools"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the RADIUS tests)")
        pytest.skip(reason)
    return RADCLIENT


# -- a gateway's disconnect port -------------------------------------------------------------------------


class DisconnectPort:
    """Records every Disconnect-Request that verifies with the NAS's secret, and answers it as told:
    "ack", "nak" (with ``error_cause``), "silent", or "forged" (an ACK signed with another secret)."""

    def __init__(self, secret: bytes = SECRET.encode(), answer: str = "ack", error_cause: int = 503) -> None:
        self.secret = secret
        self.answer = answer
        self.error_cause = error_cause
        self.received: list[Any] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.url = f"udp://127.0.0.1:{self._socket.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            request = radius_packet.CoAPacket(secret=self.secret, dict=dictionary(), packet=data)
            if request.code != radius_packet.DisconnectRequest or not request.VerifyCoARequest():
                continue
            self.received.append(request)
            if self.answer == "silent":
                continue
            reply = request.CreateReply()
            if self.answer == "nak":
                reply.code = radius_packet.DisconnectNAK
                reply["Error-Cause"] = self.error_cause
            if self.answer == "forged":
                reply.secret = b"not-the-secret"
            self._socket.sendto(reply.ReplyPacket(), source)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def disconnect_port() -> Iterator[DisconnectPort]:
    port = DisconnectPort()
    yield port
    port.close()


def attributes_of(request: Any) -> dict[str, list[Any]]:
    return {
        name: request[name]
        for name in ("User-Name", "Acct-Session-Id", "h323-conf-id", "h323-call-origin")
        if name in request
    }


# -- the server, its world, and radclient ----------------------------------------------------------------


@dataclass
class Radius:
    auth_port: int
    acct_port: int
    database: Database


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> dict[str, RadiusClient]:
    """The NAS in the configuration, as the keeper's notifier reads it too (radius_clients)."""
    configured = {
        NAS: {"secret": SECRET, "switch": "gw-1"},
        LAX_NAS: {"secret": SECRET, "switch": "gw-1", "require_message_authenticator": False},
    }
    monkeypatch.setenv("TOLLWAY_RADIUS_CLIENTS", json.dumps(configured))
    return {address: RadiusClient.model_validate(client) for address, client in configured.items()}


@pytest.fixture
def radius(
    database: Database, clients: dict[str, RadiusClient], disconnect_port: DisconnectPort, radclient: str
) -> Iterator[Radius]:
    build_world(database)
    calls.create_switch(database, name="gw-1", node_login="house", notify_kind="radius", notify_url=disconnect_port.url)
    server = RadiusServer(database, clients, host="127.0.0.1", auth_port=0, acct_port=0, call_settings=MINUTE)
    auth_port, acct_port = server.start()
    yield Radius(auth_port, acct_port, database)
    server.stop()


@dataclass
class Reply:
    code: str | None  # "Access-Accept", "Access-Reject", "Accounting-Response"; None: no answer came
    attributes: dict[str, str]


def send(
    port: int, kind: str, attributes: dict[str, str | int], *, secret: str = SECRET, tmp: Path, wait: float = 10.0
) -> Reply:
    """One request from radclient, as a gateway sends it; what came back, as radclient read it. It waits
    ``wait`` seconds for the answer: long enough for a machine busy with other tests (a test that expects
    no answer waits ``NO_ANSWER_SECONDS``)."""
    lines = []
    for name, value in attributes.items():
        bare = isinstance(value, int) or value.startswith("0x") or name == "Packet-Src-IP-Address"
        lines.append(f"{name} = {value}" if bare else f'{name} = "{value}"')
    request = tmp / f"request-{uuid.uuid4().hex}.txt"
    request.write_text("\n".join(lines) + "\n")
    command = [str(RADCLIENT), "-x", "-t", str(wait), "-r", "1", "-f", str(request), f"127.0.0.1:{port}", kind, secret]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=30)
    output = ran.stdout + ran.stderr
    assert re.search(r"^Sent \S+ Id \d+ ", output, re.MULTILINE), f"radclient sent nothing:\n{output}"
    received = re.search(r"^Received (\S+) Id \d+ from .*?\n((?:\t.*\n?)*)", output, re.MULTILINE)
    if received is None:
        assert "No reply from server" in output, output
        return Reply(None, {})
    found = dict(re.findall(r'^\t(\S+) = "?(.*?)"?$', received.group(2), re.MULTILINE))
    return Reply(received.group(1), found)


def authorize(radius: Radius, tmp: Path, **extra: str | int) -> Reply:
    attributes: dict[str, str | int] = {
        "User-Name": "alice",
        "Calling-Station-Id": "+1 555 0100",
        "Called-Station-Id": UK,
        "h323-conf-id": f"h323-conf-id={CONF_ID}",
        "h323-call-origin": "h323-call-origin=answer",
        "Message-Authenticator": "0x00",
    }
    attributes |= extra
    return send(radius.auth_port, "auth", {k: v for k, v in attributes.items() if v != ""}, tmp=tmp)


def account(radius: Radius, tmp: Path, status: int, **extra: str | int) -> Reply:
    attributes: dict[str, str | int] = {
        "User-Name": "alice",
        "Acct-Status-Type": status,
        "Calling-Station-Id": "+1 555 0100",
        "Called-Station-Id": UK,
        "h323-conf-id": f"h323-conf-id={CONF_ID}",
        "h323-call-origin": "h323-call-origin=originate",
    }
    attributes |= extra
    return send(radius.acct_port, "acct", {k: v for k, v in attributes.items() if v != ""}, tmp=tmp)


START, STOP, INTERIM, ACCOUNTING_ON = 1, 2, 3, 7


def availables(database: Database) -> list[int]:
    return [available(database, login) for login in LEVELS]


# -- authorization ------------------------------------------------------------------------------------


def test_an_access_request_is_accepted_for_exactly_what_the_poorest_level_can_pay(
    radius: Radius, tmp_path: Path
) -> None:
    # The world's alice has 10.00: all but 0.20 is taken away.
    balances.adjust(radius.database, login="alice", amount_micros=-micros("9.80"), reason="test", transfer_id="t-1")
    reply = authorize(radius, tmp_path)
    assert reply == Reply(
        "Access-Accept",
        {
            "Message-Authenticator": reply.attributes["Message-Authenticator"],
            "h323-return-code": "h323-return-code=0",
            "h323-credit-time": "h323-credit-time=120",  # 0.20 at 0.10 a minute, per second
            "Session-Timeout": "120",
        },
    )
    call = calls.get_call(radius.database, CALL_ID)
    assert (call["status"], call["max_seconds"], call["limited_by"], call["caller"]) == (
        "authorized",
        120,
        "alice",
        "+1 555 0100",
    )
    # A retransmission (the gateway lost the answer) gets the same answer and reserves nothing more.
    before = availables(radius.database)
    assert authorize(radius, tmp_path).attributes["h323-credit-time"] == "h323-credit-time=120"
    assert availables(radius.database) == before


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        ({"User-Name": "mallory"}, ReturnCode.INVALID_ACCOUNT, "there is no account mallory"),
        ({"User-Name": "bob"}, ReturnCode.ZERO_BALANCE, f"bob cannot pay for a call to {UK}"),
        ({"Called-Station-Id": "+81 3 1234 5678"}, ReturnCode.NUMBER_BLOCKED, "has no rate for +81 3 1234 5678"),
        ({"Called-Station-Id": "hello"}, ReturnCode.NUMBER_BLOCKED, "hello is not a telephone number"),
        ({"User-Name": "north-city"}, ReturnCode.USER_DENIED, "north-city is not an account that makes calls"),
        ({"Called-Station-Id": ""}, ReturnCode.INVALID_ARGUMENT, "needs User-Name, Called-Station-Id"),
        ({"h323-conf-id": "h323-conf-id=a b/c"}, ReturnCode.INVALID_ARGUMENT, "needs User-Name"),
    ],
)
def test_a_refused_call_gets_an_access_reject_with_the_cisco_return_code(
    radius: Radius, tmp_path: Path, extra: dict[str, str], code: ReturnCode, message: str
) -> None:
    balances.adjust(radius.database, login="bob", amount_micros=-micros("10"), reason="test", transfer_id="t-1")
    reply = authorize(radius, tmp_path, **extra)
    assert reply.code == "Access-Reject"
    assert reply.attributes["h323-return-code"] == f"h323-return-code={int(code)}"
    assert message in reply.attributes["Reply-Message"]
    assert "h323-credit-time" not in reply.attributes


def test_a_suspended_account_and_a_full_account_are_refused_as_denied_and_in_use(
    radius: Radius, tmp_path: Path
) -> None:
    tree.set_limits(radius.database, login="bob", clients_limit=None, concurrent_calls_limit=1)
    assert authorize(radius, tmp_path, **{"User-Name": "bob", "h323-conf-id": "B1"}).code == "Access-Accept"
    in_use = authorize(radius, tmp_path, **{"User-Name": "bob", "h323-conf-id": "B2"})
    assert in_use.attributes["h323-return-code"] == "h323-return-code=3"
    tree.set_status(radius.database, login="north-city", status=Status.SUSPENDED)
    denied = authorize(radius, tmp_path)
    assert (denied.code, denied.attributes["h323-return-code"]) == ("Access-Reject", "h323-return-code=7")
    assert denied.attributes["Reply-Message"] == "north-city is suspended"


def test_a_pin_in_user_password_must_be_the_accounts_password(radius: Radius, tmp_path: Path) -> None:
    access.create_user(
        radius.database, None, node_login="alice", login="alice", password="4711-and-more", role=Role.CLIENT
    )
    wrong = authorize(radius, tmp_path, **{"User-Password": "1234-and-more"})
    assert (wrong.code, wrong.attributes["h323-return-code"]) == ("Access-Reject", "h323-return-code=2")
    with pytest.raises(Refusal):
        calls.get_call(radius.database, CALL_ID)  # nothing was authorized
    right = authorize(radius, tmp_path, **{"User-Password": "4711-and-more"})
    assert (right.code, right.attributes["h323-return-code"]) == ("Access-Accept", "h323-return-code=0")
    # A login named like the account but belonging to another node is not the account's: its password is no PIN.
    access.create_user(
        radius.database, None, node_login="north-city", login="bob", password="0815-and-more", role=Role.RESELLER_ADMIN
    )
    bob = authorize(radius, tmp_path, **{"User-Name": "bob", "User-Password": "0815-and-more", "h323-conf-id": "B1"})
    assert (bob.code, bob.attributes["h323-return-code"]) == ("Access-Reject", "h323-return-code=2")


# -- accounting --------------------------------------------------------------------------------------


def test_start_interim_and_stop_drive_the_call_and_stop_charges_every_level_exactly(
    radius: Radius, tmp_path: Path
) -> None:
    before = availables(radius.database)
    assert authorize(radius, tmp_path).code == "Access-Accept"
    assert account(radius, tmp_path, START).code == "Accounting-Response"
    assert calls.get_call(radius.database, CALL_ID)["status"] == "answered"
    # 35 s into a 60 s grant, less than the 30 s lead is left: the interim update extends it at every level.
    assert account(radius, tmp_path, INTERIM, **{"Acct-Session-Time": 35}).code == "Accounting-Response"
    assert calls.get_call(radius.database, CALL_ID)["grant_seconds"] == 120
    assert [b - a for b, a in zip(before, availables(radius.database), strict=True)] == [
        200_000,
        120_000,
        100_000,
        130_000,
    ]
    # The caller's leg (h323-call-origin answer) is acknowledged but not billed: its time includes the IVR.
    other_leg = account(radius, tmp_path, STOP, **{"Acct-Session-Time": 400, "h323-call-origin": "answer"})
    assert other_leg.code == "Accounting-Response"
    assert calls.get_call(radius.database, CALL_ID)["status"] == "answered"
    stop = {"Acct-Session-Time": 95, "h323-disconnect-cause": "h323-disconnect-cause=10"}
    assert account(radius, tmp_path, STOP, **stop).code == "Accounting-Response"
    ended = calls.get_call(radius.database, CALL_ID)
    assert (ended["status"], ended["duration_seconds"], ended["end_reason"]) == (
        "ended",
        95,
        "h323-disconnect-cause=10",
    )
    charged = [158_334, 96_000, 100_000, 113_334]
    assert [line["amount_micros"] for line in ended["charges"]] == charged
    assert [b - a for b, a in zip(before, availables(radius.database), strict=True)] == charged
    # The gateway did not get the answer and sends the Stop again, and then a wrong one: nothing changes.
    assert account(radius, tmp_path, STOP, **stop).code == "Accounting-Response"
    assert account(radius, tmp_path, STOP, **{"Acct-Session-Time": 300}).code == "Accounting-Response"
    assert calls.get_call(radius.database, CALL_ID) == ended
    assert [b - a for b, a in zip(before, availables(radius.database), strict=True)] == charged


def test_a_stop_reporting_far_longer_than_was_granted_is_charged_the_grant_and_flagged(
    radius: Radius, tmp_path: Path
) -> None:
    # alice has 0.20: 120 s at 0.10 a minute, of which the first 60 s are granted and reserved.
    balances.adjust(radius.database, login="alice", amount_micros=-micros("9.80"), reason="test", transfer_id="t-1")
    assert authorize(radius, tmp_path).code == "Access-Accept"
    assert account(radius, tmp_path, START).code == "Accounting-Response"
    stop = {"Acct-Session-Time": 20_000, "h323-disconnect-cause": "h323-disconnect-cause=10"}
    assert account(radius, tmp_path, STOP, **stop).code == "Accounting-Response"
    ended = calls.get_call(radius.database, CALL_ID)
    assert (ended["status"], ended["duration_seconds"], ended["reported_duration_seconds"]) == ("ended", 60, 20_000)
    assert ended["overshoot_reason"] == "beyond_grant"
    assert [line["amount_micros"] for line in ended["charges"]] == [100_000, 60_000, 50_000, 90_000]
    assert available(radius.database, "alice") == micros("0.10")  # never below her floor


def test_accounting_for_a_call_never_authorized_authorizes_it_late_by_its_acct_session_id(
    radius: Radius, tmp_path: Path
) -> None:
    session = {"h323-conf-id": "", "h323-call-origin": "", "Acct-Session-Id": "0000002A"}
    assert account(radius, tmp_path, START, **session).code == "Accounting-Response"
    assert calls.get_call(radius.database, "acct-0000002A")["status"] == "answered"
    assert account(radius, tmp_path, STOP, **session, **{"Acct-Session-Time": 60}).code == "Accounting-Response"
    ended = calls.get_call(radius.database, "acct-0000002A")
    assert [line["amount_micros"] for line in ended["charges"]] == [100_000, 60_000, 50_000, 90_000]
    # A gateway that restarts says so (Accounting-On): acknowledged, its calls left to the sweeper.
    assert account(radius, tmp_path, ACCOUNTING_ON, **session).code == "Accounting-Response"
    # A Stop alone, for a call of an account nobody knows: acknowledged, and no call of anyone's.
    stranger = {**session, "Acct-Session-Id": "0000002B", "User-Name": "mallory", "Acct-Session-Time": 60}
    assert account(radius, tmp_path, STOP, **stranger).code == "Accounting-Response"
    with pytest.raises(calls.CallUnknown):
        calls.get_call(radius.database, "acct-0000002B")


# -- what is dropped without an answer ----------------------------------------------------------------------


def test_a_wrong_secret_an_unknown_nas_and_a_missing_message_authenticator_get_no_answer(
    radius: Radius, tmp_path: Path
) -> None:
    auth = {"User-Name": "alice", "Called-Station-Id": UK, "h323-conf-id": CONF_ID, "Message-Authenticator": "0x00"}
    acct = {"User-Name": "alice", "Acct-Status-Type": START, "h323-conf-id": CONF_ID}
    stranger = {"Packet-Src-IP-Address": STRANGER}
    unsigned = {k: v for k, v in auth.items() if k != "Message-Authenticator"}
    dropped = [
        (radius.auth_port, "auth", auth, "wrong"),
        (radius.acct_port, "acct", acct, "wrong"),
        (radius.auth_port, "auth", auth | stranger, SECRET),
        (radius.acct_port, "acct", acct | stranger, SECRET),
        (radius.auth_port, "auth", unsigned, SECRET),  # this NAS must sign its Access-Requests
    ]
    with ThreadPoolExecutor(max_workers=len(dropped)) as pool:  # each waits for nothing: wait at once
        replies = list(
            pool.map(
                lambda request: send(*request[:3], secret=request[3], tmp=tmp_path, wait=NO_ANSWER_SECONDS), dropped
            )
        )
    assert [reply.code for reply in replies] == [None] * len(dropped)
    with pytest.raises(Refusal):
        calls.get_call(radius.database, CALL_ID)  # none of them reached credit control
    # A gateway configured as unable to sign its Access-Requests is answered all the same.
    lax = send(radius.auth_port, "auth", unsigned | {"Packet-Src-IP-Address": LAX_NAS}, tmp=tmp_path)
    assert (lax.code, lax.attributes["h323-credit-time"]) == ("Access-Accept", "h323-credit-time=6000")  # 10.00


def _accounting_bytes(secret: bytes, attributes: bytes, *, identifier: int = 7) -> bytes:
    """An Accounting-Request with the right authenticator (RFC 2866 3) around ``attributes``, as given."""
    header = struct.pack("!BBH", radius_packet.AccountingRequest, identifier, 20 + len(attributes))
    authenticator = hashlib.md5(header + 16 * b"\x00" + attributes + secret).digest()
    return header + authenticator + attributes


def test_malformed_packets_are_dropped_and_the_server_keeps_answering(radius: Radius, tmp_path: Path) -> None:
    well_formed = radius_packet.AcctPacket(secret=SECRET.encode(), dict=dictionary())
    well_formed["User-Name"] = "alice"
    well_formed["Acct-Status-Type"] = START
    valid = well_formed.RequestPacket()
    noise = random.Random(7)
    garbage = [
        b"",
        b"\x04",
        bytes(noise.getrandbits(8) for _ in range(64)),
        bytes(noise.getrandbits(8) for _ in range(4096)),
        valid[:25],  # truncated inside an attribute
        valid[:20],  # only the header
        valid[:2] + struct.pack("!H", 4000) + valid[4:],  # a length longer than the packet
        _accounting_bytes(SECRET.encode(), b"\x01\x01alice"),  # an attribute length of 1
        _accounting_bytes(SECRET.encode(), b"\x01\x00"),  # an attribute length of 0
        # Authentic (the right secret), but Acct-Session-Time is 3 octets and Acct-Status-Type 2: decoding fails.
        _accounting_bytes(SECRET.encode(), b"\x28\x04\x00\x01\x2e\x05\x00\x00\x5f\x01\x07alice"),
        b"\x01" + valid[1:],  # an Access-Request code on the accounting port
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.settimeout(NO_ANSWER_SECONDS)
        for port in (radius.acct_port, radius.auth_port):
            for datagram in garbage:
                sender.sendto(datagram, ("127.0.0.1", port))
        with pytest.raises(TimeoutError):
            sender.recv(4096)  # not one of them was answered
    assert authorize(radius, tmp_path).code == "Access-Accept"
    assert account(radius, tmp_path, START).code == "Accounting-Response"


# -- disconnects --------------------------------------------------------------------------------------


def test_a_suspended_account_mid_call_gets_a_disconnect_request_at_its_nas(
    radius: Radius, tmp_path: Path, disconnect_port: DisconnectPort
) -> None:
    assert authorize(radius, tmp_path).code == "Access-Accept"
    assert account(radius, tmp_path, START).code == "Accounting-Response"
    tree.set_status(radius.database, login="alice", status=Status.SUSPENDED)
    report = keeper.tick(radius.database, settings=MINUTE)  # the real notifier, with radius_clients' secret
    assert (report.flagged, report.pushed) == (1, 1)
    [request] = disconnect_port.received
    assert request.code == radius_packet.DisconnectRequest
    assert attributes_of(request) == {
        "User-Name": ["alice"],
        "h323-conf-id": [f"h323-conf-id={CONF_ID}"],
        "h323-call-origin": ["h323-call-origin=originate"],
    }
    view = calls.get_call(radius.database, CALL_ID)
    assert (view["disconnect"], view["reason"], view["level"]) == ("sent", "account_suspended", "alice")
    stop = {"Acct-Session-Time": 3, "h323-disconnect-cause": "h323-disconnect-cause=10"}
    assert account(radius, tmp_path, STOP, **stop).code == "Accounting-Response"
    assert calls.get_call(radius.database, CALL_ID)["status"] == "ended"


ORDER = Disconnect(CALL_ID, "alice", "insufficient_funds", "atlas-north", 1)


def failure(port: DisconnectPort, order: Disconnect = ORDER, secret: bytes = SECRET.encode()) -> NotifyFailed:
    with pytest.raises(NotifyFailed) as caught:
        RadiusNotifier(port.url, secret=secret, timeout_seconds=NO_ANSWER_SECONDS).disconnect(order)
    return caught.value


def test_a_disconnect_names_the_session_as_the_gateway_did() -> None:
    port = DisconnectPort()
    try:
        notifier = RadiusNotifier(port.url, secret=SECRET.encode())
        notifier.disconnect(ORDER)
        notifier.disconnect(Disconnect("acct-0000002A", "bob", "account_suspended", "bob", 2))
        notifier.close()
    finally:
        port.close()
    assert [attributes_of(request) for request in port.received] == [
        {
            "User-Name": ["alice"],
            "h323-conf-id": [f"h323-conf-id={CONF_ID}"],
            "h323-call-origin": ["h323-call-origin=originate"],
        },
        {"User-Name": ["bob"], "Acct-Session-Id": ["0000002A"]},
    ]


@pytest.mark.parametrize(
    ("answer", "cause", "reason", "retryable"),
    [
        ("nak", 503, NotifyFailure.SWITCH_ERROR, False),  # Session-Context-Not-Found: the same order fails again
        ("nak", 506, NotifyFailure.SWITCH_ERROR, True),  # Resources-Unavailable: the NAS is busy
        ("silent", 0, NotifyFailure.TIMEOUT, True),
        ("forged", 0, NotifyFailure.INVALID_RESPONSE, False),  # signed with another secret
    ],
)
def test_a_disconnect_that_is_not_acknowledged_says_whether_to_try_again(
    answer: str, cause: int, reason: NotifyFailure, retryable: bool
) -> None:
    port = DisconnectPort(answer=answer, error_cause=cause)
    try:
        failed = failure(port)
    finally:
        port.close()
    assert (failed.reason, failed.retryable) == (reason, retryable)
    assert len(port.received) == 1


def test_a_disconnect_to_no_listener_or_for_a_call_radius_never_made_fails_clearly() -> None:
    port = DisconnectPort()
    port.close()  # nothing listens there any more: the kernel answers "port unreachable"
    unreachable = failure(port)
    assert (unreachable.reason, unreachable.retryable) == (NotifyFailure.CONNECTION_FAILED, True)
    foreign = failure(port, Disconnect("a84b4c76e66710@pc33", "alice", "insufficient_funds", None, 1))
    assert (foreign.reason, foreign.retryable) == (NotifyFailure.UNEXPECTED, False)


def test_a_radius_notifier_needs_the_nas_in_radius_clients_and_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOLLWAY_RADIUS_CLIENTS", raising=False)
    monkeypatch.setenv("TOLLWAY_CONFIG", "/nonexistent/tollway.toml")
    with pytest.raises(ValueError, match="not in radius_clients"):
        notifier_for("radius", "udp://192.0.2.10:3799")
    monkeypatch.setenv("TOLLWAY_RADIUS_CLIENTS", json.dumps({"192.0.2.10": {"secret": "x", "switch": "gw"}}))
    assert isinstance(notifier_for("radius", "udp://192.0.2.10"), RadiusNotifier)
    for url in (None, "http://192.0.2.10:3799", "udp://gw.example:3799", "udp://192.0.2.10:3799/x"):
        with pytest.raises(ValueError):
            notifier_for("radius", url)


def test_a_radius_switch_cannot_be_registered_for_a_nas_without_a_secret(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOLLWAY_RADIUS_CLIENTS", raising=False)
    monkeypatch.setenv("TOLLWAY_CONFIG", "/nonexistent/tollway.toml")
    build_world(database)
    with pytest.raises(Refusal) as refused:
        calls.create_switch(
            database, name="gw-9", node_login="house", notify_kind="radius", notify_url="udp://10.9.9.9"
        )
    assert refused.value.reason == "notify_invalid"


# -- the command ------------------------------------------------------------------------------------------


def test_tollway_radius_serves_until_it_is_told_to_stop(
    database: Database, clients: dict[str, RadiusClient], radclient: str, tmp_path: Path
) -> None:
    build_world(database)
    environment = {**os.environ, "TOLLWAY_DATABASE_URL": database.url, "TOLLWAY_CONFIG": "/nonexistent"}
    command = [sys.executable, "-c", "import typer; from tollway.cli.radius import radius_command as c; typer.run(c)"]
    refused = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "radius_clients name switches that are not registered or cannot act: gw-1" in refused.stderr
    calls.create_switch(database, name="gw-1", node_login="house", notify_kind="none")
    process = subprocess.Popen(
        [*command, "--auth-port", "0", "--acct-port", "0"], env=environment, stderr=subprocess.PIPE, text=True
    )
    try:
        ports = _listening_ports(process)
        reply = send(
            ports[0],
            "auth",
            {"User-Name": "alice", "Called-Station-Id": UK, "h323-conf-id": CONF_ID, "Message-Authenticator": "0x00"},
            tmp=tmp_path,
        )
        assert (reply.code, reply.attributes["h323-credit-time"]) == ("Access-Accept", "h323-credit-time=6000")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def _listening_ports(process: subprocess.Popen[str]) -> tuple[int, int]:
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"authentication (\d+), accounting (\d+)", line)
        if found:
            return int(found.group(1)), int(found.group(2))
    pytest.fail(f"tollway radius exited ({process.wait()}) without listening")


# -- the rules, without sockets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "call_id"),
    [
        (SessionKey(conf_id=CONF_ID), CALL_ID),
        (SessionKey(conf_id="02102944 600a1899 3fd61009 0e2f3cc5"), "h323-02102944-600a1899-3fd61009-0e2f3cc5"),
        (
            SessionKey(conf_id="4a8f6a11-a2f0-11d5-8010-f7b42f07c1e2", session_id="x"),
            "h323id-4a8f6a11-a2f0-11d5-8010-f7b42f07c1e2",
        ),
        (SessionKey(conf_id="a b/c", session_id="0000002A"), "acct-0000002A"),
        (SessionKey(session_id="3A9C5E14/2B9611D5"), None),
        (SessionKey(conf_id="F" * 124), None),  # one character too long for a call id, and no Acct-Session-Id
        (SessionKey(conf_id="F" * 124, session_id="0000002A"), "acct-0000002A"),
        (SessionKey(), None),
    ],
)
def test_call_ids_are_made_from_the_gateways_session_and_back(key: SessionKey, call_id: str | None) -> None:
    assert model.call_id_of(key) == call_id
    if call_id is not None:
        assert model.call_id_of(model.session_of(call_id) or SessionKey()) == call_id
        assert calls.check_call_id(call_id) == call_id
    assert model.session_of("a84b4c76e66710@pc33") is None


def test_every_refusal_of_credit_control_has_its_own_documented_return_code() -> None:
    assert set(calls.SIP_CODES) <= set(model.RETURN_CODES)
    assert model.return_code_for("something_new") is ReturnCode.INVALID_ARGUMENT
    assert model.vsa_value("h323-credit-time", "h323-credit-time=600") == "600"
    assert model.vsa_value("h323-credit-time", "600") == "600"
    assert model.end_reason(None, 1) == "acct-terminate-cause=1"
    assert model.end_reason(None, None) == "normal"
    assert model.billed_leg(None) and model.billed_leg("Originate") and not model.billed_leg("answer")


# -- hostile values: every packet is answered, every Stop ends its call ----------------------------------

NUL = "\\000"  # radclient's escape for a NUL octet


def test_a_nul_in_a_text_attribute_is_answered_and_a_stop_still_ends_its_call(radius: Radius, tmp_path: Path) -> None:
    # A User-Name with a NUL inside names no account: rejected, not left unanswered for the gateway to resend.
    rejected = authorize(radius, tmp_path, **{"User-Name": f"ali{NUL}ce", "h323-conf-id": "A1"})
    assert (rejected.code, rejected.attributes["h323-return-code"]) == ("Access-Reject", "h323-return-code=1")
    # A trailing NUL (the end of a C string, which some gateways send) is no part of the value.
    before = availables(radius.database)
    accepted = authorize(radius, tmp_path, **{"User-Name": f"alice{NUL}", "Calling-Station-Id": f"+1 555{NUL}0100"})
    assert accepted.code == "Access-Accept"
    assert account(radius, tmp_path, START).code == "Accounting-Response"
    # 35 s in, the grant is extended to 120 s, so the Stop's 95 s is within it and charged as reported.
    assert account(radius, tmp_path, INTERIM, **{"Acct-Session-Time": 35}).code == "Accounting-Response"
    stop = {
        "Acct-Session-Time": 95,
        "User-Name": f"al{NUL}ice",
        "Called-Station-Id": f"44{NUL}20",
        "Calling-Station-Id": f"{NUL}1",
        "h323-disconnect-cause": f"h323-disconnect-cause=1{NUL}0",
    }
    assert account(radius, tmp_path, STOP, **stop).code == "Accounting-Response"
    ended = calls.get_call(radius.database, CALL_ID)
    assert (ended["status"], ended["duration_seconds"]) == ("ended", 95)
    assert (ended["caller"], ended["end_reason"]) == ("+1 555\ufffd0100", "h323-disconnect-cause=1\ufffd0")
    charged = [158_334, 96_000, 100_000, 113_334]
    assert [b - a for b, a in zip(before, availables(radius.database), strict=True)] == charged
    # A Stop of a call nobody authorized, its texts all with a NUL: acknowledged, and no call is made of it.
    stranger = {
        "h323-conf-id": "",
        "h323-call-origin": "",
        "Acct-Session-Id": "0000002C",
        "User-Name": f"ali{NUL}ce",
        "Called-Station-Id": f"{NUL}44",
        "Acct-Session-Time": 60,
    }
    assert account(radius, tmp_path, STOP, **stranger).code == "Accounting-Response"
    with pytest.raises(calls.CallUnknown):
        calls.get_call(radius.database, "acct-0000002C")


def test_a_stop_reporting_more_than_the_longest_call_still_ends_it(radius: Radius, tmp_path: Path) -> None:
    """Acct-Session-Time past what credit control takes (40 h) was acknowledged and dropped, the call left
    up until the sweeper found it; it ends the call now, read as the longest duration credit control takes,
    and (the switch not being trusted with durations) charged what was granted, flagged as an overshoot."""
    assert authorize(radius, tmp_path).code == "Access-Accept"
    assert account(radius, tmp_path, START).code == "Accounting-Response"
    assert account(radius, tmp_path, STOP, **{"Acct-Session-Time": 200_000}).code == "Accounting-Response"
    ended = calls.get_call(radius.database, CALL_ID)
    assert (ended["status"], ended["duration_seconds"]) == ("ended", 60)
    assert ended["reported_duration_seconds"] == model.REPORTED_SECONDS_MAX
    assert ended["overshoot_reason"] is not None
    assert model.REPORTED_SECONDS_MAX == 144_000
