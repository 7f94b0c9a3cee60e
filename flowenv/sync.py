"""``flowenv sync``: put every locked artifact and a manifest per env x platform into a store.

Order is what makes a store safe to read at any moment and to interrupt at
any point: artifacts first (each one atomic), then a copy of the lock, then
the manifest (only once every artifact it names is in the store), then the
project's alias that points an env name at it (recording when, from which
commit, and the env's size, for ``flowenv store ls``). A manifest present
means its artifacts are too, so a sync with nothing to do costs one batched
read of its aliases and manifests plus two listings of ``gc/``, whatever the
size of the store; only an env without a manifest makes it list the
artifacts. Two syncs into one store write identical bytes to identical keys,
so they cannot corrupt each other; against a concurrent ``flowenv store gc``
a sync repeats its pass (see :mod:`flowenv.store.gc` for the protocol).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import attrs

from flowenv._subprocess import redact
from flowenv.config.models import Config
from flowenv.config.validators import store_project_name
from flowenv.errors import FlowenvError, StoreError
from flowenv.lock import Selection, select_targets
from flowenv.spec import BASE, Environments, build_environments
from flowenv.store import Store, open_store, store_url_for
from flowenv.store.cache import (
    ArtifactCache,
    fetch_locked,
    local_source,
    read_verified,
    sha256_of,
)
from flowenv.store.gc import gc_markers, gc_overlapped, wait_until_no_gc
from flowenv.store.layout import (
    ARTIFACTS,
    Manifest,
    alias_key,
    env_dir,
    manifest_key,
    parse_alias,
    render_root,
    render_steps,
    steps_key,
)
from flowenv.store.plan import EnvPlan, plan_target
from flowenv.store.store import Entry
from flowenv.url_credentials import SourceAuth

__all__ = ["ProgressEvent", "Selection", "SyncSummary", "SyncedEnv", "store_for_config", "sync"]

DEFAULT_JOBS = 16
#: Local artifacts up to this size are read once, verified and uploaded from memory
#: (bounded memory: at most jobs x this); larger ones are hashed, then streamed.
IN_MEMORY_MAX = 16 << 20
#: Large uploads at once: each holds at most Store.STREAM_BUFFER bytes in memory.
_LARGE_UPLOADS = threading.BoundedSemaphore(3)
#: At most this many bytes are read ahead while the store is being listed.
VERIFY_AHEAD_BUDGET = 256 << 20
#: Passes a sync makes when garbage collections keep overlapping it (see flowenv.store.gc).
MAX_PASSES = 5


@attrs.frozen(kw_only=True)
class ProgressEvent:
    """Reported to ``on_progress``: once with ``kind="plan"``, then once per artifact uploaded."""

    kind: str  # "plan" | "uploaded"
    total_files: int
    #: Bytes of the artifact just uploaded ("uploaded"); 0 for "plan".
    bytes: int = 0
    filename: str = ""


@attrs.frozen(kw_only=True)
class SyncedEnv:
    env: str
    platform: str
    env_id: str
    #: "written" (manifest new), "present" (manifest was there), "planned" (dry run).
    status: str


@attrs.frozen(kw_only=True)
class SyncSummary:
    store: str
    uploaded: int
    uploaded_bytes: int
    present: int
    manifests_written: int
    aliases_written: int
    envs: tuple[SyncedEnv, ...]
    dry_run: bool = False
    #: CPython builds stored (see flowenv.interpreters).
    interpreters_written: int = 0
    #: What the user should know although nothing failed (a platform without a CPython build).
    notes: tuple[str, ...] = ()


def store_for_config(
    config: Config, store_url: str | None = None, store_options: Mapping[str, Any] | None = None
) -> Store:
    """The project's store (or ``store_url``) with ``[project.store-options]`` applied."""
    url = store_url_for(store_url, config.project.store, config.root)
    options = {**dict(config.project.store_options), **dict(store_options or {})}
    return open_store(url, options)


