"""``flowenv diff`` on real git repositories with locks made by real uv from a local index."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowenv.cli import main
from tests.support.git_repo import commit_all, git, git_env, init_repo
from tests.support.wheels import WheelSpec

WHEELS = (
    WheelSpec(name="numpy", version="1.26.4"),
    WheelSpec(name="numpy", version="2.0.1"),
    WheelSpec(name="scipy", version="1.13.1"),
    WheelSpec(name="pandas", version="2.2.2"),
)

V1 = """
[base]
python = "3.11"

[steps.train]
pypi.packages = { numpy = "1.26.4", pandas = "2.2.2" }
"""

V2 = """
[base]
python = "3.11"

[steps.train]
pypi.packages = { numpy = "2.0.1", scipy = "1.13.1" }

[envs.gpu]
pypi.packages = { numpy = "1.26.4" }

[steps.finetune]
env = "gpu"
"""


@pytest.fixture
def project(make_project, make_index):
    """A git repo: commit 1 locks V1; the work tree holds V2, locked but not committed."""
    index = make_index(WHEELS)

    def write(body: str, project_extra: str = "") -> Path:
        return make_project(body, project_extra=project_extra, index=index)

    root = init_repo(write(V1))
    assert main(["-q", "-C", str(root), "lock"]) == 0
    commit_all(root, "v1")
    write(V2)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    return root, write, index


def _diff(root: Path, capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["-C", str(root), "diff", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


TRAIN_SUMMARY = (
    "<summary><b>train</b> · linux-64, osx-arm64: "
    "numpy 1.26.4 → 2.0.1, - pandas 2.2.2, + scipy 1.13.1</summary>"
)

TEXT_V1_V2 = """\
gpu · linux-64, osx-arm64 (new environment)
  + numpy            1.26.4
train · linux-64, osx-arm64
  ↑ numpy   1.26.4 → 2.0.1
  - pandas  2.2.2
  + scipy            1.13.1
