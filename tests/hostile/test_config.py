"""Hostile flowenv.toml / pyproject.toml input, through every command that reads it.

Each case must end in one clear message naming the file (and the key and line
where there is one), exit 2, no traceback, and nothing written.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from flowenv._bounds import MAX_DEPTH, MAX_SOURCE_BYTES, TooDeep
from flowenv.config.load import load_config, parse_config
from flowenv.config.locate import locate_keys, may_nest_too_deep
from flowenv.config.validators import MAX_NAME_LENGTH
from flowenv.errors import ConfigError
from flowenv.spec import build_environments
from tests.support.cli_runner import CONFIG_COMMANDS, Outcome
from tests.support.conda_channel import CondaChannels
from tests.support.git_repo import commit_all, init_repo
from tests.support.index_server import serve_index
from tests.support.stores import free_port

HEADER = '[project]\nname = "p"\nplatforms = ["linux-64"]\n\n[base]\npython = "3.11"\n'


def _project(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    root = tmp_path / "proj"
    root.mkdir(parents=True, exist_ok=True)
    (root / "flowenv.toml").write_text(header + textwrap.dedent(body))
    return root


def _refused(outcome: Outcome, *needles: str) -> None:
    assert outcome.code == 2, outcome
    assert outcome.err.startswith("flowenv: error:"), outcome.err
    assert "Traceback" not in outcome.err
    for needle in needles:
        assert needle in outcome.err, (needle, outcome.err)


INJECTIONS = {
    "extra with newlines": ('"alpha[x\\n-r /etc/passwd\\ny]" = "1.0"', "invalid extra"),
    "name with a trailing newline": ('"alpha\\n" = "1.0"', "invalid package name"),
    "extra with a space": ('"alpha[x y]" = "1.0"', "invalid extra"),
    "version with a newline": ('alpha = "1.0\\n-r /etc/passwd"', "invalid version specifier"),
}


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("entry", INJECTIONS.values(), ids=list(INJECTIONS))
def test_requirement_injection_is_refused_by_every_command(
    tmp_path: Path,
    run_cli: Callable[..., Outcome],
    command: tuple[str, ...],
    entry: tuple[str, str],
) -> None:
    line, message = entry
    root = _project(tmp_path, f"pypi.packages = {{ {line} }}\n")
    outcome = run_cli("-C", root, *command)
    _refused(outcome, f"{root / 'flowenv.toml'}:7: base.pypi.packages.", message)
    assert not (root / "locks").exists()


@pytest.mark.parametrize(
    "key",
    [
        '"bad\\nchannel::numpy"',  # a channel with a line break
        '"numpy\\n"',
        '"chan nel::numpy"',
    ],
)
def test_conda_names_and_channels_are_strict(tmp_path: Path, key: str) -> None:
    root = _project(tmp_path, f'conda.packages = {{ {key} = "1.0" }}\n')
    with pytest.raises(ConfigError, match="invalid conda package"):
        load_config(root / "flowenv.toml")


NAMES = {
    "dot-dot": ("envs", "a..b"),
    "windows reserved": ("envs", "CON"),
    "windows reserved with extension": ("envs", "nul.x"),
    "trailing dot": ("envs", "gpu."),
    "300 characters": ("envs", "e" * 300),
    "step, windows reserved": ("steps", "aux"),
    "step, too long": ("steps", "s" * (MAX_NAME_LENGTH + 1)),
}


@pytest.mark.parametrize("command", [("lock",), ("lock", "--check"), ("sync", "--dry-run")])
@pytest.mark.parametrize("where", NAMES.values(), ids=list(NAMES))
def test_one_portable_name_rule_at_load_time(
    tmp_path: Path,
    run_cli: Callable[..., Outcome],
    command: tuple[str, ...],
    where: tuple[str, str],
) -> None:
    table, name = where
    root = _project(tmp_path, f'[{table}."{name}"]\npypi.packages = {{ alpha = "1.0" }}\n')
    outcome = run_cli("-C", root, *command)
    _refused(outcome, f'{table}."{name}"' if "." in name else f"{table}.{name}")
    assert not (root / "locks").exists()


def test_portable_names_that_are_fine(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        '[envs."gpu-2.x_1"]\npypi.packages = { alpha = "1.0" }\n'
        '[envs.console]\npypi.packages = { alpha = "1.0" }\n'
        "[envs." + "e" * MAX_NAME_LENGTH + ']\npypi.packages = { alpha = "1.0" }\n',
    )
    names = build_environments(load_config(root / "flowenv.toml")).names()
    assert names == ("base", "console", "e" * MAX_NAME_LENGTH, "gpu-2.x_1")


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ("steps = 3\n", "steps", "expected a table, got an integer"),
        ('envs = "gpu"\n', "envs", "expected a table, got a string"),
        ("[steps]\ntrain = 3\n", "steps.train", "expected a table, got an integer"),
    ],
)
@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
def test_wrong_shapes_at_the_top(
    tmp_path: Path,
    run_cli: Callable[..., Outcome],
    body: str,
    key: str,
    expected: str,
    command: tuple[str, ...],
) -> None:
    # Top-level keys must come before [base]'s table, or TOML puts them inside it.
    header = '[project]\nname = "p"\nplatforms = ["linux-64"]\n'
    root = _project(tmp_path, "", header="")
    (root / "flowenv.toml").write_text(body + header + '[base]\npython = "3.11"\n')
    _refused(run_cli("-C", root, *command), f"{key}: {expected}")


NESTED = {
    "arrays": "x = " + "[" * 1000 + "]" * 1000,
    "inline tables": "x = " + "{a = " * 1000 + "1" + "}" * 1000,
    "dotted key": "x" + ".a" * 1000 + " = 1",
}


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("value", NESTED.values(), ids=list(NESTED))
def test_nesting_1000_deep_is_one_error(
    tmp_path: Path, run_cli: Callable[..., Outcome], command: tuple[str, ...], value: str
) -> None:
    root = _project(tmp_path, "", header='[project]\nname = "p"\n[project.store-options]\n')
    (root / "flowenv.toml").write_text((root / "flowenv.toml").read_text() + value + "\n")
    _refused(run_cli("-C", root, *command), f"nested more than {MAX_DEPTH} levels deep")


def _located_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("/p/flowenv.toml"))
    return str(caught.value)


def _scan_refuses_at(text: str) -> int | None:
    """The line the line scan, run alone, refuses ``text`` at (what it reported running first)."""
    with pytest.raises(TooDeep) as caught:
        locate_keys(text)
    return caught.value.line


def test_deep_nesting_on_many_lines_names_the_line_the_scan_names() -> None:
    """Arrays that break lines: no line has a long key, so tomllib meets the depth first.

    The line scan then runs after it and names the line, as when it always ran first.
    """
    deep = "x = " + "[\n" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    text = HEADER + "\n[project.store-options]\n" + deep
    assert not may_nest_too_deep(text)
    line = _scan_refuses_at(text)
    assert line == 107  # x = [ on line 9; the 99th array below x is the 101st level
    assert _located_error(text).startswith(f"/p/flowenv.toml:{line}: invalid TOML: nested more")


def test_a_deep_header_and_key_on_two_lines_name_the_line_the_scan_names() -> None:
    """Each line's key is short; together they pass the bound (tomllib reads it, too deep)."""
    header = "[project.store-options." + ".".join(["h"] * 60) + "]\n"
    text = HEADER.replace("[base]", header + "k." + ".".join(["k"] * 60) + " = 1\n\n[base]")
    assert not may_nest_too_deep(text)
    assert _scan_refuses_at(text) == 6  # the key line, below the header on line 5
    assert _located_error(text).startswith("/p/flowenv.toml:6: invalid TOML: nested more than")


