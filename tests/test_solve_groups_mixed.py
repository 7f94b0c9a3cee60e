"""Solve groups that mix PyPI-only envs with conda (or mixed) envs, and conda groups per platform.

A hermetic conda channel (built here) and a local wheel index: packages are
matched by PyPI name, versions compare as PEP 440, and the PyPI members' own
requirements steer the conda solve.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.lock import stale_targets
from flowenv.lockfiles.condalock import read_conda_lock
from flowenv.lockfiles.pylock import read_pylock
from tests.support.conda_channel import MAIN_PACKAGES, CondaSpec, build_channel
from tests.support.wheels import DEFAULT_WHEELS, WheelSpec

PLATFORMS = ("linux-64", "osx-arm64")


def _noarch_python(name: str, version: str) -> CondaSpec:
    return CondaSpec(
        name=name,
        version=version,
        subdir="noarch",
        noarch="python",
        depends=("python >=3.9",),
        files={f"site-packages/{name}/__init__.py": f"VERSION = {version!r}\n"},
    )


#: alpha only at 1.0 (PyPI has 1.0 and 2.0); kappa at 1.0 and 2.0 on both sides; zeta
#: is a conda package that is no PyPI distribution (noarch: generic) but shares a name.
CHANNEL: tuple[CondaSpec, ...] = (
    *(spec for spec in MAIN_PACKAGES if spec.name == "python"),
    _noarch_python("alpha", "1.0"),
    _noarch_python("kappa", "1.0"),
    _noarch_python("kappa", "2.0"),
    CondaSpec(
        name="zeta",
        version="3.0",
        subdir="noarch",
        noarch="generic",
        files={"share/zeta/data.txt": "not Python\n"},
    ),
)
WHEELS = (
    *DEFAULT_WHEELS,
    WheelSpec(name="kappa", version="1.0"),
    WheelSpec(name="kappa", version="2.0"),
    WheelSpec(name="zeta", version="1.0"),
    WheelSpec(name="zeta", version="2.0"),
    WheelSpec(name="oldk", version="1.0", requires=("kappa<2",)),
)


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_channel(CHANNEL, tmp_path_factory.mktemp("mixed-group-channel"))


@pytest.fixture
def project(make_project, make_index, channel: Path):
    index = make_index(WHEELS)

    def make(body: str) -> Path:
        root: Path = make_project(
            body, project_extra=f'conda.channels = ["{channel.as_uri()}"]\n', index=index
        )
        return root

    return make


def _pypi(root: Path, env: str, platform: str) -> dict[str, str]:
    return {p.name: p.version for p in read_pylock(root / f"locks/{env}/pylock.{platform}.toml")}


def _conda(root: Path, env: str, platform: str) -> dict[str, tuple[str, str]]:
    packages = read_conda_lock(root / f"locks/{env}/conda-lock.yml").for_platform(platform)
    return {p.name: (p.manager, p.version) for p in packages}


def _base_and_web(conda: str, pypi: str, web_python: str = "") -> str:
    """A conda base and a PyPI-only named env ``web`` in one group (inline tables' bodies)."""
    return f"""
        [base]
        python = "3.11"
        solve-group = "flow"
        conda.packages = {{ {conda} }}

        [envs.web]
        {web_python}
        solve-group = "flow"
        pypi.packages = {{ {pypi} }}
        """


def test_a_pypi_step_takes_the_version_conda_has(project) -> None:
    root = project(
        _base_and_web('alpha = "*"', 'alpha = "*"')
        + """
        [envs.free]
        pypi.packages = { alpha = "*" }
        """
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    for platform in PLATFORMS:
        assert _conda(root, "base", platform)["alpha"] == ("conda", "1.0")
        # Alone, web would take PyPI's newest (2.0, with beta); in the group, conda's 1.0.
        assert _pypi(root, "web", platform) == {"alpha": "1.0"}
        assert _pypi(root, "free", platform) == {"alpha": "2.0", "beta": "1.5"}
    # One group: editing the PyPI member makes the conda member stale too.
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"*" }\n\n[envs.free]', '">=1" }\n\n[envs.free]'))
    stale = sorted({t.env.name for t in stale_targets(load_config(toml))})
    assert stale == ["base", "web"]


