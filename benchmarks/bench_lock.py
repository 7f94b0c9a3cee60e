"""Benchmark flowenv's two speed targets in one run and print them side by side.

(a) ``flowenv lock --check`` on a generated 30-step × 2-platform project,
    locked once against a local wheel index (median wall time; hyperfine when
    it is on PATH, else a subprocess loop). Target: <= 100 ms.
(b) A cold ``flowenv lock`` of the PyPI-only examples against public PyPI vs
    the same ``uv pip compile`` commands (one per lock file, exactly the
    command line flowenv builds) run one after another. Every run of either
    side starts from an empty, fresh ``UV_CACHE_DIR``. Target: ratio <= 0.7.

    python benchmarks/bench_lock.py [--runs N] [--check-runs N] [--offline]

``--offline`` skips (b), which needs https://pypi.org.
"""

from __future__ import annotations

import argparse
import json
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

from flowenv.config.load import load_config  # noqa: E402
from flowenv.locks.layout import targets  # noqa: E402
from flowenv.resolvers.uv import compile_args  # noqa: E402
from flowenv.spec import build_environments  # noqa: E402
from tests.support.wheels import WheelSpec, build_simple_index, build_wheel  # noqa: E402

FLOWENV = [sys.executable, "-m", "flowenv"]
STEPS = 30
PACKAGES = 10


def _flowenv_command() -> list[str]:
    # The console script is what users run; fall back to -m when it is not installed.
    script = Path(sys.executable).parent / "flowenv"
    return [str(script)] if script.is_file() else FLOWENV


