"""Translate a Metaflow flow's ``@pypi``/``@conda`` decorators into a flowenv.toml.

The flow file is read with :mod:`ast` only: user code is never imported or
executed, so a flow whose imports are missing on this machine (the usual case:
its packages live in the step environments) can still be translated, and
nothing in it runs as a side effect. The price is that only *literal*
arguments can be read; anything computed is reported as a gap with its
``file:line`` instead of being guessed.

Translation (Metaflow semantics -> flowenv keys):

* ``@pypi_base`` / ``@conda_base`` on the flow class -> ``[base]``;
  ``@pypi`` / ``@conda`` on a step -> ``[steps.NAME]`` (merged over base by
  flowenv exactly as Metaflow merges a step decorator over the flow's).
* ``packages`` and its alias ``libraries`` -> ``pypi.packages`` /
  ``conda.packages``; ``channel::name`` keys are kept as they are.
* ``disabled=True`` -> ``disabled = true``.
* ``@sys_packages`` / ``@sys_packages_base`` (Netflix's Metaflow extensions:
  the conda virtual packages ``__cuda`` and ``__glibc`` a solve assumes) ->
  ``system-requirements = { cuda = ..., glibc = ... }`` of that step or base.
  That is all of flowenv's per-platform keys Metaflow can express: it has no
  per-platform packages, per-step platforms or per-package indexes.
* A missing ``python``: Metaflow then uses the interpreter that starts the
  run. flowenv needs a version in every locked environment, so the
  ``major.minor`` of the interpreter running ``flowenv import`` is written to
  ``[base]`` (or to a step when base is disabled), marked by a comment saying
  so, so the choice is visible and reviewable rather than silent.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from flowenv._bounds import TooLarge, read_source
from flowenv.config.load import conda_spec, parse_config, pypi_specifier
from flowenv.config.written import (
    ImportResult,
    python_default,
    toml_key,
    toml_value,
    write_output,
)
from flowenv.errors import ConfigError, Diagnostic, UsageError
from flowenv.platforms import KNOWN_PLATFORMS, default_platforms

#: Metaflow decorator name -> (level, manager).
DECORATORS: dict[str, tuple[str, str]] = {
    "pypi": ("step", "pypi"),
    "conda": ("step", "conda"),
    "pypi_base": ("flow", "pypi"),
    "conda_base": ("flow", "conda"),
    "sys_packages": ("step", "sys"),
    "sys_packages_base": ("flow", "sys"),
}
#: ``@sys_packages`` virtual package -> flowenv system requirement.
SYS_PACKAGES = {"__cuda": "cuda", "__glibc": "glibc"}
#: The keywords Metaflow's four decorators accept.
KEYWORDS = ("python", "packages", "libraries", "disabled")


@attrs.frozen(kw_only=True)
class Declared:
    """What the decorators at one level (the flow class, or one step) declare."""

    python: str | None = None
    pypi: tuple[tuple[str, str], ...] = ()
    conda: tuple[tuple[str, str], ...] = ()
    #: System requirements from ``@sys_packages``: ("cuda", "12.1").
    system: tuple[tuple[str, str], ...] = ()
    #: None when not said here: a step then inherits the flow's, as in Metaflow.
    disabled: bool | None = None
    #: Line of the first decorator seen at this level, for messages.
    line: int = 0

    def has_content(self) -> bool:
        return bool(self.python or self.pypi or self.conda or self.system)


@attrs.frozen(kw_only=True)
class FlowDecls:
    """Everything the decorators of one flow class declare, plus what could not be read."""

    flow: str
    base: Declared
    #: (step name, declaration), in source order, only steps with a decorator.
    steps: tuple[tuple[str, Declared], ...]
    #: Every step of the flow, in source order (decorated or not).
    all_steps: tuple[str, ...]
    gaps: tuple[Diagnostic, ...] = ()


class UntranslatedDecorators(ConfigError):
    """Some decorators of the flow could not be translated; nothing was written."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        super().__init__(diagnostics)
        count = len(self.diagnostics)
        self.message = (
            f"cannot translate {count} decorator argument{'s' if count != 1 else ''} "
            "(nothing written; --force writes the rest):\n" + self.message
        )


# -- reading ------------------------------------------------------------------


