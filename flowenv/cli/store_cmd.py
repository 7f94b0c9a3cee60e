"""``flowenv store ls|tag|gc``: look after a store over months; works without a flowenv.toml."""

from __future__ import annotations

import argparse
import json
from typing import Any

from flowenv.cli.common import add_platform_option


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "store",
        help="list, tag, unpin and garbage-collect the store",
        description="Look after the store: what it holds (ls), human names for env ids (tag), "
        "and removing what nothing uses any more (gc).",
    )
    actions = parser.add_subparsers(
        dest="store_command", metavar="ACTION", required=True, parser_class=type(parser)
    )

    ls = actions.add_parser(
        "ls",
        help="projects, envs, platforms, env ids, sizes, when synced, tags",
        description="Every project's envs in the store: where each alias points, its size, when "
        "and from which commit it was synced, its tags and pinned env ids.",
    )
    _store_options(ls)
    ls.add_argument("--project", metavar="NAME", help="only this project (default: all)")
    ls.add_argument("--json", action="store_true", help="print the listing as JSON")
    ls.set_defaults(run=run_ls)

    tag = _env_action(
        actions,
        "tag",
        help="name an env id (e.g. stable); hydrate/run --tag NAME build it",
        description="Record the env id ENV's alias points at now (or --env-id) under NAME, per "
        "platform. Tags are kept by gc. hydrate and run accept --tag NAME.",
        second=("name", "NAME", "tag name (letters, digits, '.', '_', '+', '-')"),
        platforms="every synced one",
    )
    tag.add_argument("--env-id", metavar="ID", help="tag this env id instead of the current one")
    tag.add_argument("--delete", action="store_true", help="remove the tag")
    tag.set_defaults(run=run_tag)

    unpin = _env_action(
        actions,
        "unpin",
        help="let gc collect an env id a deployed run pinned",
        description="Remove the pin the Metaflow extension recorded for ENV_ID when a run "
        "started or a flow was deployed (do it once that deployment is gone).",
        second=("env_id", "ENV_ID", "the pinned env id"),
        platforms="every pinned one",
    )
    unpin.set_defaults(run=run_unpin)

    gc = actions.add_parser(
        "gc",
        help="remove envs and artifacts nothing keeps (safe beside running syncs)",
        description="Remove manifests no alias, tag, pin or --keep names and that are older than "
        "the grace period, then every artifact no remaining manifest names. Safe to run while "
        "syncs and hydrates run.",
    )
    _store_options(gc)
    gc.add_argument("--dry-run", action="store_true", help="say what would go; delete nothing")
    gc.add_argument(
        "--grace",
        type=float,
        default=None,
        metavar="DAYS",
        help="keep everything written in the last DAYS days (default: 3)",
    )
    gc.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="ENV_ID",
        help="also keep this env id (repeatable), e.g. one a deployment outside Metaflow uses",
    )
    gc.add_argument("--json", action="store_true", help="print the report as JSON")
    gc.set_defaults(run=run_gc)


def _env_action(
    actions: Any,
    name: str,
    *,
    help: str,
    description: str,
    second: tuple[str, str, str],
    platforms: str,
) -> argparse.ArgumentParser:
    """An action on one env of one project: ENV, a second argument, -p, --store, --project."""
    parser: argparse.ArgumentParser = actions.add_parser(name, help=help, description=description)
    parser.add_argument("env", metavar="ENV", help="environment name")
    dest, metavar, text = second
    parser.add_argument(dest, metavar=metavar, help=text)
    add_platform_option(parser, f"only this platform (repeatable; default: {platforms})")
    _store_options(parser)
    parser.add_argument("--project", metavar="NAME", help="project (default: the configuration's)")
    return parser


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", metavar="URL", help="store URL (default: $FLOWENV_STORE, else project.store)"
    )


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    """(configuration or None, store)."""
    from pathlib import Path

    from flowenv.cli.hydrate_cmd import optional_config
    from flowenv.store import open_store, store_url_for
    from flowenv.sync import store_for_config

    config = optional_config(args)
    if config is not None:
        return config, store_for_config(config, args.store)
    return None, open_store(store_url_for(args.store, None, Path.cwd()))


def _project(args: argparse.Namespace, config: Any) -> str:
    import os

    from flowenv.errors import UsageError
    from flowenv.hydrate import PROJECT_ENV

    name = args.project or (config.project.name if config else None) or os.environ.get(PROJECT_ENV)
    if not name:
        raise UsageError(
            f"no project: pass --project NAME or set {PROJECT_ENV} (or run inside the project)"
        )
    return str(name)


def run_ls(args: argparse.Namespace) -> int:
    from flowenv.cli.sync_cmd import human_bytes
    from flowenv.store.catalog import catalog

    _, store = _open(args)
    found = catalog(store, args.project)
    if args.json:
        print(json.dumps(found.to_dict(), indent=1, sort_keys=True))
        return 0
    print(f"{found.store}: {found.stored} env ids stored, {found.unreferenced} unreferenced")
    project = None
    for env in found.envs:
        if env.project != project:
            project = env.project
            print(f"{project}")
        size = "" if env.size is None else human_bytes(env.size)
        when = env.synced_at or ""
        commit = (env.commit or "")[:12] + (
            "+dirty" if (env.commit or "").endswith("+dirty") else ""
        )
        print(
            f"  {env.env} · {env.platform}  {env.env_id or '-'}  {size}  {when}  {commit}".rstrip()
        )
        for name, env_id in env.tags:
            same = " (current)" if env_id == env.env_id else ""
            print(f"      tag {name}: {env_id}{same}")
        if env.pins:
            print(f"      pinned: {', '.join(env.pins)}")
        for env_id in env.missing:
            print(f"      missing from the store: {env_id}")
    return 0


def run_tag(args: argparse.Namespace) -> int:
    from flowenv.store.catalog import tag

    config, store = _open(args)
    project = _project(args, config)
    done = tag(
        store,
        project,
        args.env,
        args.name,
        args.platforms,
        env_id=args.env_id,
        delete=args.delete,
    )
    for item in done:
        print(f"{item.action} {args.env} · {item.platform}  {item.env_id}  as {args.name}")
    return 0


def run_unpin(args: argparse.Namespace) -> int:
    from flowenv.store.catalog import unpin

    config, store = _open(args)
    for platform in unpin(store, _project(args, config), args.env, args.env_id, args.platforms):
        print(f"unpinned {args.env} · {platform}  {args.env_id}")
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from flowenv.cli.sync_cmd import human_bytes
    from flowenv.errors import UsageError
    from flowenv.store.gc import DEFAULT_GRACE_DAYS, gc
    from flowenv.store.layout import check_env_id

    grace = DEFAULT_GRACE_DAYS if args.grace is None else args.grace
    if grace < 0:
        raise UsageError("--grace must not be negative")
    for env_id in args.keep:
        check_env_id(env_id)
    _, store = _open(args)
    report = gc(store, grace_seconds=grace * 86400, keep=args.keep, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, sort_keys=True))
        return 0
    verb = "would remove" if report.dry_run else "removed"
    if not args.quiet:
        for env in report.envs_removed:
            print(f"{verb} env {env}")
    print(
        f"{verb} {len(report.envs_removed)} envs and {report.artifacts_removed} artifacts "
        f"({human_bytes(report.bytes_removed)}) from {report.store}; kept {report.envs_kept} "
        f"envs and {report.artifacts_kept} artifacts ({report.roots} roots, grace {grace:g} days)"
    )
    return 0
