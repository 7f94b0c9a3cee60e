"""Real ML stacks: per-platform packages, torch variants from their own indexes, GPU-only steps,
system requirements.

Three local wheel indexes stand in for PyPI and PyTorch's two indexes: the
default one has the plain ``torch 2.4.1`` (the macOS wheel), the ``nvidia-*``
wheels the CUDA build needs and ``filelock``; the "cpu" index has
``torch 2.4.1+cpu`` and a newer ``filelock`` (a package on both indexes); the
"cu121" index has ``torch 2.4.1+cu121``, which depends on the ``nvidia-*``
wheels. Everything is locked by the real uv and solved by the real rattler.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.lockfiles.condalock import read_conda_lock
from flowenv.lockfiles.pylock import read_pylock
from flowenv.platforms import host_platform
from tests.support.conda_channel import MAIN_PACKAGES, CondaSpec, build_channel
from tests.support.wheels import WheelSpec, build_simple_index, build_wheel

#: The hydrate and Metaflow tests build or run envs on this machine, a linux-64 one.
on_linux_64 = pytest.mark.skipif(host_platform() != "linux-64", reason="needs a linux-64 host")

NVIDIA = ("nvidia-cublas-cu12", "nvidia-cudnn-cu12")

DEFAULT_INDEX = (
    WheelSpec(name="torch", version="2.4.1", requires=("filelock",)),
    WheelSpec(name="filelock", version="3.15.4"),
    *(WheelSpec(name=n, version="12.1.3", tag="py3-none-manylinux1_x86_64") for n in NVIDIA),
    # Only the newer version needs glibc 2.34: the default target must not take it.
    WheelSpec(name="fastkernel", version="1.0", tag="py3-none-manylinux_2_17_x86_64"),
    WheelSpec(name="fastkernel", version="2.0", tag="py3-none-manylinux_2_34_x86_64"),
    WheelSpec(name="fastkernel", version="1.0", tag="py3-none-macosx_11_0_arm64"),
    WheelSpec(name="fastkernel", version="2.0", tag="py3-none-macosx_14_0_arm64"),
)
CPU_INDEX = (
    WheelSpec(name="torch", version="2.4.1+cpu", requires=("filelock",)),
    # Newer than the default index's: taking it would mean the explicit index leaked.
    WheelSpec(name="filelock", version="99.0"),
)
CU121_INDEX = (
    WheelSpec(
        name="torch",
        version="2.4.1+cu121",
        requires=("filelock", *(f"{n}==12.1.3; platform_system == 'Linux'" for n in NVIDIA)),
    ),
)


def _index(specs: tuple[WheelSpec, ...], root: Path) -> str:
    wheels = [build_wheel(spec, root / "wheels") for spec in specs]
    return build_simple_index(wheels, root / "index").as_uri()


@pytest.fixture
def indexes(tmp_path: Path) -> dict[str, str]:
    return {
        "default": _index(DEFAULT_INDEX, tmp_path / "pypi"),
        "cpu": _index(CPU_INDEX, tmp_path / "cpu"),
        "cu121": _index(CU121_INDEX, tmp_path / "cu121"),
    }


def _project(root: Path, indexes: dict[str, str], body: str) -> Path:
    root.mkdir(exist_ok=True)
    (root / "flowenv.toml").write_text(
        "[project]\n"
        'name = "ml"\n'
        'platforms = ["linux-64", "osx-arm64"]\n'
        f'pypi.index-url = "{indexes["default"]}"\n'
        "[project.pypi.indexes]\n"
        f'pytorch-cpu = "{indexes["cpu"]}"\n'
        f'pytorch-cu121 = "{indexes["cu121"]}"\n\n' + textwrap.dedent(body)
    )
    return root


TORCH = """\
    [base]
    python = "3.11"
    pypi.packages = { torch = "2.4.1" }

    [base.target.linux-64]
    pypi.packages = { torch = { version = "2.4.1", index = "pytorch-cpu" } }

    [steps.train]
    platforms = ["linux-64"]
    system-requirements = { cuda = "12" }
    pypi.packages = { torch = { version = "2.4.1", index = "pytorch-cu121" } }