def test_pypi_requirements_steer_the_conda_solve(project) -> None:
    root = project(
        _base_and_web('kappa = "*", zeta = "*"', 'kappa = "<2", zeta = "<3"')
        + """
        [envs.alone]
        conda.packages = { kappa = "*", zeta = "*" }
        """
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    for platform in PLATFORMS:
        # Alone, conda takes kappa 2.0; web's kappa<2 becomes a conda constraint.
        assert _conda(root, "alone", platform)["kappa"] == ("conda", "2.0")
        assert _conda(root, "base", platform)["kappa"] == ("conda", "1.0")
        # conda's zeta is no PyPI distribution: web's zeta<3 does not bound it,
        # and web takes PyPI's zeta on its own.
        assert _conda(root, "base", platform)["zeta"] == ("conda", "3.0")
        assert _pypi(root, "web", platform) == {"kappa": "1.0", "zeta": "2.0"}


def test_a_requirement_of_a_requirement_moves_conda_in_a_second_round(project) -> None:
    """oldk needs kappa<2: conda's first choice (2.0) fails in uv; the PyPI side alone
    would take 1.0, so conda is solved again held to it, and both sides agree."""
    root = project(_base_and_web('kappa = "*"', 'oldk = "1.0"'))
    assert main(["-q", "-C", str(root), "lock"]) == 0
    for platform in PLATFORMS:
        assert _conda(root, "base", platform)["kappa"] == ("conda", "1.0")
        assert _pypi(root, "web", platform) == {"kappa": "1.0", "oldk": "1.0"}


@pytest.mark.parametrize(
    ("conda", "pypi", "why"),
    [
        # web's own alpha==2.0 becomes a conda constraint, which conda cannot meet:
        # the solver's own words follow, with that constraint.
        ('alpha = "1.0"', 'alpha = "2.0"', "alpha ==2.0"),
        # delta needs alpha>=2 (a requirement of a requirement); conda has alpha
        # 1.0 only, so the second round fails too, and uv's first words are shown.
        ('alpha = "*"', 'delta = "0.5"', "alpha==1.0: what the conda solution installs"),
    ],
    ids=["own-requirement", "transitive-requirement"],
)
def test_an_impossible_mixed_group_exits_3_naming_envs_and_packages(
    project, capsys, conda: str, pypi: str, why: str
) -> None:
    root = project(_base_and_web(conda, pypi))
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 3
    err = capsys.readouterr().err
    assert (
        "solve group 'flow' (base, web) cannot agree on one version per package on linux-64; "
        "each env resolved alone differs on:\n  alpha: base 1.0, web 2.0\n"
    ) in err
    assert why in err
    assert "Traceback" not in err
    assert not (root / "locks").exists()


def test_a_pypi_member_on_another_python_exits_3(project, capsys) -> None:
    root = project(_base_and_web('alpha = "*"', 'alpha = "*"', web_python='python = "3.9"'))
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 3
    assert (
        "solve group 'flow' cannot agree on linux-64: the conda solution's Python is 3.11.7, "
        "but web uses Python 3.9; one version per package needs one Python"
    ) in capsys.readouterr().err


def test_a_conda_group_with_platform_tables_agrees_per_platform(
    make_project, conda_channels
) -> None:
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        solve-group = "flow"
        conda.packages = { numpy = "*" }
        target.osx-arm64.conda.packages = { numpy = "1.25.2" }

        [envs.sk]
        solve-group = "flow"
        conda.packages = { scikit-learn = "1.3.1" }

        [envs.alone]
        conda.packages = { scikit-learn = "1.3.1" }
        """,
        project_extra=f'conda.channels = ["{conda_channels.main_url}"]\n',
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    # Each platform's members as they are there: base's osx-arm64 pin holds sk on
    # osx-arm64 only; on linux-64 both take the newest numpy.
    assert _conda(root, "base", "linux-64")["numpy"] == ("conda", "1.26.0")
    assert _conda(root, "sk", "linux-64")["numpy"] == ("conda", "1.26.0")
    assert _conda(root, "base", "osx-arm64")["numpy"] == ("conda", "1.25.2")
    assert _conda(root, "sk", "osx-arm64")["numpy"] == ("conda", "1.25.2")
    assert _conda(root, "alone", "osx-arm64")["numpy"] == ("conda", "1.26.0")


def test_a_relocked_group_keeps_its_versions_until_upgraded(
    make_project, make_index, tmp_path: Path
) -> None:
    """A new kappa on both sides and a new zeta on PyPI change nothing until ``--upgrade``."""
    later = {("kappa", "2.0"), ("zeta", "2.0")}
    channel = build_channel(
        [s for s in CHANNEL if (s.name, s.version) not in later], tmp_path / "channel"
    )
    index = make_index([w for w in WHEELS if (w.name, w.version) not in later])
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        solve-group = "flow"
        conda.packages = { kappa = "*" }

        [envs.web]
        solve-group = "flow"
        pypi.packages = { kappa = "*", zeta = "*" }
        """,
        project_extra=f'conda.channels = ["{channel.as_uri()}"]\n',
        index=index,
    )
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    assert _pypi(root, "web", "linux-64") == {"kappa": "1.0", "zeta": "1.0"}
    build_channel(CHANNEL, tmp_path / "channel")
    make_index(WHEELS)
    # An edit to web makes the whole group stale: it is re-locked, and keeps its versions.
    toml = root / "flowenv.toml"
    web = 'kappa = "*", zeta = "*" }'
    toml.write_text(toml.read_text().replace(web, 'kappa = "*", zeta = "*", beta = "1.0" }'))
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    assert _conda(root, "base", "linux-64")["kappa"] == ("conda", "1.0")
    assert _pypi(root, "web", "linux-64") == {"beta": "1.0", "kappa": "1.0", "zeta": "1.0"}
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64", "--upgrade"]) == 0
    assert _conda(root, "base", "linux-64")["kappa"] == ("conda", "2.0")
    assert _pypi(root, "web", "linux-64") == {"beta": "1.0", "kappa": "2.0", "zeta": "2.0"}


