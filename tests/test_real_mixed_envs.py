"""Mixed conda + PyPI envs on real conda-forge records (tests/data/real, rattler's test data).

The conda side solves against a channel rebuilt from real records: a linux-64
Python 3.11.0 stack (with ``_libgcc_mutex`` and ``_openmp_mutex``) and an
osx-arm64 one (python 3.11.9, numpy 1.26.4, scipy, ``tzdata 2024a``). The
PyPI side needs what conda provides: pandas (numpy, tzdata, ...) and requests.
Every lock is read back by conda-lock's own parser and ``render``; a
``network`` variant uses the real wheels on PyPI.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.export import export
from flowenv.lockfiles.condalock import read_conda_lock
from tests.support.conda_channel import conda_lock_parse, conda_lock_render_explicit
from tests.support.real_data import LINUX_LOCK
from tests.support.wheels import WheelSpec
from tests.test_real_lock_files import assert_dependency_order

#: PyPI wheels whose metadata states the real requirements of these releases.
PYPI_WHEELS: tuple[WheelSpec, ...] = (
    WheelSpec(
        name="pandas",
        version="2.2.2",
        requires=(
            'numpy>=1.22.4; python_version < "3.11"',
            'numpy>=1.23.2; python_version == "3.11"',
            'numpy>=1.26.0; python_version >= "3.12"',
            "python-dateutil>=2.8.2",
            "pytz>=2020.1",
            "tzdata>=2022.7",
        ),
    ),
    WheelSpec(name="python-dateutil", version="2.9.0.post0", requires=("six>=1.5",)),
    WheelSpec(name="six", version="1.16.0"),
    WheelSpec(name="pytz", version="2024.1"),
    WheelSpec(name="tzdata", version="2024.1"),
    WheelSpec(name="numpy", version="1.26.4"),
    WheelSpec(name="numpy", version="2.0.0"),
    WheelSpec(
        name="requests",
        version="2.32.3",
        requires=(
            "charset-normalizer<4,>=2",
            "idna<4,>=2.5",
            "urllib3<3,>=1.21.1",
            "certifi>=2017.4.17",
        ),
    ),
    WheelSpec(name="charset-normalizer", version="3.3.2"),
    WheelSpec(name="idna", version="3.7"),
    WheelSpec(name="urllib3", version="2.2.2"),
    WheelSpec(name="certifi", version="2024.7.4"),
)


def _project(tmp_path: Path, channel: Path, body: str, platforms: str, index: str) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "flowenv.toml").write_text(
        textwrap.dedent(f"""\
            [project]
            name = "real"
            platforms = [{platforms}]
            conda.channels = ["{channel.as_uri()}"]
            {index}
            """)
        + textwrap.dedent(body)
    )
    return root


def _split(path: Path, platform: str) -> tuple[dict[str, str], dict[str, str]]:
    """(conda name -> version, pip name -> version) of one platform."""
    packages = read_conda_lock(path).for_platform(platform)
    return (
        {p.name: p.version for p in packages if p.manager == "conda"},
        {p.name: p.version for p in packages if p.manager == "pip"},
    )


MIXED = """\
[base]
python = "3.11"
conda.packages = { python = "3.11.*" }
pypi.packages = { pandas = "*", requests = "*" }
"""


def _check_mixed_lock(root: Path, tmp_path: Path) -> None:
    path = root / "locks/base/conda-lock.yml"
    linux_conda, linux_pip = _split(path, "linux-64")
    osx_conda, osx_pip = _split(path, "osx-arm64")
    # The real linux-64 stack: the mutexes are conda-only and never reach uv.
    assert linux_conda["_libgcc_mutex"] == "0.1"
    assert linux_conda["_openmp_mutex"] == "4.5"
    assert linux_conda["python"] == "3.11.0"
    assert osx_conda["python"] == "3.11.9"
    # conda-forge's tzdata is IANA data (2024a, noarch: both platforms), not PyPI's
    # tzdata: pandas gets PyPI's from PyPI, beside conda's.
    assert (linux_conda["tzdata"], osx_conda["tzdata"]) == ("2024a", "2024a")
    for pip in (linux_pip, osx_pip):
        assert {"pandas", "requests", "numpy", "tzdata", "python-dateutil"} <= set(pip)
        assert not {"-libgcc-mutex", "_libgcc_mutex", "python"} & set(pip)
        assert not pip["tzdata"].startswith(("2022g", "2024a"))
    # conda's pip, setuptools and wheel are PyPI distributions: never installed twice.
    assert {"pip", "setuptools", "wheel"} <= set(linux_conda)
    assert not {"pip", "setuptools", "wheel"} & set(linux_pip)
    # conda-lock itself reads the lock and renders it.
    parsed = conda_lock_parse(path)
    assert ("linux-64", "conda", "_libgcc_mutex", "0.1") in [p[:4] for p in parsed]
    assert ("osx-arm64", "pip", "pandas") in [p[:3] for p in parsed]
    lock = read_conda_lock(path)
    for platform, conda in (("linux-64", linux_conda), ("osx-arm64", osx_conda)):
        rendered = conda_lock_render_explicit(path, platform, tmp_path / f"render-{platform}")
        urls = [line for line in rendered if "://" in line and not line.startswith("#")]
        assert len(urls) == len(conda)
        assert any(line.startswith("# pip pandas") for line in rendered)
        # flowenv's own explicit export: what conda-lock renders, dependencies first.
        exported = export(load_config(root / "flowenv.toml"), "base", platform, "explicit")
        lines = exported.split("@EXPLICIT\n", 1)[1].splitlines()
        assert sorted(lines) == sorted(urls)
        packages = {p.name: p for p in lock.for_platform(platform) if p.manager == "conda"}
        assert_dependency_order(lines, packages)


def test_mixed_env_locks_on_real_conda_forge_records(
    tmp_path: Path, real_channel: Path, make_index
) -> None:
    index = make_index(PYPI_WHEELS)
    root = _project(
        tmp_path,
        real_channel,
        MIXED,
        '"linux-64", "osx-arm64"',
        f'pypi.index-url = "{index.as_uri()}"',
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    _check_mixed_lock(root, tmp_path)
    _, linux_pip = _split(root / "locks/base/conda-lock.yml", "linux-64")
    pins = (linux_pip["tzdata"], linux_pip["numpy"], linux_pip["six"])
    assert pins == ("2024.1", "2.0.0", "1.16.0")


@pytest.mark.network
def test_mixed_env_locks_on_real_records_and_real_pypi(tmp_path: Path, real_channel: Path) -> None:
    root = _project(
        tmp_path,
        real_channel,
        MIXED,
        '"linux-64", "osx-arm64"',
        'pypi.index-url = "https://pypi.org/simple"',
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    _check_mixed_lock(root, tmp_path)


@pytest.mark.parametrize(
    ("project_extra", "expected_pip"),
    [
        # conda's numpy 1.26.4 (a compiled extension for python_abi 3.11) is PyPI's
        # numpy: pandas uses it and it is not installed again.
        ("", ["pandas", "python-dateutil", "pytz", "six", "tzdata"]),
        # pypi-map says it is not: PyPI's numpy comes in beside it.
        (
            "conda.pypi-map = { numpy = false }",
            ["numpy", "pandas", "python-dateutil", "pytz", "six", "tzdata"],
        ),
    ],
    ids=["conda-numpy-stands-in", "pypi-map-false"],
)
def test_conda_numpy_and_pypi_pandas_on_osx_arm64(
    tmp_path: Path, real_channel: Path, make_index, project_extra: str, expected_pip: list[str]
) -> None:
    index = make_index(PYPI_WHEELS)
    root = _project(
        tmp_path,
        real_channel,
        """\
        [base]
        python = "3.11"
        conda.packages = { numpy = "1.26.*", scipy = "*" }
        pypi.packages = { pandas = "*" }
        """,
        '"osx-arm64"',
        f'pypi.index-url = "{index.as_uri()}"\n{project_extra}',
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    conda, pip = _split(root / "locks/base/conda-lock.yml", "osx-arm64")
    assert (conda["numpy"], conda["scipy"], conda["python_abi"]) == ("1.26.4", "1.11.4", "3.11")
    assert sorted(pip) == expected_pip


CONDA_ONLY = """\
[base]
python = "3.11"
conda.packages = { python = "3.11.*" }
"""


def test_real_follower_takes_the_noarch_version_its_lead_keeps(
    tmp_path: Path, real_channel: Path, capsys
) -> None:
    """conda-lock's real linux-64 lock (tzdata 2022g) is the previous lock; osx-arm64 follows it.

    Alone, osx-arm64 takes the newest noarch tzdata (2024a). linux-64 leads and
    keeps its locked 2022g, and osx-arm64 takes that same noarch file; what
    osx-arm64 has no build of at linux's version (python 3.11.0, openssl
    3.0.8) stays its own, and ``show`` lists it.
    """
    import yaml

    root = _project(tmp_path, real_channel, CONDA_ONLY, '"linux-64", "osx-arm64"', "")
    real = yaml.safe_load(LINUX_LOCK.read_text())
    real["metadata"]["platforms"] = ["linux-64"]
    real["package"] = [p for p in real["package"] if p["platform"] == "linux-64"]
    for package in real["package"]:
        # The rebuilt channel serves every record as .tar.bz2, at its own address.
        url = package["url"].replace(
            "https://conda.anaconda.org/conda-forge", real_channel.as_uri()
        )
        package["url"] = url.removesuffix(".conda") + (".tar.bz2" if url.endswith(".conda") else "")
    (root / "locks/base").mkdir(parents=True)
    (root / "locks/base/conda-lock.yml").write_text(yaml.safe_dump(real))
    assert main(["-q", "-C", str(root), "lock"]) == 0
    linux, _ = _split(root / "locks/base/conda-lock.yml", "linux-64")
    osx, _ = _split(root / "locks/base/conda-lock.yml", "osx-arm64")
    assert (linux["tzdata"], osx["tzdata"]) == ("2022g", "2022g")
    assert (linux["python"], osx["python"]) == ("3.11.0", "3.11.9")
    capsys.readouterr()
    assert main(["-C", str(root), "show", "--json"]) == 0
    differences = json.loads(capsys.readouterr().out)["envs"][0]["platform-differences"]
    assert differences["python"] == {"linux-64": "3.11.0", "osx-arm64": "3.11.9"}
    assert differences["openssl"] == {"linux-64": "3.0.8", "osx-arm64": "3.3.0"}
    assert "tzdata" not in differences
    # Without a lead to follow (osx-arm64 alone, its own pins dropped) it takes 2024a.
    (tmp_path / "alone").mkdir()
    root_alone = _project(tmp_path / "alone", real_channel, CONDA_ONLY, '"osx-arm64"', "")
    assert main(["-q", "-C", str(root_alone), "lock"]) == 0
    assert _split(root_alone / "locks/base/conda-lock.yml", "osx-arm64")[0]["tzdata"] == "2024a"