class _Names:
    """Which local names mean Metaflow's decorators, ``step`` and ``FlowSpec``.

    ``from metaflow import pypi as p`` makes ``p`` mean ``pypi``; ``import
    metaflow as mf`` makes ``mf.pypi`` mean it. Bare names are accepted even
    without an import, as a flow file that forgot one still says what it means.
    """

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.modules: set[str] = {"metaflow"}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "metaflow":
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "metaflow":
                        self.modules.add(alias.asname or alias.name)

    def resolve(self, node: ast.expr) -> str | None:
        """The Metaflow name ``node`` refers to (``pypi``, ``step``, ...), if any."""
        if isinstance(node, ast.Call):
            node = node.func
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in self.modules
        ):
            return node.attr
        return None


def _flow_classes(tree: ast.Module, names: _Names) -> list[ast.ClassDef]:
    return [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(names.resolve(b) == "FlowSpec" for b in node.bases)
    ]


class _Reader:
    def __init__(self, file: str, names: _Names) -> None:
        self.file = file
        self.names = names
        self.gaps: list[Diagnostic] = []

    def gap(self, node: ast.AST, where: str, message: str) -> None:
        self.gaps.append(Diagnostic(self.file, getattr(node, "lineno", None), where, message))

    def level(self, decorators: Sequence[ast.expr], level: str, where: str) -> Declared | None:
        """Merge the decorators of one level; None when it carries none of ours."""
        found = [(d, self.names.resolve(d)) for d in decorators]
        ours = [(d, name) for d, name in found if name in DECORATORS]
        if not ours:
            return None
        python: str | None = None
        packages: dict[str, dict[str, str]] = {"pypi": {}, "conda": {}, "sys": {}}
        disabled: bool | None = None
        for node, name in ours:
            assert name is not None
            expected_level, manager = DECORATORS[name]
            if expected_level != level:
                self.gap(node, where, f"@{name} belongs on a {expected_level}, not here")
                continue
            args = self.arguments(node, name, where)
            if "python" in args:
                if python is not None and python != args["python"]:
                    self.gap(
                        node,
                        where,
                        f"@{name}: python '{args['python']}' conflicts with "
                        f"'{python}' from another decorator here",
                    )
                else:
                    python = args["python"]
            for package, spec in args.get("packages", {}).items():
                packages[manager][package] = spec
            if "disabled" in args:
                disabled = bool(disabled) or args["disabled"]
        return Declared(
            python=python,
            pypi=tuple(sorted(packages["pypi"].items())),
            conda=tuple(sorted(packages["conda"].items())),
            system=tuple(sorted((SYS_PACKAGES[k], v) for k, v in packages["sys"].items())),
            disabled=disabled,
            line=ours[0][0].lineno,
        )

    def arguments(self, node: ast.expr, name: str, where: str) -> dict[str, Any]:
        """The literal keyword arguments of one decorator, checked; gaps for the rest."""
        if not isinstance(node, ast.Call):
            return {}  # bare @pypi: all defaults
        out: dict[str, Any] = {}
        for arg in node.args:
            self.gap(arg, where, f"@{name}: positional argument (Metaflow takes keywords only)")
        for keyword in node.keywords:
            if keyword.arg is None:
                self.gap(
                    keyword.value,
                    where,
                    f"@{name}: **{ast.unparse(keyword.value)} is computed "
                    "at run time; write the arguments out literally",
                )
                continue
            if keyword.arg not in KEYWORDS:
                self.gap(keyword.value, where, f"@{name}: unknown keyword '{keyword.arg}'")
                continue
            try:
                value = self.literal(keyword.value, name, keyword.arg, where)
            except ValueError:
                self.gap(
                    keyword.value,
                    where,
                    f"@{name}: {keyword.arg}="
                    f"{ast.unparse(keyword.value)} is computed, not a literal",
                )
                continue
            checked = self.check(keyword.value, name, keyword.arg, value, where)
            if checked is None:
                continue
            if keyword.arg in ("packages", "libraries"):
                # Metaflow: packages wins over its deprecated alias libraries.
                merged = out.get("packages", {})
                out["packages"] = (
                    (checked | merged) if keyword.arg == "libraries" else (merged | checked)
                )
            else:
                out[keyword.arg] = checked
        return out

    def literal(self, node: ast.expr, name: str, key: str, where: str) -> Any:
        """The literal value of ``node``; in a dict, only computed entries are dropped (as gaps).

        ``packages={"a": "1.0", "b": VERSION}`` keeps ``a`` and reports ``b``:
        one computed version must not cost the step every other package.
        """
        if not isinstance(node, ast.Dict):
            return ast.literal_eval(node)
        out = {}
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            try:
                if key_node is None:
                    raise ValueError("**mapping")
                entry_key = ast.literal_eval(key_node)
                out[entry_key] = ast.literal_eval(value_node)
            except ValueError:
                shown = ast.unparse(key_node) if key_node is not None else "**"
                self.gap(
                    value_node,
                    where,
                    f"@{name}: {key}[{shown}]={ast.unparse(value_node)} is computed, "
                    "not a literal; only this entry is left out",
                )
        return out

    def check(self, node: ast.expr, name: str, key: str, value: object, where: str) -> Any:
        manager = DECORATORS[name][1]
        if key == "python":
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)  # python=3.11 written as a number
            if not isinstance(value, str) or not _is_python_version(value):
                self.gap(node, where, f"@{name}: python={value!r} is not a version like '3.11'")
                return None
            return value
        if key == "disabled":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            self.gap(node, where, f"@{name}: disabled={value!r} is not a boolean")
            return None
        if not isinstance(value, dict):
            self.gap(node, where, f"@{name}: {key} must be a dict of name to version")
            return None
        if manager == "sys":
            return self.sys_packages(node, name, value, where)
        packages: dict[str, str] = {}
        for package, spec in value.items():
            text = spec if isinstance(spec, str) else None
            if isinstance(spec, int | float) and not isinstance(spec, bool):
                text = str(spec)
            valid = (
                text is not None
                and (pypi_specifier(text) if manager == "pypi" else conda_spec(text)) is not None
            )
            if not isinstance(package, str) or not valid:
                self.gap(
                    node,
                    where,
                    f"@{name}: {package!r}: {spec!r} is not a version "
                    f"flowenv can read as a {manager} specifier",
                )
                continue
            assert text is not None
            packages[package] = text
        return packages

    def sys_packages(
        self, node: ast.expr, name: str, value: dict[Any, Any], where: str
    ) -> dict[str, str]:
        packages: dict[str, str] = {}
        for package, spec in value.items():
            text = str(spec) if isinstance(spec, str | int | float) else None
            if package not in SYS_PACKAGES:
                self.gap(
                    node,
                    where,
                    f"@{name}: {package!r} is not a virtual package flowenv knows "
                    f"({', '.join(SYS_PACKAGES)})",
                )
            elif text is None or not _is_version(text):
                self.gap(node, where, f"@{name}: {package!r}: {spec!r} is not a version")
            else:
                packages[package] = text
        return packages


