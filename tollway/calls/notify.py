"""Telling a switch to end a call now: the pluggable disconnect notifier used by credit control.

When credit control decides that a running call must stop (its money ran out, its account was
suspended, its grant cannot be renewed), the switch carrying the call has to be told, or the call goes
on unpaid until its authorized length runs out. A ``Notifier`` sends one such ``Disconnect`` order and
either returns (the switch acknowledged it) or raises ``NotifyFailed``, which says whether another
attempt could succeed.

This module sends exactly one attempt and keeps no state between attempts. The caller, the
credit-control keeper, stores each order's attempt count and next-attempt time durably in the database
and spaces the attempts with ``retry_delay_seconds``, up to ``NOTIFY_ATTEMPTS_MAX``: retries survive a
process restart, and a switch that stays unreachable is given up on and reported, not retried forever.

Kinds: ``jsonrpc`` (JSON-RPC 2.0 over HTTP, ``JsonRpcNotifier``), ``kamailio`` (Kamailio's own
JSON-RPC methods, ``KamailioNotifier``), ``radius`` (an RFC 5176 Disconnect-Request to a RADIUS NAS,
``RadiusNotifier``) and ``none`` (the switch gave no notify URL, ``NullNotifier``).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from pyrad import packet as radius_packet  # type: ignore[import-untyped]

from tollway.config import Settings, radius_client_key
from tollway.errors import TollwayError, require
from tollway.radius.attributes import dictionary as radius_dictionary
from tollway.radius.model import BILLED_CALL_ORIGIN, cisco_vsa, session_of

NOTIFY_ATTEMPTS_MAX = 12  # with the delays below: about six minutes from the first attempt to the last
RETRY_DELAY_SECONDS_FIRST = 1.0
RETRY_DELAY_SECONDS_MAX = 60.0
DEFAULT_TIMEOUT_SECONDS = 2.0
TIMEOUT_SECONDS_MAX = 30.0  # a disconnect that takes longer than this is as good as lost
RESPONSE_BYTES_MAX = 64 * 1024  # an acknowledgement is a few bytes; more means the URL points elsewhere
JSONRPC_METHOD = "tollway.disconnect"
JSONRPC_INTERNAL_ERROR = -32603  # the switch failed while handling the order: may work next time
NOTIFIER_KINDS = ("jsonrpc", "kamailio", "radius", "none")
RADIUS_DISCONNECT_PORT = 3799  # RFC 5176's port, when the notify URL names none (Cisco's POD listens on 1700)
RADIUS_REPLY_BYTES_MAX = 4096  # the largest RADIUS packet (RFC 2865 3)
RADIUS_ERROR_CAUSE_RESOURCES_UNAVAILABLE = 506  # RFC 5176 3.5: the NAS is short of resources, not refusing
KAMAILIO_DIALOGS_MAX = 16  # dialogs listed for one Call-ID: a call has one, a few with forking
KAMAILIO_NOT_FOUND = 404  # Kamailio's JSON-RPC error code when no dialog matches (dlg.list_match, dlg.end_dlg)
KAMAILIO_NO_TRANSACTION = 400  # tm.cancel's error code when no INVITE with that Call-ID and CSeq is pending
KAMAILIO_RINGING_STATES = frozenset({1, 2})  # unconfirmed, early: a BYE cannot end them, a CANCEL does
KAMAILIO_ANSWERED_STATES = frozenset({3, 4})  # answered (3: its ACK not seen yet): dlg.end_dlg ends them


@dataclass(frozen=True, slots=True)
class Disconnect:
    """One order to end one call, as sent on one attempt."""

    call_id: str  # the switch's own id of the call
    account: str  # the client's login
    reason: str  # machine-readable: "insufficient_funds", "account_suspended", "grant_exhausted", ...
    level: str | None  # the login of the level whose funds or state ended the call; None when no level did
    attempt: int  # 1 for the first try; lets the switch recognise a repeat of an order it already carried out

    def __post_init__(self) -> None:
        require(bool(self.call_id), "a disconnect order needs the switch's call id")
        require(1 <= self.attempt <= NOTIFY_ATTEMPTS_MAX, f"disconnect attempt {self.attempt} is out of range")


class NotifyFailure(StrEnum):
    """Why a disconnect was not acknowledged; stable, machine-readable codes."""

    TIMEOUT = "timeout"
    CONNECTION_FAILED = "connection_failed"
    HTTP_STATUS = "http_status"
    SWITCH_ERROR = "switch_error"  # the switch answered with a JSON-RPC error
    INVALID_RESPONSE = "invalid_response"
    UNEXPECTED = "unexpected"
    RINGING = "ringing"  # the call was not answered yet: its INVITE was cancelled, the next attempt checks


class NotifyFailed(TollwayError):
    """The switch did not acknowledge a disconnect; ``retryable`` says whether another attempt may succeed.

    Not retryable means that sending the same order again would fail the same way (the switch refused
    it, or the URL points at something that is not a switch): the keeper stops and reports it.
    """

    def __init__(self, reason: NotifyFailure, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        kind = "retryable" if self.retryable else "not retryable"
        return f"{self.message} ({self.reason}, {kind})"


class Notifier(Protocol):
    """Sends disconnect orders to one switch."""

    def disconnect(self, order: Disconnect) -> None:
        """Return once the switch acknowledged ``order``; raise ``NotifyFailed`` otherwise, nothing else."""
        ...

    def close(self) -> None:
        """Release what the notifier holds (connections); it is not used afterwards."""
        ...


def retry_delay_seconds(attempt: int) -> float:
    """How long to wait after failed attempt number ``attempt`` before the next: 1, 2, 4, ... at most 60 s.

    Deterministic, so the keeper can store the next-attempt time and a restart recomputes the same.
    """
    require(attempt >= 1, f"attempt {attempt} is not a positive attempt number")
    doublings = min(attempt - 1, 6)  # 2**6 s is past the cap already; bounds the arithmetic for any attempt
    return min(RETRY_DELAY_SECONDS_MAX, RETRY_DELAY_SECONDS_FIRST * (1 << doublings))


class NullNotifier:
    """For calls whose switch gave no notify URL: sends nothing, on purpose.

    Such a switch ends the call itself when its authorized length runs out; having an explicit notifier
    keeps the keeper's path the same for every call instead of a ``None`` check at each use.
    """

    def disconnect(self, order: Disconnect) -> None:
        return None

    def close(self) -> None:
        return None


class JsonRpcNotifier:
    """Posts ``tollway.disconnect`` as a JSON-RPC 2.0 request; acknowledged when the answer has a result.

    One ``httpx.Client`` per notifier, shared by every thread that uses it (httpx clients are
    thread-safe), so connections to the switch are reused. ``timeout_seconds`` bounds each phase of the
    exchange (connecting, sending, each read), and the answer is read to at most ``RESPONSE_BYTES_MAX``.
    Environment proxy settings are ignored: the switch is reached directly, whatever the host's shell has.
    """

    def __init__(
        self, url: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, client: httpx.Client | None = None
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"notify URL must be an http or https URL with a host, not {url!r}")
        if not 0 < timeout_seconds <= TIMEOUT_SECONDS_MAX:
            raise ValueError(f"notify timeout must be above 0 and at most {TIMEOUT_SECONDS_MAX} s")
        self._url = parsed
        self._shown_url = str(parsed.copy_with(userinfo=b"", query=None))  # no credentials in messages
        self._timeout = httpx.Timeout(timeout_seconds)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=self._timeout, trust_env=False)
        self._ids_lock = threading.Lock()
        self._last_id = 0

    def disconnect(self, order: Disconnect) -> None:
        request_id = self._next_id()
        body = _request_body(order, request_id)
        described = f"disconnect of call {order.call_id} (attempt {order.attempt}) at {self._shown_url}"
        with _exchange_failures(described):
            content = self._exchange(body, described)
        _check_answer(_parse(content, described), request_id, described)

    def close(self) -> None:
        """Close the HTTP client if this notifier made it; a client passed in belongs to its owner."""
        if self._owns_client:
            self._client.close()

    def _next_id(self) -> int:
        with self._ids_lock:
            self._last_id += 1
            return self._last_id

    def _exchange(self, body: bytes, described: str) -> bytes:
        headers = {"content-type": "application/json", "accept": "application/json"}
        with self._client.stream("POST", self._url, content=body, headers=headers, timeout=self._timeout) as response:
            status = response.status_code
            if not 200 <= status < 300:
                retryable = status >= 500 or status in (408, 429)  # the switch is busy or failing, not refusing
                message = f"{described} was answered with HTTP {status}"
                raise NotifyFailed(NotifyFailure.HTTP_STATUS, message, retryable=retryable)
            return _read_bounded(response, described)


FOLLOW_ME_LEG_MARK = "&fm"  # a FollowMe leg's call id: its dialog's Call-ID, "&fm" and the entry's number


def dialog_call_id(call_id: str) -> str:
    """The SIP Call-ID of the dialog a call belongs to: the call id itself, except for the outside legs the
    reference configuration forwards a FollowMe to, which are charged as calls of their own within the one
    dialog (a Call-ID never holds '&': the configuration refuses it)."""
    return call_id.split(FOLLOW_ME_LEG_MARK, 1)[0]


@dataclass(frozen=True, slots=True)
class KamailioDialog:
    """One dialog as Kamailio's ``dlg.list_match`` lists it: its hash ids, its state, its INVITE's CSeq."""

    h_entry: int
    h_id: int
    state: int  # 1 unconfirmed, 2 early, 3 answered without ACK yet, 4 answered, 5 ended
    invite_cseq: str


class KamailioNotifier(JsonRpcNotifier):
    """Ends a call through Kamailio's own JSON-RPC methods (jsonrpcs over HTTP, ``http://HOST:PORT/RPC``).

    It shares ``JsonRpcNotifier``'s HTTP client and limits; the methods and their answers are Kamailio's.
    Kamailio's dialog module knows a call by its SIP Call-ID, which is Tollway's call id for the calls the
    reference configuration (deploy/kamailio/kamailio.cfg) authorizes. Each attempt lists the dialogs with
    that Call-ID (``dlg.list_match``) and ends each answered one with ``dlg.end_dlg``: a BYE to both sides,
    after which Kamailio reports the end to Tollway as for any other call. No dialog, or only ended ones,
    means the call is over already: acknowledged.

    A dialog still ringing cannot be ended with a BYE (``dlg.end_dlg`` answers success and does nothing):
    its INVITE is cancelled (``tm.cancel``) and the attempt fails, retryable, so that the next one sees the
    call gone, or answered meanwhile and ends it then. A JSON-RPC error other than "not found" is Kamailio
    refusing the order (an unknown method, a method its configuration does not allow): not retryable.
    """

    def disconnect(self, order: Disconnect) -> None:
        described = f"disconnect of call {order.call_id} (attempt {order.attempt}) at {self._shown_url}"
        ringing = False
        sip_call_id = dialog_call_id(order.call_id)
        with _exchange_failures(described):
            for dialog in self._dialogs(sip_call_id, described):
                if dialog.state in KAMAILIO_ANSWERED_STATES:
                    self._call("dlg.end_dlg", [dialog.h_entry, dialog.h_id], KAMAILIO_NOT_FOUND, described)
                elif dialog.state in KAMAILIO_RINGING_STATES:
                    self._call("tm.cancel", [sip_call_id, dialog.invite_cseq], KAMAILIO_NO_TRANSACTION, described)
                    ringing = True
        if ringing:
            message = f"{described}: the call was still ringing; its INVITE was cancelled, the next attempt checks"
            raise NotifyFailed(NotifyFailure.RINGING, message, retryable=True)

    def _dialogs(self, call_id: str, described: str) -> list[KamailioDialog]:
        listed = self._call(
            "dlg.list_match", ["callid", "eq", call_id, KAMAILIO_DIALOGS_MAX], KAMAILIO_NOT_FOUND, described
        )
        if listed is None:
            return []
        if not isinstance(listed, list) or len(listed) > KAMAILIO_DIALOGS_MAX:
            message = f"{described}: dlg.list_match did not answer a list of at most {KAMAILIO_DIALOGS_MAX} dialogs"
            raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)
        return [_kamailio_dialog(item, described) for item in listed if _dialog_call_id(item) == call_id]

    def _call(self, method: str, params: list[object], absent_code: int, described: str) -> object | None:
        """The result of one Kamailio RPC; None when Kamailio answers ``absent_code``: no such dialog (or INVITE).

        Kamailio answers a JSON-RPC error with the error's code as the HTTP status too (404 for "not
        found"), so the body is read whatever the status, and judged as JSON-RPC first.
        """
        request_id = self._next_id()
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        status, content = self._post(json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode(), described)
        try:
            answer: object = json.loads(content)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            answer = None
        if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
            if not 200 <= status < 300:
                retryable = status >= 500 or status in (408, 429)  # busy or failing, not refusing
                message = f"{described}: {method} was answered with HTTP {status}"
                raise NotifyFailed(NotifyFailure.HTTP_STATUS, message, retryable=retryable)
            message = f"{described}: {method} was answered with something that is not a JSON-RPC response"
            raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)
        error = answer.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            if code == absent_code:
                return None
            text = error.get("message") if isinstance(error, dict) else None
            message = f"{described} was refused by Kamailio: {method}: JSON-RPC error {code}: {text}"
            raise NotifyFailed(NotifyFailure.SWITCH_ERROR, message, retryable=False)
        if answer.get("id") != request_id or "result" not in answer:
            message = f"{described}: {method} was answered without a result for request {request_id}"
            raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)
        result: object = answer["result"]
        return result

    def _post(self, body: bytes, described: str) -> tuple[int, bytes]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        with self._client.stream("POST", self._url, content=body, headers=headers, timeout=self._timeout) as response:
            return response.status_code, _read_bounded(response, described)


def _dialog_call_id(item: object) -> object:
    return item.get("call-id") if isinstance(item, dict) else None


def _kamailio_dialog(item: object, described: str) -> KamailioDialog:
    fields = item if isinstance(item, dict) else {}
    h_entry, h_id, state, caller = fields.get("h_entry"), fields.get("h_id"), fields.get("state"), fields.get("caller")
    cseq = caller.get("cseq") if isinstance(caller, dict) else None
    message = f"{described}: dlg.list_match listed a dialog without h_entry, h_id, state and caller cseq"
    if not (isinstance(h_entry, int) and isinstance(h_id, int) and isinstance(state, int)):
        raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)
    if not (isinstance(cseq, str) and cseq.isdigit()):
        raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)
    return KamailioDialog(h_entry=h_entry, h_id=h_id, state=state, invite_cseq=cseq)


@contextmanager
def _exchange_failures(described: str) -> Iterator[None]:
    """Whatever goes wrong in an exchange leaves as ``NotifyFailed``: retryable when the switch was out of reach."""
    try:
        yield
    except NotifyFailed:
        raise
    except httpx.TimeoutException as error:
        raise NotifyFailed(NotifyFailure.TIMEOUT, f"{described} timed out", retryable=True) from error
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as error:
        message = f"{described} could not reach the switch: {_name(error)}"
        raise NotifyFailed(NotifyFailure.CONNECTION_FAILED, message, retryable=True) from error
    except httpx.HTTPError as error:
        message = f"{described} failed: {_name(error)}"
        raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False) from error
    except Exception as error:  # the contract: nothing but NotifyFailed reaches the keeper
        message = f"{described} failed unexpectedly: {_name(error)}"
        raise NotifyFailed(NotifyFailure.UNEXPECTED, message, retryable=False) from error


class RadiusNotifier:
    """Sends an RFC 5176 Disconnect-Request to a NAS; acknowledged when it answers Disconnect-ACK.

    The session is named the way the gateway named it when the call was authorized over RADIUS
    (``tollway.radius.model.session_of``): a call known by its h323-conf-id gets that h323-conf-id and
    ``h323-call-origin=originate``, the leg Tollway bills (what a Cisco gateway matches a disconnect on);
    one known by its Acct-Session-Id gets that. ``User-Name`` is the account. The request is sent once per
    attempt and its answer awaited for ``timeout_seconds``; the keeper spaces the attempts.
    """

    def __init__(self, url: str, *, secret: bytes, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._host, self._port = radius_address(url)
        if not secret:
            raise ValueError("a radius notifier needs the NAS's shared secret")
        if not 0 < timeout_seconds <= TIMEOUT_SECONDS_MAX:
            raise ValueError(f"notify timeout must be above 0 and at most {TIMEOUT_SECONDS_MAX} s")
        self._secret = secret
        self._timeout = timeout_seconds
        self._family = socket.AF_INET6 if ":" in self._host else socket.AF_INET

    @classmethod
    def configured(cls, url: str) -> RadiusNotifier:
        """The notifier for the NAS at ``url``, with the secret ``radius_clients`` gives that NAS."""
        host, _ = radius_address(url)
        client = Settings().radius_clients.get(host)
        if client is None:
            raise ValueError(f"NAS {host} is not in radius_clients: its shared secret is needed to disconnect")
        return cls(url, secret=client.secret.get_secret_value().encode())

    def disconnect(self, order: Disconnect) -> None:
        described = f"disconnect of call {order.call_id} (attempt {order.attempt}) at udp://{self._host}:{self._port}"
        try:
            request = self._request(order, described)
            _check_radius_reply(self._exchange(request, described), described)
        except NotifyFailed:
            raise
        except OSError as error:  # unreachable network, ICMP port unreachable (ConnectionRefusedError), ...
            message = f"{described} could not reach the NAS: {_name(error)}"
            raise NotifyFailed(NotifyFailure.CONNECTION_FAILED, message, retryable=True) from error
        except Exception as error:  # the contract: nothing but NotifyFailed reaches the keeper
            message = f"{described} failed unexpectedly: {_name(error)}"
            raise NotifyFailed(NotifyFailure.UNEXPECTED, message, retryable=False) from error

    def close(self) -> None:
        return None  # each attempt opens and closes its own socket

    def _request(self, order: Disconnect, described: str) -> Any:
        key = session_of(order.call_id)
        if key is None:
            message = f"{described}: the call was not authorized over RADIUS, so no NAS session names it"
            raise NotifyFailed(NotifyFailure.UNEXPECTED, message, retryable=False)
        request = radius_packet.CoAPacket(
            code=radius_packet.DisconnectRequest, secret=self._secret, dict=radius_dictionary()
        )
        request["User-Name"] = order.account
        if key.conf_id is not None:
            request["h323-conf-id"] = cisco_vsa("h323-conf-id", key.conf_id)
            request["h323-call-origin"] = cisco_vsa("h323-call-origin", BILLED_CALL_ORIGIN)
        if key.session_id is not None:
            request["Acct-Session-Id"] = key.session_id
        return request

    def _exchange(self, request: Any, described: str) -> Any:
        """Send once, then read until a reply that verifies with the secret arrives or the time is up.

        A datagram that does not verify is not the NAS's answer (or the secrets differ): it is skipped,
        and if nothing else came the failure says so, since the same secret will fail the same way.
        """
        unverified = 0
        deadline = time.monotonic() + self._timeout
        with socket.socket(self._family, socket.SOCK_DGRAM) as sock:
            sock.connect((self._host, self._port))  # a connected socket gets only the NAS's datagrams
            sock.send(request.RequestPacket())
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                try:
                    raw = sock.recv(RADIUS_REPLY_BYTES_MAX)
                except TimeoutError:
                    break
                try:
                    reply = request.CreateReply(packet=raw)
                    if request.VerifyReply(reply, raw):
                        return reply
                except radius_packet.PacketError:
                    pass
                unverified += 1
        if unverified:
            message = f"{described} was answered only with packets that do not verify: is the secret the NAS's?"
            raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)
        raise NotifyFailed(NotifyFailure.TIMEOUT, f"{described} timed out", retryable=True)


def radius_address(url: str) -> tuple[str, int]:
    """The NAS's IP address and Disconnect port from ``udp://ADDRESS[:PORT]``."""
    parts = urlsplit(url)
    try:
        port = parts.port or RADIUS_DISCONNECT_PORT
    except ValueError:
        raise ValueError(f"notify URL has an invalid port: {url!r}") from None
    if parts.scheme != "udp" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"a radius notify URL is udp://NAS_ADDRESS[:PORT], not {url!r}")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        raise ValueError(f"a radius notify URL names the NAS by its IP address, not {parts.hostname!r}") from None
    return radius_client_key(parts.hostname), port


