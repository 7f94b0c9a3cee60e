"""What a store holds, by project and env (``flowenv store ls``), and the roots people add to it.

Everything here reads only keys under ``projects/`` and ``envs/`` (and the
small files there), never the artifacts: its cost grows with the number of
envs, not with the number or size of artifacts.

* tags (``flowenv store tag ENV NAME``): an env id under a human name, per
  project, env and platform, like Metaflow's aliases; ``hydrate``/``run``
  accept ``--tag``; gc keeps them.
* pins: the env id a deployed run uses, recorded by the Metaflow extension
  when a run starts or a flow is deployed; gc keeps them until unpinned.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from flowenv.errors import StoreError, UsageError
from flowenv.store.layout import (
    MANIFEST_NAME,
    RootKey,
    alias_key,
    check_env_id,
    check_segment,
    manifest_key,
    parse_env_key,
    parse_root,
    parse_root_key,
    pin_key,
    render_root,
    tag_key,
)
from flowenv.store.store import Store


@attrs.frozen(kw_only=True)
class EnvRecord:
    """One env x platform of one project: where its alias points, and its tags and pins."""

    project: str
    env: str
    platform: str
    #: Where ``current`` points (None: only tags or pins, no alias).
    env_id: str | None
    size: int | None
    synced_at: str | None
    commit: str | None
    #: tag name -> env id
    tags: tuple[tuple[str, str], ...]
    pins: tuple[str, ...]
    #: env ids named here whose manifest is not in the store.
    missing: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["tags"] = dict(self.tags)
        data["pins"] = list(self.pins)
        data["missing"] = list(self.missing)
        return data


@attrs.frozen(kw_only=True)
class Catalog:
    store: str
    envs: tuple[EnvRecord, ...]
    #: Every env id x platform with a manifest, and those no alias, tag or pin names.
    stored: int
    unreferenced: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "envs": [e.to_dict() for e in self.envs],
            "stored": self.stored,
            "unreferenced": self.unreferenced,
        }


def catalog(store: Store, project: str | None = None) -> Catalog:
    """Every project's (or ``project``'s) envs, from one listing of roots and manifests."""
    prefix = f"projects/{check_segment(project, 'project')}" if project else "projects"
    roots = {
        key: root for key in store.list_entries(prefix) if (root := parse_root_key(key)) is not None
    }
    manifests = {
        (parsed[0], parsed[1])
        for key in store.list_entries("envs")
        if (parsed := parse_env_key(key)) is not None and parsed[2] == MANIFEST_NAME
    }
    records = _read_records(store, roots)
    grouped: dict[tuple[str, str, str], list[tuple[RootKey, dict[str, Any]]]] = defaultdict(list)
    for key, root in roots.items():
        if key in records:
            grouped[(root.project, root.env, root.platform)].append((root, records[key]))
    envs = []
    referenced: set[tuple[str, str]] = set()
    for (proj, env, platform), entries in sorted(grouped.items()):
        current = next((rec for root, rec in entries if root.kind == "current"), {})
        ids = [rec["env_id"] for _, rec in entries]
        referenced.update((i, platform) for i in ids)
        envs.append(
            EnvRecord(
                project=proj,
                env=env,
                platform=platform,
                env_id=current.get("env_id"),
                size=_int_or_none(current.get("size")),
                synced_at=_str_or_none(current.get("synced_at")),
                commit=_str_or_none(current.get("commit")),
                tags=tuple(
                    sorted((r.name, rec["env_id"]) for r, rec in entries if r.kind == "tag")
                ),
                pins=tuple(sorted(r.name for r, _ in entries if r.kind == "pin")),
                missing=tuple(sorted({i for i in ids if (i, platform) not in manifests})),
            )
        )
    return Catalog(
        store=store.url,
        envs=tuple(envs),
        stored=len(manifests),
        unreferenced=len(manifests - referenced) if project is None else 0,
    )


def _read_records(store: Store, roots: Mapping[str, RootKey]) -> dict[str, dict[str, Any]]:
    """Each root's record; a pin's env id is its key, so pins cost no read."""
    out = {k: {"env_id": r.name} for k, r in roots.items() if r.kind == "pin"}
    for key, data in store.read_many(k for k, r in roots.items() if r.kind != "pin").items():
        if data is not None:
            out[key] = parse_root(data, f"{store.url}/{key}")
    return out


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


# -- tags -----------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Tagged:
    platform: str
    env_id: str
    #: "tagged" | "untagged"
    action: str


def tag(
    store: Store,
    project: str,
    env: str,
    name: str,
    platforms: Iterable[str],
    *,
    env_id: str | None = None,
    delete: bool = False,
) -> list[Tagged]:
    """Point tag ``name`` of ``env`` at ``env_id`` (default: where ``current`` points) per platform.

    ``platforms`` empty means every platform the store has an alias (or, to delete, the tag) for.
    """
    if env_id is not None:
        check_env_id(env_id)
    check_segment(env, "environment")
    wanted = list(platforms) or _platforms_of(store, project, env, name if delete else None)
    if not wanted:
        raise StoreError(
            f"{store.url}: no env '{env}' in project '{project}' (run `flowenv sync` first)"
        )
    keys = {p: tag_key(project, env, p, name) for p in wanted}
    if delete:
        existing = store.read_many(keys.values())
        gone = [p for p in wanted if existing[keys[p]] is None]
        if gone:
            raise UsageError(f"no tag '{name}' of {env} for {', '.join(gone)}")
        store.delete_many(keys.values())
        return [
            Tagged(
                platform=p,
                env_id=parse_root(existing[keys[p]] or b"", keys[p])["env_id"],
                action="untagged",
            )
            for p in wanted
        ]
    targets: dict[str, dict[str, Any]] = {}
    if env_id is None:
        aliases = {p: alias_key(project, env, p) for p in wanted}
        read = store.read_many(aliases.values())
        for platform, key in aliases.items():
            data = read[key]
            if data is None:
                raise StoreError(
                    f"{store.url}: no env '{env}' for {platform} in project '{project}' "
                    "(run `flowenv sync` first, or pass --env-id)"
                )
            targets[platform] = parse_root(data, f"{store.url}/{key}")
    else:
        targets = {p: {"env_id": env_id} for p in wanted}
    manifests = store.read_many(manifest_key(t["env_id"], p) for p, t in targets.items())
    for platform, target in targets.items():
        if manifests[manifest_key(target["env_id"], platform)] is None:
            raise StoreError(
                f"{store.url}: env id {target['env_id']} for {platform} is not in the store; "
                "nothing was tagged"
            )
    for platform, target in targets.items():
        store.write(
            keys[platform],
            render_root(target["env_id"], env=env, size=target.get("size"), tagged_at=_now()),
        )
    return [Tagged(platform=p, env_id=t["env_id"], action="tagged") for p, t in targets.items()]


def _platforms_of(store: Store, project: str, env: str, tag_name: str | None) -> list[str]:
    """Platforms with an alias of ``env`` (or, given ``tag_name``, with that tag)."""
    prefix = alias_key(project, env, "x").rsplit("/", 2)[0]
    found = set()
    for key in store.list_entries(prefix):
        root = parse_root_key(key)
        if root is None:
            continue
        if (tag_name is None and root.kind == "current") or (
            root.kind == "tag" and root.name == tag_name
        ):
            found.add(root.platform)
    return sorted(found)


# -- pins -----------------------------------------------------------------------------
def pin(store: Store, project: str, env: str, platform: str, env_id: str, **details: Any) -> None:
    """Record that a deployed run uses ``env_id``: gc keeps it until :func:`unpin`."""
    store.write(pin_key(project, env, platform, env_id), render_root(env_id, env=env, **details))


def unpin(store: Store, project: str, env: str, env_id: str, platforms: Iterable[str]) -> list[str]:
    """Remove the pins of ``env_id`` (on ``platforms``, default all); the platforms unpinned."""
    check_env_id(env_id)
    prefix = alias_key(project, env, "x").rsplit("/", 2)[0]
    wanted = set(platforms)
    pinned = {
        root.platform: key
        for key in store.list_entries(prefix)
        if (root := parse_root_key(key)) is not None
        and root.kind == "pin"
        and root.name == env_id
        and (not wanted or root.platform in wanted)
    }
    if not pinned:
        raise UsageError(f"no pin of {env_id} for env '{env}' in project '{project}'")
    store.delete_many(pinned.values())
    return sorted(pinned)
