"""Orchestrate locking: decide what is stale, resolve each distinct spec once, in parallel.

Staleness is decided from the input hash each lock records, so an unchanged
re-lock calls no resolver. Environments whose specs are identical (same input
hash) are resolved once and the result is written for each of them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

from flowenv.config.models import Config
from flowenv.errors import FlowenvError, UsageError, WriteError
from flowenv.lockfiles.layout import LockTarget, is_fresh, targets
from flowenv.resolution import LockOptions, locker_for
from flowenv.spec import Environments, EnvSpec, build_environments

#: The last configuration :func:`environments_of` built, and what it built.
_BUILT: list[tuple[Config, Environments]] = []


def environments_of(config: Config) -> Environments:
    """:func:`build_environments` of ``config``, built once for the same (immutable) object.

    A lock decides staleness and then records freshness of the same
    configuration: building every env twice, and hashing every env's inputs
    twice (each :class:`EnvSpec` keeps its hashes), was a tenth of a one-step
    re-lock. Keyed by identity, not equality: comparing two configurations
    costs about what building them does. Building reads no file, so the same
    object always gives the same environments.
    """
    if not _BUILT or _BUILT[0][0] is not config:
        _BUILT[:] = [(config, build_environments(config))]
    return _BUILT[0][1]


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
    lock_root = config.lock_root  # a property that joins two paths on every call
    # Each env follows its own platforms (a GPU step: linux-64 only); a selected
    # platform an env is not locked for is simply not one of its targets.
    return [
        target
        for env in envs
        for target in targets(
            lock_root,
            [env],
            [p for p in env.platforms if not selection.platforms or p in selection.platforms],
            live_platforms=env.platforms,
        )
    ]


def select_all(config: Config, selection: Selection = Selection()) -> list[LockTarget]:
    """Every target ``selection`` names, fresh or not."""
    return select_targets(config, environments_of(config), selection)


def stale_targets(config: Config, selection: Selection = Selection()) -> list[LockTarget]:
    """Targets whose lock is missing or was made from other inputs. Resolves nothing."""
    environments = environments_of(config)
    return [t for t in select_targets(config, environments, selection) if not is_fresh(t)]


def input_files(config: Config) -> list[Path]:
    """Every file whose content enters an input hash: what the freshness record digests.

    A reader of another input file (requirements.txt, a local package...) must
    add it here, or ``lock --check``'s fast path would miss an edit to it. A
    local package is listed as its directory, which cannot be digested as a
    file: a project with one never gets a record, so every check looks at the
    package's source itself.
    """
    from flowenv.inputs import input_paths

    return [config.path, *input_paths(environments_of(config).envs, config.root)]


@attrs.frozen(kw_only=True)
class CheckReport:
    """What ``lock --check`` found: stale or missing locks, and (full selection) obsolete ones."""

    stale: tuple[LockTarget, ...]
    obsolete: tuple[Path, ...]

    @property
    def fresh(self) -> bool:
        return not self.stale and not self.obsolete


def check(
    config: Config,
    selection: Selection = Selection(),
    digests: Mapping[str, str] | None = None,
) -> CheckReport:
    """Find stale and obsolete locks, resolving nothing; remember a wholly fresh project.

    ``digests`` are the :func:`~flowenv.lockfiles.freshness.digest_inputs` of the
    configuration file taken before it was loaded; with them, a full check
    that finds every lock fresh writes the record ``lock --check``'s fast path
    trusts (and any other outcome drops it).
    """
    from flowenv.lockfiles.layout import CONDA_LOCK_NAME, validate_lock

    environments = environments_of(config)
    selected = select_targets(config, environments, selection)
    stale = tuple(t for t in selected if not is_fresh(t))
    # A fresh pylock is read whole (tomllib is already loaded): a damaged or
    # hostile lock is an error here, not in the executor that installs it. A
    # conda-lock.yml is not: YAML would cost this start-up path more than the
    # check itself; every command that uses one reads it whole.
    fresh = {t.path for t in selected} - {t.path for t in stale}
    for path in sorted(p for p in fresh if p.name != CONDA_LOCK_NAME):
        validate_lock(path)
    whole = selection == Selection()
    obsolete = tuple(_obsolete(config, selected)) if whole else ()
    report = CheckReport(stale=stale, obsolete=obsolete)
    if whole:
        remember_fresh(config, digests if report.fresh else None, selected, validated=True)
    return report


def remember_fresh(
    config: Config,
    digests: Mapping[str, str] | None,
    live: Sequence[LockTarget],
    *,
    validated: bool = False,
) -> None:
    """Record that every lock of ``live`` (all of them) is fresh; ``digests`` None: forget.

    Called after a full check found nothing (``validated``: it also read every
    fresh pylock whole), or a full lock wrote every lock and removed the
    obsolete ones. See :func:`flowenv.lockfiles.freshness.write_record`.
    """
    from flowenv.lockfiles import freshness

    others = freshness.digest_inputs(p for p in input_files(config) if p != config.path)
    if digests is None or others is None:
        freshness.forget_record(config.path)
        return
    expected: dict[str, dict[str, str]] = {}
    for target in live:
        expected.setdefault(_lock_name(target), {})[target.platform] = target.env.input_hash(
            target.platform
        )
    freshness.write_record(
        config.path, {**digests, **others}, config.lock_root, expected, validated=validated
    )


def _lock_name(target: LockTarget) -> str:
    """``"<env>/<lock file name>"``: how the freshness record names a target's lock."""
    # A path's parts are kept once computed; `.parent` builds a Path on every call,
    # and a re-lock names each of its hundreds of targets three times.
    parts = target.path.parts
    if len(parts) < 3:  # never for a lock under the lock dir; named as `.parent` would
        return f"{target.path.parent.name}/{target.path.name}"
    return f"{parts[-2]}/{parts[-1]}"


