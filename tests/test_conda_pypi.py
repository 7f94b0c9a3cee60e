"""Which conda packages stand in for PyPI distributions: the rule on real records, the names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flowenv.cli import main
from flowenv.lockfiles.condalock import read_conda_lock
from flowenv.resolution.conda_pypi import CondaRecord, provided_distributions, pypi_name
from tests.support.conda_channel import CondaChannels
from tests.support.real_data import CONDA_META, LINUX_LOCK
from tests.support.wheels import WheelSpec


def _meta_records() -> dict[str, CondaRecord]:
    out = {}
    for path in sorted(CONDA_META.glob("*.json")):
        record = json.loads(path.read_text())
        out[record["name"]] = CondaRecord(
            name=record["name"],
            version=record["version"],
            depends=tuple(record.get("depends", ())),
            noarch=record.get("noarch"),
        )
    return out


def _linux_records() -> dict[str, CondaRecord]:
    data = yaml.safe_load(LINUX_LOCK.read_text())
    return {
        p["name"]: CondaRecord(
            name=p["name"],
            version=str(p["version"]),
            depends=tuple(f"{k} {v}".strip() for k, v in p["dependencies"].items()),
        )
        for p in data["package"]
        if p["platform"] == "linux-64"
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("numpy", "numpy"),  # compiled, depends on python and python_abi
        ("scipy", "scipy"),
        ("requests", "requests"),  # noarch: python
        ("pip", "pip"),
        ("urllib3", "urllib3"),
        ("tzdata", None),  # IANA data, noarch: generic, version 2024a
        ("python", None),  # the interpreter itself
        ("python_abi", None),  # a conda-only pin package
        ("libzlib", None),
        ("openssl", None),
        ("libopenblas", None),
    ],
)
def test_real_osx_arm64_records(name: str, expected: str | None) -> None:
    assert pypi_name(_meta_records()[name], {}) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("_libgcc_mutex", None),
        ("_openmp_mutex", None),
        ("ld_impl_linux-64", None),
        ("libgcc-ng", None),
        ("tzdata", None),
        ("setuptools", "setuptools"),
        ("wheel", "wheel"),
        ("pip", "pip"),
    ],
)
def test_real_linux_64_records(name: str, expected: str | None) -> None:
    assert pypi_name(_linux_records()[name], {}) == expected


def test_built_in_names_and_overrides() -> None:
    pytorch = CondaRecord(name="pytorch", version="2.1.2", depends=("python >=3.9",))
    opencv = CondaRecord(name="py-opencv", version="4.9.0", depends=("python_abi 3.11.* *_cp311",))
    native = CondaRecord(name="mylib", version="1.0", depends=("libzlib",))
    assert pypi_name(pytorch, {}) == "torch"
    assert pypi_name(opencv, {}) == "opencv-python"
    assert pypi_name(pytorch, {"pytorch": ""}) is None
    assert pypi_name(pytorch, {"pytorch": "torch-nightly"}) == "torch-nightly"
    # An override names the PyPI twin; the record still decides that there is one.
    assert pypi_name(native, {"mylib": "my-lib"}) is None


def test_provided_distributions_skip_versions_uv_cannot_pin() -> None:
    records = [
        CondaRecord(name="numpy", version="1.26.4", depends=("python >=3.11",)),
        CondaRecord(name="odd", version="2024a", noarch="python"),
        CondaRecord(name="tzdata", version="2024a", noarch="generic"),
    ]
    assert provided_distributions(records, ()) == {"numpy": "1.26.4"}


def test_pypi_packages_must_agree_with_conda_versions(
    tmp_path: Path, conda_channels: CondaChannels, make_index, capsys
) -> None:
    """A PyPI package needing another numpy than conda's cannot be locked (exit 3, uv's reason)."""
    index = make_index(
        [
            WheelSpec(name="numpy", version="1.26.0"),
            WheelSpec(name="numpy", version="2.0.0"),
            WheelSpec(name="needs-numpy2", version="1.0", requires=("numpy>=2",)),
        ]
    )
    root = tmp_path / "proj"
    root.mkdir()
    (root / "flowenv.toml").write_text(f"""\
