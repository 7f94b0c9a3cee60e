"""Existing files as environment inputs: requirements files, environment.yml, pyproject.toml.

Each reader turns one kind of file into flowenv's own models (PyPI and conda
packages, constraints, channels, a Python version), so that everything after
the configuration loader sees one shape whatever the source. What enters a
lock's input hash is therefore what a file *means* (its requirements), not its
bytes: a comment edit leaves the lock fresh, a changed pin makes it stale.

Readers report every problem at once as :class:`InputFileError`, each
diagnostic naming the input file and its line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from flowenv.config.models import CondaPackage, PypiPackage
from flowenv.errors import ConfigError

if TYPE_CHECKING:
    from flowenv.spec import EnvSpec

#: Input files larger than this are refused: a requirements file is text a person reviews.
MAX_INPUT_BYTES = 4 << 20
#: How deep ``-r`` includes may nest (a cycle is reported before this is reached).
MAX_INCLUDE_DEPTH = 32


class InputFileError(ConfigError):
    """An input file is missing, unreadable or invalid; every problem, by file and line."""


@attrs.frozen(kw_only=True)
class EnvInputs:
    """What an environment's input files declare, merged in the order they are named."""

    python: str | None = None
    pypi: tuple[PypiPackage, ...] = ()
    constraints: tuple[PypiPackage, ...] = ()
    conda: tuple[CondaPackage, ...] = ()
    #: Channels an environment.yml lists (None: it lists none, or there is no such file).
    channels: tuple[str, ...] | None = None
    #: Every file read, includes too, relative to the project root (POSIX form).
    files: tuple[str, ...] = ()


def input_paths(envs: Iterable[EnvSpec], root: Path) -> list[Path]:
    """Every file (and local package directory) whose content enters some env's input hash.

    A local package is listed as its directory: a reader that can only digest
    files then cannot vouch for it, and must look at the package itself.
    """
    found: dict[Path, None] = {}
    for env in envs:
        found.update(dict.fromkeys(root / name for name in env.inputs))
        packages = (*env.pypi, *(p for _, target in env.targets for p in target.pypi))
        found.update(dict.fromkeys(root / p.path for p in packages if p.path))
    return list(found)
