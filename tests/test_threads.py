"""flowenv._threads: the lock path's small thread runner (real threads, no timing)."""

from __future__ import annotations

import threading

import pytest

from flowenv._threads import as_finished, in_threads


def test_results_come_back_in_the_calls_order() -> None:
    calls = [lambda i=i: i * i for i in range(7)]
    assert in_threads(calls, 3) == [i * i for i in range(7)]
    assert in_threads([], 4) == []


def test_no_more_than_workers_calls_run_at_once() -> None:
    lock = threading.Lock()
    running, peak = 0, 0
    both_in = threading.Barrier(2)

    def call() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        both_in.wait()  # two must be inside at once, or this never returns
        with lock:
            running -= 1

    in_threads([call] * 6, 2)
    assert peak == 2


def test_an_exception_reaches_the_caller_with_its_index() -> None:
    def fail() -> int:
        raise ValueError("boom")

    outcomes = {o.index: o for o in as_finished([lambda: 1, fail, lambda: 3], 2)}
    assert outcomes[0].get() == 1
    assert outcomes[2].get() == 3
    with pytest.raises(ValueError, match="boom"):
        outcomes[1].get()
    with pytest.raises(ValueError, match="boom"):
        in_threads([lambda: 1, fail], 2)


def test_leaving_early_waits_for_the_running_calls() -> None:
    lock = threading.Lock()
    started: list[int] = []
    ended: list[int] = []
    release = threading.Event()

    def call(i: int) -> int:
        with lock:
            started.append(i)
        if i > 0:
            release.wait()  # still running when the caller leaves the loop
        with lock:
            ended.append(i)
        return i

    calls = [lambda i=i: call(i) for i in range(50)]
    loop = as_finished(calls, 2)
    first = next(loop)
    assert first.index == 0
    threading.Timer(0.05, release.set).start()
    loop.close()
    # Closing the loop stopped the workers and waited for them: every call that
    # started has ended, and no further call was started.
    assert sorted(started) == sorted(ended)
    assert len(started) < 50