[project]
name = "np"
platforms = ["linux-64"]
conda.channels = ["{conda_channels.main_url}"]
pypi.index-url = "{index.as_uri()}"

[base]
python = "3.11"
conda.packages = {{ numpy = "1.26.0" }}
pypi.packages = {{ needs-numpy2 = "*" }}
""")
    capsys.readouterr()
    assert main(["-C", str(root), "lock"]) == 3
    err = capsys.readouterr().err
    assert "needs-numpy2" in err
    assert "numpy" in err
    assert not (root / "locks/base/conda-lock.yml").exists()


def test_conda_pytorch_is_not_installed_again_as_torch_from_pypi(
    tmp_path: Path, conda_channels: CondaChannels, make_index
) -> None:
    """conda's pytorch *is* PyPI's torch: a PyPI package needing torch gets conda's."""
    index = make_index(
        [
            WheelSpec(name="torch", version="2.1.2", requires=("nvidia-cudnn-cu12",)),
            WheelSpec(name="torch", version="2.3.0"),
            WheelSpec(name="torchmetrics", version="1.4.0", requires=("torch>=1.10",)),
            WheelSpec(name="nvidia-cudnn-cu12", version="8.9.2.26"),
            WheelSpec(name="numpy", version="1.26.0"),
        ]
    )
    root = tmp_path / "proj"
    root.mkdir()
    config = root / "flowenv.toml"
    config.write_text(f"""\
[project]
name = "torch"
platforms = ["linux-64", "osx-arm64"]
conda.channels = ["{conda_channels.main_url}"]
pypi.index-url = "{index.as_uri()}"

[base]
python = "3.11"
conda.packages = {{ "{conda_channels.pytorch_url}::pytorch" = "2.1.2" }}
pypi.packages = {{ torchmetrics = "*" }}
""")
    assert main(["-q", "-C", str(root), "lock"]) == 0
    lock = read_conda_lock(root / "locks/base/conda-lock.yml")
    for platform in ("linux-64", "osx-arm64"):
        pip = {p.name for p in lock.for_platform(platform) if p.manager == "pip"}
        conda = {p.name for p in lock.for_platform(platform) if p.manager == "conda"}
        assert "pytorch" in conda
        # Neither torch nor what only PyPI's torch needs (its nvidia-* wheels).
        assert pip == {"torchmetrics"}

    # Told that conda's pytorch is no PyPI distribution, the PyPI side installs torch.
    config.write_text(
        config.read_text().replace(
            'pypi.index-url', 'conda.pypi-map = { pytorch = false }\npypi.index-url'
        )
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    lock = read_conda_lock(root / "locks/base/conda-lock.yml")
    pip = {p.name: p.version for p in lock.for_platform("linux-64") if p.manager == "pip"}
    assert (pip["torch"], pip["torchmetrics"]) == ("2.3.0", "1.4.0")


def test_pypi_map_values_are_checked(tmp_path: Path, capsys) -> None:
    (tmp_path / "flowenv.toml").write_text("""\
[project]
name = "m"
platforms = ["linux-64"]
conda.pypi-map = { pytorch = "torch", "bad name" = "x", tzdata = true, ok = "not a name!" }

[base]
python = "3.11"
""")
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "show"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "flowenv: error:"
    assert [line.split(":4: ", 1)[1] for line in err[1:]] == [
        """project.conda.pypi-map."bad name": 'bad name' is not a conda package name""",
        "project.conda.pypi-map.tzdata: expected a PyPI distribution name, or false for a "
        "conda package that is not one, got True",
        "project.conda.pypi-map.ok: expected a PyPI distribution name, or false for a conda "
        "package that is not one, got 'not a name!'",
    ]