"""


def _locked_torch(tmp_path: Path, indexes: dict[str, str]) -> Path:
    """The :data:`TORCH` project, locked."""
    root = _project(tmp_path / "proj", indexes, TORCH)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    return root


def _locked(path: Path) -> dict[str, tuple[str, str]]:
    """name -> (version, URL of its one wheel)."""
    out = {}
    for package in read_pylock(path):
        (wheel,) = package.wheels
        out[package.name] = (package.version, wheel.url)
    return out


def test_cpu_and_cuda_torch_from_their_own_indexes(
    tmp_path: Path, indexes: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _locked_torch(tmp_path, indexes)

    # The CPU step (base) on Linux: +cpu from the CPU index, no nvidia wheels; its
    # dependency filelock comes from the default index although the CPU index has a newer one.
    linux = _locked(root / "locks/base/pylock.linux-64.toml")
    assert sorted(linux) == ["filelock", "torch"]
    assert linux["torch"][0] == "2.4.1+cpu"
    assert "/cpu/wheels/" in linux["torch"][1]
    assert linux["filelock"][0] == "3.15.4"
    assert "/pypi/wheels/" in linux["filelock"][1]

    # osx-arm64 gets the plain wheel from the default index.
    mac = _locked(root / "locks/base/pylock.osx-arm64.toml")
    assert mac["torch"][0] == "2.4.1"
    assert "/pypi/wheels/" in mac["torch"][1]

    # The GPU step: +cu121 with its nvidia wheels, locked for linux-64 only.
    gpu = _locked(root / "locks/train/pylock.linux-64.toml")
    assert gpu["torch"][0] == "2.4.1+cu121"
    assert "/cu121/wheels/" in gpu["torch"][1]
    assert sorted(gpu) == ["filelock", *NVIDIA, "torch"]
    assert all("/pypi/wheels/" in gpu[n][1] for n in NVIDIA)
    assert sorted(p.name for p in (root / "locks/train").iterdir()) == ["pylock.linux-64.toml"]

    # No credentials-bearing or index-pinning detail is lost: the lock says where
    # each wheel came from, and lock --check is satisfied with the GPU step's one file.
    assert main(["-q", "-C", str(root), "lock", "--check"]) == 0
    capsys.readouterr()
    assert main(["-C", str(root), "show", "train", "--json"]) == 0
    (train,) = json.loads(capsys.readouterr().out)["envs"]
    assert train["platforms"] == ["linux-64"]
    # Plain PEP 508 lines a tool can parse; the pin beside them.
    assert train["pypi"] == ["torch==2.4.1"]
    assert train["pinned-indexes"] == {"torch": "pytorch-cu121"}
    assert train["system-requirements"] == {"cuda": "12"}
    assert train["indexes"] == {"pytorch-cu121": indexes["cu121"]}
    assert list(train["locks"]) == ["linux-64"]
    assert train["locks"]["linux-64"]["status"] == "fresh"


def test_show_lists_target_tables(
    tmp_path: Path, indexes: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path / "proj", indexes, TORCH)
    assert main(["-C", str(root), "show", "start", "train"]) == 0
    assert capsys.readouterr().out == (
        "start: env base (pypi, python 3.11) [not declared: as base]\n"
        "    pypi   torch==2.4.1\n"
        "    on linux-64:\n"
        "      pypi   torch==2.4.1 (index pytorch-cpu)\n"
        "    lock   linux-64: locks/base/pylock.linux-64.toml (missing)\n"
        "    lock   osx-arm64: locks/base/pylock.osx-arm64.toml (missing)\n"
        "train: env train (pypi, python 3.11)\n"
        "    pypi   torch==2.4.1 (index pytorch-cu121)\n"
        "    system cuda >= 12\n"
        "    lock   linux-64: locks/train/pylock.linux-64.toml (missing)\n"
    )


def _stale(*lines: str) -> str:
    """What ``lock --check`` prints for these findings."""
    return "flowenv: error:\nstale locks (run `flowenv lock`):\n" + "".join(
        f"  {line}\n" for line in lines
    )


def test_lock_check_and_obsolete_locks_follow_env_platforms(
    tmp_path: Path, indexes: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _locked_torch(tmp_path, indexes)
    # A lock for a platform the GPU step is not locked for is obsolete, not live.
    stray = root / "locks/train/pylock.osx-arm64.toml"
    stray.write_bytes((root / "locks/base/pylock.osx-arm64.toml").read_bytes())
    capsys.readouterr()
    assert main(["-C", str(root), "lock", "--check"]) == 1
    assert capsys.readouterr().err == _stale(
        "locks/train/pylock.osx-arm64.toml: obsolete (nothing in flowenv.toml uses it)"
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert not stray.exists()
    # Selecting a platform the env does not have is not an error: it has nothing there.
    assert main(["-q", "-C", str(root), "lock", "--check", "train", "-p", "osx-arm64"]) == 0


def test_pinned_index_choice_per_platform_enters_the_input_hash(
    tmp_path: Path, indexes: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _locked_torch(tmp_path, indexes)
    toml = root / "flowenv.toml"
    # Moving base's Linux torch to the CUDA index stales base's linux-64 lock only.
    toml.write_text(toml.read_text().replace('index = "pytorch-cpu"', 'index = "pytorch-cu121"'))
    capsys.readouterr()
    assert main(["-C", str(root), "lock", "--check"]) == 1
    assert capsys.readouterr().err == _stale(
        "base · linux-64: stale (locks/base/pylock.linux-64.toml)"
    )


def test_glibc_requirement_selects_the_wheels_that_need_it(
    tmp_path: Path, indexes: dict[str, str]
) -> None:
    root = _project(
        tmp_path / "proj",
        indexes,
        """\
        [base]
        python = "3.11"
        pypi.packages = { fastkernel = "*" }

        [steps.newer]
        system-requirements = { glibc = "2.34", macos = "14.0" }
        pypi.packages = { fastkernel = "*" }

        [steps.older]
        system-requirements = { glibc = "2.33" }
        pypi.packages = { fastkernel = "*" }
        """,
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    versions = {
        (env, platform): _locked(root / f"locks/{env}/pylock.{platform}.toml")["fastkernel"][0]
        for env in ("base", "newer", "older")
        for platform in ("linux-64", "osx-arm64")
    }
    assert versions == {
        ("base", "linux-64"): "1.0",  # manylinux_2_28 by default
        ("base", "osx-arm64"): "1.0",
        ("newer", "linux-64"): "2.0",  # manylinux_2_34
        ("newer", "osx-arm64"): "2.0",  # MACOSX_DEPLOYMENT_TARGET=14.0
        ("older", "linux-64"): "1.0",
        ("older", "osx-arm64"): "1.0",  # a glibc requirement means nothing on macOS
    }


# -- conda: virtual packages from system requirements ---------------------------------

GPU_CONDA = (
    *MAIN_PACKAGES,
    CondaSpec(
        name="gpukernel",
        version="1.0",
        subdir="linux-64",
        depends=("__cuda >=12", "__glibc >=2.34"),
        files={"lib/gpukernel.txt": "needs a GPU\n"},
    ),
)


@pytest.fixture(scope="module")
def gpu_channel(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_channel(GPU_CONDA, tmp_path_factory.mktemp("gpu-channel")).as_uri()


def _conda_project(root: Path, channel: str, requirements: str) -> Path:
    root.mkdir()
    (root / "flowenv.toml").write_text(
        "[project]\n"
        'platforms = ["linux-64", "osx-arm64"]\n'
        f'conda.channels = ["{channel}"]\n\n'
        "[base]\n"
        'python = "3.11"\n'
        'conda.packages = { numpy = "1.26.0" }\n\n'
        "[steps.gpu]\n"
        'platforms = ["linux-64"]\n'
        'conda.packages = { gpukernel = "1.0" }\n' + requirements
    )
    return root


def test_gpu_conda_package_needs_cuda_and_glibc_requirements(
    tmp_path: Path, gpu_channel: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = _conda_project(tmp_path / "bare", gpu_channel, "")
    assert main(["-q", "-C", str(bare), "lock", "gpu"]) == 3
    assert "gpukernel" in capsys.readouterr().err

    low_glibc = _conda_project(
        tmp_path / "low", gpu_channel, 'system-requirements = { cuda = "12.4" }\n'
    )
    assert main(["-q", "-C", str(low_glibc), "lock", "gpu"]) == 3
    capsys.readouterr()

    root = _conda_project(
        tmp_path / "ok", gpu_channel, 'system-requirements = { cuda = "12.4", glibc = "2.34" }\n'
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    lock = read_conda_lock(root / "locks/gpu/conda-lock.yml")
    assert lock.platforms == ("linux-64",)
    assert "gpukernel" in {p.name for p in lock.for_platform("linux-64")}
    base = read_conda_lock(root / "locks/base/conda-lock.yml")
    assert base.platforms == ("linux-64", "osx-arm64")
    assert main(["-q", "-C", str(root), "lock", "--check"]) == 0


def test_conda_target_table_adds_a_package_on_one_platform(
    tmp_path: Path, gpu_channel: str
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "flowenv.toml").write_text(
        "[project]\n"
        'platforms = ["linux-64", "osx-arm64"]\n'
        f'conda.channels = ["{gpu_channel}"]\n\n'
        "[base]\n"
        'python = "3.11"\n'
        'conda.packages = { numpy = "1.26.0" }\n'
        "[base.target.osx-arm64]\n"
        'conda.packages = { joblib = "1.3.2" }\n'
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    lock = read_conda_lock(root / "locks/base/conda-lock.yml")
    assert "joblib" in {p.name for p in lock.for_platform("osx-arm64")}
    assert "joblib" not in {p.name for p in lock.for_platform("linux-64")}


# -- hydrate: platforms and system requirements ------------------------------------


@on_linux_64
def test_hydrate_checks_system_requirements_with_an_override(
    tmp_path: Path,
    indexes: dict[str, str],
    flowenv_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _locked_torch(tmp_path, indexes)
    assert main(["-q", "-C", str(root), "sync"]) == 0
    # sync follows each env's platforms: the GPU step exists for linux-64 only.
    aliases = root / ".flowenv/store/projects/ml/envs"
    assert sorted(p.parent.relative_to(aliases).as_posix() for p in aliases.rglob("current")) == [
        "base/linux-64",
        "base/osx-arm64",
        "train/linux-64",
    ]
    capsys.readouterr()
    # An empty override is conda's way to say "no GPU", whatever this machine has.
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "")
    assert main(["-C", str(root), "hydrate", "train"]) == 2
    assert capsys.readouterr().err == (
        "flowenv: error:\ntrain · linux-64: this machine does not meet the env's system "
        "requirements:\n"
        "  cuda >= 12 required; this machine has none\n"
        "A builder that is not the machine the env runs on may pass --ignore-system-requirements "
        "(or set FLOWENV_IGNORE_SYSTEM_REQUIREMENTS=1); CONDA_OVERRIDE_CUDA/_GLIBC/_OSX state "
        "what the runtime offers.\n"
    )
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "11.8")
    assert main(["-C", str(root), "hydrate", "train"]) == 2
    assert "cuda >= 12 required; this machine has 11.8" in capsys.readouterr().err

    # A builder without the GPU: the override builds it anyway.
    prefix = tmp_path / "env"
    args = ["-C", str(root), "hydrate", "train", "--prefix", str(prefix), "--json"]
    assert main([*args, "--ignore-system-requirements"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["platform"] == "linux-64"
    torch_init = next(prefix.glob("lib/python3.11/site-packages/torch/__init__.py"))
    assert "VERSION = '2.4.1+cu121'" in torch_init.read_text()
    # A driver new enough passes without any override.
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "12.4")
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["env_id"] == built["env_id"]


def test_hydrating_an_env_locked_for_other_platforms_is_refused(
    tmp_path: Path, indexes: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(
        tmp_path / "proj",
        indexes,
        """\
        [base]
        python = "3.11"
        [envs.mac]
        platforms = ["osx-arm64"]
        pypi.packages = { torch = "2.4.1" }
        """,
    )
    assert main(["-C", str(root), "hydrate", "mac", "--platform", "linux-64"]) == 2
    assert capsys.readouterr().err == (
        "flowenv: error: env 'mac' is locked for osx-arm64 only (its platforms in "
        "flowenv.toml); it cannot be hydrated on linux-64\n"
    )


@on_linux_64
def test_metaflow_run_follows_env_platforms(tmp_path: Path, indexes: dict[str, str]) -> None:
    from flowenv.config.load import load_config
    from flowenv.errors import UsageError
    from flowenv.metaflow.environment import FlowRun, StepInfo
    from flowenv.spec import build_environments

    root = _project(
        tmp_path / "proj",
        indexes,
        """\
        [base]
        python = "3.11"
        [steps.train]
        platforms = ["linux-64"]
        pypi.packages = { torch = { version = "2.4.1", index = "pytorch-cu121" } }
        [steps.viz]
        platforms = ["osx-arm64"]
        pypi.packages = { torch = "2.4.1" }
        """,
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    config = load_config(root / "flowenv.toml")

    def run(*steps: StepInfo) -> FlowRun:
        return FlowRun(config=config, environments=build_environments(config), steps=steps)

    # The GPU step on the cluster (linux-64), the Mac-only step nowhere here: fine.
    run(StepInfo(name="start"), StepInfo(name="train", decorators=("kubernetes",))).check_fresh()
    # This test machine is linux-64: the osx-arm64-only step cannot run on it.
    with pytest.raises(UsageError) as info:
        run(StepInfo(name="start"), StepInfo(name="viz")).check_fresh()
    assert str(info.value) == (
        "step viz would run locally on linux-64, but its env 'viz' is locked for osx-arm64 "
        f"only (platforms in {root / 'flowenv.toml'}); send the step where its env is locked "
        "(e.g. @kubernetes for linux-64) or add the platform to the env"
    )


def test_import_maps_sys_packages_to_system_requirements(tmp_path: Path) -> None:
    from flowenv.config.load import load_config
    from flowenv.metaflow.flow_import import import_flow
    from flowenv.spec import build_environments

    flow = tmp_path / "gpuflow.py"
    flow.write_text(
        textwrap.dedent(
            """\
            from metaflow import FlowSpec, step, conda, conda_base, sys_packages, sys_packages_base

            @sys_packages_base(packages={"__glibc": "2.28"})
            @conda_base(python="3.11", libraries={"numpy": "1.26.0"})
            class GpuFlow(FlowSpec):
                @step
                def start(self):
                    self.next(self.train)

                @sys_packages(packages={"__cuda": "12.1"})
                @conda(libraries={"pytorch": "2.4.1"})
                @step
                def train(self):
                    self.next(self.end)

                @sys_packages(packages={"__gpu": "1", "__cuda": "twelve"})
                @step
                def end(self):
                    pass
            """
        )
    )
    result = import_flow(flow, tmp_path / "flowenv.toml", force=True)
    assert [(d.line, d.key_path, d.message) for d in result.gaps] == [
        (
            16,
            "steps.end",
            "@sys_packages: '__gpu' is not a virtual package flowenv knows (__cuda, __glibc)",
        ),
        (16, "steps.end", "@sys_packages: '__cuda': 'twelve' is not a version"),
    ]
    assert 'system-requirements = { cuda = "12.1" }' in result.text
    envs = build_environments(load_config(tmp_path / "flowenv.toml"))
    assert envs.get("base").system_on("linux-64").items() == (("glibc", "2.28"),)
    train = envs.get("train")
    assert train.system_on("linux-64").items() == (("cuda", "12.1"), ("glibc", "2.28"))
    assert [c.name for c in train.conda] == ["numpy", "pytorch"]


def test_export_of_an_env_on_a_platform_it_is_not_locked_for(
    tmp_path: Path, indexes: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path / "proj", indexes, TORCH)
    assert main(["-q", "-C", str(root), "lock", "train"]) == 0
    capsys.readouterr()
    assert main(["-C", str(root), "export", "train", "--platform", "osx-arm64"]) == 2
    assert capsys.readouterr().err == (
        "flowenv: error: env 'train' is locked for linux-64 only, not osx-arm64\n"
    )
    assert main(["-C", str(root), "export", "train", "--platform", "linux-64"]) == 0
    assert "torch==2.4.1+cu121" in capsys.readouterr().out


def test_merge_driver_relocks_an_env_for_its_own_platforms(
    tmp_path: Path, indexes: dict[str, str]
) -> None:
    from tests.support.git_repo import commit_all, git, init_repo
    from tests.test_git_drivers import _configure

    root = init_repo(
        _project(
            tmp_path / "proj",
            indexes,
            """\
            [base]
            python = "3.11"

            [steps.train]
            platforms = ["linux-64"]
            [steps.train.pypi.packages]
            torch = { version = "2.4.1", index = "pytorch-cu121" }
            # a separator line, so that the two branches' edits do not touch
            """,
        )
    )
    _configure(root)
    toml = root / "flowenv.toml"

    def change(old: str, new: str, message: str) -> None:
        toml.write_text(toml.read_text().replace(old, new))
        assert main(["-q", "-C", str(root), "lock"]) == 0
        commit_all(root, message)

    assert main(["-q", "-C", str(root), "lock"]) == 0
    commit_all(root, "base")
    git(root, "checkout", "-q", "-b", "topic")
    change("touch\n", 'touch\nfilelock = "3.15.4"\n', "topic: filelock")
    git(root, "checkout", "-q", "main")
    change(
        "[steps.train.pypi.packages]\n", '[steps.train.pypi.packages]\nfastkernel = "1.0"\n', "main"
    )
    git(root, "merge", "--no-edit", "topic")
    lock = root / "locks/train/pylock.linux-64.toml"
    versions = {p.name: p.version for p in read_pylock(lock)}
    assert versions == {
        "fastkernel": "1.0",
        "filelock": "3.15.4",
        **dict.fromkeys(NVIDIA, "12.1.3"),
        "torch": "2.4.1+cu121",
    }
    assert sorted(p.name for p in lock.parent.iterdir()) == ["pylock.linux-64.toml"]
    assert main(["-q", "-C", str(root), "lock", "--check"]) == 0


def test_named_index_credentials_from_uv_environment_variables(
    tmp_path: Path,
    indexes: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A private named index: uv's UV_INDEX_<NAME>_USERNAME/_PASSWORD, nothing in the file."""
    from tests.support.index_server import serve_index

    secret = "s3cret-t0ken"
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    wheels = [build_wheel(spec, tmp_path / "private-wheels") for spec in CPU_INDEX]
    with serve_index(wheels, tmp_path / "served", credentials=("alice", secret)) as url:
        root = _project(
            tmp_path / "proj",
            {**indexes, "cpu": f"{url}/simple"},
            """\
            [base]
            python = "3.11"
            pypi.packages = { torch = { version = "2.4.1", index = "pytorch-cpu" } }
            """,
        )
        assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 3
        assert secret not in capsys.readouterr().err
        monkeypatch.setenv("UV_INDEX_PYTORCH_CPU_USERNAME", "alice")
        monkeypatch.setenv("UV_INDEX_PYTORCH_CPU_PASSWORD", secret)
        assert main(["-q", "-C", str(root), "lock", "-p", "linux-64"]) == 0
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err
    lock = root / "locks/base/pylock.linux-64.toml"
    assert _locked(lock)["torch"] == (
        "2.4.1+cpu",
        f"{url}/files/torch-2.4.1+cpu-py3-none-any.whl",
    )
    assert secret not in lock.read_text()
    assert "alice" not in lock.read_text()


