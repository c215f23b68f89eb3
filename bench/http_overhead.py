"""Benchmark: what the HTTP layer costs a call setup, apart from the engine (issue 17).

    .venv/bin/python bench/http_overhead.py                      # about a minute: the three figures
    .venv/bin/python bench/http_overhead.py --profile            # and where the server's CPU goes (py-spy)
    .venv/bin/python bench/http_overhead.py --stub-engine        # the HTTP layer alone: canned engine answers
    .venv/bin/python bench/http_overhead.py --server granian     # the same app under granian
    .venv/bin/python bench/http_overhead.py --python-path DIR    # DIR first on the server's path (httptools...)

It makes its own PostgreSQL database next to the one the admin URL names (``--url`` or
``TOLLWAY_BENCH_POSTGRESQL_URL``), builds the small world of ``tests/calls_world.py`` (a provider, three
resellers, a client; every level funded for far more calls than a run makes) and a switch with its API key,
then measures a warm **setup**, the authorize of an answered call then its end, three ways:

* **engine alone**: ``authorize_call`` and ``end_call`` in this process, as the switch's principal logged in
  once (what ``bench/carrier.py``'s in-process phase measures): CPU ms a setup of this process;
* **engine with the key's login**: the same, logging the API key in before each of the two requests, as the
  HTTP API does for every request (``tollway/http/auth.py``);
* **HTTP**: ``tollway serve`` (one worker by default, JSON logs at level info as deployed) driven over
  keep-alive connections by the minimal client of ``bench/calls.py``: server CPU ms a setup, from
  ``/proc/<pid>/stat`` of the server's processes.

The HTTP layer is the difference: HTTP minus the engine with the login (the framework, the server, the
logs), and HTTP minus the engine alone (that plus the login). CPU per setup holds on a loaded machine;
throughput does not, so it is printed for information only, with the load average.

``--profile`` samples the server under the same load with py-spy (``pip install py-spy``; ``--py-spy PATH``)
and groups the samples: the engine, the login, logging, the thread pool, response serialization, request
parsing and validation, dependency resolution, middleware, routing, the HTTP protocol, the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))  # tests.calls_world

from calls import SwitchLink, children_of, cpu_of, free_port, http_get  # noqa: E402
from scratch_database import bench_database, settle  # noqa: E402

from tests.calls_world import UK, build_world  # noqa: E402
from tollway.access import service as access  # noqa: E402
from tollway.calls import service as calls_service  # noqa: E402
from tollway.calls.service import CallRequest  # noqa: E402
from tollway.ledger import service as ledger  # noqa: E402
from tollway.store import migrate  # noqa: E402
from tollway.store.database import Database  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_VARIABLE = "TOLLWAY_BENCH_POSTGRESQL_URL"
AUTHORIZE_PATH = "/api/v1/calls/authorize"
SWITCH = "bench-http"
FUNDS = "100000000"  # every level: far more than any run spends
DURATION_SECONDS = 30
SETUPS = 2_000  # measured, per way
WARMUP_SETUPS = 200
LINKS = 2  # keep-alive connections, one request in flight on each
PROFILE_RATE_HZ = 250
SERVER_START_SECONDS_MAX = 90.0
SERVER_STOP_SECONDS_MAX = 20.0


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


# --- the engine alone ---------------------------------------------------------------------------------


def engine_setup(database: Database, key: str, principal: object | None, call_id: str) -> None:
    """One setup in this process: as ``principal``, or logging ``key`` in before each request if None."""
    who = principal if principal is not None else access.login_with_api_key(database, plaintext=key)
    answer = calls_service.authorize_call(
        database, CallRequest(call_id, "alice", "101", UK, answered=True), principal=who
    )  # type: ignore[arg-type]
    if answer["status"] != "authorized":
        raise RuntimeError(f"refused: {answer}")
    who = principal if principal is not None else access.login_with_api_key(database, plaintext=key)
    calls_service.end_call(database, call_id, duration_seconds=DURATION_SECONDS, principal=who)  # type: ignore[arg-type]


def engine_cpu_ms(url: str, key: str, setups: int, warmup: int, *, login_each: bool) -> tuple[float, float]:
    """CPU ms and wall ms a warm setup, engine alone (login once) or with the key's login each request."""
    database = Database(url, pool_size=2)
    try:
        principal = None if login_each else access.login_with_api_key(database, plaintext=key)
        tag = uuid.uuid4().hex[:8]
        for number in range(warmup):
            engine_setup(database, key, principal, f"e{tag}.w{number}")
        began, wall_began = time.process_time(), time.perf_counter()
        for number in range(setups):
            engine_setup(database, key, principal, f"e{tag}.{number}")
        cpu, wall = time.process_time() - began, time.perf_counter() - wall_began
        return cpu * 1000 / setups, wall * 1000 / setups
    finally:
        database.dispose()


