"""Write a local package directory with an in-tree PEP 517 backend (no build requirements).

``uv build`` builds it for real, with no index and no network: the backend
ships inside the package (``backend-path``), as PEP 517 allows. The wheel
it makes carries ``tag``, so a test can make a platform-specific package too.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

_BACKEND = '''
"""A tiny PEP 517 backend: zips src/ and a .dist-info into a wheel."""
import base64, hashlib, os, tomllib, zipfile

def _meta():
    with open("pyproject.toml", "rb") as f:
        data = tomllib.load(f)
    return data["project"], data["tool"]["testbackend"]["tag"]

def _record(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project, tag = _meta()
    name, version = project["name"].replace("-", "_"), project["version"]
    dist_info = f"{name}-{version}.dist-info"
    files = {}
    for folder, _, names in sorted(os.walk("src")):
        for file in sorted(names):
            path = os.path.join(folder, file)
            with open(path, "rb") as f:
                files[os.path.relpath(path, "src").replace(os.sep, "/")] = f.read()
    metadata = [f"Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in project.get("dependencies", [])]
    files[f"{dist_info}/METADATA"] = ("\\n".join(metadata) + "\\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\\nGenerator: testbackend\\nRoot-Is-Purelib: true\\nTag: {tag}\\n"
    ).encode()
    record = [f"{n},{_record(d)},{len(d)}" for n, d in files.items()]
    files[f"{dist_info}/RECORD"] = ("\\n".join(record + [f"{dist_info}/RECORD,,"]) + "\\n").encode()
    filename = f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as wheel:
        for n, d in files.items():
            wheel.writestr(zipfile.ZipInfo(n, (1980, 1, 1, 0, 0, 0)), d)
    return filename
'''


def write_local_package(
    directory: Path,
    name: str,
    version: str,
    dependencies: Sequence[str] = (),
    *,
    module_source: str = "",
    tag: str = "py3-none-any",
) -> Path:
    """A buildable package at ``directory``; its module holds ``module_source``."""
    module = name.replace("-", "_")
    (directory / "src" / module).mkdir(parents=True, exist_ok=True)
    (directory / "_build").mkdir(exist_ok=True)
    (directory / "_build" / "backend.py").write_text(_BACKEND)
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (directory / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["_build"]

            [project]
            name = "{name}"
            version = "{version}"
            dependencies = [{deps}]

            [tool.testbackend]
            tag = "{tag}"
            """
        )
    )
    (directory / "src" / module / "__init__.py").write_text(
        module_source or f"NAME = {name!r}\nVERSION = {version!r}\n"
    )
    return directory
