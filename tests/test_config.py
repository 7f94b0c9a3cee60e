"""Configuration validation: every bad input gets its exact, located message, all at once.

The invalid files in ``tests/data/invalid/`` are checked twice: as a
``flowenv.toml`` and wrapped into a ``pyproject.toml`` ``[tool.flowenv]``
table, where every key path gains the ``tool.flowenv.`` prefix and every line
moves down by the wrapper's header.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.errors import ConfigError

INVALID = Path(__file__).parent / "data" / "invalid"

#: file -> every (line, key path, message) the loader must report, in file order.
EXPECTED: dict[str, list[tuple[int, str, str]]] = {
    "unknown_key.toml": [
        (3, "base.pypi.pacakges", "unknown key (did you mean 'packages'?)"),
    ],
    "unknown_top_table.toml": [
        (4, "step", "unknown key (did you mean 'steps'?)"),
    ],
    "unknown_platform.toml": [
        (
            3,
            "project.platforms[1]",
            "unknown platform 'osx-arm46' (did you mean 'osx-arm64'?); "
            "expected one of linux-64, linux-aarch64, osx-64, osx-arm64, win-64",
        ),
    ],
    "bad_specifier.toml": [
        (
            5,
            "steps.train.pypi.packages.numpy",
            "invalid version specifier '>=1.2,<<2' (expected a version like \"1.2.3\" "
            'or a PEP 440 specifier like ">=1.2,<2")',
        ),
    ],
    "disabled_with_packages.toml": [
        (
            5,
            "steps.peekaboo.disabled",
            "a disabled step runs in the system environment; it cannot also declare "
            "python, packages, channels or env",
        ),
    ],
    "disabled_base_with_packages.toml": [
        (
            3,
            "base.disabled",
            "a disabled base runs in the system environment; it cannot also declare "
            "packages or channels (python stays allowed: steps with packages inherit it)",
        ),
    ],
    "wrong_types.toml": [
        (2, "project.name", "expected a string, got an integer"),
        (3, "project.platforms", "expected an array of strings, got a string"),
        (6, "base.python", "expected a string, got a float"),
        (7, "base.pypi.packages", "expected a table of name = version, got an array"),
        (10, "steps.train.disabled", "expected a boolean, got a string"),
    ],
    "packages_and_libraries.toml": [
        (
            6,
            "steps.train.conda.libraries",
            "'libraries' is an alias of 'packages'; use one of them, not both",
        ),
    ],
    "missing_python.toml": [
        (
            1,
            "base",
            "no python version; steps that declare nothing of their own run in base, so it "
            'is locked too (set python = "3.x" here or in [base], or disabled = true)',
        ),
    ],
    "bad_python_version.toml": [
        (2, "base.python", 'expected a Python version like "3.11" or "3.11.9", got \'3\''),
    ],
    "bad_conda_package.toml": [
        (
            5,
            'steps.train.conda.packages."::pytorch"',
            "invalid conda package '::pytorch' (expected 'name' or 'channel::name')",
        ),
    ],
    "bad_step_name.toml": [
        (4, "steps.train-model", "a step name must be a Python identifier"),
    ],
    "lock_dir_outside_project.toml": [
        (
            3,
            "project.lock-dir",
            "'../shared' leaves the project directory; lock files must live inside it",
        ),
    ],
    "windows_reserved_env_name.toml": [
        (4, "envs.CON", "'CON' is reserved on Windows and cannot name a directory there"),
    ],
    "dot_dot_env_name.toml": [
        (
            4,
            'envs."a..b"',
            "an environment name may only use letters, digits, '_', '-' and '.', must start "
            "with a letter, digit or '_', must not end with '.' and must not contain '..' "
            "(it names a directory under the lock dir and a key in the store)",
        ),
    ],
    "extra_with_newline.toml": [
        (
            3,
            'base.pypi.packages."alpha[x\\n-r /etc/passwd\\ny]"',
            "invalid extra 'x\\n-r /etc/passwd\\ny' "
            "(an extra is a name: letters, digits, '.', '_', '-')",
        ),
    ],
    "project_name_with_space.toml": [
        (
            2,
            "project.name",
            "a project name may only use letters, digits, '_', '-' and '.', must start "
            "with a letter, digit or '_', must not end with '.' and must not contain '..' "
            "(it names the project in the store)",
        ),
    ],
    "step_name_too_long.toml": [
        (4, "steps." + "s" * 65, "a step name is 65 characters long; at most 64 are allowed"),
    ],
    "env_platform_unknown.toml": [
        (6, "base.platforms[0]", "unknown platform 'linux-46' (did you mean 'linux-64'?)"),
    ],
    "bad_system_requirements.toml": [
        (
            6,
            "base.system-requirements.cuda",
            'expected a version like "12" or "2.28", got \'twelve\'',
        ),
        (
            6,
            "base.system-requirements.glibc",
            "expected a glibc version of at least 2.17 (manylinux2014), got '2.5'",
        ),
    ],
    "python_in_target.toml": [(8, "base.target.linux-64.python", "unknown key")],
    "disabled_base_with_target.toml": [
        (
            5,
            "base.disabled",
            "a disabled base runs in the system environment; it cannot also declare "
            "packages or channels (python stays allowed: steps with packages inherit it)",
        ),
    ],
    "bad_package_table.toml": [(6, "base.pypi.packages.torch.source", "unknown key")],
    "channels_in_target.toml": [
        (
            9,
            "base.target.osx-arm64.conda.channels",
            "channels apply to the whole env, not one platform: set them in its conda table, "
            'or take a package from a channel with "channel::name"',
        ),
    ],
    "index_url_with_newline.toml": [
        (5, "project.pypi.index-url", "a URL cannot contain whitespace (spell a space %20)"),
    ],
    "named_index_with_space.toml": [
        (5, "project.pypi.indexes.cpu", "a URL cannot contain whitespace (spell a space %20)"),
    ],
}

PYPROJECT_HEADER = '[project]\nname = "wrapper"\nversion = "0"\n\n'


def _render(
    path: Path, errors: list[tuple[int, str, str]], prefix: str = "", shift: int = 0
) -> str:
    lines = [f"{path}:{line + shift}: {prefix}{key}: {message}" for line, key, message in errors]
    body = lines[0] if len(lines) == 1 else "\n" + "\n".join(lines)
    return f"flowenv: error: {body}\n" if len(lines) == 1 else f"flowenv: error:{body}\n"


def _as_pyproject(source: Path, directory: Path) -> Path:
    text = source.read_text()
    wrapped = "\n".join(
        "[tool.flowenv." + line[1:] if line.startswith("[") else line for line in text.splitlines()
    )
    target = directory / "pyproject.toml"
    target.write_text(PYPROJECT_HEADER + wrapped + "\n")
    return target


def test_every_invalid_file_has_an_expectation() -> None:
    assert sorted(p.name for p in INVALID.glob("*.toml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_flowenv_toml(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = INVALID / name
    assert main(["-c", str(path), "show"]) == 2
    captured = capsys.readouterr()
    assert captured.err == _render(path, EXPECTED[name])
    assert captured.out == ""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_pyproject_tool_table(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _as_pyproject(INVALID / name, tmp_path)
    # Discovered, not named: discovery must accept a pyproject.toml with [tool.flowenv].
    assert main(["-C", str(tmp_path), "lock", "--check"]) == 2
    shift = PYPROJECT_HEADER.count("\n")
    assert capsys.readouterr().err == _render(path, EXPECTED[name], "tool.flowenv.", shift)


ALL_AT_ONCE = """\
[project]
name = "demo"
platforms = ["linux-64", "osx-arm46"]

