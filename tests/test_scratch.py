"""flowenv._scratch: uv's scratch directories, removed now or by the end of a scope."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import pytest

import flowenv._scratch as scratch_module
from flowenv._scratch import remove, removed_later
from flowenv.cli import main
from tests.support.wheels import DEFAULT_WHEELS


def _scratch(parent: Path, name: str) -> Path:
    directory = parent / name
    (directory / "sub").mkdir(parents=True)
    (directory / "pylock.toml").write_text("x")
    (directory / "sub" / "f").write_text("y")
    return directory


def test_outside_a_scope_a_directory_is_removed_at_once(tmp_path: Path) -> None:
    directory = _scratch(tmp_path, "a")
    remove(str(directory))
    assert not directory.exists()
    with pytest.raises(FileNotFoundError):  # as shutil.rmtree says it
        remove(str(directory))


def test_within_a_scope_the_caller_goes_on_while_the_directory_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = threading.Event()
    waited: list[bool] = []
    rmtree = shutil.rmtree

    def held(path: str, ignore_errors: bool = False) -> None:
        waited.append(released.wait(timeout=60))  # False only if remove() waited for us
        rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(scratch_module.shutil, "rmtree", held)
    directory = _scratch(tmp_path, "a")
    with removed_later():
        remove(str(directory))
        assert directory.exists()  # its removal waits for this caller, which went on
        released.set()
    assert waited == [True]
    assert not directory.exists()


def test_a_scope_ends_only_when_every_removal_it_started_is_done(tmp_path: Path) -> None:
    directories = [_scratch(tmp_path, str(i)) for i in range(8)]
    with removed_later():
        with removed_later():  # an inner scope: its removals are the outer one's
            for directory in directories[:4]:
                remove(str(directory))
        for directory in directories[4:]:
            remove(str(directory))
        remove(str(tmp_path / "missing"))  # in the background, an error is not raised
    assert not [d for d in directories if d.exists()]
    # The scope is closed: removal is immediate again.
    last = _scratch(tmp_path, "last")
    remove(str(last))
    assert not last.exists()


def test_a_lock_leaves_no_scratch_directory_of_uv_behind(
    make_project, make_index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    root = make_project(
        '[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n',
        index=make_index(DEFAULT_WHEELS),
    )
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert (root / "locks/base/pylock.linux-64.toml").is_file()
    assert not [p for p in scratch.iterdir() if p.name.startswith("flowenv-uv-")]
    # A re-lock after an edit: uv's output is renamed over the previous lock there.
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"1.0"', '">=1.0"'))
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert not [p for p in scratch.iterdir() if p.name.startswith("flowenv-uv-")]
