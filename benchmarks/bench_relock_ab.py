"""Compare flowenv versions on the one-step re-lock, sample by sample (for speed work).

On a shared machine the load moves more between two runs of a benchmark than
one change to flowenv does; comparing versions run one after the other says
little. This runs each version's re-lock in turn, sample after sample, so
that the load weighs on all of them alike, and reports each one's median
and the median of the paired differences against the first.

Each version (``NAME=GIT_REF``; ``NAME=.`` is the working tree) gets the
same generated 100-step project (``bench_lock.generate_project``), its own
copy, and its own warm server. A sample changes step007 as ``bench_lock``'s
relock-one does, times ``flowenv -q lock`` through the warm server (or
in-process with ``--in-process``), and locks the original again, untimed.

    python benchmarks/bench_relock_ab.py [--runs N] [--in-process] [NAME=REF ...]

Defaults: ``main=main new=.``, 30 runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_lock import (  # noqa: E402
    _flowenv_command,
    base_env,
    build_index,
    generate_project,
)

BEFORE = 'pkg07 = ">=1.0", pkg00 = "1.0" }'
AFTER = 'pkg07 = ">=1.0,<3", pkg00 = "1.0" }'


def source_tree(ref: str, root: Path) -> Path | None:
    """A directory holding ``flowenv`` as of ``ref`` (None: the working tree's)."""
    if ref == ".":
        return None
    tree = root / f"src-{ref.replace('/', '_')}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "flowenv"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("versions", nargs="*", default=["main=main", "new=."])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--in-process", action="store_true", help="FLOWENV_SERVER=0")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flowenv-bench-ab-") as tmp:
        root = Path(tmp)
        index = build_index(root)
        template = generate_project(root, index, 100)
        original = (template / "flowenv.toml").read_text()
        changed = original.replace(BEFORE, AFTER, 1)
        assert changed != original
        shared = {
            **base_env(),
            "UV_CACHE_DIR": str(root / "uv-cache"),
            "FLOWENV_CACHE_DIR": str(root / "flowenv-cache"),
        }
        shared.pop("CI", None)
        shared.pop("PYTHONPATH", None)
        versions: list[tuple[str, Path, dict[str, str]]] = []
        for spec in args.versions:
            name, _, ref = spec.partition("=")
            project = root / f"project-{name}"
            shutil.copytree(template, project)
            env = {**shared, "FLOWENV_SERVER_DIR": str(root / f"server-{name}")}
            os.makedirs(env["FLOWENV_SERVER_DIR"], mode=0o700)
            tree = source_tree(ref or ".", root)
            if tree is not None:
                env["PYTHONPATH"] = str(tree)
            if args.in_process:
                env["FLOWENV_SERVER"] = "0"
            versions.append((name, project, env))

        def lock(project: Path, env: dict[str, str]) -> float:
            start = time.perf_counter()
            subprocess.run(
                [*_flowenv_command(), "-q", "-C", str(project), "lock"], env=env, check=True
            )
            return time.perf_counter() - start

        try:
            for _, project, env in versions:
                lock(project, env)  # starts its warm server
            # As in bench_lock: a lock's stat proves nothing in the seconds after it was written.
            time.sleep(3.5)
            for _, project, env in versions:
                lock(project, env)
            samples: dict[str, list[float]] = {name: [] for name, _, _ in versions}
            loads = []
            for run in range(args.runs):
                loads.append(os.getloadavg()[0])
                # Alternating order: neither version always follows the other.
                for name, project, env in versions if run % 2 == 0 else versions[::-1]:
                    (project / "flowenv.toml").write_text(changed)
                    samples[name].append(lock(project, env) * 1000)
                    (project / "flowenv.toml").write_text(original)
                    lock(project, env)
        finally:
            for _, _, env in versions:
                subprocess.run(
                    [*_flowenv_command(), "server", "stop"], env=env, capture_output=True
                )
    mode = "in-process" if args.in_process else "through the warm server"
    print(f"one-step re-lock of 100 steps, {mode}, {args.runs} runs (ms)")
    first = versions[0][0]
    for name, _, _ in versions:
        ordered = sorted(samples[name])
        print(f"  {name:10s} median {statistics.median(ordered):6.1f}  min {ordered[0]:6.1f}")
    for name, _, _ in versions[1:]:
        paired = [b - a for a, b in zip(samples[first], samples[name], strict=True)]
        print(f"  {name} - {first}: median of paired differences {statistics.median(paired):+.1f}")
    print(f"  load average: {min(loads):.2f}-{max(loads):.2f} (2 CPUs shared)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
