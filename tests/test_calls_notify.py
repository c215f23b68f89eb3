"""Disconnect orders sent to a real HTTP server on loopback that plays the switch, one behaviour per test."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tollway.calls.notify import (
    NOTIFY_ATTEMPTS_MAX,
    RESPONSE_BYTES_MAX,
    Disconnect,
    JsonRpcNotifier,
    NotifyFailed,
    NotifyFailure,
    NullNotifier,
    notifier_for,
    retry_delay_seconds,
)
from tollway.errors import InvariantBroken

TIMEOUT_SECONDS = 1.0  # generous: loopback answers in milliseconds, and a busy CI machine must not fail a test
TIMEOUT_SECONDS_SHORT = 0.2  # for the tests that wait for a timeout, so they stay fast
ORDER = Disconnect(call_id="a84b4c76e66710", account="alice", reason="insufficient_funds", level="atlas", attempt=3)

Answer = Callable[[dict[str, Any]], tuple[int, bytes]]


def result(request: dict[str, Any]) -> tuple[int, bytes]:
    """What a well-behaved switch answers: a JSON-RPC result for the request's id."""
    return 200, json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "ok"}).encode()


class Switch(ThreadingHTTPServer):
    """A switch's notify endpoint: records every request body, answers with ``answer``, after ``delay_seconds``."""

    daemon_threads = True
    request_queue_size = 64  # the default backlog of 5 drops connections when many threads send at once

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SwitchHandler)
        self.answer: Answer = result
        self.delay_seconds = 0.0
        self.received: list[bytes] = []
        self.stopping = threading.Event()  # lets a handler that is still sleeping give up at teardown

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/rpc"


class SwitchHandler(BaseHTTPRequestHandler):
    server: Switch

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.received.append(body)
        if self.server.stopping.wait(self.server.delay_seconds):
            return
        status, content = self.server.answer(json.loads(body))
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:  # the notifier gave up (timed out) and hung up first
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output quiet


@pytest.fixture
def switch() -> Iterator[Switch]:
    server = Switch()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx.Client]:
    """One client for the module: making one loads the TLS trust store, a tenth of a second each time."""
    with httpx.Client(trust_env=False) as client:
        yield client


@pytest.fixture
def notifier(switch: Switch, http_client: httpx.Client) -> Iterator[JsonRpcNotifier]:
    sender = JsonRpcNotifier(switch.url, timeout_seconds=TIMEOUT_SECONDS, client=http_client)
    yield sender
    sender.close()


def failure_of(notifier: JsonRpcNotifier, order: Disconnect = ORDER) -> NotifyFailed:
    with pytest.raises(NotifyFailed) as caught:
        notifier.disconnect(order)
    return caught.value


def test_an_acknowledged_disconnect_returns_and_sent_exactly_the_json_rpc_request(
    switch: Switch, notifier: JsonRpcNotifier
) -> None:
    notifier.disconnect(ORDER)
    assert [json.loads(body) for body in switch.received] == [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tollway.disconnect",
            "params": {
                "call_id": "a84b4c76e66710",
                "account": "alice",
                "reason": "insufficient_funds",
                "level": "atlas",
                "attempt": 3,
            },
        }
    ]


def test_each_request_has_its_own_id_and_a_missing_level_is_sent_as_null(
    switch: Switch, notifier: JsonRpcNotifier
) -> None:
    notifier.disconnect(ORDER)
    notifier.disconnect(Disconnect("b2", "bob", "account_suspended", None, 1))
    second = json.loads(switch.received[1])
    assert second["id"] == 2
    assert second["params"]["level"] is None


def test_one_notifier_serves_many_threads_at_once(switch: Switch, notifier: JsonRpcNotifier) -> None:
    orders = [Disconnect(f"call-{n}", "alice", "grant_exhausted", "alice", 1) for n in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(notifier.disconnect, orders))
    received = [json.loads(body) for body in switch.received]
    assert sorted(request["id"] for request in received) == list(range(1, 17))
    assert {request["params"]["call_id"] for request in received} == {order.call_id for order in orders}


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(-32601, False), (-32602, False), (-32000, False), (-32603, True)],
    ids=["method-not-found", "invalid-params", "server-defined", "internal-error"],
)
def test_a_json_rpc_error_is_a_refusal_retried_only_when_the_switch_failed_inside(
    switch: Switch, notifier: JsonRpcNotifier, code: int, retryable: bool
) -> None:
    def refuse(request: dict[str, Any]) -> tuple[int, bytes]:
        error = {"code": code, "message": "no such call"}
        return 200, json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode()

    switch.answer = refuse
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.SWITCH_ERROR, retryable)
    assert "no such call" in str(failure)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(503, True), (500, True), (502, True), (429, True), (408, True), (404, False), (400, False), (302, False)],
)
def test_a_status_other_than_2xx_fails_retryable_only_when_the_switch_is_busy_or_failing(
    switch: Switch, notifier: JsonRpcNotifier, status: int, retryable: bool
) -> None:
    switch.answer = lambda request: (status, b'{"detail": "nope"}')
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.HTTP_STATUS, retryable)
    assert f"HTTP {status}" in str(failure)


def test_a_switch_slower_than_the_timeout_is_retryable(switch: Switch, http_client: httpx.Client) -> None:
    switch.delay_seconds = 10 * TIMEOUT_SECONDS_SHORT
    failure = failure_of(JsonRpcNotifier(switch.url, timeout_seconds=TIMEOUT_SECONDS_SHORT, client=http_client))
    assert (failure.reason, failure.retryable) == (NotifyFailure.TIMEOUT, True)


