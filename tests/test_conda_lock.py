"""Locking conda and mixed conda+PyPI environments with real rattler and uv against local channels.

Every lock written here is also read by conda-lock's own parser and rendered
by ``conda-lock render --kind explicit``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.engines.rattler import InstallPackage, install
from flowenv.lockfiles.condalock import read_conda_lock
from tests.support.conda_channel import (
    CondaChannels,
    conda_lock_parse,
    conda_lock_render_explicit,
)

SCIKIT_FLOW = """
[steps.start]
python = "3.9.13"
conda.packages = { "scikit-learn" = "1.3.1" }
"""


@pytest.fixture
def conda_project(make_project, conda_channels: CondaChannels) -> Callable[..., Path]:
    """A project on the main test channel whose PyPI part also sees the mixed-env wheels."""

    def make(
        body: str,
        extra: str = "",
        name: str = "proj",
        base: str = '[base]\npython = "3.11"\nconda.packages = { joblib = "*" }\n',
        channels: tuple[str, ...] = (conda_channels.main_url,),
        linux_only: bool = False,
    ) -> Path:
        project = (
            f"conda.channels = [{', '.join(f'{c!r}' for c in channels)}]\n"
            f'pypi.find-links = ["{conda_channels.wheels}"]\n'
            f"{extra}"
        )
        # Base is always locked too: by default a tiny conda env of its own.
        root: Path = make_project(base + body, project_extra=project, name=name)
        if linux_only:
            toml = root / "flowenv.toml"
            toml.write_text(toml.read_text().replace('"linux-64", "osx-arm64"', '"linux-64"', 1))
        return root

    return make


def _packages(path: Path, platform: str) -> dict[str, tuple[str, str]]:
    """name -> (manager, version) of one platform of a flowenv conda-lock.yml."""
    return {p.name: (p.manager, p.version) for p in read_conda_lock(path).for_platform(platform)}


def _lock(root: Path, *args: str) -> int:
    return main(["-C", str(root), "lock", *args])


def test_scikitflow_locks_both_platforms_and_conda_lock_reads_it(
    conda_project, conda_channels: CondaChannels, tmp_path: Path, capsys
) -> None:
    root = conda_project(SCIKIT_FLOW)
    assert _lock(root) == 0
    path = root / "locks/start/conda-lock.yml"
    assert _packages(path, "linux-64") == {
        "joblib": ("conda", "1.3.2"),
        "libgomp": ("conda", "13.2.0"),
        "numpy": ("conda", "1.26.0"),
        "python": ("conda", "3.9.13"),
        "scikit-learn": ("conda", "1.3.1"),
    }
    assert _packages(path, "osx-arm64") == {
        "joblib": ("conda", "1.3.2"),
        "numpy": ("conda", "1.26.0"),
        "python": ("conda", "3.9.13"),
        "scikit-learn": ("conda", "1.3.1"),
    }
    lock = read_conda_lock(path)
    assert lock.platforms == ("linux-64", "osx-arm64")
    assert lock.channels == (conda_channels.main_url,)
    assert lock.sources == ("../../flowenv.toml",)
    main = conda_channels.main

    def archive(name: str, platform: str) -> Path:
        subdir = "noarch" if name in ("joblib", "scikit-learn") else platform
        version = _packages(path, platform)[name][1]
        return main / subdir / f"{name}-{version}-h{subdir.replace('-', '')}_0.tar.bz2"

    expected = [
        (platform, "conda", name, _packages(path, platform)[name][1], archive(name, platform))
        for platform, names in (
            ("linux-64", ("joblib", "libgomp", "numpy", "python", "scikit-learn")),
            ("osx-arm64", ("joblib", "numpy", "python", "scikit-learn")),
        )
        for name in names
    ]
    # conda-lock's parser accepts the file and sees every package, URL and hash.
    assert conda_lock_parse(path) == [
        (platform, manager, name, version, file.as_uri(), _md5(file), _sha256(file))
        for platform, manager, name, version, file in expected
    ]
    explicit = conda_lock_render_explicit(path, "osx-arm64", tmp_path / "render")
    # Topological order, as conda installs it.
    assert explicit == [
        "@EXPLICIT",
        *(
            f"{file.as_uri()}#{_md5(file)}"
            for file in (
                archive("python", "osx-arm64"),
                archive("joblib", "osx-arm64"),
                archive("numpy", "osx-arm64"),
                archive("scikit-learn", "osx-arm64"),
            )
        ),
    ]


def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


def test_relock_is_byte_identical_even_when_forced(conda_project, capsys) -> None:
    root = conda_project(SCIKIT_FLOW)
    assert _lock(root) == 0
    before = {p: p.read_bytes() for p in (root / "locks").rglob("*.yml")}
    capsys.readouterr()
    assert _lock(root) == 0
    assert capsys.readouterr().out.split().count("fresh") == 4
    assert _lock(root, "--upgrade") == 0
    assert capsys.readouterr().out.split().count("unchanged") == 4
    assert {p: p.read_bytes() for p in (root / "locks").rglob("*.yml")} == before
    assert _lock(root, "--check") == 0


def test_mixed_env_takes_python_from_conda_and_leaves_conda_packages_out_of_pip(
    conda_project, conda_channels: CondaChannels, tmp_path: Path, capsys
) -> None:
    root = conda_project(
        """
        [steps.train]
        python = "3.11"
        conda.packages = { "scikit-learn" = "1.3.1" }
        pypi.packages = { skplot = "0.3", delta = "0.5" }
        """
    )
    assert _lock(root) == 0
    path = root / "locks/train/conda-lock.yml"
    for platform in ("linux-64", "osx-arm64"):
        packages = _packages(path, platform)
        assert packages["python"] == ("conda", "3.11.7")
        # numpy and scikit-learn come from conda only, at conda's versions.
        assert packages["numpy"] == ("conda", "1.26.0")
        assert packages["scikit-learn"] == ("conda", "1.3.1")
        assert {n: v for n, v in packages.items() if v[0] == "pip"} == {
            "alpha": ("pip", "2.0"),
            "beta": ("pip", "1.5"),
            "delta": ("pip", "0.5"),
            "gamma": ("pip", "1.0"),
            "skplot": ("pip", "0.3"),
        }
    pip = {(p.platform, p.name): p for p in read_conda_lock(path).packages if p.manager == "pip"}
    assert pip["linux-64", "gamma"].filename == "gamma-1.0-py3-none-manylinux_2_17_x86_64.whl"
    assert pip["osx-arm64", "gamma"].filename == "gamma-1.0-py3-none-macosx_11_0_arm64.whl"
    skplot = conda_channels.wheels / "skplot-0.3-py3-none-any.whl"
    assert pip["linux-64", "skplot"].url == skplot.as_uri()
    assert pip["linux-64", "skplot"].sha256 == _sha256(skplot)
    parsed = conda_lock_parse(path)
    assert sorted(n for p, m, n, *_ in parsed if (p, m) == ("linux-64", "pip")) == [
        "alpha",
        "beta",
        "delta",
        "gamma",
        "skplot",
    ]
    explicit = conda_lock_render_explicit(path, "linux-64", tmp_path / "render")
    assert explicit[-1] == f"# pip skplot @ {skplot.as_uri()}#sha256={_sha256(skplot)}"
    assert sum(line.startswith("# pip ") for line in explicit) == 5


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_channel_qualified_package_comes_from_its_channel(
    conda_project, conda_channels: CondaChannels
) -> None:
    root = conda_project(
        f"""
        [envs.gpu]
        python = "3.11"
        conda.packages = {{ "{conda_channels.pytorch_url}::pytorch" = "2.1.2" }}
        [steps.finetune]
        env = "gpu"
        """
    )
    assert _lock(root) == 0
    lock = read_conda_lock(root / "locks/gpu/conda-lock.yml")
    assert lock.channels == (conda_channels.main_url, conda_channels.pytorch_url)
    urls = {(p.platform, p.name): p.url for p in lock.packages}
    assert urls["osx-arm64", "pytorch"] == (
        f"{conda_channels.pytorch_url}/osx-arm64/pytorch-2.1.2-hosxarm64_0.tar.bz2"
    )
    assert urls["osx-arm64", "numpy"].startswith(f"{conda_channels.main_url}/osx-arm64/")
    assert conda_lock_parse(root / "locks/gpu/conda-lock.yml")


def test_lock_installs_into_a_prefix_with_rattler(conda_project, tmp_path: Path) -> None:
    root = conda_project(SCIKIT_FLOW)
    assert _lock(root) == 0
    lock = read_conda_lock(root / "locks/start/conda-lock.yml")
    prefix = tmp_path / "prefix"
    install(
        [
            InstallPackage(
                name=p.name,
                version=p.version,
                url=p.url,
                md5=p.md5 or "",
                sha256=p.sha256,
                depends=tuple(f"{n} {s}".strip() for n, s in p.dependencies),
            )
            for p in lock.for_platform("linux-64")
        ],
        prefix,
        "linux-64",
        cache_dir=tmp_path / "pkgs",
    )
    site = prefix / "lib/python3.9/site-packages"
    assert (site / "sklearn/__init__.py").read_text() == "__version__ = '1.3.1'\n"
    assert (site / "joblib/__init__.py").read_text() == "__version__ = '1.3.2'\n"
    assert (prefix / "lib/numpy-1.26.0.txt").read_text() == "numpy 1.26.0 for linux-64\n"
    assert (prefix / "lib/libgomp.so.1").is_file()
    assert (prefix / "bin/python3.9").is_file()
    assert sorted(p.name for p in (prefix / "conda-meta").glob("*.json")) == [
        "joblib-1.3.2-hnoarch_0.json",
        "libgomp-13.2.0-hlinux64_0.json",
        "numpy-1.26.0-hlinux64_0.json",
        "python-3.9.13-hlinux64_0.json",
        "scikit-learn-1.3.1-hnoarch_0.json",
    ]


def test_unsatisfiable_exits_3_naming_env_platform_and_specs(conda_project, capsys) -> None:
    root = conda_project(
        """
        [steps.train]
        conda.packages = { "scikit-learn" = "1.3.1", numpy = "<1.17" }
        """
    )
    assert _lock(root) == 3
    err = capsys.readouterr().err
    assert "cannot resolve train · linux-64: the conda specs cannot be satisfied" in err
    assert "cannot resolve train · osx-arm64: the conda specs cannot be satisfied" in err
    assert "  specs: joblib, numpy <1.17, scikit-learn ==1.3.1, python 3.11.*" in err
    assert "Traceback" not in err
    assert not (root / "locks").exists()


def test_package_missing_for_one_platform_exits_3_naming_that_platform(
    conda_project, capsys
) -> None:
    base = '[base]\npython = "3.11"\nconda.packages = { libgomp = "13.2.0" }\n'
    root = conda_project("", base=base)
    assert _lock(root) == 3
    err = capsys.readouterr().err
    assert err.count("cannot resolve") == 1
    assert "cannot resolve base · osx-arm64: the conda specs cannot be satisfied" in err
    assert "libgomp ==13.2.0" in err
    assert "No candidates were found for libgomp ==13.2.0" in err
    assert not (root / "locks").exists()


def test_unknown_channel_exits_3(conda_project, tmp_path: Path, capsys) -> None:
    missing = (tmp_path / "no-such-channel").as_uri()
    root = conda_project("", channels=(missing,))
    assert _lock(root) == 3
    err = capsys.readouterr().err
    assert "cannot resolve base · linux-64: cannot read a channel's repodata" in err
    assert f"channels: {missing}" in err
    assert "Traceback" not in err


def test_virtual_packages_default_and_override(conda_project, capsys) -> None:
    body = '[base]\npython = "3.11"\nconda.packages = { cudatoolkit = "11.8.0" }\n'
    root = conda_project("", base=body, name="nocuda", linux_only=True)
    assert _lock(root) == 3
    assert "__cuda >=11.8, for which no candidates were found" in capsys.readouterr().err
    with_cuda = conda_project(
        "",
        base=body,
        name="cuda",
        linux_only=True,
        extra='conda.virtual-packages = { __cuda = "12.2" }\n',
    )
    assert _lock(with_cuda) == 0
    cuda = _packages(with_cuda / "locks/base/conda-lock.yml", "linux-64")["cudatoolkit"]
    assert cuda == ("conda", "11.8.0")
    old_glibc = conda_project(
        "", name="oldglibc", extra='conda.virtual-packages = { __glibc = "2.12" }\n'
    )
    capsys.readouterr()
    assert _lock(old_glibc) == 3
    err = capsys.readouterr().err
    # python needs glibc 2.17; only linux sees the override.
    assert "cannot resolve base · linux-64" in err
    assert "osx-arm64" not in err.split("virtual packages:")[0]


def test_platform_subset_keeps_other_platforms_entries(conda_project, capsys) -> None:
    root = conda_project(SCIKIT_FLOW)
    assert _lock(root) == 0
    path = root / "locks/start/conda-lock.yml"
    before = read_conda_lock(path)
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('python = "3.9.13"', 'python = "3.11"'))
    capsys.readouterr()
    assert _lock(root, "start", "--platform", "linux-64") == 0
    after = read_conda_lock(path)
    assert after.platforms == ("linux-64", "osx-arm64")
    assert _packages(path, "linux-64")["python"] == ("conda", "3.11.7")
    assert after.for_platform("osx-arm64") == before.for_platform("osx-arm64")
    assert after.input_hash("osx-arm64") == before.input_hash("osx-arm64")
    assert after.input_hash("linux-64") != before.input_hash("linux-64")
    assert _lock(root, "--check") == 1
    err = capsys.readouterr().err
    assert "start · osx-arm64: stale (locks/start/conda-lock.yml)" in err
    assert "start · linux-64" not in err
    assert conda_lock_parse(path)


def test_dropping_a_platform_makes_the_conda_lock_stale_until_relocked(
    conda_project, capsys
) -> None:
    root = conda_project(SCIKIT_FLOW)
    assert _lock(root) == 0
    path = root / "locks/start/conda-lock.yml"
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"linux-64", "osx-arm64"', '"linux-64"', 1))
    capsys.readouterr()
    # The inputs for linux-64 did not change, but the file still holds osx-arm64.
    assert _lock(root, "--check") == 1
    assert "start · linux-64: stale (locks/start/conda-lock.yml)" in capsys.readouterr().err
    assert _lock(root) == 0
    assert read_conda_lock(path).platforms == ("linux-64",)
    assert read_conda_lock(path).for_platform("osx-arm64") == ()
    assert _lock(root, "--check") == 0
    assert conda_lock_parse(path)


def test_previous_versions_are_kept_until_upgrade(conda_project, capsys) -> None:
    root = conda_project(
        """
        [steps.train]
        conda.packages = { numpy = "1.25.2" }
        """
    )
    assert _lock(root) == 0
    path = root / "locks/train/conda-lock.yml"
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('numpy = "1.25.2"', 'numpy = ">=1.25"'))
    assert _lock(root) == 0
    assert _packages(path, "linux-64")["numpy"] == ("conda", "1.25.2")
    assert _lock(root, "--upgrade-package", "numpy") == 0
    assert _packages(path, "linux-64")["numpy"] == ("conda", "1.26.0")
    assert _packages(path, "osx-arm64")["numpy"] == ("conda", "1.26.0")


def test_identical_specs_get_identical_files(conda_project, capsys) -> None:
    root = conda_project(
        """
        [envs.one]
        conda.packages = { numpy = "1.26.0" }
        [envs.two]
        conda.packages = { numpy = "1.26.0" }
        [steps.a]
        env = "one"
        [steps.b]
        env = "two"
        """
    )
    assert _lock(root) == 0
    one = (root / "locks/one/conda-lock.yml").read_bytes()
    assert one == (root / "locks/two/conda-lock.yml").read_bytes()
    assert b"numpy-1.26.0" in one


def test_show_reports_conda_env_and_its_lock(conda_project, conda_channels, capsys) -> None:
    root = conda_project(SCIKIT_FLOW)
    assert _lock(root) == 0
    capsys.readouterr()
    assert main(["-C", str(root), "show", "start"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "start: env start (conda, python 3.9.13)",
        "    conda  joblib",
        "    conda  scikit-learn ==1.3.1",
        f"    channels  {conda_channels.main_url}",
        "    lock   linux-64: locks/start/conda-lock.yml (fresh)",
        "    lock   osx-arm64: locks/start/conda-lock.yml (fresh)",
    ]


def test_lock_check_imports_neither_rattler_nor_yaml(conda_project) -> None:
    root = conda_project(SCIKIT_FLOW)
    assert _lock(root) == 0
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "flowenv", "-C", str(root), "lock", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "flowenv" in imported
    assert imported.isdisjoint({"rattler", "yaml", "conda_lock", "uv"})


def test_bad_virtual_package_is_a_config_error(conda_project, capsys) -> None:
    root = conda_project("", extra='conda.virtual-packages = { glibc = "2.17" }\n')
    assert _lock(root) == 2
    err = capsys.readouterr().err
    assert (
        "project.conda.virtual-packages.glibc: expected a virtual package like "
        '__glibc = "2.28" (or "version=build"), got glibc = \'2.17\''
    ) in err
    assert "Traceback" not in err


@pytest.mark.network
def test_conda_forge_env_locks_for_two_platforms(make_project, tmp_path: Path) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        conda.packages = { numpy = "1.26.*" }
        """,
        project_extra='conda.channels = ["conda-forge"]\n',
    )
    assert _lock(root) == 0
    path = root / "locks/base/conda-lock.yml"
    for platform in ("linux-64", "osx-arm64"):
        packages = _packages(path, platform)
        assert packages["python"][1].startswith("3.11.")
        assert packages["numpy"][1].startswith("1.26.")
    assert conda_lock_parse(path)
    assert conda_lock_render_explicit(path, "linux-64", tmp_path / "render")[0] == "@EXPLICIT"


def test_mixed_env_keeps_previous_pip_versions_until_upgrade(conda_project, capsys) -> None:
    root = conda_project(
        """
        [steps.train]
        conda.packages = { numpy = "1.26.0" }
        pypi.packages = { alpha = "1.0" }
        """
    )
    assert _lock(root) == 0
    path = root / "locks/train/conda-lock.yml"
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = "1.0"', 'alpha = ">=1"'))
    assert _lock(root) == 0
    assert _packages(path, "osx-arm64")["alpha"] == ("pip", "1.0")
    assert _lock(root, "--upgrade") == 0
    assert _packages(path, "osx-arm64")["alpha"] == ("pip", "2.0")
    assert _packages(path, "osx-arm64")["beta"] == ("pip", "1.5")
