"""PEP 751 ``pylock.<platform>.toml`` files: flowenv's canonical form of uv's output.

uv resolves; this module makes the result a flowenv lock: credentials stripped
from every URL, packages sorted, the ``[tool.flowenv]`` table recording the
input hash, and a stable rendering so that an unchanged re-lock is
byte-identical.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs

from flowenv._atomic import write_atomic
from flowenv.lockfiles.reading import Node, load_toml, read_lock_file
from flowenv.lockfiles.toml_render import render
from flowenv.platforms import ENVIRONMENT_MARKERS
from flowenv.spec import EnvSpec, strip_credentials

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CREATED_BY = "flowenv"
#: What a resolver answers for an environment without PyPI packages.
EMPTY_PYLOCK = 'lock-version = "1.0"\n'


@attrs.frozen(kw_only=True)
class LockedWheel:
    """One file of a locked package (a wheel, sdist or archive): where it is and its sha256."""

    name: str
    url: str
    sha256: str


@attrs.frozen(kw_only=True)
class LockedPackage:
    """A package pinned in a pylock file (the facts sync, hydrate, export and diff need)."""

    name: str
    version: str
    wheels: tuple[LockedWheel, ...] = ()
    sdist: LockedWheel | None = None
    #: PEP 508 marker: the package is only for environments where it holds.
    marker: str | None = None
    index: str | None = None
    #: A direct archive (``archive``), a VCS checkout (``url@commit``) or a local directory.
    archive: LockedWheel | None = None
    vcs: str | None = None
    directory: str | None = None
    #: flowenv's ``[packages.tool.flowenv] source-hash`` of a local package ("" if none):
    #: sync builds such a directory into a wheel (see flowenv.local_packages).
    source_hash: str = ""
    #: A git checkout as ``git+URL@COMMIT[#subdirectory=DIR]`` ("" for anything else).
    git: str = ""

    @property
    def files(self) -> tuple[LockedWheel, ...]:
        """Every file the lock names for the package, wheels first."""
        return (*self.wheels, *filter(None, (self.sdist, self.archive)))

    def applies_to(self, environment: Mapping[str, str]) -> bool:
        """Whether the package's marker holds in ``environment`` (no marker: always)."""
        if self.marker is None:
            return True
        from packaging.markers import Marker

        return Marker(self.marker).evaluate(dict(environment))


@attrs.frozen(kw_only=True)
class PyLock:
    """A parsed PEP 751 file."""

    packages: tuple[LockedPackage, ...]
    #: Markers of the environments the lock is for (empty: any).
    environments: tuple[str, ...] = ()
    #: ``[tool.flowenv]`` facts of a flowenv lock (None in a foreign file).
    platform: str | None = None
    python: str | None = None

    def fits(self, environment: Mapping[str, str]) -> bool:
        """Whether ``environment`` is one the lock is for (PEP 751 ``environments``)."""
        from packaging.markers import Marker

        return not self.environments or any(
            Marker(m).evaluate(dict(environment)) for m in self.environments
        )


def _scrub(value: Any) -> Any:
    """Every URL in a lock document without its secrets (see flowenv.url_credentials).

    Every string is checked, not only the keys known to hold URLs (``url``,
    ``index``, ...): a key a newer uv adds must not become a leak.
    """
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return strip_credentials(value)
    return value


def canonical_pylock(
    uv_output: str, env: EnvSpec, platform: str, parsed: Mapping[str, Any] | None = None
) -> str:
    """uv's pylock text -> flowenv's canonical pylock text for ``env`` on ``platform``.

    ``parsed``: ``uv_output`` already parsed (read only: _scrub copies what is changed).
    """
    raw = tomllib.loads(uv_output) if parsed is None else parsed
    packages = sorted(
        _scrub(raw.get("packages", [])), key=lambda p: (p["name"], p.get("version", ""))
    )
    for package in packages:
        if "wheels" in package:
            package["wheels"] = sorted(
                package["wheels"], key=lambda w: w.get("url", w.get("name", ""))
            )
    document: dict[str, Any] = {
        "lock-version": raw.get("lock-version", "1.0"),
        "environments": [ENVIRONMENT_MARKERS[platform]],
        "requires-python": f"=={env.python}.*" if env.python.count(".") == 1 else f"=={env.python}",
        "created-by": CREATED_BY,
        "tool": {
            "flowenv": {
                "platform": platform,
                "python": env.python,
                "resolver": "uv",
                "input-hash": env.input_hash(platform),
            }
        },
    }
    if packages:
        document["packages"] = packages
    return render(document)


