"""What an operator scrapes between two looks at the logs: Prometheus counters of the events that matter, served
at ``/metrics`` to a scraper that presents the configured token (``TOLLWAY_METRICS_TOKEN``).

Each process counts its own events. Processes on one host add up when they share a directory: set
``PROMETHEUS_MULTIPROC_DIR`` to the same empty directory for every ``tollway serve`` and ``tollway radius`` of
the host (a systemd ``RuntimeDirectory``, emptied when the service stops), and the ``/metrics`` of any of
them answers the sum. ``tollway serve --workers N`` makes a fresh directory for its workers when none is set.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"

CALL_OVERSHOOTS = Counter(
    "tollway_call_overshoots",
    "Reported call durations not believed (past the grant or the wall clock): charged at most what was granted",
    ["reason"],
)
CARD_PIN_LOCKS = Counter(
    "tollway_card_pin_locks",
    "Calling-card PIN guessing locks: a caller number, an access number, a holder page's address or serial"
    " locked out after failed attempts",
    ["counter"],
)

for reason in ("beyond_grant", "beyond_wall_clock"):  # every series shown from the start, at 0
    CALL_OVERSHOOTS.labels(reason=reason)
for counter in ("caller", "access_number", "web", "serial"):  # the last two: the holder's page (/card)
    CARD_PIN_LOCKS.labels(counter=counter)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def exposition() -> bytes:
    """Every counter in Prometheus' text format: this process's, or the host's when processes share a directory."""
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def sample(metric: Counter, /, **labels: str) -> float:
    """A counter's value in this process (0 before its first event), by its labels."""
    value = REGISTRY.get_sample_value(f"{metric._name}_total", labels)
    return 0.0 if value is None else value
