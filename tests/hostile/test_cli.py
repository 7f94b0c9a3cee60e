"""The command line a new user meets: the same options everywhere, help, hints, exit codes."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from flowenv._bounds import MAX_SOURCE_BYTES
from flowenv.cli import main
from flowenv.cli.parser import COMMANDS
from flowenv.config.load import load_config
from tests.support.cli_runner import Outcome

BASE = """\
[base]
python = "3.11"
pypi.packages = { alpha = "1.0" }

[steps.train]
pypi.packages = { epsilon = "3.1" }
"""


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    return make_project(BASE)


# -- global options anywhere -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("-C", "{root}", "show"), ("show", "-C", "{root}")),
        (("-q", "-C", "{root}", "lock", "--check"), ("lock", "--check", "-q", "-C", "{root}")),
        (
            ("-c", "{root}/flowenv.toml", "show", "--json"),
            ("show", "--json", "-c", "{root}/flowenv.toml"),
        ),
        (("-C", "{root}", "-q", "lock"), ("lock", "-C", "{root}", "--quiet")),
    ],
)
def test_global_options_before_or_after_the_command(
    project: Path,
    run_cli: Callable[..., Outcome],
    before: tuple[str, ...],
    after: tuple[str, ...],
) -> None:
    first = run_cli(*(a.format(root=project) for a in before))
    second = run_cli(*(a.format(root=project) for a in after))
    assert first == second
    assert first.code in (0, 1)


def test_quiet_after_the_command_is_quiet(project: Path, run_cli: Callable[..., Outcome]) -> None:
    assert run_cli("-C", project, "lock").code == 0
    assert run_cli("lock", "--check", "-C", project).out == "all locks are fresh\n"
    assert run_cli("lock", "--check", "-C", project, "-q").out == ""


def test_a_global_option_before_the_command_is_kept(
    project: Path, run_cli: Callable[..., Outcome]
) -> None:
    """The command's copy of -C must not reset the one given before the command."""
    outcome = run_cli("-C", project, "show", "--json")
    assert outcome.code == 0
    assert str(project / "flowenv.toml") in outcome.out


# -- help, hints, exit codes ------------------------------------------------------------------
def test_bare_flowenv_prints_help(run_cli: Callable[..., Outcome]) -> None:
    outcome = run_cli()
    assert outcome.code == 0
    assert outcome.out.startswith("usage: flowenv")
    for command in COMMANDS:
        assert command in outcome.out
    assert "exit codes:" in outcome.out


