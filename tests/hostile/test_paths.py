"""Paths and permissions: where flowenv writes and deletes, and with which mode.

Real locks (uv against the test index), a real local store; no mocks. The
tests run as root in some sandboxes, where a read-only directory is still
writable: "cannot write" is produced by a file standing where a directory must
be, which fails for every user; the chmod variants run only for non-root.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowenv.lock import LEFTOVER_AGE_SECONDS
from flowenv.store import store_url_for
from tests.support.cli_runner import CONFIG_COMMANDS, Outcome
from tests.support.unprivileged import IS_ROOT, run_as_nobody

BASE = """\
[base]
python = "3.11"
pypi.packages = { alpha = "1.0" }
"""
FOREIGN_LOCK = 'lock-version = "1.0"\ncreated-by = "someone"\n\n[[packages]]\nname = "x"\n'


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _flowenv_lock(root: Path, env: str = "base") -> Path:
    return root / "locks" / env / "pylock.linux-64.toml"


# -- lock-dir confinement ------------------------------------------------------------------
ESCAPES = {
    "parent": "../shared",
    "many parents": "../" * 30 + "etc/flowenv-locks",
    "absolute": "/tmp/flowenv-absolute-locks",
    "inside then out": "locks/../../shared",
    "windows drive": "C:/locks",
}


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("lock_dir", ESCAPES.values(), ids=list(ESCAPES))
def test_lock_dir_outside_the_project_is_refused(
    make_project: Callable[..., Path],
    run_cli: Callable[..., Outcome],
    tmp_path: Path,
    command: tuple[str, ...],
    lock_dir: str,
) -> None:
    other = tmp_path / "shared" / "otherproj" / "pylock.linux-64.toml"
    other.parent.mkdir(parents=True)
    other.write_text('[tool.flowenv]\ninput-hash = "' + "0" * 64 + '"\n')
    root = make_project(BASE, project_extra=f'lock-dir = "{lock_dir}"\n')
    outcome = run_cli("-C", root, *command)
    assert outcome.code == 2, outcome
    assert "project.lock-dir:" in outcome.err
    assert "Traceback" not in outcome.err
    assert other.read_text().startswith("[tool.flowenv]")
    assert not Path("/tmp/flowenv-absolute-locks").exists()


@pytest.mark.parametrize("command", [("lock",), ("lock", "--check"), ("show",)], ids=" ".join)
def test_lock_dir_through_a_symlink_out_of_the_project_is_refused(
    make_project: Callable[..., Path],
    run_cli: Callable[..., Outcome],
    tmp_path: Path,
    command: tuple[str, ...],
) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "other").mkdir(parents=True)
    victim = outside / "other" / "conda-lock.yml"
    victim.write_text("  flowenv-input-hash-linux-64: '" + "0" * 64 + "'\n")
    root = make_project(BASE, project_extra='lock-dir = "locks"\n')
    (root / "locks").symlink_to(outside)
    outcome = run_cli("-C", root, *command)
    assert outcome.code == 2, outcome
    assert "through a symbolic link" in outcome.err
    assert victim.exists()


def test_lock_dir_inside_the_project_is_fine(
    make_project: Callable[..., Path], run_cli: Callable[..., Outcome]
) -> None:
    root = make_project(BASE, project_extra='lock-dir = "ci/../build/locks"\n')
    assert run_cli("-C", root, "lock").code == 0
    assert (root / "build" / "locks" / "base" / "pylock.linux-64.toml").is_file()


# -- deleting only what flowenv wrote ------------------------------------------------------
def test_only_obsolete_locks_flowenv_wrote_are_removed(
    make_project: Callable[..., Path], run_cli: Callable[..., Outcome]
) -> None:
    root = make_project(BASE)
    assert run_cli("-C", root, "lock").code == 0
    obsolete = root / "locks" / "old" / "pylock.linux-64.toml"
    obsolete.parent.mkdir()
    shutil.copyfile(_flowenv_lock(root), obsolete)
    foreign = root / "locks" / "vendored" / "pylock.linux-64.toml"
    foreign.parent.mkdir()
    foreign.write_text(FOREIGN_LOCK)
    checked = run_cli("-C", root, "lock", "--check")
    assert checked.code == 1
    assert "locks/old/pylock.linux-64.toml: obsolete" in checked.err
    assert "vendored" not in checked.err
    locked = run_cli("-C", root, "lock")
    assert locked.code == 0, locked
    assert "removed  locks/old/pylock.linux-64.toml" in locked.out
    assert not obsolete.exists()
    assert not obsolete.parent.exists()
    assert foreign.read_text() == FOREIGN_LOCK


def test_temp_files_of_a_killed_lock_are_cleaned_on_the_next_run(
    make_project: Callable[..., Path], run_cli: Callable[..., Outcome]
) -> None:
    root = make_project(BASE)
    assert run_cli("-C", root, "lock").code == 0
    env_dir = root / "locks" / "base"
    leftovers = [
        env_dir / ".pylock.linux-64.toml.k2j4h5.tmp",
        env_dir / ".conda-lock.yml.a8b9c0.tmp",
    ]
    mine = env_dir / ".notes.txt.abc123.tmp"  # not a lock's temp file: never touched
    # Left by a killed run: older than any concurrent lock's could be.
    killed_at = time.time() - LEFTOVER_AGE_SECONDS - 1
    for path in (*leftovers, mine):
        path.write_text("half a lock")
        os.utime(path, (killed_at, killed_at))
    assert run_cli("-C", root, "lock").code == 0  # fresh: nothing resolved, still cleaned
    assert [p for p in leftovers if p.exists()] == []
    assert mine.exists()


# -- all or nothing --------------------------------------------------------------------------
def test_a_lock_run_that_cannot_write_one_file_writes_none(
    make_project: Callable[..., Path], run_cli: Callable[..., Outcome]
) -> None:
    root = make_project(BASE)
    assert run_cli("-C", root, "lock").code == 0
    before = {p: p.read_bytes() for p in (root / "locks").rglob("*.toml")}
    # base changes, and a new env "train" must be written where a file stands.
    config = root / "flowenv.toml"
    config.write_text(
        config.read_text().replace('alpha = "1.0"', 'alpha = "2.0"')
        + '\n[steps.train]\npypi.packages = { gamma = "1.0" }\n'
    )
    (root / "locks" / "train").write_text("in the way")
    outcome = run_cli("-C", root, "lock")
    assert outcome.code == 2, outcome
    assert "locks/train/pylock." in outcome.err
    assert "no lock file was changed" in outcome.err
    assert "Traceback" not in outcome.err
    after = {p: p.read_bytes() for p in (root / "locks").rglob("*.toml")}
    assert after == before
    assert not list((root / "locks").rglob("*.tmp"))


def test_read_only_env_dir_changes_nothing(
    make_project: Callable[..., Path], run_cli: Callable[..., Outcome]
) -> None:
    """A directory that cannot be written, after another one was: nothing changes.

    Python-only envs are locked without uv, so when the suite runs as root
    (root writes into read-only directories) flowenv runs as ``nobody``.
    """
    root = make_project('[base]\npython = "3.11"\n\n[envs.other]\npython = "3.11"\n')
    assert run_cli("-C", root, "lock").code == 0
    config = root / "flowenv.toml"
    config.write_text(config.read_text().replace('"3.11"', '"3.12"'))
    before = {p.relative_to(root): p.read_bytes() for p in (root / "locks").rglob("*.toml")}

    def read_only_other(project: Path) -> None:
        # base's directory stays writable: only "other" (written after it) is not.
        (project / "locks" / "other").chmod(0o555)

    def left(project: Path) -> dict[Path, bytes]:
        files = (p for p in (project / "locks").rglob("*") if p.is_file())
        return {p.relative_to(project): p.read_bytes() for p in files}

    if IS_ROOT:
        with run_as_nobody(root, ["lock"], read_only_other) as (result, copy):
            code, err, after = result.returncode, result.stderr, left(copy)
    else:
        read_only_other(root)
        try:
            outcome = run_cli("-C", root, "lock")
        finally:
            (root / "locks" / "other").chmod(0o755)
        code, err, after = outcome.code, outcome.err, left(root)
    assert code == 2, err
    assert "locks/other/pylock." in err
    assert "no lock file was changed" in err
    assert "Traceback" not in err
    assert after == before  # no lock rewritten, no temporary file left


# -- modes follow the umask ------------------------------------------------------------------
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_lock_and_local_store_files_follow_the_umask(
    make_project: Callable[..., Path],
    run_cli: Callable[..., Outcome],
    flowenv_cache: Path,
    umask: Callable[[int], None],
    mask: int,
    mode: int,
) -> None:
    root = make_project(BASE, project_extra='store = "store"\n')
    umask(mask)
    assert run_cli("-C", root, "lock").code == 0
    assert run_cli("-C", root, "sync").code == 0
    written = [_flowenv_lock(root), *(p for p in (root / "store").rglob("*") if p.is_file())]
    assert len(written) > 3
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {oct(mode)}


# -- store URLs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file://../../x", "/p/x"),
        ("file://store", "/p/q/r/store"),
        ("file:///abs/store", "/abs/store"),
        ("file://localhost/abs/store", "/abs/store"),
        ("../x", "/p/q/x"),
    ],
)
def test_relative_file_urls_are_relative_to_the_project(url: str, expected: str) -> None:
    assert store_url_for(None, url, Path("/p/q/r")) == expected


def test_sync_to_a_relative_file_url_writes_beside_the_project(
    make_project: Callable[..., Path],
    run_cli: Callable[..., Outcome],
    flowenv_cache: Path,
    tmp_path: Path,
) -> None:
    root = make_project(BASE, project_extra='store = "file://../shared-store"\n')
    assert run_cli("-C", root, "lock").code == 0
    outcome = run_cli("-C", root, "sync")
    assert outcome.code == 0, outcome
    assert str(tmp_path / "shared-store") in outcome.out
    assert (tmp_path / "shared-store" / "artifacts").is_dir()


# -- an unusable cache --------------------------------------------------------------------------
@pytest.mark.parametrize("command", [("hydrate", "base")], ids=" ".join)
def test_unwritable_cache_is_one_store_error(
    make_project: Callable[..., Path],
    run_cli: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    root = make_project(BASE, project_extra='store = "store"\n')
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(tmp_path / "good-cache"))
    assert run_cli("-C", root, "lock").code == 0
    assert run_cli("-C", root, "sync").code == 0
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(blocked))
    outcome = run_cli("-C", root, *command)
    assert outcome.code == 4, outcome
    assert "cannot write to the artifact cache" in outcome.err
    assert "FLOWENV_CACHE_DIR" in outcome.err
    assert "Traceback" not in outcome.err


def test_sync_of_local_artifacts_needs_no_cache(
    make_project: Callable[..., Path],
    run_cli: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Local artifacts, small (from memory) or large (streamed from where they are), never
    pass through the cache, so an unusable cache does not stop a sync of them."""
    root = make_project(BASE, project_extra='store = "store"\n')
    assert run_cli("-C", root, "lock").code == 0
    monkeypatch.setattr("flowenv.sync.IN_MEMORY_MAX", 0)  # every artifact takes the large path
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(blocked))
    outcome = run_cli("-C", root, "sync")
    assert outcome.code == 0, outcome
    assert blocked.read_text() == "not a directory"
    assert sorted(p.name for p in (root / "store" / "artifacts").rglob("*.whl"))


