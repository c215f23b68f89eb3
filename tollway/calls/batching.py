"""Group commit: requests that arrive while one batch is being decided are decided together in the next.

A hot reseller wallet is a row every call below it writes under a lock. Taken once per call, it
serializes those calls on their round trips to the database and their commits. Here the requests of
one process that arrive while a batch is in flight wait, and the next batch takes them all: one
transaction, one lock of the union of their accounts, one commit. Nothing waits on purpose: a
request that finds no batch in flight is decided at once, alone, so a quiet system pays no latency
for it, and the busier the process, the larger its batches.

No thread of its own: the request that finds no batch in flight leads one, with whatever is queued
when it starts; when it is done it hands the lead to the oldest waiting request, which leads the
next. Each request leads at most one batch, so no request waits for more than the batch before
its own and its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BATCH_MAX = 64  # the most requests one transaction decides (and locks the accounts of)


@dataclass(eq=False, slots=True)
class _Waiter(Generic[Item, Result]):
    item: Item
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to lead the next batch, not with an outcome
    result: Result | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    """Decides items in batches with ``decide``, which answers one outcome per item, in order: a result,
    or the exception to raise in that item's thread. ``decide`` itself must not raise for one item."""

    def __init__(
        self,
        decide: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        *,
        batch_max: int = BATCH_MAX,
    ) -> None:
        self._decide = decide
        self._batch_max = batch_max
        self._lock = threading.Lock()
        self._queue: list[_Waiter[Item, Result]] = []
        self._leading = False
        self.batches = 0  # decided so far, and the items in them: what the benchmark reports
        self.items = 0

    def submit(self, item: Item) -> Result:
        waiter: _Waiter[Item, Result] = _Waiter(item)
        with self._lock:
            self._queue.append(waiter)
            leads = not self._leading
            self._leading = True
        if not leads:
            waiter.done.wait()
            if not waiter.lead:
                return _outcome(waiter)
        self._lead()
        return _outcome(waiter)

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[: self._batch_max], self._queue[self._batch_max :]
        try:
            outcomes: Sequence[Result | BaseException] = self._decide([waiter.item for waiter in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(outcomes)} outcomes")
        except BaseException as error:  # every waiter must wake, with the error
            outcomes = [error] * len(batch)
        finally:
            with self._lock:
                self.batches += 1
                self.items += len(batch)
                following = self._queue[0] if self._queue else None
                if following is None:
                    self._leading = False
            if following is not None:  # the lead passes on before this batch's waiters wake
                following.lead = True
                following.done.set()
        for waiter, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                waiter.error = outcome
            else:
                waiter.result = outcome
            if not waiter.lead:
                waiter.done.set()


def _outcome(waiter: _Waiter[Item, Result]) -> Result:
    if waiter.error is not None:
        raise waiter.error
    return waiter.result  # type: ignore[return-value]
