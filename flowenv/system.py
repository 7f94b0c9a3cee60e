"""System requirements (cuda, glibc, macos): what they mean for a solve; does a machine meet them.

One declaration drives three things:

* the conda virtual packages a solve assumes (``__cuda``, ``__glibc``, ``__osx``);
* the PyPI platform uv targets (``x86_64-manylinux_2_34`` from glibc 2.34, the
  macOS deployment target from macos);
* the check hydrate makes on the machine that builds the env.

Each requirement applies on the OSes where it means something (glibc on
Linux, macos on macOS, cuda on Linux and Windows), so a ``cuda`` requirement
never stales or constrains an osx-arm64 lock. The detection of the machine is
the one impure part, kept at the bottom; ``CONDA_OVERRIDE_<NAME>`` variables
(conda's and rattler's convention) take precedence over what is detected.
"""

from __future__ import annotations

import os
import platform as _platform
from collections.abc import Iterable, Mapping

from flowenv.config.models import SystemRequirements

#: requirement -> the OSes (conda platform prefixes) it applies on.
APPLIES_ON: dict[str, tuple[str, ...]] = {
    "cuda": ("linux", "win"),
    "glibc": ("linux",),
    "macos": ("osx",),
}
#: requirement -> the conda virtual package it sets.
VIRTUAL_PACKAGES: dict[str, str] = {"cuda": "__cuda", "glibc": "__glibc", "macos": "__osx"}
#: The glibc versions uv has a ``--python-platform`` target for (``<arch>-manylinux_2_<minor>``).
UV_MANYLINUX_MINORS: tuple[int, ...] = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
#: Environment variable that skips the hydrate check (a builder without the GPU it builds for).
IGNORE_ENV = "FLOWENV_IGNORE_SYSTEM_REQUIREMENTS"


def ignoring_system_requirements(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``$FLOWENV_IGNORE_SYSTEM_REQUIREMENTS`` says to skip the machine check.

    "false", "no" and "off" mean what they say: a check that guards against a
    CUDA env on a machine without the driver must not be skipped by a "false".
    """
    value = (os.environ if environ is None else environ).get(IGNORE_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def applicable(requirements: SystemRequirements, platform: str) -> tuple[tuple[str, str], ...]:
    """The (name, version) requirements that mean something on ``platform``."""
    os_name = platform.partition("-")[0]
    return tuple((n, v) for n, v in requirements.items() if os_name in APPLIES_ON[n])


def virtual_package_overrides(
    requirements: SystemRequirements, platform: str
) -> tuple[tuple[str, str], ...]:
    """(virtual package, version) pairs a conda solve for ``platform`` must assume."""
    return tuple((VIRTUAL_PACKAGES[n], v) for n, v in applicable(requirements, platform))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def uv_target(platform: str, default: str, requirements: SystemRequirements) -> str:
    """uv's ``--python-platform`` for ``platform``, raised to the env's glibc when it says one.

    uv knows a fixed list of manylinux targets: the newest one not above the
    required glibc is taken (glibc 2.29 -> manylinux_2_28), so no wheel is
    chosen that the declared glibc could not load.
    """
    glibc = dict(applicable(requirements, platform)).get("glibc")
    if glibc is None or "manylinux" not in default:
        return default
    major, minor = _version(glibc)[:2]
    usable = [m for m in UV_MANYLINUX_MINORS if (2, m) <= (major, minor)]
    arch = default.partition("-")[0]
    # The loader refuses glibc < 2.17, so there is always one; a newer glibc
    # than uv knows gets uv's newest target.
    return f"{arch}-manylinux_2_{usable[-1]}"


def uv_environment(platform: str, requirements: SystemRequirements) -> dict[str, str]:
    """Environment variables uv reads for the target: the macOS deployment target."""
    macos = dict(applicable(requirements, platform)).get("macos")
    return {"MACOSX_DEPLOYMENT_TARGET": macos} if macos else {}


# -- the machine ----------------------------------------------------------------


def _detect_glibc() -> str | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        return None
    if not text or not text.startswith("glibc "):
        return None
    return text.split()[1]


def _detect_macos() -> str | None:
    release = _platform.mac_ver()[0]
    return release or None


def _detect_cuda() -> str | None:
    """The CUDA version the NVIDIA driver supports, as conda's ``__cuda`` reports it."""
    import ctypes  # here: `lock --check` imports this module and never detects anything

    names = ("nvcuda.dll",) if os.name == "nt" else ("libcuda.so.1", "libcuda.so", "libcuda.dylib")
    for name in names:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        # cuInit(0) then cuDriverGetVersion: 12040 means 12.4. Any failure: no usable driver.
        if library.cuInit(0) != 0 or library.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
        return f"{version.value // 1000}.{(version.value % 1000) // 10}"
    return None


_DETECTORS = {"cuda": _detect_cuda, "glibc": _detect_glibc, "macos": _detect_macos}


def detect(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """What this machine offers for each requirement name (None = absent).

    ``CONDA_OVERRIDE_CUDA`` / ``_GLIBC`` / ``_OSX`` win over detection, as in
    conda and rattler: a container build can say what the runtime will have.
    An empty override means "absent".
    """
    environ = os.environ if environ is None else environ
    found: dict[str, str | None] = {}
    for name in names:
        override = environ.get(f"CONDA_OVERRIDE_{VIRTUAL_PACKAGES[name][2:].upper()}")
        found[name] = (override or None) if override is not None else _DETECTORS[name]()
    return found


def unmet(required: Iterable[tuple[str, str]], offered: Mapping[str, str | None]) -> list[str]:
    """One line per requirement the offered versions do not meet (empty: all met)."""
    lines = []
    for name, version in required:
        have = offered.get(name)
        if have is None:
            lines.append(f"{name} >= {version} required; this machine has none")
        elif _version(have) < _version(version):
            lines.append(f"{name} >= {version} required; this machine has {have}")
    return lines
