"""Solve groups: envs in one group get one version of every package they share, per platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.lock import stale_targets
from flowenv.lockfiles.pylock import read_pylock
from tests.support.wheels import DEFAULT_WHEELS, WheelSpec

#: omega accepts any alpha; alone it gets the newest (2.0, which pulls beta).
WHEELS = (*DEFAULT_WHEELS, WheelSpec(name="omega", version="1.0", requires=("alpha>=1",)))

GROUPED = """
[base]
python = "3.11"
solve-group = "flow"
pypi.packages = { alpha = "1.0" }

[steps.train]
pypi.packages = { alpha = ">=1", omega = "1.0" }

[steps.end]

[envs.report]
solve-group = "flow"
pypi.packages = { omega = "1.0" }

[envs.free]
pypi.packages = { omega = "1.0" }

[steps.plot]
env = "free"
"""


def _versions(root: Path, env: str, platform: str) -> dict[str, str]:
    return {p.name: p.version for p in read_pylock(root / f"locks/{env}/pylock.{platform}.toml")}


@pytest.fixture
def grouped(make_project, make_index) -> Path:
    index = make_index(WHEELS)
    root: Path = make_project(GROUPED, index=index)
    return root


def test_group_members_agree_with_base(grouped: Path, capsys) -> None:
    assert main(["-C", str(grouped), "lock"]) == 0
    capsys.readouterr()
    assert main(["-C", str(grouped), "show", "train", "plot"]) == 0
    shown = capsys.readouterr().out
    # train inherits base's group; plot's named env is in none.
    assert shown.count("    solve-group  flow\n") == 1
    assert shown.index("solve-group") < shown.index("plot:")
    for platform in ("linux-64", "osx-arm64"):
        # Alone, train and report would take alpha 2.0 (and beta with it).
        assert _versions(grouped, "base", platform) == {"alpha": "1.0"}
        assert _versions(grouped, "train", platform) == {"alpha": "1.0", "omega": "1.0"}
        assert _versions(grouped, "report", platform) == {"alpha": "1.0", "omega": "1.0"}
        # An env outside the group resolves on its own.
        assert _versions(grouped, "free", platform) == {
            "alpha": "2.0",
            "beta": "1.5",
            "omega": "1.0",
        }


def test_changing_one_member_makes_the_whole_group_stale(grouped: Path) -> None:
    assert main(["-C", str(grouped), "lock"]) == 0
    toml = grouped / "flowenv.toml"
    toml.write_text(
        toml.read_text().replace(
            '{ omega = "1.0" }\n\n[envs.free]', '{ omega = "1.0", beta = "1.0" }\n\n[envs.free]'
        )
    )
    stale = sorted({t.env.name for t in stale_targets(load_config(toml))})
    assert stale == ["base", "report", "train"]


def test_an_impossible_group_exits_3_naming_envs_and_packages(
    make_project, make_index, capsys
) -> None:
    index = make_index(WHEELS)
    root = make_project(
        """
        [base]
        python = "3.11"
        solve-group = "flow"
        pypi.packages = { alpha = "1.0" }

        [envs.gpu]
        solve-group = "flow"
        pypi.packages = { delta = "0.5" }
        """,
        index=index,
    )
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 3
    err = capsys.readouterr().err
    assert (
        "solve group 'flow' (base, gpu) cannot agree on one version per package on linux-64; "
        "each env resolved alone differs on:\n  alpha: base 1.0, gpu 2.0\n"
    ) in err
    assert "Traceback" not in err
    assert not (root / "locks").exists()


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (
            "",
            "flowenv.toml:11: steps.end.solve-group: this step declares nothing of its own, so "
            "it runs in [base]; put solve-group there (steps built on it inherit it)",
        ),
        # A disabled step runs in the system environment: the message must not send it to base.
        (
            "disabled = true\n",
            "flowenv.toml:12: steps.end.solve-group: a disabled step runs in the system "
            "environment, which has no lock to agree with; remove solve-group or disabled",
        ),
    ],
)
def test_a_step_with_nothing_of_its_own_cannot_name_a_group(
    make_project, step: str, error: str
) -> None:
    root = make_project(
        '\n[base]\npython = "3.11"\n\n[steps.end]\n' + step + 'solve-group = "flow"\n'
    )
    from flowenv.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(root / "flowenv.toml")
    assert [d.render().replace(str(root) + "/", "") for d in info.value.diagnostics] == [error]


def _conda_versions(path: Path, platform: str) -> dict[str, tuple[str, str]]:
    from flowenv.lockfiles.condalock import read_conda_lock

    return {p.name: (p.manager, p.version) for p in read_conda_lock(path).for_platform(platform)}


CONDA_BASE = """
[base]
python = "3.11"
solve-group = "flow"
conda.packages = { numpy = "1.25.2" }
"""


def _conda_project(make_project, conda_channels, body: str) -> Path:
    root: Path = make_project(
        body,
        project_extra=(
            f'conda.channels = ["{conda_channels.main_url}"]\n'
            f'pypi.find-links = ["{conda_channels.wheels}"]\n'
        ),
    )
    return root


def test_a_conda_group_agrees_on_conda_and_pip_versions(make_project, conda_channels) -> None:
    root = _conda_project(
        make_project,
        conda_channels,
        CONDA_BASE
        + """
        pypi.packages = { alpha = "1.0" }

        [envs.sk]
        solve-group = "flow"
        conda.packages = { scikit-learn = "1.3.1" }
        pypi.packages = { alpha = ">=1" }

        [envs.alone]
        conda.packages = { scikit-learn = "1.3.1" }
        pypi.packages = { alpha = ">=1" }
        """,
    )
    assert main(["-C", str(root), "lock"]) == 0
    for platform in ("linux-64", "osx-arm64"):
        sk = _conda_versions(root / "locks/sk/conda-lock.yml", platform)
        alone = _conda_versions(root / "locks/alone/conda-lock.yml", platform)
        # Alone, sk would take the newest numpy and alpha; in the group it takes base's.
        assert (alone["numpy"], alone["alpha"]) == (("conda", "1.26.0"), ("pip", "2.0"))
        assert (sk["numpy"], sk["alpha"]) == (("conda", "1.25.2"), ("pip", "1.0"))
        assert sk["scikit-learn"] == ("conda", "1.3.1")
        assert "beta" in alone
        assert "beta" not in sk  # alpha 1.0 needs no beta


def test_an_impossible_conda_group_exits_3_naming_the_package(
    make_project, conda_channels, capsys
) -> None:
    root = _conda_project(
        make_project,
        conda_channels,
        CONDA_BASE
        + """

        [envs.new]
        solve-group = "flow"
        conda.packages = { numpy = "1.26.0" }
        """,
    )
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 3
    err = capsys.readouterr().err
    assert (
        "solve group 'flow' (base, new) cannot agree on one version per package on linux-64; "
        "each env resolved alone differs on:\n  numpy: base 1.25.2, new 1.26.0\n"
    ) in err
    assert not (root / "locks").exists()


def test_conda_members_on_other_channels_are_refused(make_project, conda_channels, capsys) -> None:
    root = _conda_project(
        make_project,
        conda_channels,
        CONDA_BASE
        + f"""

        [envs.torch]
        solve-group = "flow"
        conda.channels = ["{conda_channels.pytorch_url}"]
        conda.packages = {{ pytorch = "2.1.2" }}

        [envs.web]
        solve-group = "flow"
        conda.channels = ["{conda_channels.pytorch_url}"]
        pypi.packages = {{ alpha = "1.0" }}
        """,
    )
    assert main(["-C", str(root), "lock"]) == 2
    # web is PyPI-only: its channels do not matter.
    assert capsys.readouterr().err == (
        "flowenv: error: solve group 'flow': its conda envs use different channels or channel "
        f"priority (base: ['{conda_channels.main_url}'], torch: ['{conda_channels.pytorch_url}']); "
        "one version per package needs one set of channels\n"
    )


def test_a_group_member_with_a_platform_table_agrees_on_each_platform(
    make_project, make_index
) -> None:
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        solve-group = "flow"
        pypi.packages = { alpha = "1.0" }

        [envs.tool]
        solve-group = "flow"
        pypi.packages = { beta = "*" }
        target.linux-64.pypi.packages = { beta = "*", omega = "1.0" }
        """,
        index=make_index(WHEELS),
    )
    assert main(["-C", str(root), "lock"]) == 0
    # On linux omega would pull alpha 2.0 alone; the group holds it to base's 1.0.
    assert _versions(root, "tool", "linux-64") == {"alpha": "1.0", "beta": "1.5", "omega": "1.0"}
    assert _versions(root, "tool", "osx-arm64") == {"beta": "1.5"}


