"""Store benchmark, every contender side by side in one run against one moto S3 server process.

1. sync of N artifacts: ``flowenv sync`` vs ``aws s3 sync`` of the same files (target ratio <= 1.0)
2. no-op re-sync: wall time (target <= 1 s) and the LIST requests the server saw (constant)
3. hydrate of the env from a local-folder store (``file://``, the embedded default) vs
   ``uv venv`` + ``uv pip install --no-index --find-links DIR`` of the same wheels: both read
   local files, so this is the like-for-like comparison (target ratio <= 1.3)
4. hydrate of the same env from the S3 server, for information (it downloads every byte)

Each contender runs as a fresh process (start-up included, as a user sees it),
``--repeat`` times into fresh buckets / caches; medians are compared. The
machine is shared, so only the ratios mean anything.

Contenders alternate within each repetition so that drift of the shared
machine (or of the server's memory) hits them alike.

    python benchmarks/bench_store.py [--count 200] [--size 250000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.stores import (  # noqa: E402
    free_port,
    many_wheels_project,
    s3_target,
    stop,
    wait_listening,
)

BIN = Path(sys.executable).parent


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def check(args: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}... failed:\n{result.stderr}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=250_000, help="approximate bytes per wheel")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flowenv-bench-"))
    port = free_port()
    log_path = work / "moto.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    try:
        wait_listening(port, server, "moto_server")
        endpoint = f"http://127.0.0.1:{port}"
        results = run_all(work, endpoint, log_path, args.count, args.size, args.repeat)
    finally:
        stop(server)
        log.close()
    out = REPO / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_store.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


def run_all(
    work: Path, endpoint: str, log_path: Path, count: int, size: int, repeat: int
) -> dict[str, object]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_"))}
    first = s3_target(endpoint)
    project = many_wheels_project(work, count, size, first)
    lock_env = {**base_env, "UV_CACHE_DIR": str(work / "uv-lock-cache")}
    check([sys.executable, "-m", "flowenv", "-C", str(project), "lock"], lock_env)
    wheelhouse = work / "wheelhouse"
    total = sum(p.stat().st_size for p in wheelhouse.glob("*.whl"))
    aws_env = {
        **base_env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    flowenv_sync: list[float] = []
    aws_sync: list[float] = []
    stores = []
    for i in range(repeat):
        # A fresh bucket and cache each time: a first sync, as after `flowenv lock`.
        store = s3_target(endpoint)
        stores.append(store)
        env = {**base_env, **store.env, "FLOWENV_CACHE_DIR": str(work / f"cache-{i}")}
        cmd = [
            sys.executable,
            "-m",
            "flowenv",
            "-q",
            "-C",
            str(project),
            "sync",
            "--no-python",
            "--store",
            store.url,
        ]
        flowenv_sync.append(timed(lambda cmd=cmd, env=env: check(cmd, env)))  # type: ignore[misc]
        bucket = s3_target(endpoint).url.split("://")[1].split("/")[0]
        aws = [
            str(BIN / "aws"),
            "s3",
            "sync",
            str(wheelhouse),
            f"s3://{bucket}/wheels",
            "--endpoint-url",
            endpoint,
            "--only-show-errors",
        ]
        aws_sync.append(timed(lambda aws=aws: check(aws, aws_env)))  # type: ignore[misc]

    noop: list[float] = []
    lists: list[int] = []
    store = stores[0]
    env = {**base_env, **store.env, "FLOWENV_CACHE_DIR": str(work / "cache-0")}
    for _ in range(repeat):
        before = log_path.read_bytes().count(b"list-type=2")
        cmd = [
            sys.executable,
            "-m",
            "flowenv",
            "-q",
            "-C",
            str(project),
            "sync",
            "--no-python",
            "--store",
            store.url,
        ]
        noop.append(timed(lambda cmd=cmd, env=env: check(cmd, env)))  # type: ignore[misc]
        lists.append(log_path.read_bytes().count(b"list-type=2") - before)

    # A local-folder store holding the same env: what a hydrate from file:// reads.
    local_store = work / "local-store"
    check(
        [
            sys.executable,
            "-m",
            "flowenv",
            "-q",
            "-C",
            str(project),
            "sync",
            "--no-python",
            "--store",
            str(local_store),
        ],
        {**base_env, "FLOWENV_CACHE_DIR": str(work / "cache-local")},
    )

    hydrate_local: list[float] = []
    hydrate_s3: list[float] = []
    uv_install: list[float] = []
    packages = [f"bulk{i:04d}==1.0" for i in range(count)]

    def hydrate_cmd(store_url: str, prefix: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "flowenv",
            "hydrate",
            "base",
            "--store",
            store_url,
            "--project",
            "bulk",
            "--prefix",
            str(prefix),
        ]

    for i in range(repeat):
        # Fresh caches and prefixes each time: a first hydrate on a new executor.
        local_env = {**base_env, "FLOWENV_CACHE_DIR": str(work / f"exec-local-{i}")}
        cmd = hydrate_cmd(str(local_store), work / f"env-local-{i}")
        hydrate_local.append(timed(lambda cmd=cmd, e=local_env: check(cmd, e, cwd=work)))  # type: ignore[misc]

        uv_env = {**base_env, "UV_CACHE_DIR": str(work / f"uv-cache-{i}"), "UV_OFFLINE": "1"}
        venv = work / f"uv-env-{i}"

        def baseline(venv: Path = venv, uv_env: dict[str, str] = uv_env) -> None:
            check([str(BIN / "uv"), "venv", str(venv), "--python", "3.11", "--quiet"], uv_env)
            check(
                [
                    str(BIN / "uv"),
                    "pip",
                    "install",
                    "--python",
                    str(venv / "bin/python"),
                    "--no-index",
                    "--find-links",
                    str(wheelhouse),
                    "--no-deps",
                    "--quiet",
                    *packages,
                ],
                uv_env,
            )

        uv_install.append(timed(baseline))

        s3_env = {**base_env, **store.env, "FLOWENV_CACHE_DIR": str(work / f"exec-s3-{i}")}
        cmd = hydrate_cmd(store.url, work / f"env-s3-{i}")
        hydrate_s3.append(timed(lambda cmd=cmd, e=s3_env: check(cmd, e, cwd=work)))  # type: ignore[misc]

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {
        "artifacts": count,
        "bytes": total,
        "sync_flowenv_s": med(flowenv_sync),
        "sync_aws_cli_s": med(aws_sync),
        "sync_ratio": round(med(flowenv_sync) / med(aws_sync), 2),
        "noop_sync_s": med(noop),
        "noop_list_requests": lists,
        "hydrate_local_store_s": med(hydrate_local),
        "uv_pip_install_s": med(uv_install),
        "hydrate_ratio": round(med(hydrate_local) / med(uv_install), 2),
        "hydrate_s3_s": med(hydrate_s3),
        "runs": {
            "sync_flowenv": flowenv_sync,
            "sync_aws": aws_sync,
            "noop": noop,
            "hydrate_local": hydrate_local,
            "uv": uv_install,
            "hydrate_s3": hydrate_s3,
        },
        "id": uuid.uuid4().hex[:8],
    }


if __name__ == "__main__":
    main()
