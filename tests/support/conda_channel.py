"""Build real conda channels for tests: ``.tar.bz2`` packages indexed with rattler.

A conda package is a tar archive holding ``info/index.json`` (name, version,
build, dependencies), ``info/paths.json`` (every file with its sha256) and
the files themselves. Writing it directly keeps the channel build fast and
deterministic (fixed timestamps, sorted members), so locks made against it
are byte-stable; rattler's own indexer writes the repodata, exactly as it
would for a real channel.

The ``python`` package of the main channel is a stand-in: resolution and
installation only need its metadata and files, not a working interpreter.
:func:`live_python_channel` builds a channel whose ``python`` is real (see there).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import pytest

from tests.support.wheels import WheelSpec, build_wheel

_MTIME = 1_577_836_800  # 2020-01-01, so archives (and their hashes) never change
#: The build timestamp recorded in index.json, in milliseconds as conda does.
_TIMESTAMP_MS = _MTIME * 1000


@attrs.frozen(kw_only=True)
class CondaSpec:
    name: str
    version: str
    subdir: str  # "noarch", "linux-64", "osx-arm64", ...
    depends: tuple[str, ...] = ()
    build_number: int = 0
    #: "python" installs ``site-packages/`` under the env's Python; "generic" as is.
    noarch: str | None = None
    files: Mapping[str, str] = attrs.field(factory=dict)
    #: Symbolic links: path in the package -> link target.
    symlinks: Mapping[str, str] = attrs.field(factory=dict)
    #: A real record's build string (else one is made up from subdir and build number).
    build_string: str | None = None
    constrains: tuple[str, ...] = ()
    license: str = "MIT"

    @property
    def build(self) -> str:
        return self.build_string or f"h{self.subdir.replace('-', '')}_{self.build_number}"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"


def _member(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = _MTIME
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    archive.addfile(info, io.BytesIO(data))


def _symlink(archive: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mtime = _MTIME
    info.mode = 0o777
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    archive.addfile(info)


def build_conda_package(spec: CondaSpec, channel: Path) -> Path:
    """Write ``spec`` as ``<channel>/<subdir>/<name>-<version>-<build>.tar.bz2``."""
    index: dict[str, object] = {
        "name": spec.name,
        "version": spec.version,
        "build": spec.build,
        "build_number": spec.build_number,
        "depends": list(spec.depends),
        "license": spec.license,
        "subdir": spec.subdir,
        "timestamp": _TIMESTAMP_MS,
    }
    if spec.subdir != "noarch":
        os_name, _, arch = spec.subdir.partition("-")
        index |= {
            "platform": {"osx": "osx", "linux": "linux", "win": "win"}[os_name],
            "arch": {"64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}[arch],
        }
    if spec.noarch:
        index["noarch"] = spec.noarch
    if spec.constrains:
        index["constrains"] = list(spec.constrains)
    files = {path: text.encode() for path, text in sorted(spec.files.items())}
    paths = {
        "paths": [
            {
                "_path": path,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(data).hexdigest(),
                "size_in_bytes": len(data),
            }
            for path, data in files.items()
        ]
        + [
            {"_path": path, "path_type": "softlink", "size_in_bytes": 0}
            for path in sorted(spec.symlinks)
        ],
        "paths_version": 1,
    }
    info_files = {
        "info/index.json": json.dumps(index, indent=2, sort_keys=True).encode(),
        "info/paths.json": json.dumps(paths, indent=2, sort_keys=True).encode(),
        "info/files": "".join(f"{p}\n" for p in [*files, *sorted(spec.symlinks)]).encode(),
    }
    if spec.noarch == "python":
        info_files["info/link.json"] = json.dumps(
            {"noarch": {"type": "python"}, "package_metadata_version": 1}, sort_keys=True
        ).encode()
    target = channel / spec.subdir / spec.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as archive:
        for name, data in sorted({**info_files, **files}.items()):
            _member(archive, name, data, 0o755 if name.startswith("bin/") else 0o644)
        for name, link_target in sorted(spec.symlinks.items()):
            _symlink(archive, name, link_target)
    target.write_bytes(buffer.getvalue())
    return target


def build_channel(specs: Sequence[CondaSpec], channel: Path) -> Path:
    """Build every package of ``specs`` into ``channel`` and index it with rattler."""
    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    for spec in specs:
        build_conda_package(spec, channel)
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False))
    return channel


def _python(version: str, subdir: str) -> CondaSpec:
    short = ".".join(version.split(".")[:2])
    virtual = "__glibc >=2.17,<3.0.a0" if subdir.startswith("linux") else "__osx >=11.0"
    return CondaSpec(
        name="python",
        version=version,
        subdir=subdir,
        depends=(virtual,),
        files={
            f"bin/python{short}": f"#!/bin/sh\necho 'fake python {version}'\n",
            f"lib/python{short}/os.py": f"# fake standard library of Python {version}\n",
        },
    )


_PLATFORMS = ("linux-64", "osx-arm64")

#: The main test channel: a Python stand-in in two versions, numpy per platform
#: with a linux-only native dependency, pure-Python packages in noarch.
MAIN_PACKAGES: tuple[CondaSpec, ...] = (
    *(_python(v, p) for v in ("3.9.13", "3.11.7") for p in _PLATFORMS),
    *(
        CondaSpec(
            name="numpy",
            version=version,
            subdir=platform,
            depends=("python >=3.9", *(("libgomp >=13",) if platform == "linux-64" else ())),
            files={f"lib/numpy-{version}.txt": f"numpy {version} for {platform}\n"},
        )
        for version in ("1.25.2", "1.26.0")
        for platform in _PLATFORMS
    ),
    CondaSpec(
        name="libgomp",
        version="13.2.0",
        subdir="linux-64",
        depends=("__glibc >=2.17",),
        files={"lib/libgomp.so.1": "not really a shared library\n"},
    ),
    CondaSpec(
        name="joblib",
        version="1.3.2",
        subdir="noarch",
        noarch="python",
        depends=("python >=3.7",),
        files={"site-packages/joblib/__init__.py": "__version__ = '1.3.2'\n"},
    ),
    CondaSpec(
        name="scikit-learn",
        version="1.3.1",
        subdir="noarch",
        noarch="python",
        depends=("python >=3.9", "numpy >=1.17.3", "joblib >=1.1.1"),
        files={"site-packages/sklearn/__init__.py": "__version__ = '1.3.1'\n"},
    ),
    CondaSpec(
        name="cudatoolkit",
        version="11.8.0",
        subdir="linux-64",
        depends=("__cuda >=11.8",),
        files={"lib/libcudart.so": "not really CUDA\n"},
    ),
)

#: A second channel, reached with ``<channel>::pytorch``.
PYTORCH_PACKAGES: tuple[CondaSpec, ...] = tuple(
    CondaSpec(
        name="pytorch",
        version="2.1.2",
        subdir=platform,
        depends=("python >=3.9", "numpy >=1.21"),
        files={"lib/torch.txt": f"pytorch 2.1.2 for {platform}\n"},
    )
    for platform in _PLATFORMS
)

#: PyPI wheels for mixed envs: the PyPI twins of conda packages (at conda's
#: versions) and a PyPI-only package that needs them.
MIXED_WHEELS: tuple[WheelSpec, ...] = (
    WheelSpec(name="scikit-learn", version="1.3.1", requires=("numpy>=1.17",)),
    WheelSpec(name="scikit-learn", version="1.4.0", requires=("numpy>=1.19",)),
    WheelSpec(name="numpy", version="1.26.0"),
    WheelSpec(name="numpy", version="2.0.0"),
    WheelSpec(name="skplot", version="0.3", requires=("scikit-learn>=1.3", "numpy", "alpha")),
)


@attrs.frozen
class CondaChannels:
    """Where the test channels live; ``*_url`` values go into ``[project.conda] channels``."""

    main: Path
    pytorch: Path
    empty: Path
    #: A find-links directory of :data:`MIXED_WHEELS`.
    wheels: Path

    @property
    def main_url(self) -> str:
        return self.main.as_uri()

    @property
    def pytorch_url(self) -> str:
        return self.pytorch.as_uri()


@pytest.fixture(scope="session")
def conda_channels(tmp_path_factory: pytest.TempPathFactory) -> CondaChannels:
    """The main and pytorch channels, an empty channel, and the mixed-env wheels (built once)."""
    root = tmp_path_factory.mktemp("conda")
    wheels = root / "wheels"
    for wheel in MIXED_WHEELS:
        build_wheel(wheel, wheels)
    return CondaChannels(
        main=build_channel(MAIN_PACKAGES, root / "main"),
        pytorch=build_channel(PYTORCH_PACKAGES, root / "pytorch"),
        empty=build_channel((), root / "empty"),
        wheels=wheels,
    )


def live_python_packages(subdir: str) -> tuple[CondaSpec, ...]:
    """A ``python`` conda package that makes its prefix a working interpreter, and one to import.

    The package holds ``bin/python3.X``, a symlink to the CPython running the
    tests, and ``pyvenv.cfg`` naming that CPython's ``bin`` as ``home``: the
    prefix then behaves like a venv made from it, so ``sys.prefix`` is the
    prefix and ``lib/python3.X/site-packages`` (where noarch packages and uv
    install) is on ``sys.path``, while the standard library is the real one.
    """
    major, minor, micro = sys.version_info[:3]
    short = f"{major}.{minor}"
    real = Path(sys.base_prefix) / "bin" / f"python{short}"
    virtual = "__glibc >=2.17,<3.0.a0" if subdir.startswith("linux") else "__osx >=11.0"
    return (
        CondaSpec(
            name="python",
            version=f"{short}.{micro}",
            subdir=subdir,
            depends=(virtual,),
            files={
                "pyvenv.cfg": (
                    f"home = {real.parent}\ninclude-system-site-packages = false\n"
                    f"version = {short}.{micro}\n"
                ),
            },
            symlinks={f"bin/python{short}": str(real)},
        ),
        CondaSpec(
            name="condapkg",
            version="2.1",
            subdir="noarch",
            noarch="python",
            depends=("python >=3.9",),
            files={"site-packages/condapkg/__init__.py": "VERSION = '2.1'\n"},
        ),
    )


@pytest.fixture(scope="session")
def live_python_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A channel (for this machine's platform) whose ``python`` really runs; see above."""
    from flowenv.platforms import host_platform

    real = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if not real.is_file():
        pytest.skip(f"no {real.name} in {real.parent} to link a conda python to")
    return build_channel(live_python_packages(host_platform()), tmp_path_factory.mktemp("live"))


