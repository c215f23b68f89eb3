"""The notices' own thread in every ``tollway serve`` process: scan for falls below a threshold and
send what is due, every few seconds. Apart from credit control's keeper, so a slow or silent mail
server (one SMTP timeout per round at worst) never delays a call's extension."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict

from tollway.logs import get_logger
from tollway.notifications.service import MailSettings, run_notices
from tollway.store.database import Database

log = get_logger(__name__)

NOTICES_INTERVAL_SECONDS = 5.0
NOTICES_STEP_SECONDS = 2.0  # the most one round spends scanning, and then sending, before it pauses


class NoticeRunner:
    """Runs ``run_notices`` every interval in a daemon thread until stopped."""

    def __init__(
        self, database: Database, *, settings: MailSettings, interval_seconds: float = NOTICES_INTERVAL_SECONDS
    ) -> None:
        self._database = database
        self._settings = settings
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tollway-notices", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                report = run_notices(self._database, settings=self._settings, budget_seconds=NOTICES_STEP_SECONDS)
                if any(asdict(report).values()):
                    log.info("notices_round", **asdict(report))
            except Exception:  # a runner that dies silently would send no notice again
                log.exception("notices_round_failed")
            if time.monotonic() - started < NOTICES_STEP_SECONDS:
                self._stop.wait(self._interval)
