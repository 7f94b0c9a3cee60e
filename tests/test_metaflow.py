"""Real Metaflow flows (local runtime) run with ``--environment=flowenv`` against the test index.

Each flow is a seed flow of Metaflow's @pypi/@conda documentation with its
packages moved to flowenv.toml and swapped for the test index's wheels. Every
step prints one ``REPORT {json}`` line saying which interpreter runs it and
which packages it can import; the tests assert on those lines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("metaflow")

from flowenv.cli import main
from flowenv.metaflow.environment import FlowRun, StepInfo
from tests.support.wheels import DEFAULT_WHEELS, WheelSpec, build_simple_index, build_wheel

#: An extra wheel whose objects are pickled as artifacts between steps.
ZETA = WheelSpec(
    name="zeta",
    version="1.0",
    files={
        "zeta/data.py": "class Bunch:\n    def __init__(self, rows):\n        self.rows = rows\n",
    },
)

REPORT = """
def report(step):
    import importlib, json, sys
    seen = {}
    for name in ("alpha", "beta", "gamma", "delta", "zeta", "attrs", "rich", "flowenv"):
        try:
            seen[name] = importlib.import_module(name).__dict__.get("VERSION", "yes")
        except ImportError:
            seen[name] = None
    print("REPORT " + json.dumps({"step": step, "python": sys.executable, "imports": seen}))
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("mf-wheels")
    for spec in (*DEFAULT_WHEELS, ZETA):
        build_wheel(spec, wheels)
    return build_simple_index(sorted(wheels.glob("*.whl")), tmp_path_factory.mktemp("mf-index"))


@pytest.fixture
def project(tmp_path: Path, index: Path):
    """Write flow.py + flowenv.toml into a fresh project; return (root, run)."""

    def make(flow: str, body: str) -> Path:
        root = tmp_path / "proj"
        root.mkdir()
        (root / "flow.py").write_text(REPORT + textwrap.dedent(flow))
        (root / "flowenv.toml").write_text(
            "[project]\n"
            'name = "mfproj"\n'
            'platforms = ["linux-64"]\n'
            f'pypi.index-url = "{index.as_uri()}"\n\n' + textwrap.dedent(body)
        )
        return root

    return make


def metaflow_env(tmp_path: Path) -> dict[str, str]:
    """An isolated Metaflow + flowenv: own home, datastore, cache; no user site, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "FLOWENV_"))}
    env.pop("PYTHONPATH", None)
    env |= {
        "USERNAME": "flowenv-tests",
        "METAFLOW_HOME": str(tmp_path / "mf-home"),
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(tmp_path / "mf-datastore"),
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
        "FLOWENV_CACHE_DIR": str(tmp_path / "flowenv-cache"),
    }
    return env


def run_flow(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "flow.py", "--environment=flowenv", "--no-pylint", "run", *args],
        cwd=root,
        env=metaflow_env(root.parent),
        capture_output=True,
        text=True,
        check=False,
    )


def reports(result: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert result.returncode == 0, result.stdout + result.stderr
    out = {}
    for line in (result.stdout + result.stderr).splitlines():
        if "REPORT " in line:
            data = json.loads(line.split("REPORT ", 1)[1])
            out[data["step"]] = data
    return out


def lock(root: Path) -> None:
    assert main(["-C", str(root), "-q", "lock"]) == 0


NOTHING = {
    "alpha": None,
    "beta": None,
    "gamma": None,
    "delta": None,
    "zeta": None,
    "attrs": None,
    "rich": None,
    "flowenv": None,
}

FRACTAL = """
from metaflow import FlowSpec, step

class FractalFlow(FlowSpec):

    @step
    def start(self):
        report("start")
        self.next(self.plot)

    @step
    def plot(self):
        report("plot")
        self.next(self.end)

    @step
    def end(self):
        report("end")

if __name__ == "__main__":
    FractalFlow()
"""


def test_fractal_one_step_with_its_own_packages(project, capsys) -> None:
    root = project(
        FRACTAL,
        """
        [base]
        python = "3.11"

        [steps.plot]
        pypi.packages = { delta = "0.5" }
        """,
    )
    lock(root)
    seen = reports(run_flow(root))
    # plot sees delta and exactly its locked dependencies; the others see nothing at all.
    assert seen["plot"]["imports"] == NOTHING | {
        "alpha": "2.0",
        "beta": "1.5",
        "gamma": "1.0",
        "delta": "0.5",
    }
    assert seen["start"]["imports"] == NOTHING
    assert seen["end"]["imports"] == NOTHING
    assert seen["start"]["python"] == seen["end"]["python"] != seen["plot"]["python"]
    assert sys.executable not in {seen["start"]["python"], seen["plot"]["python"]}


ALLSCIKIT = """
from metaflow import FlowSpec, step