def _obsolete(
    config: Config, live_targets: Sequence[LockTarget], names: Sequence[str] | None = None
) -> list[Path]:
    """The obsolete locks among ``names`` (``"<env>/<file>"``; None: list the lock dir)."""
    from flowenv.lockfiles.layout import recorded_input_hashes

    if names is None:
        from flowenv.lockfiles.freshness import lock_names

        names = lock_names(config.lock_root)
    # Names ("<env>/<file>"), not Paths: a Path per lock costs more than the comparison.
    live = {_lock_name(t) for t in live_targets}
    candidates = [config.lock_root / name for name in names if name not in live]
    # Only files that carry flowenv's input hash, under the lock dir for real: a
    # file that merely has a lock's name (another tool's pylock, a hand-written
    # one) or lives behind a symlink out of the lock dir is not ours to judge.
    return [
        path
        for path in candidates
        if _inside_lock_root(config, path) and recorded_input_hashes(path)
    ]


def obsolete_locks(config: Config) -> list[Path]:
    """Lock files no env × platform of the configuration uses any more.

    A removed step, env or platform, or an env that changed kind (a pylock per
    platform → one conda-lock.yml), leaves its old file behind; a reviewer
    must not mistake it for a live lock, nor ``lock --check`` for fresh.
    """
    environments = environments_of(config)
    return _obsolete(config, select_targets(config, environments, Selection()))


def _inside_lock_root(config: Config, path: Path) -> bool:
    """Whether ``path`` really lives under the lock dir (an env directory may be a symlink)."""
    return _inside(os.path.realpath(config.lock_root), os.path.realpath(path.parent))


def _inside(real_root: str, real_directory: str) -> bool:
    """Whether ``real_directory`` is ``real_root`` or below it (both resolved, no symlinks)."""
    return real_directory == real_root or real_directory.startswith(
        real_root.rstrip(os.sep) + os.sep
    )


def _linked_names(lock_root: Path) -> frozenset[str]:
    """The names directly below the lock dir that are symbolic links (none if it is unreadable).

    One ``scandir`` (each entry's type comes with the listing) instead of one
    ``lstat`` per env directory: at a hundred envs, those were most of a
    millisecond of every re-lock.
    """
    try:
        with os.scandir(lock_root) as entries:
            return frozenset(entry.name for entry in entries if entry.is_symlink())
    except OSError:  # no lock dir yet (nothing below it is a link), or not a directory
        return frozenset()


