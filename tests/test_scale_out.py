"""Several ``tollway serve`` processes on one database, each on a port of its own, as N application hosts
behind a load balancer are: nothing one process keeps for itself makes another one wrong.

What tests/test_calls_static_cache.py shows with two engines in one test process, and
tests/test_calls_concurrency.py with spawned engines and one killed server, is shown here through HTTP
between two real servers, each with its own static cache, connection pool and keeper:

1. A tariff changed and a reseller suspended through one server are seen by the very next call through
   the other (the static cache's version counter, tollway/store/static.py).
2. Calls authorized through one server and ended through the other, their ends repeated through the
   first, are charged exactly once, while each server decides the requests it holds at once in batches of
   its own (group commit, tollway/calls/batching.py): two processes' batches are two transactions.
3. Two keepers at once: every disconnect is pushed once, no call is extended twice, and when one server
   is killed with SIGKILL the other carries on with its calls at its next tick: there is no leader to
   elect, every duty takes its rows one by one with SKIP LOCKED (tollway/calls/keeper.py).

The world is tests/calls_world.py's: alice and bob -> north-city (L1) -> atlas-north -> atlas -> house;
a minute to the UK costs alice 0.10 (per second) at north-city:retail.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from tests.calls_world import UK, balance, build_world, micros
from tests.conftest import postgresql_admin_url
from tests.test_calls_concurrency import add_clients, assert_books_agree, free_port, wait_for_dead_sessions
from tests.test_calls_service import jsonrpc_switch
from tollway.access import service as access
from tollway.access.model import Role
from tollway.calls import service as calls
from tollway.clock import utc_now
from tollway.ledger.service import check
from tollway.store.database import Database
from tollway.store.schema import call_charges
from tollway.store.schema import calls as calls_table

TEST_SECONDS_MAX = 180  # pytest-timeout's last resort
SERVE_START_SECONDS_MAX = 60  # two servers importing Tollway at once on a loaded 2-core machine
KILLED_APPLICATION = "tollway-scale-out-killed"  # the killed server's PostgreSQL sessions, by PGAPPNAME
# Short credit-control timings, so the keepers' work happens within seconds: a grant of 10 s is extended
# when 5 s are left, a silent call is swept 1 s after its grant ran out.
KEEPER_TIMINGS = {
    "TOLLWAY_CALL_GRANT_SECONDS": "10",
    "TOLLWAY_CALL_EXTEND_LEAD_SECONDS": "5",
    "TOLLWAY_CALL_STALE_MARGIN_SECONDS": "1",
    "TOLLWAY_CALL_RING_TIMEOUT_SECONDS": "10",
}
GRANT_SECONDS, EXTEND_LEAD_SECONDS = 10, 5
KEEPER_WAIT_SECONDS_MAX = 60.0


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    client: httpx.Client  # as the switch, with its API key
    log: Path


@contextmanager
def serving(
    database: Database, tmp_path: Path, name: str, key: str, *, keeper: bool, environment: dict[str, str] | None = None
) -> Iterator[Served]:
    """``tollway serve`` (one process, no --workers) on a port of its own, as one application host."""
    port = free_port()
    env = {
        **os.environ,
        "TOLLWAY_DATABASE_URL": database.url,
        "TOLLWAY_KEEPER": "true" if keeper else "false",
        "TOLLWAY_LOG_LEVEL": "warning",
        "TOLLWAY_CONFIG": str(tmp_path / "no-such-file.toml"),
        "PGAPPNAME": f"tollway-scale-out-{name}",
        "PYTHONUNBUFFERED": "1",
        **(environment or {}),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each host its own, as on separate machines
    log = tmp_path / f"serve-{name}.log"
    tollway = str(Path(sys.executable).parent / "tollway")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [tollway, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {key}"}, timeout=30)
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS_MAX
        while True:
            try:
                if client.get("/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"tollway serve {name} did not start:\n{log.read_text()[-2000:]}"
            time.sleep(0.1)
        yield Served(process, client, log)
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(timeout=10)


def admin_key(database: Database) -> str:
    """An API key of the provider's (house) administrator: tariffs and statuses below it."""
    _, plaintext = access.create_api_key(database, None, node_login="house", name="ops", role=Role.PROVIDER_ADMIN)
    return plaintext


