"""The RADIUS server: UDP authentication and accounting ports, each request handled by credit control.

pyrad's asyncio server receives the datagrams and drops, before any of this code sees them, those
from an address that is not a configured NAS, those of the wrong kind for the port, accounting
requests whose authenticator does not verify with the NAS's secret (a wrong secret), Access-Requests
with a Message-Authenticator that does not verify, and anything that does not decode. Each of those is
one log line and nothing else: the server goes on serving.

What is left is handled in a bounded pool of worker threads, since credit control waits on the
database; the event loop only decodes and sends. A request that fails unexpectedly (the database is
down) gets no answer, so the NAS retries it or fails over to another server; every other outcome is
answered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from pyrad import packet as radius_packet  # type: ignore[import-untyped]
from pyrad.server import RemoteHost  # type: ignore[import-untyped]
from pyrad.server_async import ServerAsync  # type: ignore[import-untyped]

from tollway.access.model import Principal
from tollway.calls.service import DEFAULT_SETTINGS, CallSettings
from tollway.cards import service as cards
from tollway.config import RadiusClient, Settings, radius_client_key
from tollway.logs import get_logger
from tollway.radius import service
from tollway.radius.attributes import dictionary, integer, text, texts
from tollway.radius.model import AccessDecision, SessionKey, access_number_in, cisco_vsa
from tollway.sealing import Sealer
from tollway.store.database import Database

log = get_logger("tollway.radius")

WORKERS = 8  # requests handled at once; each holds a database connection while it runs
IN_FLIGHT_MAX = 512  # requests queued or running; past it a request is dropped and the NAS retries
REPLY_MESSAGE_BYTES_MAX = 253  # one attribute
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Nas:
    address: str
    switch: str
    require_message_authenticator: bool


class RadiusServer(ServerAsync):  # type: ignore[misc]
    """Serves Access-Requests and Accounting-Requests from the NAS in ``clients`` until ``stop``."""

    def __init__(
        self,
        database: Database,
        clients: dict[str, RadiusClient],
        *,
        host: str = "127.0.0.1",
        auth_port: int = 1812,
        acct_port: int = 1813,
        call_settings: CallSettings = DEFAULT_SETTINGS,
        workers: int = WORKERS,
        pin_key: bytes | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        hosts = {
            radius_client_key(address): RemoteHost(address, client.secret.get_secret_value().encode(), client.switch)
            for address, client in clients.items()
        }
        super().__init__(
            auth_port=auth_port,
            acct_port=acct_port,
            hosts=hosts,
            dictionary=dictionary(),
            loop=self._loop,
            logger_name="tollway.radius.pyrad",
            enable_pkt_verify=True,
            enforce_ma=False,  # per NAS, below: pyrad can only require it of every NAS or none
        )
        self._nas = {
            radius_client_key(address): Nas(address, client.switch, client.require_message_authenticator)
            for address, client in clients.items()
        }
        self._database = database
        self._call_settings = call_settings
        self._pin_key = pin_key
        self._host = host
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tollway-radius")
        self._in_flight = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- running --------------------------------------------------------------------------------------

    def start(self) -> tuple[int, int]:
        """Bind both ports (an error if either is taken) and serve in a thread; answers the bound ports."""
        try:
            self._loop.run_until_complete(
                self.initialize_transports(enable_auth=True, enable_acct=True, addresses=[self._host])
            )
        except BaseException:
            self.stop()
            raise
        auth_port = int(self.auth_protocols[0].transport.get_extra_info("sockname")[1])
        acct_port = int(self.acct_protocols[0].transport.get_extra_info("sockname")[1])
        self._thread = threading.Thread(target=self._loop.run_forever, name="tollway-radius-loop", daemon=True)
        self._thread.start()
        log.info("radius_listening", host=self._host, auth_port=auth_port, acct_port=acct_port, clients=len(self._nas))
        return auth_port, acct_port

    def stop(self) -> None:
        """Stop receiving, let the requests being handled finish, close the sockets."""
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_SECONDS)
            self._thread = None
        self._pool.shutdown(wait=True)
        if not self._loop.is_closed():
            self._loop.run_until_complete(self.deinitialize_transports())
            self._loop.close()

    # -- pyrad's handlers, on the event loop ----------------------------------------------------------

    def handle_auth_packet(self, protocol: Any, pkt: Any, addr: tuple[str, int]) -> None:
        nas = self._nas_of(addr)
        if nas is None:
            return
        if nas.require_message_authenticator and not pkt.message_authenticator:
            log.warning("radius_dropped", source=addr[0], why="Access-Request without Message-Authenticator")
            return
        self._dispatch(protocol, addr, partial(self._as_switch, nas, partial(self._access, nas, pkt)))

    def handle_acct_packet(self, protocol: Any, pkt: Any, addr: tuple[str, int]) -> None:
        nas = self._nas_of(addr)
        if nas is not None:
            self._dispatch(protocol, addr, partial(self._as_switch, nas, partial(self._accounting, nas, pkt)))

    def handle_coa_packet(self, protocol: Any, pkt: Any, addr: tuple[str, int]) -> None:
        return None  # the CoA port is never opened: Tollway sends disconnects, it does not take them

    def handle_disconnect_packet(self, protocol: Any, pkt: Any, addr: tuple[str, int]) -> None:
        return None

    def _nas_of(self, addr: tuple[str, int]) -> Nas | None:
        try:
            nas = self._nas.get(radius_client_key(addr[0]))
        except ValueError:
            nas = None
        if nas is None:  # pyrad let it through, so it is configured: only an odd address form gets here
            log.warning("radius_dropped", source=addr[0], why="not a configured NAS")
        return nas

    def _dispatch(self, protocol: Any, addr: tuple[str, int], work: Callable[[], bytes | None]) -> None:
        with self._lock:
            if self._in_flight >= IN_FLIGHT_MAX:
                log.warning("radius_dropped", source=addr[0], why=f"{IN_FLIGHT_MAX} requests in hand already")
                return
            self._in_flight += 1
        self._pool.submit(self._work, protocol, addr, work)

    # -- in the workers -------------------------------------------------------------------------------

    def _work(self, protocol: Any, addr: tuple[str, int], work: Callable[[], bytes | None]) -> None:
        try:
            reply = work()
        except Exception:  # one bad request must never stop the server: log it, answer nothing
            log.exception("radius_request_failed", source=addr[0])
            reply = None
        finally:
            with self._lock:
                self._in_flight -= 1
        if reply is not None:
            self._loop.call_soon_threadsafe(_send, protocol, reply, addr)

    def _as_switch(self, nas: Nas, handle: Callable[[Principal], bytes | None]) -> bytes | None:
        """Handle a request as the NAS's switch, or drop it when that switch cannot act now."""
        switch = service.switch_principal(self._database, nas.switch)
        if switch is None:
            log.warning("radius_dropped", source=nas.address, why=f"switch {nas.switch} cannot act now")
            return None
        return handle(switch)

    def _access(self, nas: Nas, pkt: Any, switch: Principal) -> bytes | None:
        request = access_request(pkt)
        decision = service.authorize(
            self._database, switch, request, settings=self._call_settings, pin_key=self._card_pin_key
        )
        log.info(
            "radius_access",
            nas=nas.address,
            account="(the PIN)" if request.password and request.account == request.password else request.account,
            accepted=decision.accepted,
            return_code=int(decision.return_code),
            credit_seconds=decision.credit_seconds,
            message=decision.message,
        )
        return access_reply(pkt, decision)

    def _card_pin_key(self) -> bytes:
        """The installation's PIN digest key: as given, else from the settings' secret key, on first use."""
        if self._pin_key is None:
            self._pin_key = cards.installation_pin_key(self._database, Sealer.from_settings(Settings()))
        return self._pin_key

    def _accounting(self, nas: Nas, pkt: Any, switch: Principal) -> bytes | None:
        request = accounting_request(pkt)
        outcome = service.record(self._database, switch, request, settings=self._call_settings)
        log.info(
            "radius_accounting",
            nas=nas.address,
            status=request.status,
            account=request.account,
            seconds=request.session_seconds,
            outcome=outcome,
        )
        return bytes(pkt.CreateReply().ReplyPacket())  # stored (or nothing to store): the NAS may forget it