def test_a_relocked_group_keeps_every_members_versions(make_project, make_index) -> None:
    """A newer omega on the index changes nothing on a re-lock, though base does not have it."""
    index = make_index(DEFAULT_WHEELS)
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        solve-group = "flow"
        pypi.packages = { beta = "1.0" }

        [envs.web]
        solve-group = "flow"
        pypi.packages = { omega = "*" }
        """,
        index=make_index([WheelSpec(name="omega", version="1.0")]),
    )
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    assert _versions(root, "web", "linux-64") == {"omega": "1.0"}
    assert index == make_index([WheelSpec(name="omega", version="1.1")])
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('{ omega = "*" }', '{ omega = "*", alpha = "1.0" }'))
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    assert _versions(root, "web", "linux-64") == {"alpha": "1.0", "omega": "1.0"}
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64", "--upgrade"]) == 0
    assert _versions(root, "web", "linux-64") == {"alpha": "1.0", "omega": "1.1"}


def test_members_on_one_platform_with_different_pythons_are_a_config_error(
    make_project, make_index, capsys
) -> None:
    # report's Python is its own; train's comes from base.
    body = GROUPED.replace(
        '[envs.report]\nsolve-group = "flow"\n',
        '[envs.report]\npython = "3.10"\nsolve-group = "flow"\n',
    )
    root = make_project(body, index=make_index(WHEELS))
    assert main(["-C", str(root), "lock"]) == 2
    err = capsys.readouterr().err.replace(str(root) + "/", "")
    message = (
        "solve group 'flow' cannot agree on linux-64: its envs use different Python versions "
        "(base 3.11, report 3.10, train 3.11); one version per package needs one Python"
    )
    assert err == (
        "flowenv: error:\n"
        f"flowenv.toml:8: base.python: {message}\n"
        f"flowenv.toml:18: envs.report.python: {message}\n"
    )
    assert not (root / "locks").exists()  # refused before anything was resolved or written


def test_members_with_different_pythons_on_different_platforms_agree_where_they_meet(
    make_project, make_index
) -> None:
    # report runs on osx-arm64 only, with its own Python; on linux-64 only base and train meet.
    body = GROUPED.replace(
        '[envs.report]\nsolve-group = "flow"\n',
        '[envs.report]\npython = "3.10"\nplatforms = ["osx-arm64"]\nsolve-group = "flow"\n',
    ).replace('[base]\npython = "3.11"\n', '[base]\npython = "3.11"\nplatforms = ["linux-64"]\n')
    root = make_project(body, index=make_index(WHEELS))
    assert main(["-C", str(root), "lock"]) == 0
    assert _versions(root, "report", "osx-arm64") == {"alpha": "2.0", "beta": "1.5", "omega": "1.0"}
