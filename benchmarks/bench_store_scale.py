"""A company-wide store, simulated: how ``store ls``, ``store gc --dry-run`` and no-op sync grow.

A store is generated directly (small objects, the real layout and real
manifests): ``--envs`` env ids over ``--artifacts`` artifacts, each env
naming ``--per-env`` of them; one env id in ten is where an alias points
(``--projects`` projects), one in fifty is tagged, one in twenty pinned, the
rest is history that gc would collect. A real project (20 wheels, locked by
uv) is synced into it, then each command runs as a fresh process and is
timed, against a local folder and against a moto S3 server process (whose
log gives the number of requests each command made). Run it at two sizes to
see the growth:

    python benchmarks/bench_store_scale.py --envs 1000 --artifacts 10000
    python benchmarks/bench_store_scale.py --envs 10000 --artifacts 100000

The machine is shared and moto is a single Python process: compare sizes
within one machine, not absolute times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flowenv.store import Store, open_store  # noqa: E402
from flowenv.store.layout import (  # noqa: E402
    Artifact,
    Manifest,
    alias_key,
    manifest_key,
    pin_key,
    render_root,
    tag_key,
)
from tests.support.stores import (  # noqa: E402
    StoreTarget,
    free_port,
    many_wheels_project,
    s3_target,
    stop,
    wait_listening,
)

BIN = Path(sys.executable).parent


def generate(store: Store, envs: int, artifacts: int, per_env: int, projects: int) -> None:
    """Write the simulated store: artifacts, manifests, and aliases, tags and pins over them."""
    rng = random.Random(0)
    pool = []
    objects: dict[str, bytes] = {}
    for i in range(artifacts):
        data = f"artifact {i}\n".encode()
        artifact = Artifact(
            sha256=hashlib.sha256(data).hexdigest(),
            filename=f"pkg{i}-1.0-py3-none-any.whl",
            manager="pip",
            name=f"pkg{i}",
            version="1.0",
            size=len(data),
        )
        pool.append(artifact)
        objects[artifact.key] = data
    for i in range(envs):
        manifest = Manifest(
            kind="pypi",
            platform="linux-64",
            python="3.11",
            lock_name="pylock.linux-64.toml",
            artifacts=tuple(rng.sample(pool, per_env)),
        )
        env_id = manifest.env_id
        objects[
            manifest_key(env_id, "linux-64").replace("manifest.json", "pylock.linux-64.toml")
        ] = b"# lock\n"
        objects[manifest_key(env_id, "linux-64")] = manifest.to_json().encode()
        project, env = f"team{i % projects}", f"env{(i // projects) % 10}"
        if i % 10 == 0:
            objects[alias_key(project, env, "linux-64")] = render_root(env_id, env=env)
        if i % 50 == 0:
            objects[tag_key(project, env, "linux-64", f"t{i}")] = render_root(env_id, env=env)
        if i % 20 == 0:
            objects[pin_key(project, env, "linux-64", env_id)] = render_root(env_id, env=env)
    if store.is_local:
        for key, data in objects.items():
            path = Path(store.path(key))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    else:
        from flowenv._threads import in_threads

        # Through Store, so that any S3 client (flowenv's own or s3fs) can generate the store.
        writes = [lambda k=k, v=v: store.write(k, v) for k, v in objects.items()]
        in_threads(writes, 32)


def requests_in(log: Path | None) -> int:
    return log.read_bytes().count(b'HTTP/1.1" ') if log else 0


def timed(args: list[str], env: dict[str, str], cwd: Path, log: Path | None) -> tuple[float, int]:
    before = requests_in(log)
    start = time.perf_counter()
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[3:6])} failed:\n{result.stderr}")
    time.sleep(0.2)  # the server's log line of the last request
    return elapsed, requests_in(log) - before


def measure(
    target: StoreTarget, project: Path, work: Path, log: Path | None, repeat: int
) -> dict[str, object]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_"))},
        **target.env,
        "FLOWENV_CACHE_DIR": str(work / "cache"),
    }
    flowenv = [sys.executable, "-m", "flowenv", "-q"]
    commands = {
        "store_ls": [*flowenv, "store", "ls", "--store", target.url, "--json"],
        "gc_dry_run": [*flowenv, "store", "gc", "--dry-run", "--grace", "0", "--store", target.url],
        "noop_sync": [*flowenv, "-C", str(project), "sync", "--no-python", "--store", target.url],
    }
    timed(commands["noop_sync"], env, work, log)  # the first sync uploads the project's env
    out: dict[str, object] = {}
    for name, args in commands.items():
        runs = [timed(args, env, work, log) for _ in range(repeat)]
        out[name] = {
            "seconds": round(statistics.median(t for t, _ in runs), 3),
            "requests": runs[-1][1] if log else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", type=int, default=1000)
    parser.add_argument("--artifacts", type=int, default=10000)
    parser.add_argument("--per-env", type=int, default=20)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-s3", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flowenv-scale-"))
    results: dict[str, object] = {
        "envs": args.envs,
        "artifacts": args.artifacts,
        "note": "fresh processes, medians; shared, loaded machine",
    }
    try:
        local = StoreTarget(kind="file", url=str(work / "store"))
        project = many_wheels_project(work / "p", 20, 2000, local)
        subprocess.run(
            [sys.executable, "-m", "flowenv", "-q", "-C", str(project), "lock"], check=True
        )
        start = time.perf_counter()
        generate(open_store(local.url), args.envs, args.artifacts, args.per_env, args.projects)
        results["generate_local_s"] = round(time.perf_counter() - start, 1)
        results["local"] = measure(local, project, work, None, args.repeat)
        if not args.skip_s3:
            port = free_port()
            log_path = work / "moto.log"
            log = log_path.open("wb")
            server = subprocess.Popen(
                [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=log,
            )
            try:
                wait_listening(port, server, "moto_server")
                target = s3_target(f"http://127.0.0.1:{port}")
                start = time.perf_counter()
                generate(
                    open_store(target.url, target.options),
                    args.envs,
                    args.artifacts,
                    args.per_env,
                    args.projects,
                )
                results["generate_s3_s"] = round(time.perf_counter() - start, 1)
                results["s3"] = measure(target, project, work, log_path, args.repeat)
            finally:
                stop(server)
                log.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = REPO / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    name = f"bench_store_scale_{args.envs}.json"
    (out / name).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
