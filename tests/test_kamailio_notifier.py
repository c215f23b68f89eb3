"""The ``kamailio`` notifier against a small fake of Kamailio's JSON-RPC over HTTP, one behaviour per test.

The fake answers as Kamailio 5.6 with deploy/kamailio/kamailio.cfg does (captured from the real one):
a JSON-RPC error carries its code as the HTTP status too (404 "Not found" from dlg.list_match, 404
"Dialog not found" from dlg.end_dlg, 400 "Transaction not found" from tm.cancel), dlg.end_dlg answers an
empty object, and the configuration refuses any other method with a plain 403. tests/test_kamailio.py
drives the notifier against the real Kamailio.
"""

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
    KAMAILIO_DIALOGS_MAX,
    RESPONSE_BYTES_MAX,
    Disconnect,
    KamailioNotifier,
    NotifyFailed,
    NotifyFailure,
    notifier_for,
)

TIMEOUT_SECONDS = 1.0
TIMEOUT_SECONDS_SHORT = 0.2
CALL_ID = "a84b4c76e66710@pc33"
ORDER = Disconnect(call_id=CALL_ID, account="alice", reason="insufficient_funds", level="atlas-north", attempt=1)

Answer = Callable[[list[Any]], tuple[int, Any]]  # params -> (HTTP status, "result" or {"error": ...})


def dialog(state: int = 4, h_entry: int = 887, h_id: int = 2143, call_id: str = CALL_ID) -> dict[str, Any]:
    """A dialog as Kamailio 5.6 lists it (trimmed to the fields the notifier reads, plus a few it ignores)."""
    return {
        "h_entry": h_entry,
        "h_id": h_id,
        "ref": 2,
        "call-id": call_id,
        "from_uri": "sip:alice@127.0.0.1:5072",
        "state": state,
        "start_ts": 1795320730,
        "lifetime": 20,
        "caller": {"tag": "3797SIPpTag001", "cseq": "1", "route_set": ""},
        "callee": {"tag": "31868SIPpTag016", "cseq": "0", "route_set": ""},
    }


def listed(*dialogs: dict[str, Any]) -> Answer:
    return result(list(dialogs))


def error(code: int, message: str) -> Answer:
    status = code if 100 <= code <= 599 else 500  # jsonrpcs sends the error's code as the HTTP status when it is one
    return lambda params: (status, {"error": {"code": code, "message": message}})


def result(value: Any) -> Answer:
    return lambda params: (200, {"result": value})


NOT_LISTED = error(404, "Not found")
ENDED = result({})  # what dlg.end_dlg answers
CANCELLED = result("branches remaining (waiting for timeout)")  # what tm.cancel answers


class Kamailio(ThreadingHTTPServer):
    """POST /RPC: answers each JSON-RPC method as scripted in ``methods``; records every request."""

    daemon_threads = True
    request_queue_size = 64  # the default backlog of 5 drops connections when many threads send at once

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), KamailioHandler)
        self.methods: dict[str, Answer] = {"dlg.list_match": NOT_LISTED, "dlg.end_dlg": ENDED, "tm.cancel": CANCELLED}
        self.raw: Callable[[dict[str, Any]], tuple[int, str, bytes]] | None = None  # answer anything at all
        self.delay_seconds = 0.0
        self.received: list[dict[str, Any]] = []
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/RPC"

    def calls(self) -> list[tuple[str, list[Any]]]:
        return [(request["method"], request["params"]) for request in self.received]


class KamailioHandler(BaseHTTPRequestHandler):
    server: Kamailio

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.received.append(request)
        if self.server.stopping.wait(self.server.delay_seconds):
            return
        if self.server.raw is not None:
            status, content_type, content = self.server.raw(request)
        elif request["method"] not in self.server.methods:
            status, content_type, content = 403, "text/plain", b"method not allowed here\n"
        else:
            status, outcome = self.server.methods[request["method"]](request["params"])
            content_type = "application/json"
            content = json.dumps({"jsonrpc": "2.0", **outcome, "id": request["id"]}).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def kamailio() -> Iterator[Kamailio]:
    server = Kamailio()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def notifier(kamailio: Kamailio) -> Iterator[KamailioNotifier]:
    sender = KamailioNotifier(kamailio.url, timeout_seconds=TIMEOUT_SECONDS)
    yield sender
    sender.close()


def failure_of(notifier: KamailioNotifier, order: Disconnect = ORDER) -> NotifyFailed:
    with pytest.raises(NotifyFailed) as caught:
        notifier.disconnect(order)
    return caught.value


LIST_REQUEST = ("dlg.list_match", ["callid", "eq", CALL_ID, KAMAILIO_DIALOGS_MAX])


# -- acknowledged -----------------------------------------------------------------------------------------