def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as bound_not_listening:  # holds the port, so connecting to it is refused
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        notifier = JsonRpcNotifier(f"http://127.0.0.1:{port}/rpc", timeout_seconds=TIMEOUT_SECONDS_SHORT)
        try:
            failure = failure_of(notifier)
        finally:
            notifier.close()
    assert (failure.reason, failure.retryable) == (NotifyFailure.CONNECTION_FAILED, True)


@pytest.mark.parametrize(
    "body",
    [b"<html>It works!</html>", b"", b"\xff\xfe", b"[1, 2]", b'{"jsonrpc": "2.0", "id": 1}'],
    ids=["html", "empty", "not-utf8", "not-an-object", "no-result"],
)
def test_an_answer_that_is_not_a_json_rpc_result_fails_and_is_not_retried(
    switch: Switch, notifier: JsonRpcNotifier, body: bytes
) -> None:
    switch.answer = lambda request: (200, body)
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.INVALID_RESPONSE, False)


def test_a_result_for_another_request_is_not_an_acknowledgement(switch: Switch, notifier: JsonRpcNotifier) -> None:
    switch.answer = lambda request: (200, json.dumps({"jsonrpc": "2.0", "id": 999, "result": "ok"}).encode())
    assert failure_of(notifier).reason == NotifyFailure.INVALID_RESPONSE


def test_an_oversized_answer_is_not_read_whole(switch: Switch, notifier: JsonRpcNotifier) -> None:
    switch.answer = lambda request: (200, b" " * (RESPONSE_BYTES_MAX + 1))
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.INVALID_RESPONSE, False)


def test_no_other_exception_escapes_even_from_a_closed_client(switch: Switch) -> None:
    client = httpx.Client()
    client.close()
    notifier = JsonRpcNotifier(switch.url, client=client)
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.UNEXPECTED, False)
    assert isinstance(failure.__cause__, RuntimeError)


def test_close_leaves_a_client_passed_in_open_for_its_owner(switch: Switch, http_client: httpx.Client) -> None:
    notifier = JsonRpcNotifier(switch.url, client=http_client)
    notifier.close()
    notifier.disconnect(ORDER)
    assert not http_client.is_closed


def test_credentials_in_the_url_stay_out_of_messages(switch: Switch) -> None:
    host, port = switch.server_address[:2]
    url = f"http://billing:s3cret@{host!s}:{port}/rpc?token=t0ken"
    notifier = JsonRpcNotifier(url, timeout_seconds=TIMEOUT_SECONDS)
    switch.answer = lambda request: (503, b"")
    try:
        message = str(failure_of(notifier))
    finally:
        notifier.close()
    assert "s3cret" not in message
    assert "t0ken" not in message


@pytest.mark.parametrize("url", ["ftp://switch.example/rpc", "switch.example", "http:///rpc"])
def test_a_url_that_is_not_http_is_refused_at_once(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        JsonRpcNotifier(url)


@pytest.mark.parametrize("timeout_seconds", [0.0, -1.0, 31.0])
def test_a_timeout_out_of_range_is_refused(timeout_seconds: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        JsonRpcNotifier("http://127.0.0.1:9/rpc", timeout_seconds=timeout_seconds)


@pytest.mark.parametrize("attempt", [0, -1, NOTIFY_ATTEMPTS_MAX + 1])
def test_an_attempt_out_of_range_is_a_bug(attempt: int) -> None:
    with pytest.raises(InvariantBroken):
        Disconnect("c1", "alice", "insufficient_funds", None, attempt)


def test_a_disconnect_without_a_call_id_is_a_bug() -> None:
    with pytest.raises(InvariantBroken):
        Disconnect("", "alice", "insufficient_funds", None, 1)


def test_retry_delays_double_from_one_second_up_to_a_minute() -> None:
    delays = [retry_delay_seconds(attempt) for attempt in range(1, NOTIFY_ATTEMPTS_MAX + 1)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0, 60.0, 60.0]
    assert retry_delay_seconds(10**9) == 60.0
    assert NOTIFY_ATTEMPTS_MAX == 12


def test_retry_delay_of_attempt_zero_is_a_bug() -> None:
    with pytest.raises(InvariantBroken):
        retry_delay_seconds(0)


def test_notifier_for_builds_each_known_kind(switch: Switch) -> None:
    jsonrpc = notifier_for("jsonrpc", switch.url)
    try:
        assert isinstance(jsonrpc, JsonRpcNotifier)
        jsonrpc.disconnect(ORDER)
    finally:
        jsonrpc.close()
    assert len(switch.received) == 1
    assert isinstance(notifier_for("none", None), NullNotifier)


def test_the_null_notifier_does_nothing_and_says_so() -> None:
    silent = NullNotifier()
    silent.disconnect(ORDER)
    silent.close()


@pytest.mark.parametrize(
    ("kind", "url"), [("jsonrpc", None), ("jsonrpc", ""), ("kamailio", None), ("sms", "http://x/"), ("", None)]
)
def test_notifier_for_refuses_an_unknown_kind_or_a_kind_without_url(kind: str, url: str | None) -> None:
    with pytest.raises(ValueError):
        notifier_for(kind, url)
