"""``flowenv import``: decorators read statically from flow sources, written as flowenv.toml."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.metaflow.flow_import import Declared, import_flow, read_flow
from flowenv.spec import build_environments

PY = f"{sys.version_info.major}.{sys.version_info.minor}"

FRACTAL = """\
from metaflow import FlowSpec, card, pypi, step, current

class FractalFlow(FlowSpec):

    @step
    def start(self):
        self.next(self.plot)

    @pypi(python='3.9.13',
          packages={'pyfracgen': '0.0.11',
                    'matplotlib': '3.8.0'})
    @card(type='blank')
    @step
    def plot(self):
        import pyfracgen as pf
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == '__main__':
    FractalFlow()
"""

PEEKABOO = """\
import sys
from metaflow import FlowSpec, step, conda_base, conda

@conda_base(python='3.9.13')
class PeekabooFlow(FlowSpec):

    @step
    def start(self):
        print(sys.executable)
        self.next(self.peekaboo)

    @conda(disabled=True)
    @step
    def peekaboo(self):
        print(sys.executable)
        self.next(self.end)

    @step
    def end(self):
        print(sys.executable)
"""


def write(tmp_path: Path, source: str, name: str = "flow.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_fractal_step_packages_and_python_default(tmp_path: Path, capsys) -> None:
    flow = write(tmp_path, FRACTAL, "fractalflow.py")
    assert main(["import", str(flow)]) == 0
    out = tmp_path / "flowenv.toml"
    assert capsys.readouterr().out == f"wrote {out} from FractalFlow\n"
    text = out.read_text()
    assert text.endswith(
        "[base]\n"
        "# The flow names no python version: Metaflow would use the interpreter that starts\n"
        "# the run. flowenv needs one to lock, so this is the one `flowenv import` ran with.\n"
        f'python = "{PY}"\n'
        "\n"
        "[steps.plot]\n"
        'python = "3.9.13"\n'
        'pypi.packages = { matplotlib = "3.8.0", pyfracgen = "0.0.11" }\n'
    )
    envs = build_environments(load_config(out))
    assert envs.env_of_step("plot") == "plot"
    assert envs.env_of_step("start") == "base"
    plot = envs.get("plot")
    assert (plot.python, [p.requirement() for p in plot.pypi]) == (
        "3.9.13",
        ["matplotlib==3.8.0", "pyfracgen==0.0.11"],
    )
    assert envs.get("base").pypi == ()


def test_conda_base_channels_libraries_and_disabled(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """\
        import metaflow as mf
        from metaflow import FlowSpec, step, conda as c

        @mf.conda_base(python="3.10", libraries={"pytorch::pytorch": "2.1.2", "numpy": "1.26"},
                       packages={"numpy": ">=1.2"})
        class AllFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.peek)

            @c(disabled=True)
            @step
            def peek(self):
                self.next(self.end)

            @mf.pypi(packages={"alpha": "1.0"})
            @step
            def end(self):
                pass
        """,
    )
    result = import_flow(flow, tmp_path / "flowenv.toml")
    assert result.gaps == ()
    config = load_config(tmp_path / "flowenv.toml")
    envs = build_environments(config)
    # packages wins over its alias libraries for the same name, as in Metaflow.
    assert [c.match_spec() for c in envs.get("base").conda] == [
        "numpy >=1.2",
        "pytorch::pytorch ==2.1.2",
    ]
    assert envs.env_of_step("peek") is None
    end = envs.get("end")
    assert (end.python, [p.requirement() for p in end.pypi]) == ("3.10", ["alpha==1.0"])
    assert [c.name for c in end.conda] == ["numpy", "pytorch"]


def test_peekaboo_disabled_step(tmp_path: Path) -> None:
    flow = write(tmp_path, PEEKABOO)
    text = import_flow(flow, None).text
    assert (
        text.split("[base]\n", 1)[1] == 'python = "3.9.13"\n\n[steps.peekaboo]\ndisabled = true\n'
    )


def test_disabled_flow_inherits_unless_step_reenables(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """\
        from metaflow import FlowSpec, step, pypi_base, pypi

        @pypi_base(disabled=True, packages={"alpha": "1.0"})
        class F(FlowSpec):
            @pypi(packages={"beta": "1.0"})
            @step
            def start(self):
                self.next(self.end)

            @pypi(disabled=False, packages={"beta": "1.5"})
            @step
            def end(self):
                pass
        """,
    )
    result = import_flow(flow, tmp_path / "flowenv.toml")
    envs = build_environments(load_config(tmp_path / "flowenv.toml"))
    # Metaflow: a step decorator without disabled= inherits the flow's, and
    # then ignores its packages.
    assert envs.env_of_step("start") is None
    assert envs.names() == ("end",)
    assert (envs.get("end").python, [p.requirement() for p in envs.get("end").pypi]) == (
        PY,
        ["beta==1.5"],
    )
    assert result.notes == (
        "base: disabled, so its python and packages are dropped (Metaflow ignores them too)",
        "steps.start: disabled, so its python and packages are dropped (Metaflow ignores them too)",
    )


UNTRANSLATABLE = """\
from metaflow import FlowSpec, step, pypi, conda

PKGS = {"alpha": "1.0"}