def test_an_answered_call_is_found_by_its_call_id_and_ended_by_its_dialogs_hash_ids(
    kamailio: Kamailio, notifier: KamailioNotifier
) -> None:
    kamailio.methods["dlg.list_match"] = listed(dialog(state=4))
    notifier.disconnect(ORDER)
    assert kamailio.calls() == [LIST_REQUEST, ("dlg.end_dlg", [887, 2143])]
    assert [request["id"] for request in kamailio.received] == [1, 2]
    assert all(request["jsonrpc"] == "2.0" for request in kamailio.received)


def test_a_call_answered_whose_ack_kamailio_has_not_seen_yet_is_ended_too(
    kamailio: Kamailio, notifier: KamailioNotifier
) -> None:
    kamailio.methods["dlg.list_match"] = listed(dialog(state=3))
    notifier.disconnect(ORDER)
    assert kamailio.calls()[-1] == ("dlg.end_dlg", [887, 2143])


def test_a_call_kamailio_no_longer_knows_is_over_and_the_order_is_acknowledged(
    kamailio: Kamailio, notifier: KamailioNotifier
) -> None:
    notifier.disconnect(ORDER)  # dlg.list_match: 404 Not found (HTTP 404 as well)
    assert kamailio.calls() == [LIST_REQUEST]


def test_a_dialog_that_ended_meanwhile_or_already_acknowledges_the_order(
    kamailio: Kamailio, notifier: KamailioNotifier
) -> None:
    kamailio.methods["dlg.list_match"] = listed(dialog(state=4))
    kamailio.methods["dlg.end_dlg"] = error(404, "Dialog not found")
    notifier.disconnect(ORDER)
    kamailio.methods["dlg.list_match"] = listed(dialog(state=5))  # ended, still in memory for a while
    notifier.disconnect(ORDER)
    assert [method for method, _ in kamailio.calls()] == ["dlg.list_match", "dlg.end_dlg", "dlg.list_match"]


def test_every_answered_dialog_of_the_call_id_is_ended_and_no_other(
    kamailio: Kamailio, notifier: KamailioNotifier
) -> None:
    kamailio.methods["dlg.list_match"] = listed(
        dialog(h_entry=1, h_id=10), dialog(h_entry=2, h_id=20, state=5), dialog(h_entry=3, h_id=30, call_id="other")
    )
    notifier.disconnect(ORDER)
    assert kamailio.calls() == [LIST_REQUEST, ("dlg.end_dlg", [1, 10])]


# -- a ringing call ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cancel", [CANCELLED, error(400, "Transaction not found")], ids=["cancelled", "gone"])
def test_a_ringing_call_has_its_invite_cancelled_and_the_order_waits_for_the_next_attempt(
    kamailio: Kamailio, notifier: KamailioNotifier, cancel: Answer
) -> None:
    ringing = dialog(state=2)
    ringing["caller"]["cseq"] = "7"
    kamailio.methods["dlg.list_match"] = listed(ringing)
    kamailio.methods["tm.cancel"] = cancel
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.RINGING, True)
    assert kamailio.calls() == [LIST_REQUEST, ("tm.cancel", [CALL_ID, "7"])]
    # The next attempt finds the call gone (Kamailio reported it failed to Tollway): acknowledged.
    kamailio.methods["dlg.list_match"] = NOT_LISTED
    notifier.disconnect(Disconnect(CALL_ID, "alice", "insufficient_funds", "atlas-north", 2))


# -- failures ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("dlg.list_match", error(500, "Internal error")),
        ("dlg.end_dlg", error(500, "Internal error")),
        ("dlg.list_match", error(-32601, "Method Not Found")),
    ],
    ids=["list-internal", "end-internal", "list-unknown-method"],
)
def test_a_json_rpc_error_other_than_not_found_is_kamailio_refusing_and_is_not_retried(
    kamailio: Kamailio, notifier: KamailioNotifier, method: str, answer: Answer
) -> None:
    kamailio.methods["dlg.list_match"] = listed(dialog())
    kamailio.methods[method] = answer
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.SWITCH_ERROR, False)
    assert method in str(failure)


def test_a_method_the_configuration_does_not_allow_is_refused_for_good(
    kamailio: Kamailio, notifier: KamailioNotifier
) -> None:
    del kamailio.methods["dlg.list_match"]  # the configuration answers a plain 403
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.HTTP_STATUS, False)
    assert "HTTP 403" in str(failure)


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (502, True), (429, True), (404, False), (401, False)])
def test_an_http_error_without_a_json_rpc_answer_is_retried_only_when_the_switch_is_busy_or_failing(
    kamailio: Kamailio, notifier: KamailioNotifier, status: int, retryable: bool
) -> None:
    kamailio.raw = lambda request: (status, "text/html", b"<html>no</html>")
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.HTTP_STATUS, retryable)


