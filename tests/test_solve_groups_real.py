"""A solve group of a conda env and a PyPI-only env on real conda-forge records.

The conda side solves against the channel rebuilt from real records
(tests/data/real, see its NOTICE): linux-64 Python 3.11.0 with pip,
setuptools and wheel; osx-arm64 Python 3.11.9
with numpy 1.26.4 and scipy 1.11.4 (compiled: they depend on ``python_abi``)
and ``tzdata 2024a`` (``noarch: generic``). The PyPI-only step's wheels are
built locally under the same names, with newer versions beside conda's, so
only the PyPI-name matching of the real records holds the step to conda's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.lockfiles.condalock import read_conda_lock
from flowenv.lockfiles.pylock import read_pylock
from tests.support.wheels import WheelSpec
from tests.test_real_mixed_envs import PYPI_WHEELS
from tests.test_real_mixed_envs import _project as real_project

WHEELS = (
    *PYPI_WHEELS,
    WheelSpec(name="numpy", version="1.25.0"),
    WheelSpec(name="scipy", version="1.11.4", requires=("numpy>=1.21.6,<1.28.0",)),
    WheelSpec(name="scipy", version="1.14.0", requires=("numpy>=1.23.5",)),
    WheelSpec(name="wheel", version="0.38.4"),
    WheelSpec(name="wheel", version="0.43.0"),
)

GROUP = """\
[base]
python = "3.11"
solve-group = "flow"
conda.packages = { python = "3.11.*" }
target.osx-arm64.conda.packages = { python = "3.11.*", numpy = "1.26.*", scipy = "*" }

[steps.start]

[envs.web]
solve-group = "flow"
pypi.packages = { pandas = "*", scipy = "*", wheel = "*" }

[steps.plot]
env = "web"

[envs.free]
pypi.packages = { pandas = "*", scipy = "*", wheel = "*" }
"""


def _project(tmp_path: Path, channel: Path, index: Path, body: str, extra: str = "") -> Path:
    platforms = '"linux-64", "osx-arm64"'
    return real_project(
        tmp_path, channel, body, platforms, f'pypi.index-url = "{index.as_uri()}"\n{extra}'
    )


def _pypi(root: Path, env: str, platform: str) -> dict[str, str]:
    return {p.name: p.version for p in read_pylock(root / f"locks/{env}/pylock.{platform}.toml")}


def _conda(root: Path, platform: str) -> dict[str, str]:
    packages = read_conda_lock(root / "locks/base/conda-lock.yml").for_platform(platform)
    return {p.name: p.version for p in packages if p.manager == "conda"}


def test_a_pypi_step_agrees_with_a_conda_base_on_real_records(
    tmp_path: Path, real_channel: Path, make_index, capsys
) -> None:
    root = _project(tmp_path, real_channel, make_index(WHEELS), GROUP)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    linux, osx = _conda(root, "linux-64"), _conda(root, "osx-arm64")
    assert (linux["wheel"], linux["tzdata"]) == ("0.38.4", "2024a")
    assert (osx["numpy"], osx["scipy"], osx["tzdata"]) == ("1.26.4", "1.11.4", "2024a")
    web_linux, web_osx = _pypi(root, "web", "linux-64"), _pypi(root, "web", "osx-arm64")
    free_linux, free_osx = _pypi(root, "free", "linux-64"), _pypi(root, "free", "osx-arm64")
    # Outside the group the step takes PyPI's newest.
    for free in (free_linux, free_osx):
        assert (free["numpy"], free["scipy"], free["wheel"]) == ("2.0.0", "1.14.0", "0.43.0")
    # In it: conda's wheel (noarch: python) on linux-64, and conda's compiled numpy
    # and scipy (python_abi) on osx-arm64, matched by PyPI name and PEP 440 version.
    assert web_linux["wheel"] == "0.38.4"
    assert (web_osx["numpy"], web_osx["scipy"]) == ("1.26.4", "1.11.4")
    # conda-forge's tzdata (IANA data) is no PyPI distribution: the step's comes from PyPI.
    assert web_linux["tzdata"] == web_osx["tzdata"] == "2024.1"
    # The artifact-safety report compares by identity: base and web (the group) are
    # on one side of every difference; only free (outside it) differs; conda's
    # tzdata is not compared with PyPI's.
    capsys.readouterr()
    assert main(["-C", str(root), "show", "--conflicts", "--json"]) == 0
    conflicts = json.loads(capsys.readouterr().out)["conflicts"]
    found = {(c["platform"], c["package"]): c["versions"] for c in conflicts}
    assert found[("osx-arm64", "numpy")] == {"1.26.4": ["base", "web"], "2.0.0": ["free"]}
    assert found[("osx-arm64", "scipy")] == {"1.11.4": ["base", "web"], "1.14.0": ["free"]}
    assert found[("linux-64", "wheel")] == {"0.38.4": ["base", "web"], "0.43.0": ["free"]}
    assert not [key for key in found if "tzdata" in key[1]]


def test_pypi_map_false_frees_the_step_from_conda_packages(
    tmp_path: Path, real_channel: Path, make_index
) -> None:
    extra = "conda.pypi-map = { numpy = false, scipy = false }"
    root = _project(tmp_path, real_channel, make_index(WHEELS), GROUP, extra)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    # conda's numpy and scipy are declared no PyPI distributions: the group does
    # not hold the step to them, and it takes PyPI's newest.
    web_osx = _pypi(root, "web", "osx-arm64")
    assert (web_osx["numpy"], web_osx["scipy"]) == ("2.0.0", "1.14.0")
    assert _pypi(root, "web", "linux-64")["wheel"] == "0.38.4"


def test_an_impossible_group_on_real_records_exits_3(
    tmp_path: Path, real_channel: Path, make_index, capsys
) -> None:
    web = 'pypi.packages = { pandas = "*", scipy = "*", wheel = "*" }\n\n[steps.plot]'
    body = GROUP.replace(web, 'pypi.packages = { numpy = "<1.26" }\n\n[steps.plot]')
    root = _project(tmp_path, real_channel, make_index(WHEELS), body)
    assert main(["-C", str(root), "lock"]) == 3
    err = capsys.readouterr().err
    # web's numpy<1.26 became a constraint on conda's real numpy, which has 1.26.4 only.
    assert "  osx-arm64 numpy: base 1.26.4, web 1.25.0\n" in err
    assert "numpy <1.26" in err
    assert not (root / "locks").exists()


@pytest.mark.network
def test_a_pypi_step_agrees_with_a_conda_base_on_real_records_and_real_pypi(
    tmp_path: Path, real_channel: Path
) -> None:
    root = real_project(
        tmp_path,
        real_channel,
        GROUP,
        '"linux-64", "osx-arm64"',
        'pypi.index-url = "https://pypi.org/simple"',
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    # PyPI's real wheels of conda's versions: numpy 1.26.4 and scipy 1.11.4 for
    # CPython 3.11 on macOS arm64, wheel 0.38.4; PyPI's own tzdata.
    web_osx = _pypi(root, "web", "osx-arm64")
    assert (web_osx["numpy"], web_osx["scipy"]) == ("1.26.4", "1.11.4")
    assert _pypi(root, "web", "linux-64")["wheel"] == "0.38.4"
    free_osx = _pypi(root, "free", "osx-arm64")
    assert free_osx["numpy"] != "1.26.4"
