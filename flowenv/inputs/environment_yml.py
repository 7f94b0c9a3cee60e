"""Read a conda ``environment.yml``: channels, dependencies (``channel::pkg``), a ``pip:`` section.

* ``channels`` become the env's channels unless flowenv.toml sets
  ``conda.channels`` for the env.
* Each dependency is a conda match spec, ``[channel::]name[ spec]``:
  ``numpy``, ``numpy=1.26`` (1.26.*), ``numpy==1.26.4``, ``numpy>=1.24,<2``,
  ``numpy=1.26=py311_0`` (version and build).
* ``python=3.11`` (or ``python 3.11``, ``python==3.11.9``) is the env's Python
  version; flowenv.toml's ``python`` must agree when both are given. A
  Python range is accepted only when flowenv.toml sets ``python``.
* The ``pip:`` list holds requirements-file lines (``-r`` included, relative
  to the environment.yml), read as :mod:`flowenv.inputs.requirements` reads a file.
* ``name``, ``prefix`` and ``variables`` describe an installation, not a
  resolution, and are ignored; any other key is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from flowenv._bounds import MAX_DEPTH, TooDeep
from flowenv.config.models import CondaPackage
from flowenv.errors import Diagnostic
from flowenv.inputs import InputFileError
from flowenv.inputs.requirements import Requirements, RequirementsReader, _relative, read_text

#: Reports a problem at a YAML node (PyYAML is untyped: nodes are Any).
_Report = Callable[[Any, str], None]

KNOWN_KEYS = ("name", "channels", "dependencies", "prefix", "variables")
_DEPENDENCY = re.compile(
    r"^(?:(?P<channel>\S+?)::)?(?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(?P<spec>.*)$"
)
_PYTHON_PIN = re.compile(r"^(?:==?|\s*)(?P<version>\d+\.\d+(?:\.\d+)?)(?:\.\*)?$")


@attrs.frozen(kw_only=True)
class CondaEnvFile:
    """What an environment.yml declares."""

    conda: tuple[CondaPackage, ...] = ()
    channels: tuple[str, ...] | None = None
    python: str | None = None
    pip: Requirements = attrs.field(factory=Requirements)


def conda_dependency(text: str) -> CondaPackage | None:
    """``conda-forge::numpy=1.26`` -> a :class:`CondaPackage`; None if it is no match spec."""
    from flowenv.config.load import conda_spec

    match = _DEPENDENCY.match(text.strip())
    if match is None:
        return None
    spec = match.group("spec").strip()
    if spec.startswith("=") and not spec.startswith("==") and "=" in spec[1:]:
        # name=version=build: conda's "version.*, this build".
        version, _, build = spec[1:].partition("=")
        spec = f"{version}{'' if version.endswith('*') else '.*'} {build}"
    normalized = conda_spec(spec)
    if normalized is None:
        return None
    return CondaPackage(
        name=match.group("name").lower(), spec=normalized, channel=match.group("channel")
    )


def _too_deep_line(yaml: Any, text: str) -> int | None:
    """The line where ``text`` nests deeper than MAX_DEPTH, else None.

    PyYAML's composer recurses once per level (a few thousand ``[`` are a
    RecursionError); its event parser does not, so the depth is counted there first.
    """
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                return int(event.start_mark.line) + 1
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
    return None


def read_environment_yml(
    path: Path, display: str, root: Path, *, declared_python: str | None
) -> CondaEnvFile:
    """Read ``path``; ``declared_python`` is the python flowenv.toml sets for the env, if any."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    diagnostics: list[Diagnostic] = []
    text = read_text(path, display, diagnostics)
    if text is None:
        raise InputFileError(diagnostics)

    def error(node: Any, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        diagnostics.append(Diagnostic(display, line, "", message))

    try:
        too_deep = _too_deep_line(yaml, text)
        if too_deep is not None:
            raise InputFileError([Diagnostic(display, too_deep, "", str(TooDeep()))])
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputFileError([Diagnostic(display, line, "", f"invalid YAML: {problem}")]) from None
    if not isinstance(document, yaml.MappingNode):
        raise InputFileError(
            [Diagnostic(display, 1, "", "expected a mapping with channels and dependencies")]
        )
    channels: tuple[str, ...] | None = None
    conda: list[CondaPackage] = []
    python: str | None = None
    pip = RequirementsReader(root)
    pip.files.append(_relative(path, root))
    for key_node, value in document.value:
        key = key_node.value
        if key not in KNOWN_KEYS:
            from flowenv.config.load import did_you_mean

            error(key_node, f"unknown key '{key}'{did_you_mean(str(key), KNOWN_KEYS)}")
        elif key == "channels":
            channels = tuple(_scalars(value, "channels", error))
        elif key == "dependencies":
            if not isinstance(value, yaml.SequenceNode):
                error(value, "dependencies: expected a list")
                continue
            for item in value.value:
                if isinstance(item, yaml.MappingNode):
                    for pip_key, pip_value in item.value:
                        if pip_key.value != "pip":
                            error(pip_key, f"unknown dependency section '{pip_key.value}'")
                            continue
                        lines = [
                            (node.start_mark.line + 1, str(node.value).strip())
                            for node in _scalar_nodes(pip_value, "pip", error)
                        ]
                        pip.read_lines(lines, display, path.parent)
                    continue
                if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
                    error(item, "expected a conda match spec such as 'numpy=1.26'")
                    continue
                package = conda_dependency(str(item.value))
                if package is None:
                    error(item, f"invalid conda match spec '{item.value}'")
                elif package.name == "python":
                    pin = _PYTHON_PIN.match(package.spec)
                    if pin:
                        python = pin.group("version")
                        if declared_python and declared_python != python:
                            error(
                                item,
                                f"'{item.value}' disagrees with python = \"{declared_python}\" "
                                "in flowenv.toml; remove one of them",
                            )
                    elif package.spec and not declared_python:
                        error(
                            item,
                            f"'{item.value}' is a range; flowenv locks one Python version per "
                            'env: write python=3.X here or set python = "3.X" in flowenv.toml',
                        )
                else:
                    conda.append(package)
    diagnostics += pip.diagnostics
    if diagnostics:
        raise InputFileError(sorted(diagnostics, key=lambda d: d.line or 0))
    return CondaEnvFile(conda=tuple(conda), channels=channels, python=python, pip=pip.result())


def _scalar_nodes(node: Any, what: str, error: _Report) -> list[Any]:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    if not isinstance(node, yaml.SequenceNode):
        error(node, f"{what}: expected a list")
        return []
    out: list[Any] = []
    for item in node.value:
        if isinstance(item, yaml.ScalarNode):
            out.append(item)
        else:
            error(item, f"{what}: expected a string")
    return out


def _scalars(node: Any, what: str, error: _Report) -> list[str]:
    return [str(n.value) for n in _scalar_nodes(node, what, error)]
