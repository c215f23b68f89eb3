"""Password guessing is throttled per login and per address, however many attempts arrive at once.

Each attempt is counted before its password is checked, in the database (every process shares the
count): forty wrong passwords sent at once are not all checked, and the right one after them waits.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from tollway.access import service as access
from tollway.access.model import Role
from tollway.errors import Refusal
from tollway.http.app import create_app
from tollway.http.client import parse_networks, resolve
from tollway.store.database import Database

PASSWORD = "correct horse battery"
ATTEMPTS_AT_ONCE = 40
SERVER_START_SECONDS_MAX = 20
FROZEN = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The time access reads, held still (a list, so a test can move it on)."""
    now = [FROZEN]
    monkeypatch.setattr(access, "utc_now", lambda: now[0])
    return now


@pytest.fixture
def served(demo_database: Database) -> Iterator[str]:
    """The real application served over real HTTP by uvicorn, in this process (so it reads the frozen clock)."""
    port = free_port()
    config = uvicorn.Config(create_app(demo_database, cookie_secure=False), port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_SECONDS_MAX
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def log_in(base: str, password: str) -> tuple[int, str]:
    response = httpx.post(f"{base}/api/v1/sessions", json={"login": "ana", "password": password}, timeout=60)
    return response.status_code, response.json().get("reason", "ok")


def test_forty_wrong_passwords_at_once_are_not_all_checked_and_the_right_one_waits(
    demo_database: Database, frozen_clock: list[datetime], served: str
) -> None:
    access.create_user(demo_database, None, node_login="agent-ana", login="ana", password=PASSWORD, role=Role.AGENT)
    guesses = [f"guess number {n}" for n in range(ATTEMPTS_AT_ONCE)]
    with ThreadPoolExecutor(max_workers=ATTEMPTS_AT_ONCE) as pool:
        answers = Counter(pool.map(lambda guess: log_in(served, guess), guesses))
    # Five were checked (and failed); the fifth locked the login for 2 s, so the other 35 were refused unchecked.
    assert answers == {(401, "login_failed"): 5, (429, "login_throttled"): 35}
    assert log_in(served, PASSWORD) == (429, "login_throttled")  # the 41st, right, still waits
    frozen_clock[0] += timedelta(seconds=2)
    assert log_in(served, PASSWORD) == (200, "ok")  # the pause is over: it is checked, and the count clears
    assert [log_in(served, "wrong again!") for _ in range(5)][-1] == (401, "login_failed")


def test_one_address_guessing_many_logins_is_throttled_but_not_the_others(
    demo_database: Database, frozen_clock: list[datetime]
) -> None:
    """Twenty failures from one address, on logins that exist or not, block that address only."""
    access.create_user(demo_database, None, node_login="alice", login="alice-x", password=PASSWORD, role=Role.CLIENT)
    app = create_app(demo_database, trusted_proxies=["10.0.0.0/8"])
    proxy = TestClient(app, base_url="https://testserver", client=("10.1.2.3", 40000))

    def from_address(address: str, login: str, password: str) -> str:
        response = proxy.post(
            "/api/v1/sessions",
            json={"login": login, "password": password},
            headers={"X-Forwarded-For": f"{address}, 10.9.9.9"},
        )
        return str(response.json().get("reason", "ok"))

    for n in range(access.FAILED_LOGINS_FREE_PER_ADDRESS):  # four tries on each of five logins
        assert from_address("203.0.113.7", f"user-{n % 5}", "not the password") == "login_failed"
    assert from_address("203.0.113.7", "alice-x", PASSWORD) == "login_throttled"
    assert from_address("198.51.100.2", "alice-x", PASSWORD) == "ok"  # another client of the same proxy
    # A client's own X-Forwarded-For is not believed: the untrusted peer is the address counted.
    direct = TestClient(app, base_url="https://testserver", client=("203.0.113.7", 40000))
    spoofed = direct.post(
        "/api/v1/sessions",
        json={"login": "alice-x", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.99"},
    )
    assert spoofed.json()["reason"] == "login_throttled"


def test_a_login_that_does_not_exist_is_throttled_exactly_as_one_that_does(demo_database: Database) -> None:
    access.create_user(demo_database, None, node_login="alice", login="alice-x", password=PASSWORD, role=Role.CLIENT)
    for login in ("alice-x", "nobody-x"):
        reasons = []
        for _ in range(access.FAILED_LOGINS_FREE + 1):
            try:
                access.login_with_password(demo_database, login=login, password="wrong password", now=FROZEN)
            except Refusal as refusal:
                reasons.append(refusal.reason)
        assert reasons == ["login_failed"] * 5 + ["login_throttled"], login


def test_the_count_lives_in_the_database_for_every_process(demo_database: Database) -> None:
    """A second process is a second engine on the same database: it sees the first one's count."""
    access.create_user(demo_database, None, node_login="alice", login="alice-x", password=PASSWORD, role=Role.CLIENT)
    other = Database(demo_database.url)
    try:
        for database in (demo_database, other) * 2 + (demo_database,):
            with pytest.raises(Refusal, match="login_failed"):
                access.login_with_password(database, login="alice-x", password="wrong password", now=FROZEN)
        with pytest.raises(Refusal, match="login_throttled"):
            access.login_with_password(other, login="alice-x", password=PASSWORD, now=FROZEN)
    finally:
        other.dispose()


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.7", [], "203.0.113.7"),  # no proxy
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # an untrusted peer's header is ignored
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),  # a trusted proxy names the client
        ("10.0.0.5", ["1.1.1.1, 198.51.100.1, 10.0.0.9"], "198.51.100.1"),  # from the right, past our proxies
        ("10.0.0.5", ["198.51.100.1", "10.0.0.9"], "198.51.100.1"),  # the header sent twice reads as one list
        ("10.0.0.5", ["10.0.0.9"], "10.0.0.9"),  # only proxies: the last one
        ("10.0.0.5", ["not an address"], "10.0.0.5"),  # garbled: the trusted peer
        ("::ffff:203.0.113.7", [], "203.0.113.7"),  # IPv4 on a dual-stack socket
        (None, [], None),
    ],
)
def test_the_client_address_behind_trusted_proxies(peer: str | None, forwarded: list[str], expected: str) -> None:
    assert resolve(peer, forwarded, parse_networks(["10.0.0.0/8"])) == expected
