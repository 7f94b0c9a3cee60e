"""Same versions across platforms: the lead platform's pins are every other platform's preference.

linux-64 leads (the first of the project's platforms in flowenv's order). The
index: ``alpha 2.0`` has a wheel for linux-64 only and ``gamma 2.0`` one for
osx-arm64 only; ``alpha 1.0``, ``gamma 1.0`` and ``beta`` are pure Python.
Resolved on its own, each platform would take the newest it can install.
"""

from __future__ import annotations

import json
from pathlib import Path

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.lockfiles.pylock import parse_pylock, read_pylock
from flowenv.resolution import LockOptions
from flowenv.resolution.pypi import lock_pypi_env, preferences
from flowenv.spec import build_environments
from tests.support.wheels import WheelSpec

WHEELS = [
    WheelSpec(name="alpha", version="1.0"),
    WheelSpec(name="alpha", version="2.0", tag="py3-none-manylinux_2_17_x86_64"),
    WheelSpec(name="beta", version="1.0"),
    WheelSpec(name="gamma", version="1.0"),
    WheelSpec(name="gamma", version="2.0", tag="py3-none-macosx_11_0_arm64"),
]
BODY = """
[base]
python = "3.11"
pypi.packages = { alpha = ">=1", beta = ">=1", gamma = ">=1" }
"""
LINUX = {"alpha": "2.0", "beta": "1.0", "gamma": "1.0"}


def _versions(root: Path, platform: str, env: str = "base") -> dict[str, str]:
    return {p.name: p.version for p in read_pylock(root / f"locks/{env}/pylock.{platform}.toml")}


def test_followers_take_the_lead_version_where_they_can(make_project, make_index, capsys) -> None:
    root = make_project(BODY, index=make_index(WHEELS))
    assert main(["-C", str(root), "lock"]) == 0
    assert _versions(root, "linux-64") == LINUX
    # gamma 2.0 installs on osx-arm64, but the lead has 1.0; alpha 2.0 does not install there.
    assert _versions(root, "osx-arm64") == {"alpha": "1.0", "beta": "1.0", "gamma": "1.0"}
    capsys.readouterr()
    assert main(["-C", str(root), "show"]) == 0
    out = capsys.readouterr().out
    assert "    differs  alpha: linux-64 2.0, osx-arm64 1.0\n" in out
    assert "gamma:" not in out
    assert main(["-C", str(root), "show", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["envs"][0]["platform-differences"] == {
        "alpha": {"linux-64": "2.0", "osx-arm64": "1.0"}
    }


def test_a_platform_locked_alone_follows_the_fresh_lead_lock(make_project, make_index) -> None:
    root = make_project(BODY, index=make_index(WHEELS))
    assert main(["-C", str(root), "lock"]) == 0
    mac = root / "locks/base/pylock.osx-arm64.toml"
    before = mac.read_bytes()
    mac.unlink()
    assert main(["-C", str(root), "lock", "-p", "osx-arm64"]) == 0
    assert mac.read_bytes() == before


def test_upgrades_move_the_lead_and_followers_follow(make_project, make_index) -> None:
    root = make_project(BODY, index=make_index(WHEELS))
    assert main(["-C", str(root), "lock"]) == 0
    make_index([WheelSpec(name="beta", version="1.1")])  # published later
    assert main(["-C", str(root), "lock", "-P", "beta"]) == 0
    assert _versions(root, "linux-64") == {**LINUX, "beta": "1.1"}
    assert _versions(root, "osx-arm64") == {"alpha": "1.0", "beta": "1.1", "gamma": "1.0"}
    before = {p: p.read_bytes() for p in (root / "locks").rglob("*.toml")}
    assert main(["-C", str(root), "lock", "-U"]) == 0
    assert {p: p.read_bytes() for p in (root / "locks").rglob("*.toml")} == before


def test_preferences_merge_lead_over_own_and_let_upgrades_move() -> None:
    own = (
        'lock-version = "1.0"\n'
        '[[packages]]\nname = "alpha"\nversion = "0.9"\n'
        '[[packages]]\nname = "Only_Here"\nversion = "3.0"\n'
    )
    lead = 'lock-version = "1.0"\n[[packages]]\nname = "alpha"\nversion = "1.0"\n'
    text, how = preferences(own, lead, LockOptions())
    assert text is not None
    assert how == LockOptions()
    assert [(p.name, p.version) for p in parse_pylock(text)] == [
        ("alpha", "1.0"),
        ("Only_Here", "3.0"),
    ]
    text, _ = preferences(own, lead, LockOptions(upgrade_packages=("only-here",)))
    assert [p.name for p in parse_pylock(text or "")] == ["alpha"]
    text, _ = preferences(own, lead, LockOptions(upgrade=True))
    assert [p.name for p in parse_pylock(text or "")] == ["alpha"]
    # No lead (it failed, or is not locked): the platform keeps its own pins and options.
    assert preferences(own, None, LockOptions(upgrade=True)) == (own, LockOptions(upgrade=True))


def test_constraints_bound_each_platform(make_project, make_index) -> None:
    # The hook a solve group uses to make several envs agree.
    index = make_index([*WHEELS, WheelSpec(name="beta", version="1.1")])
    root = make_project(BODY, index=index)
    config = load_config(root / "flowenv.toml")
    env = build_environments(config).get("base")
    texts = lock_pypi_env(
        config,
        env,
        ("linux-64", "osx-arm64"),
        LockOptions(),
        constraints={"linux-64": ["beta==1.0"], "osx-arm64": ["beta==1.0"]},
    )
    for platform in ("linux-64", "osx-arm64"):
        locked = {p.name: p.version for p in parse_pylock(texts[f"pylock.{platform}.toml"])}
        assert locked["beta"] == "1.0"
