"""flowenv.toml keys for real ML stacks: validation messages, merge rules, input hashes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowenv.config import stacks
from flowenv.config.load import load_config
from flowenv.config.models import SystemRequirements
from flowenv.errors import ConfigError
from flowenv.spec import build_environments
from flowenv.system import detect, unmet, uv_environment, uv_target, virtual_package_overrides

BAD = """\
[project]
platforms = ["linux-64", "osx-arm64"]
[project.pypi.indexes]
pytorch-cpu = "https://download.pytorch.org/whl/cpu"
"bad/name" = "https://example.com/simple"

[base]
python = "3.11"
pypi.packages = { torch = { version = "2.4.1", index = "pytorch-cpx" } }
system-requirements = { cuda = "twelve", glibc = "2.12", gpu = "1" }

[base.target.osx-arm46]
pypi.packages = { a = "1" }

[base.target.win-64]
python = "3.10"

[steps.train]
platforms = ["linux-64", "win-64", "linux-46"]
pypi.packages = { torch = { version = "2.4.1", channel = "x" } }
"""


def _errors(tmp_path: Path, text: str) -> list[tuple[int | None, str, str]]:
    path = tmp_path / "flowenv.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [(d.line, d.key_path, d.message) for d in info.value.diagnostics]


def test_every_new_key_error_at_once_with_line_and_key_path(tmp_path: Path) -> None:
    assert _errors(tmp_path, BAD) == [
        (
            5,
            'project.pypi.indexes."bad/name"',
            "an index name may only use letters, digits, '-', '_' and '.'",
        ),
        (
            9,
            "base.pypi.packages.torch.index",
            "no index named 'pytorch-cpx' (did you mean 'pytorch-cpu'?); "
            "declared: bad/name, pytorch-cpu",
        ),
        (
            10,
            "base.system-requirements.gpu",
            "unknown key",
        ),
        (
            10,
            "base.system-requirements.cuda",
            'expected a version like "12" or "2.28", got \'twelve\'',
        ),
        (
            10,
            "base.system-requirements.glibc",
            "expected a glibc version of at least 2.17 (manylinux2014), got '2.12'",
        ),
        (
            12,
            "base.target.osx-arm46",
            "unknown platform 'osx-arm46' (did you mean 'osx-arm64'?); "
            "expected one of linux-64, osx-arm64",
        ),
        (15, "base.target.win-64", "'win-64' is not in project.platforms (linux-64, osx-arm64)"),
        (
            19,
            "steps.train.platforms[1]",
            "'win-64' is not in project.platforms (linux-64, osx-arm64); "
            "an env is locked for a subset of them",
        ),
        (
            19,
            "steps.train.platforms[2]",
            "unknown platform 'linux-46' (did you mean 'linux-64'?)",
        ),
        (20, "steps.train.pypi.packages.torch.channel", "unknown key"),
    ]


def test_python_is_not_a_target_key(tmp_path: Path) -> None:
    text = '[project]\nplatforms = ["linux-64"]\n[base]\npython = "3.11"\n'
    text += '[base.target.linux-64]\npython = "3.10"\n'
    assert _errors(tmp_path, text) == [(6, "base.target.linux-64.python", "unknown key")]


def _envs(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "flowenv.toml"
    path.write_text(
        '[project]\nplatforms = ["linux-64", "osx-arm64"]\n'
        "[project.pypi.indexes]\n"
        'cpu = "https://user:secret@example.com/cpu"\n'
        'cu = "https://example.com/cu"\n' + textwrap.dedent(body)
    )
    return build_environments(load_config(path))


def test_target_tables_layer_in_file_order(tmp_path: Path) -> None:
    envs = _envs(
        tmp_path,
        """\
        [base]
        python = "3.11"
        pypi.packages = { torch = "2.4.1", numpy = "1" }
        system-requirements = { glibc = "2.28" }
        [base.target.linux-64]
        pypi.packages = { torch = { version = "2.4.1", index = "cpu" }, extra = "1" }
        system-requirements = { glibc = "2.34" }

        [steps.plain]
        pypi.packages = { torch = "2.4.0" }

        [steps.gpu]
        platforms = ["linux-64"]
        system-requirements = { cuda = "12" }
        [steps.gpu.target.linux-64]
        pypi.packages = { torch = { version = "2.4.1", index = "cu" } }
        """,
    )
    base = envs.get("base")
    assert [p.requirement() for p in base.pypi_on("osx-arm64")] == ["numpy==1", "torch==2.4.1"]
    assert base.pinned_on("linux-64") == {"torch": "cpu"}
    assert [p.name for p in base.pypi_on("linux-64")] == ["extra", "numpy", "torch"]
    assert base.system_on("linux-64") == SystemRequirements(glibc="2.34")
    assert base.system_on("osx-arm64") == SystemRequirements(glibc="2.28")
    # The step's own plain torch wins over base's linux-only table.
    plain = envs.get("plain")
    assert plain.pinned_on("linux-64") == {}
    assert {p.name: p.specifier for p in plain.pypi_on("linux-64")}["torch"] == "==2.4.0"
    assert "extra" in {p.name for p in plain.pypi_on("linux-64")}
    gpu = envs.get("gpu")
    assert gpu.platforms == ("linux-64",)
    assert gpu.pinned_on("linux-64") == {"torch": "cu"}
    assert gpu.system_on("linux-64") == SystemRequirements(cuda="12", glibc="2.34")
    assert plain.platforms == base.platforms == ("linux-64", "osx-arm64")


def test_input_hash_keys_appear_only_when_used(tmp_path: Path) -> None:
    envs = _envs(
        tmp_path,
        """\
        [base]
        python = "3.11"
        pypi.packages = { numpy = "1" }
        [base.target.linux-64]
        pypi.packages = { torch = { version = "2.4.1", index = "cpu" } }
        system-requirements = { cuda = "12", macos = "14.0" }
        """,
    )
    base = envs.get("base")
    # Unchanged on osx-arm64: an old lock there stays fresh.
    assert set(base.hash_inputs("osx-arm64")) == {
        "version",
        "kind",
        "python",
        "pypi",
        "index-url",
        "extra-index-urls",
        "find-links",
    }
    linux = base.hash_inputs("linux-64")
    assert linux["pinned-indexes"] == {"torch": "cpu"}
    # Credentials never enter the hash; macos means nothing on Linux.
    assert linux["indexes"] == {"cpu": "https://example.com/cpu"}
    assert linux["system-requirements"] == {"cuda": "12"}


def test_system_requirements_to_solver_inputs() -> None:
    req = SystemRequirements(cuda="12.1", glibc="2.34", macos="14.0")
    assert virtual_package_overrides(req, "linux-64") == (("__cuda", "12.1"), ("__glibc", "2.34"))
    assert virtual_package_overrides(req, "osx-arm64") == (("__osx", "14.0"),)
    assert uv_target("linux-64", "x86_64-manylinux_2_28", req) == "x86_64-manylinux_2_34"
    # uv knows no 2.29 target: the newest below it, so no wheel needs more than declared.
    older = SystemRequirements(glibc="2.29")
    assert uv_target("linux-aarch64", "aarch64-manylinux_2_28", older) == "aarch64-manylinux_2_28"
    newest = SystemRequirements(glibc="2.99")
    assert uv_target("linux-64", "x86_64-manylinux_2_28", newest) == "x86_64-manylinux_2_40"
    assert uv_target("osx-arm64", "aarch64-apple-darwin", req) == "aarch64-apple-darwin"
    assert uv_environment("osx-arm64", req) == {"MACOSX_DEPLOYMENT_TARGET": "14.0"}
    assert uv_environment("linux-64", req) == {}


def test_machine_check_compares_versions_and_honours_overrides() -> None:
    offered = detect(["cuda", "glibc"], {"CONDA_OVERRIDE_CUDA": "12.4", "CONDA_OVERRIDE_GLIBC": ""})
    assert offered == {"cuda": "12.4", "glibc": None}
    assert unmet([("cuda", "12"), ("glibc", "2.28")], offered) == [
        "glibc >= 2.28 required; this machine has none"
    ]
    assert unmet([("cuda", "12.5")], offered) == ["cuda >= 12.5 required; this machine has 12.4"]
    # Without an override glibc is detected (this test machine is a glibc Linux).
    assert detect(["glibc"], {})["glibc"] is not None


def test_schema_knows_the_new_keys() -> None:
    import json

    schema = json.loads((Path(__file__).parent.parent / "schemas/flowenv.schema.json").read_text())
    defs = schema["$defs"]
    assert tuple(sorted(defs["systemRequirements"]["properties"])) == tuple(
        sorted(stacks.SYSTEM_KEYS)
    )
    target = defs["target"]["additionalProperties"]["properties"]
    assert tuple(sorted(target)) == tuple(sorted(stacks.TARGET_KEYS))
    table = defs["pypiPackages"]["additionalProperties"]["oneOf"][1]["properties"]
    assert tuple(sorted(table)) == tuple(sorted(stacks.PYPI_PACKAGE_KEYS))


def test_mixed_env_pip_part_picks_the_wheel_the_requirements_allow() -> None:
    """conda-lock holds one file per pip package: the best one for the declared glibc/macOS."""
    from flowenv.lockfiles.pylock import LockedWheel
    from flowenv.resolution.conda import best_wheel

    # File names as PyPI lists them for cryptography 45.0.5.
    names = [
        "cryptography-45.0.5-cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "cryptography-45.0.5-cp311-abi3-manylinux_2_28_x86_64.whl",
        "cryptography-45.0.5-cp311-abi3-manylinux_2_34_x86_64.whl",
        "cryptography-45.0.5-cp311-abi3-macosx_10_9_universal2.whl",
    ]
    wheels = [LockedWheel(name=n, url=f"https://files/{n}", sha256="0" * 64) for n in names]

    def best(platform: str, **requirements: str) -> str:
        chosen = best_wheel(wheels, platform, "3.11", SystemRequirements(**requirements))
        assert chosen is not None
        return chosen.name

    assert best("linux-64") == names[1]
    assert best("linux-64", glibc="2.34") == names[2]
    assert best("linux-64", glibc="2.17") == names[0]
    assert best("osx-arm64", macos="14.0") == names[3]


def test_manifest_records_requirements_and_they_are_part_of_the_env_id() -> None:
    import json

    from flowenv.errors import StoreError
    from flowenv.store.layout import Manifest

    plain = Manifest(
        kind="pypi",
        platform="linux-64",
        python="3.11",
        lock_name="pylock.linux-64.toml",
        artifacts=(),
    )
    gpu = Manifest(
        kind="pypi",
        platform="linux-64",
        python="3.11",
        lock_name="pylock.linux-64.toml",
        artifacts=(),
        requires=(("cuda", "12"),),
    )
    # Same artifacts, other requirements: another env id (one manifest cannot say both).
    assert gpu.env_id != plain.env_id
    assert "requires" not in json.loads(plain.to_json())
    data = json.loads(gpu.to_json())
    assert data["requires"] == {"cuda": "12"}
    assert Manifest.from_json(gpu.to_json(), "m.json", expected_env_id=gpu.env_id) == gpu
    # Dropping the requirement from a stored manifest breaks its env id: refused.
    del data["requires"]
    with pytest.raises(StoreError, match="manifest content does not match its env id"):
        Manifest.from_json(json.dumps(data), "m.json")
    data["requires"] = {"cuda": "12; rm -rf /"}
    with pytest.raises(StoreError, match="requires must map cuda/glibc/macos to versions"):
        Manifest.from_json(json.dumps(data), "m.json")


def test_disabled_base_cannot_hold_packages_in_target_tables(tmp_path: Path) -> None:
    text = '[project]\nplatforms = ["linux-64"]\n[base]\ndisabled = true\npython = "3.11"\n'
    text += 'system-requirements = { glibc = "2.34" }\n'
    text += '[base.target.linux-64]\npypi.packages = { a = "1" }\n'
    assert _errors(tmp_path, text) == [
        (
            4,
            "base.disabled",
            "a disabled base runs in the system environment; it cannot also declare "
            "packages or channels (python stays allowed: steps with packages inherit it)",
        )
    ]