def test_a_syntax_error_before_a_deep_array_reports_the_depth_as_before() -> None:
    """The scan's verdict comes first, as when it ran before tomllib on every file."""
    text = HEADER + "broken = \n[project.store-options]\nx = " + "[" * 200 + "]" * 200 + "\n"
    assert _scan_refuses_at(text) == 9
    assert _located_error(text).startswith("/p/flowenv.toml:9: invalid TOML: nested more than")
    assert _located_error(HEADER + "broken = \n").startswith(
        "/p/flowenv.toml:7: invalid TOML: Invalid value"
    )


def test_a_key_longer_than_the_bound_is_refused_before_tomllib() -> None:
    text = HEADER + "x" + ".a" * MAX_DEPTH + " = 1\n"
    assert may_nest_too_deep(text)
    assert not may_nest_too_deep(HEADER + "x" + ".a" * (MAX_DEPTH - 1) + " = 1\n")
    assert _located_error(text).startswith("/p/flowenv.toml:7: invalid TOML: nested more than")


def test_validation_errors_name_their_lines_without_an_upfront_scan() -> None:
    """Lines are found only when a message asks; they are the same lines."""
    text = HEADER + '\n[steps.a]\npypi.packages = { alpha = "1.0" }\n\n[steps.b]\npython = 3\n'
    message = _located_error(text)
    assert "/p/flowenv.toml:12: steps.b.python: expected a string, got an integer" in message


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    value = "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3)
    text = HEADER.replace("[base]", f"[project.store-options]\nx = {value}\n\n[base]")
    assert parse_config(text, tmp_path / "flowenv.toml").project.store_options[0][0] == "x"