class F(FlowSpec):
    @pypi(packages=PKGS, python="3.11")
    @step
    def start(self):
        self.next(self.end)

    @conda(packages={"beta": "1.0"}, channel="x", **OPTS)
    @step
    def end(self):
        pass
"""


def test_untranslatable_listed_with_lines_and_nothing_written(tmp_path: Path, capsys) -> None:
    flow = write(tmp_path, UNTRANSLATABLE)
    assert main(["-C", str(tmp_path), "import", "flow.py"]) == 2
    assert capsys.readouterr().err == (
        "flowenv: error:\n"
        "cannot translate 3 decorator arguments (nothing written; --force writes the rest):\n"
        f"{flow}:6: steps.start: @pypi: packages=PKGS is computed, not a literal\n"
        f"{flow}:11: steps.end: @conda: unknown keyword 'channel'\n"
        f"{flow}:11: steps.end: @conda: **OPTS is computed at run time; "
        "write the arguments out literally\n"
    )
    assert not (tmp_path / "flowenv.toml").exists()


def test_force_writes_the_translatable_rest(tmp_path: Path, capsys) -> None:
    write(tmp_path, UNTRANSLATABLE)
    assert main(["-C", str(tmp_path), "import", "flow.py", "--force", "-o", "out.toml"]) == 0
    err = capsys.readouterr().err
    assert err.count("flowenv: not translated: ") == 3
    envs = build_environments(load_config(tmp_path / "out.toml"))
    assert [p.requirement() for p in envs.get("start").pypi] == []
    assert envs.get("start").python == "3.11"
    assert [c.match_spec() for c in envs.get("end").conda] == ["beta ==1.0"]


def test_existing_output_needs_force(tmp_path: Path, capsys) -> None:
    write(tmp_path, FRACTAL)
    (tmp_path / "flowenv.toml").write_text("# mine\n")
    assert main(["-C", str(tmp_path), "import", "flow.py"]) == 2
    assert (
        capsys.readouterr().err
        == f"flowenv: error: {tmp_path / 'flowenv.toml'} exists; pass --force to overwrite it\n"
    )
    assert (tmp_path / "flowenv.toml").read_text() == "# mine\n"
    assert main(["-C", str(tmp_path), "import", "flow.py", "--force"]) == 0
    assert "[steps.plot]" in (tmp_path / "flowenv.toml").read_text()


def test_stdout_and_user_code_never_runs(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "ran"
    write(
        tmp_path,
        f"""\
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("x")
        from metaflow import FlowSpec, step, pypi_base
        import not_installed_anywhere

        @pypi_base(python="3.11", packages={{"alpha": ">=1,<3"}})
        class F(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    assert main(["-C", str(tmp_path), "import", "flow.py", "-o", "-"]) == 0
    out = capsys.readouterr().out
    assert out.endswith('[base]\npython = "3.11"\npypi.packages = { alpha = ">=1,<3" }\n')
    assert not marker.exists()
    assert not (tmp_path / "flowenv.toml").exists()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "flow.py: no FlowSpec subclass found"),
        (
            "from metaflow import FlowSpec\nclass A(FlowSpec): pass\nclass B(FlowSpec): pass\n",
            "flow.py: several flows (A, B); choose one with --flow NAME",
        ),
        ("def broken(:\n", "flow.py:1: invalid Python: invalid syntax"),
    ],
)
def test_unusable_sources(tmp_path: Path, capsys, source: str, message: str) -> None:
    (tmp_path / "flow.py").write_text(source)
    assert main(["-C", str(tmp_path), "import", "flow.py"]) == 2
    err = capsys.readouterr().err
    assert err == f"flowenv: error: {tmp_path / message}\n"


def test_flow_option_selects_one_class(tmp_path: Path) -> None:
    write(
        tmp_path,
        """\
        from metaflow import FlowSpec, pypi_base
        @pypi_base(python="3.10")
        class A(FlowSpec): pass
        @pypi_base(python="3.12")
        class B(FlowSpec): pass
        """,
    )
    assert main(["-C", str(tmp_path), "-q", "import", "flow.py", "--flow", "B"]) == 0
    assert load_config(tmp_path / "flowenv.toml").base.python == "3.12"


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_metaflow_loop_example_is_what_import_writes() -> None:
    loop = EXAMPLES / "metaflow-loop"
    result = import_flow(loop / "decorated_flow.py", None, platforms=("linux-64", "osx-arm64"))
    assert result.text == (loop / "flowenv.toml").read_text()


@pytest.mark.parametrize(
    ("directory", "flow"),
    [
        ("fractal", "fractalflow.py"),
        ("scikit", "scikitflow.py"),
        ("allscikit", "allscikitflow.py"),
        ("peekaboo", "peekabooflow.py"),
        ("metaflow-loop", "flow.py"),
    ],
)
def test_example_flows_match_their_flowenv_toml(directory: str, flow: str) -> None:
    # The flowenv environment refuses decorators and unknown [steps.NAME]: check both statically.
    path = EXAMPLES / directory / flow
    decls = read_flow(path.read_text(), path)
    assert (decls.base, decls.steps, decls.gaps) == (Declared(), (), ())
    config = load_config(EXAMPLES / directory / "flowenv.toml")
    assert {name for name, _ in config.steps} <= set(decls.all_steps)