class AllScikitFlow(FlowSpec):

    @step
    def start(self):
        from zeta.data import Bunch
        report("start")
        self.data = Bunch([1, 2, 3])
        self.next(self.end)

    @step
    def end(self):
        report("end")
        print("ROWS", type(self.data).__module__, self.data.rows)

if __name__ == "__main__":
    AllScikitFlow()
"""


def test_allscikit_base_for_all_steps_and_an_artifact_crosses_steps(project) -> None:
    root = project(
        ALLSCIKIT,
        """
        [base]
        python = "3.11"
        pypi.packages = { zeta = "1.0", epsilon = "3.1" }
        """,
    )
    lock(root)
    result = run_flow(root)
    seen = reports(result)
    both = NOTHING | {"zeta": "1.0", "beta": "1.0"}  # epsilon 3.1 pins beta<1.5
    assert seen["start"]["imports"] == both
    assert seen["end"]["imports"] == both
    assert seen["start"]["python"] == seen["end"]["python"]
    # The pickled zeta object was read back in the next step, in the same env.
    assert "ROWS zeta.data [1, 2, 3]" in result.stdout + result.stderr


PEEKABOO = """
from metaflow import FlowSpec, step

class PeekabooFlow(FlowSpec):

    @step
    def start(self):
        report("start")
        self.next(self.peekaboo)

    @step
    def peekaboo(self):
        report("peekaboo")
        self.next(self.end)

    @step
    def end(self):
        report("end")

if __name__ == "__main__":
    PeekabooFlow()
"""


def test_peekaboo_disabled_step_runs_with_metaflows_interpreter(project) -> None:
    root = project(
        PEEKABOO,
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }

        [steps.peekaboo]
        disabled = true
        """,
    )
    lock(root)
    seen = reports(run_flow(root))
    assert seen["peekaboo"]["python"] == sys.executable
    assert seen["start"]["python"] == seen["end"]["python"] != sys.executable
    assert seen["start"]["imports"] == NOTHING | {"alpha": "1.0"}
    # The disabled step is the system environment: flowenv's own dependencies are there.
    assert seen["peekaboo"]["imports"]["attrs"] is not None
    assert seen["peekaboo"]["imports"]["alpha"] is None


def test_stale_lock_refuses_to_run(project) -> None:
    root = project(
        PEEKABOO,
        """
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }
        """,
    )
    lock(root)
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = "1.0"', 'alpha = "2.0"'))
    result = run_flow(root)
    assert result.returncode == 1
    assert "stale locks (run `flowenv lock`):\n" in result.stderr
    assert "  base · linux-64: stale (locks/base/pylock.linux-64.toml)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "REPORT" not in result.stdout


def test_flow_with_pypi_decorators_is_refused_with_the_way_out(project) -> None:
    root = project(
        FRACTAL.replace(
            "from metaflow import FlowSpec, step", "from metaflow import FlowSpec, step, pypi"
        ).replace(
            "    @step\n    def plot",
            "    @pypi(packages={'alpha': '1.0'})\n    @step\n    def plot",
        ),
        '[base]\npython = "3.11"\n',
    )
    result = run_flow(root)
    assert result.returncode == 1
    assert (
        "@pypi on step plot: with --environment=flowenv the packages come from flowenv.toml; "
        "translate them with `flowenv import FLOW.py`, then remove the decorators"
    ) in result.stderr
    assert "Traceback" not in result.stderr


def test_misspelt_step_in_config_is_an_error(project) -> None:
    root = project(
        FRACTAL, '[base]\npython = "3.11"\n\n[steps.plott]\npypi.packages = { alpha = "1.0" }\n'
    )
    lock(root)
    result = run_flow(root)
    assert result.returncode == 1
    assert "steps.plott: the flow has no step 'plott' (did you mean 'plot'?)" in result.stderr