def generate_project(root: Path) -> Path:
    """A 30-step × 2-platform project over a local index of 10 packages × 3 versions."""
    wheels = root / "wheels"
    for i in range(PACKAGES):
        for version in ("1.0", "1.1", "2.0"):
            requires = (f"pkg{(i + 1) % PACKAGES:02d}>=1.0",) if version == "2.0" else ()
            build_wheel(WheelSpec(name=f"pkg{i:02d}", version=version, requires=requires), wheels)
    index = build_simple_index(sorted(wheels.glob("*.whl")), root / "index")
    project = root / "project"
    project.mkdir()
    specs = ("1.0", "1.1", ">=1.0", "<2", "~=1.0")
    lines = [
        "[project]",
        'name = "bench"',
        'platforms = ["linux-64", "osx-arm64"]',
        f'pypi.index-url = "{index.as_uri()}"',
        "",
        "[base]",
        'python = "3.11"',
        'pypi.packages = { pkg00 = ">=1.0" }',
    ]
    for step in range(STEPS):
        package = f"pkg{step % PACKAGES:02d}"
        other = f"pkg{(step + 3) % PACKAGES:02d}"
        spec = specs[step % len(specs)]
        other_spec = specs[(step // PACKAGES) % len(specs)]
        lines += [
            "",
            f"[steps.step{step:02d}]",
            f'pypi.packages = {{ {package} = "{spec}", {other} = "{other_spec}" }}',
        ]
    (project / "flowenv.toml").write_text("\n".join(lines) + "\n")
    return project


def _run(args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    result = subprocess.run(
        list(args), capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(args)}\n{result.stderr}")


def median_check_ms(project: Path, runs: int) -> tuple[float, str]:
    command = [*_flowenv_command(), "-q", "-C", str(project), "lock", "--check"]
    _run(command)  # fresh, or the measurement is of the failure path
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        with tempfile.TemporaryDirectory() as tmp:
            export = Path(tmp) / "result.json"
            _run(
                [
                    hyperfine,
                    "-N",
                    "--warmup",
                    "5",
                    "--runs",
                    str(runs),
                    "--export-json",
                    str(export),
                    " ".join(command),
                ]
            )
            result = json.loads(export.read_text())["results"][0]
            return result["median"] * 1000, "hyperfine"
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        _run(command)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, "subprocess loop"


def pypi_only_examples() -> list[Path]:
    """Examples whose every environment is PyPI-only (no conda channel needed)."""
    found = []
    for config_path in sorted((REPO / "examples").glob("*/flowenv.toml")):
        environments = build_environments(load_config(config_path))
        if all(env.kind == "pypi" for env in environments.envs):
            found.append(config_path.parent)
    return found


def _copy_examples(examples: Sequence[Path], into: Path) -> list[Path]:
    copies = []
    for example in examples:
        target = into / example.name
        target.mkdir(parents=True)
        shutil.copy2(example / "flowenv.toml", target / "flowenv.toml")
        copies.append(target)
    return copies


def cold_flowenv_lock(examples: Sequence[Path]) -> float:
    with tempfile.TemporaryDirectory(prefix="flowenv-bench-") as tmp:
        env = {**os.environ, "UV_CACHE_DIR": str(Path(tmp) / "uv-cache")}
        copies = _copy_examples(examples, Path(tmp))
        start = time.perf_counter()
        for copy in copies:
            _run([*_flowenv_command(), "-q", "-C", str(copy), "lock"], env=env)
        return time.perf_counter() - start


def cold_sequential_uv(examples: Sequence[Path]) -> float:
    """One ``uv pip compile`` per lock file, one after another, as a hand-written script would."""
    with tempfile.TemporaryDirectory(prefix="flowenv-bench-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "UV_CACHE_DIR": str(work / "uv-cache"), "UV_NO_PROGRESS": "1"}
        commands = []
        for n, example in enumerate(examples):
            config = load_config(example / "flowenv.toml")
            for target in targets(
                config.lock_root, build_environments(config).envs, config.project.platforms
            ):
                folder = work / f"{n}-{target.env.name}-{target.platform}"
                folder.mkdir()
                requirements = folder / "requirements.in"
                requirements.write_text("".join(f"{p.requirement()}\n" for p in target.env.pypi))
                commands.append(
                    [
                        str(a)
                        for a in compile_args(
                            requirements,
                            folder / "pylock.toml",
                            python=target.env.python,
                            platform=target.platform,
                            settings=target.env.pypi_settings,
                        )
                    ]
                )
        start = time.perf_counter()
        for command in commands:
            _run(command, env=env)
        return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="cold-lock runs of each side (default 3)"
    )
    parser.add_argument("--check-runs", type=int, default=30, help="lock --check runs (default 30)")
    parser.add_argument("--offline", action="store_true", help="skip (b), which needs public PyPI")
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="flowenv-bench-") as tmp:
        project = generate_project(Path(tmp))
        env = {**os.environ, "UV_CACHE_DIR": str(Path(tmp) / "uv-cache")}
        start = time.perf_counter()
        _run([*_flowenv_command(), "-q", "-C", str(project), "lock"], env=env)
        first_lock = time.perf_counter() - start
        locks = len(list((project / "locks").rglob("pylock.*.toml")))
        check_ms, tool = median_check_ms(project, args.check_runs)
        rows.append(
            (
                f"first lock, {STEPS} steps × 2 platforms ({locks} files, local index)",
                f"{first_lock:.2f} s",
                "",
            )
        )
        rows.append(
            (
                f"lock --check, median of {args.check_runs} ({tool})",
                f"{check_ms:.1f} ms",
                "target <= 100 ms: " + ("met" if check_ms <= 100 else "MISSED"),
            )
        )

    if not args.offline:
        examples = pypi_only_examples()
        names = ", ".join(e.name for e in examples)
        ours = [cold_flowenv_lock(examples) for _ in range(args.runs)]
        theirs = [cold_sequential_uv(examples) for _ in range(args.runs)]
        ratio = statistics.median(ours) / statistics.median(theirs)
        rows.append(
            (
                f"cold flowenv lock ({names}), median of {args.runs}",
                f"{statistics.median(ours):.2f} s",
                "",
            )
        )
        rows.append(
            (
                f"same uv pip compile commands one by one, median of {args.runs}",
                f"{statistics.median(theirs):.2f} s",
                "",
            )
        )
        rows.append(
            (
                "ratio flowenv / sequential uv",
                f"{ratio:.2f}",
                "target <= 0.7: " + ("met" if ratio <= 0.7 else "MISSED"),
            )
        )

    width = max(len(r[0]) for r in rows)
    for label, value, verdict in rows:
        print(f"{label:<{width}}  {value:>10}  {verdict}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
