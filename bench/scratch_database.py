"""What every PostgreSQL benchmark needs: a throwaway database, a quiet start, the server's settings."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import create_engine, text

from tollway.store.database import Database, normalize_url


@contextmanager
def bench_database(admin_url: str, label: str = "", *, say: Callable[[str], object] = print) -> Iterator[str]:
    """A fresh database next to the one ``admin_url`` names, dropped at the end whatever happens."""
    admin_url = normalize_url(admin_url)
    name = f"tollway_bench_{uuid.uuid4().hex[:10]}{label}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        say(f"dropped database {name}")


def settle(url: str) -> None:
    """Start timed runs from a quiet state: statistics fresh, dirty pages written."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("VACUUM ANALYZE"))
        connection.execute(text("CHECKPOINT"))
    engine.dispose()


def server_facts(database: Database) -> dict[str, str]:
    """The server's version and the settings that decide how fast a commit is."""
    with database.reading() as connection:
        facts = {"version": str(connection.execute(text("SHOW server_version")).scalar_one())}
        for setting in ("synchronous_commit", "fsync", "shared_buffers", "max_connections"):
            facts[setting] = str(connection.execute(text(f"SHOW {setting}")).scalar_one())
    return facts


RELAY_CONNECT_SECONDS_MAX = 60.0


class TurnCounter:
    """A TCP relay to the server that counts round trips: each time the client speaks after the server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.turns = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            server = socket.create_connection(self.target, timeout=RELAY_CONNECT_SECONDS_MAX)
            last_speaker = ["server"]
            for source, sink, speaker in ((client, server, "client"), (server, client, "server")):
                threading.Thread(target=self._relay, args=(source, sink, speaker, last_speaker), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket, speaker: str, last_speaker: list[str]) -> None:
        with suppress(OSError), source, sink:  # either side closing ends both directions
            while data := source.recv(65536):
                with self._lock:
                    self.turns += speaker == "client" and last_speaker[0] == "server"
                    last_speaker[0] = speaker
                sink.sendall(data)
