"""``flowenv store gc``: remove what no root keeps, without ever breaking a sync or a deployed flow.

Roots are the keys under ``projects/`` (each env's ``current`` alias, its
tags and the pins deployed runs recorded), the env ids the user lists, and
anything younger than the grace period. A live manifest keeps every artifact
it names; everything else older than the grace period goes, manifests first
(so no manifest ever names a deleted artifact), then the files beside them,
then artifacts.

The protocol with concurrent syncs (see also :mod:`flowenv.sync`):

1. gc writes ``gc/running/<run>`` before it lists anything, and replaces it
   with ``gc/done/<run>`` when its last delete has returned.
2. gc lists and reads twice: once to plan, and again (roots and manifests
   only) just before deleting; whatever became reachable meanwhile is spared.
3. A sync lists ``gc/`` before it reads the store and again after its last
   write. If a gc was running at either moment or finished in between, the
   sync waits until no gc runs and repeats its pass with a full check: an
   artifact it found present (and skipped) but a gc then deleted is uploaded
   again, a manifest written again. Only a pass no gc overlapped ends a sync.

So a manifest a sync writes either existed when gc re-listed (its artifacts
were spared) or was written while gc was marked running (the sync repeats).
The grace period is what keeps a running sync from needing that repeat at
all: its fresh uploads are never candidates. Hydrate reads only rooted envs
(an alias, a tag or a pinned id), and gc never deletes those.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping

import attrs

from flowenv.store.layout import (
    GC_PREFIX,
    MANIFEST_NAME,
    Manifest,
    parse_alias,
    parse_artifact_key,
    parse_env_key,
    parse_root_key,
)
from flowenv.store.store import Entry, Store

DEFAULT_GRACE_DAYS = 3.0
RUNNING = f"{GC_PREFIX}/running/"
DONE = f"{GC_PREFIX}/done/"
#: A ``gc/running`` marker older than this belongs to a gc that died; syncs stop waiting for it.
STALE_RUNNING = 3600.0
#: ``gc/done`` markers are kept this long (a sync only compares two listings seconds apart).
KEEP_DONE = 86400.0


@attrs.frozen(kw_only=True)
class GcReport:
    """What a gc removed (or, dry run, would remove) and what it kept."""

    store: str
    dry_run: bool
    roots: int
    envs_kept: int
    envs_removed: tuple[str, ...]  # "<env-id>/<platform>"
    artifacts_kept: int
    artifacts_removed: int
    bytes_removed: int
    objects_removed: int

    def to_dict(self) -> dict[str, object]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class _Plan:
    live_envs: frozenset[tuple[str, str]]
    live_artifacts: frozenset[str]
    env_keys: tuple[str, ...]  # manifests first
    artifact_keys: tuple[str, ...]
    removed_envs: tuple[str, ...]
    bytes: int


def gc(
    store: Store,
    *,
    grace_seconds: float = DEFAULT_GRACE_DAYS * 86400,
    keep: Iterable[str] = (),
    dry_run: bool = False,
    now: float | None = None,
) -> GcReport:
    """Collect ``store``; ``keep`` lists env ids to keep on every platform (besides the roots)."""
    kept_ids = frozenset(keep)
    run = f"{int(time.time())}-{uuid.uuid4().hex[:8]}"
    if not dry_run:
        store.write(RUNNING + run, b"{}\n")
    try:
        entries = store.list_entries()
        cutoff = (time.time() if now is None else now) - grace_seconds
        roots = _read_roots(store, entries)
        manifests = _read_manifests(store, entries, roots, kept_ids, cutoff)
        plan = _plan(entries, roots, manifests, kept_ids, cutoff, _interpreters(store, entries))
        if not dry_run and (plan.env_keys or plan.artifact_keys):
            plan = _recheck(store, entries, plan, manifests, kept_ids, cutoff)
            store.delete_many(k for k in plan.env_keys if k.endswith("/" + MANIFEST_NAME))
            store.delete_many(k for k in plan.env_keys if not k.endswith("/" + MANIFEST_NAME))
            store.delete_many(plan.artifact_keys)
    finally:
        if not dry_run:
            store.write(DONE + run, b"{}\n")
            store.delete_many([RUNNING + run])
    if not dry_run:
        _prune_done(store, entries)
    artifacts = sum(1 for k in entries if parse_artifact_key(k) is not None)
    return GcReport(
        store=store.url,
        dry_run=dry_run,
        roots=len(roots),
        envs_kept=len(plan.live_envs),
        envs_removed=plan.removed_envs,
        artifacts_kept=artifacts - len(plan.artifact_keys),
        artifacts_removed=len(plan.artifact_keys),
        bytes_removed=plan.bytes,
        objects_removed=len(plan.env_keys) + len(plan.artifact_keys),
    )


def _read_roots(store: Store, entries: Mapping[str, Entry]) -> dict[str, tuple[str, str]]:
    """Root key -> (env id, platform) for every alias, tag and pin in ``entries``."""
    parsed = {key: root for key in entries if (root := parse_root_key(key)) is not None}
    # A pin names its env id in its key; aliases and tags hold it.
    out = {k: (r.name, r.platform) for k, r in parsed.items() if r.kind == "pin"}
    wanted = [k for k, r in parsed.items() if r.kind != "pin"]
    for key, data in store.read_many(wanted).items():
        if data is None:
            continue  # removed since the listing: no longer a root
        out[key] = (parse_alias(data, f"{store.url}/{key}"), parsed[key].platform)
    return out


def _manifest_keys(entries: Mapping[str, Entry]) -> dict[tuple[str, str], str]:
    return {
        (parsed[0], parsed[1]): key
        for key in entries
        if (parsed := parse_env_key(key)) is not None and parsed[2] == MANIFEST_NAME
    }


def _is_live(
    env: tuple[str, str],
    key: str,
    entries: Mapping[str, Entry],
    rooted: set[tuple[str, str]],
    keep: frozenset[str],
    cutoff: float,
) -> bool:
    return env in rooted or env[0] in keep or entries[key].mtime > cutoff


def _read_manifests(
    store: Store,
    entries: Mapping[str, Entry],
    roots: Mapping[str, tuple[str, str]],
    keep: frozenset[str],
    cutoff: float,
) -> dict[tuple[str, str], Manifest]:
    """Every live manifest, parsed; one that cannot be read stops the gc (nothing is deleted)."""
    rooted = set(roots.values())
    live = {
        env: key
        for env, key in _manifest_keys(entries).items()
        if _is_live(env, key, entries, rooted, keep, cutoff)
    }
    return _parse_manifests(store, live)


def _parse_manifests(
    store: Store, keys: Mapping[tuple[str, str], str]
) -> dict[tuple[str, str], Manifest]:
    data = store.read_many(keys.values())
    out: dict[tuple[str, str], Manifest] = {}
    for env, key in keys.items():
        raw = data.get(key)
        if raw is None:
            continue  # deleted meanwhile (by another gc): keeps nothing
        out[env] = Manifest.from_json(raw, f"{store.url}/{key}", expected_env_id=env[0])
    return out


def _plan(
    entries: Mapping[str, Entry],
    roots: Mapping[str, tuple[str, str]],
    manifests: Mapping[tuple[str, str], Manifest],
    keep: frozenset[str],
    cutoff: float,
    interpreters: frozenset[str] = frozenset(),
) -> _Plan:
    """Pure: which keys go, given a listing, the roots, the live manifests and the
    archives of the stored CPython builds (all kept)."""
    rooted = set(roots.values())
    live_artifacts = interpreters | {a.key for m in manifests.values() for a in m.artifacts}
    by_env: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in entries:
        parsed = parse_env_key(key)
        if parsed is not None:
            by_env[(parsed[0], parsed[1])].append(key)
    live_envs: set[tuple[str, str]] = set()
    env_keys: list[str] = []
    removed: list[str] = []
    size = 0
    for env, keys in sorted(by_env.items()):
        newest = max(entries[k].mtime for k in keys)
        if env in manifests or env in rooted or env[0] in keep or newest > cutoff:
            live_envs.add(env)
            continue
        removed.append(f"{env[0]}/{env[1]}")
        # The manifest goes first: an env dir without one is invisible to hydrate and sync.
        env_keys += sorted(keys, key=lambda k: not k.endswith("/" + MANIFEST_NAME))
        size += sum(entries[k].size for k in keys)
    artifact_keys = []
    for key, entry in entries.items():
        old = entry.mtime <= cutoff
        if old and key not in live_artifacts and parse_artifact_key(key) is not None:
            artifact_keys.append(key)
            size += entry.size
    return _Plan(
        live_envs=frozenset(live_envs),
        live_artifacts=live_artifacts,
        env_keys=tuple(env_keys),
        artifact_keys=tuple(sorted(artifact_keys)),
        removed_envs=tuple(removed),
        bytes=size,
    )


def _recheck(
    store: Store,
    before: Mapping[str, Entry],
    plan: _Plan,
    manifests: Mapping[tuple[str, str], Manifest],
    keep: frozenset[str],
    cutoff: float,
) -> _Plan:
    """Re-list roots and manifests; spare whatever a sync made reachable since the plan."""
    # A sync may have stored a CPython build since the plan: its archive is kept too.
    interpreters = _interpreters(store, store.list_entries("interpreters"))
    fresh = {**store.list_entries("projects"), **store.list_entries("envs")}
    changed = {k: e for k, e in fresh.items() if before.get(k) != e}
    if not changed and not interpreters & set(plan.artifact_keys):
        return plan
    roots = _read_roots(store, changed)
    rooted = set(roots.values())
    extra = {
        env: key
        for env, key in _manifest_keys(fresh).items()
        if env not in manifests
        and (env in rooted or key in changed or _is_live(env, key, fresh, rooted, keep, cutoff))
    }
    spared_artifacts = interpreters | {
        a.key for m in _parse_manifests(store, extra).values() for a in m.artifacts
    }
    # An env with any key rewritten since the plan (a sync re-published it) is no longer old.
    spared_envs = rooted | set(extra) | {_env_of(k) for k in changed}
    env_keys = tuple(k for k in plan.env_keys if _env_of(k) not in spared_envs)
    artifact_keys = tuple(k for k in plan.artifact_keys if k not in spared_artifacts)
    removed = tuple(r for r in plan.removed_envs if tuple(r.split("/")) not in spared_envs)
    size = sum(before[k].size for k in env_keys + artifact_keys)
    return attrs.evolve(
        plan, env_keys=env_keys, artifact_keys=artifact_keys, removed_envs=removed, bytes=size
    )


def _interpreters(store: Store, entries: Mapping[str, Entry]) -> frozenset[str]:
    # Imported here: the interpreter records are flowenv.interpreters' to read, and that
    # module builds on the store layer this one belongs to.
    from flowenv.interpreters import interpreter_archives

    return interpreter_archives(store, entries)


def _env_of(key: str) -> tuple[str, str]:
    parsed = parse_env_key(key)
    return (parsed[0], parsed[1]) if parsed else ("", "")


def _prune_done(store: Store, entries: Mapping[str, Entry]) -> None:
    newest = max((e.mtime for e in entries.values()), default=0.0)
    old = [k for k, e in entries.items() if k.startswith(DONE) and e.mtime < newest - KEEP_DONE]
    store.delete_many(old)


# -- the sync side ---------------------------------------------------------------------
def gc_markers(store: Store) -> dict[str, Entry]:
    """The ``gc/`` keys now: what a sync compares before and after its writes."""
    return store.list_entries(GC_PREFIX)


def _running(markers: Mapping[str, Entry]) -> list[str]:
    """Running markers of live gcs (one older than :data:`STALE_RUNNING` is of a gc that died)."""
    now = time.time()
    return [
        k for k, e in markers.items() if k.startswith(RUNNING) and now - e.mtime < STALE_RUNNING
    ]


def gc_overlapped(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> bool:
    """True if a gc ran at either listing or finished between them."""
    return bool(_running(before) or _running(after)) or any(
        k.startswith(DONE) and k not in before for k in after
    )


def wait_until_no_gc(store: Store, poll: float = 0.2) -> dict[str, Entry]:
    """List ``gc/`` until no live gc is marked running; the last listing."""
    while True:
        markers = gc_markers(store)
        if not _running(markers):
            return markers
        time.sleep(poll)
