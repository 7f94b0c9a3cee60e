"""PEP 751 files as ``pip lock`` and ``uv export`` write them (tests/data/real/pep751).

Markers (colorama and tzdata only on win32), an ``archive`` entry without a
version (pip's form of a direct URL), sdists beside wheels, an ``index`` key,
and the project itself as a ``directory`` entry: through export, sync's plan,
textconv and diff.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.lockfiles.layout import LockTarget, lock_path
from flowenv.lockfiles.pylock import read_pylock_document
from flowenv.spec import build_environments
from flowenv.store.plan import plan_target
from tests.support.git_repo import commit_all, init_repo
from tests.support.real_data import REAL

PEP751 = REAL / "pep751"
PIP_LOCK = PEP751 / "pip-lock.pylock.toml"
UV_EXPORT = PEP751 / "uv-export.pylock.toml"
UV_WITH_PROJECT = PEP751 / "uv-export-with-project.pylock.toml"
PLATFORMS = ("linux-64", "osx-arm64", "win-64")
EVERYWHERE = {"certifi", "charset-normalizer", "click", "idna", "requests", "urllib3"}


def _project(tmp_path: Path, source: Path | None, fresh: bool = False) -> Path:
    root = tmp_path / "proj"
    (root / "locks" / "base").mkdir(parents=True)
    (root / "flowenv.toml").write_text(
        textwrap.dedent(f"""\
            [project]
            name = "pep751"
            platforms = [{", ".join(f'"{p}"' for p in PLATFORMS)}]

            [base]
            python = "3.11"
            pypi.packages = {{ click = "8.1.7", requests = "2.32.3" }}
            """)
    )
    if source is not None:
        _install(root, source, fresh)
    return root


def _install(root: Path, source: Path, fresh: bool = False) -> None:
    """``source`` as every platform's lock; ``fresh``: with the ``[tool.flowenv]`` table."""
    env = build_environments(load_config(root / "flowenv.toml")).get("base")
    for platform in PLATFORMS:
        text = source.read_text()
        if fresh:
            text += (
                f'\n[tool.flowenv]\nplatform = "{platform}"\npython = "3.11"\n'
                f'input-hash = "{env.input_hash(platform)}"\n'
            )
        (root / "locks" / "base" / f"pylock.{platform}.toml").write_text(text)


