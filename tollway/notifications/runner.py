"""The notices' own thread in every ``tollway serve`` process: scan for falls below a threshold and
send what is due, every few seconds. Apart from credit control's keeper, so a slow or silent mail
server (one SMTP timeout per round at worst) never delays a call's extension."""

from __future__ import annotations

from dataclasses import asdict

from tollway.logs import get_logger
from tollway.notifications.service import MailSettings, run_notices
from tollway.periodic import Periodic
from tollway.store.database import Database

log = get_logger(__name__)

NOTICES_INTERVAL_SECONDS = 5.0
NOTICES_STEP_SECONDS = 2.0  # the most one round spends scanning, and then sending, before it pauses


class NoticeRunner(Periodic):
    """Runs ``run_notices`` every interval in a daemon thread until stopped (tollway.periodic)."""

    def __init__(
        self, database: Database, *, settings: MailSettings, interval_seconds: float = NOTICES_INTERVAL_SECONDS
    ) -> None:
        def work() -> None:
            report = run_notices(database, settings=settings, budget_seconds=NOTICES_STEP_SECONDS)
            if any(asdict(report).values()):
                log.info("notices_round", **asdict(report))

        super().__init__("notices", work, interval_seconds=interval_seconds, step_seconds=NOTICES_STEP_SECONDS)