def _check_radius_reply(reply: Any, described: str) -> None:
    """Acknowledged by a Disconnect-ACK only. A NAK is the NAS refusing the order (no such session, an
    attribute it does not support, ...), which the same order will meet again: not retryable, except when
    the NAS says it is short of resources."""
    if reply.code == radius_packet.DisconnectACK:
        return
    if reply.code == radius_packet.DisconnectNAK:
        causes = reply.get("Error-Cause") or []
        cause = causes[0] if causes else None
        message = f"{described} was refused by the NAS: Disconnect-NAK, Error-Cause {cause}"
        retryable = cause == RADIUS_ERROR_CAUSE_RESOURCES_UNAVAILABLE
        raise NotifyFailed(NotifyFailure.SWITCH_ERROR, message, retryable=retryable)
    message = f"{described} was answered with RADIUS code {reply.code}, not Disconnect-ACK or -NAK"
    raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)


def notifier_for(kind: str, url: str | None) -> Notifier:
    """The notifier for a switch of ``kind`` at ``url``; a kind this version does not know is refused."""
    if kind == "jsonrpc":
        if not url:
            raise ValueError("a jsonrpc notifier needs a notify URL")
        return JsonRpcNotifier(url)
    if kind == "kamailio":
        if not url:
            raise ValueError("a kamailio notifier needs a notify URL: http://KAMAILIO_ADDRESS:PORT/RPC")
        return KamailioNotifier(url)
    if kind == "radius":
        if not url:
            raise ValueError("a radius notifier needs a notify URL: udp://NAS_ADDRESS:3799")
        return RadiusNotifier.configured(url)
    if kind == "none":
        return NullNotifier()
    raise ValueError(f"unknown notifier kind {kind!r}; known kinds: {', '.join(NOTIFIER_KINDS)}")