"""


def test_text_reports_bump_add_remove_and_new_env(project, capsys) -> None:
    root, _, _ = project
    assert _diff(root, capsys) == (0, TEXT_V1_V2)


def test_markdown_has_one_collapsible_section_per_env(project, capsys) -> None:
    root, _, _ = project
    assert _diff(root, capsys, "--format", "markdown") == (
        0,
        textwrap.dedent(f"""\
        ### flowenv lock changes (`HEAD` → working tree)

        <details>
        <summary><b>gpu</b> · linux-64, osx-arm64: new environment</summary>

        **linux-64, osx-arm64** (new environment)

        | | package | before | after |
        |:-:|:--|:--|:--|
        | + | numpy | | 1.26.4 |

        </details>

        <details>
        {TRAIN_SUMMARY}

        **linux-64, osx-arm64**

        | | package | before | after |
        |:-:|:--|:--|:--|
        | ↑ | numpy | 1.26.4 | 2.0.1 |
        | - | pandas | 2.2.2 | |
        | + | scipy | | 1.13.1 |

        </details>
        """),
    )


def test_json_is_complete_and_stable(project, capsys) -> None:
    root, _, index = project
    wheels = index.parent.parent / "index-wheels"

    def entry(name: str, version: str) -> dict[str, object]:
        wheel = wheels / f"{name}-{version}-py3-none-any.whl"
        return {
            "version": version,
            "source": wheels.as_uri(),
            "manager": "pip",
            "hashes": [f"sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"],
        }

    train = [
        {
            "package": "numpy",
            "change": "upgraded",
            "old": entry("numpy", "1.26.4"),
            "new": entry("numpy", "2.0.1"),
        },
        {"package": "pandas", "change": "removed", "old": entry("pandas", "2.2.2"), "new": None},
        {"package": "scipy", "change": "added", "old": None, "new": entry("scipy", "1.13.1")},
    ]
    gpu = [{"package": "numpy", "change": "added", "old": None, "new": entry("numpy", "1.26.4")}]
    expected = {
        "format": 1,
        "old": "HEAD",
        "new": "working tree",
        "counts": {
            "upgraded": 2,
            "downgraded": 0,
            "changed": 0,
            "added": 4,
            "removed": 2,
            "source": 0,
            "hash": 0,
        },
        "envs": [
            {
                "env": "gpu",
                "status": "added",
                "platforms": [
                    {"platform": p, "status": "added", "changes": gpu}
                    for p in ("linux-64", "osx-arm64")
                ],
                "platform-differences": {},
            },
            {
                "env": "train",
                "status": "changed",
                "platforms": [
                    {"platform": p, "status": "changed", "changes": train}
                    for p in ("linux-64", "osx-arm64")
                ],
                "platform-differences": {},
            },
        ],
    }
    code, out = _diff(root, capsys, "--format", "json")
    assert code == 0
    assert json.loads(out) == expected
    assert out == json.dumps(expected, indent=2, sort_keys=True) + "\n"


def test_two_revisions_env_filter_platform_added_env_removed(project, capsys) -> None:
    root, write, _ = project
    commit_all(root, "v2")
    # v3: train as in v2, the gpu env gone, a third platform.
    write(V1.replace('numpy = "1.26.4", pandas = "2.2.2"', 'numpy = "2.0.1", scipy = "1.13.1"'))
    toml = root / "flowenv.toml"
    toml.write_text(
        toml.read_text().replace(
            'platforms = ["linux-64", "osx-arm64"]',
            'platforms = ["linux-64", "osx-arm64", "win-64"]',
        )
    )
    for stale in (root / "locks/gpu").iterdir():
        stale.unlink()
    assert main(["-q", "-C", str(root), "lock"]) == 0
    commit_all(root, "v3: win-64, no gpu")
    assert _diff(root, capsys, "HEAD~1", "HEAD") == (
        0,
        textwrap.dedent("""\
        base · win-64 (new platform)
        gpu · linux-64, osx-arm64 (environment removed, 1 package)
        train · win-64 (new platform)
          + numpy  2.0.1
          + scipy  1.13.1
        """),
    )
    assert _diff(root, capsys, "HEAD~2", "HEAD~1", "train") == (
        0,
        textwrap.dedent("""\
        train · linux-64, osx-arm64
          ↑ numpy   1.26.4 → 2.0.1
          - pandas  2.2.2
          + scipy            1.13.1
        """),
    )
    # One revision: against the work tree, which is clean now.
    assert _diff(root, capsys, "HEAD") == (0, "no lock changes (HEAD → working tree)\n")


def test_exit_code_only_when_there_are_changes(project, capsys) -> None:
    root, _, _ = project
    assert _diff(root, capsys, "--exit-code")[0] == 1
    commit_all(root, "v2")
    assert _diff(root, capsys, "--exit-code") == (0, "no lock changes (HEAD → working tree)\n")
    assert _diff(root, capsys, "--format", "markdown") == (
        0,
        ("### flowenv lock changes (`HEAD` → working tree)\n\nNo lock changes.\n"),
    )


def test_unknown_revision_or_env_is_a_usage_error(project, capsys) -> None:
    root, _, _ = project
    assert _diff(root, capsys, "HEAD", "nope") == (
        2,
        (
            "flowenv: error: no revision or environment named 'nope' "
            "(environments with locks: base, gpu, train)\n"
        ),
    )


def test_outside_a_git_repository(make_project, capsys) -> None:
    root = make_project(V1)
    assert _diff(root, capsys) == (2, f"flowenv: error: {root} is not inside a git repository\n")


def _run_on_tty(root: Path, env: dict[str, str]) -> str:
    """Run ``flowenv diff`` with its stdout on a real pseudo-terminal; what it printed."""
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "flowenv", "-C", str(root), "diff"],
        stdout=terminal,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        errors = process.stderr.read() if process.stderr else b""
        assert process.wait() == 0, errors
    os.close(controller)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_colour_on_a_terminal_unless_no_color(project) -> None:
    root, _, _ = project
    env = {k: v for k, v in git_env().items() if k != "NO_COLOR"}
    coloured = _run_on_tty(root, env)
    assert coloured.splitlines()[2:5] == [
        "\x1b[1mtrain · linux-64, osx-arm64\x1b[0m",
        "  \x1b[36m↑ numpy   1.26.4 → 2.0.1\x1b[0m",
        "  \x1b[31m- pandas  2.2.2\x1b[0m",
    ]
    assert _run_on_tty(root, {**env, "NO_COLOR": "1"}) == TEXT_V1_V2


def test_lock_dir_is_read_at_each_revision(project, capsys) -> None:
    root, _, _ = project
    commit_all(root, "v2")
    git(root, "mv", "locks", "lockfiles")
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace("[project]\n", '[project]\nlock-dir = "lockfiles"\n'))
    assert _diff(root, capsys) == (0, "no lock changes (HEAD → working tree)\n")
