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

Kinds: ``jsonrpc`` (JSON-RPC 2.0 over HTTP, ``JsonRpcNotifier``), ``radius`` (an RFC 5176
Disconnect-Request to a RADIUS NAS, ``RadiusNotifier``) and ``none`` (the switch gave no notify URL,
``NullNotifier``). A Kamailio notifier will be added by a later issue, as one more kind in ``notifier_for``.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
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
NOTIFIER_KINDS = ("jsonrpc", "radius", "none")
RADIUS_DISCONNECT_PORT = 3799  # RFC 5176's port, when the notify URL names none (Cisco's POD listens on 1700)
RADIUS_REPLY_BYTES_MAX = 4096  # the largest RADIUS packet (RFC 2865 3)
RADIUS_ERROR_CAUSE_RESOURCES_UNAVAILABLE = 506  # RFC 5176 3.5: the NAS is short of resources, not refusing


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
        try:
            content = self._exchange(body, described)
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
