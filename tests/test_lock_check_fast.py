"""``lock --check``'s fast path: it answers "fresh" only when the full path would, never stale.

Each test locks a real project with real uv, then changes one thing and asks
both paths: :func:`fast_lock_check` (None = "ask the full path") and the full
command (``main``), which must agree with what the change means.

A lock's stat proves nothing in the seconds after it changed (one timestamp
tick); :func:`test_a_just_written_lock_is_not_trusted_by_its_stat` keeps that
guard and the other tests set it to zero instead of sleeping.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.cli.fastpath import fast_lock_check
from flowenv.config.load import load_config
from flowenv.lock import lock
from flowenv.lockfiles import freshness, reading
from flowenv.lockfiles.freshness import known_fresh, known_headers, record_path
from flowenv.lockfiles.pylock import read_pylock
from flowenv.spec import build_environments

BODY = """
[base]
python = "3.11"
pypi.packages = { alpha = "1.0" }

[steps.train]
pypi.packages = { beta = ">=1" }
"""


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freshness, "_RACY_NS", 0)


@pytest.fixture
def locked(make_project, capsys, no_racy_window) -> Path:
    """A locked project after one full ``lock --check`` (which reads every pylock whole)."""
    root = make_project(BODY)
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "lock", "--check"]) == 0
    capsys.readouterr()
    return root


def _fast(root: Path) -> int | None:
    return fast_lock_check(["-q", "-C", str(root), "lock", "--check"])


def _full(root: Path) -> int:
    return main(["-q", "-C", str(root), "lock", "--check"])


def test_a_full_check_leaves_a_record_the_fast_path_trusts(locked: Path, capsys) -> None:
    assert record_path(locked / "flowenv.toml").is_file()
    assert fast_lock_check(["-C", str(locked), "lock", "--check"]) == 0
    assert capsys.readouterr().out == "all locks are fresh\n"
    assert _fast(locked) == 0
    assert capsys.readouterr().out == ""


def test_a_lock_run_answers_for_the_hook_but_not_for_a_check(
    make_project, capsys, no_racy_window
) -> None:
    # A lock does not read fresh pylocks whole, so its record cannot stand for a check.
    root = make_project(BODY)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert fast_lock_check(["-C", str(root), "git", "lock-hook"]) == 0
    assert _fast(root) is None
    assert _full(root) == 0
    assert _fast(root) == 0


def test_a_just_written_lock_is_not_trusted_by_its_stat(make_project, capsys) -> None:
    root = make_project(BODY)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert _full(root) == 0
    # Written a moment ago: an edit within the same timestamp tick could keep its stat.
    record = json.loads(record_path(root / "flowenv.toml").read_text())
    assert record["locks"]
    assert [stat for stat in record["locks"].values() if stat is not None] == []
    assert _fast(root) is None
    assert _full(root) == 0


def test_editing_flowenv_toml_takes_the_full_path(locked: Path, capsys) -> None:
    toml = locked / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = "1.0"', 'alpha = "2.0"'))
    assert _fast(locked) is None
    assert _full(locked) == 1
    assert "base · linux-64: stale" in capsys.readouterr().err
    # A failed check drops the record: nothing can make the fast path trust it again.
    assert not record_path(toml).exists()
    assert _fast(locked) is None


def test_a_damaged_lock_body_takes_the_full_path(locked: Path, capsys) -> None:
    # The header (input hash) still matches: only the full check's whole read sees it.
    lock = locked / "locks/train/pylock.linux-64.toml"
    lock.write_text(lock.read_text().replace("[[packages]]", "[[packages]]\nname = 1", 1))
    assert _fast(locked) is None
    assert _full(locked) == 2
    assert "pylock.linux-64.toml" in capsys.readouterr().err


def test_an_edit_that_changes_no_input_hash_is_rechecked_and_recorded_again(
    locked: Path, capsys
) -> None:
    toml = locked / "flowenv.toml"
    toml.write_text(toml.read_text() + "\n# a comment changes bytes, not inputs\n")
    assert _fast(locked) is None
    assert _full(locked) == 0
    assert _fast(locked) == 0


def test_editing_a_lock_header_takes_the_full_path(locked: Path, capsys) -> None:
    lock = locked / "locks/train/pylock.osx-arm64.toml"
    text = lock.read_text()
    old = text.split('input-hash = "', 1)[1][:64]
    lock.write_text(text.replace(old, "0" * 64))
    assert _fast(locked) is None
    assert _full(locked) == 1
    assert "train · osx-arm64: stale" in capsys.readouterr().err


def test_deleting_a_lock_takes_the_full_path(locked: Path, capsys) -> None:
    (locked / "locks/base/pylock.linux-64.toml").unlink()
    assert _fast(locked) is None
    assert _full(locked) == 1
    assert "base · linux-64: missing" in capsys.readouterr().err


def test_an_obsolete_lock_takes_the_full_path(locked: Path, capsys) -> None:
    old = locked / "locks/gone/pylock.linux-64.toml"
    old.parent.mkdir()
    old.write_text((locked / "locks/base/pylock.linux-64.toml").read_text())
    assert _fast(locked) is None
    assert _full(locked) == 1
    assert "locks/gone/pylock.linux-64.toml: obsolete" in capsys.readouterr().err


def test_unrelated_files_and_a_touched_config_keep_the_fast_answer(locked: Path) -> None:
    (locked / "locks/base/README.md").write_text("reviewers: see the diff\n")
    (locked / "notes.txt").write_text("unrelated\n")
    os.utime(locked / "flowenv.toml", ns=(1_000_000_000, 1_000_000_000))
    assert _fast(locked) == 0
    assert _full(locked) == 0


def test_a_touched_lock_is_checked_again(locked: Path) -> None:
    # Unchanged content, but its stat no longer proves it: the full path decides once.
    os.utime(locked / "locks/base/pylock.linux-64.toml", ns=(1_000_000_000, 1_000_000_000))
    assert _fast(locked) is None
    assert _full(locked) == 0
    assert _fast(locked) == 0


def test_a_record_of_another_flowenv_or_host_is_not_trusted(locked: Path) -> None:
    path = record_path(locked / "flowenv.toml")
    record = json.loads(path.read_text())
    for key in ("code", "host"):
        path.write_text(json.dumps({**record, key: "something else"}))
        assert not known_fresh(locked / "flowenv.toml")
    # A record of another shape (an older flowenv's, a damaged one) is never an error.
    for odd in (
        {k: v for k, v in record.items() if k != "validated"},
        {**record, "locks": list(record["locks"])},
        {**record, "inputs": None},
        [record],
    ):
        path.write_text(json.dumps(odd))
        for quiet_lock in (True, False):
            assert not known_fresh(locked / "flowenv.toml", validated=quiet_lock)
    path.write_text("{not json")
    assert _fast(locked) is None
    assert _full(locked) == 0
    assert _fast(locked) == 0


def test_the_lock_hook_and_a_quiet_lock_answer_fast_only_when_fresh(locked: Path, capsys) -> None:
    for argv in (["git", "lock-hook"], ["-q", "lock"]):
        assert fast_lock_check(["-C", str(locked), *argv]) == 0
    assert capsys.readouterr().out == ""
    toml = locked / "flowenv.toml"
    toml.write_text(toml.read_text().replace('beta = ">=1"', 'beta = "1.0"'))
    assert fast_lock_check(["-C", str(locked), "git", "lock-hook"]) is None
    # The full hook re-locks (and fails the commit, as a formatter does), then records.
    assert main(["-C", str(locked), "git", "lock-hook"]) == 1
    assert "locks/train/pylock.linux-64.toml" in capsys.readouterr().err
    assert fast_lock_check(["-C", str(locked), "git", "lock-hook"]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["lock"],
        ["lock", "--check", "base"],
        ["lock", "--check", "-p", "linux-64"],
        ["-q", "lock", "--upgrade"],
        ["-q", "lock", "-P", "beta"],
        ["-q", "lock", "base"],
        ["-v", "lock", "--check"],
        ["show"],
        ["lock", "--check", "--check"],
    ],
)
def test_other_command_lines_take_the_full_path(locked: Path, argv: list[str]) -> None:
    assert fast_lock_check(["-C", str(locked), *argv]) is None


def test_global_options_are_read_as_argparse_reads_them(locked: Path, monkeypatch) -> None:
    monkeypatch.chdir(locked.parent)
    name = locked.name
    assert fast_lock_check(["-q", f"-C{name}", "lock", "--check"]) == 0
    assert fast_lock_check(["-q", "-c", f"{name}/flowenv.toml", "lock", "--check"]) == 0
    assert fast_lock_check(["-q", f"--config={name}/flowenv.toml", "lock", "--check"]) == 0
    assert fast_lock_check(["-q", "--config", "missing.toml", "lock", "--check"]) is None


def test_the_fast_path_imports_nothing_heavy(make_project, capsys) -> None:
    # A new process with the real racy window: the locks must be older than it.
    root = make_project(BODY)
    assert main(["-q", "-C", str(root), "lock"]) == 0
    time.sleep(freshness._RACY_NS / 1e9 + 0.1)
    # The record names flowenv's code as it is now, not as it was when this
    # process first looked (a worktree edited during a long run differs).
    freshness._CODE_SIGNATURE.clear()
    assert _full(root) == 0
    probe = (
        "import sys\n"
        "from flowenv.cli import main\n"
        f"assert main(['-q', '-C', {str(root)!r}, 'lock', '--check']) == 0\n"
        "heavy = {'attr', 'attrs', 'cattrs', 'argparse', 'typing', 'flowenv.errors',\n"
        "         'pathlib', '_hashlib', 'uv', 'rattler', 'fsspec'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout == "[]\n"


def test_a_conda_lock_is_checked_per_platform(
    make_project, conda_channels, capsys, no_racy_window
) -> None:
    # One conda-lock.yml holds a hash per platform: the record expects every one.
    root = make_project(
        '[base]\npython = "3.11"\nconda.packages = { joblib = "*" }\n',
        project_extra=f"conda.channels = [{conda_channels.main_url!r}]\n",
    )
    assert main(["-C", str(root), "lock"]) == 0
    assert _full(root) == 0
    assert _fast(root) == 0
    lock = root / "locks/base/conda-lock.yml"
    text = lock.read_text()
    edited = re.sub(r"^\s+flowenv-input-hash-osx-arm64:.*\n", "", text, flags=re.MULTILINE)
    assert edited != text
    lock.write_text(edited)
    assert _fast(root) is None
    assert _full(root) == 1
    assert "base · osx-arm64: stale" in capsys.readouterr().err


# -- a lock after an edit: the record stands in for the headers it vouches for --------------


def _statuses(root: Path) -> dict[str, str]:
    """``lock`` of the whole project through the library: label -> status."""
    results = lock(load_config(root / "flowenv.toml"))
    return {result.target.label: result.status for result in results}


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The lock files read whole from now on (every lock freshness read goes through here)."""
    seen: list[str] = []
    original = reading.read_lock_file

    def spy(path: Path) -> str:
        seen.append(f"{path.parent.name}/{path.name}")
        return original(path)

    monkeypatch.setattr(reading, "read_lock_file", spy)
    return seen


