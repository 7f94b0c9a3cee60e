"""The configuration work of a one-step re-lock, with and without the configuration memo.

In one process, as the warm server's children see it: load the N-step
project's flowenv.toml, build its environments and ask every env × platform
input hash, after a load of the same project with one step changed (so the
memo holds what the last run used). "without" empties the memo before each
timed load, as a fresh process would have it. Medians of ``--runs``.

    python benchmarks/bench_config_memo.py --steps 100 --runs 31

No index or uv is needed: the project is only loaded, never resolved.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_lock import generate_project

from flowenv.config import memo
from flowenv.config.load import load_config
from flowenv.spec import build_environments


def _phases(path: Path) -> tuple[float, float, float]:
    """(load, build, hash) in ms."""
    start = time.perf_counter()
    config = load_config(path)
    loaded = time.perf_counter()
    environments = build_environments(config)
    built = time.perf_counter()
    for env in environments.envs:
        for platform in env.platforms:
            env.input_hash(platform)
    hashed = time.perf_counter()
    return (loaded - start) * 1e3, (built - loaded) * 1e3, (hashed - built) * 1e3


def measure(path: Path, before: str, after: str, runs: int, memoised: bool) -> list[float]:
    """Medians of (load, build, hash, total) over ``runs`` re-locks from ``before`` to ``after``."""
    samples = []
    for _ in range(runs):
        path.write_text(before)
        _phases(path)
        path.write_text(after)
        if not memoised:
            memo.DECLS.clear()
            memo.SPECS.clear()
        load, build, hashes = _phases(path)
        samples.append((load, build, hashes, load + build + hashes))
    return [statistics.median(column) for column in zip(*samples, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--runs", type=int, default=31)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        project = generate_project(Path(directory), Path(directory) / "index", args.steps)
        path = project / "flowenv.toml"
        before = path.read_text()
        # The change bench_lock.py's relock-one scenario makes.
        after = before.replace('pkg07 = ">=1.0", pkg00', 'pkg07 = ">=1.0,<3", pkg00', 1)
        assert after != before
        rows: list[tuple[str, Callable[[], list[float]]]] = [
            ("without memo", lambda: measure(path, before, after, args.runs, memoised=False)),
            ("with memo", lambda: measure(path, before, after, args.runs, memoised=True)),
        ]
        print(f"{args.steps} steps x 2 platforms, one step changed; medians of {args.runs} (ms)")
        print(f"{'':14s} {'load':>7s} {'build':>7s} {'hashes':>7s} {'total':>7s}")
        for name, run in rows:
            load, build, hashes, total = run()
            print(f"{name:14s} {load:7.2f} {build:7.2f} {hashes:7.2f} {total:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