def sync(
    config: Config,
    selection: Selection | None = None,
    store_url: str | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    *,
    store_options: Mapping[str, Any] | None = None,
    cache: ArtifactCache | None = None,
    python: bool = True,
) -> SyncSummary:
    """Upload what the store lacks for the selected env x platform locks; see the module doc.

    ``python``: also store each PyPI env's CPython build (:mod:`flowenv.interpreters`).
    """
    environments = build_environments(config)
    targets = select_targets(config, environments, selection or Selection())
    plans = [plan_target(t) for t in targets]
    cache = cache or ArtifactCache()
    # Local and git packages: built (once per source, kept in the cache) into wheels.
    if any(a.source for p in plans for a in p.manifest.artifacts):
        from flowenv.local_packages import build_plans

        settings = {env.name: env.pypi_settings for env in environments.envs}
        plans = build_plans(plans, cache.root / "builds", settings)
    project = store_project_name(config.project.name, config.path)
    sources: dict[str, tuple[str, Path]] = {}
    for plan in plans:
        for key, url in plan.sources:
            sources.setdefault(key, (url, plan.lock_path.parent))

    # Opening a remote store (importing its fsspec backend) and reading it is
    # mostly Python holding the GIL; reading and hashing local artifacts mostly
    # is not. Overlap them: verify local artifacts ahead while the store is
    # being opened, so those the store lacks upload straight from memory.
    with ThreadPoolExecutor(max_workers=1) as opener:
        opening = opener.submit(_open_and_read, config, store_url, store_options, plans, python)
        verified = _verify_ahead(sources, until=opening)
        store, before, reads = opening.result()
    provenance = _provenance(config)
    auth = source_auth(environments)
    for attempt in range(MAX_PASSES):
        if attempt:
            # A gc overlapped the last pass: wait for it, then check everything again.
            wait_until_no_gc(store)
            before = gc_markers(store)
            reads = store.read_many(_keys_to_read(project, plans, python))
        summary = _pass(
            store,
            cache,
            project,
            plans,
            sources,
            reads,
            verified,
            full_check=attempt > 0,
            jobs=jobs,
            dry_run=dry_run,
            on_progress=on_progress,
            provenance=provenance,
            environments=environments,
            python=python,
            auth=auth,
        )
        if dry_run or not gc_overlapped(before, gc_markers(store)):
            return summary
    raise StoreError(
        f"{store.url}: a garbage collection overlapped {MAX_PASSES} sync passes in a row; "
        "re-run sync when it is done"
    )


def source_auth(environments: Environments) -> SourceAuth:
    """The credentials configured for every index, channel and direct URL of ``environments``.

    Locks hold URLs without them (flowenv.url_credentials); downloading an
    artifact from where it was locked needs them back.
    """
    urls: list[str] = []
    named: list[tuple[str, str]] = []
    for env in environments.envs:
        settings = env.pypi_settings
        urls += [settings.index_url or "", *settings.extra_index_urls, *settings.find_links]
        urls += [url for _, url in settings.indexes]
        named += settings.indexes
        urls += env.channels
        for platform in env.platforms:
            urls += [c.channel or "" for c in env.conda_on(platform)]
            urls += [p.url for p in env.pypi_on(platform)]
    return SourceAuth.from_urls(urls, named)


def _keys_to_read(project: str, plans: list[EnvPlan], python: bool) -> list[str]:
    """What a pass decides from, in one batched read: aliases, manifests, the step map,
    and (``python``) the record of each env's CPython build."""
    keys = [alias_key(project, p.env, p.platform) for p in plans]
    keys += [manifest_key(p.env_id, p.platform) for p in plans]
    keys.append(steps_key(project))
    if python:
        from flowenv.interpreters import interpreter_key

        keys += sorted(
            {interpreter_key(p.platform, p.manifest.python) for p in plans if p.manifest.python}
        )
    return keys