[base]
python = "3.11"
pypi.pacakges = { pandas = "2.2.3" }

[steps.train]
pypi.packages = { numpy = ">=1.2,<<2", Foo_Bar = "1", foo-bar = "2" }

[steps.evaluate]
env = "gpu2"

[steps.peekaboo]
disabled = true
pypi.packages = { rich = "13" }

[steps.both]
pypi.packages = { alpha = "1" }
pypi.libraries = { beta = "1" }

[envs.gpu]
python = "3.11"
conda.packages = { "pytorch::pytorch" = "2.1.2" }

[envs.base]
python = "3.10"
"""


def test_all_errors_reported_at_once_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "flowenv.toml"
    path.write_text(ALL_AT_ONCE)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [(d.line, d.key_path, d.message) for d in info.value.diagnostics] == [
        (
            3,
            "project.platforms[1]",
            "unknown platform 'osx-arm46' (did you mean 'osx-arm64'?); "
            "expected one of linux-64, linux-aarch64, osx-64, osx-arm64, win-64",
        ),
        (7, "base.pypi.pacakges", "unknown key (did you mean 'packages'?)"),
        (
            10,
            "steps.train.pypi.packages.numpy",
            "invalid version specifier '>=1.2,<<2' (expected a version like \"1.2.3\" "
            'or a PEP 440 specifier like ">=1.2,<2")',
        ),
        (10, "steps.train.pypi.packages.foo-bar", "'Foo_Bar' and 'foo-bar' name the same package"),
        (
            13,
            "steps.evaluate.env",
            "no environment named 'gpu2' in [envs] (did you mean 'gpu'?); known: base, gpu",
        ),
        (
            16,
            "steps.peekaboo.disabled",
            "a disabled step runs in the system environment; it cannot also declare "
            "python, packages, channels or env",
        ),
        (
            21,
            "steps.both.pypi.libraries",
            "'libraries' is an alias of 'packages'; use one of them, not both",
        ),
        (27, "envs.base", "'base' is reserved for the [base] table; choose another name"),
    ]
    assert all(d.file == str(path) for d in info.value.diagnostics)


def test_env_naming_no_env_without_any_envs_table(tmp_path: Path) -> None:
    path = tmp_path / "flowenv.toml"
    path.write_text('[base]\npython = "3.11"\n\n[steps.train]\nenv = "gpu"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:5: steps.train.env: no environment named 'gpu' in [envs]; there is no [envs] table"
    )


def test_missing_python_in_step_and_named_env_when_base_is_disabled(tmp_path: Path) -> None:
    path = tmp_path / "flowenv.toml"
    path.write_text(
        "[base]\ndisabled = true\n\n"
        '[steps.train]\npypi.packages = { alpha = "1" }\n\n'
        '[envs.gpu]\nconda.packages = { pytorch = "2.1" }\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    hint = 'no python version (set python = "3.x" here or in [base])'
    assert str(info.value) == f"{path}:4: steps.train: {hint}\n{path}:7: envs.gpu: {hint}"


def test_invalid_toml_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flowenv.toml").write_text('[base]\npython = "3.11"\n[steps.train\n')
    assert main(["-C", str(tmp_path), "show"]) == 2
    assert capsys.readouterr().err == (
        f"flowenv: error: {tmp_path / 'flowenv.toml'}:3: "
        "invalid TOML: Expected ']' at the end of a table declaration\n"
    )


def test_invalid_toml_in_pyproject(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.flowenv.base]\npython = "3.11"\npython = "3.12"\n')
    assert main(["-C", str(tmp_path), "show"]) == 2
    assert capsys.readouterr().err == (
        f"flowenv: error: {path}:3: invalid TOML: Cannot overwrite a value\n"
    )


def test_cli_subprocess_exits_2_with_no_traceback() -> None:
    path = INVALID / "wrong_types.toml"
    result = subprocess.run(
        [sys.executable, "-m", "flowenv", "-c", str(path), "lock", "--check"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 2
    assert result.stderr == _render(path, EXPECTED["wrong_types.toml"])
    assert result.stdout == ""


# -- discovery ---------------------------------------------------------------

VALID = '[base]\npython = "3.11"\n'


def _config_path(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The configuration file ``flowenv [args] show`` used."""
    assert main([*args, "show", "--json"]) == 0, capsys.readouterr().err
    return str(json.loads(capsys.readouterr().out)["config"])