def test_a_relocked_conda_group_keeps_what_only_a_later_member_has(
    make_project, tmp_path: Path
) -> None:
    """kappa is only ck's (base sorts first): a new kappa still changes nothing on a re-lock."""
    channel = build_channel(
        [s for s in CHANNEL if (s.name, s.version) != ("kappa", "2.0")], tmp_path / "channel"
    )
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        solve-group = "flow"
        conda.packages = { alpha = "*" }

        [envs.ck]
        solve-group = "flow"
        conda.packages = { kappa = "*" }
        """,
        project_extra=f'conda.channels = ["{channel.as_uri()}"]\n',
    )
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    build_channel(CHANNEL, tmp_path / "channel")
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('{ alpha = "*" }', '{ alpha = "*", zeta = "*" }'))
    assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    assert _conda(root, "ck", "linux-64")["kappa"] == ("conda", "1.0")
    assert _conda(root, "base", "linux-64")["zeta"] == ("conda", "3.0")


def test_a_gpu_member_joins_a_cpu_group(make_project, conda_channels) -> None:
    """The joint solve assumes the CUDA a member declares: cudatoolkit needs ``__cuda``."""
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        solve-group = "flow"
        conda.packages = { scikit-learn = "1.3.1" }

        [envs.gpu]
        solve-group = "flow"
        platforms = ["linux-64"]
        system-requirements = { cuda = "12" }
        conda.packages = { numpy = "*", cudatoolkit = "*" }

        [envs.free]
        conda.packages = { numpy = "*" }
        """,
        project_extra=f'conda.channels = ["{conda_channels.main_url}"]\n',
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert _conda(root, "gpu", "linux-64")["cudatoolkit"] == ("conda", "11.8.0")
    assert "cudatoolkit" not in _conda(root, "base", "linux-64")
    # One numpy for the group on linux-64 (the channel's newest, as free takes alone).
    numpy = _conda(root, "free", "linux-64")["numpy"]
    assert _conda(root, "base", "linux-64")["numpy"] == _conda(root, "gpu", "linux-64")["numpy"]
    assert _conda(root, "gpu", "linux-64")["numpy"] == numpy


def test_the_joint_system_is_the_lowest_each_member_needs() -> None:
    from flowenv.config.models import SystemRequirements as System
    from flowenv.solve_groups import _joint_system
    from flowenv.spec import EnvSpec

    def env(name: str, **system: str) -> EnvSpec:
        return EnvSpec(name=name, python="3.11", system_requirements=System(**system))

    cpu, old_gpu, new_gpu = env("cpu"), env("a", cuda="11.8"), env("b", cuda="12.2")
    assert _joint_system([cpu, new_gpu, old_gpu], "linux-64") == System(cuda="11.8")
    # glibc: only when every member says one (else the default the others run with).
    assert _joint_system([cpu, env("g", glibc="2.17")], "linux-64") == System()
    both = [env("g", glibc="2.31"), env("h", glibc="2.17")]
    assert _joint_system(both, "linux-64") == System(glibc="2.17")
    macs = [env("m", macos="14.0"), env("n", macos="12.3")]
    assert _joint_system(macs, "osx-arm64") == System(macos="12.3")
