"""Turn a configuration file into a validated :class:`Config`, reporting every problem at once.

Validation is hand-written rather than delegated to a generic converter because
the messages are the product: each names the file, the line, the key path and
what was expected, with a "did you mean" for near-miss keys and names.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from flowenv._bounds import TooDeep, TooLarge, parse_bounded, read_source
from flowenv.config import memo, stacks
from flowenv.config.discover import PYPROJECT_NAME
from flowenv.config.locate import KeyPath, LazyKeyLines, line_of, may_nest_too_deep
from flowenv.config.models import (
    DEFAULT_CHANNELS,
    DEFAULT_LOCK_DIR,
    DEFAULT_STORE,
    CondaPackage,
    CondaSettings,
    Config,
    EnvDecl,
    ProjectSettings,
    PypiPackage,
    PypiSettings,
)
from flowenv.config.validators import (
    CONDA_NAME,
    PEP508_NAME,
    extra_problem,
    lock_dir_escape,
    lock_dir_problem,
    portable_name_problem,
)
from flowenv.errors import ConfigError, Diagnostic
from flowenv.platforms import KNOWN_PLATFORMS, default_platforms

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")

#: (project root, lock root, a local package's directory relative to the root) ->
#: the source hash the locks record for it, or None (see :func:`load_config`).
MissingSource = Callable[[Path, "Path | None", str], "str | None"]

TOP_KEYS = ("project", "base", "steps", "envs")
#: The environment of [base]; the same name as ``flowenv.spec.BASE`` (config sits below spec).
BASE = "base"
PROJECT_KEYS = ("name", "platforms", "lock-dir", "store", "store-options", "pypi", "conda")
PROJECT_PYPI_KEYS = ("index-url", "extra-index-urls", "find-links", "indexes")
PROJECT_CONDA_KEYS = ("channels", "channel-priority", "virtual-packages", "pypi-map")
ENV_KEYS = ("python", "pypi", "conda", "platforms", "system-requirements", "target", "solve-group")
BASE_KEYS = (*ENV_KEYS, "disabled")
STEP_KEYS = (*ENV_KEYS, "disabled", "env")
# requirements, pyproject and environment-file name input files (flowenv.inputs).
PYPI_KEYS = ("packages", "libraries", "requirements", "pyproject")
CONDA_KEYS = ("packages", "libraries", "channels", "environment-file")
CHANNEL_PRIORITIES = ("strict", "flexible", "disabled")
#: In a table's repr, the keys that make validating it read files (as repr spells them).
_READS_FILES = tuple(repr(key) for key in ("requirements", "pyproject", "environment-file", "path"))

# "\Z", never "$": "$" also matches before a trailing newline, and a newline
# in a name would reach uv's requirement files as a line of its own.
_PYTHON_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?\Z")
_PYPI_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])(\[([^\]]*)\])?\Z")
_CONDA_BARE_VERSION = re.compile(r"^[0-9][0-9A-Za-z_.+!]*\Z")
_CONDA_SPEC = re.compile(
    r"^[<>=!~]{0,2}[0-9A-Za-z_.*+!]+([,|]\s*[<>=!~]{0,2}[0-9A-Za-z_.*+!]+)*(\s+[0-9A-Za-z_.*+]+)?\Z"
)
#: A virtual package's version, optionally with a build string: "2.28", "1=x86_64_v3".
_VIRTUAL_VALUE = re.compile(r"^[0-9][0-9A-Za-z_.]*(=[0-9A-Za-z_.]+)?\Z")
_VIRTUAL_NAME = re.compile(r"^__[a-z0-9][a-z0-9_-]*\Z")
#: A channel named in "channel::name": a name or a URL, never whitespace or a quote.
_CHANNEL_REF = re.compile(r"^[A-Za-z0-9_.:/@%+~=-]+\Z")
# One rule per kind of name, shared with the store readers (flowenv.config.validators).
_CONDA_NAME = CONDA_NAME
_DISTRIBUTION_NAME = PEP508_NAME
_NAME_SEPARATORS = re.compile(r"[-_.]+")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def normalize_pypi_name(name: str) -> str:
    """PEP 503 normalisation: ``Scikit_Learn`` and ``scikit-learn`` are one package."""
    return _NAME_SEPARATORS.sub("-", name).lower()


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ""."""
    import difflib  # only when there is an error to report

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(value: object) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def render_key_path(path: KeyPath) -> str:
    """``("steps", "t", "conda", "packages", "a::b")`` -> ``steps.t.conda.packages."a::b"``.

    Written the way TOML spells the key, so it can be searched for in the file.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = (
            part
            if _BARE_KEY.match(part)
            else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
        )
        out += f".{key}" if out else key
    return out


class _Validator:
    def __init__(
        self,
        file: str,
        lines: LazyKeyLines,
        prefix: KeyPath,
        root: Path = Path(),
        missing_source: MissingSource | None = None,
    ) -> None:
        self.file = file
        #: Input files and local packages are relative to the configuration's directory.
        self.root = root
        self.lines = lines
        self.prefix = prefix
        self.diagnostics: list[Diagnostic] = []
        #: Paths already reported, so a later check does not pile a second error on one key.
        self.reported: set[KeyPath] = set()
        #: Known once [project] is read: what env tables may refer to.
        self.project_platforms: tuple[str, ...] = KNOWN_PLATFORMS
        self.index_names: tuple[str, ...] = ()
        #: The project's lock dir, never part of a local package's source hash.
        self.lock_root: Path | None = None
        #: Where only the store is used (hydrate, run): what the locks record
        #: for a local package whose directory is absent (see load_config).
        self.missing_source = missing_source

    # -- reporting ---------------------------------------------------------
    def error(self, path: KeyPath, message: str) -> None:
        full = (*self.prefix, *path)
        self.reported.add(path)
        self.diagnostics.append(
            Diagnostic(self.file, line_of(self.lines, full), render_key_path(full), message)
        )

    # -- shapes --------------------------------------------------------------
    def table(self, value: object, path: KeyPath, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.error(path, f"expected a table, got {_type_name(value)}")
            return {}
        # [steps] and [envs] allow their own keys, thousands of them in a large
        # project: a tuple's membership test made those two checks quadratic
        # (14 ms of a 1000-step load).
        known: Collection[str] = frozenset(allowed) if len(allowed) > 16 else allowed
        for key in value:
            if key not in known:
                self.error((*path, key), f"unknown key{did_you_mean(key, allowed)}")
        return {k: v for k, v in value.items() if k in known}

    def typed(self, value: object, path: KeyPath, kind: type[T], what: str) -> T | None:
        # bool is an int subclass; never accept one where the other is meant.
        if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
            return value
        self.error(path, f"expected {what}, got {_type_name(value)}")
        return None

    def string(self, table: Mapping[str, Any], key: str, path: KeyPath) -> str | None:
        if key not in table:
            return None
        return self.typed(table[key], (*path, key), str, "a string")

    def string_list(
        self, table: Mapping[str, Any], key: str, path: KeyPath
    ) -> tuple[str, ...] | None:
        if key not in table:
            return None
        value = self.typed(table[key], (*path, key), list, "an array of strings")
        if value is None:
            return None
        items = [self.typed(item, (*path, key, i), str, "a string") for i, item in enumerate(value)]
        return tuple(item for item in items if item is not None)

    # -- project -------------------------------------------------------------
    def project(self, raw: object, root: Path) -> ProjectSettings:
        path: KeyPath = ("project",)
        table = self.table(raw, path, PROJECT_KEYS)
        platforms = self.platforms(table, path)
        pypi_table = self.table(table.get("pypi", {}), (*path, "pypi"), PROJECT_PYPI_KEYS)
        pypi_path: KeyPath = (*path, "pypi")
        pypi = PypiSettings(
            index_url=self.string(pypi_table, "index-url", pypi_path),
            extra_index_urls=self.string_list(pypi_table, "extra-index-urls", pypi_path) or (),
            find_links=self.string_list(pypi_table, "find-links", pypi_path) or (),
            indexes=stacks.indexes(self, pypi_table, pypi_path),
        )
        self.locations(pypi, pypi_path)
        self.project_platforms = platforms
        self.index_names = tuple(name for name, _ in pypi.indexes)
        conda_path: KeyPath = (*path, "conda")
        conda_table = self.table(table.get("conda", {}), conda_path, PROJECT_CONDA_KEYS)
        priority = self.string(conda_table, "channel-priority", conda_path) or "strict"
        if priority not in CHANNEL_PRIORITIES:
            self.error(
                (*conda_path, "channel-priority"),
                f"expected one of {', '.join(CHANNEL_PRIORITIES)}, got '{priority}'"
                + did_you_mean(priority, CHANNEL_PRIORITIES),
            )
        virtual = self.string_table(conda_table, "virtual-packages", conda_path)
        for name, value in virtual.items():
            if not _VIRTUAL_NAME.match(name) or not _VIRTUAL_VALUE.match(value):
                self.error(
                    (*conda_path, "virtual-packages", name),
                    f'expected a virtual package like __glibc = "2.28" '
                    f"(or \"version=build\"), got {name} = '{value}'",
                )
        conda = CondaSettings(
            channels=self.channels(conda_table, conda_path) or DEFAULT_CHANNELS,
            channel_priority=priority,
            virtual_packages=tuple(sorted(virtual.items())),
            pypi_map=self.pypi_map(conda_table, conda_path),
        )
        options = table.get("store-options", {})
        if not isinstance(options, dict):
            self.error((*path, "store-options"), f"expected a table, got {_type_name(options)}")
            options = {}
        return ProjectSettings(
            name=self.project_name(table, path) or root.name,
            platforms=platforms,
            lock_dir=self.lock_dir(table, path, root),
            store=self.string(table, "store", path) or DEFAULT_STORE,
            store_options=tuple(sorted(options.items())),
            pypi=pypi,
            conda=conda,
        )

    def project_name(self, table: Mapping[str, Any], path: KeyPath) -> str | None:
        # It names the project's directory in the store: the env-name rule applies.
        name = self.string(table, "name", path)
        if name is None:
            return None
        problem = portable_name_problem(name, "a project", "it names the project in the store")
        if problem:
            self.error((*path, "name"), problem)
        return name

    def lock_dir(self, table: Mapping[str, Any], path: KeyPath, root: Path) -> str:
        lock_dir = self.string(table, "lock-dir", path)
        if lock_dir is None:
            return DEFAULT_LOCK_DIR
        problem = lock_dir_problem(lock_dir) or lock_dir_escape(root, lock_dir)
        if problem:
            self.error((*path, "lock-dir"), problem)
        return lock_dir

    def platforms(self, table: Mapping[str, Any], path: KeyPath) -> tuple[str, ...]:
        names = self.string_list(table, "platforms", path)
        if names is None:
            return default_platforms()
        if not names and isinstance(table.get("platforms"), list):
            self.error((*path, "platforms"), "expected at least one platform")
        for i, name in enumerate(names):
            if name not in KNOWN_PLATFORMS:
                self.error(
                    (*path, "platforms", i),
                    f"unknown platform '{name}'{did_you_mean(name, KNOWN_PLATFORMS)}; "
                    f"expected one of {', '.join(KNOWN_PLATFORMS)}",
                )
        return tuple(p for p in KNOWN_PLATFORMS if p in names)

    def channels(self, table: Mapping[str, Any], path: KeyPath) -> tuple[str, ...] | None:
        channels = self.string_list(table, "channels", path)
        for i, channel in enumerate(channels or ()):
            if not channel.strip():
                self.error((*path, "channels", i), "expected a channel name or URL, got ''")
        return channels

    def locations(self, pypi: PypiSettings, path: KeyPath) -> None:
        """Index URLs and find-links are one token each: they reach uv's command line
        and the pip options of exported requirements files, where a newline would
        smuggle in another option."""
        located: list[tuple[KeyPath, str]] = []
        if pypi.index_url is not None:
            located.append(((*path, "index-url"), pypi.index_url))
        for key, values in (
            ("extra-index-urls", pypi.extra_index_urls),
            ("find-links", pypi.find_links),
        ):
            located += [((*path, key, i), value) for i, value in enumerate(values)]
        located += [((*path, "indexes", name), url) for name, url in pypi.indexes]
        for at, location in located:
            if at in self.reported:
                continue
            # The value is not echoed: it may hold a credential (user:token@host).
            if not location:
                self.error(at, "expected a URL or path, got ''")
            elif "://" in location and any(c.isspace() for c in location):
                self.error(at, "a URL cannot contain whitespace (spell a space %20)")
            elif any(not c.isprintable() for c in location):
                # A local path may have a space, never a newline or a control character.
                self.error(at, "cannot contain a newline or a control character")

    def pypi_map(self, table: Mapping[str, Any], path: KeyPath) -> tuple[tuple[str, str], ...]:
        """``pypi-map``: conda name -> PyPI name, or false ("" here) for "not a PyPI package"."""
        raw = self.typed(table.get("pypi-map", {}), (*path, "pypi-map"), dict, "a table") or {}
        out = []
        for name, value in raw.items():
            at = (*path, "pypi-map", name)
            if not _CONDA_NAME.match(name):
                self.error(at, f"'{name}' is not a conda package name")
            elif value is False:
                out.append((name.lower(), ""))
            elif isinstance(value, str) and _DISTRIBUTION_NAME.match(value):
                out.append((name.lower(), normalize_pypi_name(value)))
            else:
                self.error(
                    at,
                    "expected a PyPI distribution name, or false for a conda package "
                    f"that is not one, got {value!r}",
                )
        return tuple(sorted(out))

    def string_table(self, table: Mapping[str, Any], key: str, path: KeyPath) -> dict[str, str]:
        if key not in table:
            return {}
        raw = self.typed(table[key], (*path, key), dict, "a table")
        if raw is None:
            return {}
        out = {}
        for name, value in raw.items():
            checked = self.typed(value, (*path, key, name), str, "a string")
            if checked is not None:
                out[name] = checked
        return out

    # -- environments ----------------------------------------------------------
    def memoised_env_decl(self, raw: object, path: KeyPath, allowed: tuple[str, ...]) -> EnvDecl:
        """:meth:`env_decl`, kept from one run to the next (:mod:`flowenv.config.memo`).

        What env_decl reads: the raw table, ``path`` and ``allowed``, the
        project's platforms and index names (read before any env table), and
        on error only the file, its lines and the key prefix. A table whose
        validation reports nothing is keyed by the first five: the same key
        validates the same way again, so the error-only inputs never matter
        for a kept result. ``repr`` of the raw table tells ``1`` from ``1.0``,
        ``true`` and ``"1"``, and keeps key order. Never kept: a table that
        names files (input files, a local package's ``path``: they read the
        disk, and ``root``, ``lock_root`` and ``missing_source`` with them),
        spotted conservatively (a package called "path" is not kept either),
        and a table that reported an error (reported afresh every time).
        """
        text = repr(raw)
        if any(marker in text for marker in _READS_FILES):
            return self.env_decl(raw, path, allowed)
        key = (text, path, allowed, self.project_platforms, self.index_names)
        decl: EnvDecl | None = memo.DECLS.get(key)
        if decl is None:
            reported = len(self.diagnostics)
            decl = self.env_decl(raw, path, allowed)
            if len(self.diagnostics) == reported:
                memo.DECLS.put(key, decl)
        return decl

    def env_decl(self, raw: object, path: KeyPath, allowed: tuple[str, ...]) -> EnvDecl:
        table = self.table(raw, path, allowed)
        python = self.string(table, "python", path)
        if python is not None and not _PYTHON_VERSION.match(python):
            self.error(
                (*path, "python"),
                f'expected a Python version like "3.11" or "3.11.9", got \'{python}\'',
            )
        pypi_table = self.table(table.get("pypi", {}), (*path, "pypi"), PYPI_KEYS)
        pypi = self.packages(table, "pypi", path, PYPI_KEYS, self.pypi_package)
        conda_path: KeyPath = (*path, "conda")
        conda_table = self.table(table.get("conda", {}), conda_path, CONDA_KEYS)
        conda = self.packages(table, "conda", path, CONDA_KEYS, self.conda_package)
        disabled = False
        if "disabled" in table:
            disabled = bool(self.typed(table["disabled"], (*path, "disabled"), bool, "a boolean"))
        env = self.string(table, "env", path)
        channels = self.channels(conda_table, conda_path)
        targets = {
            platform: self.env_decl(raw_target, (*path, "target", platform), stacks.TARGET_KEYS)
            for platform, raw_target in stacks.target_platforms(
                self, table, path, self.project_platforms
            ).items()
        }
        for platform, target in targets.items():
            if target.pypi_constraints:
                # EnvSpec keeps one constraint list; per platform they were dropped unseen.
                self.error(
                    (*path, "target", platform, "pypi", "requirements"),
                    "-c constraints apply to the whole env, not one platform: name the file "
                    "in the env's own table, or pin the package in this target table",
                )
            if target.channels is not None:
                # One conda-lock.yml holds every platform of an env, with one channel list.
                self.error(
                    (*path, "target", platform, "conda", "channels"),
                    "channels apply to the whole env, not one platform: set them in its "
                    'conda table, or take a package from a channel with "channel::name"',
                )
        decl = EnvDecl(
            python=python,
            pypi=tuple(sorted(pypi, key=lambda p: p.name)),
            conda=tuple(sorted(conda, key=lambda p: (p.name, p.channel or ""))),
            channels=channels,
            disabled=disabled,
            env=env,
            solve_group=self.solve_group(table, path),
            platforms=stacks.platforms(self, table, path, self.project_platforms),
            system_requirements=stacks.system_requirements(self, table, path),
            targets=tuple(sorted(targets.items())),
        )
        files = [k for k in ("requirements", "pyproject") if k in pypi_table]
        if not files and "environment-file" not in conda_table:
            return decl
        from flowenv.inputs.declare import read_declared, with_inputs

        inputs = read_declared(self, pypi_table, conda_table, path, python)
        return with_inputs(decl, inputs)

    def solve_group(self, table: Mapping[str, Any], path: KeyPath) -> str | None:
        group = self.string(table, "solve-group", path)
        problem = (
            portable_name_problem(group, "a solve group", why="it appears in messages and locks")
            if group is not None
            else None
        )
        if problem:
            self.error((*path, "solve-group"), problem)
        return group

    def packages(
        self,
        table: Mapping[str, Any],
        manager: str,
        path: KeyPath,
        allowed: tuple[str, ...],
        parse: Callable[[str, object, KeyPath], T | None],
    ) -> list[T]:
        if manager not in table or not isinstance(table[manager], dict):
            return []
        section = table[manager]
        manager_path: KeyPath = (*path, manager)
        if "packages" in section and "libraries" in section:
            self.error(
                (*manager_path, "libraries"),
                "'libraries' is an alias of 'packages'; use one of them, not both",
            )
        key = "packages" if "packages" in section else "libraries"
        raw = section.get(key, {})
        if not isinstance(raw, dict):
            self.error(
                (*manager_path, key), f"expected a table of name = version, got {_type_name(raw)}"
            )
            return []
        parsed: list[T] = []
        seen: dict[str, str] = {}
        for name, spec in raw.items():
            item = parse(name, spec, (*manager_path, key, name))
            if item is None:
                continue
            identity = str(getattr(item, "name", name))
            if identity in seen:
                self.error(
                    (*manager_path, key, name),
                    f"'{seen[identity]}' and '{name}' name the same package",
                )
                continue
            seen[identity] = name
            parsed.append(item)
        return parsed

    def pypi_package(self, key: str, spec: object, path: KeyPath) -> PypiPackage | None:
        match = _PYPI_NAME.match(key)
        if not match:
            self.error(path, f"invalid package name '{key}'")
            return None
        raw_extras = [e.strip() for e in (match.group(3) or "").split(",") if e.strip()]
        problems = [p for p in map(extra_problem, raw_extras) if p]
        if problems:
            self.error(path, problems[0])
            return None
        extras = tuple(sorted(normalize_pypi_name(e) for e in raw_extras))
        index = None
        if isinstance(spec, dict) and ("path" in spec or "git" in spec):
            from flowenv.inputs.declare import local_package

            return local_package(self, normalize_pypi_name(match.group(1)), extras, spec, path)
        if isinstance(spec, dict):
            parsed = stacks.pypi_package_table(self, spec, path, self.index_names)
            if parsed is None:
                return None
            text, index = parsed
        else:
            checked = self.typed(spec, path, str, "a version string or a table")
            if checked is None:
                return None
            text = checked
        specifier = pypi_specifier(text)
        if specifier is None:
            self.error(
                path,
                f"invalid version specifier '{text}' (expected a version like \"1.2.3\" "
                'or a PEP 440 specifier like ">=1.2,<2")',
            )
            return None
        return PypiPackage(
            name=normalize_pypi_name(match.group(1)),
            specifier=specifier,
            extras=extras,
            index=index,
        )

    def conda_package(self, key: str, spec: object, path: KeyPath) -> CondaPackage | None:
        channel, sep, name = key.rpartition("::")
        if (
            (sep and not channel)
            or not CONDA_NAME.fullmatch(name)
            or (channel and not _CHANNEL_REF.match(channel))
        ):
            self.error(path, f"invalid conda package '{key}' (expected 'name' or 'channel::name')")
            return None
        text = self.typed(spec, path, str, "a version string")
        if text is None:
            return None
        normalized = conda_spec(text)
        if normalized is None:
            self.error(
                path,
                f"invalid conda version spec '{text}' (expected a version like \"1.2.3\" "
                'or a match spec like ">=1.2,<2" or "1.2.*")',
            )
            return None
        return CondaPackage(name=name.lower(), spec=normalized, channel=channel or None)


def pypi_specifier(text: str) -> str | None:
    """Normalise a declared PyPI version: a bare version is an exact pin; None if invalid."""
    text = text.strip()
    if text in ("", "*"):
        return ""
    simple = _simple_specifier(text)
    if simple is not None:
        return simple
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    if text[0].isdigit():
        try:
            return f"=={Version(text)}" if "*" not in text else str(SpecifierSet(f"=={text}"))
        except (InvalidVersion, InvalidSpecifier):
            return None
    try:
        return ",".join(sorted(str(s) for s in SpecifierSet(text)))
    except InvalidSpecifier:
        return None


# Versions that packaging prints exactly as written: release numbers without
# leading zeros. Most declared versions are these, and recognising them here
# keeps packaging (a large import) off the `lock --check` path.
_CANONICAL_RELEASE = r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*"
_SIMPLE_PIN = re.compile(rf"^{_CANONICAL_RELEASE}$")
_SIMPLE_CLAUSE = re.compile(
    rf"^(==|!=|<=|>=|<|>)\s*({_CANONICAL_RELEASE})$|^(~=)\s*({_CANONICAL_RELEASE}\.[0-9]+)$"
)


def _simple_specifier(text: str) -> str | None:
    """:func:`pypi_specifier`'s answer for the common simple forms, or None to ask packaging.

    Must agree with packaging wherever it answers; tests compare the two.
    """
    if _SIMPLE_PIN.match(text):
        return f"=={text}"
    clauses = []
    for part in text.split(","):
        match = _SIMPLE_CLAUSE.match(part.strip())
        if match is None:
            return None
        op, version = (
            (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        )
        clauses.append(f"{op}{version}")
    return ",".join(sorted(clauses))


def conda_spec(text: str) -> str | None:
    """Normalise a declared conda version: a bare version is an exact pin; None if invalid."""
    text = " ".join(text.split())
    if text in ("", "*"):
        return ""
    if _CONDA_BARE_VERSION.match(text):
        return f"=={text}"
    return text if _CONDA_SPEC.match(text) else None


def _validate_steps(
    v: _Validator, base: EnvDecl, steps: dict[str, EnvDecl], envs: dict[str, EnvDecl]
) -> None:
    # Target tables hold packages too; platforms and system requirements, like
    # python, are inherited by the steps that have packages.
    if base.disabled and (base.pypi or base.conda or base.channels is not None or base.targets):
        v.error(
            ("base", "disabled"),
            "a disabled base runs in the system environment; it cannot also declare "
            "packages or channels (python stays allowed: steps with packages inherit it)",
        )
    for name in envs:
        if name == BASE:
            v.error(("envs", name), "'base' is reserved for the [base] table; choose another name")
        elif problem := portable_name_problem(name, "an environment"):
            v.error(("envs", name), problem)
    for name, step in steps.items():
        path: KeyPath = ("steps", name)
        if not name.isidentifier():
            # Steps are the flow's methods, so their names are Python identifiers.
            v.error(path, "a step name must be a Python identifier")
        elif problem := portable_name_problem(name, "a step"):
            # A step with packages of its own names its environment (a directory).
            v.error(path, problem)
        elif name == BASE and step.has_own_content():
            v.error(
                path,
                "a step named 'base' cannot declare packages: its environment "
                "would collide with [base]; rename the step or move them to [base]",
            )
        if step.disabled and (step.has_own_content() or step.env):
            v.error(
                (*path, "disabled"),
                "a disabled step runs in the system environment; it cannot also declare "
                "python, packages, channels or env",
            )
        if step.solve_group is not None and step.disabled:
            v.error(
                (*path, "solve-group"),
                "a disabled step runs in the system environment, which has no lock to "
                "agree with; remove solve-group or disabled",
            )
        elif step.solve_group is not None and not step.has_own_content():
            v.error(
                (*path, "solve-group"),
                "this step declares nothing of its own, so it runs in "
                f"{'[envs.' + step.env + ']' if step.env else '[base]'}; "
                "put solve-group there (steps built on it inherit it)",
            )
        if step.env is not None and step.env not in envs:
            known = f"; known: {', '.join(sorted(envs))}" if envs else "; there is no [envs] table"
            v.error(
                (*path, "env"),
                f"no environment named '{step.env}' in [envs]{did_you_mean(step.env, envs)}{known}",
            )
    for name in envs:
        if name in steps and steps[name].has_own_content():
            v.error(("envs", name), f"'{name}' names both a step with packages and an [envs] entry")
    stacks.check_platform_subsets(v, base, steps, envs)
    _validate_python_present(v, base, steps, envs)


def _validate_python_present(
    v: _Validator, base: EnvDecl, steps: dict[str, EnvDecl], envs: dict[str, EnvDecl]
) -> None:
    # Every locked environment needs a Python version: defaulting to the
    # interpreter that runs flowenv would make locks differ between machines.
    hint = 'set python = "3.x" here or in [base]'
    if ("base", "python") in v.reported:
        return  # a python that is there but malformed is already reported
    if not base.disabled and not base.python:
        v.error(
            ("base",),
            "no python version; steps that declare nothing of their own run in "
            f"base, so it is locked too ({hint}, or disabled = true)",
        )
    for name, env in envs.items():
        if ("envs", name, "python") in v.reported:
            continue
        if not (env.python or base.python):
            v.error(("envs", name), f"no python version ({hint})")
    for name, step in steps.items():
        if step.disabled or not step.has_own_content() or ("steps", name, "python") in v.reported:
            continue
        parent_python = (envs[step.env].python if step.env in envs else None) or base.python
        if not (step.python or parent_python):
            v.error(("steps", name), f"no python version ({hint})")


def read_toml(text: str) -> tuple[LazyKeyLines, dict[str, Any]]:
    """The line of every key (found when asked) and the parsed document.

    :class:`TooDeep` past the nesting bound, with the line the linear line
    scan names. The scan runs before tomllib only where a key may be longer
    than the bound (tomllib is quadratic in a key's parts); elsewhere it runs
    when tomllib fails, and its verdict comes first, exactly as when it always
    ran first; on a valid file only when a message asks for a line.
    """
    lines = LazyKeyLines(text)
    if may_nest_too_deep(text):
        lines.scan()
    try:
        return lines, parse_bounded(tomllib.loads, text)
    except (tomllib.TOMLDecodeError, TooDeep):
        lines.scan()
        raise


def _keys(table: object) -> tuple[str, ...]:
    """Every key of ``table`` when it is one (``steps = 3`` is reported by the shape check)."""
    return tuple(table) if isinstance(table, dict) else ()


def parse_config(text: str, path: Path, *, missing_source: MissingSource | None = None) -> Config:
    """Validate ``text`` (the contents of ``path``) into a :class:`Config`.

    ``missing_source``: see :func:`load_config`.
    """
    display = str(path)
    try:
        lines, data = read_toml(text)
    except TooDeep as exc:
        raise ConfigError([Diagnostic(display, exc.line, "", f"invalid TOML: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError([Diagnostic(display, line, "", f"invalid TOML: {message}")]) from None
    prefix: KeyPath = ()
    if path.name == PYPROJECT_NAME:
        prefix = ("tool", "flowenv")
        tool = data.get("tool")
        if not isinstance(tool, dict) or "flowenv" not in tool:
            # Reached only with -c: discovery skips a pyproject.toml without the table.
            raise ConfigError([Diagnostic(display, None, "", "no [tool.flowenv] table")])
        data = tool["flowenv"]
    root = path.parent
    v = _Validator(display, lines, prefix, root, missing_source)
    top = v.table(data, (), TOP_KEYS)
    project = v.project(top.get("project", {}), root)
    v.lock_root = root / project.lock_dir
    memo.DECLS.start()
    env_decl = v.memoised_env_decl
    base = env_decl(top.get("base", {}), ("base",), BASE_KEYS)
    steps_raw = v.table(top.get("steps", {}), ("steps",), _keys(top.get("steps")))
    envs_raw = v.table(top.get("envs", {}), ("envs",), _keys(top.get("envs")))
    steps = {name: env_decl(raw, ("steps", name), STEP_KEYS) for name, raw in steps_raw.items()}
    envs = {name: env_decl(raw, ("envs", name), ENV_KEYS) for name, raw in envs_raw.items()}
    _validate_steps(v, base, steps, envs)
    if v.diagnostics:
        # In file order, so the report reads top to bottom like the file.
        # Problems inside input files follow, in the order they were read.
        raise ConfigError(
            sorted(
                v.diagnostics,
                key=lambda d: (d.file != display, (d.line or 0) if d.file == display else 0),
            )
        )
    return Config(
        path=path,
        root=root,
        project=project,
        base=base,
        steps=tuple(sorted(steps.items())),
        envs=tuple(sorted(envs.items())),
        key_prefix="tool.flowenv." if prefix else "",
    )


def located(config: Config, problems: Iterable[tuple[KeyPath, str]]) -> ConfigError:
    """A ConfigError for problems found after loading (by key path), each at its line.

    The file is read again only now: lines serve messages, and a valid
    configuration is never scanned for them (see :class:`LazyKeyLines`).
    """
    prefix: KeyPath = ("tool", "flowenv") if config.key_prefix else ()
    try:
        lines: LazyKeyLines | None = LazyKeyLines(
            decode_utf8(read_source(config.path), str(config.path))
        )
    except (OSError, TooLarge, ConfigError):
        lines = None  # changed or gone since it was loaded: no lines, still the problems
    return ConfigError(
        [
            Diagnostic(
                str(config.path),
                lines.line_of((*prefix, *path)) if lines else None,
                render_key_path((*prefix, *path)),
                message,
            )
            for path, message in problems
        ]
    )


def load_config(path: Path, *, missing_source: MissingSource | None = None) -> Config:
    """Read and validate the configuration file at ``path``.

    ``missing_source(root, lock_root, directory)`` is for commands that build
    from the store alone (``hydrate``, ``run``): an executor's checkout may
    lack a local package's directory (its built wheel is in the store). It
    gives the source hash the locks record for that directory, so freshness is
    still checked for every other input; None leaves the missing directory an
    error, as it always is for ``lock`` and ``sync``.
    """
    try:
        data = read_source(path)
    except OSError as exc:
        raise ConfigError(
            [Diagnostic(str(path), None, "", f"cannot read: {exc.strerror}")]
        ) from None
    except TooLarge as exc:
        raise ConfigError([Diagnostic(str(path), None, "", f"too large: {exc}")]) from None
    return parse_config(decode_utf8(data, str(path)), path, missing_source=missing_source)


def decode_utf8(data: bytes, display: str) -> str:
    """``data`` as UTF-8 text (TOML requires it), or a ConfigError naming the line that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            [Diagnostic(display, line, "", f"not UTF-8 text (byte {exc.start + 1} is not valid)")]
        ) from None
