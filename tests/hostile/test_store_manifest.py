"""Manifests and aliases read back from a store are foreign input: validated strictly, once.

A hostile or damaged store must never get a line into uv's requirement files,
a path outside the cache, a RecursionError or a traceback: each case is one
StoreError (exit 4) naming the store key.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowenv.errors import StoreError
from flowenv.store.layout import Artifact, Manifest, compute_env_id, parse_alias
from tests.support.cli_runner import Outcome

SHA = "a" * 64
GOOD_ARTIFACT = {
    "sha256": SHA,
    "filename": "alpha-1.0-py3-none-any.whl",
    "size": 10,
    "manager": "pip",
    "name": "alpha",
    "version": "1.0",
}


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": 1,
        "kind": "pypi",
        "platform": "linux-64",
        "python": "3.11",
        "lock": "pylock.linux-64.toml",
        "artifacts": [dict(GOOD_ARTIFACT)],
    }
    document.update(changes)
    return {k: v for k, v in document.items() if v is not _MISSING}


_MISSING = object()


def _artifact(**changes: Any) -> dict[str, Any]:
    return {**GOOD_ARTIFACT, **changes}


HOSTILE = {
    "no platform": (_document(platform=_MISSING), "no 'platform' key"),
    "platform not a string": (_document(platform=["linux-64"]), "platform must be a string"),
    "platform a path": (_document(platform="../../etc"), "invalid platform"),
    "no kind": (_document(kind=_MISSING), "no 'kind' key"),
    "artifacts a mapping": (_document(artifacts={"a": 1}), "artifacts must be a list"),
    "artifact a string": (_document(artifacts=["alpha"]), "invalid artifact entry"),
    "python with a newline": (_document(python="3.11\n-r x"), "invalid python version"),
    "lock not a string": (_document(lock=["x"]), "lock must be a file name"),
    "name injects a requirement line": (
        _document(artifacts=[_artifact(name="alpha==2.0\n-r /etc/hostname\n#")]),
        "invalid package name",
    ),
    "name with a trailing newline": (
        _document(artifacts=[_artifact(name="alpha\n")]),
        "invalid package name",
    ),
    "conda name with a space": (
        _document(kind="conda", artifacts=[_artifact(manager="conda", name="numpy >=1")]),
        "invalid package name",
    ),
    "version with a newline": (
        _document(artifacts=[_artifact(version="1.0\n-e /tmp/x")]),
        "invalid version",
    ),
    "version not a string": (_document(artifacts=[_artifact(version=1.0)]), "must be a string"),
    "filename a path": (
        _document(artifacts=[_artifact(filename="../../x.whl")]),
        "not a plain file name",
    ),
    "name missing": (
        _document(artifacts=[{k: v for k, v in GOOD_ARTIFACT.items() if k != "name"}]),
        "invalid artifact entry",
    ),
}


@pytest.mark.parametrize("case", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_manifest_is_one_store_error(case: tuple[dict[str, Any], str]) -> None:
    document, message = case
    with pytest.raises(StoreError, match=r"^m\.json") as info:
        Manifest.from_json(json.dumps(document), "m.json")
    assert message in info.value.message


@pytest.mark.parametrize("depth", [101, 1000, 100_000])
def test_deeply_nested_json_is_refused(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    text = json.dumps(_document()).replace('"python": "3.11"', f'"python": "3.11", "x": {nested}')
    with pytest.raises(StoreError, match="nested more than 100 levels deep"):
        Manifest.from_json(text, "m.json")
    with pytest.raises(StoreError, match="not a flowenv alias file"):
        parse_alias(('{"env_id": ' + nested + "}").encode(), "current")


def test_the_good_manifest_is_read() -> None:
    manifest = Manifest.from_json(json.dumps(_document()), "m.json")
    assert manifest.artifacts[0].name == "alpha"


# -- through the commands that read a store --------------------------------------------------
BASE = """\
[base]
python = "3.11"
pypi.packages = { alpha = "1.0" }
"""


def _hostile_manifest_in_store(store: Path, artifacts: list[dict[str, Any]]) -> str:
    """Write a manifest whose env id matches its (hostile) content; its env id."""
    document = _document(artifacts=artifacts)
    try:
        env_id = compute_env_id(
            "pypi",
            "linux-64",
            "3.11",
            [Artifact(**{k: v for k, v in a.items() if k != "size"}) for a in artifacts],
        )
    except TypeError:
        env_id = "0" * 32
    document["env_id"] = env_id
    path = store / "envs" / env_id / "linux-64" / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document))
    return env_id


@pytest.mark.parametrize(
    "command",
    [
        ("hydrate", "base", "-C", "{empty}", "--store", "{store}", "--env-id", "{id}"),
        ("-C", "{empty}", "run", "base", "--store", "{store}", "--env-id", "{id}", "--", "true"),
    ],
    ids=["hydrate", "run"],
)
@pytest.mark.parametrize(
    ("artifact", "message"),
    [
        (_artifact(name="alpha==2.0\n-r /etc/hostname\n#"), "invalid package name"),
        (_artifact(version="1.0\n-r /etc/hostname"), "invalid version"),
    ],
    ids=["name", "version"],
)
def test_hydrate_and_run_refuse_an_injected_manifest(
    run_cli: Callable[..., Outcome],
    tmp_path: Path,
    flowenv_cache: Path,
    command: tuple[str, ...],
    artifact: dict[str, Any],
    message: str,
) -> None:
    store = tmp_path / "store"
    env_id = _hostile_manifest_in_store(store, [artifact])
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.format(empty=empty, store=store, id=env_id) for a in command]
    outcome = run_cli(*args)
    assert outcome.code == 4, outcome
    assert message in outcome.err
    assert "Traceback" not in outcome.err
    assert not (flowenv_cache / "envs" / env_id).exists()


def test_hydrate_an_alias_nested_1000_deep(
    run_cli: Callable[..., Outcome], tmp_path: Path, flowenv_cache: Path
) -> None:
    store = tmp_path / "store"
    alias = store / "projects" / "p" / "envs" / "base" / "linux-64" / "current"
    alias.parent.mkdir(parents=True)
    alias.write_text('{"env_id": ' + "[" * 1000 + "]" * 1000 + "}")
    outcome = run_cli(
        "-C",
        tmp_path,
        "hydrate",
        "base",
        "--store",
        store,
        "--project",
        "p",
        "--platform",
        "linux-64",
    )
    assert outcome.code == 4, outcome
    assert "not a flowenv alias file" in outcome.err


def test_hydrate_refuses_an_artifact_that_is_a_directory(
    make_project: Callable[..., Path], run_cli: Callable[..., Outcome], flowenv_cache: Path
) -> None:
    root = make_project(BASE, project_extra='store = "store"\n')
    assert run_cli("-C", root, "lock").code == 0
    assert run_cli("-C", root, "sync").code == 0
    (wheel,) = (root / "store" / "artifacts").rglob("alpha-1.0-*.whl")
    wheel.unlink()
    (wheel / "inside").mkdir(parents=True)
    outcome = run_cli("-C", root, "hydrate", "base", "--platform", "linux-64")
    assert outcome.code == 4, outcome
    assert "alpha-1.0-py3-none-any.whl" in outcome.err
    assert "Traceback" not in outcome.err
    shutil.rmtree(wheel)


@pytest.mark.network
@pytest.mark.parametrize("example", ["fractal", "metaflow-loop"])
def test_manifests_of_real_pypi_locks_pass_the_strict_reader(
    run_cli: Callable[..., Outcome], tmp_path: Path, example: str
) -> None:
    """Real package names and versions from PyPI are what the strict reader must accept."""
    from flowenv.config.load import load_config
    from flowenv.lock import Selection, select_targets
    from flowenv.spec import build_environments
    from flowenv.store.plan import plan_target

    root = tmp_path / example
    examples = Path(__file__).resolve().parent.parent.parent / "examples"
    shutil.copytree(examples / example, root, ignore=shutil.ignore_patterns("locks", ".flowenv"))
    assert run_cli("-q", "-C", root, "lock").code == 0
    config = load_config(root / "flowenv.toml")
    targets = select_targets(config, build_environments(config), Selection())
    manifests = [plan_target(t).manifest for t in targets]
    names = {a.name for m in manifests for a in m.artifacts}
    assert len(names) > 5
    for manifest in manifests:
        assert Manifest.from_json(manifest.to_json(), "real") == manifest