def _export(root: Path, capsys: pytest.CaptureFixture[str], platform: str, fmt: str) -> str:
    capsys.readouterr()
    code = main(["-q", "-C", str(root), "export", "base", "-p", platform, "--format", fmt])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _requirements(text: str) -> dict[str, list[str]]:
    """name -> its requirement line and hash lines."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        if line.startswith(" "):
            out[current].append(line.strip(" \\"))
        else:
            current = line.split("==")[0].split(" @ ")[0].strip(" \\")
            out[current] = [line.strip(" \\")]
    return out


@pytest.mark.parametrize("platform", PLATFORMS)
def test_uv_export_markers_decide_what_is_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], platform: str
) -> None:
    root = _project(tmp_path, UV_EXPORT)
    requirements = _requirements(_export(root, capsys, platform, "requirements"))
    windows = {"colorama", "tzdata"} if platform == "win-64" else set()
    assert set(requirements) == EVERYWHERE | windows
    # Every file uv locked (sdist and each wheel) is an acceptable hash.
    lock = read_pylock_document(UV_EXPORT)
    charset = next(p for p in lock.packages if p.name == "charset-normalizer")
    assert len(requirements["charset-normalizer"]) == 1 + len(charset.files)
    environment = _export(root, capsys, platform, "environment-yml")
    assert ("colorama==0.4.6" in environment) == (platform == "win-64")


def test_pip_lock_archive_entry_is_a_direct_reference_with_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, PIP_LOCK)
    requirements = _requirements(_export(root, capsys, "linux-64", "requirements"))
    assert set(requirements) == EVERYWHERE
    assert requirements["idna"] == [
        "idna @ https://files.pythonhosted.org/packages/e5/3e/"
        "741d8c82801c347547f8a2a06aa57dbb1992be9e948df2ea0eda2c8b79e8/idna-3.7-py3-none-any.whl",
        "--hash=sha256:82fee1fc78add43492d3a1898bfa6d8a904cc97d8427f683ed8e798d07761aa0",
    ]


def test_sync_plans_only_what_installs_on_the_platform(tmp_path: Path) -> None:
    root = _project(tmp_path, UV_EXPORT, fresh=True)
    config = load_config(root / "flowenv.toml")
    env = build_environments(config).get("base")
    names = {}
    for platform in PLATFORMS:
        target = LockTarget(env, platform, lock_path(config.lock_root, env, platform))
        plan = plan_target(target)
        names[platform] = {a.name for a in plan.manifest.artifacts}
    assert names["linux-64"] == names["osx-arm64"] == EVERYWHERE
    assert names["win-64"] == EVERYWHERE | {"colorama", "tzdata"}

    # pip's archive entry is a wheel: it is deployed like any other.
    _install(root, PIP_LOCK, fresh=True)
    target = LockTarget(env, "linux-64", lock_path(config.lock_root, env, "linux-64"))
    artifacts = {a.name: a.filename for a in plan_target(target).manifest.artifacts}
    assert artifacts["idna"] == "idna-3.7-py3-none-any.whl"


def test_a_directory_entry_cannot_be_deployed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, UV_WITH_PROJECT, fresh=True)
    capsys.readouterr()
    assert main(["-C", str(root), "sync"]) == 2
    err = capsys.readouterr().err
    assert "packages[4] (demo) is a local directory (.): it cannot be deployed" in err
    # Exported, it stays a path pip can install from.
    requirements = _requirements(_export(root, capsys, "linux-64", "requirements"))
    assert requirements["."] == ["."]


@pytest.mark.parametrize("source", [PIP_LOCK, UV_EXPORT, UV_WITH_PROJECT], ids=lambda p: p.stem)
def test_textconv(capsys: pytest.CaptureFixture[str], source: Path) -> None:
    capsys.readouterr()
    assert main(["git", "textconv", str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    lock = read_pylock_document(source)
    assert lines == sorted(f"{p.name} {p.version}" for p in lock.packages)


def test_diff_pip_lock_to_uv_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same wheels named through an index (uv) or by URL only (pip) are no change."""
    root = _project(tmp_path, PIP_LOCK)
    init_repo(root)
    commit_all(root, "pip lock")
    _install(root, UV_EXPORT)
    capsys.readouterr()
    assert main(["-C", str(root), "diff", "--format", "json", "base"]) == 0
    changes = {
        (platform["platform"], change["package"], change["change"])
        for env in json.loads(capsys.readouterr().out)["envs"]
        for platform in env["platforms"]
        for change in platform["changes"]
    }
    expected = set()
    for platform in PLATFORMS:
        # pip's archive entry has no version: any version is news.
        expected |= {(platform, "idna", "upgraded"), (platform, "colorama", "added")}
        expected |= {(platform, "tzdata", "added")}
    assert changes == expected


def test_unchanged_copy_diffs_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, UV_EXPORT)
    init_repo(root)
    commit_all(root, "uv export")
    shutil.copy(UV_WITH_PROJECT, root / "locks" / "base" / "pylock.linux-64.toml")
    capsys.readouterr()
    assert main(["-C", str(root), "diff", "--format", "json", "base"]) == 0
    (env,) = json.loads(capsys.readouterr().out)["envs"]
    assert [
        (p["platform"], [c["package"] for c in p["changes"]]) for p in env["platforms"]
    ] == [("linux-64", ["demo"])]


def test_environments_excluding_the_platform_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    python = 'requires-python = ">=3.11"'
    text = UV_EXPORT.read_text().replace(
        python, f"{python}\nenvironments = [\"sys_platform == 'win32'\"]"
    )
    windows_only = tmp_path / "windows.pylock.toml"
    windows_only.write_text(text)
    root = _project(tmp_path, windows_only)
    assert _export(root, capsys, "win-64", "requirements")
    capsys.readouterr()
    code = main(["-C", str(root), "export", "base", "-p", "linux-64"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.endswith(
        "pylock.linux-64.toml: environments: the lock is not for linux-64 with Python 3.11 "
        "(sys_platform == 'win32')\n"
    )
