"""Same versions across platforms for conda and mixed envs: linux-64 leads, osx-arm64 follows.

The channel built here (real rattler solves against it):

- ``lonely`` 2.0 exists for linux-64 only: the lead takes it, the follower
  cannot, and the two still differ (``show`` says so) — without failing.
- ``shared`` 1.0 and 2.0 exist for both: both take 2.0 (agreement).
- ``tool`` 2.0 is noarch but needs ``machelper``, which only osx-arm64 has:
  alone, osx-arm64 would take 2.0; following the lead it takes 1.0.
- ``ext`` 1.0 is built per Python variant; osx-arm64 alone would take its
  newer 2.0, and its highest-numbered 1.0 build is for Python 3.9: following
  the lead's Python 3.11 build must favour osx-arm64's 3.11 build of 1.0.

PyPI (mixed env): ``beta`` 2.0 has a wheel for osx-arm64 only, ``gamma`` 2.0
one for linux-64 only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.engines import rattler
from flowenv.lockfiles.condalock import read_conda_lock
from tests.support.conda_channel import CondaSpec, _python, build_channel
from tests.support.wheels import WheelSpec

LINUX, MAC = "linux-64", "osx-arm64"


def _ext(version: str, subdir: str, python: str, build: str, number: int) -> CondaSpec:
    return CondaSpec(
        name="ext",
        version=version,
        subdir=subdir,
        depends=(f"python {python}.*",),
        build_number=number,
        build_string=f"py{python.replace('.', '')}{build}_{number}",
    )


PACKAGES = (
    _python("3.11.7", LINUX),
    _python("3.11.7", MAC),
    _python("3.9.13", MAC),
    _python("3.11.7", "osx-64"),
    CondaSpec(name="shared", version="2.0", subdir="osx-64"),
    CondaSpec(name="lonely", version="1.0", subdir=LINUX),
    CondaSpec(name="lonely", version="1.0", subdir=MAC),
    CondaSpec(name="lonely", version="2.0", subdir=LINUX),
    *(CondaSpec(name="shared", version=v, subdir=s) for v in ("1.0", "2.0") for s in (LINUX, MAC)),
    CondaSpec(name="tool", version="1.0", subdir=LINUX),
    CondaSpec(name="tool", version="1.0", subdir=MAC),
    CondaSpec(name="tool", version="2.0", subdir="noarch", depends=("machelper",)),
    CondaSpec(name="machelper", version="1.0", subdir=MAC),
    _ext("1.0", LINUX, "3.11", "habcdef1", 0),
    _ext("1.0", MAC, "3.11", "h1234567", 0),
    _ext("1.0", MAC, "3.9", "h7654321", 1),
    _ext("2.0", MAC, "3.11", "h89abcde", 0),
)
WHEELS = (
    WheelSpec(name="beta", version="1.0"),
    WheelSpec(name="beta", version="2.0", tag="py3-none-macosx_11_0_arm64"),
    WheelSpec(name="gamma", version="1.0"),
    WheelSpec(name="gamma", version="2.0", tag="py3-none-manylinux_2_17_x86_64"),
)
BODY = """
[base]
python = "3.11"
conda.packages = { lonely = "*", shared = "*", tool = "*", ext = "*" }

