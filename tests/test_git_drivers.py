"""The textconv and merge driver, through real ``git diff``, ``git merge`` and ``git rebase``."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.lockfiles.pylock import read_pylock
from tests.support.git_repo import FLOWENV, commit_all, git, init_repo
from tests.test_diff_formats import _new_conda

ATTRIBUTES = """\
locks/**/pylock.*.toml diff=flowenv merge=flowenv linguist-generated=true
locks/**/conda-lock.yml diff=flowenv merge=flowenv linguist-generated=true
"""

BASE = """
[base]
python = "3.11"

[base.pypi.packages]
alpha = "1.0"
# a separator line, so that the two branches' edits do not touch
gamma = "1.0"
"""


def _configure(root: Path) -> None:
    (root / ".gitattributes").write_text(ATTRIBUTES)
    git(root, "config", "diff.flowenv.textconv", f"{FLOWENV} git textconv")
    git(root, "config", "merge.flowenv.name", "flowenv: re-lock from the merged flowenv.toml")
    git(root, "config", "merge.flowenv.driver", f"{FLOWENV} git merge-driver %O %A %B %P")


def _lock(root: Path) -> None:
    assert main(["-q", "-C", str(root), "lock"]) == 0


@pytest.fixture
def repo(make_project) -> Path:
    root = init_repo(make_project(BASE))
    _configure(root)
    _lock(root)
    commit_all(root, "base")
    return root


def _edit(root: Path, old: str, new: str) -> None:
    toml = root / "flowenv.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new))


def test_git_diff_shows_name_version_lines(repo) -> None:
    _edit(repo, 'alpha = "1.0"', 'alpha = "2.0"')
    _lock(repo)
    out = git(repo, "diff", "--", "locks/base/pylock.linux-64.toml").stdout
    out = re.sub(r"^index \w+\.\.\w+ \d+$", "index ...", out, flags=re.MULTILINE)
    assert out == textwrap.dedent("""\
        diff --git a/locks/base/pylock.linux-64.toml b/locks/base/pylock.linux-64.toml
        index ...
        --- a/locks/base/pylock.linux-64.toml
        +++ b/locks/base/pylock.linux-64.toml
        @@ -1,2 +1,3 @@
        -alpha 1.0
        +alpha 2.0
        +beta 1.5
         gamma 1.0
        """)


def test_textconv_of_a_conda_lock(tmp_path, capsys) -> None:
    path = tmp_path / "conda-lock.yml"
    path.write_text(_new_conda())
    assert main(["git", "textconv", str(path)]) == 0
    assert capsys.readouterr().out == textwrap.dedent("""\
        # linux-64
        numpy 2.0.1
        openssl 1.1.1v
        python 3.11.9
        requests 2.32.3 (pip)
        scipy 1.13.1
        tzdata 2024a
        # osx-arm64
        numpy 2.0.1
        openssl 1.1.1w
        python 3.11.9
        requests 2.32.3 (pip)
        scipy 1.13.1
        tzdata 2024a
        """)


def _branches(repo: Path) -> None:
    """main raises alpha to 2.0; topic adds epsilon (beta<1.5): both re-lock base."""
    git(repo, "checkout", "-q", "-b", "topic")
    _edit(repo, 'gamma = "1.0"\n', 'gamma = "1.0"\nepsilon = "3.1"\n')
    _lock(repo)
    commit_all(repo, "topic: add epsilon")
    git(repo, "checkout", "-q", "main")
    _edit(repo, 'alpha = "1.0"', 'alpha = "2.0"')
    _lock(repo)
    commit_all(repo, "main: alpha 2.0")


def _assert_relocked(repo: Path) -> None:
    for platform in ("linux-64", "osx-arm64"):
        path = repo / f"locks/base/pylock.{platform}.toml"
        assert "<<<<<<<" not in path.read_text()
        versions = {p.name: p.version for p in read_pylock(path)}
        # alpha 2.0 needs beta>=1.0, epsilon beta<1.5: only the merged inputs give beta 1.0.
        assert versions == {"alpha": "2.0", "beta": "1.0", "epsilon": "3.1", "gamma": "1.0"}
    assert main(["-C", str(repo), "lock", "--check"]) == 0


def test_merge_relocks_from_the_merged_flowenv_toml(repo) -> None:
    _branches(repo)
    result = git(repo, "merge", "--no-edit", "topic")
    assert (
        "flowenv: re-locked locks/base/pylock.linux-64.toml from the merged configuration"
        in result.stderr
    )
    _assert_relocked(repo)
    assert git(repo, "status", "--porcelain").stdout == ""


def test_rebase_relocks_from_the_merged_flowenv_toml(repo) -> None:
    _branches(repo)
    git(repo, "checkout", "-q", "topic")
    git(repo, "rebase", "main")
    _assert_relocked(repo)


def test_conflicting_flowenv_toml_leaves_a_conflict(repo) -> None:
    git(repo, "checkout", "-q", "-b", "topic")
    _edit(repo, 'alpha = "1.0"', 'alpha = ">=1.0"')
    _lock(repo)
    commit_all(repo, "topic: alpha >=1.0")
    git(repo, "checkout", "-q", "main")
    _edit(repo, 'alpha = "1.0"', 'alpha = "2.0"')
    _lock(repo)
    commit_all(repo, "main: alpha 2.0")
    result = git(repo, "merge", "--no-edit", "topic", check=False)
    assert result.returncode == 1
    assert (
        "flowenv: error:\nlocks/base/pylock.linux-64.toml: conflict left for you: "
        "flowenv.toml has conflicting changes too; resolve it first\n"
        "after resolving flowenv.toml, run `flowenv lock` to rewrite this lock\n"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert "CONFLICT (content): Merge conflict in locks/base/pylock.linux-64.toml" in result.stdout
    lock_text = (repo / "locks/base/pylock.linux-64.toml").read_text()
    assert lock_text.count("<<<<<<< ours") == lock_text.count(">>>>>>> theirs") >= 1
    unmerged = git(repo, "diff", "--name-only", "--diff-filter=U").stdout.split()
    assert unmerged == [
        "flowenv.toml",
        "locks/base/pylock.linux-64.toml",
        "locks/base/pylock.osx-arm64.toml",
    ]