def test_import_and_export_outputs_follow_the_umask(
    make_project: Callable[..., Path],
    run_cli: Callable[..., Outcome],
    umask: Callable[[int], None],
    tmp_path: Path,
) -> None:
    root = make_project(BASE)
    umask(0o022)
    assert run_cli("-C", root, "lock").code == 0
    exported = tmp_path / "requirements.txt"
    assert run_cli("-C", root, "export", "base", "-p", "linux-64", "-o", exported).code == 0
    flow = tmp_path / "flow.py"
    flow.write_text(
        "from metaflow import FlowSpec, pypi_base, step\n\n"
        '@pypi_base(python="3.11", packages={"alpha": "1.0"})\n'
        "class F(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
    )
    assert run_cli("import", flow, "-p", "linux-64").code == 0
    for path in (exported, tmp_path / "flowenv.toml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_an_env_directory_that_links_out_of_the_lock_dir(
    make_project: Callable[..., Path], run_cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """Neither written through nor cleaned through: the link is refused, its target untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "pylock.linux-64.toml"
    victim.write_text('[tool.flowenv]\ninput-hash = "' + "0" * 64 + '"\n')
    root = make_project(BASE)
    (root / "locks").mkdir()
    (root / "locks" / "base").symlink_to(outside)
    outcome = run_cli("-C", root, "lock")
    assert outcome.code == 2, outcome
    assert "is a symbolic link out of the lock dir" in outcome.err
    assert victim.read_text().startswith("[tool.flowenv]")
    # An obsolete env dir that links out is neither reported nor removed.
    (root / "locks" / "base").unlink()
    (root / "locks" / "old").symlink_to(outside)
    assert run_cli("-C", root, "lock").code == 0
    assert run_cli("-C", root, "lock", "--check").code == 0
    assert victim.exists()