def test_bootstrap_commands_hydrate_a_remote_step_in_a_clean_process(
    project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(
        FRACTAL,
        """
        [base]
        python = "3.11"

        [steps.plot]
        pypi.packages = { delta = "0.5" }
        """,
    )
    lock(root)
    steps = [
        StepInfo(name="start"),
        StepInfo(name="plot", decorators=("kubernetes", "step")),
        StepInfo(name="end"),
    ]
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(tmp_path / "driver-cache"))
    run = FlowRun.load(root / "flow.py", steps)
    run.prepare("local")  # syncs plot's linux-64 env to the project's local store
    commands = run.bootstrap_commands("plot", "local")
    base_id = synced_env_id(root, "base")
    assert run.bootstrap_commands("start", "local")[0] == (
        f"echo 'flowenv: hydrating base (env id {base_id})'"
    )
    # The executor: an empty directory, no flowenv.toml, no lock, its own cache; only
    # flowenv (on PATH) and the store. Then the step's interpreter is asked what it sees.
    executor = tmp_path / "executor"
    probe = (
        "import importlib.util as u, sys; "
        "names = ('delta', 'gamma', 'attrs', 'requests'); "
        "print(sys.executable, [m for m in names if u.find_spec(m)])"
    )
    result = run_on_executor(commands, probe, executor, tmp_path)
    python, found = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert python == str(executor / ".flowenv-env" / "bin" / "python")
    # requests comes only from the support layer, which Metaflow's extension adds to sys.path.
    assert found == "['delta', 'gamma']"
    support = list((executor / ".flowenv-support").iterdir())
    assert len(support) == 1
    assert (support[0] / "requests" / "__init__.py").is_file()
    shutil.rmtree(executor)


def synced_env_id(root: Path, env: str) -> str:
    """The env id the project's local store names ``env`` for linux-64 (the last sync's)."""
    alias = root / ".flowenv/store/projects/mfproj/envs" / env / "linux-64/current"
    return str(json.loads(alias.read_text())["env_id"])


def run_on_executor(
    commands: list[str], probe: str, executor: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Run a remote step's bootstrap then ``probe`` in its env, as a fresh executor would.

    An empty directory, no flowenv.toml, no lock, its own cache: only flowenv
    (on PATH) and the store.
    """
    executor.mkdir()
    script = " && ".join([*commands, f'"$FLOWENV_PYTHON" -s -c "{probe}"'])
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "FLOWENV_CACHE_DIR": str(executor.with_name(executor.name + "-cache")),
    }
    result = subprocess.run(
        ["bash", "-c", script], cwd=executor, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


def test_bootstrap_commands_pin_the_env_id_of_the_run_against_newer_syncs(
    project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployed flow keeps its env after a newer lock of the same env is synced."""
    root = project(
        FRACTAL,
        """
        [base]
        python = "3.11"

        [steps.plot]
        pypi.packages = { alpha = "1.0" }
        """,
    )
    lock(root)
    steps = [
        StepInfo(name="start"),
        StepInfo(name="plot", decorators=("batch", "step")),
        StepInfo(name="end"),
    ]
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(tmp_path / "driver-cache"))
    run = FlowRun.load(root / "flow.py", steps)
    run.prepare("local")
    deployed = run.bootstrap_commands("plot", "local")
    # The id prepare() synced, read back from the store: its manifest is there.
    old = synced_env_id(root, "plot")
    assert (root / f".flowenv/store/envs/{old}/linux-64/manifest.json").is_file()
    assert deployed[0] == f"echo 'flowenv: hydrating plot (env id {old})'"
    assert f" --env-id {old} " in deployed[1]

    # Later, alpha 2.0 is locked and synced under the same env name.
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = "1.0"', 'alpha = "2.0"'))
    lock(root)
    assert main(["-C", str(root), "-q", "sync"]) == 0
    new = synced_env_id(root, "plot")
    assert new != old
    # The run's env id is pinned in the store: a gc keeps it although no alias names it.
    pins = root / ".flowenv/store/projects/mfproj/envs/plot/linux-64/pins"
    assert sorted(p.name for p in pins.iterdir()) == [old]
    assert main(["-C", str(root), "-q", "store", "gc", "--grace", "0"]) == 0
    assert (root / f".flowenv/store/envs/{old}/linux-64/manifest.json").is_file()

    probe = (
        "import alpha, importlib.util as u; "
        "beta = u.find_spec('beta') and __import__('beta'); "
        "print('VERSIONS', alpha.VERSION, beta and beta.VERSION)"
    )
    result = run_on_executor(deployed, probe, tmp_path / "executor", tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "VERSIONS 1.0 None"
    # A run started now pins (and gets) the new env.
    fresh = FlowRun.load(root / "flow.py", steps).bootstrap_commands("plot", "local")
    assert f" --env-id {new} " in fresh[1]
    result = run_on_executor(fresh, probe, tmp_path / "executor2", tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "VERSIONS 2.0 1.5"

    # Unpinned (the deployment is gone), the old env is collected; the pinned new one stays.
    assert main(["-C", str(root), "store", "unpin", "plot", old]) == 0
    assert main(["-C", str(root), "-q", "store", "gc", "--grace", "0"]) == 0
    assert not (root / f".flowenv/store/envs/{old}").exists()
    assert (root / f".flowenv/store/envs/{new}/linux-64/manifest.json").is_file()
