"""``tollway radius``: the RADIUS server for voice gateways, in the Cisco VSA prepaid convention."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Annotated

import typer

from tollway.calls.keeper import Keeper
from tollway.calls.service import CallSettings
from tollway.cards import service as cards
from tollway.cli.common import database, err, fail, one_line_errors
from tollway.config import Settings
from tollway.logs import configure_logging
from tollway.radius import service
from tollway.radius.server import RadiusServer
from tollway.sealing import Sealer
from tollway.store import migrate

WAKE_SECONDS = 1.0  # how often the main thread looks whether it was told to stop


@one_line_errors
def radius_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: radius_host).")] = None,
    auth_port: Annotated[int | None, typer.Option(min=0, max=65535, help="Authentication port.")] = None,
    acct_port: Annotated[int | None, typer.Option(min=0, max=65535, help="Accounting port.")] = None,
) -> None:
    """Serve RADIUS authorization and accounting to the NAS in radius_clients, until Ctrl-C or SIGTERM."""
    settings = Settings()
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    # pyrad logs the packets it drops (unknown NAS, wrong secret, malformed) through the standard library.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    db = database()
    if not migrate.is_up_to_date(db):
        raise fail("the database schema is not current: run `tollway init` first", 2)
    if not settings.radius_clients:
        raise fail("no NAS may talk to this server: set radius_clients (see docs/radius.md)", 2)
    switches = sorted({client.switch for client in settings.radius_clients.values()})
    unusable = [name for name in switches if service.switch_principal(db, name) is None]
    if unusable:
        raise fail(f"radius_clients name switches that are not registered or cannot act: {', '.join(unusable)}", 2)
    call_settings = CallSettings.of(settings)
    server = RadiusServer(
        db,
        settings.radius_clients,
        host=host or settings.radius_host,
        auth_port=settings.radius_auth_port if auth_port is None else auth_port,
        acct_port=settings.radius_acct_port if acct_port is None else acct_port,
        call_settings=call_settings,
        # calling cards' PINs, as `tollway serve` digests them
        pin_key=cards.installation_pin_key(db, Sealer.from_settings(settings)),
    )
    try:
        bound = server.start()
    except OSError as error:
        raise fail(f"cannot listen on {host or settings.radius_host}: {error}", 2) from None
    keeper = Keeper(db, settings=call_settings) if settings.keeper else None  # as in every `tollway serve`
    try:
        if keeper is not None:
            keeper.start()
        err.print(f"RADIUS on {host or settings.radius_host}: authentication {bound[0]}, accounting {bound[1]}")
        _wait_for_stop()
    finally:
        if keeper is not None:
            keeper.stop()
        server.stop()


def _wait_for_stop() -> None:
    stopping = threading.Event()

    def on_terminate(signal_number: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_terminate)
    try:
        while not stopping.wait(WAKE_SECONDS):
            pass
    except KeyboardInterrupt:
        pass
