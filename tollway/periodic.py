"""A duty run over and over in a daemon thread of every ``tollway serve`` process, until stopped.

A round that used its whole time budget has more to do: the next one starts at once. Otherwise the
thread rests for the interval. A round that fails is logged, and the thread goes on: a duty that died
silently would leave calls unextended or notices unsent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tollway.logs import get_logger

log = get_logger(__name__)


class Periodic:
    def __init__(self, name: str, work: Callable[[], object], *, interval_seconds: float, step_seconds: float) -> None:
        self._name = name
        self._work = work
        self._interval = interval_seconds
        self._step = step_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tollway-{name}", daemon=True)

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
                self._work()
            except Exception:
                log.exception(f"{self._name}_round_failed")
            if time.monotonic() - started < self._step:
                self._stop.wait(self._interval)
