"""Benchmark: locking an example conda env for two platforms, and flowenv's overhead over rattler.

Builds the tests' local channel (plus ``--filler`` synthetic packages so that
repodata is not trivially small), then times, ``--repeat`` times each:

* ``flowenv``: ``lock_conda_env`` for the seeds' ScikitFlow env (python 3.9.13,
  scikit-learn 1.3.1) on linux-64 and osx-arm64, i.e. both solves, the
  conda-lock.yml rendering, everything but the file write;
* ``rattler``: a bare py-rattler solve of the same specs, same channel,
  platforms and virtual packages, with a fresh gateway as flowenv uses.

Prints the medians and the ratio (target: <= 1.2). Run with:

    /work/venv/bin/python benchmarks/bench_conda.py [--repeat 20] [--filler 400]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.conda_channel import MAIN_PACKAGES, CondaSpec, build_channel

PLATFORMS = ("linux-64", "osx-arm64")


def _filler(count: int) -> tuple[CondaSpec, ...]:
    # Unrelated packages in several versions: repodata the solver must read past.
    return tuple(
        CondaSpec(name=f"filler{i}", version=f"1.{v}", subdir=platform, depends=("python >=3.9",))
        for i in range(count)
        for v in range(3)
        for platform in PLATFORMS
    )


def _time(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up: first repodata read, imports
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--filler", type=int, default=400, help="synthetic packages in the channel")
    args = parser.parse_args()

    import rattler

    from flowenv.config.load import load_config
    from flowenv.resolution import LockOptions
    from flowenv.resolution.conda import conda_specs, lock_conda_env, virtual_packages
    from flowenv.spec import build_environments

    with tempfile.TemporaryDirectory(prefix="flowenv-bench-") as tmp:
        root = Path(tmp)
        channel = build_channel((*MAIN_PACKAGES, *_filler(args.filler)), root / "channel")
        project = root / "project"
        project.mkdir()
        (project / "flowenv.toml").write_text(
            "[project]\n"
            'name = "bench"\n'
            f'platforms = ["{PLATFORMS[0]}", "{PLATFORMS[1]}"]\n'
            f'conda.channels = ["{channel.as_uri()}"]\n\n'
            "[base]\n"
            'python = "3.9.13"\n'
            'conda.packages = { "scikit-learn" = "1.3.1" }\n'
        )
        config = load_config(project / "flowenv.toml")
        env = build_environments(config).get("base")
        options = LockOptions(upgrade=True)

        def flowenv_lock() -> object:
            return lock_conda_env(config, env, PLATFORMS, options)

        # No target tables here: every platform solves the same specs.
        specs = list(conda_specs(env, PLATFORMS[0]))

        async def bare() -> object:
            gateway = rattler.Gateway()
            return await asyncio.gather(
                *(
                    rattler.solve(
                        sources=[channel.as_uri()],
                        specs=specs,
                        gateway=gateway,
                        platforms=[platform, "noarch"],
                        virtual_packages=[
                            rattler.GenericVirtualPackage(
                                rattler.PackageName(n), rattler.Version(v), rattler.BuildString(b)
                            )
                            for n, v, b in virtual_packages(platform, ())
                        ],
                        channel_relations="disabled",
                    )
                    for platform in PLATFORMS
                )
            )

        def rattler_solve() -> object:
            return asyncio.run(bare())

        ours = statistics.median(_time(flowenv_lock, args.repeat))
        theirs = statistics.median(_time(rattler_solve, args.repeat))
    print(f"channel: {len(MAIN_PACKAGES) + args.filler * 3 * len(PLATFORMS)} packages")
    print(f"flowenv lock (2 platforms):  median {ours * 1000:8.1f} ms")
    print(f"bare rattler solve (same):   median {theirs * 1000:8.1f} ms")
    print(f"overhead ratio:              {ours / theirs:8.2f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
