"""Benchmark flowenv's locking against uv run directly, every pair measured in the same run.

Scenarios (medians; the ratio is flowenv / the reference):

check-30, check-1000
    ``flowenv lock --check`` on a fresh generated project of 30 and of 1000
    steps × 2 platforms (hyperfine when on PATH, else a subprocess loop).
    Reference: ``python -c pass`` (the interpreter floor). Targets: <= 40 ms
    and <= 100 ms, and the cost per step (the slope) a small constant.
warm-offline
    ``flowenv lock`` of the 30-step project from no locks, uv's cache warm,
    ``UV_OFFLINE=1``. Reference: the same ``uv pip compile`` commands
    (exactly the command lines flowenv builds) run one by one. Target <= 1.1.
relock-one
    Change one step of a 100-step project and ``flowenv lock``. Reference:
    that env's own ``uv pip compile`` calls, one by one. Target <= 1.5.
    Two rows, their runs interleaved with uv's: through the warm server the first lock
    starts (what users get; see flowenv.warm), and in-process
    (``FLOWENV_SERVER=0``). The other scenarios' locks use the server too.
    Every server the benchmark started is stopped at its end.
cold-examples (needs https://pypi.org; skipped with ``--offline``)
    ``flowenv lock`` of the PyPI-only examples from an empty uv cache.
    References: the same uv commands one by one, and one
    ``uv pip compile --universal`` per env. Target <= 1.0 against the faster.

    python benchmarks/bench_lock.py [--runs N] [--check-runs N] [--offline]
                                    [--only SCENARIO ...] [--update-readme]

``--only`` runs the named scenarios alone (check, warm-offline, relock-one,
cold-examples); with ``--update-readme`` only their rows of the table change.
``--update-readme`` rewrites the table in README.rst's development section.
The machine may be shared: the numbers are what this run saw.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flowenv.config.load import load_config  # noqa: E402
from flowenv.engines.uv import compile_args  # noqa: E402
from flowenv.spec import EnvSpec, build_environments  # noqa: E402
from tests.support.wheels import WheelSpec, build_simple_index, build_wheel  # noqa: E402

PACKAGES = 10
README = REPO / "README.rst"
TABLE_START = ".. benchmark-table-start"
TABLE_END = ".. benchmark-table-end"


def _flowenv_command() -> list[str]:
    # The console script is what users run; fall back to -m when it is not installed.
    script = Path(sys.executable).parent / "flowenv"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "flowenv"]


def build_index(root: Path) -> Path:
    """A local index of 10 packages × 3 versions, where 2.0 of each depends on the next."""
    wheels = root / "wheels"
    for i in range(PACKAGES):
        for version in ("1.0", "1.1", "2.0"):
            requires = (f"pkg{(i + 1) % PACKAGES:02d}>=1.0",) if version == "2.0" else ()
            build_wheel(WheelSpec(name=f"pkg{i:02d}", version=version, requires=requires), wheels)
    return build_simple_index(sorted(wheels.glob("*.whl")), root / "index")


def generate_project(root: Path, index: Path, steps: int) -> Path:
    """A ``steps``-step × 2-platform project over :func:`build_index` (<= 50 distinct specs)."""
    project = root / f"project-{steps}"
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
    for step in range(steps):
        package = f"pkg{step % PACKAGES:02d}"
        other = f"pkg{(step + 3) % PACKAGES:02d}"
        spec = specs[step % len(specs)]
        other_spec = specs[(step // PACKAGES) % len(specs)]
        lines += [
            "",
            f"[steps.step{step:03d}]",
            f'pypi.packages = {{ {package} = "{spec}", {other} = "{other_spec}" }}',
        ]
    (project / "flowenv.toml").write_text("\n".join(lines) + "\n")
    return project


def base_env() -> dict[str, str]:
    """This environment, minus what would measure something users never run."""
    # Users' interpreters keep bytecode caches; a developer shell that disables
    # them would measure compiling flowenv, not running it.
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(args: Sequence[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(list(args), capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(args)}\n{result.stderr}")


def _median_seconds(action: Callable[[], float], runs: int) -> float:
    return statistics.median(action() for _ in range(runs))


def _timed(commands: Sequence[Sequence[str]], env: dict[str, str]) -> float:
    start = time.perf_counter()
    for command in commands:
        _run(command, env)
    return time.perf_counter() - start


def hyperfine_medians(
    commands: Sequence[str], runs: int, env: dict[str, str]
) -> list[tuple[float, float]]:
    """(median wall seconds, mean CPU seconds) of each command, interleaved in one hyperfine run.

    CPU time (user + system, children included) barely moves when other work
    shares the machine, wall time does: both are reported.
    """
    hyperfine = shutil.which("hyperfine")
    if not hyperfine:
        raise SystemExit("hyperfine is not on PATH (apt-get install hyperfine)")
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "result.json"
        _run(
            [
                hyperfine,
                "-N",
                "--warmup",
                "3",
                "--runs",
                str(runs),
                "--export-json",
                str(export),
                *commands,
            ],
            env,
        )
        results = json.loads(export.read_text())["results"]
        return [(r["median"], r["user"] + r["system"]) for r in results]


def uv_commands(
    env: EnvSpec, platforms: Sequence[str], workdir: Path, universal: bool = False
) -> list[list[str]]:
    """The ``uv pip compile`` commands flowenv runs for ``env`` (or one ``--universal`` call)."""
    folder = workdir / env.name
    folder.mkdir(parents=True, exist_ok=True)
    requirements = folder / "requirements.in"
    requirements.write_text("".join(f"{p.requirement()}\n" for p in env.pypi))
    commands = []
    for platform in platforms[:1] if universal else platforms:
        output = folder / platform / "pylock.toml"
        output.parent.mkdir(exist_ok=True)
        args = [
            str(a)
            for a in compile_args(
                requirements,
                output,
                python=env.python,
                platform=platform,
                settings=env.pypi_settings,
            )
        ]
        if universal:
            at = args.index("--python-platform")
            args[at : at + 2] = ["--universal"]
        commands.append(args)
    return commands


def project_uv_commands(project: Path, workdir: Path, universal: bool = False) -> list[list[str]]:
    config = load_config(project / "flowenv.toml")
    out = []
    for env in build_environments(config).envs:
        if env.pypi:
            out += uv_commands(env, config.project.platforms, workdir / project.name, universal)
    return out


# -- scenarios ------------------------------------------------------------------


#: scenario, flowenv wall s, its CPU s (0: not measured), reference, wall s, CPU s, target
Row = tuple[str, float, float, str, float, float, float]


def check_rows(tmp: Path, index: Path, runs: int, env: dict[str, str]) -> list[Row]:
    projects = {steps: generate_project(tmp, index, steps) for steps in (30, 1000)}
    for project in projects.values():
        _run([*_flowenv_command(), "-q", "-C", str(project), "lock"], env)
    # A lock's stat proves nothing in the seconds after it was written (see
    # flowenv.lockfiles.freshness): the first check after that records them.
    time.sleep(3.1)
    for project in projects.values():
        _run([*_flowenv_command(), "-q", "-C", str(project), "lock", "--check"], env)
        # Measure the path users get: the full lock left a record the fast path trusts.
        config = str(project / "flowenv.toml")
        probe = (
            "from pathlib import Path; from flowenv.lockfiles.freshness import known_fresh as k; "
            f"assert k(Path({config!r}))"
        )
        _run([sys.executable, "-c", probe], env)
    commands = [f"{sys.executable} -c pass"] + [
        " ".join([*_flowenv_command(), "-q", "-C", str(p), "lock", "--check"])
        for p in projects.values()
    ]
    floor, at30, at1000 = hyperfine_medians(commands, runs, env)
    slope_us = (at1000[1] - at30[1]) / 970 * 1e6
    print(f"lock --check CPU per step: {slope_us:.1f} µs (30 → 1000 steps)")
    return [
        ("lock --check, 30 steps × 2 platforms", *at30, "python -c pass", *floor, 0.040),
        ("lock --check, 1000 steps × 2 platforms", *at1000, "python -c pass", *floor, 0.100),
    ]


def warm_offline_row(tmp: Path, index: Path, runs: int, env: dict[str, str]) -> Row:
    project = tmp / "project-30"
    if not project.exists():  # made by check_rows when it ran
        generate_project(tmp, index, 30)
    offline = {**env, "UV_OFFLINE": "1"}
    uv = project_uv_commands(project, tmp / "uv-warm")
    _timed(uv, env)  # warms uv's cache (online: a file:// index needs no network anyway)

    def flowenv() -> float:
        shutil.rmtree(project / "locks", ignore_errors=True)
        return _timed([[*_flowenv_command(), "-q", "-C", str(project), "lock"]], offline)

    ours = _median_seconds(flowenv, runs)
    theirs = _median_seconds(lambda: _timed(uv, offline), runs)
    scenario = "warm offline lock, 30 steps (31 envs × 2)"
    return (scenario, ours, 0.0, "same uv calls one by one", theirs, 0.0, 1.1)


def _wait_for_server(env: dict[str, str]) -> None:
    """Until the warm server the first lock started answers (it imports and warms up first)."""
    deadline = time.monotonic() + 60
    status = [*_flowenv_command(), "server", "status"]
    while time.monotonic() < deadline:
        result = subprocess.run(status, capture_output=True, text=True, env=env, check=False)
        if "warm server running" in result.stdout:
            return
        time.sleep(0.1)
    raise SystemExit(f"the warm server did not start: {result.stdout}{result.stderr}")


def stop_servers(env: dict[str, str]) -> None:
    """End the warm server this benchmark's locks started (it would idle on for 10 minutes)."""
    subprocess.run(
        [*_flowenv_command(), "server", "stop"], capture_output=True, env=env, check=False
    )