def test_a_200_kb_file_of_long_dotted_headers_is_refused_at_once(
    tmp_path: Path, run_cli: Callable[..., Outcome]
) -> None:
    header = "[steps.s." + ".".join(["k"] * 2000) + "]\n"
    root = _project(tmp_path, header * 50)
    assert len((root / "flowenv.toml").read_bytes()) > 200_000
    _refused(run_cli("-C", root, "lock", "--check"), "flowenv.toml:7: invalid TOML: nested")


def _peak_memory(text: str) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError):  # the headers declare nothing valid; that is fine
            parse_config(text, Path("/nonexistent/flowenv.toml"))
        locate_keys(text)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_long_headers_is_linear_in_the_file_size() -> None:
    """Memory (a count, not a time) grows with the file size, not with header depth.

    Two files of the same size: ~350 headers of 24 parts, and 100 headers of
    96 parts. The scanner this replaced held one tuple per prefix of every header,
    quadratic in header depth: 4x the memory for the second file (24 GB for
    issue 13's 200 KB file). Doubling the number of headers doubles it.
    """

    def text(count: int, depth: int) -> str:
        return "".join(f"[steps.s{i:03d}.{'.'.join(['b'] * (depth - 2))}]\n" for i in range(count))

    deep = text(100, 96)
    shallow = text(round(len(deep) / len(text(1, 24))), 24)
    assert abs(len(shallow) - len(deep)) < 0.01 * len(deep)
    assert _peak_memory(deep) / _peak_memory(shallow) < 1.5
    assert _peak_memory(text(200, 96)) / _peak_memory(deep) < 2 * 1.2


@pytest.mark.parametrize("name", ["flowenv.toml", "pyproject.toml"])
@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
def test_non_utf8_configuration_met_in_discovery(
    tmp_path: Path, run_cli: Callable[..., Outcome], name: str, command: tuple[str, ...]
) -> None:
    root = tmp_path / "proj"
    (root / "sub").mkdir(parents=True)
    prefix = b"[tool.flowenv]\n" if name == "pyproject.toml" else b""
    (root / name).write_bytes(prefix + b'[project]\nname = "caf\xe9"\n')
    outcome = run_cli("-C", root / "sub", *command)
    _refused(outcome, f"{root / name}:", "not UTF-8 text")