def _send(protocol: Any, reply: bytes, addr: tuple[str, int]) -> None:
    if protocol.transport is not None:  # closed while the request was handled: the NAS will retry elsewhere
        protocol.transport.sendto(reply, addr)


# -- packets to values and back -------------------------------------------------------------------------


def session_key(pkt: Any) -> SessionKey:
    return SessionKey(conf_id=text(pkt, "h323-conf-id"), session_id=text(pkt, "Acct-Session-Id"))


def access_request(pkt: Any) -> service.AccessRequest:
    passwords = pkt.get(2)  # User-Password, as sent: hidden with the secret (RFC 2865 5.2)
    return service.AccessRequest(
        account=text(pkt, "User-Name"),
        caller=text(pkt, "Calling-Station-Id"),
        callee=text(pkt, "Called-Station-Id"),
        key=session_key(pkt),
        password=pkt.PwDecrypt(passwords[0]) if passwords else None,
        chap="CHAP-Password" in pkt,
        access_number=access_number_in(texts(pkt, "Cisco-AVPair")),
    )


def accounting_request(pkt: Any) -> service.AccountingRequest:
    return service.AccountingRequest(
        status=integer(pkt, "Acct-Status-Type"),
        key=session_key(pkt),
        account=text(pkt, "User-Name"),
        caller=text(pkt, "Calling-Station-Id"),
        callee=text(pkt, "Called-Station-Id"),
        session_seconds=integer(pkt, "Acct-Session-Time"),
        call_origin=text(pkt, "h323-call-origin"),
        disconnect_cause=text(pkt, "h323-disconnect-cause"),
        terminate_cause=integer(pkt, "Acct-Terminate-Cause"),
    )


def access_reply(pkt: Any, decision: AccessDecision) -> bytes:
    """Access-Accept with h323-credit-time (and Session-Timeout, for gateways that read only RFC 2865), or
    Access-Reject with the reason in Reply-Message; h323-return-code in both. Signed with a
    Message-Authenticator."""
    reply = pkt.CreateReply()
    reply["h323-return-code"] = cisco_vsa("h323-return-code", int(decision.return_code))
    if decision.accepted:
        reply.code = radius_packet.AccessAccept
        if decision.credit_seconds is not None:
            reply["h323-credit-time"] = cisco_vsa("h323-credit-time", decision.credit_seconds)
            reply["Session-Timeout"] = decision.credit_seconds
        if decision.credit is not None:  # a card's first stage: what to announce, in which language
            reply["h323-credit-amount"] = cisco_vsa("h323-credit-amount", decision.credit.amount)
            reply["h323-currency"] = cisco_vsa("h323-currency", decision.credit.currency)
            reply["h323-preferred-lang"] = cisco_vsa("h323-preferred-lang", decision.credit.language)
    else:
        reply.code = radius_packet.AccessReject
        message = decision.message.encode()[:REPLY_MESSAGE_BYTES_MAX].decode("utf-8", "ignore")
        reply["Reply-Message"] = message
    return bytes(reply.ReplyPacket())