def _real_env_dir(
    lock_root: Path, real_root: str, directory: Path, links: frozenset[str] | None = None
) -> str:
    """``os.path.realpath(directory)`` for an env directory, from the lock dir's real path.

    An env's directory is ``<lock dir>/<env name>``, and env names are plain
    names (no separator, no ``..``): unless the directory itself is a symbolic
    link, its real path is the lock dir's real path joined with its name. One
    ``lstat`` instead of one per path component: at a hundred envs, resolving
    each directory whole was a few ms of every re-lock. ``links``: the
    :func:`_linked_names` of ``lock_root``, when the caller listed them (no
    ``lstat`` at all then).
    """
    return _real_dir(lock_root.parts, real_root, directory.parts, links)


def _real_dir(
    root_parts: tuple[str, ...],
    real_root: str,
    parts: tuple[str, ...],
    links: frozenset[str] | None,
) -> str:
    """:func:`_real_env_dir` of the directory whose ``Path.parts`` are ``parts``."""
    name = parts[-1] if parts else ""
    plain = parts[:-1] == root_parts and name not in ("", ".", "..") and os.sep not in name
    if plain:
        linked = os.path.islink(os.path.join(*parts)) if links is None else name in links
        if not linked:
            return os.path.join(real_root, name)
    return os.path.realpath(os.path.join(*parts) if parts else ".")


def remove_obsolete_locks(config: Config, live: Sequence[LockTarget] | None = None) -> list[Path]:
    """Delete :func:`obsolete_locks` (and env directories left empty); what was removed.

    ``live``: every env × platform of the configuration, when the caller has
    them already (a full :func:`lock` returns them). The lock dir is confined
    to the project (the loader refuses one that leaves it), and only files
    flowenv wrote are candidates, so nothing another project or person wrote
    is ever deleted. The temporary files :func:`remove_leftover_temp_files`
    deletes go too, found in the same listing of the env directories (so a
    full lock passes ``remove_temp_files=False`` to :func:`lock`).
    """
    names, temp_files = _list_lock_dir(config.lock_root)
    _remove_quietly(temp_files)
    if live is None:
        live = select_targets(config, environments_of(config), Selection())
    removed = _obsolete(config, live, names)
    for path in removed:
        try:
            path.unlink()
        except OSError as exc:
            raise WriteError(f"cannot remove the obsolete lock {path}: {exc.strerror}") from None
        # Not empty: another lock (or a file of the user's) still lives there.
        with contextlib.suppress(OSError):
            path.parent.rmdir()
    return removed


def remove_leftover_temp_files(config: Config) -> list[Path]:
    """Delete the temporary lock files a killed ``flowenv lock`` left; what was removed.

    Only those older than :data:`LEFTOVER_AGE_SECONDS`: a younger one may be a
    concurrent lock's, about to be renamed into place.
    """
    return _remove_quietly(_list_lock_dir(config.lock_root)[1])


#: A lock's temporary file lives for the milliseconds between writing and
#: renaming it: one older than this was left by a killed run. A younger one may
#: be another `flowenv lock` of this project writing right now (two terminals,
#: or the warm server serving two), whose rename would fail if it were removed.
LEFTOVER_AGE_SECONDS = 60.0


def _remove_quietly(paths: Sequence[Path]) -> list[Path]:
    """Remove the temporary lock files among ``paths`` that no running lock can still own."""
    removed = []
    now = time.time()
    for path in paths:
        with contextlib.suppress(OSError):
            if now - path.lstat().st_mtime < LEFTOVER_AGE_SECONDS:
                continue
            path.unlink()
            removed.append(path)
    return removed