def _is_version(text: str) -> bool:
    return all(part.isdigit() for part in text.split("."))


def _is_python_version(text: str) -> bool:
    parts = text.split(".")
    return 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts)


def read_flow(source: str, path: Path, flow: str | None = None) -> FlowDecls:
    """What the decorators in ``source`` (the text of ``path``) declare for flow ``flow``."""
    display = str(path)
    try:
        tree = ast.parse(source, filename=display)
    except SyntaxError as exc:
        raise ConfigError(
            [Diagnostic(display, exc.lineno, "", f"invalid Python: {exc.msg}")]
        ) from None
    except RecursionError:
        # CPython's parser recurses per level of nesting (``x.a.a.a…``, deep literals).
        raise ConfigError(
            [Diagnostic(display, None, "", "invalid Python: nested too deeply to read")]
        ) from None
    try:
        return _declared(tree, display, flow)
    except RecursionError:
        raise ConfigError(
            [Diagnostic(display, None, "", "a decorator argument is nested too deeply to read")]
        ) from None


def _declared(tree: ast.Module, display: str, flow: str | None) -> FlowDecls:
    names = _Names(tree)
    classes = _flow_classes(tree, names)
    if flow is not None:
        classes = [c for c in classes if c.name == flow]
        if not classes:
            known = ", ".join(c.name for c in _flow_classes(tree, names)) or "none"
            raise UsageError(f"{display}: no FlowSpec subclass named '{flow}' (found: {known})")
    if not classes:
        raise UsageError(f"{display}: no FlowSpec subclass found")
    if len(classes) > 1:
        raise UsageError(
            f"{display}: several flows ({', '.join(c.name for c in classes)}); "
            "choose one with --flow NAME"
        )
    cls = classes[0]
    reader = _Reader(display, names)
    base = reader.level(cls.decorator_list, "flow", "base") or Declared()
    steps: list[tuple[str, Declared]] = []
    all_steps: list[str] = []
    for item in cls.body:
        if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        decorators = item.decorator_list
        if not any(names.resolve(d) == "step" for d in decorators):
            continue
        all_steps.append(item.name)
        declared = reader.level(decorators, "step", f"steps.{item.name}")
        if declared is not None:
            steps.append((item.name, declared))
    return FlowDecls(
        flow=cls.name,
        base=base,
        steps=tuple(steps),
        all_steps=tuple(all_steps),
        gaps=tuple(reader.gaps),
    )