def test_non_utf8_foreign_pyproject_in_discovery_is_passed_over(
    tmp_path: Path, run_cli: Callable[..., Outcome]
) -> None:
    """A pyproject.toml that is not ours is skipped even when it is not UTF-8."""
    root = _project(tmp_path, 'pypi.packages = { alpha = "1.0" }\n')
    (root / "sub").mkdir()
    (root / "sub" / "pyproject.toml").write_bytes(b'[project]\nname = "caf\xe9"\n')
    outcome = run_cli("-C", root / "sub", "show", "--json")
    assert outcome.code == 0, outcome
    assert json.loads(outcome.out)["config"] == str(root / "flowenv.toml")


# -- conda channel credentials ------------------------------------------------------------
SECRET = "s3cr3t-pa55"


def _channel_project(tmp_path: Path, channel: str) -> Path:
    return _project(
        tmp_path,
        'conda.packages = { numpy = "1.26" }\n',
        header=HEADER.replace("[base]", f'[project.conda]\nchannels = ["{channel}"]\n\n[base]'),
    )


def test_channel_credentials_are_never_hashed(tmp_path: Path) -> None:
    with_secret = load_config(
        _channel_project(tmp_path / "a", f"https://user:{SECRET}@conda.example/chan")
        / "flowenv.toml"
    )
    rotated = load_config(
        _channel_project(tmp_path / "b", "https://user:other@conda.example/chan") / "flowenv.toml"
    )
    bare = load_config(
        _channel_project(tmp_path / "c", "https://conda.example/chan") / "flowenv.toml"
    )
    hashes = {
        build_environments(c).get("base").input_hash("linux-64")
        for c in (with_secret, rotated, bare)
    }
    assert len(hashes) == 1
    assert SECRET not in json.dumps(
        build_environments(with_secret).get("base").hash_inputs("linux-64")
    )


def test_channel_qualified_package_credentials_are_never_hashed(tmp_path: Path) -> None:
    def env_hash(channel: str, sub: str) -> str:
        root = _project(tmp_path / sub, f'conda.packages = {{ "{channel}::numpy" = "1.26" }}\n')
        return (
            build_environments(load_config(root / "flowenv.toml"))
            .get("base")
            .input_hash("linux-64")
        )

    assert env_hash(f"https://u:{SECRET}@conda.example/c", "a") == env_hash(
        "https://conda.example/c", "b"
    )


@pytest.mark.parametrize("command", [("show",), ("show", "--json")])
def test_channel_credentials_never_shown(
    tmp_path: Path, run_cli: Callable[..., Outcome], command: tuple[str, ...]
) -> None:
    root = _channel_project(tmp_path, f"https://user:{SECRET}@conda.example/chan")
    outcome = run_cli("-C", root, *command)
    assert outcome.code == 0, outcome
    assert "conda.example/chan" in outcome.out
    assert SECRET not in outcome.out + outcome.err


def test_channel_credentials_not_in_a_resolution_error(
    tmp_path: Path, run_cli: Callable[..., Outcome]
) -> None:
    # Nothing listens on the port: rattler fails and quotes the channel URL.
    root = _channel_project(tmp_path, f"http://user:{SECRET}@127.0.0.1:{free_port()}/chan")
    outcome = run_cli("-C", root, "lock")
    assert outcome.code == 3, outcome
    assert "127.0.0.1" in outcome.err
    assert SECRET not in outcome.out + outcome.err
    assert not (root / "locks").exists()


