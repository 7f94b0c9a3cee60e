"""schemas/flowenv.schema.json and the loader agree: same keys, same verdicts on real files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flowenv.config import load as loader
from flowenv.config.load import load_config
from flowenv.errors import ConfigError
from flowenv.platforms import KNOWN_PLATFORMS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "schemas" / "flowenv.schema.json").read_text())
EXAMPLES = sorted((REPO / "examples").glob("**/flowenv.toml"))
INVALID = sorted((REPO / "tests" / "data" / "invalid").glob("*.toml"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _schema_errors(path: Path) -> list[str]:
    document = tomllib.loads(path.read_text())
    return [error.message for error in VALIDATOR.iter_errors(document)]


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_examples_exist() -> None:
    assert {p.parent.name for p in EXAMPLES} >= {
        "allscikit",
        "fractal",
        "ml-pipeline",
        "peekaboo",
        "scikit",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_pass_schema_and_loader(path: Path) -> None:
    assert _schema_errors(path) == []
    load_config(path)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_files_are_rejected_by_both(path: Path) -> None:
    assert _schema_errors(path) != []
    with pytest.raises(ConfigError):
        load_config(path)


def _keys(node: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(node["properties"]))


def test_schema_keys_match_the_loader() -> None:
    props = SCHEMA["properties"]
    defs = SCHEMA["$defs"]
    assert _keys(SCHEMA) == tuple(sorted(loader.TOP_KEYS))
    assert _keys(props["project"]) == tuple(sorted(loader.PROJECT_KEYS))
    assert _keys(props["project"]["properties"]["pypi"]) == tuple(sorted(loader.PROJECT_PYPI_KEYS))
    assert _keys(props["project"]["properties"]["conda"]) == tuple(
        sorted(loader.PROJECT_CONDA_KEYS)
    )
    assert _keys(props["base"]) == tuple(sorted(loader.BASE_KEYS))
    assert _keys(props["steps"]["additionalProperties"]) == tuple(sorted(loader.STEP_KEYS))
    assert _keys(props["envs"]["additionalProperties"]) == tuple(sorted(loader.ENV_KEYS))
    assert _keys(defs["pypiSection"]) == tuple(sorted(loader.PYPI_KEYS))
    assert _keys(defs["condaSection"]) == tuple(sorted(loader.CONDA_KEYS))
    assert tuple(props["project"]["properties"]["platforms"]["items"]["enum"]) == KNOWN_PLATFORMS
    priorities = props["project"]["properties"]["conda"]["properties"]["channel-priority"]["enum"]
    assert tuple(priorities) == loader.CHANNEL_PRIORITIES


@pytest.mark.parametrize(
    ("spec", "valid"),
    [
        ("1.2.3", True),
        ("", True),
        ("*", True),
        (">=1.2,<2", True),
        ("~=3.1", True),
        ("==1.*", True),
        ("1.0rc1", True),
        (">= 1.0 , != 1.3", True),
        (">=1.2,<<2", False),
        ("abc", False),
        ("1.0,", False),
        (">=", False),
    ],
)
def test_pypi_version_pattern_agrees_with_the_loader(spec: str, valid: bool) -> None:
    pattern_ok = jsonschema.Draft202012Validator(
        {**SCHEMA["$defs"]["pypiVersion"], "$defs": SCHEMA["$defs"]}
    ).is_valid(spec)
    assert pattern_ok is valid
    assert (loader.pypi_specifier(spec) is not None) is valid


@pytest.mark.parametrize(
    ("spec", "valid"),
    [
        ("1.3.1", True),
        ("", True),
        ("2.4.*", True),
        (">=1.2,<2", True),
        ("<2", True),
        ("1.26 py311*", True),
        ("1.2|1.4", True),
        ("1.2,,", False),
        (">=1 2 3", False),
    ],
)
def test_conda_version_pattern_agrees_with_the_loader(spec: str, valid: bool) -> None:
    pattern_ok = jsonschema.Draft202012Validator(SCHEMA["$defs"]["condaVersion"]).is_valid(spec)
    assert pattern_ok is valid
    assert (loader.conda_spec(spec) is not None) is valid


FAST = [
    "1",
    "1.0",
    "0.0.11",
    "10.2.3",
    ">=1.2,<2",
    "<2, >=1.2",
    "~=3.1",
    "~=1.4.2",
    "!=1.3",
    "> 1",
    "==1.0",
    "<=2.0.0",
    ">=1,>=1",
]
#: Left to packaging: non-canonical versions, wildcards, pre-releases, ~= with one part.
SLOW = ["01.2", "1.0.0-rc1", "~=1", "1.*", "==1.*", ">=1.0a1", "1.0,"]


@pytest.mark.parametrize("spec", FAST)
def test_fast_specifier_path_agrees_with_packaging(spec: str) -> None:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    fast = loader._simple_specifier(spec)
    if spec[0].isdigit():
        assert fast == f"=={Version(spec)}"
    else:
        assert fast == ",".join(sorted(str(s) for s in SpecifierSet(spec)))
    assert loader.pypi_specifier(spec) == fast


@pytest.mark.parametrize("spec", SLOW)
def test_unusual_specifiers_are_left_to_packaging(spec: str) -> None:
    assert loader._simple_specifier(spec) is None