# -- writing ------------------------------------------------------------------


def _inline(packages: Sequence[tuple[str, str]]) -> str:
    return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in packages) + " }"


def _env_lines(declared: Declared, python_default: str | None) -> Iterator[str]:
    if declared.disabled:
        yield "disabled = true"
        return
    if declared.python:
        yield f"python = {toml_value(declared.python)}"
    elif python_default:
        yield "# The flow names no python version: Metaflow would use the interpreter that starts"
        yield "# the run. flowenv needs one to lock, so this is the one `flowenv import` ran with."
        yield f"python = {toml_value(python_default)}"
    if declared.pypi:
        yield f"pypi.packages = {_inline(declared.pypi)}"
    if declared.conda:
        yield f"conda.packages = {_inline(declared.conda)}"
    if declared.system:
        yield f"system-requirements = {_inline(declared.system)}"


def effective(decls: FlowDecls) -> tuple[list[tuple[str, Declared, bool]], list[str]]:
    """Each table to write as (name, declaration, needs a python default), and notes.

    Applies Metaflow's rules that flowenv spells differently: a step inherits
    the flow's ``disabled`` unless it sets its own, and a disabled decorator's
    python and packages are ignored (flowenv rejects them, so they are dropped
    with a note).
    """
    notes: list[str] = []
    tables: list[tuple[str, Declared, bool]] = []

    def drop(where: str, declared: Declared) -> Declared:
        if declared.has_content():
            notes.append(
                f"{where}: disabled, so its python and packages are dropped "
                "(Metaflow ignores them too)"
            )
        return Declared(disabled=True, line=declared.line)

    base_disabled = bool(decls.base.disabled)
    base = drop("base", decls.base) if base_disabled else decls.base
    tables.append(("base", base, not base_disabled))
    for name, declared in decls.steps:
        disabled = declared.disabled if declared.disabled is not None else base_disabled
        if disabled:
            tables.append((name, drop(f"steps.{name}", declared), False))
        elif base_disabled:
            # Re-enabled under a disabled flow: there is no parent to take python from.
            tables.append((name, declared, True))
        elif declared.has_content():
            tables.append((name, declared, False))
    return tables, notes


def render_config(
    decls: FlowDecls,
    *,
    source_name: str,
    python_default: str,
    platforms: Sequence[str],
) -> str:
    """The flowenv.toml text equivalent to ``decls``."""
    lines = [
        f"# Translated by `flowenv import {source_name}` from {decls.flow}'s decorators.",
        "# With --environment=flowenv the packages come from here: remove the decorators.",
        "",
        "[project]",
        f"name = {toml_value(decls.flow.lower())}",
        f"platforms = [{', '.join(toml_value(p) for p in platforms)}]",
    ]
    tables, _ = effective(decls)
    for name, declared, needs_python in tables:
        header = "[base]" if name == "base" else f"[steps.{name}]"
        lines += ["", header, *_env_lines(declared, python_default if needs_python else None)]
    return "\n".join(lines) + "\n"


def import_flow(
    flow_path: Path,
    output: Path | None,
    *,
    flow: str | None = None,
    force: bool = False,
    platforms: Sequence[str] | None = None,
) -> ImportResult:
    """Translate ``flow_path``'s decorators; write them to ``output`` (None: only return the text).

    Nothing is written when a decorator could not be translated or ``output``
    exists, unless ``force``.
    """
    try:
        source = read_source(flow_path).decode("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {flow_path}: {exc.strerror}") from None
    except TooLarge as exc:
        raise UsageError(f"cannot read {flow_path}: too large: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"cannot read {flow_path}: not UTF-8 text (byte {exc.start + 1} is not valid)"
        ) from None
    for platform in platforms or ():
        if platform not in KNOWN_PLATFORMS:
            raise UsageError(
                f"unknown platform '{platform}'; expected one of {', '.join(KNOWN_PLATFORMS)}"
            )
    decls = read_flow(source, flow_path, flow)
    text = render_config(
        decls,
        source_name=flow_path.name,
        python_default=python_default(),
        platforms=tuple(platforms or default_platforms()),
    )
    target = output or flow_path.parent / "flowenv.toml"
    # The output must be valid flowenv input; a failure here is a translation bug.
    parse_config(text, target)
    if decls.gaps and not force:
        raise UntranslatedDecorators(decls.gaps)
    written = write_output(output, text, force=force)
    return ImportResult(
        flow=decls.flow,
        text=text,
        output=output,
        gaps=decls.gaps,
        notes=tuple(effective(decls)[1]),
        written=written,
    )