def test_mixed_env_takes_a_pinned_package_from_its_index(
    tmp_path: Path, indexes: dict[str, str], gpu_channel: str
) -> None:
    """The pip part of a conda-lock.yml honours named indexes and target tables too."""
    root = _project(
        tmp_path / "proj",
        indexes,
        f"""\
        [project.conda]
        channels = ["{gpu_channel}"]

        [base]
        python = "3.11"
        conda.packages = {{ numpy = "1.26.0" }}
        pypi.packages = {{ torch = "2.4.1" }}
        [base.target.linux-64]
        pypi.packages = {{ torch = {{ version = "2.4.1", index = "pytorch-cpu" }} }}
        """,
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    lock = read_conda_lock(root / "locks/base/conda-lock.yml")
    pip = {(p.platform, p.name): (p.version, p.url) for p in lock.packages if p.manager == "pip"}
    assert sorted(pip) == [
        ("linux-64", "filelock"),
        ("linux-64", "torch"),
        ("osx-arm64", "filelock"),
        ("osx-arm64", "torch"),
    ]
    assert pip["linux-64", "torch"][0] == "2.4.1+cpu"
    assert "/cpu/wheels/" in pip["linux-64", "torch"][1]
    assert pip["osx-arm64", "torch"][0] == "2.4.1"
    assert "/pypi/wheels/" in pip["osx-arm64", "torch"][1]
    # filelock is on the CPU index too (newer), but only torch is pinned there.
    assert pip["linux-64", "filelock"][0] == "3.15.4"
    assert main(["-q", "-C", str(root), "lock", "--check"]) == 0


GPU_FLOW = """
from metaflow import FlowSpec, step

class GpuFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train)

    @step
    def train(self):
        import torch
        print("TORCH", torch.VERSION)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    GpuFlow()
"""


@on_linux_64
def test_metaflow_runs_a_cuda_step_only_where_its_requirements_hold(
    tmp_path: Path, indexes: dict[str, str]
) -> None:
    pytest.importorskip("metaflow")
    import subprocess
    import sys

    from tests.test_metaflow import metaflow_env

    root = _project(tmp_path / "proj", indexes, TORCH)
    (root / "flow.py").write_text(GPU_FLOW)
    assert main(["-q", "-C", str(root), "lock"]) == 0

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "flow.py", "--environment=flowenv", "--no-pylint", "run"],
            cwd=root,
            env=metaflow_env(tmp_path) | env,
            capture_output=True,
            text=True,
            check=False,
        )

    # Run here, train's CUDA env needs a driver this machine (for the test) does not have.
    refused = run(CONDA_OVERRIDE_CUDA="")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "train · linux-64: this machine does not meet the env's system requirements:\n" in (
        refused.stderr
    )
    assert "  cuda >= 12 required; this machine has none\n" in refused.stderr
    assert "Traceback" not in refused.stderr
    # With a driver that offers CUDA 12.4 the step runs in its +cu121 env.
    ran = run(CONDA_OVERRIDE_CUDA="12.4")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "TORCH 2.4.1+cu121" in ran.stdout + ran.stderr
