"""The uv adapter: every call flowenv makes to uv goes through here.

uv is used as a program (the ``uv`` wheel's binary), not a library: its
command line is its stable interface.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from flowenv import _scratch as scratch
from flowenv._subprocess import describe_failure, run
from flowenv.config.models import PypiSettings, SystemRequirements
from flowenv.errors import FlowenvError, ResolutionError, StoreError
from flowenv.platforms import UV_TARGETS
from flowenv.system import uv_environment, uv_target


@functools.cache
def uv_binary() -> str:
    """Path of the uv executable installed with flowenv's ``uv`` dependency.

    Looked up beside this interpreter's scripts first, so the pinned uv wins
    over whatever ``uv`` is on PATH. (``uv.find_uv_bin`` is not used: it fails
    on interpreters whose sysconfig has no ``EXE``.) The warm server's child
    clears this cache (its client's PATH may differ); the installed one is
    kept apart, as no environment variable moves it.
    """
    installed = _installed_uv()
    if installed is not None:
        return installed
    found = shutil.which("uv")
    if found is None:
        raise FlowenvError(
            "uv not found: install flowenv with its dependencies (pip install flowenv)"
        )
    return found


_installed: list[str] = []


def _installed_uv() -> str | None:
    # Found once per process (sysconfig's first use costs ~1.5 ms), not again in
    # every served lock; not found is not remembered: a uv installed beside the
    # interpreter later (into a warm server's venv) is then seen.
    if not _installed:
        exe = "uv.exe" if os.name == "nt" else "uv"
        for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
            candidate = Path(scripts) / exe
            if candidate.is_file():
                _installed.append(str(candidate))
                break
    return _installed[0] if _installed else None


def index_args(settings: PypiSettings) -> list[str]:
    """uv arguments naming the configured indexes and find-links locations."""
    args: list[str] = []
    if settings.index_url:
        args += ["--default-index", settings.index_url]
    for url in settings.extra_index_urls:
        args += ["--index", url]
    for location in settings.find_links:
        args += ["--find-links", location]
    return args


def requirements_text(lines: Iterable[str]) -> str:
    """The text of a requirements file uv reads: one requirement per line.

    The loader and the store readers already refuse names, extras and versions
    with a line break; this is the last check before uv sees the file, so a
    line break from any path can never become an option line (``-r /etc/x``).
    """
    lines = list(lines)
    for line in lines:
        if any(ch in line for ch in "\r\n\x00\x0b\x0c"):
            raise FlowenvError(f"refusing a requirement with a line break: {line!r}")
    return "".join(f"{line}\n" for line in lines)


def compile_args(
    requirements_in: Path,
    output: Path,
    *,
    python: str,
    platform: str,
    settings: PypiSettings,
    constraints_txt: Path | None = None,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    system: SystemRequirements | None = None,
    excludes_txt: Path | None = None,
) -> list[str | Path]:
    """The ``uv pip compile`` command line for one env × platform (the benchmark reuses it).

    ``requirements_in`` is a requirements file, or the pyproject.toml that
    :func:`pinned_project` writes when packages are pinned to named indexes.
    """
    args: list[str | Path] = [
        uv_binary(),
        "pip",
        "compile",
        requirements_in,
        "--format",
        "pylock.toml",
        "--output-file",
        output,
        "--python-platform",
        uv_target(platform, UV_TARGETS[platform], system or SystemRequirements()),
        "--python-version",
        python,
        # The target is --python-version; the interpreter only builds sdists for
        # their metadata. Naming this one skips interpreter discovery, and
        # without --no-python-downloads uv would fetch a managed CPython of the
        # target version first (seconds, or a timeout where GitHub is unreachable).
        "--python",
        sys.executable,
        "--no-python-downloads",
        "--no-header",
        "--quiet",
        "--color",
        "never",
        "--no-config",
        *index_args(settings),
    ]
    if constraints_txt is not None:
        args += ["--constraint", constraints_txt]
    if excludes_txt is not None:
        args += ["--excludes", excludes_txt]
    if upgrade:
        args.append("--upgrade")
    for package in upgrade_packages:
        args += ["--upgrade-package", package]
    return args


def pinned_project(
    requirements: Sequence[str], pinned: Mapping[str, str], settings: PypiSettings
) -> str:
    """A pyproject.toml whose dependencies are ``requirements``, each pinned package
    taken from its named index only.

    ``uv pip compile`` reads ``[tool.uv.sources]`` and ``[[tool.uv.index]]``
    from a pyproject.toml input (a requirements file cannot pin a package to an
    index). ``explicit = true`` is uv's guard against dependency confusion: an
    explicit index serves only the packages pinned to it, never their
    dependencies. Credentials are not written here beyond what the URL holds;
    uv finds the rest (netrc, ``uv auth``, ``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD``).
    """
    import json

    from flowenv.lockfiles.toml_render import render

    urls = dict(settings.indexes)
    used = sorted(set(pinned.values()))
    document = {
        "project": {"name": "flowenv-env", "version": "0", "dependencies": list(requirements)},
        "tool": {
            "uv": {
                "sources": {name: {"index": index} for name, index in sorted(pinned.items())},
                "index": [{"name": n, "url": urls[n], "explicit": True} for n in used],
            }
        },
    }
    # render() writes tables of arrays of tables; a round trip through JSON drops tuples.
    return render(json.loads(json.dumps(document)))


def compile_pylock(
    requirements: Sequence[str],
    *,
    python: str,
    platform: str,
    settings: PypiSettings,
    label: str,
    constraints: Sequence[str] = (),
    previous: str | None = None,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    root: Path | None = None,
    pinned: Mapping[str, str] | None = None,
    system: SystemRequirements | None = None,
    excludes: Sequence[str] = (),
) -> str:
    """Resolve ``requirements`` for ``platform`` and ``python``; uv's pylock.toml text.

    ``previous`` (an earlier lock's text) is handed to uv as the existing
    output file, so versions stay put unless the inputs or ``upgrade`` ask
    otherwise, as ``pip-compile`` does. ``label`` names the env × platform in
    errors. ``pinned`` (package -> named index) and ``system`` (glibc and macOS
    targets) are the env's choices for this platform. ``excludes`` are left out
    of the resolution with everything only they need (uv ``--excludes``:
    packages something else already installs).
    """
    # Removed through flowenv._scratch: in the background while `flowenv lock` runs.
    tmp = tempfile.mkdtemp(prefix="flowenv-uv-")
    try:
        workdir = Path(tmp)
        if pinned:
            requirements_in = workdir / "pyproject.toml"
            requirements_in.write_text(
                pinned_project(requirements, pinned, settings), encoding="utf-8"
            )
        else:
            requirements_in = workdir / "requirements.in"
            requirements_in.write_text(requirements_text(requirements), encoding="utf-8")
        # uv insists on a PEP 751 file name for its output.
        output = workdir / "pylock.toml"
        if previous is not None:
            output.write_text(previous, encoding="utf-8")
        constraints_txt = None
        if constraints:
            constraints_txt = workdir / "constraints.txt"
            constraints_txt.write_text(requirements_text(constraints), encoding="utf-8")
        excludes_txt = None
        if excludes:
            excludes_txt = workdir / "excludes.txt"
            excludes_txt.write_text(requirements_text(excludes), encoding="utf-8")
        args = compile_args(
            requirements_in,
            output,
            python=python,
            platform=platform,
            settings=settings,
            constraints_txt=constraints_txt,
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
            system=system,
            excludes_txt=excludes_txt,
        )
        # Relative find-links and file: indexes are relative to the project root.
        env = {
            **os.environ,
            "UV_NO_PROGRESS": "1",
            **uv_environment(platform, system or SystemRequirements()),
        }
        result = run(args, cwd=root, env=env)
        if result.returncode != 0:
            raise ResolutionError(f"cannot resolve {label}:\n{describe_failure(args, result)}")
        return output.read_text(encoding="utf-8")
    finally:
        scratch.remove(tmp)


def _offline_env(cache_dir: Path) -> dict[str, str]:
    """uv's environment for building from local files: no index, no Python downloads, own cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    return env | {
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        # uv's cache inside flowenv's: hydrate writes nothing outside the prefix and cache.
        "UV_CACHE_DIR": str(cache_dir),
    }


def _interpreter(python: str) -> str:
    """This interpreter's path when it is the requested ``python`` ("3.11"), else ``python``.

    An explicit path spares uv's discovery, which runs every candidate Python
    on PATH (pyenv shims included) and is most of a cold ``uv venv``.
    """
    parts = python.split(".")
    if not (1 <= len(parts) <= 3 and all(p.isdigit() for p in parts)):
        return python
    if tuple(int(p) for p in parts) != tuple(sys.version_info[: len(parts)]):
        return python
    major, minor = sys.version_info[:2]
    name = "python.exe" if os.name == "nt" else f"bin/python{major}.{minor}"
    candidate = Path(sys.base_prefix) / name
    return str(candidate) if candidate.is_file() else python


class InterpreterNotFound(FlowenvError):
    """No interpreter on this machine matches the requested Python version."""


def create_venv(prefix: Path, python: str, *, cache_dir: Path, label: str) -> None:
    """A venv at ``prefix`` with an installed Python matching ``python``; never downloads one.

    ``python`` is a version ("3.11", "3.9.13") or an interpreter's path.
    """
    args: list[str | Path] = [
        uv_binary(),
        "venv",
        prefix,
        "--python",
        _interpreter(python),
        "--no-python-downloads",
        "--no-config",
        "--no-project",
        "--quiet",
        "--color",
        "never",
    ]
    result = run(args, env=_offline_env(cache_dir))
    if result.returncode != 0:
        detail = describe_failure(args, result)
        if "No interpreter found" in detail or "not found" in detail.lower():
            raise InterpreterNotFound(
                f"{label}: no Python {python} interpreter on this machine and none in the store "
                f"(hydrate never downloads one); install Python {python} here, or run "
                f"`flowenv sync` where a CPython {python} build can be fetched:\n{detail}"
            )
        raise StoreError(f"{label}: cannot create a venv with Python {python}:\n{detail}")


def install_wheels_offline(
    python: Path,
    requirements: Path,
    wheel_dir: Path,
    *,
    cache_dir: Path,
    label: str,
    system: bool = False,
) -> None:
    """Install exactly the pinned ``requirements`` ("name==version" lines) from ``wheel_dir``.

    No index, no dependency resolution (the lock already is the resolution),
    no network: uv only picks, among the wheels in ``wheel_dir`` (every one
    already verified against the lock's sha256 by the caller), the one that
    fits the interpreter. ``system`` allows a non-venv interpreter (a conda prefix).
    """
    args: list[str | Path] = [
        uv_binary(),
        "pip",
        "install",
        "--python",
        python,
        "-r",
        requirements,
        "--no-index",
        "--find-links",
        wheel_dir,
        "--offline",
        "--no-deps",
        "--no-build",
        "--no-config",
        "--quiet",
        "--color",
        "never",
    ]
    if system:
        args.append("--break-system-packages")
    result = run(args, env=_offline_env(cache_dir))
    if result.returncode != 0:
        detail = describe_failure(args, result)
        raise StoreError(f"{label}: installing the locked wheels failed:\n{detail}")


#: Fixed timestamps in built wheels (1980-01-01, the zip epoch): a rebuild of the
#: same source then gives the same bytes with backends that honour it.
SOURCE_DATE_EPOCH = "315532800"


def build_wheel(source: Path, out_dir: Path, *, settings: PypiSettings, label: str) -> Path:
    """Build the package in ``source`` into a wheel in ``out_dir`` with ``uv build``; its path.

    Build requirements come from the project's indexes, as for locking.
    """
    args: list[str | Path] = [
        uv_binary(),
        "build",
        source,
        "--wheel",
        "--out-dir",
        out_dir,
        "--python",
        sys.executable,
        "--no-python-downloads",
        "--no-config",
        "--quiet",
        "--color",
        "never",
        *index_args(settings),
    ]
    env = {**os.environ, "UV_NO_PROGRESS": "1", "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    result = run(args, env=env)
    if result.returncode != 0:
        raise FlowenvError(f"{label}: building the wheel failed:\n{describe_failure(args, result)}")
    wheels = sorted(out_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise FlowenvError(f"{label}: uv build made {len(wheels)} wheels, expected one")
    return wheels[0]


# -- CPython builds (python-build-standalone, as uv manages them) ---------------------
def _python_args(*args: str | Path) -> list[str | Path]:
    return [uv_binary(), "python", *args, "--no-config", "--color", "never"]


def python_downloads(python: str) -> list[dict[str, object]]:
    """uv's download list for ``python`` ("3.9", "3.9.13") on every platform.

    The user's uv settings apply (``UV_PYTHON_INSTALL_MIRROR``,
    ``UV_PYTHON_DOWNLOADS_JSON_URL``): they say where CPython builds come from.
    """
    import json

    args = _python_args("list", python, "--all-platforms", "--only-downloads")
    args += ["--output-format", "json"]
    result = run(args)
    if result.returncode != 0:
        raise StoreError(f"cannot list CPython {python} builds:\n{describe_failure(args, result)}")
    try:
        entries = json.loads(result.stdout)
        if not isinstance(entries, list):
            raise ValueError("not a list")
    except ValueError as exc:
        raise StoreError(f"uv python list printed no download list: {exc}") from None
    return [e for e in entries if isinstance(e, dict)]


def download_python(key: str, archives: Path, scratch: Path, *, label: str) -> Path:
    """Download the CPython build ``key`` (any platform); the archive, sha256-checked by uv.

    uv keeps the archive it verified in ``UV_PYTHON_CACHE_DIR`` (``archives``,
    empty before): that file is what goes to the store. The build is also
    unpacked into ``scratch``, which the caller throws away.
    """
    args = _python_args("install", key, "--install-dir", scratch, "--no-bin", "--no-registry")
    env = {**os.environ, "UV_PYTHON_CACHE_DIR": str(archives), "UV_NO_PROGRESS": "1"}
    result = run(args, env=env)
    found = [p for p in archives.iterdir() if p.is_file()] if archives.is_dir() else []
    if result.returncode != 0 or len(found) != 1:
        raise StoreError(f"{label}: cannot fetch CPython {key}:\n{describe_failure(args, result)}")
    return found[0]


def install_python(
    key: str,
    entry: dict[str, object],
    archive: Path,
    install_dir: Path,
    *,
    cache_dir: Path,
    label: str,
) -> None:
    """Install the verified CPython archive ``archive`` as uv's build ``key``, offline.

    uv is handed a one-entry download list naming the local file (and its
    sha256, which uv checks again), so nothing is fetched from anywhere.
    """
    import json

    listing = archive.with_name(f".{archive.name}.{os.getpid()}.downloads.json")
    listing.write_text(json.dumps({key: {**entry, "url": archive.as_uri()}}), encoding="utf-8")
    args = _python_args(
        "install",
        key,
        "--install-dir",
        install_dir,
        "--no-bin",
        "--no-registry",
        "--python-downloads-json-url",
        listing,
    )
    env = _offline_env(cache_dir) | {"UV_PYTHON_DOWNLOADS": "manual"}
    try:
        result = run(args, env=env)
    finally:
        listing.unlink(missing_ok=True)
    if result.returncode != 0:
        detail = describe_failure(args, result)
        raise StoreError(f"{label}: cannot install CPython {key} from the store:\n{detail}")
