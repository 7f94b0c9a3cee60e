"""Benchmark: reading a flowenv.toml is linear in its size, however long its dotted headers are.

For files of n, 2n and 4n table headers, each as deep as the nesting bound
allows, it measures the median time and the peak traced memory of
``parse_config`` (key/line scan + tomllib + validation) and of the key/line
scan alone, and prints the ratio between successive sizes: about 2 means
linear, about 4 quadratic. It then times the refusal of the hostile case of
issue 13 — a ~200 KB file of 2000-part dotted headers — which the scanner
this replaced turned into 24 GB of key tuples.

    python benchmarks/bench_locate.py [--runs N] [--headers N]

The machine may be loaded by other work: compare the ratios, which are
measured within one run, rather than absolute times.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flowenv._bounds import MAX_DEPTH  # noqa: E402
from flowenv.config.load import parse_config  # noqa: E402
from flowenv.config.locate import locate_keys  # noqa: E402
from flowenv.errors import ConfigError  # noqa: E402

PATH = Path("/nonexistent/flowenv.toml")


def deep_headers(count: int) -> str:
    """``count`` headers ``[steps.sI.b.b…]``, each at the deepest nesting allowed."""
    parts = ".".join(["b"] * (MAX_DEPTH - 3))
    return '[base]\npython = "3.11"\n' + "".join(f"[steps.s{i}.{parts}]\n" for i in range(count))


def hostile_file() -> str:
    """Issue 13's case: ~200 KB of 2000-part dotted headers."""
    return ("[steps.s." + ".".join(["k"] * 2000) + "]\n") * 50


def _parse(text: str) -> None:
    # The generated headers are not valid steps; reading them is what is measured.
    with contextlib.suppress(ConfigError):
        parse_config(text, PATH)


def measure(
    func: Callable[[str], object], text: str, runs: int, collect: bool = True
) -> tuple[float, int]:
    """Median seconds over ``runs`` and peak traced bytes of one run.

    ``collect=False`` pauses CPython's cyclic garbage collector while timing:
    its full collections walk every live object, so on a large parse they add
    a superlinear term that is the collector's, not the algorithm's.
    """
    times = []
    for _ in range(runs):
        if not collect:
            gc.disable()
        start = time.perf_counter()
        try:
            func(text)
        finally:
            times.append(time.perf_counter() - start)
            gc.enable()
    tracemalloc.start()
    try:
        func(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--headers", type=int, default=250, help="n (then 2n and 4n)")
    args = parser.parse_args()
    cases = (
        ("parse_config", _parse, True),
        ("parse_config, gc paused", _parse, False),
        ("locate_keys", locate_keys, True),
    )
    for label, func, collect in cases:
        print(f"{label}: headers of {MAX_DEPTH - 1} parts")
        previous: tuple[float, int] | None = None
        for count in (args.headers, 2 * args.headers, 4 * args.headers):
            text = deep_headers(count)
            seconds, peak = measure(func, text, args.runs, collect)
            ratio = (
                f"  x{seconds / previous[0]:.2f} time, x{peak / previous[1]:.2f} memory"
                if previous
                else ""
            )
            print(
                f"  {len(text) / 1024:7.0f} KB  {seconds * 1000:8.1f} ms  "
                f"{peak / 2**20:7.1f} MiB{ratio}"
            )
            previous = (seconds, peak)
    # Same size, 4x the header depth: equal cost when linear in size, 4x when quadratic in depth.
    deep = deep_headers(args.headers)
    parts = ".".join(["b"] * 22)
    one_shallow = f"[steps.s0.{parts}]\n"
    shallow = '[base]\npython = "3.11"\n' + "".join(
        f"[steps.s{i}.{parts}]\n" for i in range(round(len(deep) / len(one_shallow)))
    )
    for label, func in (("parse_config", _parse), ("locate_keys", locate_keys)):
        (s_time, s_peak), (d_time, d_peak) = (
            measure(func, shallow, args.runs),
            measure(func, deep, args.runs),
        )
        print(
            f"{label}: {len(deep) / 1024:.0f} KB of {MAX_DEPTH - 1}-part headers vs the same size "
            f"of 24-part ones: x{d_time / s_time:.2f} time, x{d_peak / s_peak:.2f} memory"
        )
    text = hostile_file()
    seconds, peak = measure(_parse, text, args.runs)
    print(
        f"hostile {len(text) / 1024:.0f} KB of 2000-part headers: refused in "
        f"{seconds * 1000:.1f} ms, peak {peak / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