def authorize(server: Served, call_id: str, account: str) -> dict[str, Any]:
    body = {"call_id": call_id, "account": account, "callee": UK, "answered": True}
    response = server.client.post("/api/v1/calls/authorize", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def end(server: Served, call_id: str, seconds: int) -> dict[str, Any]:
    response = server.client.post(f"/api/v1/calls/{call_id}/end", json={"duration_seconds": seconds})
    assert response.status_code == 200, response.text
    return dict(response.json())


def charged_to_client(database: Database, call_id: str) -> int:
    """What the call's client was charged (position 0 of its charge lines)."""
    with database.reading() as connection:
        query = (
            select(call_charges.c.amount_micros)
            .join(calls_table, calls_table.c.id == call_charges.c.call_id)
            .where(calls_table.c.call_id == call_id, call_charges.c.position == 0)
        )
        return int(connection.execute(query).scalar_one())


# --- 1. what one server changes, the other sees at once --------------------------------------------------


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_a_tariff_changed_or_a_reseller_suspended_through_one_server_is_seen_by_the_next_call_through_the_other(
    database: Database, tmp_path: Path
) -> None:
    build_world(database)
    _, switch_key = calls.create_switch(database, name="sbc", node_login="house", trusted_durations=True)
    admin = admin_key(database)
    with ExitStack() as stack:
        one = stack.enter_context(serving(database, tmp_path, "one", switch_key, keeper=False))
        other = stack.enter_context(serving(database, tmp_path, "other", switch_key, keeper=False))
        operator = stack.enter_context(httpx.Client(base_url=str(one.client.base_url), timeout=30))
        operator.headers["authorization"] = f"Bearer {admin}"

        # The other server's cache holds alice's chain and north-city:retail at 0.10 a minute.
        assert authorize(other, "before", "alice")["status"] == "authorized"
        assert end(other, "before", 60)["status"] == "ended"
        assert charged_to_client(database, "before") == micros("0.10")

        # Through the first server: the UK at 0.20 a minute. The other's very next call pays it.
        rows = [{"description": "UK", "price": "0.20", "minimal_time": 0, "resolution": 1}]
        response = operator.put("/api/v1/tariffs/north-city:retail/rates/44", json=rows)
        assert response.status_code == 200, response.text
        assert authorize(other, "after", "alice")["status"] == "authorized"
        end(other, "after", 60)
        assert charged_to_client(database, "after") == micros("0.20")

        # Through the first server: north-city suspended. The other refuses the very next call below it.
        response = operator.put("/api/v1/nodes/north-city/status", json={"status": "suspended"})
        assert response.status_code == 200, response.text
        refused = authorize(other, "suspended", "bob")
        assert (refused["status"], refused["level"]) == ("refused", "north-city"), refused

        # Reactivated through the other server: the first authorizes again.
        operator.base_url = other.client.base_url
        response = operator.put("/api/v1/nodes/north-city/status", json={"status": "active"})
        assert response.status_code == 200, response.text
        assert authorize(one, "reactivated", "bob")["status"] == "authorized"
        end(one, "reactivated", 30)
    assert charged_to_client(database, "reactivated") == micros("0.10")
    assert_books_agree(database)


# --- 2. a call begun on one server and ended on the other -----------------------------------------------

CROSSING_CALLS = 40
CROSSING_THREADS = 8  # four requests at a time on each server: its batches hold several
CROSSING_SECONDS = 60  # each call's reported duration: 0.10 to alice's kind of client


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_calls_authorized_through_one_server_and_ended_through_the_other_are_charged_exactly_once(
    database: Database, tmp_path: Path
) -> None:
    build_world(database)
    clients = add_clients(database, 4)  # 10.00 each
    _, switch_key = calls.create_switch(database, name="sbc", node_login="house", trusted_durations=True)
    with ExitStack() as stack:
        servers = [
            stack.enter_context(serving(database, tmp_path, name, switch_key, keeper=False))
            for name in ("one", "other")
        ]

        def crossing(number: int) -> tuple[str, str]:
            """Authorized through one server, ended through the other, the end repeated through the first."""
            first, second = servers[number % 2], servers[(number + 1) % 2]
            call_id = f"x{number}"
            answer = authorize(first, call_id, clients[number % len(clients)])
            assert answer["status"] == "authorized", answer
            ended = end(second, call_id, CROSSING_SECONDS)
            repeated = end(first, call_id, CROSSING_SECONDS)  # the switch retried: the same answer, no charge
            assert repeated == ended, (repeated, ended)
            return ended["status"], ended["reference"]

        with ThreadPoolExecutor(CROSSING_THREADS) as pool:
            outcomes = list(pool.map(crossing, range(CROSSING_CALLS)))
    assert Counter(status for status, _ in outcomes) == {"ended": CROSSING_CALLS}
    per_client = CROSSING_CALLS // len(clients)
    assert [balance(database, login) for login in clients] == [micros("10") - per_client * micros("0.10")] * len(
        clients
    )
    books = assert_books_agree(database)
    assert books.states == {"ended": CROSSING_CALLS} and books.reserved == {} and books.pending_ids == set()
    assert check(database).ok


# --- 3. two keepers, and one of them killed --------------------------------------------------------------

LONG_CALLS = 6  # alice's, never updated: the keepers extend them
SILENT_CALLS = 6  # one interim update, then the switch goes silent: swept at the end of their grant
BLOCKED_CALLS = 6  # bob's: bob is suspended, each call's disconnect is pushed to the switch once


def wait_for(what: str, done: Callable[[], bool], logs: list[Path]) -> None:
    deadline = time.monotonic() + KEEPER_WAIT_SECONDS_MAX
    while not done():
        assert time.monotonic() < deadline, f"{what}: not after {KEEPER_WAIT_SECONDS_MAX} s\n" + "\n".join(
            log.read_text()[-1500:] for log in logs
        )
        time.sleep(0.2)


def call_rows(database: Database) -> dict[str, Any]:
    with database.reading() as connection:
        return {row.call_id: row for row in connection.execute(select(calls_table)).all()}


@pytest.mark.timeout(TEST_SECONDS_MAX)
def test_two_keepers_push_extend_and_sweep_each_call_once_and_one_killed_leaves_its_calls_to_the_other(
    database: Database, tmp_path: Path
) -> None:
    build_world(database)
    admin = admin_key(database)
    received: list[dict[str, Any]] = []
    with ExitStack() as stack:
        notify_url = stack.enter_context(jsonrpc_switch(received))
        _, switch_key = calls.create_switch(
            database, name="sbc", node_login="house", notify_kind="jsonrpc", notify_url=notify_url
        )
        doomed = stack.enter_context(
            serving(database, tmp_path, "doomed", switch_key, keeper=True,
                    environment={**KEEPER_TIMINGS, "PGAPPNAME": KILLED_APPLICATION})
        )  # fmt: skip
        survivor = stack.enter_context(
            serving(database, tmp_path, "survivor", switch_key, keeper=True, environment=KEEPER_TIMINGS)
        )
        servers, logs = (doomed, survivor), [doomed.log, survivor.log]
        for number in range(LONG_CALLS):
            assert authorize(servers[number % 2], f"long{number}", "alice")["grant_seconds"] == GRANT_SECONDS
        for number in range(SILENT_CALLS):
            server = servers[number % 2]
            assert authorize(server, f"silent{number}", "alice")["grant_seconds"] == GRANT_SECONDS
            update = server.client.post(
                f"/api/v1/calls/silent{number}/update", json={"sequence": 1, "elapsed_seconds": 1}
            )
            assert update.status_code == 200, update.text
        for number in range(BLOCKED_CALLS):
            assert authorize(servers[number % 2], f"blocked{number}", "bob")["status"] == "authorized"
        response = doomed.client.put(
            "/api/v1/nodes/bob/status", json={"status": "suspended"}, headers={"authorization": f"Bearer {admin}"}
        )
        assert response.status_code == 200, response.text

        # Both keepers see bob's calls at their next tick; each call's disconnect is sent once, by one of them.
        blocked = {f"blocked{number}" for number in range(BLOCKED_CALLS)}
        wait_for("bob's disconnects", lambda: {r["params"]["call_id"] for r in received} >= blocked, logs)
        doomed.process.send_signal(signal.SIGKILL)  # kill -9: its keeper stops wherever it was
        doomed.process.wait(timeout=10)
        wait_for_dead_sessions(database, KILLED_APPLICATION)
        killed_at = utc_now()

        # The survivor's keeper alone: silent calls swept, long calls extended past the kill.
        def survivor_done() -> bool:
            rows = call_rows(database)
            swept = all(rows[f"silent{n}"].state == "ended" for n in range(SILENT_CALLS))
            swept &= all(rows[call_id].state == "ended" for call_id in blocked)
            extended = all(
                rows[f"long{n}"].grant_expires_at > killed_at + timedelta(seconds=EXTEND_LEAD_SECONDS)
                for n in range(LONG_CALLS)
            )
            return swept and extended

        wait_for("the survivor's keeper", survivor_done, logs)
        looked_at = utc_now()
        rows = call_rows(database)
        for number in range(LONG_CALLS):
            long_call = rows[f"long{number}"]
            assert long_call.state == "answered" and long_call.extensions >= 1, long_call
            # Extended once each time it was due, never twice: never more ahead than a grant and the lead.
            ahead = long_call.grant_expires_at - looked_at
            assert ahead <= timedelta(seconds=GRANT_SECONDS + EXTEND_LEAD_SECONDS + 1), (long_call.call_id, ahead)
            assert long_call.grant_seconds == GRANT_SECONDS * (long_call.extensions + 1), long_call
        for number in range(SILENT_CALLS):
            assert (rows[f"silent{number}"].end_reason, rows[f"silent{number}"].duration_seconds) == (
                "stale",
                GRANT_SECONDS,
            )
        ending = [end(survivor, f"long{number}", 12) for number in range(LONG_CALLS)]
        assert {answer["status"] for answer in ending} == {"ended"}
    pushed = Counter(request["params"]["call_id"] for request in received)
    assert pushed == dict.fromkeys(blocked, 1)  # each of bob's calls once; no other call
    books = assert_books_agree(database)
    assert books.reserved == {} and books.pending_ids == set()
    assert books.states == {"ended": LONG_CALLS + SILENT_CALLS + BLOCKED_CALLS}
    assert check(database).ok


# --- 4. a database URL that names several hosts -------------------------------------------------------


def test_a_url_naming_several_hosts_connects_to_the_one_that_accepts_writes(backend: str, tmp_path: Path) -> None:
    """``?host=A&host=B&target_session_attrs=read-write``, as docs/deployment.md gives it for a primary and its
    standby: libpq tries each host in turn and keeps the first that accepts writes. Here the first host is a
    port nobody listens on, as a primary that died; the second answers."""
    if backend != "postgresql":
        pytest.skip("several hosts are a PostgreSQL matter")
    admin = make_url(Database(postgresql_admin_url()).url)
    dead = free_port()  # bound a moment ago and released: nothing listens there now
    url = (
        f"postgresql://{admin.username}@/{admin.database}?host=127.0.0.1:{dead}&host={admin.host}:{admin.port or 5432}"
        "&target_session_attrs=read-write&connect_timeout=5"
    )
    database = Database(url)
    try:
        with database.reading() as connection:
            assert connection.execute(text("SELECT NOT pg_is_in_recovery()")).scalar_one() is True
            port = connection.execute(text("SELECT inet_server_port()")).scalar_one()
        assert port == (admin.port or 5432)
    finally:
        database.dispose()
    with pytest.raises(ValueError):  # libpq's own list in the host part is not a URL SQLAlchemy reads: say so
        Database(f"postgresql://{admin.username}@127.0.0.1:{dead},{admin.host}:{admin.port or 5432}/{admin.database}")


# --- 5. the load balancer's configuration in docs/deployment.md -----------------------------------------

DEPLOYMENT_DOC = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
TOOL_SECONDS_MAX = 60


def test_the_haproxy_configuration_of_the_deployment_guide_is_valid(tmp_path: Path) -> None:
    """The frontend and backend docs/deployment.md gives, with Debian's global section and a throwaway
    certificate in place of the real one, pass ``haproxy -c``."""
    haproxy, openssl = shutil.which("haproxy"), shutil.which("openssl")
    if haproxy is None or openssl is None:  # scripts/install-switch-tools installs both
        reason = "haproxy or openssl is not installed: run scripts/install-switch-tools"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI runs every test)")
        pytest.skip(reason)
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(certificate)],
        capture_output=True, text=True, timeout=TOOL_SECONDS_MAX, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    bundle = tmp_path / "billing.pem"
    bundle.write_text(certificate.read_text() + key.read_text())
    guide = DEPLOYMENT_DOC.read_text()
    block = guide.split("```haproxy\n", 1)[1].split("```", 1)[0]
    block = block.replace("/etc/haproxy/billing.example.net.pem", str(bundle))
    configuration = tmp_path / "haproxy.cfg"
    configuration.write_text(
        "global\n    log stdout format raw local0\n\n"
        "defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 5s\n"
        "    timeout client 50s\n    timeout server 50s\n\n" + block
    )
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(configuration)], capture_output=True, text=True, timeout=TOOL_SECONDS_MAX, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout + checked.stderr
