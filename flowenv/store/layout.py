"""The store's content-addressed layout and the manifest that ties an environment to its artifacts.

::

    artifacts/sha256/<ab>/<digest>/<filename>       every wheel and conda package, once
    envs/<env-id>/<platform>/<lock file>            a copy of the lock it was made from
    envs/<env-id>/<platform>/manifest.json          written only after every artifact it names
    projects/<project>/envs/<env>/<platform>/current   {"env_id": ...}, written last
    projects/<project>/steps.json                   {"steps": {step: env or null}}
    interpreters/<platform>/cpython-<python>.json   the CPython build stored for that python

The env id is a hash of what gets installed (kind, platform, Python, every
artifact's name, version, file name and sha256), so identical locks in two
projects share one manifest and every artifact is shared by all envs. Every
name that ends up in a key or a local path is validated here, whether it came
from a lock file or from a manifest read back from the store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from flowenv._bounds import parse_bounded
from flowenv.config.validators import CONDA_NAME, PEP508_NAME, is_version_text
from flowenv.errors import StoreError, UsageError

MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"
ALIAS_NAME = "current"
ARTIFACTS = "artifacts/sha256"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.+-]+$")
_ENV_ID = re.compile(r"^[0-9a-f]{32}$")
_REQUIREMENT = re.compile(r"(cuda|glibc|macos)=[0-9]+(\.[0-9]+)*")
MANAGERS = ("pip", "conda")
KINDS = ("pypi", "conda")


def check_filename(filename: str, where: str) -> str:
    """An artifact file name that is safe as one path component, or a StoreError (exit 4)."""
    if (
        not filename
        or filename in (".", "..")
        or "/" in filename
        or "\\" in filename
        or ".." in filename
        or filename.startswith(".")
        or "\x00" in filename
        or ":" in filename
    ):
        raise StoreError(f"{where}: refusing artifact name {filename!r}: not a plain file name")
    return filename


def check_sha256(digest: str, where: str) -> str:
    if not _SHA256.fullmatch(digest):
        raise StoreError(f"{where}: refusing artifact without a valid sha256 (got {digest!r})")
    return digest


def check_segment(name: str, what: str) -> str:
    """A project, env or platform name used as one key segment."""
    if not _SEGMENT.fullmatch(name) or name in (".", "..") or ".." in name:
        raise UsageError(f"invalid {what} name {name!r}: use letters, digits, '.', '_', '+', '-'")
    return name


def check_env_id(env_id: str) -> str:
    """An env id given by a user (``--env-id``): 32 hex digits, so never a path."""
    if not _ENV_ID.fullmatch(env_id):
        raise UsageError(
            f"invalid env id {env_id!r}: expected 32 lowercase hex digits "
            "(as `flowenv sync` prints it)"
        )
    return env_id


def _text(data: Mapping[str, Any], key: str) -> str:
    """``data[key]`` when it is a string; a ValueError naming the key otherwise."""
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {type(value).__name__}")
    return value


def _checked_name(name: str, manager: str) -> str:
    # These names reach uv's requirement files and rattler's specs: a name is a
    # name (PEP 508 / conda), never a line break, an option or a second requirement.
    rule = PEP508_NAME if manager == "pip" else CONDA_NAME
    if not rule.fullmatch(name):
        raise ValueError(f"invalid package name {name!r}")
    return name


def _checked_version(version: str) -> str:
    if not is_version_text(version):
        raise ValueError(f"invalid version {version!r}")
    return version


def artifact_key(sha256: str, filename: str) -> str:
    return f"{ARTIFACTS}/{sha256[:2]}/{sha256}/{filename}"


def env_dir(env_id: str, platform: str) -> str:
    return f"envs/{env_id}/{platform}"


def manifest_key(env_id: str, platform: str) -> str:
    return f"{env_dir(env_id, platform)}/{MANIFEST_NAME}"


def alias_key(project: str, env: str, platform: str) -> str:
    return (
        f"projects/{check_segment(project, 'project')}/envs/{check_segment(env, 'environment')}"
        f"/{check_segment(platform, 'platform')}/{ALIAS_NAME}"
    )


def steps_key(project: str) -> str:
    """Where sync records which env each step runs in (so executors resolve steps sans config)."""
    return f"projects/{check_segment(project, 'project')}/steps.json"


def render_steps(step_envs: Mapping[str, str | None], default: str | None) -> bytes:
    document = {"steps": dict(step_envs), "default": default}
    return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()


def parse_steps(data: bytes, where: str) -> tuple[dict[str, str | None], str | None]:
    """The step -> env map of :func:`steps_key` and the env of undeclared steps.

    None stands for the system environment (a disabled step, or base disabled).
    """
    try:
        document = json.loads(data)
        steps, default = document["steps"], document.get("default")
        if not isinstance(steps, dict) or not (default is None or isinstance(default, str)):
            raise TypeError("not a step map")
    except (ValueError, KeyError, TypeError):
        raise StoreError(f"{where}: not a flowenv step map") from None
    out: dict[str, str | None] = {}
    for step, env in steps.items():
        if not isinstance(step, str) or not (env is None or isinstance(env, str)):
            raise StoreError(f"{where}: invalid entry for step {step!r}")
        out[step] = env
    return out, default


@attrs.frozen(kw_only=True)
class Artifact:
    """One file an environment installs, addressed by its sha256."""

    sha256: str
    filename: str
    manager: str  # "pip" (a wheel) | "conda" (a .conda / .tar.bz2 package)
    name: str
    version: str
    #: Bytes; 0 when not yet known (planning before the file was fetched).
    size: int = 0

    @property
    def key(self) -> str:
        return artifact_key(self.sha256, self.filename)

    def identity(self) -> list[str]:
        return [self.manager, self.name, self.version, self.filename, self.sha256]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "filename": self.filename,
            "size": self.size,
            "manager": self.manager,
            "name": self.name,
            "version": self.version,
        }

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any], where: str) -> Artifact:
        try:
            manager = str(data["manager"])
            if manager not in MANAGERS:
                raise ValueError(f"manager must be one of {', '.join(MANAGERS)}, got {manager!r}")
            size = data.get("size", 0)
            if not isinstance(size, int) or size < 0:
                raise ValueError(f"size must be a non-negative integer, got {size!r}")
            return cls(
                sha256=check_sha256(_text(data, "sha256"), where),
                filename=check_filename(_text(data, "filename"), where),
                manager=manager,
                name=_checked_name(_text(data, "name"), manager),
                version=_checked_version(_text(data, "version")),
                size=size,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"{where}: invalid artifact entry: {exc}") from None


def compute_env_id(
    kind: str,
    platform: str,
    python: str | None,
    artifacts: Sequence[Artifact],
    requires: Sequence[tuple[str, str]] = (),
) -> str:
    """32 hex digits of sha256 over what gets installed; names of projects and envs excluded.

    ``requires`` (system requirements) counts only when there are any, so the
    ids of envs without them are what they were before requirements existed.
    """
    identity: dict[str, object] = {
        "format": MANIFEST_FORMAT,
        "kind": kind,
        "platform": platform,
        "python": python,
        "artifacts": sorted(a.identity() for a in artifacts),
    }
    if requires:
        identity["requires"] = sorted(requires)
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@attrs.frozen(kw_only=True)
class Manifest:
    """What one environment x platform installs, exactly."""

    kind: str  # "pypi" | "conda"
    platform: str
    #: The Python a PyPI env's venv is made with ("3.11"); None for conda envs (a package).
    python: str | None
    #: File name of the lock copy stored beside the manifest.
    lock_name: str
    artifacts: tuple[Artifact, ...]
    #: System requirements (name, minimum version) hydrate checks: ("cuda", "12").
    requires: tuple[tuple[str, str], ...] = ()

    @property
    def env_id(self) -> str:
        return compute_env_id(self.kind, self.platform, self.python, self.artifacts, self.requires)

    def with_sizes(self, sizes: Mapping[str, int]) -> Manifest:
        """The same manifest with each artifact's size (by store key) filled in."""
        return attrs.evolve(
            self,
            artifacts=tuple(attrs.evolve(a, size=sizes.get(a.key, a.size)) for a in self.artifacts),
        )

    def to_json(self) -> str:
        document: dict[str, object] = {
            "format": MANIFEST_FORMAT,
            "env_id": self.env_id,
            "kind": self.kind,
            "platform": self.platform,
            "python": self.python,
            "lock": self.lock_name,
            "artifacts": [a.to_dict() for a in sorted(self.artifacts, key=lambda a: a.identity())],
        }
        if self.requires:
            document["requires"] = dict(self.requires)
        return json.dumps(document, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(
        cls, text: str | bytes, where: str, expected_env_id: str | None = None
    ) -> Manifest:
        """Parse and validate a manifest read from ``where``; a StoreError for anything off."""
        try:
            data = parse_bounded(json.loads, text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unsupported manifest format {data.get('format')!r}")
            kind = _text(data, "kind")
            if kind not in KINDS:
                raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
            platform = _text(data, "platform")
            if not _SEGMENT.fullmatch(platform) or ".." in platform:
                raise ValueError(f"invalid platform {platform!r}")
            python = data.get("python")
            if python is not None and not (isinstance(python, str) and is_version_text(python)):
                raise ValueError(f"invalid python version {python!r}")
            entries = data["artifacts"]
            if not isinstance(entries, list):
                raise ValueError("artifacts must be a list")
            if not isinstance(data.get("lock", ""), str):
                raise ValueError("lock must be a file name")
            requires = data.get("requires", {})
            if not isinstance(requires, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and _REQUIREMENT.fullmatch(f"{k}={v}")
                for k, v in requires.items()
            ):
                raise ValueError("requires must map cuda/glibc/macos to versions")
        except KeyError as exc:
            raise StoreError(f"{where}: not a flowenv manifest: no {exc} key") from None
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{where}: not a flowenv manifest: {exc}") from None
        manifest = cls(
            kind=kind,
            platform=platform,
            python=python,
            lock_name=check_filename(data.get("lock", ""), where),
            artifacts=tuple(
                Artifact._from_dict(e, f"{where}: artifacts[{i}]") for i, e in enumerate(entries)
            ),
            requires=tuple(sorted(requires.items())),
        )
        # The id is recomputed, never trusted: a manifest edited in the store
        # no longer matches the key it is stored under and is refused.
        recorded = data.get("env_id")
        for claimed in (recorded, expected_env_id):
            if claimed is not None and claimed != manifest.env_id:
                raise StoreError(
                    f"{where}: manifest content does not match its env id "
                    f"({claimed} != {manifest.env_id}); refusing it"
                )
        return manifest


def parse_alias(data: bytes, where: str) -> str:
    """The env id an alias file points at."""
    try:
        env_id = parse_bounded(json.loads, data)["env_id"]
    except (ValueError, KeyError, TypeError):
        raise StoreError(f"{where}: not a flowenv alias file") from None
    if not isinstance(env_id, str) or not _ENV_ID.fullmatch(env_id):
        raise StoreError(f"{where}: invalid env id {env_id!r}")
    return env_id


def render_alias(env_id: str) -> bytes:
    return (json.dumps({"env_id": env_id}, sort_keys=True) + "\n").encode()


# -- roots: tags, pins; gc markers -----------------------------------------------------
#: Under ``projects/<project>/envs/<env>/<platform>/``: ``current`` (the alias), then
#: ``tags/<name>`` (an env id under a human name) and ``pins/<env-id>`` (a deployed run's env).
TAGS = "tags"
PINS = "pins"
#: ``gc/running/<run>`` exists while a gc deletes; ``gc/done/<run>`` is written when it ends.
GC_PREFIX = "gc"
RESERVED_TAGS = (ALIAS_NAME,)


def env_root_dir(project: str, env: str, platform: str) -> str:
    """``projects/<project>/envs/<env>/<platform>``: the alias, tags and pins of one env."""
    return alias_key(project, env, platform).rsplit("/", 1)[0]


def tag_key(project: str, env: str, platform: str, tag: str) -> str:
    if tag in RESERVED_TAGS:
        raise UsageError(f"invalid tag name {tag!r}: reserved")
    return f"{env_root_dir(project, env, platform)}/{TAGS}/{check_segment(tag, 'tag')}"


def pin_key(project: str, env: str, platform: str, env_id: str) -> str:
    return f"{env_root_dir(project, env, platform)}/{PINS}/{check_env_id(env_id)}"


@attrs.frozen(kw_only=True)
class RootKey:
    """What a key under ``projects/`` is: an alias, a tag or a pin of one env x platform."""

    project: str
    env: str
    platform: str
    kind: str  # "current" | "tag" | "pin"
    name: str  # the tag name; the env id of a pin; "current"


def parse_root_key(key: str) -> RootKey | None:
    """Split a key under ``projects/``; None for anything that is not a root this layout writes."""
    parts = key.split("/")
    if len(parts) < 6 or parts[0] != "projects" or parts[2] != "envs":
        return None
    project, env, platform = parts[1], parts[3], parts[4]
    if any(not _SEGMENT.fullmatch(p) or ".." in p for p in (project, env, platform)):
        return None
    rest = parts[5:]
    if rest == [ALIAS_NAME]:
        return RootKey(project=project, env=env, platform=platform, kind="current", name=ALIAS_NAME)
    if len(rest) == 2 and rest[0] == TAGS and _SEGMENT.fullmatch(rest[1]) and ".." not in rest[1]:
        return RootKey(project=project, env=env, platform=platform, kind="tag", name=rest[1])
    if len(rest) == 2 and rest[0] == PINS and _ENV_ID.fullmatch(rest[1]):
        return RootKey(project=project, env=env, platform=platform, kind="pin", name=rest[1])
    return None


def parse_env_key(key: str) -> tuple[str, str, str] | None:
    """``envs/<env-id>/<platform>/<file>`` -> (env id, platform, file); None for other keys."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "envs" or not _ENV_ID.fullmatch(parts[1]):
        return None
    return parts[1], parts[2], parts[3]


def parse_artifact_key(key: str) -> tuple[str, str] | None:
    """``artifacts/sha256/<ab>/<digest>/<file>`` -> (digest, file); None for other keys."""
    parts = key.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ARTIFACTS or not _SHA256.fullmatch(parts[3]):
        return None
    return parts[3], parts[4]


def render_root(env_id: str, **details: Any) -> bytes:
    """An alias, tag or pin file: the env id, plus what ``store ls`` shows (all optional).

    Readers take only ``env_id`` (:func:`parse_alias`): details are additive.
    """
    document = {"env_id": env_id, **{k: v for k, v in details.items() if v is not None}}
    return (json.dumps(document, sort_keys=True) + "\n").encode()


def parse_root(data: bytes, where: str) -> dict[str, Any]:
    """An alias, tag or pin file's whole record (``env_id`` validated; details as written)."""
    env_id = parse_alias(data, where)
    record = json.loads(data)
    return {**record, "env_id": env_id} if isinstance(record, dict) else {"env_id": env_id}
