"""Edges of the ML-stack and mixed-env keys found by trying them as a user would."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowenv.config.load import load_config
from flowenv.errors import ConfigError
from flowenv.spec import build_environments
from tests.test_ml_stacks import CPU_INDEX, CU121_INDEX, DEFAULT_INDEX, _index

HEAD = '[project]\nplatforms = ["linux-64", "osx-arm64"]\n'


@pytest.fixture
def indexes(tmp_path: Path) -> dict[str, str]:
    """test_ml_stacks' three local indexes: PyPI's stand-in, PyTorch's CPU and CUDA ones."""
    parts = {"default": DEFAULT_INDEX, "cpu": CPU_INDEX, "cu121": CU121_INDEX}
    return {name: _index(specs, tmp_path / name) for name, specs in parts.items()}


def _pip_download(requirements: Path, tmp_path: Path) -> list[str]:
    """The files ``pip download --require-hashes`` fetches for ``requirements``.

    pip's own index is an empty folder (from its environment), so whatever it
    finds comes through the file's own index lines.
    """
    import os
    import subprocess
    import venv

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PIP_INDEX_URL": empty.as_uri(), "PIP_CONFIG_FILE": os.devnull}
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    command = [str(tmp_path / "venv/bin/python"), "-m", "pip", "download", "--no-deps"]
    command += ["--require-hashes", "--disable-pip-version-check"]
    command += ["-r", str(requirements), "-d", str(tmp_path / "dl")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    return sorted(p.name for p in (tmp_path / "dl").iterdir())


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "flowenv.toml"
    path.write_text(HEAD + textwrap.dedent(body))
    return path


def _errors(tmp_path: Path, body: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, body))
    return [(d.line, d.key_path, d.message) for d in info.value.diagnostics]


def test_pypi_map_stales_a_platform_whose_pypi_packages_come_from_a_target(
    tmp_path: Path,
) -> None:
    body = """\
        [project.conda]
        pypi-map = {{ foo = "{pypi}" }}
        [base]
        python = "3.11"
        conda.packages = {{ numpy = "1.26" }}
        [base.target.linux-64]
        pypi.packages = {{ pandas = "2.2.3" }}
        """
    before = build_environments(load_config(_write(tmp_path, body.format(pypi="bar")))).get("base")
    after = build_environments(load_config(_write(tmp_path, body.format(pypi="baz")))).get("base")
    # linux-64 has a PyPI half, so which conda package is which PyPI one shapes it.
    assert before.input_hash("linux-64") != after.input_hash("linux-64")
    # osx-arm64 is conda only: the map means nothing there.
    assert before.input_hash("osx-arm64") == after.input_hash("osx-arm64")


def test_a_step_cannot_add_platforms_its_parent_is_not_locked_for(tmp_path: Path) -> None:
    assert _errors(
        tmp_path,
        """\
        [base]
        python = "3.11"
        platforms = ["linux-64"]
        [envs.gpu]
        platforms = ["linux-64"]
        [steps.ft]
        env = "gpu"
        platforms = ["osx-arm64"]
        [steps.plot]
        platforms = ["linux-64", "osx-arm64"]
        [steps.ok]
        platforms = ["linux-64"]
        """,
    ) == [
        (
            10,
            "steps.ft.platforms",
            "'osx-arm64' not among the platforms of env 'gpu' (linux-64); a step narrows "
            "its parent's platforms (add it there first)",
        ),
        (
            12,
            "steps.plot.platforms",
            "'osx-arm64' not among the platforms of base (linux-64); a step narrows "
            "its parent's platforms (add it there first)",
        ),
    ]


def test_a_target_table_for_a_platform_its_env_is_not_locked_for_is_an_error(
    tmp_path: Path,
) -> None:
    assert _errors(
        tmp_path,
        """\
        [base]
        python = "3.11"
        [base.target.osx-arm64]
        pypi.packages = { tensorflow-metal = "1.1.0" }
        [steps.train]
        platforms = ["linux-64"]
        [steps.train.target.osx-arm64]
        pypi.packages = { mlx = "0.1" }
        [envs.gpu]
        platforms = ["linux-64"]
        [envs.gpu.target.osx-arm64]
        pypi.packages = { mlx = "0.1" }
        """,
    ) == [
        (
            9,
            "steps.train.target.osx-arm64",
            "'osx-arm64' is not among this env's platforms (linux-64); the table would never apply",
        ),
        (
            13,
            "envs.gpu.target.osx-arm64",
            "'osx-arm64' is not among this env's platforms (linux-64); the table would never apply",
        ),
    ]