# -- diff reads the configuration of older revisions from git ---------------------------------
@pytest.mark.parametrize(
    "committed",
    [
        NESTED["arrays"],
        NESTED["dotted key"],
        "[steps.s." + ".".join(["k"] * 20000) + "]",
        'lock-dir = "../../outside"',
    ],
    ids=["arrays 1000 deep", "dotted key 1000 deep", "40 KB dotted header", "escaping lock-dir"],
)
def test_diff_against_a_revision_with_a_hostile_configuration(
    make_project: Callable[..., Path], run_cli: Callable[..., Outcome], committed: str
) -> None:
    root = init_repo(make_project('[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n'))
    config = root / "flowenv.toml"
    good = config.read_text()
    config.write_text(good.replace("[project]\n", f"[project]\n{committed}\n", 1))
    commit_all(root, "hostile")
    config.write_text(good)
    assert run_cli("-C", root, "lock").code == 0
    outcome = run_cli("-C", root, "diff")
    assert outcome.code == 0, outcome
    assert "Traceback" not in outcome.err
    assert "alpha" in outcome.out  # the work tree's lock is new against HEAD's (none)


def test_a_diagnostic_stays_one_line_without_terminal_escapes(
    tmp_path: Path, run_cli: Callable[..., Outcome]
) -> None:
    root = _project(tmp_path, 'pypi.packages = { "al\\u001b[2Jpha\\r" = "1.0" }\n')
    outcome = run_cli("-C", root, "show")
    assert outcome.code == 2
    assert "\x1b" not in outcome.err
    assert "\r" not in outcome.err
    assert outcome.err.count("\n") == 1
    assert 'base.pypi.packages."al\\u001b[2Jpha\\r": invalid package name' in outcome.err


def test_virtual_package_names_are_single_tokens(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        "",
        header=HEADER.replace(
            "[base]", '[project.conda]\nvirtual-packages = { "__glibc\\n" = "2.28" }\n\n[base]'
        ),
    )
    with pytest.raises(ConfigError, match="expected a virtual package like"):
        load_config(root / "flowenv.toml")


def test_no_line_break_ever_reaches_a_requirements_file() -> None:
    """The last check before uv, behind the loader's and the store readers' own."""
    from flowenv.engines.uv import requirements_text
    from flowenv.errors import FlowenvError

    assert requirements_text(["alpha==1.0", "beta[x]>=2"]) == "alpha==1.0\nbeta[x]>=2\n"
    for hostile in ("alpha\n-r /etc/passwd", "alpha\r-r x", "alpha\x00"):
        with pytest.raises(FlowenvError, match="refusing a requirement with a line break"):
            requirements_text(["ok", hostile])


@pytest.mark.parametrize("command", [("lock", "--check"), ("sync", "--dry-run"), ("show",)])
@pytest.mark.parametrize("name", ["a..b", "my project", "CON", "p" * 65, "x/y"])
def test_project_name_follows_the_same_rule(
    tmp_path: Path, run_cli: Callable[..., Outcome], command: tuple[str, ...], name: str
) -> None:
    root = _project(tmp_path, "", header=HEADER.replace('name = "p"', f'name = "{name}"'))
    _refused(run_cli("-C", root, *command), f"{root / 'flowenv.toml'}:2: project.name: ")


def test_a_lock_from_a_credentialed_channel_carries_no_credential(
    tmp_path: Path, run_cli: Callable[..., Outcome], conda_channels: CondaChannels
) -> None:
    """Real rattler against the test channel served over HTTP behind basic auth."""
    served = tmp_path / "served"
    shutil.copytree(conda_channels.main, served)
    # serve_index also lays out a PyPI index beside the channel: give it one wheel.
    wheels = sorted(conda_channels.wheels.glob("*.whl"))[:1]
    with serve_index(wheels, served, credentials=("user", SECRET)) as url:
        channel = url.replace("http://", f"http://user:{SECRET}@")
        root = _project(
            tmp_path,
            'conda.packages = { joblib = "*" }\n',
            header=HEADER.replace("[base]", f'[project.conda]\nchannels = ["{channel}"]\n\n[base]'),
        )
        outcome = run_cli("-C", root, "lock")
        assert outcome.code == 0, outcome
        lock = (root / "locks" / "base" / "conda-lock.yml").read_text()
        assert "joblib" in lock
        assert url in lock
        assert SECRET not in lock
        assert SECRET not in outcome.out + outcome.err
        # The same channel without (or with rotated) credentials: the lock stays fresh.
        config = root / "flowenv.toml"
        config.write_text(config.read_text().replace(SECRET, "rotated"))
        assert run_cli("-C", root, "lock", "--check").code == 0