# --- the server ---------------------------------------------------------------------------------------


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def pids(self) -> list[int]:
        return [self.process.pid, *children_of(self.process.pid)]

    def cpu_seconds(self) -> float:
        return sum(cpu_of(self.pids()).values())

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


STUB_ANSWERS_VARIABLE = "TOLLWAY_BENCH_STUB_ANSWERS"
APP_FACTORY, STUB_APP_FACTORY = "tollway.http.main:app_factory", "http_overhead:stub_app_factory"


def stub_app_factory() -> object:
    """The application with the engine replaced by canned answers (a real call's): the HTTP layer alone."""
    from tollway.http.main import app_factory

    answers = json.loads(Path(os.environ[STUB_ANSWERS_VARIABLE]).read_text())

    def authorize_call(_database: object, call: CallRequest, **_: object) -> dict[str, object]:
        return answers["authorize"] | {"call_id": call.call_id}

    def end_call(_database: object, call_id: str, **_: object) -> dict[str, object]:
        return answers["end"] | {"call_id": call_id}

    calls_service.authorize_call = authorize_call  # type: ignore[assignment]
    calls_service.end_call = end_call  # type: ignore[assignment]
    return app_factory()


def record_answers(url: str, key: str, path: Path) -> None:
    """A real setup's answers, for the stub engine."""
    database = Database(url, pool_size=1)
    try:
        principal = access.login_with_api_key(database, plaintext=key)
        call_id = f"stub.{uuid.uuid4().hex[:8]}"
        request = CallRequest(call_id, "alice", "101", UK, answered=True)
        answer = calls_service.authorize_call(database, request, principal=principal)
        view = calls_service.end_call(database, call_id, duration_seconds=DURATION_SECONDS, principal=principal)
        path.write_text(json.dumps({"authorize": answer, "end": view}, default=str))
    finally:
        database.dispose()


def server_command(kind: str, port: int, workers: int, stub: bool) -> list[str]:
    factory = STUB_APP_FACTORY if stub else APP_FACTORY
    if kind == "granian":  # the same application factory as tollway serve
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-ws",
            factory,
        ]
    if stub:  # as tollway serve runs uvicorn
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            factory,
        ]
    tollway = Path(sys.executable).with_name("tollway")
    command = [str(tollway)] if tollway.exists() else [sys.executable, "-m", "tollway.cli.main"]
    return [*command, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


@contextmanager
def serving(url: str, options: argparse.Namespace, directory: Path) -> Iterator[Served]:
    port = free_port()
    environment = os.environ | {
        "TOLLWAY_DATABASE_URL": url,
        "TOLLWAY_LOG_LEVEL": options.log_level,
        "TOLLWAY_LOG_FORMAT": options.log_format,
        "TOLLWAY_KEEPER": "false",
    }
    if options.stub_engine:
        environment[STUB_ANSWERS_VARIABLE] = str(directory / "answers.json")
    # The caller's PYTHONPATH first: the code under test may be another checkout than this script's.
    paths = [*options.python_path, os.environ.get("PYTHONPATH", ""), str(REPOSITORY), str(REPOSITORY / "bench")]
    environment["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    log_path = directory / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(options.server, port, options.workers, options.stub_engine),
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            start_new_session=True,
        )
    served = Served(process, port, log_path)
    try:
        wait_ready(served, options.workers)
        yield served
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the group this started: the server and its workers
        try:
            process.wait(timeout=SERVER_STOP_SECONDS_MAX)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_ready(served: Served, workers: int) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS_MAX
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"the server exited: {served.log_tail()}")
        with suppress(OSError):
            status, _ = http_get(f"http://127.0.0.1:{served.port}/ready", timeout=2)
            if status == 200 and (workers == 1 or len(children_of(served.process.pid)) >= workers):
                return
        time.sleep(0.25)
    raise RuntimeError(f"the server was not ready after {SERVER_START_SECONDS_MAX:.0f} s: {served.log_tail()}")


