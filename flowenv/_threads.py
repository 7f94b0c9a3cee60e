"""Run a few calls at once in threads: the lock path's stand-in for ``concurrent.futures``.

``concurrent.futures`` imports ``logging``, about as much start-up as a
one-step re-lock's own work; locking only needs "run these, at most N at
once, and hand me each outcome as it finishes". Threads suffice: the work
is waiting on uv processes.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable, Iterator, Sequence
from queue import SimpleQueue
from typing import Generic, TypeVar

T = TypeVar("T")


class Outcome(Generic[T]):
    """What one call gave: its result, or the exception it raised."""

    __slots__ = ("error", "index", "result")

    def __init__(self, index: int, result: T | None, error: BaseException | None) -> None:
        self.index = index
        self.result = result
        self.error = error

    def get(self) -> T:
        """The result, or the call's exception raised here."""
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


def as_finished(calls: Sequence[Callable[[], T]], workers: int) -> Iterator[Outcome[T]]:
    """Each call's :class:`Outcome` in the order they finish; at most ``workers`` run at once.

    Leaving the loop early (an exception in the caller) starts no further
    call and waits for those running, as ``ThreadPoolExecutor`` would.
    """
    done: SimpleQueue[Outcome[T]] = SimpleQueue()
    todo = iter(enumerate(calls))
    guard = _thread.allocate_lock()
    stopped = False

    def work(finished: _thread.LockType) -> None:
        try:
            while True:
                with guard:
                    item = None if stopped else next(todo, None)
                if item is None:
                    return
                index, call = item
                try:
                    done.put(Outcome(index, call(), None))
                except BaseException as exc:  # handed to the caller, as a future would
                    done.put(Outcome(index, None, exc))
        finally:
            finished.release()

    # _thread, not threading: Thread.start() waits until the new thread runs,
    # 0.5-3 ms on a busy machine, and a re-lock starts three. Each worker is
    # joined through the lock it releases when it ends.
    exits: list[_thread.LockType] = []
    try:
        for _ in range(min(max(1, workers), len(calls))):
            finished = _thread.allocate_lock()
            finished.acquire()
            _thread.start_new_thread(work, (finished,))
            exits.append(finished)
        for _ in calls:
            yield done.get()
    finally:
        with guard:
            stopped = True
        for finished in exits:
            finished.acquire()


def in_threads(calls: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Every call's result in the calls' order (the first exception, in that order, is raised)."""
    outcomes = sorted(as_finished(calls, workers), key=lambda o: o.index)
    return [outcome.get() for outcome in outcomes]
