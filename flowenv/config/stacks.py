"""Validation of the keys for real ML stacks: per-env platforms, ``target.<platform>``
tables, ``system-requirements`` and named PyPI indexes.

Kept apart from :mod:`flowenv.config.load` (which calls in here) so that these
concepts read as one unit. Every function reports through the loader's
validator, so its messages name the file, line and key path like every other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowenv.config.locate import KeyPath
from flowenv.config.models import EnvDecl, SystemRequirements
from flowenv.platforms import KNOWN_PLATFORMS

if TYPE_CHECKING:
    from flowenv.config.load import _Validator

SYSTEM_KEYS = ("cuda", "glibc", "libc", "macos")
#: What a ``target.<platform>`` table may hold: packages and requirements, not python.
TARGET_KEYS = ("pypi", "conda", "system-requirements")
#: A PyPI package given as a table: ``torch = { version = "2.4.1", index = "pytorch-cpu" }``.
PYPI_PACKAGE_KEYS = ("version", "index")
#: uv's rule for index names (they also name its UV_INDEX_<NAME>_USERNAME variables).
_INDEX_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_SYSTEM_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*$")
#: The oldest glibc uv can target (manylinux2014).
MIN_GLIBC = (2, 17)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def indexes(v: _Validator, table: Mapping[str, Any], path: KeyPath) -> tuple[tuple[str, str], ...]:
    """``[project.pypi.indexes]``: name -> URL."""
    raw = v.string_table(table, "indexes", path)
    for name, url in raw.items():
        at: KeyPath = (*path, "indexes", name)
        if not _INDEX_NAME.match(name):
            v.error(at, "an index name may only use letters, digits, '-', '_' and '.'")
        elif "://" not in url:
            # Not echoed: a URL without its scheme may still hold user:token@.
            v.error(at, 'expected an index URL like "https://host/simple" (no scheme given)')
    return tuple(sorted(raw.items()))


def platforms(
    v: _Validator, table: Mapping[str, Any], path: KeyPath, project: tuple[str, ...]
) -> tuple[str, ...] | None:
    """An env's ``platforms``: a non-empty subset of project.platforms, in project order."""
    names = v.string_list(table, "platforms", path)
    if names is None:
        return None
    if not names and isinstance(table.get("platforms"), list):
        v.error((*path, "platforms"), "expected at least one platform")
    for i, name in enumerate(names):
        if name not in KNOWN_PLATFORMS:
            from flowenv.config.load import did_you_mean

            v.error(
                (*path, "platforms", i),
                f"unknown platform '{name}'{did_you_mean(name, project)}",
            )
        elif name not in project:
            v.error(
                (*path, "platforms", i),
                f"'{name}' is not in project.platforms ({', '.join(project)}); "
                "an env is locked for a subset of them",
            )
    return tuple(p for p in project if p in names)


def system_requirements(
    v: _Validator, table: Mapping[str, Any], path: KeyPath
) -> SystemRequirements:
    """``system-requirements = { cuda = "12", glibc = "2.28", macos = "13.0" }``."""
    key = "system-requirements"
    if key not in table:
        return SystemRequirements()
    at: KeyPath = (*path, key)
    raw = v.table(table[key], at, SYSTEM_KEYS)
    if "glibc" in raw and "libc" in raw:
        v.error((*at, "libc"), "'libc' is an alias of 'glibc'; use one of them, not both")
    values: dict[str, str] = {}
    for name in SYSTEM_KEYS:
        if name not in raw:
            continue
        value = v.typed(raw[name], (*at, name), str, "a version string")
        if value is None:
            continue
        if not _SYSTEM_VERSION.match(value):
            v.error((*at, name), f'expected a version like "12" or "2.28", got \'{value}\'')
            continue
        canonical = "glibc" if name == "libc" else name
        if canonical == "glibc" and (
            len(_version_tuple(value)) < 2 or _version_tuple(value)[:2] < MIN_GLIBC
        ):
            v.error(
                (*at, name),
                f"expected a glibc version of at least 2.17 (manylinux2014), got '{value}'",
            )
            continue
        values[canonical] = value
    return SystemRequirements(**values)


def pypi_package_table(
    v: _Validator, spec: Mapping[str, Any], path: KeyPath, index_names: tuple[str, ...]
) -> tuple[str, str | None] | None:
    """``{ version = "...", index = "name" }`` -> (version text, index name)."""
    raw = v.table(spec, path, PYPI_PACKAGE_KEYS)
    version = v.string(raw, "version", path) if "version" in raw else "*"
    index = v.string(raw, "index", path)
    if index is not None and index not in index_names:
        from flowenv.config.load import did_you_mean

        known = (
            f"; declared: {', '.join(index_names)}"
            if index_names
            else "; declare it in [project.pypi.indexes]"
        )
        v.error(
            (*path, "index"),
            f"no index named '{index}'{did_you_mean(index, index_names)}{known}",
        )
        return None
    if version is None:
        return None
    return version, index


def target_platforms(
    v: _Validator, table: Mapping[str, Any], path: KeyPath, project: tuple[str, ...]
) -> dict[str, Any]:
    """The ``target`` table's platform -> raw table, each platform one of project.platforms."""
    if "target" not in table:
        return {}
    at: KeyPath = (*path, "target")
    declared = table["target"]
    raw = v.table(declared, at, tuple(declared) if isinstance(declared, dict) else ())
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in KNOWN_PLATFORMS:
            from flowenv.config.load import did_you_mean

            v.error(
                (*at, name),
                f"unknown platform '{name}'{did_you_mean(name, KNOWN_PLATFORMS)}; "
                f"expected one of {', '.join(project)}",
            )
        elif name not in project:
            v.error(
                (*at, name),
                f"'{name}' is not in project.platforms ({', '.join(project)})",
            )
        else:
            out[name] = value
    return out


def check_platform_subsets(
    v: _Validator, base: EnvDecl, steps: Mapping[str, EnvDecl], envs: Mapping[str, EnvDecl]
) -> None:
    """A step's ``platforms`` narrow its parent's; a ``target`` table names one of its own.

    A parent locked for linux-64 only (a GPU env) says its packages are meant
    for there; a step cannot quietly lock them for the Mac. A target table for
    a platform its env is not locked for would be silently ignored.
    """
    project = v.project_platforms
    own: dict[KeyPath, tuple[str, ...]] = {("base",): base.platforms or project}
    for name, env in envs.items():
        # A named env takes only python from base, so its platforms default to the project's.
        own[("envs", name)] = env.platforms or project
    for name, step in steps.items():
        if step.env is not None and step.env not in envs:
            continue  # an unknown env is reported already
        parent: KeyPath = ("envs", step.env) if step.env else ("base",)
        allowed = own[parent]
        outside = [p for p in step.platforms or () if p not in allowed]
        if outside:
            where = "base" if step.env is None else f"env '{step.env}'"
            v.error(
                ("steps", name, "platforms"),
                f"{', '.join(repr(p) for p in outside)} not among the platforms of {where} "
                f"({', '.join(allowed)}); a step narrows its parent's platforms "
                "(add it there first)",
            )
        own[("steps", name)] = step.platforms or allowed
    tables = [(("base",), base), *((("envs", n), e) for n, e in envs.items())]
    tables += [(("steps", n), s) for n, s in steps.items()]
    for path, decl in tables:
        for platform, _ in decl.targets:
            if path in own and platform not in own[path]:
                v.error(
                    (*path, "target", platform),
                    f"'{platform}' is not among this env's platforms "
                    f"({', '.join(own[path])}); the table would never apply",
                )
