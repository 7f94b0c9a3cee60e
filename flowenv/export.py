"""Export one env × platform lock into formats other tools install from.

* ``requirements``: pip-tools style ``requirements.txt`` with a ``--hash`` line
  for every locked file, for ``pip install --require-hashes -r``. Only PyPI
  packages fit in it; a mixed env exports its pip part.
* ``explicit``: conda's ``@EXPLICIT`` list (``conda create --file``), one
  archive URL per line with its md5 (conda's own check) or, when the lock has
  none, its sha256. Only conda packages fit in it.
* ``environment-yml``: an ``environment.yml`` pinning ``name=version=build``
  for conda packages and ``name==version`` for the ``pip:`` part; a PyPI-only
  env becomes ``python=<version>`` plus its pip packages.

Outputs are deterministic and carry no timestamp, so an exported file can be
committed and checked in CI like the lock it comes from.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from flowenv.config.models import Config
from flowenv.errors import UsageError
from flowenv.lock import Selection, select_targets
from flowenv.lockfiles.condalock import LockedCondaPackage, read_conda_lock
from flowenv.lockfiles.layout import LockTarget
from flowenv.lockfiles.pylock import LockedPackage, packages_for, read_pylock_document
from flowenv.spec import EnvSpec, build_environments, strip_credentials

FORMATS = ("requirements", "explicit", "environment-yml")
_CONDA_SUFFIXES = (".conda", ".tar.bz2")


@attrs.frozen(kw_only=True)
class _Pinned:
    """A PyPI package as an exported file needs it."""

    name: str
    version: str
    sha256: tuple[str, ...]
    #: A direct reference (VCS checkout, archive URL, local directory) instead of an index pin.
    direct: str | None = None

    @property
    def requirement(self) -> str:
        if self.direct is None:
            return f"{self.name}=={self.version}"
        # pip reads a local directory as a path line, anything else as a direct reference.
        return f"{self.name} @ {self.direct}" if "://" in self.direct else self.direct


def _pinned(package: LockedPackage) -> _Pinned:
    if package.vcs or package.directory:
        # A checkout or a directory: no file to hash; a directory stays a path.
        return _Pinned(
            name=package.name,
            version=package.version,
            sha256=(),
            direct=package.vcs or package.directory,
        )
    files = package.files
    return _Pinned(
        name=package.name,
        version=package.version,
        sha256=tuple(sorted({f.sha256 for f in files if f.sha256})),
        direct=package.archive.url if package.archive else None,
    )


@attrs.frozen(kw_only=True)
class _Contents:
    target: LockTarget
    relative: str
    python: str
    channels: tuple[str, ...]
    conda: tuple[LockedCondaPackage, ...]
    pip: tuple[_Pinned, ...]
    #: pip options naming where the pip packages come from (``--index-url`` …).
    index_options: tuple[str, ...] = ()


def _index_options(env: EnvSpec, platform: str, root: Path) -> tuple[str, ...]:
    """pip's options for the indexes the lock was resolved from, credentials stripped.

    Without them pip looks on PyPI only, where a private package or a
    ``torch==2.4.1+cpu`` from a named index does not exist. A named index
    becomes an extra index: a requirements file cannot pin a package to one,
    but every line is hash-pinned, so no other file can stand in for it.
    """

    def where(location: str) -> str:
        # uv ran in the project root: a relative path there is absolute here.
        # Quoted: pip splits a requirements file's option line like a shell.
        if "://" in location:
            return shlex.quote(strip_credentials(location))
        return shlex.quote(str((root / location).resolve()))

    settings = env.pypi_settings
    options = []
    if settings.index_url:
        options.append(f"--index-url {where(settings.index_url)}")
    extras = [*settings.extra_index_urls, *(url for _, url in env.indexes_on(platform))]
    options += [f"--extra-index-url {where(url)}" for url in extras]
    options += [f"--find-links {where(location)}" for location in settings.find_links]
    return tuple(options)


def _target(config: Config, env: str, platform: str) -> LockTarget:
    environments = build_environments(config)
    # select_targets reports unknown envs and platforms with a "did you mean".
    found = select_targets(config, environments, Selection(envs=(env,), platforms=(platform,)))
    if not found:
        platforms = environments.get(env).platforms
        raise UsageError(f"env '{env}' is locked for {', '.join(platforms)} only, not {platform}")
    (target,) = found
    return target


def _contents(
    config: Config, env: str, platform: str, categories: Sequence[str] = ("main",)
) -> _Contents:
    target = _target(config, env, platform)
    relative = target.path.relative_to(config.root).as_posix()
    if not target.path.exists():
        raise UsageError(f"no lock for {target.label} ({relative}); run `flowenv lock` first")
    if target.env.kind == "pypi":
        document = read_pylock_document(target.path)
        python = document.python or target.env.python
        pip = tuple(_pinned(p) for p in packages_for(document, platform, python, str(target.path)))
        return _Contents(
            target=target,
            relative=relative,
            python=target.env.python,
            channels=config.project.conda.channels,
            conda=(),
            pip=pip,
            index_options=_index_options(target.env, platform, config.root),
        )
    lock = read_conda_lock(target.path)
    known = lock.categories()
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise UsageError(
            f"{relative} has no category {', '.join(unknown)} "
            f"(it has: {', '.join(known) or 'none'})"
        )
    # main always, as conda-lock renders (its --dev-dependencies/--extras only add):
    # the other categories' packages depend on main's (python), never stand alone.
    selected = ("main", *categories)
    packages = [p for p in lock.for_platform(platform, selected) if not p.is_virtual]
    return _Contents(
        target=target,
        relative=relative,
        python=target.env.python,
        channels=lock.channels or target.env.channels,
        conda=dependency_order(p for p in packages if p.manager == "conda"),
        pip=tuple(
            _Pinned(
                name=p.name,
                version=p.version,
                sha256=(p.sha256,) if p.sha256 else (),
                # A local package stays a path, as in a pylock export.
                direct=p.directory or (p.url if p.direct else None),
            )
            for p in packages
            if p.manager == "pip"
        ),
        index_options=_index_options(target.env, platform, config.root),
    )


def _header(contents: _Contents) -> list[str]:
    return [
        f"# Generated by flowenv from {contents.relative} ({contents.target.label}).",
        "# Do not edit: re-export instead.",
    ]


def _requirements(contents: _Contents) -> list[str]:
    lines = _header(contents)
    if contents.conda:
        lines.append(
            "# The conda packages of this environment are not listed: "
            "export them with --format explicit."
        )
    direct = [p for p in contents.pip if p.direct and not p.sha256]
    if direct:
        lines.append(
            f"# {len(direct)} direct reference(s) below have no file hash (a VCS checkout or a "
            "directory): pip --require-hashes refuses them."
        )
    if contents.pip:
        lines += contents.index_options
    for package in sorted(contents.pip, key=lambda p: p.name):
        if package.direct and not package.sha256:
            lines.append(package.requirement)
            continue
        if not package.sha256:
            raise UsageError(
                f"cannot export {package.name} {package.version} of {contents.target.label}: "
                "its lock entry has no sha256, which pip --require-hashes needs"
            )
        hashes = [f"    --hash=sha256:{digest}" for digest in package.sha256]
        lines.append(f"{package.requirement} \\")
        lines += [f"{line} \\" for line in hashes[:-1]] + hashes[-1:]
    return lines


def _explicit(contents: _Contents) -> list[str]:
    if not contents.conda:
        raise UsageError(
            f"{contents.target.env.name} has no conda packages ({contents.target.label} is "
            "locked from PyPI only); use --format requirements"
        )
    lines = [
        *_header(contents),
        "# Create the environment with: conda create --name ENV --file FILE",
        f"# platform: {contents.target.platform}",
    ]
    if contents.pip:
        lines.append(
            f"# {len(contents.pip)} pip packages are not listed: "
            "export them with --format requirements."
        )
    lines.append("@EXPLICIT")
    # Dependency order (dependencies first), as conda-lock renders it.
    for package in contents.conda:
        if package.md5:
            lines.append(f"{package.url}#{package.md5}")
        elif package.sha256:
            lines.append(f"{package.url}#sha256:{package.sha256}")
        else:
            lines.append(package.url)
    return lines


def _conda_pin(package: LockedCondaPackage) -> str:
    stem = package.filename
    for suffix in _CONDA_SUFFIXES:
        stem = stem.removesuffix(suffix)
    name, _, rest = stem.rpartition(f"-{package.version}-")
    return (
        f"{package.name}={package.version}={rest}"
        if name and rest
        else f"{package.name}={package.version}"
    )


def _environment_yml(contents: _Contents) -> list[str]:
    lines = [*_header(contents), f"name: {contents.target.env.name}", "channels:"]
    lines += [f"  - {channel}" for channel in contents.channels]
    lines.append("dependencies:")
    conda = [_conda_pin(p) for p in contents.conda] or [f"python={contents.python}"]
    lines += [f"  - {pin}" for pin in sorted(conda)]
    if contents.pip:
        if not any(p.name == "pip" for p in contents.conda):
            lines.append("  - pip")
        lines.append("  - pip:")
        lines += [f"      - {option}" for option in contents.index_options]
        lines += [f"      - {p.requirement}" for p in sorted(contents.pip, key=lambda p: p.name)]
    return lines


def dependency_order(packages: Iterable[LockedCondaPackage]) -> tuple[LockedCondaPackage, ...]:
    """``packages`` with every package after its dependencies, as conda installs them.

    A depth-first walk in name order, so the result is deterministic; a cycle
    (conda-forge's python depends on pip, which depends on python) is broken
    where the walk meets it again.
    """
    by_name = {p.name: p for p in packages}
    done: set[str] = set()
    out: list[LockedCondaPackage] = []
    for start in sorted(by_name):
        if start in done:
            continue
        # An explicit stack, not recursion: a hostile lock may chain thousands.
        done.add(start)
        stack = [(start, iter(sorted(dict(by_name[start].dependencies))))]
        while stack:
            name, pending = stack[-1]
            child = next((d for d in pending if d in by_name and d not in done), None)
            if child is None:
                stack.pop()
                out.append(by_name[name])
                continue
            done.add(child)
            stack.append((child, iter(sorted(dict(by_name[child].dependencies)))))
    return tuple(out)


def export(
    config: Config, env: str, platform: str, fmt: str, categories: Sequence[str] = ("main",)
) -> str:
    """The text of ``env``'s lock for ``platform`` in format ``fmt`` (one of :data:`FORMATS`).

    A conda-lock file's main packages and those of ``categories``, as
    ``conda-lock render`` gives them (main always; other categories add).
    """
    contents = _contents(config, env, platform, categories)
    render = {
        "requirements": _requirements,
        "explicit": _explicit,
        "environment-yml": _environment_yml,
    }[fmt]
    return "\n".join(render(contents)) + "\n"


def export_target(config: Config, env: str, platform: str) -> LockTarget:
    """The lock an export reads (for a caller that wants to check it is fresh)."""
    return _target(config, env, platform)