def serving_pid(served: Served) -> int:
    """The process that answers requests: the server itself, or its one worker."""
    children = children_of(served.process.pid)
    python_children = [pid for pid in children if "python" in Path(f"/proc/{pid}/exe").resolve().name]
    return (python_children or children or [served.process.pid])[-1] if children else served.process.pid


# --- the load -----------------------------------------------------------------------------------------


async def setups_over_http(port: int, key: str, tag: str, setups: int, links: int) -> list[float]:
    """``setups`` setups spread over ``links`` keep-alive connections; the wall seconds of each."""
    seconds: list[float] = []

    async def loop(link_number: int, count: int) -> None:
        link = SwitchLink("127.0.0.1", port, key)
        try:
            for number in range(count):
                call_id = f"{tag}.{link_number}.{number}"
                began = time.perf_counter()
                payload = {"call_id": call_id, "account": "alice", "caller": "101", "callee": UK, "answered": True}
                status, answer = await link.request("POST", AUTHORIZE_PATH, payload)
                if status != 200 or answer.get("status") != "authorized":
                    raise RuntimeError(f"authorize: {status} {answer}")
                ending = {"duration_seconds": DURATION_SECONDS, "reason": "normal"}
                status, record = await link.request("POST", f"/api/v1/calls/{call_id}/end", ending)
                if status != 200 or record.get("status") != "ended":
                    raise RuntimeError(f"end: {status} {record}")
                seconds.append(time.perf_counter() - began)
        finally:
            await link.close()

    shares = [setups // links + (number < setups % links) for number in range(links)]
    await asyncio.gather(*(loop(number, share) for number, share in enumerate(shares)))
    return seconds


@dataclass(frozen=True)
class HttpFigures:
    server_cpu_ms: float
    client_cpu_ms: float
    setups_per_second: float
    setup_ms_p50: float
    load: str


def http_cpu_ms(served: Served, key: str, setups: int, links: int) -> HttpFigures:
    tag = uuid.uuid4().hex[:8]
    server_before, client_before, wall_before = served.cpu_seconds(), time.process_time(), time.perf_counter()
    seconds = asyncio.run(setups_over_http(served.port, key, tag, setups, links))
    wall = time.perf_counter() - wall_before
    server = served.cpu_seconds() - server_before
    client = time.process_time() - client_before
    seconds.sort()
    return HttpFigures(
        server * 1000 / setups, client * 1000 / setups, setups / wall, seconds[len(seconds) // 2] * 1000, load_average()
    )


# --- the profile --------------------------------------------------------------------------------------

# A sample goes to the first of these groups any of its frames matches, in this order: each claims all the
# work done beneath it (the engine's SQL, the login's, a log line's rendering)...
CLAIMING: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("auth: the API key's login (tollway/http/auth.py -> tollway.access)", ("tollway/http/auth.py",)),
    ("engine: authorize_call / end_call", ("tollway/calls/", "tollway/ledger/", "tollway/rating/")),
    ("endpoint: the answer's model (model_validate in tollway/http/api/calls.py)", ("tollway/http/api/calls.py",)),
    ("logging (structlog, the access log's line)", ("structlog/", "tollway/logs.py", "logging/")),
    (
        "response: validate the reply model + serialize, Response",
        ("serialize_response", "starlette/responses.py", "fastapi/encoders.py"),
    ),
    ("request: read + parse the JSON body", ("starlette/requests.py", "json/")),
    ("dependencies: solve_dependencies, the body's validation", ("fastapi/dependencies/",)),
)
# ... else to the group of its innermost frame that one of these matches.
INNERMOST: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "thread-pool handoff (anyio to_thread, both sides)",
        ("anyio/", "starlette/concurrency.py", "concurrent/", "threading.py", "queue.py"),
    ),
    ("pydantic (validation in a worker thread)", ("pydantic",)),
    (
        "middleware: access log, body limits, errors, exceptions",
        (
            "tollway/http/access_log.py",
            "tollway/http/limits.py",
            "starlette/middleware/",
            "starlette/_exception_handler.py",
        ),
    ),
    (
        "routing: Starlette + FastAPI request handler",
        (
            "starlette/routing.py",
            "fastapi/routing.py",
            "starlette/applications.py",
            "fastapi/applications.py",
            "starlette/datastructures.py",
        ),
    ),
    ("HTTP protocol: uvicorn + h11/httptools (parse, write)", ("uvicorn/", "h11/", "httptools", "granian")),
    ("event loop + sockets (asyncio)", ("asyncio/", "selectors.py", "uvloop", "socket.py")),
)
OTHER = "other"


