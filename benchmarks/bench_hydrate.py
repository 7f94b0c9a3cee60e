"""Hydrate benchmark: flowenv against uv doing the same install, side by side in one run.

1. warm: ``flowenv hydrate`` into a new prefix with a warm cache, against
   ``uv venv`` + ``uv pip install --offline --no-index --find-links DIR`` of the same
   wheels into a new venv with a warm uv cache (target ratio <= 1.5)
2. cold: both with empty caches (target ratio <= 1.3)
3. cache growth over 10 warm hydrates into new prefixes (target: 0 bytes of artifacts
   and unpacked wheels; the few bookkeeping bytes per new prefix are reported apart)
4. an env whose Python is only in the store (installed from the stored build) against
   the same env with a matching local interpreter, both cold (for information)

The env is read from a local-folder store (the embedded default), so both sides read
local files. It is ``--count`` synthetic wheels of ``--size`` bytes, or with
``--pypi "numpy==2.1.3 pandas==2.2.3"`` real wheels locked from PyPI (network).
Each contender is a fresh process, as on an executor; contenders alternate within
each repetition; what a run leaves is deleted and the disk flushed outside the
timings; medians are compared. The machine is shared: only ratios mean much.

    python benchmarks/bench_hydrate.py [--count 100] [--size 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_store import check, timed  # noqa: E402
from tests.support.pythons import (  # noqa: E402
    build_archive,
    other_interpreter,
    path_without,
    write_download_list,
)
from tests.support.stores import StoreTarget, many_wheels_project  # noqa: E402

BIN = Path(sys.executable).parent
UV = str(BIN / "uv")
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "FLOWENV_"))}
    return env | {"UV_NO_PROGRESS": "1"} | extra


def settle(*paths: Path) -> None:
    """Remove ``paths`` and flush the disk, outside any timing: deleting a tree leaves
    dirty pages whose write-back would otherwise slow whichever contender runs next."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    os.sync()


def disk_usage(root: Path, *, skip: tuple[str, ...] = ()) -> int:
    """Bytes of the files under ``root``, each inode once; top-level paths in ``skip`` aside."""
    seen: set[int] = set()
    total = 0
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if path.relative_to(root).as_posix().startswith(skip):
                continue
            info = path.lstat()
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_size
    return total


def make_project(work: Path, args: argparse.Namespace, store: Path, python: str) -> Path:
    target = StoreTarget(kind="file", url=str(store))
    if args.pypi:
        project = work / "project"
        project.mkdir()
        pins = ", ".join(f'"{p.split("==")[0]}" = "{p.split("==")[1]}"' for p in args.pypi.split())
        (project / "flowenv.toml").write_text(
            '[project]\nname = "bulk"\nplatforms = ["linux-64"]\n'
            f'{target.project_lines()}\n[base]\npython = "{python}"\n'
            f"pypi.packages = {{ {pins} }}\n"
        )
    else:
        project = many_wheels_project(work, args.count, args.size, target)
        toml = project / "flowenv.toml"
        toml.write_text(toml.read_text().replace('python = "3.11"', f'python = "{python}"'))
    return project


def sync(project: Path, env: dict[str, str], *options: str) -> None:
    flowenv = [sys.executable, "-m", "flowenv", "-q", "-C", str(project)]
    check([*flowenv, "lock"], env)
    check([*flowenv, "sync", *options], env)


