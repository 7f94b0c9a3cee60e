"""Existing files as inputs: requirements files, environment.yml and pyproject.toml.

Each is locked with real uv against the local test index; errors are
asserted by their exact text (file, line, message).
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.errors import ConfigError
from flowenv.lock import stale_targets
from flowenv.lockfiles.condalock import read_conda_lock
from flowenv.lockfiles.pylock import read_pylock
from flowenv.spec import build_environments
from tests.support.local_package import write_local_package

REQUIREMENTS_BASE = """
[base]
python = "3.11"
pypi.requirements = "requirements.txt"
"""


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def _versions(path: Path) -> dict[str, str]:
    return {p.name: p.version for p in read_pylock(path)}


def _packaging_says(text: str) -> str:
    """packaging's own first line for an invalid requirement (its wording varies by version)."""
    from packaging.requirements import InvalidRequirement, Requirement

    with pytest.raises(InvalidRequirement) as info:
        Requirement(text)
    return str(info.value).splitlines()[0]


def _config_errors(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(root / "flowenv.toml")
    return [d.render().replace(str(root) + "/", "") for d in info.value.diagnostics]


def test_requirements_with_include_constraint_marker_and_comments_lock(
    make_project, capsys
) -> None:
    root = make_project(REQUIREMENTS_BASE)
    _write(
        root,
        "requirements.txt",
        """
        # the flow's packages
        -r reqs/common.txt
        -c constraints.txt
        delta==0.5 ; sys_platform == "linux"   # only where it runs
        alpha \\
            >=1
        """,
    )
    _write(root, "reqs/common.txt", "beta>=1\n")
    _write(root, "constraints.txt", "beta<1.5\n")
    assert main(["-C", str(root), "lock"]) == 0
    linux = _versions(root / "locks/base/pylock.linux-64.toml")
    mac = _versions(root / "locks/base/pylock.osx-arm64.toml")
    # The marker keeps delta (and gamma, which it pulls) off macOS; the
    # constraint holds beta below 1.5 (1.5 is on the index).
    assert linux == {"alpha": "2.0", "beta": "1.0", "delta": "0.5", "gamma": "1.0"}
    assert mac == {"alpha": "2.0", "beta": "1.0"}
    env = build_environments(load_config(root / "flowenv.toml")).get("base")
    assert env.inputs == ("requirements.txt", "reqs/common.txt", "constraints.txt")
    capsys.readouterr()
    assert main(["-C", str(root), "show"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[:5] == [
        "env base (pypi, python 3.11) [steps not listed in the file]",
        "    pypi   alpha>=1",
        "    pypi   beta>=1",
        '    pypi   delta==0.5 ; sys_platform == "linux"',
        "    constraint  beta<1.5",
    ]
    assert shown[5] == "    from   requirements.txt, reqs/common.txt, constraints.txt"


def test_a_backslash_ending_a_comment_continues_nothing(make_project) -> None:
    """A comment ends at its line: a backslash in it joins no next line (as uv reads it)."""
    root = make_project(REQUIREMENTS_BASE)
    _write(
        root,
        "requirements.txt",
        """
        # the model's stack \\
        alpha==1.0
          # indented note \\
        epsilon
        beta  # capped below \\
        gamma
        """,
    )
    assert main(["-C", str(root), "lock"]) == 0
    linux = _versions(root / "locks/base/pylock.linux-64.toml")
    assert linux == {"alpha": "1.0", "beta": "1.0", "epsilon": "3.1", "gamma": "1.0"}


def test_editing_an_included_requirements_file_makes_the_lock_stale(make_project) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.requirements = ["requirements.txt"]
        """
    )
    _write(root, "requirements.txt", "-r more.txt\n")
    _write(root, "more.txt", "alpha==1.0\n")
    assert main(["-C", str(root), "lock"]) == 0
    config = load_config(root / "flowenv.toml")
    assert stale_targets(config) == []
    # A comment changes nothing a resolver sees: still fresh.
    _write(root, "more.txt", "alpha==1.0  # pinned for the pickles\n")
    assert stale_targets(load_config(root / "flowenv.toml")) == []
    _write(root, "more.txt", "alpha==2.0\n")
    stale = stale_targets(load_config(root / "flowenv.toml"))
    assert sorted(t.platform for t in stale) == ["linux-64", "osx-arm64"]
    assert main(["-C", str(root), "lock", "--check"]) == 1


def test_inline_packages_win_over_a_requirements_file(make_project) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.requirements = "requirements.txt"
        pypi.packages = { alpha = "1.0" }

        [steps.train]
        pypi.packages = { beta = "1.5" }
        """
    )
    _write(root, "requirements.txt", "alpha>=2\nbeta==1.0\n")
    envs = build_environments(load_config(root / "flowenv.toml"))
    assert [p.requirement() for p in envs.get("base").pypi] == ["alpha==1.0", "beta==1.0"]
    assert [p.requirement() for p in envs.get("train").pypi] == ["alpha==1.0", "beta==1.5"]
    assert envs.get("train").inputs == ("requirements.txt",)


def test_index_options_in_requirements_point_at_flowenv_toml(make_project) -> None:
    root = make_project(REQUIREMENTS_BASE)
    _write(
        root,
        "requirements.txt",
        """
        alpha==1.0
        --extra-index-url https://user:secret@example.invalid/simple
        -e ./libs/mylib
        beta=>1
        ./vendor/thing.whl
        -r missing.txt
        """,
    )
    assert _config_errors(root) == [
        "requirements.txt:2: '--extra-index-url': index options belong in flowenv.toml's "
        "[project.pypi] (index-url, extra-index-urls, find-links), shared by every env; "
        "remove it from this file",
        "requirements.txt:3: editable install './libs/mylib' is not locked; declare the "
        'project\'s own package in flowenv.toml as NAME = { path = "DIR" } (a local package)',
        f"requirements.txt:4: invalid requirement 'beta=>1': {_packaging_says('beta=>1')}",
        "requirements.txt:5: './vendor/thing.whl' has no package name; write NAME @ URL, or "
        'declare a local package in flowenv.toml as NAME = { path = "DIR" }',
        "requirements.txt:6: -r missing.txt: no such file (missing.txt)",
    ]


def test_an_include_cycle_or_chain_too_deep_names_the_including_line(make_project) -> None:
    root = make_project(REQUIREMENTS_BASE)
    _write(root, "requirements.txt", "alpha\n-r reqs/more.txt\n")
    _write(root, "reqs/more.txt", "# back to the top\nbeta\n-r ../requirements.txt\n")
    assert _config_errors(root) == [
        "reqs/more.txt:3: -r ../requirements.txt: includes itself "
        "(requirements.txt -> more.txt -> requirements.txt)"
    ]
    assert main(["-C", str(root), "lock"]) == 2
    assert not (root / "locks").exists()

    _write(root, "requirements.txt", "-r chain/0.txt\n")
    for n in range(40):
        _write(root, f"chain/{n}.txt", f"beta\n-r {n + 1}.txt\n")
    assert _config_errors(root) == ["chain/30.txt:2: -r 31.txt: includes nest deeper than 32 files"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pypi.requirements", "pipe"),
        ("pypi.requirements", "/dev/zero"),
        ("conda.environment-file", "pipe"),
        ("pypi.pyproject", "/dev/zero"),
    ],
)
def test_an_input_that_is_no_regular_file_is_an_error_not_a_hang(
    make_project, key: str, value: str
) -> None:
    """A FIFO blocks a read until a writer comes, /dev/zero never ends: neither is read."""
    root = make_project(f'[base]\npython = "3.11"\n{key} = "{value}"\n')
    os.mkfifo(root / "pipe")
    assert _config_errors(root) == [f"{value}: is not a regular file"]


def test_a_file_included_many_times_is_read_once(make_project) -> None:
    """Includes fan out: 20 lines of ``-r`` per file, 10 files deep, is 20**10 reads if each
    include is read again; one read per file (and kind: -r or -c) gives the same meaning."""
    from flowenv.inputs.requirements import read_requirements

    root = make_project(REQUIREMENTS_BASE)
    _write(root, "requirements.txt", "-r l0.txt\n-c l0.txt\n")
    for level in range(10):
        _write(root, f"l{level}.txt", f"-r l{level + 1}.txt\n" * 20)
    _write(root, "l10.txt", "alpha>=1\n")
    read = read_requirements([(root / "requirements.txt", "requirements.txt")], root)
    assert [p.requirement() for p in read.packages] == ["alpha>=1"]
    assert [p.requirement() for p in read.constraints] == ["alpha>=1"]
    env = build_environments(load_config(root / "flowenv.toml")).get("base")
    assert [p.requirement() for p in env.pypi] == ["alpha>=1"]


TARGET_FILE = """
[base]
python = "3.11"
pypi.packages = { alpha = "*" }

[base.target.linux-64]
pypi.requirements = "linux.txt"
"""


def test_editing_a_target_tables_requirements_file_makes_the_lock_stale(make_project) -> None:
    """lock --check's fast path digests the env's input files: a target table's files too."""
    root = make_project(TARGET_FILE)
    _write(root, "linux.txt", "beta==1.0\n")
    assert main(["-C", str(root), "lock"]) == 0
    env = build_environments(load_config(root / "flowenv.toml")).get("base")
    assert env.inputs == ("linux.txt",)
    assert main(["-C", str(root), "lock", "--check"]) == 0
    _write(root, "linux.txt", "beta==1.5\n")
    assert main(["-C", str(root), "lock", "--check"]) == 1
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert _versions(root / "locks/base/pylock.linux-64.toml")["beta"] == "1.5"


def test_constraints_in_a_target_tables_file_are_refused(make_project) -> None:
    """Constraints apply to the whole env; one platform's file cannot carry them (they were
    silently dropped: neither applied nor hashed)."""
    root = make_project(TARGET_FILE)
    _write(root, "linux.txt", "beta\n-c linux-constraints.txt\n")
    _write(root, "linux-constraints.txt", "alpha<2\n")
    assert _config_errors(root) == [
        "flowenv.toml:12: base.target.linux-64.pypi.requirements: -c constraints apply to the "
        "whole env, not one platform: name the file in the env's own table, or pin the package "
        "in this target table"
    ]


def test_missing_requirements_file_names_the_file(make_project) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.requirements = "nope.txt"
        """
    )
    assert _config_errors(root) == ["nope.txt: cannot read: No such file or directory"]
    assert main(["-C", str(root), "lock"]) == 2


def test_environment_yml_with_channels_and_pip_section(make_project, conda_channels) -> None:
    root = make_project(
        """
        [base]
        conda.environment-file = "environment.yml"
        """,
        project_extra=f'pypi.find-links = ["{conda_channels.wheels}"]\n',
    )
    _write(
        root,
        "environment.yml",
        f"""
        name: fractal
        channels:
          - {conda_channels.main_url}
        dependencies:
          - python=3.11
          - scikit-learn=1.3
          - {conda_channels.pytorch_url}::pytorch==2.1.2
          - pip:
            - skplot==0.3  # from the find-links wheels
            - -r pip-extra.txt
        """,
    )
    _write(root, "pip-extra.txt", "beta==1.0\n")
    env = build_environments(load_config(root / "flowenv.toml")).get("base")
    assert env.python == "3.11"
    assert env.kind == "conda"
    assert [c.match_spec() for c in env.conda] == [
        f"{conda_channels.pytorch_url}::pytorch ==2.1.2",
        "scikit-learn =1.3",
    ]
    assert [p.requirement() for p in env.pypi] == ["beta==1.0", "skplot==0.3"]
    assert env.channels == (conda_channels.main_url,)
    assert env.inputs == ("environment.yml", "pip-extra.txt")
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 0
    lock = read_conda_lock(root / "locks/base/conda-lock.yml")
    locked = {(p.manager, p.name): p.version for p in lock.for_platform("linux-64")}
    assert locked["conda", "python"] == "3.11.7"
    assert locked["conda", "scikit-learn"] == "1.3.1"
    assert locked["conda", "pytorch"] == "2.1.2"
    assert locked["pip", "skplot"] == "0.3"
    assert locked["pip", "beta"] == "1.0"
    # scikit-learn and numpy come from conda; pip does not install them again.
    assert ("pip", "scikit-learn") not in locked


@pytest.mark.parametrize("where", ["dependencies", "pip"])
def test_a_deeply_nested_environment_yml_is_one_error(make_project, capsys, where: str) -> None:
    """PyYAML's composer recurses per level: 3000 levels must be an error, not a RecursionError."""
    root = make_project(
        """
        [base]
        python = "3.11"
        conda.environment-file = "environment.yml"
        """
    )
    deep = "[" * 3000 + "]" * 3000
    item = deep if where == "dependencies" else f"pip: {deep}"
    _write(root, "environment.yml", f"channels: [x]\ndependencies:\n  - python=3.11\n  - {item}\n")
    assert _config_errors(root) == ["environment.yml:4: nested more than 100 levels deep"]
    capsys.readouterr()
    assert main(["-C", str(root), "lock"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_environment_yml_errors_name_file_and_line(make_project) -> None:
    root = make_project(
        """
        [base]
        python = "3.10"
        conda.environment-file = "environment.yml"
        """
    )
    _write(
        root,
        "environment.yml",
        """
        channels: [conda-forge]
        dependencies:
          - python=3.11
          - numpy @1.2
          - pip:
            - --index-url https://example.invalid/simple
        platforms: [linux-64]
        """,
    )
    assert _config_errors(root) == [
        "environment.yml:3: 'python=3.11' disagrees with python = \"3.10\" in flowenv.toml; "
        "remove one of them",
        "environment.yml:4: invalid conda match spec 'numpy @1.2'",
        "environment.yml:6: '--index-url': index options belong in flowenv.toml's "
        "[project.pypi] (index-url, extra-index-urls, find-links), shared by every env; "
        "remove it from this file",
        "environment.yml:7: unknown key 'platforms'",
    ]


def test_pyproject_dependencies_with_extras_and_groups(make_project) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.pyproject = { path = "app", extras = ["plots"], groups = ["dev"] }
        """
    )
    _write(
        root,
        "app/pyproject.toml",
        """
        [project]
        name = "app"
        version = "0.1"
        dependencies = ["alpha>=1"]

        [project.optional-dependencies]
        plots = ["app[fast]", "beta==1.0"]
        fast = ["gamma"]
        unused = ["delta"]

        [dependency-groups]
        test = ["epsilon"]
        dev = [{include-group = "test"}]
        """,
    )
    env = build_environments(load_config(root / "flowenv.toml")).get("base")
    assert [p.requirement() for p in env.pypi] == [
        "alpha>=1",
        "beta==1.0",
        "epsilon",
        "gamma",
    ]
    assert env.inputs == ("app/pyproject.toml",)
    assert main(["-C", str(root), "lock"]) == 0
    assert _versions(root / "locks/base/pylock.linux-64.toml") == {
        "alpha": "2.0",
        "beta": "1.0",
        "epsilon": "3.1",
        "gamma": "1.0",
    }


def test_a_deeply_nested_pyproject_is_one_error(make_project, capsys) -> None:
    """A pyproject.toml input has the 100-level bound of flowenv.toml, not a RecursionError."""
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.pyproject = "app"
        """
    )
    deep = "[" * 3000 + "]" * 3000
    _write(root, "app/pyproject.toml", f'[project]\nname = "app"\n\n[tool]\nx = {deep}\n')
    assert _config_errors(root) == [
        "app/pyproject.toml:5: invalid TOML: nested more than 100 levels deep"
    ]
    capsys.readouterr()
    assert main(["-C", str(root), "lock"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_dependency_group_included_many_times_is_expanded_once(make_project) -> None:
    """20 includes per group, 10 groups deep, is 20**10 expansions if each include is redone."""
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.pyproject = { path = "app", groups = ["g0", "g3"] }
        """
    )
    groups = [
        f"g{i} = [" + ", ".join([f'{{include-group = "g{i + 1}"}}'] * 20) + "]" for i in range(10)
    ]
    _write(
        root,
        "app/pyproject.toml",
        '[project]\nname = "app"\nversion = "0"\n\n[dependency-groups]\n'
        + "\n".join(groups)
        + '\ng10 = ["alpha>=1"]\n',
    )
    env = build_environments(load_config(root / "flowenv.toml")).get("base")
    assert [p.requirement() for p in env.pypi] == ["alpha>=1"]


def test_pyproject_errors_name_file_and_line(make_project) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.pyproject = { path = ".", extras = ["plot"], groups = ["dev"] }
        """
    )
    text = (root / "flowenv.toml").read_text()
    _write(
        root,
        "pyproject.toml",
        """
        [project]
        name = "app"
        dependencies = [
          "alpha>=1",
          "beta==",
        ]
        [project.optional-dependencies]
        plots = ["gamma"]
        [dependency-groups]
        dev = [{include-group = "dev"}]
        """,
    )
    assert (root / "flowenv.toml").read_text() == text
    assert _config_errors(root) == [
        f"pyproject.toml:5: invalid requirement 'beta==': {_packaging_says('beta==')}",
        "pyproject.toml:7: no extra 'plot' in [project.optional-dependencies] "
        "(did you mean 'plots'?); known: plots",
        "pyproject.toml:10: dependency group 'dev' includes itself (dev -> dev)",
    ]


def test_import_requirements_and_environment_files(tmp_path: Path, capsys) -> None:
    _write(tmp_path, "requirements.txt", "alpha==1.0\n-r more.txt\n")
    _write(tmp_path, "more.txt", "beta>=1\n")
    assert main(["-C", str(tmp_path), "import", "requirements.txt", "-p", "linux-64"]) == 0
    text = (tmp_path / "flowenv.toml").read_text()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert text == (
        "# Written by `flowenv import requirements.txt`: the packages stay in that file.\n\n"
        f'[project]\nname = "{tmp_path.name}"\nplatforms = ["linux-64"]\n\n'
        f'[base]\npython = "{python}"  # the Python running `flowenv import`; check it\n'
        'pypi.requirements = "requirements.txt"\n'
    )
    assert f"python = '{python}' is this interpreter's version; check it" in capsys.readouterr().err
    env = build_environments(load_config(tmp_path / "flowenv.toml")).get("base")
    assert [p.requirement() for p in env.pypi] == ["alpha==1.0", "beta>=1"]

    _write(
        tmp_path,
        "env/environment.yml",
        "channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - numpy\n",
    )
    assert main(["-C", str(tmp_path), "import", "env/environment.yml", "-o", "conda.toml"]) == 0
    text = (tmp_path / "conda.toml").read_text()
    assert 'python = "3.11"  # python= in environment.yml\n' in text
    assert 'conda.environment-file = "env/environment.yml"\n' in text


@pytest.mark.parametrize(
    ("directory", "name"),
    [
        ("My Flow (v2)", "My-Flow-v2"),
        ("..odd..name.", "odd.name"),
        ("con", "project"),
        ("é", "project"),
    ],
)
def test_import_in_a_directory_that_is_no_project_name_writes_a_valid_one(
    tmp_path: Path, directory: str, name: str
) -> None:
    """The project is named after its directory, made a portable name (it keys the store)."""
    root = tmp_path / directory
    _write(root, "requirements.txt", "alpha==1.0\n")
    assert main(["-C", str(root), "import", "requirements.txt", "-p", "linux-64"]) == 0
    assert f'[project]\nname = "{name}"\n' in (root / "flowenv.toml").read_text()
    assert load_config(root / "flowenv.toml").project.name == name


def test_import_of_a_broken_file_reports_its_line_and_writes_nothing(
    tmp_path: Path, capsys
) -> None:
    _write(tmp_path, "requirements.txt", "alpha==1.0\n--index-url https://example.invalid/simple\n")
    assert main(["-C", str(tmp_path), "import", "requirements.txt"]) == 2
    err = capsys.readouterr().err
    assert "requirements.txt:2: '--index-url': index options belong in flowenv.toml's" in err
    assert "Traceback" not in err
    assert not (tmp_path / "flowenv.toml").exists()
    assert main(["-C", str(tmp_path), "import", "notes.md"]) == 2
    assert "not a flow (.py), requirements file (.txt/.in), environment.yml or pyproject.toml" in (
        capsys.readouterr().err
    )


def test_credentials_in_a_direct_url_never_reach_the_input_hash(make_project) -> None:
    root = make_project(REQUIREMENTS_BASE)
    _write(root, "requirements.txt", "thing @ https://user:old@example.invalid/thing-1.0.whl\n")
    before = build_environments(load_config(root / "flowenv.toml")).get("base")
    _write(root, "requirements.txt", "thing @ https://user:new@example.invalid/thing-1.0.whl\n")
    after = build_environments(load_config(root / "flowenv.toml")).get("base")
    assert before.input_hash("linux-64") == after.input_hash("linux-64")
    assert "old" not in str(before.hash_inputs("linux-64"))
    assert before.hash_inputs("linux-64")["pypi"] == [
        "thing @ https://example.invalid/thing-1.0.whl"
    ]


def test_input_paths_name_every_file_and_local_package(make_project) -> None:
    from flowenv.inputs import input_paths

    root = make_project(
        REQUIREMENTS_BASE + '[steps.train]\npypi.packages = { mylib = { path = "libs/mylib" } }\n'
    )
    _write(root, "requirements.txt", "-r more.txt\nalpha==1.0\n")
    _write(root, "more.txt", "beta\n")
    _write(root, "libs/mylib/pyproject.toml", '[project]\nname = "mylib"\nversion = "1"\n')
    envs = build_environments(load_config(root / "flowenv.toml")).envs
    assert input_paths(envs, root) == [
        root / "requirements.txt",
        root / "more.txt",
        root / "libs/mylib",
    ]


def test_lock_check_fast_path_sees_an_edited_input_file_and_never_trusts_a_local_package(
    make_project, capsys, monkeypatch
) -> None:
    from flowenv.cli.fastpath import fast_lock_check
    from flowenv.lockfiles import freshness

    monkeypatch.setattr(freshness, "_RACY_NS", 0)
    root = make_project(REQUIREMENTS_BASE)
    _write(root, "requirements.txt", "-r more.txt\n")
    _write(root, "more.txt", "alpha==1.0\n")
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "lock", "--check"]) == 0
    check = ["-q", "-C", str(root), "lock", "--check"]
    assert fast_lock_check(check) == 0
    # An included file's edit: the fast path does not answer, the full check finds it stale.
    _write(root, "more.txt", "alpha==2.0\n")
    assert fast_lock_check(check) is None
    assert main(check) == 1

    # With a local package, no record is kept: every check reads the package.
    (root / "flowenv.toml").write_text(
        (root / "flowenv.toml").read_text()
        + 'pypi.packages = { mylib = { path = "libs/mylib" } }\n'
    )
    write_local_package(root / "libs/mylib", "mylib", "0.1.0")
    assert main(["-C", str(root), "lock"]) == 0
    assert main(check) == 0
    assert fast_lock_check(check) is None
    (root / "libs/mylib/src/mylib/new.py").write_text("X = 1\n")
    assert main(check) == 1
    capsys.readouterr()