def relock_rows(tmp: Path, index: Path, runs: int, env: dict[str, str]) -> list[Row]:
    """The re-lock through the warm server (what users get), and without it, runs interleaved."""
    project = generate_project(tmp, index, 100)
    toml = project / "flowenv.toml"
    original = toml.read_text()
    before, after = 'pkg07 = ">=1.0", pkg00 = "1.0" }', 'pkg07 = ">=1.0,<3", pkg00 = "1.0" }'
    changed = original.replace(before, after, 1)
    assert changed != original
    lock = [*_flowenv_command(), "-q", "-C", str(project), "lock"]
    cold = {**env, "FLOWENV_SERVER": "0"}
    _run(lock, env)  # in-process: starts the warm server for the locks after it
    if env.get("FLOWENV_SERVER") != "0" and not env.get("CI"):
        _wait_for_server(env)
    # A user edits a step well after the last lock; a lock's stat proves nothing
    # in the seconds after it was written (see flowenv.lockfiles.freshness), so
    # without this pause every run would read all 200 lock headers again.
    time.sleep(3.1)
    _run(lock, env)  # records the settled locks, as any lock after that pause would

    def flowenv(environ: dict[str, str]) -> float:
        toml.write_text(changed)
        seconds = _timed([lock], environ)
        toml.write_text(original)
        _run(lock, env)  # back to the first state, untimed
        return seconds

    toml.write_text(changed)
    config = load_config(toml)
    step = build_environments(config).get("step007")
    uv = uv_commands(step, config.project.platforms, tmp / "uv-relock")
    toml.write_text(original)
    # Interleaved, so that a change in the machine's load weighs on all three alike.
    served: list[float] = []
    in_process: list[float] = []
    reference: list[float] = []
    for _ in range(runs):
        served.append(flowenv(env))
        in_process.append(flowenv(cold))
        reference.append(_timed(uv, env))
    theirs = statistics.median(reference)
    scenario = "re-lock after changing 1 of 100 steps"
    label = "that env's uv calls"
    return [
        (scenario, statistics.median(served), 0.0, label, theirs, 0.0, 1.5),
        (
            f"{scenario}, no warm server (FLOWENV_SERVER=0)",
            statistics.median(in_process),
            0.0,
            label,
            theirs,
            0.0,
            1.5,
        ),
    ]