def _list_lock_dir(lock_root: Path) -> tuple[list[str], list[Path]]:
    """Every lock's ``"<env>/<file>"`` and every temporary lock file left, in one pass.

    The locks as :func:`flowenv.lockfiles.freshness.lock_names` lists them (hidden
    directories skipped, a linked one followed); the temporary files only in
    the lock dir's own directories (hidden ones too; a symbolic link is not
    followed: what it points at is not the lock dir's to clean). Both sorted.
    One listing of each env directory: at a hundred envs, listing them twice
    was two milliseconds of every re-lock.
    """
    from flowenv._atomic import temp_file_target
    from flowenv.lockfiles.layout import is_lock_name

    root = os.fspath(lock_root)
    try:
        # scandir knows each entry's type without a stat.
        with os.scandir(root) as entries:
            found = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    except OSError:  # no lock dir yet, or not a directory
        return [], []
    names: list[str] = []
    temp_files: list[Path] = []
    for env, own_directory in found:
        hidden = env.startswith(".")
        if hidden and not own_directory:
            continue
        try:
            files = os.listdir(os.path.join(root, env))
        except OSError:  # a plain file, or gone meanwhile
            continue
        if not hidden:
            names += (f"{env}/{name}" for name in files if is_lock_name(name))
        if own_directory:
            for name in files:
                target = temp_file_target(name)
                if target is not None and is_lock_name(target):
                    temp_files.append(lock_root / env / name)
    return sorted(names), sorted(temp_files)


@attrs.frozen
class _Job:
    """One resolution: a spec (shared by ``envs``) for some platforms.

    A solve group's job instead locks ``envs`` (its stale members, each its own
    spec) for one platform, at the versions all of ``group`` agree on.
    """

    envs: tuple[EnvSpec, ...]
    platforms: tuple[str, ...]
    group: tuple[EnvSpec, ...] = ()

    @property
    def label(self) -> str:
        return f"{', '.join(e.name for e in self.envs)} · {', '.join(self.platforms)}"


def _jobs(todo: Sequence[LockTarget], environments: Environments) -> list[_Job]:
    # One job per distinct spec, with every platform it needs: a conda-lock.yml
    # holds them all, and a PyPI env resolves its lead platform first so the
    # others can follow its versions (see flowenv.resolution.pypi).
    # A solve group: one job for its stale members, as they resolve together.
    grouped: dict[str, tuple[list[EnvSpec], list[str]]] = {}
    for target in todo:
        env = target.env
        # Keyed by the input hash of every platform the env locks: envs alike on all
        # of them share one resolution (per-platform packages can tell them apart).
        key = ",".join(f"{p}={env.input_hash(p)}" for p in env.platforms)
        if env.solve_group is not None:
            key = f"group:{env.solve_group}"
        envs, platforms = grouped.setdefault(key, ([], []))
        if env not in envs:
            envs.append(env)
        if target.platform not in platforms:
            platforms.append(target.platform)
    jobs = []
    for spec_key, (envs, platforms) in grouped.items():
        group: tuple[EnvSpec, ...] = ()
        if spec_key.startswith("group:"):
            from flowenv.solve_groups import group_members

            group = group_members(environments, spec_key.removeprefix("group:"))
        jobs.append(_Job(tuple(envs), tuple(platforms), group))
    return jobs


