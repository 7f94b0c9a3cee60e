"""Build real, installable wheels for tests, without setuptools or network.

A wheel is a zip with a ``.dist-info`` (METADATA, WHEEL, RECORD); writing one
directly keeps the test index build in milliseconds and fully deterministic
(fixed timestamps), so lock files made from it are byte-stable across runs.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs

_EPOCH = (2020, 1, 1, 0, 0, 0)


@attrs.frozen(kw_only=True)
class WheelSpec:
    name: str
    version: str
    requires: tuple[str, ...] = ()
    tag: str = "py3-none-any"
    #: Extra module source, e.g. {"alpha/core.py": "X = 1\n"}.
    files: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")

    @property
    def filename(self) -> str:
        return f"{self.module}-{self.version}-{self.tag}.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(spec: WheelSpec, directory: Path) -> Path:
    """Write ``spec`` as a wheel into ``directory``; its module records name, version, tag."""
    dist_info = f"{spec.module}-{spec.version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {spec.name}", f"Version: {spec.version}"]
    metadata += [f"Requires-Dist: {r}" for r in spec.requires]
    files: dict[str, str] = {
        f"{spec.module}/__init__.py": (
            f"NAME = {spec.name!r}\nVERSION = {spec.version!r}\nTAG = {spec.tag!r}\n"
        ),
        **spec.files,
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: flowenv-tests\nRoot-Is-Purelib: true\n"
            f"Tag: {spec.tag}\n"
        ),
    }
    record = []
    path = directory / spec.filename
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            data = text.encode()
            archive.writestr(zipfile.ZipInfo(name, _EPOCH), data)
            record.append(f"{name},{_record_hash(data)},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", _EPOCH), "\n".join(record) + "\n")
    return path


def build_simple_index(wheels: Iterable[Path], root: Path, files_url: str | None = None) -> Path:
    """A PEP 503 "simple" index over ``wheels`` (with sha256 fragments) under ``root``.

    Links are the wheels' ``file://`` URIs, or ``<files_url>/<filename>`` when the
    index is served over HTTP together with the wheels.
    """
    by_project: dict[str, list[Path]] = {}
    for wheel in wheels:
        project = wheel.name.split("-")[0].replace("_", "-").lower()
        by_project.setdefault(project, []).append(wheel)
    simple = root / "simple"
    for project, files in by_project.items():
        page = simple / project
        page.mkdir(parents=True, exist_ok=True)
        links = "".join(
            f'<a href="{f"{files_url}/{f.name}" if files_url else f.as_uri()}'
            f'#sha256={hashlib.sha256(f.read_bytes()).hexdigest()}">{f.name}</a>\n'
            for f in sorted(files)
        )
        (page / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    index = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(by_project))
    (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{index}</body></html>\n")
    return simple


#: The test index: dependencies between packages, several versions, and a
#: package whose only wheels are platform-specific (linux-64 and osx-arm64).
DEFAULT_WHEELS: Sequence[WheelSpec] = (
    WheelSpec(name="alpha", version="1.0"),
    WheelSpec(name="alpha", version="2.0", requires=("beta>=1.0",)),
    WheelSpec(name="beta", version="1.0"),
    WheelSpec(name="beta", version="1.5"),
    WheelSpec(name="gamma", version="1.0", tag="py3-none-manylinux_2_17_x86_64"),
    WheelSpec(name="gamma", version="1.0", tag="py3-none-macosx_11_0_arm64"),
    WheelSpec(name="delta", version="0.5", requires=("alpha>=2", "gamma==1.0")),
    WheelSpec(name="epsilon", version="3.1", requires=("beta<1.5",)),
)
