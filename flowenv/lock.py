"""Orchestrate locking: decide what is stale, resolve each distinct spec once, in parallel.

Staleness is decided from the input hash each lock records, so an unchanged
re-lock calls no resolver. Environments whose specs are identical (same input
hash) are resolved once and the result is written for each of them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from flowenv.config.models import Config
from flowenv.errors import FlowenvError, UsageError
from flowenv.lockers import LockOptions, locker_for
from flowenv.locks.layout import LockTarget, is_fresh, targets
from flowenv.spec import Environments, EnvSpec, build_environments


@attrs.frozen(kw_only=True)
class Selection:
    """Which envs and platforms a command acts on (empty = all of them)."""

    envs: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class LockResult:
    """What happened to one env × platform."""

    target: LockTarget
    #: "fresh" (not resolved), "unchanged" (resolved, same bytes), "written".
    status: str


def select_targets(
    config: Config, environments: Environments, selection: Selection
) -> list[LockTarget]:
    """The env × platform pairs a selection names; unknown names are a usage error."""
    known = environments.names()
    for name in selection.envs:
        if name not in known:
            from flowenv.config.load import did_you_mean

            hint = did_you_mean(name, known)
            raise UsageError(f"no environment named '{name}'{hint}; known: {', '.join(known)}")
    for platform in selection.platforms:
        if platform not in config.project.platforms:
            raise UsageError(
                f"platform '{platform}' is not in project.platforms "
                f"({', '.join(config.project.platforms)})"
            )
    envs = [e for e in environments.envs if not selection.envs or e.name in selection.envs]
    # Each env follows its own platforms (a GPU step: linux-64 only); a selected
    # platform an env is not locked for is simply not one of its targets.
    return [
        target
        for env in envs
        for target in targets(
            config.lock_root,
            [env],
            [p for p in env.platforms if not selection.platforms or p in selection.platforms],
            live_platforms=env.platforms,
        )
    ]


def stale_targets(config: Config, selection: Selection = Selection()) -> list[LockTarget]:
    """Targets whose lock is missing or was made from other inputs. Resolves nothing."""
    environments = build_environments(config)
    return [t for t in select_targets(config, environments, selection) if not is_fresh(t)]


def obsolete_locks(config: Config) -> list[Path]:
    """Lock files no env × platform of the configuration uses any more.

    A removed step, env or platform, or an env that changed kind (a pylock per
    platform → one conda-lock.yml), leaves its old file behind; a reviewer
    must not mistake it for a live lock, nor ``lock --check`` for fresh.
    """
    from flowenv.locks.layout import lock_files

    environments = build_environments(config)
    live = {t.path for t in select_targets(config, environments, Selection())}
    return [path for path in lock_files(config.lock_root) if path not in live]


def remove_obsolete_locks(config: Config) -> list[Path]:
    """Delete :func:`obsolete_locks` (and env directories left empty); what was removed."""
    removed = obsolete_locks(config)
    for path in removed:
        path.unlink()
        # Not empty: another lock (or a file of the user's) still lives there.
        with contextlib.suppress(OSError):
            path.parent.rmdir()
    return removed


@attrs.frozen
class _Job:
    """One resolution: a spec (shared by ``envs``) for some platforms."""

    envs: tuple[EnvSpec, ...]
    platforms: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{', '.join(e.name for e in self.envs)} · {', '.join(self.platforms)}"


def _jobs(todo: Sequence[LockTarget]) -> list[_Job]:
    # PyPI locks are one file per platform: one job per (spec, platform).
    # A conda-lock.yml holds every platform: one job per spec.
    grouped: dict[tuple[str, str], tuple[list[EnvSpec], list[str]]] = {}
    for target in todo:
        env = target.env
        # A conda-lock.yml holds every platform: its job is keyed by all of them.
        key = (
            (env.input_hash(target.platform), target.platform)
            if env.kind == "pypi"
            else (",".join(f"{p}={env.input_hash(p)}" for p in env.platforms), "")
        )
        envs, platforms = grouped.setdefault(key, ([], []))
        if env not in envs:
            envs.append(env)
        if target.platform not in platforms:
            platforms.append(target.platform)
    return [_Job(tuple(envs), tuple(platforms)) for envs, platforms in grouped.values()]


def _run_job(config: Config, job: _Job, options: LockOptions) -> dict[Path, str]:
    first = job.envs[0]
    texts = locker_for(first.kind)(config, first, job.platforms, options)
    # Identical inputs give identical files: resolve once, write for every env.
    return {
        config.lock_root / env.name / name: text for env in job.envs for name, text in texts.items()
    }


def lock(
    config: Config,
    selection: Selection = Selection(),
    options: LockOptions | None = None,
    jobs: int | None = None,
    on_plan: Callable[[int], None] | None = None,
    on_resolved: Callable[[str], None] | None = None,
) -> list[LockResult]:
    """Lock what is stale (everything selected, with an upgrade) and write it atomically.

    Every resolution finishes before any file is written, so a failure in one
    environment leaves every lock file as it was.
    """
    options = options or LockOptions()
    environments = build_environments(config)
    selected = select_targets(config, environments, selection)
    forced = options.upgrade or bool(options.upgrade_packages)
    todo = [t for t in selected if forced or not is_fresh(t)]
    results = [LockResult(target=t, status="fresh") for t in selected if t not in todo]
    work = _jobs(todo)
    if on_plan:
        on_plan(len(work))
    texts: dict[Path, str] = {}
    errors: list[tuple[str, FlowenvError]] = []
    # Imported here: `lock --check` imports this module and never needs them.
    from concurrent.futures import ThreadPoolExecutor, as_completed

    workers = max(1, min(jobs or os.cpu_count() or 1, len(work) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_run_job, config, job, options): job for job in work}
        for future in as_completed(futures):
            job = futures[future]
            try:
                texts |= future.result()
            except FlowenvError as exc:
                errors.append((job.label, exc))
            if on_resolved:
                on_resolved(job.label)
    if errors:
        raise _combined(errors)
    written = _write_changed(texts)
    for target in todo:
        results.append(
            LockResult(target=target, status="written" if target.path in written else "unchanged")
        )
    return sorted(results, key=lambda r: (r.target.env.name, r.target.platform))


def _combined(errors: list[tuple[str, FlowenvError]]) -> FlowenvError:
    """One error for every failed job, in a stable order (jobs finish in any order)."""
    ordered = [exc for _, exc in sorted(errors, key=lambda item: item[0])]
    if len(ordered) == 1:
        return ordered[0]
    combined = FlowenvError("\n\n".join(exc.message for exc in ordered))
    # The most specific failure decides the exit code (3 for any resolution failure).
    combined.exit_code = ordered[0].exit_code
    return combined


def _write_changed(texts: dict[Path, str]) -> set[Path]:
    from flowenv._atomic import write_atomic

    written = set()
    for path, text in sorted(texts.items()):
        try:
            if path.read_text(encoding="utf-8") == text:
                continue
        except OSError:
            pass
        write_atomic(path, text)
        written.add(path)
    return written