def conda_lock_parse(path: Path) -> list[tuple[str, str, str, str, str, str | None, str | None]]:
    """``path`` as conda-lock's own parser reads it, sorted; raises if conda-lock rejects it.

    One (platform, manager, name, version, url, md5, sha256) tuple per package.
    """
    import warnings

    # conda-lock's vendored conda warns about its own deprecations on import.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from conda_lock.lockfile import parse_conda_lock_file

        lockfile = parse_conda_lock_file(path)
    return sorted(
        (p.platform, p.manager, p.name, p.version, p.url, p.hash.md5, p.hash.sha256)
        for p in lockfile.package
    )


def conda_lock_render_explicit(path: Path, platform: str, workdir: Path) -> list[str]:
    """``conda-lock render --kind explicit`` lines for ``platform`` (comments dropped, pip kept)."""
    import subprocess
    import sys

    workdir.mkdir(parents=True, exist_ok=True)
    conda_lock = Path(sys.executable).parent / "conda-lock"
    subprocess.run(
        [str(conda_lock), "render", "--kind", "explicit", "-p", platform, str(path)],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    )
    text = (workdir / f"conda-{platform}.lock").read_text()
    lines = text.splitlines()
    return [line for line in lines if not line.startswith("#") or line.startswith("# pip ")]
