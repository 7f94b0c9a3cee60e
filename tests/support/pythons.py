"""A CPython "build" and a uv download list for it, so that tests never fetch a real one.

The archive has the layout of a python-build-standalone ``install_only``
archive (``python/bin/python3.X``, ``python/lib/python3.X/``) and really runs:
its ``bin/python3.X`` is a small script that execs an interpreter of that
exact version found on this machine, and its ``lib`` holds that
interpreter's ``_sysconfigdata`` module (uv rewrites it on install, and
refuses a build without one). uv is pointed at the list through its
documented ``UV_PYTHON_DOWNLOADS_JSON_URL`` setting; the list names the
archive by a ``file://`` URL and its sha256, which uv checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

#: flowenv platform -> (os, arch, libc) as uv's download list spells them.
TRIPLES = {
    "linux-64": ("linux", "x86_64", "gnu"),
    "linux-aarch64": ("linux", "aarch64", "gnu"),
    "osx-arm64": ("darwin", "aarch64", "none"),
    "osx-64": ("darwin", "x86_64", "none"),
}


def other_interpreter() -> tuple[Path, str] | None:
    """A real CPython on this machine whose minor version differs from the one running the tests.

    Its exact version is then one no interpreter of the test run's own kind matches.
    """
    candidates: list[Path] = []
    for root in (Path.home() / ".pyenv/versions", Path("/usr/local/bin"), Path("/usr/bin")):
        if root.name == "versions" and root.is_dir():
            candidates += sorted(root.glob("3.*/bin/python3.[0-9]*"))
        elif root.is_dir():
            candidates += sorted(root.glob("python3.[0-9]*"))
    own = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for path in candidates:
        if not re.fullmatch(r"python3\.\d+", path.name) or path.name == f"python{own}":
            continue
        ran = subprocess.run(
            [str(path), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=False,
        )
        version = ran.stdout.strip()
        if ran.returncode == 0 and re.fullmatch(r"3\.\d+\.\d+", version):
            return path.resolve(), version
    return None


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def _ask(python: Path, code: str) -> str:
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def build_archive(real: Path, version: str, directory: Path) -> Path:
    """An ``install_only``-style archive of ``version`` that runs ``real``."""
    minor = ".".join(version.split(".")[:2])
    sysconfig = _ask(real, "import sysconfig; print(sysconfig._get_sysconfigdata_name())")
    stdlib = _ask(real, "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"cpython-{version}+test-x86_64-unknown-linux-gnu-install_only.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        wrapper = f'#!/bin/sh\nexec "{real}" "$@"\n'.encode()
        _add(tar, f"python/bin/python{minor}", wrapper, 0o755)
        _link(tar, "python/bin/python3", f"python{minor}")
        _link(tar, "python/bin/python", f"python{minor}")
        data = (Path(stdlib) / f"{sysconfig}.py").read_bytes()
        _add(tar, f"python/lib/python{minor}/{sysconfig}.py", data)
    return archive


def write_download_list(archive: Path, version: str, platforms: list[str], path: Path) -> Path:
    """uv's download-list JSON offering ``archive`` as CPython ``version`` on ``platforms``."""
    major, minor, patch = (int(p) for p in version.split("."))
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    entries = {}
    for platform in platforms:
        os_name, arch, libc = TRIPLES[platform]
        shown = "macos" if os_name == "darwin" else os_name
        entries[f"cpython-{version}-{shown}-{arch}-{libc}"] = {
            "name": "cpython",
            "arch": {"family": arch, "variant": None},
            "os": os_name,
            "libc": libc,
            "major": major,
            "minor": minor,
            "patch": patch,
            "prerelease": "",
            "url": archive.as_uri(),
            "sha256": sha256,
            "variant": None,
        }
    path.write_text(json.dumps(entries, indent=1))
    return path


def path_without(version: str, base: str) -> str:
    """``base`` (a PATH) minus every directory holding a ``python<major.minor>``."""
    minor = ".".join(version.split(".")[:2])
    kept = [d for d in base.split(":") if d and not (Path(d) / f"python{minor}").exists()]
    return ":".join(kept)