def group_of(frames: Sequence[str]) -> str:
    """``frames`` from the outermost to the innermost."""
    for group, needles in CLAIMING:
        if any(needle in frame for frame in frames for needle in needles):
            return group
    for frame in reversed(frames):
        for group, needles in INNERMOST:
            if any(needle in frame for needle in needles):
                return group
    return OTHER


def profile_groups(raw: str) -> tuple[Counter[str], Counter[str], int]:
    """Samples per group and per leaf function, from py-spy's raw (collapsed) output."""
    groups: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        groups[group_of(frames)] += count
        leaves[frames[-1]] += count
        total += count
    return groups, leaves, total


def profile_server(served: Served, key: str, options: argparse.Namespace, directory: Path) -> str:
    py_spy = options.py_spy or shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    pid = serving_pid(served)
    raw_path = directory / "profile.txt"
    command = [
        py_spy,
        "record",
        "--format",
        "raw",
        "--full-filenames",
        "--rate",
        str(PROFILE_RATE_HZ),
        "--gil",
        "--pid",
        str(pid),
        "-o",
        str(raw_path),
        *(["--native"] if options.native else []),
    ]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached
    figures = http_cpu_ms(served, key, options.setups, options.links)
    spy.send_signal(signal.SIGINT)
    _, errors = spy.communicate(timeout=60)
    if not raw_path.exists():
        raise RuntimeError(f"py-spy wrote nothing: {errors.decode(errors='replace')[-500:]}")
    if options.flamegraph:
        shutil.copy(raw_path, options.flamegraph)
    groups, leaves, total = profile_groups(raw_path.read_text())
    ms_a_sample = figures.server_cpu_ms / max(1, total) * options.setups
    lines = [
        f"profile of pid {pid}: {total} samples at {PROFILE_RATE_HZ} Hz while {options.setups} setups ran "
        f"(server CPU {figures.server_cpu_ms:.2f} ms a setup under the profiler, load {figures.load})",
        "",
        "| where | share of samples | ms a setup |",
        "|---|---:|---:|",
    ]
    for group, count in groups.most_common():
        lines.append(f"| {group} | {count * 100 / total:.1f} % | {count * ms_a_sample / options.setups:.2f} |")
    lines += ["", "top leaf functions:"]
    lines += [f"  {count * 100 / total:5.1f} %  {leaf}" for leaf, count in leaves.most_common(options.top)]
    return "\n".join(lines)