def uv_inputs(store: Path, work: Path, name: str) -> tuple[Path, Path]:
    """A find-links dir (hard links to the store's wheels) and pins, for the uv baseline."""
    wheels = work / f"{name}-wheels"
    wheels.mkdir()
    pins = set()
    for wheel in (store / "artifacts").rglob("*.whl"):
        os.link(wheel, wheels / wheel.name)
        dist, version = wheel.name.split("-")[:2]
        pins.add(f"{dist}=={version}")
    requirements = work / f"{name}-requirements.txt"
    requirements.write_text("".join(f"{p}\n" for p in sorted(pins)))
    return wheels, requirements


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--size", type=int, default=200_000, help="approximate bytes per wheel")
    parser.add_argument("--pypi", help='real packages from PyPI instead: "numpy==2.1.3 ..."')
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flowenv-bench-hydrate-"))
    try:
        print(json.dumps(run_all(work, args), indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(work: Path, args: argparse.Namespace) -> dict[str, object]:
    store = work / "store"
    # The local interpreter serves this env: no CPython build to store.
    sync(
        make_project(work, args, store, PYTHON),
        clean_env(FLOWENV_CACHE_DIR=str(work / "sc")),
        "--no-python",
    )
    wheels, requirements = uv_inputs(store, work, "main")
    base_python = str(Path(sys.base_prefix) / "bin" / f"python{PYTHON}")
    counter = iter(range(1_000_000))

    def flowenv_hydrate(cache: Path) -> float:
        prefix = work / f"env-{next(counter)}"
        hydrate_env = clean_env(FLOWENV_CACHE_DIR=str(cache), FLOWENV_STORE=str(store))
        cmd = [sys.executable, "-m", "flowenv", "hydrate", "base", "--project", "bulk",
               "--prefix", str(prefix)]  # fmt: skip
        elapsed = timed(lambda: check(cmd, hydrate_env, cwd=work))
        settle(prefix)
        return elapsed

    def uv_install(uv_cache: Path) -> float:
        venv = work / f"venv-{next(counter)}"
        env = clean_env(UV_CACHE_DIR=str(uv_cache))

        def both() -> None:
            check([UV, "venv", "-q", str(venv), "--python", base_python, "--no-config"], env)
            check([UV, "pip", "install", "-q", "--python", str(venv / "bin/python"), "-r",
                   str(requirements), "--no-index", "--find-links", str(wheels), "--offline",
                   "--no-deps", "--no-config"], env)  # fmt: skip

        elapsed = timed(both)
        settle(venv)
        return elapsed

    warm_cache, warm_uv = work / "warm-cache", work / "warm-uv"
    flowenv_hydrate(warm_cache)
    uv_install(warm_uv)
    results: dict[str, list[float]] = {k: [] for k in ("warm", "uv_warm", "cold", "uv_cold")}
    for i in range(args.repeat):
        results["warm"].append(flowenv_hydrate(warm_cache))
        results["uv_warm"].append(uv_install(warm_uv))
        cold, cold_uv = work / f"cold-{i}", work / f"cold-uv-{i}"
        results["cold"].append(flowenv_hydrate(cold))
        settle(cold)
        results["uv_cold"].append(uv_install(cold_uv))
        settle(cold_uv)

    # Growth: ten more warm hydrates into new prefixes.
    bookkeeping = ("prefixes/", "locks/", "uv/interpreter-v")
    before_all, before_data = disk_usage(warm_cache), disk_usage(warm_cache, skip=bookkeeping)
    for _ in range(10):
        flowenv_hydrate(warm_cache)
    growth_all = disk_usage(warm_cache) - before_all
    growth_data = disk_usage(warm_cache, skip=bookkeeping) - before_data

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    out: dict[str, object] = {
        "env": args.pypi or f"{args.count} wheels x {args.size} B",
        "repeat": args.repeat,
        "warm_hydrate_s": med(results["warm"]),
        "uv_warm_install_s": med(results["uv_warm"]),
        "warm_ratio": round(med(results["warm"]) / med(results["uv_warm"]), 2),
        "cold_hydrate_s": med(results["cold"]),
        "uv_cold_install_s": med(results["uv_cold"]),
        "cold_ratio": round(med(results["cold"]) / med(results["uv_cold"]), 2),
        "cache_growth_10_hydrates_bytes": growth_data,
        "cache_growth_10_hydrates_bytes_with_bookkeeping": growth_all,
        "samples": results,
    }
    out |= interpreter_from_store(work, args)
    return out


def interpreter_from_store(work: Path, args: argparse.Namespace) -> dict[str, object]:
    """Cold hydrates of one env: Python from the store vs a matching local interpreter."""
    found = other_interpreter()
    if found is None:
        return {"interpreter_from_store": "skipped: no CPython of another minor version here"}
    real, version = found
    here = work / "interpreter"
    here.mkdir()
    archive = build_archive(real, version, here / "builds")
    listing = write_download_list(archive, version, ["linux-64"], here / "builds/list.json")
    store = here / "store"
    env = clean_env(FLOWENV_CACHE_DIR=str(here / "sc"), UV_PYTHON_DOWNLOADS_JSON_URL=str(listing))
    sync(make_project(here, args, store, version), env)
    without = path_without(version, os.environ["PATH"])
    from_store: list[float] = []
    local: list[float] = []
    for i in range(args.repeat):
        for path, samples in ((without, from_store), (f"{real.parent}:{without}", local)):
            cache = here / f"cache-{len(samples)}-{i}-{path == without}"
            run_env = clean_env(
                FLOWENV_CACHE_DIR=str(cache),
                FLOWENV_STORE=str(store),
                PATH=path,
                XDG_DATA_HOME=str(here / "data"),
            )
            prefix = here / f"env-{i}-{path == without}"
            cmd = [sys.executable, "-m", "flowenv", "hydrate", "base", "--project", "bulk",
                   "--prefix", str(prefix)]  # fmt: skip
            samples.append(timed(lambda cmd=cmd, e=run_env: check(cmd, e, cwd=here)))  # type: ignore[misc]
            settle(prefix, cache)
    return {
        "interpreter": f"{version} (a test build running {real})",
        "cold_hydrate_python_from_store_s": round(statistics.median(from_store), 3),
        "cold_hydrate_local_python_s": round(statistics.median(local), 3),
    }


if __name__ == "__main__":
    main()