def _pypi_org_only(env: EnvSpec) -> bool:
    """Every package by name from pypi.org, declared in flowenv.toml itself.

    An env whose packages come from input files (requirements.txt...) or are
    local or URL packages is left out: only flowenv.toml is copied to the
    benchmark's directory, and a local package's build is not pypi.org's.
    """
    settings = env.pypi_settings
    packages = [p for platform in env.platforms for p in env.pypi_on(platform)]
    return (
        env.kind == "pypi"
        and settings.index_url in (None, "https://pypi.org/simple")
        and not (settings.extra_index_urls or settings.find_links or settings.indexes)
        and not env.inputs
        and not any(p.path or p.url for p in packages)
    )


def pypi_only_examples() -> list[Path]:
    """Examples served by pypi.org alone (no conda channel, no other index)."""
    found = []
    for config_path in sorted((REPO / "examples").glob("*/flowenv.toml")):
        environments = build_environments(load_config(config_path))
        if all(_pypi_org_only(env) for env in environments.envs):
            found.append(config_path.parent)
    return found


def cold_rows(runs: int) -> list[Row]:
    examples = pypi_only_examples()

    def fresh(action: Callable[[Path, dict[str, str]], float]) -> float:
        with tempfile.TemporaryDirectory(prefix="flowenv-bench-") as tmp:
            env = {**base_env(), "UV_CACHE_DIR": str(Path(tmp) / "uv-cache"), "UV_NO_PROGRESS": "1"}
            return action(Path(tmp), env)

    def flowenv(tmp: Path, env: dict[str, str]) -> float:
        copies = []
        for example in examples:
            (tmp / example.name).mkdir()
            shutil.copy2(example / "flowenv.toml", tmp / example.name / "flowenv.toml")
            copies.append([*_flowenv_command(), "-q", "-C", str(tmp / example.name), "lock"])
        return _timed(copies, env)

    def uv(universal: bool) -> Callable[[Path, dict[str, str]], float]:
        def action(tmp: Path, env: dict[str, str]) -> float:
            commands = [c for e in examples for c in project_uv_commands(e, tmp, universal)]
            return _timed(commands, env)

        return action

    ours = _median_seconds(lambda: fresh(flowenv), runs)
    one_by_one = _median_seconds(lambda: fresh(uv(False)), runs)
    universal = _median_seconds(lambda: fresh(uv(True)), runs)
    names = ", ".join(e.name for e in examples)
    return [
        (f"cold lock ({names})", ours, 0.0, "same uv calls one by one", one_by_one, 0.0, 1.0),
        (f"cold lock ({names})", ours, 0.0, "uv --universal per env", universal, 0.0, 1.0),
    ]