def _request_body(order: Disconnect, request_id: int) -> bytes:
    params = {
        "call_id": order.call_id,
        "account": order.account,
        "reason": order.reason,
        "level": order.level,
        "attempt": order.attempt,
    }
    request = {"jsonrpc": "2.0", "id": request_id, "method": JSONRPC_METHOD, "params": params}
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()


def _read_bounded(response: httpx.Response, described: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > RESPONSE_BYTES_MAX:
            message = f"{described} was answered with more than {RESPONSE_BYTES_MAX} bytes"
            raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(content: bytes, described: str) -> object:
    """The answer as JSON; a switch that answers something else is misconfigured, not busy."""
    try:
        answer: object = json.loads(content)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        message = f"{described} was answered with a body that is not JSON"
        raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False) from error
    return answer


def _check_answer(answer: object, request_id: int, described: str) -> None:
    """Acknowledged only by a JSON-RPC response to this request with a result and no error.

    A JSON-RPC error is the switch refusing the order (unknown method, invalid params, ...), which the
    same order will meet again: not retryable, except "internal error", a failure inside the switch.
    """
    if not isinstance(answer, dict):
        message = f"{described} was answered with JSON that is not a JSON-RPC response"
        raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)
    error = answer.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        text = error.get("message") if isinstance(error, dict) else None
        message = f"{described} was refused by the switch: JSON-RPC error {code}: {text}"
        retryable = code == JSONRPC_INTERNAL_ERROR
        raise NotifyFailed(NotifyFailure.SWITCH_ERROR, message, retryable=retryable)
    if answer.get("id") != request_id or "result" not in answer:
        message = f"{described} was answered with a JSON-RPC response that has no result for request {request_id}"
        raise NotifyFailed(NotifyFailure.INVALID_RESPONSE, message, retryable=False)


def _name(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