def _pass(
    store: Store,
    cache: ArtifactCache,
    project: str,
    plans: list[EnvPlan],
    sources: Mapping[str, tuple[str, Path]],
    reads: Mapping[str, bytes | None],
    verified: dict[str, bytes],
    *,
    full_check: bool,
    jobs: int | None,
    dry_run: bool,
    on_progress: Callable[[ProgressEvent], None] | None,
    provenance: Mapping[str, str | None],
    environments: Environments,
    python: bool,
    auth: SourceAuth,
) -> SyncSummary:
    """One pass: upload what is missing, publish manifests, move aliases (see the module doc)."""
    have_manifest = {
        (p.env_id, p.platform)
        for p in plans
        if reads.get(manifest_key(p.env_id, p.platform)) is not None
    }
    # A manifest present means every artifact it names is (manifests are written last
    # and gc removes them first): only envs without one need the artifacts listed.
    unpublished = [p for p in plans if (p.env_id, p.platform) not in have_manifest]
    if full_check or unpublished:
        listing = store.list_sizes(ARTIFACTS)
        checked = {k for p in (plans if full_check else unpublished) for k, _ in p.sources}
        missing = sorted(k for k in checked if k not in listing)
    else:
        listing, missing = {}, []
    if on_progress:
        on_progress(ProgressEvent(kind="plan", total_files=len(missing)))

    if dry_run:
        planned = tuple(
            SyncedEnv(env=p.env, platform=p.platform, env_id=p.env_id, status="planned")
            for p in plans
        )
        return SyncSummary(
            store=store.url,
            uploaded=len(missing),
            uploaded_bytes=0,
            present=len(sources) - len(missing),
            manifests_written=0,
            aliases_written=0,
            envs=planned,
            dry_run=True,
        )

    sizes = {key: listing[key] for key in sources if key in listing}
    uploaded_bytes = 0
    errors: list[str] = []
    done: set[str] = set()
    workers = max(1, min(jobs or DEFAULT_JOBS, len(missing) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(
                _transfer, store, cache, key, *sources[key], verified.pop(key, None), auth
            ): key
            for key in missing
        }
        for future in as_completed(futures):
            key = futures[future]
            try:
                size = future.result()
            except FlowenvError as exc:
                errors.append(exc.message)
                continue
            done.add(key)
            sizes[key] = size
            uploaded_bytes += size
            if on_progress:
                on_progress(
                    ProgressEvent(
                        kind="uploaded",
                        total_files=len(missing),
                        bytes=size,
                        filename=key.rsplit("/", 1)[-1],
                    )
                )
    if store.unreachable is not None:
        raise StoreError(store.unreachable)  # one message, not one per artifact

    failed = set(missing) - done
    manifests_written = aliases_written = 0
    envs: list[SyncedEnv] = []
    for plan in plans:
        if any(key in failed for key, _ in plan.sources):
            continue  # an artifact failed: this env keeps whatever manifest it had
        status = "present"
        if (plan.env_id, plan.platform) not in have_manifest:
            _publish_manifest(store, plan, sizes)
            manifests_written += 1
            status = "written"
        key = alias_key(project, plan.env, plan.platform)
        existing = reads.get(key)
        if existing is None or _alias_target(existing, key) != plan.env_id:
            store.write(key, _alias_record(plan, _env_size(plan, sizes, reads), provenance))
            aliases_written += 1
        envs.append(
            SyncedEnv(env=plan.env, platform=plan.platform, env_id=plan.env_id, status=status)
        )
    # Which env each step runs in, so that an executor without the configuration
    # can hydrate by step name; rewritten only when it changed, and only by a complete sync.
    steps = render_steps(dict(environments.step_envs), _undeclared_env(environments))
    if not errors and reads.get(steps_key(project)) != steps:
        store.write(steps_key(project), steps)
    interpreters_written, notes = 0, tuple[str, ...]()
    if python:
        from flowenv.interpreters import store_interpreters

        # Known present: what this pass read or listed, and what it uploaded.
        present = {k for k, v in reads.items() if v is not None} | set(listing) | done
        wanted = [(p.manifest.python, p.platform) for p in plans if p.manifest.python]
        interpreters_written, notes = store_interpreters(store, cache, wanted, present)
    if errors:
        unique = list(dict.fromkeys(errors))
        raise StoreError(
            "sync incomplete; re-run to finish:\n" + "\n".join(f"  {e}" for e in unique)
        )
    return SyncSummary(
        store=store.url,
        uploaded=len(done),
        uploaded_bytes=uploaded_bytes,
        present=len(sources) - len(missing),
        manifests_written=manifests_written,
        aliases_written=aliases_written,
        envs=tuple(envs),
        interpreters_written=interpreters_written,
        notes=notes,
    )


def _provenance(config: Config) -> dict[str, str | None]:
    """What an alias records besides the env id: when, and from which commit of the project."""
    import datetime

    from flowenv.git import describe_head

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {"synced_at": now.isoformat(), "commit": describe_head(config.root)}


def _env_size(
    plan: EnvPlan, sizes: Mapping[str, int], reads: Mapping[str, bytes | None]
) -> int | None:
    """Bytes of the env's artifacts, from this pass's sizes or else its stored manifest."""
    if all(key in sizes for key, _ in plan.sources):
        return sum(sizes[key] for key in dict(plan.sources))
    raw = reads.get(manifest_key(plan.env_id, plan.platform))
    if raw is None:
        return None
    try:
        manifest = Manifest.from_json(raw, manifest_key(plan.env_id, plan.platform))
    except StoreError:
        return None
    return sum(a.size for a in manifest.artifacts)


def _alias_record(plan: EnvPlan, size: int | None, provenance: Mapping[str, str | None]) -> bytes:
    return render_root(plan.env_id, env=plan.env, size=size, **provenance)


def _open_and_read(
    config: Config,
    store_url: str | None,
    store_options: Mapping[str, Any] | None,
    plans: list[EnvPlan],
    python: bool,
) -> tuple[Store, dict[str, Entry], dict[str, bytes | None]]:
    store = store_for_config(config, store_url, store_options)
    # gc's markers are listed before anything is read: see flowenv.store.gc.
    before = gc_markers(store)
    return store, before, store.read_many(_keys_to_read(config.project.name, plans, python))


def _verify_ahead(sources: Mapping[str, tuple[str, Path]], until: Future[Any]) -> dict[str, bytes]:
    """Read and verify small local artifacts until ``until`` is done (or a memory budget is spent).

    Whatever is read for an artifact the store already has is wasted, but
    only for as long as the listing takes, on a core that would be idle.
    A file that fails verification is skipped here: the upload path reads it
    again and reports the mismatch, and only if the store lacks it.
    """
    verified: dict[str, bytes] = {}
    budget = VERIFY_AHEAD_BUDGET
    for key, (url, base) in sources.items():
        if until.done() or budget <= 0:
            break
        local = local_source(url, base)
        if local is None or not local.is_file() or local.stat().st_size > IN_MEMORY_MAX:
            continue
        _, _, _, sha256, filename = key.split("/")
        try:
            data = read_verified(local, sha256, filename, url)
        except FlowenvError:
            continue
        verified[key] = data
        budget -= len(data)
    return verified


def _transfer(
    store: Store,
    cache: ArtifactCache,
    key: str,
    url: str,
    base: Path,
    verified: bytes | None,
    auth: SourceAuth,
) -> int:
    """Fetch one locked artifact, verify its sha256, upload it; its size."""
    if verified is not None:
        store.write(key, verified)
        return len(verified)
    _, _, _, sha256, filename = key.split("/")
    local = local_source(url, base)
    if local is not None and local.is_file() and local.stat().st_size <= IN_MEMORY_MAX:
        # One read serves both the hash check and the upload, and the bytes
        # uploaded are exactly the bytes verified (the file may change meanwhile).
        data = read_verified(local, sha256, filename, url)
        store.write(key, data)
        return len(data)
    if local is not None and local.is_file():
        return _stream(store, key, local, sha256, filename, url)
    cached = fetch_locked(cache, url, sha256, filename, base, auth)
    with _LARGE_UPLOADS:
        store.upload(cached, key)
    return os.path.getsize(cached)


def _stream(store: Store, key: str, local: Path, sha256: str, filename: str, url: str) -> int:
    """Upload a large local artifact from where it is: hashed, then streamed, never copied.

    The file is read twice (hash, upload) rather than copied into the cache
    first; a file that changed in between (its size, mtime or inode) could have
    sent other bytes than those hashed, so its upload is removed and refused.
    """
    with _LARGE_UPLOADS:
        before = _stamp(local)
        got = sha256_of(local)
        if got != sha256:
            raise StoreError(
                f"sha256 mismatch for {filename} from {redact(url)}: expected {sha256}, "
                f"got {got}; nothing was uploaded"
            )
        store.upload(local, key)
        if _stamp(local) != before:
            store.delete_many([key])
            raise StoreError(f"{redact(url)} changed while it was uploaded; the upload was removed")
    return before[0]


def _stamp(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns, info.st_ino


def _publish_manifest(store: Store, plan: EnvPlan, sizes: Mapping[str, int]) -> None:
    manifest = plan.manifest.with_sizes(sizes)
    # The lock copy goes first: a manifest present means everything beside it is too.
    store.write(
        f"{env_dir(plan.env_id, plan.platform)}/{manifest.lock_name}", plan.lock_path.read_bytes()
    )
    store.write(manifest_key(plan.env_id, plan.platform), manifest.to_json().encode())


def _alias_target(data: bytes, key: str) -> str | None:
    try:
        return parse_alias(data, key)
    except StoreError:
        return None  # a damaged alias is simply rewritten


def _undeclared_env(environments: Environments) -> str | None:
    """The env of a step the configuration does not name: base, unless base is disabled."""
    return BASE if BASE in environments.names() else None