# -- report ---------------------------------------------------------------------


def _seconds(value: float, cpu: float = 0.0) -> str:
    text = f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{text} (cpu {cpu * 1000:.0f} ms)" if cpu else text


def _cells(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    body = []
    for scenario, ours, our_cpu, reference, theirs, their_cpu, target in rows:
        absolute = "--check" in scenario
        ratio = ours / theirs
        goal = f"<= {target * 1000:.0f} ms" if absolute else f"<= {target:.1f}×"
        met = (ours <= target) if absolute else (ratio <= target)
        body.append(
            (
                scenario,
                _seconds(ours, our_cpu),
                f"{reference}: {_seconds(theirs, their_cpu)}",
                f"{ratio:.2f}×",
                f"{goal} ({'met' if met else 'missed'})",
            )
        )
    return body


HEADER = ("scenario", "flowenv (median)", "reference, same run (median)", "ratio", "target")


def _render(body: Sequence[tuple[str, ...]], footer: str) -> str:
    widths = [max(len(r[i]) for r in (HEADER, *body)) for i in range(len(HEADER))]
    rule = "  ".join("=" * w for w in widths)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [rule, line(HEADER), rule, *(line(r) for r in body), rule, "", footer]
    return "\n".join(lines) + "\n"


def _load_footer(scenarios: Sequence[str] | None = None, earlier: str = "") -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = f"load average {load:.1f} on {os.cpu_count()} CPUs"
    if scenarios is None:
        return f"Measured with {where}."
    # What the earlier run said of its load stays with its rows.
    found = re.findall(r"load average [0-9.]+ on \d+ CPUs", earlier)
    before = f" (the last with {found[-1]})" if found else ""
    return (
        f"Rows {', '.join(scenarios)} re-run with {where}; "
        f"the others are from earlier runs{before}."
    )


def table(rows: Sequence[Row]) -> str:
    """An RST table: scenario, flowenv, reference, ratio (lock --check: absolute target)."""
    return _render(_cells(rows), _load_footer())


def _table_rows(text: str) -> list[tuple[str, ...]]:
    """The body rows of a table :func:`table` rendered (cells cut at the rule's columns)."""
    lines = text.strip("\n").splitlines()
    rule = lines[0]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", rule)]
    body = lines[3 : lines.index(rule, 3)]
    return [
        tuple(
            line[start : spans[i + 1][0] if i + 1 < len(spans) else None].strip()
            for i, (start, _) in enumerate(spans)
        )
        for line in body
    ]


def merged_table(old: str, rows: Sequence[Row], scenarios: Sequence[str]) -> str:
    """``old``'s table with the rows of the same scenario and reference replaced by ``rows``."""
    new = _cells(rows)

    def key(cells: tuple[str, ...]) -> tuple[str, str]:
        return cells[0], cells[2].split(":")[0]

    replaced = {key(c): c for c in new}
    kept = [replaced.pop(key(c), c) for c in _table_rows(old)]
    footer = old.strip("\n").splitlines()[-1]
    return _render([*kept, *replaced.values()], _load_footer(scenarios, footer))


def _readme_table() -> str:
    readme = README.read_text(encoding="utf-8")
    start = readme.index(TABLE_START) + len(TABLE_START)
    return readme[start : readme.index(TABLE_END)].strip("\n")


def update_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    pattern = re.compile(rf"({re.escape(TABLE_START)}\n).*?(\n{re.escape(TABLE_END)})", re.DOTALL)
    if not pattern.search(readme):
        raise SystemExit(f"README.rst has no {TABLE_START} / {TABLE_END} markers")
    README.write_text(pattern.sub(lambda m: f"{m[1]}\n{text}{m[2]}", readme), encoding="utf-8")


SCENARIOS = ("check", "warm-offline", "relock-one", "cold-examples")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each lock scenario")
    parser.add_argument("--check-runs", type=int, default=30, help="lock --check runs")
    parser.add_argument("--offline", action="store_true", help="skip the cold lock (needs PyPI)")
    parser.add_argument("--update-readme", action="store_true", help="rewrite README's table")
    parser.add_argument(
        "--only", nargs="+", choices=SCENARIOS, metavar="SCENARIO", help="run only these"
    )
    args = parser.parse_args(argv)
    wanted = set(args.only or SCENARIOS)
    if args.offline:
        wanted.discard("cold-examples")

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="flowenv-bench-") as tmp:
        root = Path(tmp)
        env = {
            **base_env(),
            "UV_CACHE_DIR": str(root / "uv-cache"),
            "FLOWENV_CACHE_DIR": str(root / "flowenv-cache"),
            # The warm server `flowenv lock` starts: this run's own, stopped at its end.
            "FLOWENV_SERVER_DIR": str(root / "warm-server"),
        }
        index = build_index(root)
        try:
            if "check" in wanted:
                rows += check_rows(root, index, args.check_runs, env)
            if "warm-offline" in wanted:
                rows.append(warm_offline_row(root, index, args.runs, env))
            if "relock-one" in wanted:
                rows += relock_rows(root, index, args.runs, env)
        finally:
            stop_servers(env)
    if "cold-examples" in wanted:
        rows += cold_rows(args.runs)
    if args.only:
        ran = [s for s in SCENARIOS if s in wanted]
        text = merged_table(_readme_table(), rows, ran)
    else:
        text = table(rows)
    print(text, end="")
    if args.update_readme:
        update_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