# -- a real pyproject.toml (pypa/packaging's; see tests/data/real/NOTICE) -------------------
REAL_PYPROJECT = Path(__file__).parent.parent / "data" / "real" / "packaging-pyproject.toml"
FLOWENV_TABLE = b'\n[tool.flowenv.base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n'


def _latin1_author() -> bytes:
    # What an editor saving in Latin-1 makes of a real file: line 12 is no longer UTF-8.
    return REAL_PYPROJECT.read_bytes().replace(b"Donald Stufft", b"D\xf6nald Stufft")


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
def test_a_real_foreign_pyproject_in_latin1_is_passed_over(
    tmp_path: Path, run_cli: Callable[..., Outcome], command: tuple[str, ...]
) -> None:
    root = _project(tmp_path, 'pypi.packages = { alpha = "1.0" }\n')
    (root / "pkg").mkdir()
    (root / "pkg" / "pyproject.toml").write_bytes(_latin1_author())
    outcome = run_cli("-C", root / "pkg", *command)
    assert "Traceback" not in outcome.err
    # Whatever the command then says about the project (nothing is locked yet), it
    # found flowenv.toml above and never looked into the foreign file's bytes.
    assert "pyproject.toml" not in outcome.out + outcome.err
    assert "not UTF-8" not in outcome.err


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
def test_a_real_pyproject_with_our_table_in_latin1(
    tmp_path: Path, run_cli: Callable[..., Outcome], command: tuple[str, ...]
) -> None:
    (tmp_path / "pyproject.toml").write_bytes(_latin1_author() + FLOWENV_TABLE)
    outcome = run_cli("-C", tmp_path, *command)
    _refused(outcome, f"{tmp_path / 'pyproject.toml'}:12: not UTF-8 text")


def test_a_real_pyproject_keys_are_located(tmp_path: Path) -> None:
    """The linear scanner on a real file: an error in our table names its line."""
    text = REAL_PYPROJECT.read_bytes() + FLOWENV_TABLE.replace(b"alpha", b'"alpha[x y]"')
    (tmp_path / "pyproject.toml").write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "pyproject.toml")
    line = text.decode().splitlines().index('pypi.packages = { "alpha[x y]" = "1.0" }') + 1
    assert info.value.diagnostics[0].line == line
    assert info.value.diagnostics[0].key_path == 'tool.flowenv.base.pypi.packages."alpha[x y]"'
    lines = locate_keys(REAL_PYPROJECT.read_text())
    assert lines.line_of(("tool", "mypy", "strict")) == 51
    assert lines.line_of(("tool", "mypy", "overrides", 0, "module")) == 57
    assert lines.line_of(("tool", "ruff", "lint", "ignore", 5)) == 81  # "B904"
    assert lines.line_of(("tool", "ruff", "lint", "ignore", 9)) == 86  # after a comment line


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
def test_a_configuration_over_the_size_limit(
    tmp_path: Path, run_cli: Callable[..., Outcome], command: tuple[str, ...]
) -> None:
    root = _project(tmp_path, "# " + "x" * MAX_SOURCE_BYTES + "\n")
    _refused(run_cli("-C", root, *command), f"{root / 'flowenv.toml'}: too large: ")


def test_a_configuration_at_the_size_limit_is_read(tmp_path: Path) -> None:
    root = _project(tmp_path, "")
    path = root / "flowenv.toml"
    padding = MAX_SOURCE_BYTES - len(path.read_bytes()) - 1
    path.write_text(path.read_text() + "#" * padding + "\n")
    assert len(path.read_bytes()) == MAX_SOURCE_BYTES
    assert load_config(path).project.name == "p"
