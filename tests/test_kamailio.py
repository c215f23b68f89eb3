"""Kamailio with the reference configuration, for real: sipp → Kamailio → sipp on loopback, Tollway served.

Every test starts the four programs: ``tollway serve`` on the test's database (SQLite or PostgreSQL), a
sipp playing the callee (tests/sipp/uas.xml), Kamailio with deploy/kamailio/kamailio.cfg between them,
and one sipp per call playing the caller (tests/sipp/uac_*.xml). Kamailio asks Tollway to authorize each
call, holds the dialog timeout, reports answers and ends, and takes Tollway's disconnect orders over its
JSON-RPC (the ``kamailio`` notify kind). The times are read from the caller's message trace; the amounts
are worked out by hand; the database fixture runs the ledger check after each test.

The server grants 10 s at a time (the least its settings allow), extended when 5 s are left, so that a
reseller running dry cuts a call within seconds; its keeper runs every second (KEEPER_INTERVAL_SECONDS).

The world (tests/calls_world.py): alice, bob -> north-city (L1) -> atlas-north (L2) -> atlas (L3) -> house.
What each level pays for d answered seconds, in micro-units, each at its own tariff:
  to a UK landline (+44 20 7946 0000):
    client       0.10 a minute, per second                  ceil(100,000 d / 60)
    north-city   0.06 a minute, in 6-second steps           1,000 x (d rounded up to a multiple of 6)
    atlas-north  0.05 a minute, by the minute               50,000 for each minute begun
    atlas        0.04 a minute per second + 0.05 to connect 50,000 + ceil(40,000 d / 60)
  to a UK mobile (+44 7700 900123): the same, except atlas-north, which pays 0.06 a minute per second for
  447 (a row the cut-off test adds to atlas:l2, so that a reseller's money can run out mid-minute): 1,000 d.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.calls_world import balance, build_world, micros
from tollway.calls import service as calls
from tollway.calls.keeper import KEEPER_INTERVAL_SECONDS
from tollway.ledger.service import check
from tollway.rating import service as rating
from tollway.rating.loading import TABLES
from tollway.rating.tariff import RateEntry
from tollway.store.database import Database
from tollway.tree import service as tree
from tollway.tree.model import Status

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"
SCENARIOS = Path(__file__).resolve().parent / "sipp"
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"  # Debian puts kamailio in /usr/sbin, off a normal user's PATH

GRANT_SECONDS = 10
EXTEND_LEAD_SECONDS = 5
START_SECONDS_MAX = 60  # for tollway serve, Kamailio and sipp to be ready (a loaded machine is slow)
CALL_SECONDS_MAX = 60  # no call of these tests lasts longer; sipp and the waits give up after it
LANDLINE = "+442079460000"
MOBILE = "+447700900123"
LEVELS = ("north-city", "atlas-north", "atlas")  # above the client, which is alice or bob

# Worked out by hand from the prices above: [client, north-city, atlas-north, atlas] for d seconds.
# Kamailio's dialog timer works in whole seconds, so a call it ends at its timeout lasts between one
# second less and one second more than the timeout: every duration a test may see has its line here.
LANDLINE_CHARGES = {
    5: [8_334, 6_000, 50_000, 53_334],
    11: [18_334, 12_000, 50_000, 57_334],
    12: [20_000, 12_000, 50_000, 58_000],
    13: [21_667, 18_000, 50_000, 58_667],
}
MOBILE_CHARGES = {
    9: [15_000, 12_000, 9_000, 56_000],
    10: [16_667, 12_000, 10_000, 56_667],
    11: [18_334, 12_000, 11_000, 57_334],
    12: [20_000, 12_000, 12_000, 58_000],
}


@pytest.fixture(autouse=True)
def _fresh_tables() -> None:
    TABLES.clear()
    calls.LEVELS.clear()


# -- the programs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    kamailio: str
    sipp: str


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the Kamailio tests)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tools() -> Tools:
    kamailio = shutil.which("kamailio") or shutil.which("kamailio", path=SBIN)
    sipp = shutil.which("sipp") or shutil.which("sipp", path=SBIN)
    if kamailio is None or sipp is None:
        missing = " and ".join(name for name, path in (("kamailio", kamailio), ("sipp", sipp)) if path is None)
        _missing(f"{missing} not installed: run scripts/install-switch-tools")
    assert kamailio is not None and sipp is not None
    checked = subprocess.run(
        [kamailio, "-c", "-f", str(CONFIG), "-A", 'TOLLWAY_KEY="tw_check"'], capture_output=True, text=True, timeout=30
    )
    if "could not find module" in checked.stderr:
        _missing(f"a Kamailio module is missing, run scripts/install-switch-tools:\n{checked.stderr}")
    assert checked.returncode == 0, f"kamailio -c refuses the reference configuration:\n{checked.stderr}"
    return Tools(kamailio, sipp)


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(what: str, ready: Callable[[], bool], alive: Callable[[], str | None], seconds: float) -> None:
    """Poll ``ready`` until it holds; fail with what the program said if it died, or when time is up."""
    deadline = time.monotonic() + seconds
    while not ready():
        said = alive()
        assert said is None, f"{what} exited:\n{said}"
        assert time.monotonic() < deadline, f"{what} was not ready within {seconds} s"
        time.sleep(0.05)


class Programs:
    """The programs one test started; each is stopped by its own handle (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, env=env
        )
        self._running[name] = (process, log)
        return process

    def said(self, name: str, lines: int = 40) -> str:
        path = self.directory / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait(self, name: str, seconds: float) -> int:
        """``name``'s exit status once it has ended by itself; fails the test if it runs longer."""
        process, _ = self._running[name]
        try:
            return process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still running after {seconds} s")

    def exited(self, name: str) -> str | None:
        """None while ``name`` runs; what it said once it has exited."""
        process, _ = self._running[name]
        return None if process.poll() is None else f"exit {process.returncode}\n{self.said(name)}"

    def stop(self, name: str) -> None:
        process, log = self._running.pop(name)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()

    def stop_all(self) -> None:
        for name in reversed(list(self._running)):
            self.stop(name)


