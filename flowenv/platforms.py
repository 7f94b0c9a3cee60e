"""The platforms flowenv locks for, named as conda names them, and their uv targets."""

from __future__ import annotations

import platform as _platform
import sys

#: conda subdir name -> uv ``--python-platform`` target.
#: Linux targets pin manylinux_2_28 (glibc 2.28), the same glibc the conda
#: resolver assumes by default, so both halves of a mixed env agree.
UV_TARGETS: dict[str, str] = {
    "linux-64": "x86_64-manylinux_2_28",
    "linux-aarch64": "aarch64-manylinux_2_28",
    "osx-64": "x86_64-apple-darwin",
    "osx-arm64": "aarch64-apple-darwin",
    "win-64": "x86_64-pc-windows-msvc",
}

KNOWN_PLATFORMS: tuple[str, ...] = tuple(UV_TARGETS)


def host_platform() -> str:
    """The conda-style name of the platform this interpreter runs on."""
    machine = _platform.machine().lower()
    arm = machine in ("arm64", "aarch64")
    # A plain str: mypy would otherwise judge the other OSes' branches unreachable.
    system: str = sys.platform
    if system.startswith("linux"):
        return "linux-aarch64" if arm else "linux-64"
    if system == "darwin":
        return "osx-arm64" if arm else "osx-64"
    if system == "win32":
        return "win-64"
    raise RuntimeError(f"unsupported host platform: {system} {machine}")


def default_platforms() -> tuple[str, ...]:
    """linux-64 (where remote steps run) plus the host platform, in a stable order."""
    wanted = {"linux-64", host_platform()}
    return tuple(p for p in KNOWN_PLATFORMS if p in wanted)


#: PEP 508 marker that holds exactly on each platform (a pylock's ``environments``),
#: so an installer refuses a lock made for another platform.
ENVIRONMENT_MARKERS: dict[str, str] = {
    "linux-64": "sys_platform == 'linux' and platform_machine == 'x86_64'",
    "linux-aarch64": "sys_platform == 'linux' and platform_machine == 'aarch64'",
    "osx-64": "sys_platform == 'darwin' and platform_machine == 'x86_64'",
    "osx-arm64": "sys_platform == 'darwin' and platform_machine == 'arm64'",
    "win-64": "sys_platform == 'win32' and platform_machine == 'AMD64'",
}


_MARKER_FACTS: dict[str, tuple[str, str, str, str]] = {
    # platform -> (sys_platform, platform_system, platform_machine, os_name)
    "linux-64": ("linux", "Linux", "x86_64", "posix"),
    "linux-aarch64": ("linux", "Linux", "aarch64", "posix"),
    "osx-64": ("darwin", "Darwin", "x86_64", "posix"),
    "osx-arm64": ("darwin", "Darwin", "arm64", "posix"),
    "win-64": ("win32", "Windows", "AMD64", "nt"),
}


def marker_environment(platform: str, python: str) -> dict[str, str]:
    """The PEP 508 marker variables of CPython ``python`` on ``platform`` (to evaluate markers)."""
    sys_platform, system, machine, os_name = _MARKER_FACTS[platform]
    parts = python.split(".")
    short = ".".join(parts[:2])
    full = python if len(parts) > 2 else f"{short}.0"
    return {
        "sys_platform": sys_platform,
        "platform_system": system,
        "platform_machine": machine,
        "os_name": os_name,
        "python_version": short,
        "python_full_version": full,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": full,
        "platform_release": "",
        "platform_version": "",
    }


#: conda subdir name -> (os, arch, libc) of uv's CPython builds (python-build-standalone).
UV_PYTHON_PLATFORMS: dict[str, tuple[str, str, str]] = {
    "linux-64": ("linux", "x86_64", "gnu"),
    "linux-aarch64": ("linux", "aarch64", "gnu"),
    "osx-64": ("macos", "x86_64", "none"),
    "osx-arm64": ("macos", "aarch64", "none"),
    "win-64": ("windows", "x86_64", "none"),
}