def test_a_relock_after_an_edit_reads_no_lock_the_record_vouches_for(
    locked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = locked / "flowenv.toml"
    toml.write_text(toml.read_text().replace('beta = ">=1"', 'beta = "1.0"'))
    assert set(known_headers(toml, locked / "locks")) == {
        "base/pylock.linux-64.toml",
        "base/pylock.osx-arm64.toml",
        "train/pylock.linux-64.toml",
        "train/pylock.osx-arm64.toml",
    }
    reads = _reads(monkeypatch)
    assert _statuses(locked) == {
        "base · linux-64": "fresh",
        "base · osx-arm64": "fresh",
        "train · linux-64": "written",
        "train · osx-arm64": "written",
    }
    assert reads == []
    packages = read_pylock(locked / "locks/train/pylock.linux-64.toml")
    assert {p.name: p.version for p in packages}["beta"] == "1.0"


def test_a_lock_changed_behind_the_record_is_read_and_never_called_fresh(
    locked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same size, mtime put back: only ctime tells, and that is enough to read it again.
    lock_file = locked / "locks/base/pylock.linux-64.toml"
    before = lock_file.stat()
    text = lock_file.read_text()
    recorded = text.split('input-hash = "', 1)[1][:64]
    lock_file.write_text(text.replace(recorded, "0" * 64))
    os.utime(lock_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert lock_file.stat().st_size == before.st_size
    toml = locked / "flowenv.toml"
    assert "base/pylock.linux-64.toml" not in known_headers(toml, locked / "locks")
    # A lock replaced by a copy of itself (new inode) is read again too, and found fresh.
    other = locked / "locks/base/pylock.osx-arm64.toml"
    copy = other.with_suffix(".tmp")
    copy.write_bytes(other.read_bytes())
    os.replace(copy, other)
    reads = _reads(monkeypatch)
    statuses = _statuses(locked)
    assert statuses["base · linux-64"] == "written"
    assert statuses["base · osx-arm64"] == "fresh"
    assert sorted(reads) == ["base/pylock.linux-64.toml", "base/pylock.osx-arm64.toml"]
    assert recorded in lock_file.read_text()


def test_only_a_sound_record_of_this_flowenv_vouches_for_a_lock(locked: Path) -> None:
    toml = locked / "flowenv.toml"
    path = record_path(toml)
    record = json.loads(path.read_text())
    assert len(known_headers(toml, locked / "locks")) == 4
    name = "base/pylock.linux-64.toml"
    odd_records = [
        {**record, "code": "another flowenv"},
        {**record, "lock-root": "/elsewhere"},
        {**record, "format": 2},
        {**record, "hashes": None},
        {**record, "hashes": {**record["hashes"], name: "not a table"}},
        {**record, "hashes": {**record["hashes"], name: {"linux-64": 1}}},
        {**record, "locks": {**record["locks"], name: [1, 2, "3", 4, 5]}},
        {**record, "locks": {**record["locks"], name: None}},
    ]
    for odd in odd_records:
        path.write_text(json.dumps(odd))
        found = known_headers(toml, locked / "locks")
        assert name not in found, odd
        # The fast check never answers from a record it cannot read either, nor raises.
        assert not known_fresh(toml)
    path.write_text("[]")
    assert known_headers(toml, locked / "locks") == {}
    # Whatever the record was, a lock decides the same as with none.
    assert set(_statuses(locked).values()) == {"fresh"}


def test_the_record_keeps_each_locks_header_hashes(locked: Path) -> None:
    toml = locked / "flowenv.toml"
    record = json.loads(record_path(toml).read_text())
    environments = build_environments(load_config(toml))
    for env in ("base", "train"):
        for platform in ("linux-64", "osx-arm64"):
            name = f"{env}/pylock.{platform}.toml"
            text = (locked / "locks" / name).read_text()
            assert record["hashes"][name] == {platform: environments.get(env).input_hash(platform)}
            assert f'input-hash = "{record["hashes"][name][platform]}"' in text