# -- what the caller saw --------------------------------------------------------------------------------

TRACE_BLOCK = re.compile(  # a line of dashes and a time, "UDP message sent|received ...", a blank line, the message
    r"^-{47} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})\n"
    r"UDP message (sent|received)[^\n]*\n\n([^\r\n]*)(.*?)(?=^-{47}|\Z)",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Message:
    at: datetime
    received: bool
    first_line: str
    cseq: str


@dataclass(frozen=True)
class Trace:
    """The caller's messages in order, from sipp's -trace_msg file."""

    messages: list[Message]

    @classmethod
    def read(cls, path: Path) -> Trace:
        messages = []
        for stamp, direction, first_line, rest in TRACE_BLOCK.findall(path.read_text(errors="replace")):
            cseq = re.search(r"^CSeq:\s*(.*?)\r?$", rest, re.MULTILINE)
            at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
            messages.append(Message(at, direction == "received", first_line, cseq.group(1) if cseq else ""))
        return cls(messages)

    def first(self, matches: Callable[[Message], bool], what: str) -> Message:
        found = next((message for message in self.messages if matches(message)), None)
        assert found is not None, f"the caller's trace has no {what}: {[m.first_line for m in self.messages]}"
        return found

    def answered_at(self) -> datetime:
        answer = self.first(
            lambda m: m.received and m.first_line.startswith("SIP/2.0 200") and "INVITE" in m.cseq, "200"
        )
        return answer.at

    def seconds_to(self, matches: Callable[[Message], bool], what: str) -> float:
        """Seconds from the 200 OK of the INVITE to the first message that ``matches``."""
        return (self.first(matches, what).at - self.answered_at()).total_seconds()

    def cut_off_seconds(self) -> float:
        """How long after the answer the network hung up on the caller (a BYE came)."""
        return self.seconds_to(lambda m: m.received and m.first_line.startswith("BYE "), "BYE from the network")

    def final_answer(self) -> str:
        """The INVITE's final answer, as 'code phrase'."""
        final = self.first(
            lambda m: m.received and re.match(r"SIP/2\.0 [2-6]\d\d ", m.first_line) is not None, "final answer"
        )
        return final.first_line.removeprefix("SIP/2.0 ")


# -- the rig --------------------------------------------------------------------------------------------


class Rig:
    """Tollway, a callee and Kamailio between, started once the test has built its world."""

    def __init__(self, database: Database | None, tools: Tools, directory: Path) -> None:
        self.database = database
        self.tools = tools
        self.programs = Programs(directory)
        self.directory = directory
        self.sip_port = 0
        self.rpc_port = 0
        self.tollway_url = ""
        self.api = httpx.Client(trust_env=False, timeout=10)
        self.defines: dict[str, str] = {}  # settings of Kamailio's a test changes (organizations' tests)

    def start(self) -> None:
        assert self.database is not None
        self.rpc_port = free_port(socket.SOCK_STREAM)
        url = f"http://127.0.0.1:{self.rpc_port}/RPC"
        _, key = calls.create_switch(
            self.database, name="kamailio-1", node_login="house", notify_kind="kamailio", notify_url=url
        )
        self.api.headers["authorization"] = f"Bearer {key}"
        self._serve_tollway(self.database)
        uas_port = self._start_callee()
        self.start_kamailio(key, uas_port)

    def _serve_tollway(self, database: Database, port: int | None = None) -> None:
        port = port or free_port(socket.SOCK_STREAM)
        env = {
            **os.environ,
            "TOLLWAY_DATABASE_URL": database.url,
            "TOLLWAY_CONFIG": str(self.directory / "no-such.toml"),
            "TOLLWAY_LOG_FORMAT": "json",
            "TOLLWAY_KEEPER": "true",
            "TOLLWAY_CALL_GRANT_SECONDS": str(GRANT_SECONDS),
            "TOLLWAY_CALL_EXTEND_LEAD_SECONDS": str(EXTEND_LEAD_SECONDS),
        }
        tollway = str(Path(sys.executable).parent / "tollway")
        self.programs.start("tollway", [tollway, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env)
        self.api.base_url = httpx.URL(f"http://127.0.0.1:{port}")
        self.tollway_url = f"http://127.0.0.1:{port}/api/v1/calls"

        def ready() -> bool:
            try:
                return self.api.get("/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_until("tollway serve", ready, lambda: self.programs.exited("tollway"), START_SECONDS_MAX)

    def stop_tollway(self) -> None:
        self.programs.stop("tollway")

    def restart_tollway(self) -> None:
        """Serve again on the same address, where Kamailio expects Tollway."""
        assert self.database is not None and self.api.base_url.port is not None
        self._serve_tollway(self.database, self.api.base_url.port)

    def _start_callee(self) -> int:
        port = free_port(socket.SOCK_DGRAM)
        argv = [self.tools.sipp, "-sf", str(SCENARIOS / "uas.xml"), "-i", "127.0.0.1", "-p", str(port), "-nostdin"]
        argv += ["-trace_err", "-error_file", str(self.directory / "callee-errors.log")]
        argv += ["-trace_msg", "-message_file", str(self.directory / "callee.trace")]
        self.programs.start("callee", argv)

        def bound() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    return True
                return False

        wait_until("sipp (callee)", bound, lambda: self.programs.exited("callee"), START_SECONDS_MAX)
        return port

    def start_kamailio(self, key: str, uas_port: int) -> None:
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.rpc_port = self.rpc_port or free_port(socket.SOCK_STREAM)
        runtime = self.directory / "kamailio-run"
        runtime.mkdir()
        defines = {
            "SIP_ADDRESS": "127.0.0.1",
            "SIP_PORT": str(self.sip_port),
            "SIP_WORKERS": "4",
            "TRUSTED_NETWORK": '"127.0.0.0/8"',
            "NEXT_HOP": f'"sip:127.0.0.1:{uas_port}"',
            "RPC_ADDRESS": "127.0.0.1",
            "RPC_PORT": str(self.rpc_port),
            "RPC_ALLOWED_NETWORK": '"127.0.0.1/32"',
            "TOLLWAY_URL": f'"{self.tollway_url}"',
            "TOLLWAY_KEY": f'"{key}"',
            "TOLLWAY_SIP_URL": f'"{self.tollway_url.removesuffix("/calls")}/sip"',
        } | self.defines
        argv = [self.tools.kamailio, "-f", str(CONFIG), "-DD", "-E", "-Y", str(runtime), "-P", str(runtime / "pid")]
        for name, value in defines.items():
            argv += ["-A", f"{name}={value}"]
        self.programs.start("kamailio", argv)
        wait_until("kamailio", self._answers_options, lambda: self.programs.exited("kamailio"), START_SECONDS_MAX)

    def _answers_options(self) -> bool:
        """Kamailio's SIP workers are up once an OPTIONS gets its 200."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            probe.settimeout(0.2)
            port = probe.getsockname()[1]
            request = (
                f"OPTIONS sip:ping@127.0.0.1:{self.sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-ping\r\n"
                f"From: <sip:ping@127.0.0.1>;tag=ping\r\nTo: <sip:ping@127.0.0.1:{self.sip_port}>\r\n"
                "Call-ID: ping@tollway.test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            probe.sendto(request.encode(), ("127.0.0.1", self.sip_port))
            try:
                return probe.recv(4096).startswith(b"SIP/2.0 200")
            except OSError:
                return False

    def place_call(self, scenario: str, *, call_id: str, account: str, number: str, hold_ms: int | None = None) -> str:
        """Start a caller (one sipp, one call); ``finish`` waits for it. The call's name is its Call-ID."""
        argv = [self.tools.sipp, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-nostdin", "-m", "1"]
        argv += ["-p", str(free_port(socket.SOCK_DGRAM)), "-s", number, "-key", "account", account]
        argv += ["-cid_str", call_id, "-timeout", f"{CALL_SECONDS_MAX}s", "-timeout_error"]
        argv += ["-trace_msg", "-message_file", str(self.directory / f"{call_id}.trace")]
        argv += ["-trace_err", "-error_file", str(self.directory / f"{call_id}.errors")]
        if hold_ms is not None:
            argv += ["-d", str(hold_ms)]
        self.programs.start(call_id, [*argv, f"127.0.0.1:{self.sip_port}"])
        return call_id

    def finish(self, call_id: str) -> Trace:
        """Wait for the caller to be done; its scenario must have run to its end."""
        status = self.programs.wait(call_id, CALL_SECONDS_MAX + 10)
        errors = self.directory / f"{call_id}.errors"
        assert status == 0, (
            f"sipp for {call_id} failed ({status}):\n"
            + (errors.read_text(errors="replace") if errors.exists() else self.programs.said(call_id))
            + f"\nkamailio:\n{self.programs.said('kamailio')}"
        )
        self.programs.stop(call_id)
        return Trace.read(self.directory / f"{call_id}.trace")

    def call(self, call_id: str) -> dict[str, Any]:
        view = self.call_if_known(call_id)
        assert view is not None, f"Tollway does not know call {call_id}"
        return view

    def call_if_known(self, call_id: str) -> dict[str, Any] | None:
        response = self.api.get(f"/api/v1/calls/{call_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def wait_for(self, call_id: str, holds: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + CALL_SECONDS_MAX
        while True:
            view = self.call_if_known(call_id)  # not yet, while Kamailio is still asking
            if view is not None and holds(view):
                return view
            assert time.monotonic() < deadline, f"call {call_id} never {what}: {view}\n{self.programs.said('kamailio')}"
            time.sleep(0.05)

    def ended(self, call_id: str) -> dict[str, Any]:
        return self.wait_for(call_id, lambda view: view["status"] == "ended", "ended")

    def stop(self) -> None:
        self.programs.stop_all()
        self.api.close()


@pytest.fixture
def rig(database: Database, tools: Tools, tmp_path: Path) -> Iterator[Rig]:
    started = Rig(database, tools, tmp_path)
    try:
        yield started
    finally:
        started.stop()


def charges(view: dict[str, Any]) -> list[int]:
    return [line["amount_micros"] for line in view["charges"]]


def balances(database: Database, logins: tuple[str, ...]) -> list[int]:
    return [balance(database, login) for login in logins]


def spent(database: Database, topped_up: dict[str, str]) -> dict[str, int]:
    """What left each wallet since build_world topped it up: the sum of its charges."""
    return {login: micros(amount) - balance(database, login) for login, amount in topped_up.items()}


TOPPED_UP = {"alice": "10", "bob": "10", "north-city": "100", "atlas-north": "100", "atlas": "100"}  # build_world


# -- the configuration on its own ------------------------------------------------------------------------


def test_the_reference_configuration_validates_and_will_not_start_without_tollways_key(tools: Tools) -> None:
    with_key = [tools.kamailio, "-c", "-f", str(CONFIG), "-A", 'TOLLWAY_KEY="tw_check"']
    assert subprocess.run(with_key, capture_output=True, timeout=30).returncode == 0
    without = subprocess.run([tools.kamailio, "-c", "-f", str(CONFIG)], capture_output=True, text=True, timeout=30)
    assert without.returncode != 0
    assert "TOLLWAY_KEY_is_not_defined__see_docs_switches_md" in without.stderr


def test_kamailio_serves_tollways_three_rpc_methods_to_the_allowed_network_only(tools: Tools, tmp_path: Path) -> None:
    rig = Rig(None, tools, tmp_path)
    try:
        rig.tollway_url = f"http://127.0.0.1:{free_port(socket.SOCK_STREAM)}/api/v1/calls"  # nobody there
        rig.start_kamailio("tw_unused", uas_port=free_port(socket.SOCK_DGRAM))
        rpc = f"http://127.0.0.1:{rig.rpc_port}/RPC"

        def post(method: str, params: list[object], client: httpx.Client = rig.api) -> httpx.Response:
            return client.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})

        # Tollway's methods are served; Kamailio answers "not found" with the code as the HTTP status too.
        listed = post("dlg.list_match", ["callid", "eq", "nobody@tollway.test", 16])
        assert (listed.status_code, listed.json()["error"]) == (404, {"code": 404, "message": "Not found"})
        assert post("dlg.end_dlg", [1, 2]).json()["error"] == {"code": 404, "message": "Dialog not found"}
        cancel = post("tm.cancel", ["nobody@tollway.test", "1"]).json()["error"]
        assert cancel == {"code": 400, "message": "Transaction not found"}
        # Nothing else: not another method, not another path, not from another address.
        assert post("core.version", []).status_code == 403
        assert post("dlg.list", []).status_code == 403
        assert rig.api.get(rpc).status_code == 404
        assert rig.api.post(rpc.replace("/RPC", "/rpc"), json={}).status_code == 404
        stranger = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), trust_env=False, timeout=10)
        with stranger:
            assert post("dlg.list_match", ["callid", "eq", "x", 1], stranger).status_code == 403
    finally:
        rig.stop()


# -- the cases -------------------------------------------------------------------------------------------


def test_a_call_within_credit_runs_to_its_natural_end_and_is_charged_at_every_level(
    database: Database, rig: Rig
) -> None:
    build_world(database)
    rig.start()
    trace = rig.finish(
        rig.place_call(
            "uac_hangup.xml", call_id="natural-1@tollway.test", account="bob", number=LANDLINE, hold_ms=5_000
        )
    )
    call = rig.ended("natural-1@tollway.test")
    talked = trace.seconds_to(lambda m: not m.received and m.first_line.startswith("BYE "), "BYE sent")
    charged = call["duration_seconds"]
    print(f"\nnatural end: the caller hung up {talked:.3f} s after the answer; Tollway charged {charged} s")

    # 10 USD at 0.10 a minute last 6,000 s: bob's own balance sets the maximum, far above the 5 s talked.
    assert (call["max_seconds"], call["limited_by"], call["end_reason"]) == (6_000, "bob", "caller_hangup")
    assert call["duration_seconds"] == 5
    assert charges(call) == LANDLINE_CHARGES[5]
    assert call["disconnect"] is None
    assert spent(database, TOPPED_UP) == {"alice": 0, **dict(zip(("bob", *LEVELS), LANDLINE_CHARGES[5], strict=True))}
    assert check(database).ok


def test_a_call_is_cut_by_kamailios_timeout_at_the_authorized_maximum_when_the_clients_balance_is_the_limit(
    database: Database, rig: Rig
) -> None:
    build_world(database, balances_of={"alice": "0.02"})  # 0.02 at 0.10 a minute, per second: exactly 12 s
    rig.start()
    trace = rig.finish(
        rig.place_call("uac_wait_bye.xml", call_id="timeout-1@tollway.test", account="alice", number=LANDLINE)
    )
    call = rig.ended("timeout-1@tollway.test")
    cut = trace.cut_off_seconds()
    print(
        f"\nKamailio's timeout: the caller got BYE {cut:.3f} s after the answer, for max_seconds 12; "
        f"Tollway charged {call['duration_seconds']} s"
    )

    assert (call["max_seconds"], call["limited_by"]) == (12, "alice")
    assert abs(cut - 12) <= 1.0
    assert (call["end_reason"], call["disconnect"], call["reason"]) == ("timeout", None, None)
    duration = call["duration_seconds"]
    assert duration in (11, 12, 13)
    assert charges(call) == LANDLINE_CHARGES[duration]
    # A second past the 12 paid for is charged all the same, as an overshoot below alice's floor.
    assert call["overshoot_seconds"] == max(0, duration - 12)
    expected = dict(zip(("alice", *LEVELS), LANDLINE_CHARGES[duration], strict=True))
    assert spent(database, TOPPED_UP | {"alice": "0.02"}) == {"bob": 0, **expected}
    assert check(database).ok


def test_a_call_is_cut_mid_way_by_tollways_pushed_disconnect_when_its_l2_resellers_balance_is_drained(
    database: Database, rig: Rig
) -> None:
    build_world(database, balances_of={"atlas-north": "0.02"})  # 20 s of a UK mobile at its 0.06 a minute
    mobile = RateEntry(prefix="447", description="UK mobile", price_micros=60_000, resolution=1)
    rating.set_prefix(database, name="atlas:l2", prefix="447", entries=[mobile])
    rig.start()
    rig.place_call("uac_wait_bye.xml", call_id="cut-1@tollway.test", account="alice", number=MOBILE)
    answered = rig.wait_for("cut-1@tollway.test", lambda view: view["status"] == "answered", "answered")
    # alice may talk 20 s (what atlas-north has) and holds the first 10 s of it; bob's call takes the rest.
    assert (answered["max_seconds"], answered["limited_by"], answered["grant_seconds"]) == (20, "atlas-north", 10)
    rig.place_call("uac_wait_bye.xml", call_id="drain-1@tollway.test", account="bob", number=MOBILE)
    cut = rig.finish("cut-1@tollway.test").cut_off_seconds()
    drain_cut = rig.finish("drain-1@tollway.test").cut_off_seconds()
    call, drain = rig.ended("cut-1@tollway.test"), rig.ended("drain-1@tollway.test")
    print(
        f"\nTollway's push: alice got BYE {cut:.3f} s after the answer, for a final grant of 10 s (Kamailio's "
        f"own timeout: 20 s); Tollway charged {call['duration_seconds']} s"
    )
    print(
        f"bob (the drain) got Kamailio's BYE {drain_cut:.3f} s after the answer, for max_seconds 10; "
        f"Tollway charged {drain['duration_seconds']} s"
    )

    # atlas-north could not fund alice's second grant: her grant stayed 10 s, final, and the keeper pushed
    # the disconnect when it ended, at its first round after that (rounds are a second apart).
    assert (call["final"], call["grant_seconds"], call["reason"], call["level"]) == (
        True,
        10,
        "insufficient_funds",
        "atlas-north",
    )
    assert (call["disconnect"], call["end_reason"]) == ("sent", "disconnected")
    assert GRANT_SECONDS - 0.5 <= cut <= GRANT_SECONDS + KEEPER_INTERVAL_SECONDS + 0.5
    duration = call["duration_seconds"]
    assert duration in (10, 11, 12)
    assert charges(call) == MOBILE_CHARGES[duration]
    # bob was authorized for what was left, 10 s, as one final grant: Kamailio's timeout ended his call.
    assert (drain["max_seconds"], drain["limited_by"], drain["final"]) == (10, "atlas-north", True)
    assert (drain["end_reason"], drain["disconnect"]) == ("timeout", None)
    assert abs(drain_cut - 10) <= 1.0
    assert drain["duration_seconds"] in (9, 10, 11)
    assert charges(drain) == MOBILE_CHARGES[drain["duration_seconds"]]
    # Every wallet lost exactly its charges; atlas-north's is below zero by an overshoot, if alice had one.
    both = [a + b for a, b in zip(charges(call), charges(drain), strict=True)]
    expected = {"alice": charges(call)[0], "bob": charges(drain)[0], **dict(zip(LEVELS, both[1:], strict=True))}
    assert spent(database, TOPPED_UP | {"atlas-north": "0.02"}) == expected
    assert check(database).ok


def test_refused_calls_get_the_sip_code_tollway_names(database: Database, rig: Rig) -> None:
    build_world(database, balances_of={"alice": "0"})
    rig.start()

    def refused(call_id: str, account: str, number: str = LANDLINE) -> str:
        return rig.finish(
            rig.place_call("uac_refused.xml", call_id=call_id, account=account, number=number)
        ).final_answer()

    assert refused("r-1@tollway.test", "alice") == "402 insufficient_funds"
    assert refused("r-2@tollway.test", "mallory") == "404 account_unknown"
    assert refused("r-3@tollway.test", "bob", "*21*") == "484 number_invalid"
    # Refused by Kamailio itself, before any of it reaches Tollway: not a number, not a login, not a Call-ID.
    assert refused("r-4@tollway.test", "bob", "0800-FLOWERS") == "484 Address Incomplete"
    assert refused("r-5@tollway.test", "Bob!") == "404 Unknown Account"
    assert refused('r-6"@tollway.test', "bob") == "400 Call-ID Not Accepted"
    tree.set_status(database, login="north-city", status=Status.SUSPENDED)
    assert refused("r-7@tollway.test", "bob") == "403 account_suspended"
    tree.set_status(database, login="north-city", status=Status.ACTIVE)
    recorded = rig.call("r-1@tollway.test")
    assert (recorded["status"], recorded["reason"], recorded["level"]) == ("refused", "insufficient_funds", "alice")

    assert balances(database, ("alice", "bob", *LEVELS)) == [
        0,
        micros("10"),
        micros("100"),
        micros("100"),
        micros("100"),
    ]
    assert check(database).ok


def test_without_tollway_no_call_goes_through_and_an_end_waits_for_tollway_to_be_back(
    database: Database, rig: Rig
) -> None:
    build_world(database)
    rig.start()
    rig.place_call("uac_hangup.xml", call_id="late-1@tollway.test", account="bob", number=LANDLINE, hold_ms=3_000)
    rig.wait_for("late-1@tollway.test", lambda view: view["status"] == "answered", "answered")
    rig.stop_tollway()
    # Nobody could charge a new call: Kamailio refuses it (fails closed).
    refused = rig.place_call("uac_refused.xml", call_id="closed-1@tollway.test", account="bob", number=LANDLINE)
    assert rig.finish(refused).final_answer() == "503 Service Unavailable"
    # The call up meanwhile ends while Tollway is away: Kamailio keeps its end and sends it again.
    talked = rig.finish("late-1@tollway.test").seconds_to(
        lambda m: not m.received and m.first_line.startswith("BYE "), "BYE sent"
    )
    time.sleep(1.5)  # a round or two of Kamailio's queue against a closed port
    rig.restart_tollway()
    call = rig.ended("late-1@tollway.test")
    charged = call["duration_seconds"]
    print(f"\nTollway away: the caller hung up {talked:.3f} s after the answer; Tollway, back, charged {charged} s")

    assert (call["duration_seconds"], call["end_reason"]) == (3, "caller_hangup")
    assert charges(call) == [5_000, 6_000, 50_000, 52_000]  # 3 s, by the prices in this module's docstring
    assert spent(database, TOPPED_UP) == {
        "alice": 0,
        "bob": 5_000,
        "north-city": 6_000,
        "atlas-north": 50_000,
        "atlas": 52_000,
    }
    assert rig.call_if_known("closed-1@tollway.test") is None
    assert check(database).ok