@pytest.mark.parametrize(
    ("typed", "hint"),
    [("lokc", "lock"), ("shwo", "show"), ("hydrat", "hydrate"), ("exprot", "export")],
)
def test_a_mistyped_command_gets_did_you_mean(
    capsys: pytest.CaptureFixture[str], typed: str, hint: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([typed])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith(f"(did you mean '{hint}'?)")


def test_did_you_mean_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["lokc"])
    err = capsys.readouterr().err
    assert "invalid choice: 'lokc'" in err
    assert err.rstrip().endswith("(did you mean 'lock'?)")
    with pytest.raises(SystemExit):
        main(["export", "base", "--format", "requirement"])
    assert "(did you mean 'requirements'?)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [(), *((c,) for c in COMMANDS), ("git", "textconv"), ("git", "merge-driver")],
    ids=["flowenv", *COMMANDS, "git textconv", "git merge-driver"],
)
def test_exit_codes_are_in_every_help(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:\n  0  ok\n" in out
    assert "  4  store or transfer failure" in out
    assert "-q, --quiet" in out


# -- show ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [("show", "trian"), ("show", "--json", "trian")])
def test_show_a_mistyped_step_is_an_error(
    project: Path, run_cli: Callable[..., Outcome], args: tuple[str, ...]
) -> None:
    outcome = run_cli("-C", project, *args)
    assert outcome.code == 2
    assert (
        outcome.err
        == "flowenv: error: no step named 'trian' in flowenv.toml (did you mean 'train'?)\n"
    )
    assert outcome.out == ""


def test_show_an_undeclared_step_still_shows_base(
    project: Path, run_cli: Callable[..., Outcome]
) -> None:
    """A flow step the file does not name runs in base (as under @conda_base)."""
    outcome = run_cli("-C", project, "show", "evaluate")
    assert outcome.code == 0
    assert outcome.out.startswith("evaluate: env base (pypi, python 3.11) [not declared: as base]")


# -- lock --upgrade-package ------------------------------------------------------------------------
def test_upgrade_package_nothing_declares_or_locks_is_an_error(
    project: Path, run_cli: Callable[..., Outcome]
) -> None:
    assert run_cli("-C", project, "lock").code == 0
    before = {p: p.read_bytes() for p in (project / "locks").rglob("*.toml")}
    outcome = run_cli("-C", project, "lock", "--upgrade-package", "alpah")
    assert outcome.code == 2
    assert outcome.err == (
        "flowenv: error: --upgrade-package alpah: no selected environment declares or locks "
        "a package of that name (did you mean 'alpha'?)\n"
    )
    assert {p: p.read_bytes() for p in (project / "locks").rglob("*.toml")} == before


def test_upgrade_package_of_a_locked_dependency_is_accepted(
    project: Path, run_cli: Callable[..., Outcome]
) -> None:
    assert run_cli("-C", project, "lock").code == 0
    # beta is only a dependency (of epsilon), never declared: it is in the lock.
    outcome = run_cli("-C", project, "lock", "-P", "beta", "train")
    assert outcome.code == 0, outcome


# -- import --force ---------------------------------------------------------------
COMPUTED = """\
from metaflow import FlowSpec, pypi, step

VERSION = "2.0"

class ComputedFlow(FlowSpec):

    @pypi(python="3.11", packages={"alpha": "1.0", "beta": VERSION})
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_import_force_drops_only_the_computed_value(
    tmp_path: Path, run_cli: Callable[..., Outcome]
) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(COMPUTED)
    refused = run_cli("import", flow)
    assert refused.code == 2
    assert not (tmp_path / "flowenv.toml").exists()
    forced = run_cli("import", flow, "--force")
    assert forced.code == 0, forced
    assert (
        "packages['beta']=VERSION is computed, not a literal; only this entry is left out"
        in forced.err
    )
    config = load_config(tmp_path / "flowenv.toml")
    step = config.step("start")
    assert [p.requirement() for p in step.pypi] == ["alpha==1.0"]
    assert step.python == "3.11"


def test_import_a_flow_file_that_is_not_utf8(
    tmp_path: Path, run_cli: Callable[..., Outcome]
) -> None:
    flow = tmp_path / "flow.py"
    flow.write_bytes(textwrap.dedent(COMPUTED).encode().replace(b"VERSION =", b"# caf\xe9\nV ="))
    outcome = run_cli("import", flow)
    assert outcome.code == 2
    assert outcome.err.startswith(f"flowenv: error: cannot read {flow}: not UTF-8 text")


# -- counted nouns -----------------------------------------------------------------
def test_sync_says_1_artifact(
    make_project: Callable[..., Path], run_cli: Callable[..., Outcome], flowenv_cache: Path
) -> None:
    root = make_project(
        '[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n',
        project_extra='store = "store"\n',
    )
    assert run_cli("-C", root, "lock").code == 0
    outcome = run_cli("-C", root, "sync")
    assert outcome.code == 0
    last = outcome.out.splitlines()[-1]
    assert last.startswith("uploaded 1 artifact (")
    assert ", 2 manifests written to " in last


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (COMPUTED.replace("VERSION", "x" + ".a" * 5000, 1), "nested too deeply to read"),
        (COMPUTED.replace('"1.0"', "(" * 5000 + '"1.0"' + ")" * 5000), "too many nested"),
        (COMPUTED + "\x00", "null bytes"),
        (COMPUTED.replace("class ComputedFlow(FlowSpec):", "class ("), "invalid Python"),
    ],
    ids=["attribute chain 5000 deep", "parentheses 5000 deep", "null byte", "syntax error"],
)
def test_import_a_hostile_flow_file(
    tmp_path: Path, run_cli: Callable[..., Outcome], source: str, message: str
) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(source)
    outcome = run_cli("import", flow)
    assert outcome.code == 2, outcome
    assert outcome.err.startswith(f"flowenv: error: {flow}")
    assert message in outcome.err
    assert not (tmp_path / "flowenv.toml").exists()


def test_import_a_flow_file_over_the_size_limit(
    tmp_path: Path, run_cli: Callable[..., Outcome]
) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(COMPUTED + "#" * MAX_SOURCE_BYTES + "\n")
    outcome = run_cli("import", flow)
    assert outcome.code == 2
    assert outcome.err.startswith(f"flowenv: error: cannot read {flow}: too large: ")