[steps.mixed]
pypi.packages = { beta = "*", gamma = "*" }
"""
CONDA_LEAD = {"ext": "1.0", "lonely": "2.0", "python": "3.11.7", "shared": "2.0", "tool": "1.0"}
CONDA_FOLLOWER = {**CONDA_LEAD, "lonely": "1.0"}


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_channel(PACKAGES, tmp_path_factory.mktemp("agree") / "channel")


@pytest.fixture
def project(make_project, make_index, channel: Path) -> Path:
    root: Path = make_project(
        BODY, project_extra=f'conda.channels = ["{channel.as_uri()}"]\n', index=make_index(WHEELS)
    )
    return root


def _versions(root: Path, env: str, platform: str, manager: str = "conda") -> dict[str, str]:
    lock = read_conda_lock(root / f"locks/{env}/conda-lock.yml")
    return {p.name: p.version for p in lock.for_platform(platform) if p.manager == manager}


def _builds(root: Path, env: str, platform: str) -> dict[str, str]:
    lock = read_conda_lock(root / f"locks/{env}/conda-lock.yml")
    return {p.name: p.url.rsplit("/", 1)[1] for p in lock.for_platform(platform)}


def _solve(channel: Path, platform: str, followed: tuple[str, ...] = ()) -> dict[str, str]:
    request = rattler.SolveRequest(
        specs=("lonely", "shared", "tool", "ext", "python 3.11.*"),
        channels=(channel.as_uri(),),
        platform=platform,
        virtual_packages=(("__osx", "11.0", "0"), ("__unix", "0", "0")),
        followed_urls=followed,
    )
    (solution,) = rattler.solve([request])
    return {p.name: f"{p.version} {p.build}" for p in solution}


def test_alone_the_follower_would_pick_other_versions_following_it_takes_the_leads(
    channel: Path,
) -> None:
    alone = _solve(channel, MAC)
    assert alone["tool"].startswith("2.0 ")
    assert alone["ext"] == "2.0 py311h89abcde_0"
    assert "machelper" in alone
    lead = [
        f"{channel.as_uri()}/linux-64/ext-1.0-py311habcdef1_0.tar.bz2",
        f"{channel.as_uri()}/linux-64/lonely-2.0-hlinux64_0.tar.bz2",  # not on osx-arm64
        f"{channel.as_uri()}/linux-64/tool-1.0-hlinux64_0.tar.bz2",
        f"{channel.as_uri()}/linux-64/shared-2.0-hlinux64_0.tar.bz2",
    ]
    following = _solve(channel, MAC, tuple(lead))
    assert following == {
        "ext": "1.0 py311h1234567_0",  # the lead's Python variant, not the higher py39 build
        "lonely": "1.0 hosxarm64_0",
        "python": "3.11.7 hosxarm64_0",
        "shared": "2.0 hosxarm64_0",
        "tool": "1.0 hosxarm64_0",
    }


def test_a_followed_version_in_another_channel_is_not_preferred(channel: Path) -> None:
    # Same file name, another channel: favouring it would bypass channel priority.
    elsewhere = "file:///nowhere/linux-64/tool-1.0-hlinux64_0.tar.bz2"
    assert _solve(channel, MAC, (elsewhere,))["tool"].startswith("2.0 ")


def test_conda_and_mixed_envs_follow_the_lead(project: Path, capsys) -> None:
    assert main(["-C", str(project), "lock"]) == 0
    for env in ("base", "mixed"):
        assert _versions(project, env, LINUX) == CONDA_LEAD
        assert _versions(project, env, MAC) == CONDA_FOLLOWER
    assert "machelper" not in _versions(project, "base", MAC)
    assert _builds(project, "base", MAC)["ext"] == "ext-1.0-py311h1234567_0.tar.bz2"
    assert _versions(project, "mixed", LINUX, "pip") == {"beta": "1.0", "gamma": "2.0"}
    # beta 2.0 installs on osx-arm64, but the lead has 1.0; gamma 2.0 does not install there.
    assert _versions(project, "mixed", MAC, "pip") == {"beta": "1.0", "gamma": "1.0"}
    capsys.readouterr()
    assert main(["-C", str(project), "show", "--json"]) == 0
    envs = {e["name"]: e for e in json.loads(capsys.readouterr().out)["envs"]}
    assert envs["base"]["platform-differences"] == {"lonely": {LINUX: "2.0", MAC: "1.0"}}
    assert envs["mixed"]["platform-differences"] == {
        "gamma": {LINUX: "2.0", MAC: "1.0"},
        "lonely": {LINUX: "2.0", MAC: "1.0"},
    }


def test_relock_is_byte_identical(project: Path) -> None:
    assert main(["-C", str(project), "lock"]) == 0
    locks = sorted((project / "locks").rglob("conda-lock.yml"))
    before = [p.read_bytes() for p in locks]
    assert main(["-C", str(project), "lock", "--upgrade"]) == 0
    assert [p.read_bytes() for p in locks] == before


def test_a_follower_locked_alone_follows_the_fresh_lead_in_the_lock(project: Path) -> None:
    assert main(["-C", str(project), "lock"]) == 0
    locks = sorted((project / "locks").rglob("conda-lock.yml"))
    before = [p.read_bytes() for p in locks]
    # --upgrade drops osx-arm64's own pins: only the lead's entries can hold it at 1.0.
    assert main(["-C", str(project), "lock", "-p", MAC, "--upgrade"]) == 0
    assert [p.read_bytes() for p in locks] == before
    assert _versions(project, "base", MAC) == CONDA_FOLLOWER
    assert _versions(project, "mixed", MAC, "pip") == {"beta": "1.0", "gamma": "1.0"}


def test_a_follower_locked_alone_does_not_follow_a_stale_lead(project: Path) -> None:
    assert main(["-C", str(project), "lock"]) == 0
    toml = project / "flowenv.toml"
    # The lead's inputs change (its lock is now stale), the follower's do not.
    toml.write_text(
        toml.read_text() + '\n[base.target.linux-64]\nconda.packages = { shared = "1.0" }\n'
    )
    assert main(["-C", str(project), "lock", "-p", MAC, "--upgrade"]) == 0
    assert _versions(project, "base", MAC)["tool"] == "2.0"


def test_the_pypi_part_follows_the_first_platform_that_has_pypi_packages(
    make_project, make_index, channel: Path
) -> None:
    # linux-64 leads the conda part but has no PyPI packages; osx-64 leads the PyPI part.
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        platforms = ["linux-64", "osx-64", "osx-arm64"]
        conda.packages = { shared = "*" }
        [base.target.osx-64]
        pypi.packages = { beta = "*" }
        [base.target.osx-arm64]
        pypi.packages = { beta = "*" }
        """,
        project_extra=(
            'platforms = ["linux-64", "osx-64", "osx-arm64"]\n'
            f'conda.channels = ["{channel.as_uri()}"]\n'
        ),
        index=make_index(WHEELS),
    )
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('platforms = ["linux-64", "osx-arm64"]\n', "", 1))
    assert main(["-C", str(root), "lock"]) == 0
    assert _versions(root, "base", LINUX, "pip") == {}
    assert _versions(root, "base", "osx-64", "pip") == {"beta": "1.0"}
    assert _versions(root, "base", MAC, "pip") == {"beta": "1.0"}  # alone: 2.0
