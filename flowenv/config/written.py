"""A flowenv.toml that ``flowenv import`` writes: its TOML pieces, default Python and the write.

Shared by the two importers (a Metaflow flow's decorators,
:mod:`flowenv.metaflow.flow_import`; a requirements, environment or pyproject
file, :mod:`flowenv.inputs.importer`), so both spell values and write files
the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import tomli_w

from flowenv._atomic import write_atomic
from flowenv.errors import Diagnostic, UsageError


@attrs.frozen(kw_only=True)
class ImportResult:
    """What an import produced: the text, where it went (None: not written) and what it left out."""

    flow: str
    text: str
    output: Path | None
    gaps: tuple[Diagnostic, ...]
    notes: tuple[str, ...]
    written: bool


def toml_key(key: str) -> str:
    """``key`` as a TOML key: bare when it may be, quoted otherwise."""
    bare = key.replace("-", "").replace("_", "").isalnum() and key.isascii()
    return key if bare else toml_value(key)


def toml_value(value: object) -> str:
    """``value`` as a TOML scalar or array."""
    # tomli-w renders a scalar correctly only inside a document.
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def python_default() -> str:
    """``major.minor`` of this interpreter: what Metaflow falls back to, at lock precision."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def write_output(output: Path | None, text: str, *, force: bool) -> bool:
    """Write ``text`` to ``output`` atomically (never over a file without ``force``)."""
    if output is None:
        return False
    if output.exists() and not force:
        raise UsageError(f"{output} exists; pass --force to overwrite it")
    write_atomic(output, text)
    return True