# --- the run ------------------------------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--url",
        default=os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL),
        help=f"admin URL of the PostgreSQL server (env {ADMIN_URL_VARIABLE})",
    )
    parser.add_argument("--setups", type=int, default=SETUPS, help="measured setups, each way")
    parser.add_argument("--warmup", type=int, default=WARMUP_SETUPS, help="setups before each measure")
    parser.add_argument("--links", type=int, default=LINKS, help="keep-alive connections to the server")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="uvicorn: tollway serve; granian: the same application under granian",
    )
    parser.add_argument("--python-path", action="append", default=[], help="put this first on the server's path")
    parser.add_argument("--log-level", default="info", help="the server's (info: a line per request, as deployed)")
    parser.add_argument("--log-format", default="json", choices=("json", "console"))
    parser.add_argument("--rounds", type=int, default=1, help="repeat the HTTP measure this many times")
    parser.add_argument("--skip-engine", action="store_true", help="measure HTTP only")
    parser.add_argument(
        "--stub-engine",
        action="store_true",
        help="the server answers with a real call's answers, without the engine: HTTP alone",
    )
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy and group it")
    parser.add_argument("--py-spy", default=None, help="the py-spy executable")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--flamegraph", type=Path, default=None, help="keep py-spy's raw samples in this file")
    parser.add_argument("--top", type=int, default=25, help="leaf functions shown with --profile")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    print(f"load average at the start: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tollway-http-overhead-") as scratch, bench_database(options.url) as url:
        database = Database(url)
        migrate.upgrade(database)
        build_world(database, balances_of={login: FUNDS for login in ("alice", "north-city", "atlas-north", "atlas")})
        _, key = calls_service.create_switch(database, name=SWITCH, node_login="house", trusted_durations=True)
        settle(url)
        if options.stub_engine:
            record_answers(url, key, Path(scratch) / "answers.json")
            options.skip_engine = True
        rows: list[tuple[str, str, str]] = []
        engine = engine_with_login = None
        if not options.skip_engine:
            engine, wall = engine_cpu_ms(url, key, options.setups, options.warmup, login_each=False)
            rows.append(
                (
                    f"engine alone (in-process, logged in once), wall {wall:.1f} ms a setup",
                    f"{engine:.2f}",
                    load_average(),
                )
            )
            engine_with_login, wall = engine_cpu_ms(url, key, options.setups, options.warmup, login_each=True)
            rows.append(
                (
                    f"engine + the key's login each request (in-process), wall {wall:.1f} ms a setup",
                    f"{engine_with_login:.2f}",
                    load_average(),
                )
            )
        with serving(url, options, Path(scratch)) as served:
            asyncio.run(setups_over_http(served.port, key, f"w{uuid.uuid4().hex[:6]}", options.warmup, options.links))
            for _ in range(options.rounds):
                http = http_cpu_ms(served, key, options.setups, options.links)
                stub = ", engine stubbed" if options.stub_engine else ""
                rows.append(
                    (
                        f"HTTP{stub}: {options.server}, {options.workers} worker(s), {options.links} link(s), "
                        f"{http.setups_per_second:.0f} setups/s, p50 {http.setup_ms_p50:.1f} ms, "
                        f"client {http.client_cpu_ms:.2f} ms",
                        f"{http.server_cpu_ms:.2f}",
                        http.load,
                    )
                )
                if engine is not None and engine_with_login is not None:
                    rows.append(("  HTTP layer = HTTP - engine alone", f"{http.server_cpu_ms - engine:.2f}", ""))
                    rows.append(
                        (
                            "  HTTP layer without the login = HTTP - (engine + login)",
                            f"{http.server_cpu_ms - engine_with_login:.2f}",
                            "",
                        )
                    )
            profile = profile_server(served, key, options, Path(scratch)) if options.profile else None
        report = ledger.check(database)
        database.dispose()
    print(
        f"\nA warm setup (authorize answered + end), {options.setups} setups each way, PostgreSQL, "
        f"log {options.log_format} at {options.log_level}\n"
    )
    print("| what | CPU ms a setup | load average |\n|---|---:|---:|")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    if profile:
        print("\n" + profile)
    if not report.ok:
        print(f"ledger check failed: {report.problems[:5]}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