def test_a_pypi_package_against_conda_numpy_says_the_pin_is_condas(
    tmp_path: Path, real_channel: Path, make_index, capsys: pytest.CaptureFixture[str]
) -> None:
    """uv says "you require numpy==1.26.4": nobody wrote that, conda-forge's numpy is it."""
    from flowenv.cli import main
    from tests.test_real_mixed_envs import PYPI_WHEELS, _project

    index = make_index(PYPI_WHEELS)
    root = _project(
        tmp_path,
        real_channel,
        """\
        [base]
        python = "3.11"
        conda.packages = { numpy = "1.26.*" }
        pypi.packages = { numpy = ">=2", pandas = "*" }
        """,
        '"osx-arm64"',
        f'pypi.index-url = "{index.as_uri()}"',
    )
    assert main(["-C", str(root), "lock"]) == 3
    err = capsys.readouterr().err
    assert "numpy>=2 and numpy==1.26.4" in err  # uv's own explanation stays
    assert err.endswith(
        "\nnumpy==1.26.4: what the conda solution installs (that conda package is this "
        "PyPI distribution, so the PyPI packages must agree with it); change the conda "
        "spec or the PyPI requirement that conflicts with it\n"
    )
    assert not (root / "locks").exists()


def test_an_exported_requirements_file_names_the_indexes_its_wheels_come_from(
    tmp_path: Path, indexes: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """torch 2.4.1+cpu is on the named index only: pip must be told where to look."""

    from flowenv.cli import main
    from tests.test_ml_stacks import _locked_torch

    root = _locked_torch(tmp_path, indexes)
    requirements = tmp_path / "requirements.txt"
    args = ["-C", str(root), "export", "base", "-p", "linux-64", "-o", str(requirements)]
    assert main(args) == 0
    lines = requirements.read_text().splitlines()
    assert lines[2:4] == [
        f"--index-url {indexes['default']}",
        f"--extra-index-url {indexes['cpu']}",  # only the named index used on linux-64
    ]
    # pip, pointed at an empty index by its environment, finds everything from the file.
    assert _pip_download(requirements, tmp_path) == [
        "filelock-3.15.4-py3-none-any.whl",
        "torch-2.4.1+cpu-py3-none-any.whl",
    ]
    capsys.readouterr()


def test_show_json_gives_requirements_a_tool_can_parse_and_the_pins_beside_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from packaging.requirements import Requirement

    from flowenv.cli import main

    _write(
        tmp_path,
        """\
        [project.pypi.indexes]
        pytorch-cpu = "https://download.pytorch.org/whl/cpu"
        [base]
        python = "3.11"
        [base.pypi.packages]
        torch = "2.4.1"
        "Scikit_Learn" = { version = ">=1.4", index = "pytorch-cpu" }
        [base.target.linux-64]
        pypi.packages = { torch = { version = "2.4.1", index = "pytorch-cpu" } }
        """,
    )
    assert main(["-C", str(tmp_path), "show", "--json"]) == 0
    (base,) = json.loads(capsys.readouterr().out)["envs"]
    lines = [*base["pypi"], *base["targets"]["linux-64"]["pypi"]]
    assert [str(Requirement(line)) for line in lines] == lines
    assert base["pinned-indexes"] == {"scikit-learn": "pytorch-cpu"}
    assert base["targets"]["linux-64"]["pinned-indexes"] == {
        "scikit-learn": "pytorch-cpu",
        "torch": "pytorch-cpu",
    }
    assert main(["-C", str(tmp_path), "show"]) == 0
    assert capsys.readouterr().out.splitlines()[1:6] == [
        "    pypi   scikit-learn>=1.4 (index pytorch-cpu)",
        "    pypi   torch==2.4.1",
        "    on linux-64:",
        "      pypi   scikit-learn>=1.4 (index pytorch-cpu)",
        "      pypi   torch==2.4.1 (index pytorch-cpu)",
    ]


def test_hydrating_by_name_outside_the_project_says_where_the_env_is_synced(
    tmp_path: Path,
    indexes: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On an executor there is no flowenv.toml: the store alone tells a Mac-only env."""
    from flowenv.cli import main
    from flowenv.platforms import host_platform
    from tests.test_ml_stacks import _project

    other = "osx-arm64" if host_platform() != "osx-arm64" else "linux-64"
    root = _project(
        tmp_path / "proj",
        indexes,
        f"""\
        [base]
        python = "3.11"
        [envs.mac]
        platforms = ["{other}"]
        pypi.packages = {{ torch = "2.4.1" }}
        """,
    )
    store = tmp_path / "store"
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert main(["-q", "-C", str(root), "sync", "--store", store.as_uri()]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    args = ["hydrate", "mac", "--project", "ml", "--store", store.as_uri()]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"flowenv: error: {store}: env 'mac' of project 'ml' is synced for {other} "
        f"only (its platforms); it cannot be hydrated on {host_platform()}\n"
    )
    # An env the store has nowhere is still "run `flowenv sync`" (exit 4).
    assert main(["hydrate", "nothing", "--project", "ml", "--store", store.as_uri()]) == 4
    assert "(run `flowenv sync` first)" in capsys.readouterr().err


def test_index_urls_and_find_links_are_one_token_and_never_echoed(tmp_path: Path) -> None:
    """They reach uv's command line and an export's pip options: a newline there is an option."""
    assert _errors(
        tmp_path,
        """\
        [project.pypi]
        index-url = "https://good.example/simple\\n--trusted-host evil.example"
        extra-index-urls = ["https://ok.example/simple", "https://u:tok@x/a b"]
        find-links = ["", "/home/Jane Doe/wheels", "./w\\u0007"]
        [project.pypi.indexes]
        cpu = "https://download.pytorch.org/whl/cpu\\r\\n-e evil"
        bad = "user:token@host/simple"
        [base]
        python = "3.11"
        """,
    ) == [
        (4, "project.pypi.index-url", "a URL cannot contain whitespace (spell a space %20)"),
        (
            5,
            "project.pypi.extra-index-urls[1]",
            "a URL cannot contain whitespace (spell a space %20)",
        ),
        (6, "project.pypi.find-links[0]", "expected a URL or path, got ''"),
        (6, "project.pypi.find-links[2]", "cannot contain a newline or a control character"),
        (8, "project.pypi.indexes.cpu", "a URL cannot contain whitespace (spell a space %20)"),
        (
            9,
            "project.pypi.indexes.bad",
            'expected an index URL like "https://host/simple" (no scheme given)',
        ),
    ]


def test_a_channel_with_a_newline_in_a_real_conda_lock_cannot_reach_an_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """conda-lock's own test-lockfile.yml lists channels as bare strings; one is made hostile."""
    from flowenv.cli import main
    from tests.support.real_data import REAL
    from tests.test_real_lock_files import _project

    root = _project(tmp_path, REAL / "conda-lock/test-lockfile.yml")
    lock = root / "locks/base/conda-lock.yml"
    text = lock.read_text()
    assert "  channels:\n  - conda-forge\n" in text
    lock.write_text(
        text.replace(
            "  channels:\n  - conda-forge\n",
            '  channels:\n  - "conda-forge\\n  - pip:\\n      - evil==6.6.6"\n',
        )
    )
    capsys.readouterr()
    args = ["-C", str(root), "export", "base", "-p", "linux-64", "--format", "environment-yml"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "evil" not in captured.out
    assert captured.err.endswith(
        "conda-lock.yml: metadata.channels[0]: holds a control character (a newline?)\n"
    )


def test_channels_in_a_target_table_are_refused_not_ignored(tmp_path: Path) -> None:
    assert _errors(
        tmp_path,
        """\
        [base]
        python = "3.11"
        [envs.e]
        target.osx-arm64.conda.packages = { pytorch = "2" }
        target.osx-arm64.conda.channels = ["pytorch"]
        """,
    ) == [
        (
            7,
            "envs.e.target.osx-arm64.conda.channels",
            "channels apply to the whole env, not one platform: set them in its conda table, "
            'or take a package from a channel with "channel::name"',
        )
    ]


def test_channel_order_from_channel_prefixes_does_not_depend_on_hash_seeds(
    tmp_path: Path,
) -> None:
    """Channel order is solve priority and part of the lock: it must not follow set order."""
    import subprocess
    import sys

    path = _write(
        tmp_path,
        """\
        [base]
        python = "3.11"
        [base.conda.packages]
        "pytorch::pytorch" = "2"
        "nvidia::cuda" = "12"
        "bioconda::samtools" = "1"
        [base.target.linux-64]
        conda.packages = { "fastai::fastai" = "2" }
        """,
    )
    script = (
        "import sys; from pathlib import Path; from flowenv.config.load import load_config; "
        "from flowenv.spec import build_environments; from flowenv.resolution.conda import "
        "lock_channels; print(lock_channels(build_environments(load_config(Path(sys.argv[1])))"
        ".get('base')))"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", script, str(path)],
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3", "4")
    }
    # The env's packages by name (cuda, pytorch, samtools), then linux-64's own.
    assert seen == {"('conda-forge', 'nvidia', 'pytorch', 'bioconda', 'fastai')\n"}


def test_ignore_system_requirements_false_means_false(
    tmp_path: Path,
    indexes: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flowenv.cli import main
    from flowenv.platforms import host_platform
    from flowenv.system import ignoring_system_requirements
    from tests.test_ml_stacks import _project

    for value in ("", "0", "false", "False", "no", "off", " OFF "):
        assert not ignoring_system_requirements({"FLOWENV_IGNORE_SYSTEM_REQUIREMENTS": value})
    for value in ("1", "true", "yes", "on"):
        assert ignoring_system_requirements({"FLOWENV_IGNORE_SYSTEM_REQUIREMENTS": value})

    # End to end: a CUDA env on a machine without the driver, and the variable set to "false".
    root = _project(
        tmp_path / "proj",
        indexes,
        f"""\
        [base]
        python = "3.11"
        system-requirements = {{ cuda = "12" }}
        platforms = ["{host_platform()}"]
        """,
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert main(["-q", "-C", str(root), "sync"]) == 0
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "")
    monkeypatch.setenv("FLOWENV_IGNORE_SYSTEM_REQUIREMENTS", "false")
    capsys.readouterr()
    assert main(["-C", str(root), "hydrate", "base", "--prefix", str(tmp_path / "env")]) == 2
    assert "cuda >= 12 required; this machine has none" in capsys.readouterr().err
    assert not (tmp_path / "env").exists()


@pytest.mark.network
def test_an_export_from_real_pypi_installs_through_its_own_index_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real wheels: a package pinned to a named index (PyPI under another name) and one not."""

    from flowenv.cli import main

    root = tmp_path / "proj"
    root.mkdir()
    (root / "flowenv.toml").write_text(
        textwrap.dedent("""\
            [project]
            name = "real"
            platforms = ["linux-64"]
            pypi.index-url = "https://pypi.org/simple"
            [project.pypi.indexes]
            pypi-again = "https://pypi.org/simple"
            [base]
            python = "3.11"
            pypi.packages = { six = "1.16.0", idna = { version = "3.7", index = "pypi-again" } }
            """)
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    requirements = tmp_path / "requirements.txt"
    args = ["-C", str(root), "export", "base", "-p", "linux-64", "-o", str(requirements)]
    assert main(args) == 0
    assert requirements.read_text().splitlines()[2:4] == [
        "--index-url https://pypi.org/simple",
        "--extra-index-url https://pypi.org/simple",
    ]
    assert _pip_download(requirements, tmp_path) == [
        "idna-3.7-py3-none-any.whl",
        "six-1.16.0-py2.py3-none-any.whl",
    ]
    capsys.readouterr()


def test_exporting_one_other_category_keeps_main_as_conda_lock_renders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """conda-lock's test-multiple-categories.yml: ``dev`` alone has no python; main does."""
    from flowenv.cli import main
    from flowenv.lockfiles.condalock import read_conda_lock
    from tests.support.real_data import REAL
    from tests.test_real_lock_files import _conda_lock_render, _explicit_lines, _project

    source = REAL / "conda-lock/test-multiple-categories.yml"
    lock = read_conda_lock(source)
    root = _project(tmp_path, source)
    for category in ("dev", "test"):
        capsys.readouterr()
        args = ["-C", str(root), "export", "base", "-p", "linux-64", "--format", "explicit"]
        assert main([*args, "--category", category]) == 0
        lines = _explicit_lines(capsys.readouterr().out)
        theirs = _conda_lock_render(source, "linux-64", {"main", category})
        assert theirs is not None
        assert sorted(lines) == sorted(theirs)
        wanted = lock.for_platform("linux-64", ("main", category))
        assert len(lines) == len({p.name for p in wanted if p.manager == "conda"})
        assert any("/python-3" in line for line in lines)
