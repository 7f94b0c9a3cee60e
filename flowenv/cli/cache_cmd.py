"""``flowenv cache info|prune``: what the local cache holds, and dropping what nothing uses."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "cache",
        help="show or prune the local artifact cache",
        description="The cache ($FLOWENV_CACHE_DIR) holds verified artifacts, uv's cache and the "
        "envs hydrate built. `info` says what it holds; `prune` removes what no hydrated env "
        "uses any more.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="what the cache holds and what nothing uses")
    info.add_argument("--json", action="store_true", help="print the figures as JSON")
    info.set_defaults(run=run_info)
    prune = actions.add_parser("prune", help="remove what no hydrated env uses")
    prune.add_argument(
        "--dry-run", action="store_true", help="say what would be removed; remove nothing"
    )
    prune.set_defaults(run=run_prune)


def run_info(args: argparse.Namespace) -> int:
    from flowenv.cli.sync_cmd import human_bytes
    from flowenv.store.cache import ArtifactCache
    from flowenv.store.usage import cache_info

    info = cache_info(ArtifactCache())
    if args.json:
        print(json.dumps(info.to_dict(), indent=1, sort_keys=True))
        return 0
    print(f"cache      {info.root}  ({human_bytes(info.total_bytes)})")
    print(f"artifacts  {info.artifacts} ({human_bytes(info.artifact_bytes)})")
    print(f"unused     {info.unused_artifacts} ({human_bytes(info.unused_bytes)})")
    print(f"uv cache   {human_bytes(info.uv_bytes)}")
    print(
        f"envs       {len(info.envs)}"
        + (f" ({info.stale_records} gone)" if info.stale_records else "")
    )
    for prefix in info.envs:
        print(f"  {prefix}")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from flowenv.cli.sync_cmd import human_bytes
    from flowenv.store.cache import ArtifactCache
    from flowenv.store.usage import prune

    report = prune(ArtifactCache(), dry_run=args.dry_run)
    verb = "would remove" if report.dry_run else "removed"
    print(
        f"{verb} {report.artifacts} unused artifacts ({human_bytes(report.bytes)}) and "
        f"{report.records} records of envs since removed"
    )
    return 0