def _run_job(config: Config, job: _Job, options: LockOptions) -> dict[Path, str]:
    if job.group:
        from flowenv.solve_groups import lock_group

        return lock_group(config, job.group, job.envs, job.platforms, options)
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
    *,
    remove_temp_files: bool = True,
) -> list[LockResult]:
    """Lock what is stale (everything selected, with an upgrade) and write it atomically.

    Every resolution finishes before any file is written, so a failure in one
    environment leaves every lock file as it was. Temporary lock files a
    killed run left are deleted afterwards, unless ``remove_temp_files`` is
    False: a caller that goes on to :func:`remove_obsolete_locks` (which
    deletes them from the same listing) passes that.
    """
    options = options or LockOptions()
    environments = environments_of(config)
    selected = select_targets(config, environments, selection)
    _check_upgrade_packages(selected, options.upgrade_packages)
    # Strings and one listing of the lock dir: a Path.resolve() per target, then
    # a Path.parent and an lstat per env directory, were a large part of a
    # one-step re-lock of a hundred steps. A target's directory is its path's
    # parts less the file name (Path keeps its parts once computed).
    lock_root = config.lock_root
    real_root = os.path.realpath(lock_root)
    root_parts = lock_root.parts
    links = _linked_names(lock_root)
    inside: dict[tuple[str, ...], bool] = {}
    for target in selected:
        directory = target.path.parts[:-1]
        if directory not in inside:
            real = _real_dir(root_parts, real_root, directory, links)
            inside[directory] = _inside(real_root, real)
        if not inside[directory]:
            # Checked before resolving: neither the old lock there is read nor a new one written.
            raise WriteError(
                f"refusing {target.path}: {target.path.parent} is a symbolic link out of the "
                f"lock dir {config.lock_root}; no lock file was changed"
            )
    forced = options.upgrade or bool(options.upgrade_packages)
    if forced:
        stale = [True] * len(selected)
    else:
        # Only the hashes in each header decide here: a lock the freshness
        # record vouches for (unchanged since its header was read) is not read
        # again. Commands that use a lock's body read it whole.
        from flowenv.lockfiles.freshness import known_headers

        known = known_headers(config.path, config.lock_root)
        stale = [not is_fresh(t, known.get(_lock_name(t))) for t in selected]
    todo = [t for t, s in zip(selected, stale, strict=True) if s]
    fresh = [t for t, s in zip(selected, stale, strict=True) if not s]
    results = [LockResult(target=t, status="fresh") for t in fresh]
    from flowenv.solve_groups import check_groups

    check_groups(config, environments)
    work = _jobs(todo, environments)
    if on_plan:
        on_plan(len(work))
    # Imported here: `lock --check` imports this module and never needs it.
    from flowenv._scratch import removed_later

    # uv's scratch directories are removed while the locks are written.
    with removed_later():
        written = _write_changed(_resolve(config, work, options, jobs, on_resolved))
    if remove_temp_files:
        remove_leftover_temp_files(config)
    for target in todo:
        results.append(
            LockResult(target=target, status="written" if target.path in written else "unchanged")
        )
    return sorted(results, key=lambda r: (r.target.env.name, r.target.platform))


def _resolve(
    config: Config,
    work: Sequence[_Job],
    options: LockOptions,
    jobs: int | None,
    on_resolved: Callable[[str], None] | None,
) -> dict[Path, str]:
    """Every job's lock texts, ``jobs`` at a time; one error for all that failed."""
    texts: dict[Path, str] = {}
    errors: list[tuple[str, FlowenvError]] = []
    # Imported here: `lock --check` imports this module and never needs it.
    from flowenv._threads import as_finished

    workers = max(1, min(jobs or os.cpu_count() or 1, len(work) or 1))
    calls = [functools.partial(_run_job, config, job, options) for job in work]
    for outcome in as_finished(calls, workers):
        job = work[outcome.index]
        try:
            texts |= outcome.get()
        except FlowenvError as exc:
            errors.append((job.label, exc))
        if on_resolved:
            on_resolved(job.label)
    if errors:
        raise _combined(errors)
    return texts


def _check_upgrade_packages(selected: Sequence[LockTarget], names: Sequence[str]) -> None:
    """Refuse ``--upgrade-package NAME`` for a package no selected env declares or has locked.

    A typo would otherwise "succeed" and upgrade nothing.
    """
    if not names:
        return
    from flowenv.config.load import did_you_mean, normalize_pypi_name
    from flowenv.lockfiles.layout import locked_names

    known: set[str] = set()
    for target in selected:
        env, platform = target.env, target.platform
        known |= {p.name for p in env.pypi_on(platform)} | {c.name for c in env.conda_on(platform)}
        known |= locked_names(target.path)
    known = {normalize_pypi_name(n) for n in known}
    for name in names:
        if normalize_pypi_name(name) not in known:
            raise UsageError(
                f"--upgrade-package {name}: no selected environment declares or locks a "
                f"package of that name{did_you_mean(normalize_pypi_name(name), known)}"
            )


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
    """Write the locks whose text changed, all of them or (when one cannot be written) none."""
    from flowenv._atomic import write_all_atomic

    changed = {}
    for path, text in sorted(texts.items()):
        try:
            if path.read_bytes() == text.encode("utf-8"):
                continue
        except OSError:
            pass
        changed[path] = text
    try:
        write_all_atomic(changed)
    except OSError as exc:
        raise WriteError(
            f"cannot write {exc.filename}: {exc.strerror}; no lock file was changed"
        ) from None
    return set(changed)