@pytest.mark.parametrize(
    "listing",
    [
        {"h_entry": 1},
        [{"h_entry": "887", "h_id": 2143, "state": 4, "call-id": CALL_ID, "caller": {"cseq": "1"}}],
        [{"h_entry": 887, "h_id": 2143, "state": 4, "call-id": CALL_ID, "caller": {}}],
        [dialog()] * (KAMAILIO_DIALOGS_MAX + 1),
    ],
    ids=["not-a-list", "text-for-a-number", "no-cseq", "too-many"],
)
def test_a_dialog_list_that_does_not_read_right_fails_and_is_not_retried(
    kamailio: Kamailio, notifier: KamailioNotifier, listing: Any
) -> None:
    kamailio.methods["dlg.list_match"] = lambda params: (200, {"result": listing})
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.INVALID_RESPONSE, False)
    assert [method for method, _ in kamailio.calls()] == ["dlg.list_match"]


@pytest.mark.parametrize(
    "body",
    [b"<html>It works!</html>", b"", b'{"jsonrpc": "2.0", "id": 999, "result": []}', b" " * (RESPONSE_BYTES_MAX + 1)],
    ids=["html", "empty", "another-request", "oversized"],
)
def test_an_answer_that_is_not_this_requests_json_rpc_response_fails_and_is_not_retried(
    kamailio: Kamailio, notifier: KamailioNotifier, body: bytes
) -> None:
    kamailio.raw = lambda request: (200, "application/json", body)
    failure = failure_of(notifier)
    assert (failure.reason, failure.retryable) == (NotifyFailure.INVALID_RESPONSE, False)


def test_a_kamailio_slower_than_the_timeout_is_retried(kamailio: Kamailio) -> None:
    kamailio.delay_seconds = 10 * TIMEOUT_SECONDS_SHORT
    slow = KamailioNotifier(kamailio.url, timeout_seconds=TIMEOUT_SECONDS_SHORT)
    try:
        failure = failure_of(slow)
    finally:
        slow.close()
    assert (failure.reason, failure.retryable) == (NotifyFailure.TIMEOUT, True)


def test_a_kamailio_out_of_reach_is_retried() -> None:
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        unreachable = KamailioNotifier(f"http://127.0.0.1:{port}/RPC", timeout_seconds=TIMEOUT_SECONDS_SHORT)
        try:
            failure = failure_of(unreachable)
        finally:
            unreachable.close()
    assert (failure.reason, failure.retryable) == (NotifyFailure.CONNECTION_FAILED, True)


# -- the kind ---------------------------------------------------------------------------------------------


def test_notifier_for_builds_the_kamailio_kind_and_it_works(kamailio: Kamailio) -> None:
    built = notifier_for("kamailio", kamailio.url)
    try:
        assert isinstance(built, KamailioNotifier)
        built.disconnect(ORDER)
    finally:
        built.close()
    assert kamailio.calls() == [LIST_REQUEST]


@pytest.mark.parametrize("url", [None, "", "udp://127.0.0.1:5090", "127.0.0.1:5090/RPC"])
def test_a_kamailio_kind_needs_an_http_url(url: str | None) -> None:
    with pytest.raises(ValueError, match="URL"):
        notifier_for("kamailio", url)


def test_credentials_in_the_url_stay_out_of_messages(kamailio: Kamailio) -> None:
    host, port = kamailio.server_address[:2]
    kamailio.raw = lambda request: (503, "text/plain", b"busy")
    guarded = KamailioNotifier(f"http://rpc:s3cret@{host!s}:{port}/RPC", timeout_seconds=TIMEOUT_SECONDS)
    try:
        message = str(failure_of(guarded))
    finally:
        guarded.close()
    assert "s3cret" not in message
    assert kamailio.received  # the request went out all the same


def test_one_notifier_serves_many_threads_at_once(kamailio: Kamailio, notifier: KamailioNotifier) -> None:
    kamailio.methods["dlg.list_match"] = lambda params: (200, {"result": [dialog(call_id=params[2])]})
    orders = [Disconnect(f"call-{n}@pc33", "alice", "insufficient_funds", None, 1) for n in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(notifier.disconnect, orders))
    ended = [params for method, params in kamailio.calls() if method == "dlg.end_dlg"]
    assert len(ended) == 12
    assert sorted(request["id"] for request in kamailio.received) == list(range(1, 25))


def test_the_client_is_the_notifiers_own_unless_passed_in(kamailio: Kamailio) -> None:
    with httpx.Client(trust_env=False) as client:
        shared = KamailioNotifier(kamailio.url, client=client)
        shared.disconnect(ORDER)
        shared.close()
        assert not client.is_closed