def write_pylock(path: Path, text: str) -> None:
    write_atomic(path, text)


def read_pylock(path: Path) -> tuple[LockedPackage, ...]:
    """The packages of a pylock file (flowenv's or any PEP 751 file)."""
    return read_pylock_document(path).packages


def read_pylock_document(path: Path) -> PyLock:
    return parse_pylock_document(read_lock_file(path), str(path))


def _file(node: Node, fallback_name: str = "") -> LockedWheel:
    url = node.url("url") or node.url("path") or ""
    # A URL spells a local version's "+" as %2B (torch-2.4.1%2Bcpu-...whl); the
    # file name must be the wheel's real one, or no installer can read its version.
    name = node.text("name", "") or unquote(url.rsplit("/", 1)[-1].split("#", 1)[0])
    name = name or fallback_name
    hashes = node.table("hashes")
    sha256 = (hashes.digest("sha256", 64) if hashes else None) or ""
    return LockedWheel(name=name, url=url, sha256=sha256)


def _package(node: Node) -> LockedPackage:
    name = node.pypi_name()
    sdist = node.table("sdist")
    archive = node.table("archive")
    vcs = node.table("vcs")
    directory = node.table("directory")
    marker = node.optional_str("marker")
    if marker is not None:
        from packaging.markers import InvalidMarker, Marker

        try:
            Marker(marker)
        except InvalidMarker as exc:
            raise node.error(f"not a PEP 508 marker: {exc}", "marker") from None
    return LockedPackage(
        name=name,
        version=node.version("version", ""),
        wheels=tuple(_file(w) for w in node.array("wheels")),
        sdist=_file(sdist) if sdist else None,
        marker=marker,
        index=node.url("index"),
        archive=_file(archive, name) if archive else None,
        vcs=(
            f"{vcs.url('url') or vcs.url('path') or ''}@{vcs.text('commit-id', '')}"
            if vcs
            else None
        ),
        directory=directory.text("path") if directory else None,
        source_hash=_source_hash(node),
        git=_git(vcs),
    )


def _source_hash(node: Node) -> str:
    tool = node.table("tool")
    flowenv = tool.table("flowenv") if tool else None
    return (flowenv.digest("source-hash", 64) if flowenv else None) or ""


def _git(vcs: Node | None) -> str:
    """A PEP 751 git ``vcs`` table as ``git+URL@COMMIT[#subdirectory=DIR]``; "" otherwise."""
    if vcs is None or vcs.optional_str("type") != "git":
        return ""
    url, commit = vcs.url("url") or vcs.url("path"), vcs.digest("commit-id", 40)
    if not url or not commit:
        return ""
    subdirectory = vcs.optional_str("subdirectory")
    return f"git+{url}@{commit}{f'#subdirectory={subdirectory}' if subdirectory else ''}"


def parse_pylock_document(text: str, source: str = "pylock.toml") -> PyLock:
    """A PEP 751 document, its shape checked; a :class:`LockFileError` naming file and key."""
    root = Node(load_toml(text, source), source)
    tool = root.table("tool")
    flowenv = tool.table("flowenv") if tool else None
    environments = root.strings("environments")
    for i, marker in enumerate(environments):
        from packaging.markers import InvalidMarker, Marker

        try:
            Marker(marker)
        except InvalidMarker as exc:
            raise root.error(f"not a PEP 508 marker: {exc}", f"environments[{i}]") from None
    return PyLock(
        packages=tuple(_package(p) for p in root.array("packages")),
        environments=environments,
        platform=flowenv.optional_str("platform") if flowenv else None,
        python=flowenv.optional_str("python") if flowenv else None,
    )


def parse_pylock(text: str, source: str = "pylock.toml") -> tuple[LockedPackage, ...]:
    return parse_pylock_document(text, source).packages


def packages_for(
    lock: PyLock, platform: str, python: str, source: str
) -> tuple[LockedPackage, ...]:
    """The packages of ``lock`` that install on ``platform`` with ``python`` (PEP 751 markers).

    A lock whose ``environments`` exclude the target is refused; a package
    whose ``marker`` is false there is left out.
    """
    from flowenv.errors import LockFileError
    from flowenv.platforms import marker_environment

    environment = marker_environment(platform, python)
    if not lock.fits(environment):
        raise LockFileError(
            f"{source}: environments: the lock is not for {platform} with Python {python} "
            f"({' or '.join(lock.environments)})"
        )
    return tuple(p for p in lock.packages if p.applies_to(environment))