def test_discovery_searches_upward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "flowenv.toml").write_text(VALID)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert _config_path(capsys) == str(tmp_path / "flowenv.toml")


def test_flowenv_toml_wins_over_pyproject_in_the_same_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "flowenv.toml").write_text(VALID)
    (tmp_path / "pyproject.toml").write_text('[tool.flowenv.base]\npython = "3.12"\n')
    assert _config_path(capsys, "-C", str(tmp_path)) == str(tmp_path / "flowenv.toml")


def test_nearest_directory_wins_and_foreign_pyproject_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "flowenv.toml").write_text(VALID)
    middle = tmp_path / "middle"
    middle.mkdir()
    (middle / "pyproject.toml").write_text('[tool.flowenv.base]\npython = "3.12"\n')
    inner = middle / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text(
        '[project]\nname = "other"\n[tool.ruff]\nline-length = 9\n'
    )
    assert _config_path(capsys, "-C", str(inner)) == str(middle / "pyproject.toml")


def test_dash_c_file_is_used_as_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flowenv.toml").write_text(VALID)
    other = tmp_path / "other.toml"
    other.write_text(VALID)
    # Relative to -C, as if flowenv had been started there.
    assert _config_path(capsys, "-C", str(tmp_path), "-c", "other.toml") == str(other)


def test_dash_c_missing_file_is_an_error_not_a_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "flowenv.toml").write_text(VALID)
    assert main(["-C", str(tmp_path), "-c", "missing.toml", "lock", "--check"]) == 2
    assert capsys.readouterr().err == "flowenv: error: missing.toml: no such configuration file\n"


def test_dash_c_pyproject_without_tool_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n')
    assert main(["-c", str(path), "show"]) == 2
    assert capsys.readouterr().err == f"flowenv: error: {path}: no [tool.flowenv] table\n"


def test_no_configuration_anywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["-C", str(empty), "lock", "--check"]) == 2
    err = capsys.readouterr().err
    # The search climbs to / and tmp_path's ancestors hold no flowenv config.
    assert err == (
        f"flowenv: error: {empty}: no flowenv.toml (or pyproject.toml with [tool.flowenv]) "
        "here or in any parent directory; create one or pass -c FILE\n"
    )


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["lock", "--check", "--upgrade"])
    assert info.value.code == 2
    assert capsys.readouterr().err.endswith(
        "flowenv: error: argument -U/--upgrade: not allowed with argument --check\n"
    )


def test_multiline_values_keep_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "flowenv.toml"
    path.write_text(
        "[project]\n"
        "platforms = [\n"
        '    "linux-64",  # where steps run\n'
        '    "osx-arm64",\n'
        '    "osx_arm64",\n'
        "]\n\n"
        "[base]\n"
        'python = "3.11"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:5: project.platforms[2]: unknown platform 'osx_arm64' "
        "(did you mean 'osx-arm64'?); "
        "expected one of linux-64, linux-aarch64, osx-64, osx-arm64, win-64"
    )
