"""Races between real processes: start them all at once behind a barrier, collect what each reports.

A spawned process imports Tollway afresh and opens its own connections, as a second Tollway process
on the same database would.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import pytest

WORKERS_SECONDS_MAX = 45  # a run that takes longer is stuck: the test fails and the workers are killed
START_SECONDS_MAX = 30  # spawning a Python process that imports Tollway takes about a second


def unexpected(label: str, error: BaseException) -> str:
    """One line that says what went wrong, then where: assertion diffs show the start of it."""
    summary = f"{label}: {error.__class__.__name__}: {error}".splitlines()[0]
    return summary + "\n" + traceback.format_exc()


def race(
    harness: Callable[..., None],
    arguments_per_process: Sequence[tuple[Any, ...]],
    *,
    seconds_max: float = WORKERS_SECONDS_MAX,
) -> list[Any]:
    """Run ``harness(start, results, index, *arguments)`` in one spawned process per tuple, all at once.

    Each harness waits on ``start`` (a barrier) and puts ``(index, report)`` on ``results``; the reports
    come back in the order of the tuples. A process that does not report within ``seconds_max`` of its start
    (importing included: a harness that builds the whole web application takes longer) fails the test.
    """
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(arguments_per_process))
    results = context.Queue()
    processes = [
        context.Process(target=harness, args=(start, results, index, *arguments), daemon=True)
        for index, arguments in enumerate(arguments_per_process)
    ]
    for process in processes:
        process.start()
    reports: dict[int, Any] = {}
    deadline = time.monotonic() + seconds_max
    try:
        while len(reports) < len(processes):
            try:
                index, report = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"workers still running after {seconds_max} s: stuck (deadlock?)")
            reports[index] = report
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
    assert [p.exitcode for p in processes] == [0] * len(processes)
    return [reports[index] for index in range(len(processes))]
