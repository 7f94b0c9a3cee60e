"""A one-step re-lock's short cuts: they change how fast, never what is locked or when.

The parser built for one command parses exactly as the whole one; the env
directories' real paths come from the lock dir's; the environments are built
once per configuration object; and with the freshness record vouching for
every settled lock, an edit to any input of an env (its table, an included
requirements file, its system requirements, a local package's source) still
re-locks it, through the same ``flowenv -q lock`` users run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.cli.parser import build_parser, command_of
from flowenv.config.load import load_config
from flowenv.lock import (
    LEFTOVER_AGE_SECONDS,
    _linked_names,
    _real_env_dir,
    environments_of,
    lock,
)
from flowenv.lockfiles import freshness
from flowenv.lockfiles.freshness import known_headers
from flowenv.spec import EnvSpec, build_environments
from tests.support.local_package import write_local_package
from tests.support.wheels import DEFAULT_WHEELS


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["lock"], "lock"),
        (["-q", "lock", "--check"], "lock"),
        (["-C", "somewhere", "-c", "x.toml", "show", "base"], "show"),
        (["-Cdir", "--config=x.toml", "-q", "git", "lock-hook"], "git"),
        (["run", "base", "-q", "--", "python"], "run"),
        ([], None),
        (["-h", "lock"], None),
        (["--version"], None),
        (["-v", "lock"], None),
        (["lokc"], None),
        (["-C"], None),
        (["-q", "base", "lock"], None),
    ],
)
def test_the_command_is_read_only_when_global_options_alone_precede_it(
    argv: list[str], command: str | None
) -> None:
    assert command_of(argv) == command


@pytest.mark.parametrize(
    "argv",
    [
        ["lock"],
        ["-q", "-C", "d", "lock", "--check", "base", "-p", "linux-64"],
        ["lock", "-U", "-j", "3", "-q"],
        ["lock", "-P", "alpha", "-P", "beta", "train"],
        ["show", "base", "-C", "d"],
        ["sync", "--help"],
        ["git", "textconv", "a.toml"],
        ["store", "ls", "--help"],
        ["lock", "--bogus"],
        ["lock", "--check", "--upgrade"],
        ["lock", "-j"],
    ],
)
def test_the_parser_of_one_command_parses_as_the_whole_parser(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    def parse(only: str | None) -> tuple[object, str, str]:
        try:
            outcome: object = vars(build_parser(only=only).parse_args(argv))
        except SystemExit as exc:
            outcome = ("exit", exc.code)
        captured = capsys.readouterr()
        return outcome, captured.out, captured.err

    only = command_of(argv)
    assert only is not None
    assert parse(only) == parse(None)


def test_a_mistyped_command_still_gets_every_choice_and_a_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["lokc"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'lokc'" in err
    assert "'export'" in err
    assert "did you mean 'lock'" in err


def test_env_directories_resolve_as_realpath_does(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    real_project = tmp_path / "real-project"
    (real_project / "locks/inner").mkdir(parents=True)
    (real_project / "locks/plain").mkdir()
    (real_project / "locks/out").symlink_to(outside)
    (real_project / "locks/alias").symlink_to(real_project / "locks/inner")
    (real_project / "locks/dangling").symlink_to(tmp_path / "nowhere")
    # The project reached through a symbolic link, and a lock dir that is one.
    (tmp_path / "project").symlink_to(real_project)
    (real_project / "linked-locks").symlink_to(real_project / "locks")
    for lock_root in (
        real_project / "locks",
        tmp_path / "project/locks",
        real_project / "linked-locks",
    ):
        real_root = os.path.realpath(lock_root)
        # One listing of the lock dir names its links, as an lstat of each directory would.
        links = _linked_names(lock_root)
        assert links == {"out", "alias", "dangling"}
        for name in ("plain", "inner", "out", "alias", "dangling", "missing"):
            directory = lock_root / name
            assert _real_env_dir(lock_root, real_root, directory) == os.path.realpath(directory)
            assert _real_env_dir(lock_root, real_root, directory, links) == (
                os.path.realpath(directory)
            )
    # Not directly below the lock dir: the full resolution answers.
    deeper = real_project / "locks/inner/x"
    assert _real_env_dir(real_project / "locks", real_project.as_posix(), deeper) == (
        os.path.realpath(deeper)
    )
    assert _real_env_dir(real_project / "locks", real_project.as_posix(), deeper, links) == (
        os.path.realpath(deeper)
    )
    # No lock dir yet: nothing below it is a link.
    assert _linked_names(tmp_path / "no-such-dir") == frozenset()


def test_environments_are_built_once_per_configuration_object(make_project) -> None:
    root = make_project('[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n')
    config = load_config(root / "flowenv.toml")
    first = environments_of(config)
    assert environments_of(config) is first
    assert first == build_environments(config)
    # Another load (even of the same bytes) is another object: built again, from it.
    (root / "flowenv.toml").write_text(
        (root / "flowenv.toml").read_text().replace('"1.0"', '"2.0"')
    )
    edited = load_config(root / "flowenv.toml")
    assert environments_of(edited) is not first
    assert environments_of(edited) == build_environments(edited)
    assert environments_of(edited) != first


BODY = """
[base]
python = "3.11"
pypi.packages = { alpha = "1.0" }

[steps.train]
pypi.requirements = ["requirements.txt"]

[steps.gpu]
pypi.packages = { beta = ">=1" }
system-requirements = { glibc = "2.28" }
"""


@pytest.fixture
def settled(
    make_project, make_index, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """A locked project whose record vouches for every lock (as minutes after a lock)."""
    monkeypatch.setattr(freshness, "_RACY_NS", 0)
    root: Path = make_project(BODY, index=make_index(DEFAULT_WHEELS))
    (root / "requirements.txt").write_text("beta==1.0\n")
    assert main(["-q", "-C", str(root), "lock"]) == 0
    # The first lock's files were new; this run records their stats.
    assert main(["-q", "-C", str(root), "lock"]) == 0
    capsys.readouterr()
    return root


def _statuses(root: Path) -> dict[str, str]:
    return {r.target.label: r.status for r in lock(load_config(root / "flowenv.toml"))}


@pytest.mark.parametrize(
    ("edit", "env"),
    [
        (
            lambda root: _replace(
                root / "flowenv.toml", '"1.0" }\n\n[steps.train]', '"2.0" }\n\n[steps.train]'
            ),
            "base",
        ),
        (lambda root: (root / "requirements.txt").write_text("beta==1.5\n"), "train"),
        (lambda root: _replace(root / "flowenv.toml", '"2.28"', '"2.17"'), "gpu"),
    ],
    ids=["own-table", "included-requirements", "system-requirements"],
)
def test_an_edited_input_relocks_its_env_though_the_record_vouches_for_every_lock(
    settled: Path, edit, env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = settled / "flowenv.toml"
    before = {p: p.read_bytes() for p in sorted((settled / "locks").glob("*/*"))}
    assert set(known_headers(toml, settled / "locks")) == {
        p.relative_to(settled / "locks").as_posix() for p in before
    }
    edit(settled)
    # The quiet lock users run (its own fast path first), then what is fresh after it.
    assert main(["-q", "-C", str(settled), "lock"]) == 0
    changed = {p.parent.name for p, data in before.items() if p.read_bytes() != data}
    # "base" is every step's parent: its edit re-locks all of them.
    assert changed == ({"base", "train", "gpu"} if env == "base" else {env})
    assert set(_statuses(settled).values()) == {"fresh"}
    assert main(["-C", str(settled), "lock", "--check"]) == 0
    # Byte for byte what a lock from nothing writes (no record, no lock to read).
    relocked = {p: p.read_bytes() for p in before}
    shutil.rmtree(settled / "locks")
    freshness.forget_record(toml)
    assert main(["-q", "-C", str(settled), "lock"]) == 0
    assert {p: p.read_bytes() for p in before} == relocked
    capsys.readouterr()


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_an_edited_local_package_relocks_its_env(
    make_project, make_index, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A package directory cannot be digested as a file: such a project never
    # gets a record, and every run looks at the package's source itself.
    monkeypatch.setattr(freshness, "_RACY_NS", 0)
    root: Path = make_project(
        BODY + '\n[steps.local]\npypi.packages = { mylib = { path = "libs/mylib" } }\n',
        index=make_index(DEFAULT_WHEELS),
    )
    (root / "requirements.txt").write_text("beta==1.0\n")
    write_local_package(root / "libs/mylib", "mylib", "0.3.0", ["alpha>=1"])
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert known_headers(root / "flowenv.toml", root / "locks") == {}
    before = {p: p.read_bytes() for p in sorted((root / "locks").glob("*/*"))}
    (root / "libs/mylib/src/mylib/extra.py").write_text("Y = 2\n")
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert {p.parent.name for p, data in before.items() if p.read_bytes() != data} == {"local"}
    assert set(_statuses(root).values()) == {"fresh"}
    capsys.readouterr()


def test_temp_files_behind_a_linked_env_dir_are_not_the_lock_dirs_to_clean(
    make_project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project('[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n')
    assert main(["-q", "-C", str(root), "lock"]) == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    theirs = outside / ".pylock.linux-64.toml.k2j4h5.tmp"
    theirs.write_text("someone else's")
    (root / "locks/old").symlink_to(outside)
    ours = root / "locks/base/.pylock.linux-64.toml.a8b9c0.tmp"

    def left_by_a_killed_lock() -> None:
        ours.write_text("half a lock")
        old = time.time() - LEFTOVER_AGE_SECONDS - 1
        os.utime(ours, (old, old))
        os.utime(theirs, (old, old), follow_symlinks=False)

    left_by_a_killed_lock()
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert not ours.exists()
    assert theirs.read_text() == "someone else's"
    # A partial lock (no obsolete-lock pass after it) removes them itself.
    left_by_a_killed_lock()
    assert main(["-q", "-C", str(root), "lock", "base", "-p", "linux-64"]) == 0
    assert not ours.exists()
    assert theirs.read_text() == "someone else's"
    capsys.readouterr()


def test_platforms_share_an_input_hash_only_when_their_inputs_are_the_same(make_project) -> None:
    """A platform's hash is always the sha256 of its own inputs, however often one is asked.

    Platforms that read alike (no target table, the same system requirements
    applying) are hashed once; a target table or a requirement that applies on
    one platform only keeps them apart.
    """
    from flowenv._sha256 import sha256_hex

    root = make_project(
        """\
        [base]
        python = "3.11"
        pypi.packages = { alpha = "1.0" }

        [steps.plain]
        pypi.packages = { beta = "1.0" }

        [steps.glibc]
        system-requirements = { glibc = "2.28" }

        [steps.cuda_macos]
        system-requirements = { cuda = "12", macos = "13.0" }

        [steps.targeted]
        pypi.packages = { beta = "1.0" }
        [steps.targeted.target.osx-arm64]
        pypi.packages = { beta = "2.0" }
        """
    )
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"osx-arm64"]', '"osx-arm64", "osx-64"]', 1))
    config = load_config(toml)
    assert config.project.platforms == ("linux-64", "osx-64", "osx-arm64")

    def own_hash(env: object, platform: str) -> str:
        inputs = env.hash_inputs(platform)  # type: ignore[attr-defined]
        return sha256_hex(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode())

    for order in (1, -1):  # asked in either platform order, on fresh objects
        for env in build_environments(config).envs:
            for platform in env.platforms[::order]:
                assert env.input_hash(platform) == own_hash(env, platform), (env.name, platform)
    envs = {env.name: env for env in build_environments(config).envs}

    def distinct(name: str) -> int:
        return len({envs[name].input_hash(p) for p in envs[name].platforms})

    assert distinct("base") == distinct("plain") == 1
    assert distinct("glibc") == 2  # linux-64 apart
    assert distinct("cuda_macos") == 2  # cuda on linux, macos on both osx: the osx pair shares
    assert distinct("targeted") == 2  # osx-arm64's table apart


def test_one_listing_finds_the_locks_and_the_temp_files_the_two_listings_found(
    tmp_path: Path,
) -> None:
    """Locks as the freshness listing names them; temp files only in the lock dir's own dirs."""
    from flowenv.lock import _list_lock_dir

    root = tmp_path / "locks"
    outside = tmp_path / "outside"
    for directory in (root / "a", root / ".hidden", root / "b", outside):
        directory.mkdir(parents=True)
    files = {
        root / "a/pylock.linux-64.toml": "",
        root / "a/conda-lock.yml": "",
        root / "a/.pylock.linux-64.toml.x1y2.tmp": "left by a killed write",
        root / "a/.notes.txt.x1y2.tmp": "not a lock's temp file",
        root / "a/pylock.toml": "not a name flowenv gives a lock",
        root / ".hidden/pylock.osx-64.toml": "",
        root / ".hidden/.conda-lock.yml.abc.tmp": "",
        root / "b/.pylock.osx-arm64.toml.q.tmp": "",
        outside / "pylock.linux-64.toml": "",
        outside / ".pylock.linux-64.toml.zz.tmp": "someone else's",
        root / "plain-file": "",
    }
    for path, text in files.items():
        path.write_text(text)
    (root / "linked").symlink_to(outside)
    (root / ".linked-hidden").symlink_to(outside)
    names, temp_files = _list_lock_dir(root)
    assert names == freshness.lock_names(root)
    assert names == ["a/conda-lock.yml", "a/pylock.linux-64.toml", "linked/pylock.linux-64.toml"]
    assert temp_files == [
        root / ".hidden/.conda-lock.yml.abc.tmp",
        root / "a/.pylock.linux-64.toml.x1y2.tmp",
        root / "b/.pylock.osx-arm64.toml.q.tmp",
    ]
    assert _list_lock_dir(tmp_path / "missing") == ([], [])


def test_a_record_read_again_answers_as_the_record_on_disk_says(
    settled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record's answer is kept between reads only while its bytes, the lock dir and
    flowenv's code are the same: a rewritten, dropped or foreign record answers anew."""
    toml, locks = settled / "flowenv.toml", settled / "locks"
    every = {p.relative_to(locks).as_posix() for p in locks.glob("*/*")}
    assert set(known_headers(toml, locks)) == every
    assert set(known_headers(toml, locks)) == every  # the same bytes: the kept answer
    # Rewritten on disk (a lock changed since): the new record answers.
    lock_file = locks / "base/pylock.linux-64.toml"
    lock_file.write_bytes(lock_file.read_bytes())
    config = load_config(toml)
    live = lock(config)
    from flowenv.lock import remember_fresh

    remember_fresh(config, freshness.digest_inputs([toml]), [r.target for r in live])
    assert set(known_headers(toml, locks)) == every  # its new stat was recorded
    record = freshness.record_path(toml)
    text = json.loads(record.read_text())
    del text["locks"]["base/pylock.linux-64.toml"]
    record.write_text(json.dumps(text))
    assert set(known_headers(toml, locks)) == every - {"base/pylock.linux-64.toml"}
    # Another flowenv (its code signature) vouches for nothing, nor does a dropped record.
    with monkeypatch.context() as patched:
        patched.setattr(freshness, "_CODE_SIGNATURE", ["another flowenv"])
        assert known_headers(toml, locks) == {}
    assert set(known_headers(toml, locks)) == every - {"base/pylock.linux-64.toml"}
    freshness.forget_record(toml)
    assert known_headers(toml, locks) == {}


@pytest.mark.parametrize(
    "path",
    ["/p/locks/env/pylock.linux-64.toml", "locks/env/conda-lock.yml", "env/x", "x", "/x", "/a/x"],
)
def test_a_lock_is_named_by_its_directory_and_file_as_before(path: str) -> None:
    """``<env>/<file>`` from the path's parts names it exactly as ``.parent.name`` did."""
    from flowenv.config.load import parse_config
    from flowenv.lock import _lock_name
    from flowenv.lockfiles.layout import LockTarget

    text = '[project]\nname = "p"\nplatforms = ["linux-64"]\n[base]\npython = "3.11"\n'
    env = build_environments(parse_config(text, Path("/p/flowenv.toml"))).envs[0]
    target = LockTarget(env, "linux-64", Path(path))
    assert _lock_name(target) == f"{Path(path).parent.name}/{Path(path).name}"


@pytest.mark.parametrize("name", ["uv-export.pylock.toml", "uv-export-with-project.pylock.toml"])
def test_a_uv_output_parsed_once_gives_the_same_canonical_lock_and_stays_as_parsed(
    name: str,
) -> None:
    """The agreement check's parse of uv's output is reused for the canonical form unchanged."""
    import copy

    import tomllib

    from flowenv.lockfiles.pylock import canonical_pylock

    uv_output = (Path(__file__).parent / "data/real/pep751" / name).read_text()
    env = EnvSpec(name="base", python="3.12")
    parsed = tomllib.loads(uv_output)
    before = copy.deepcopy(parsed)
    for platform in ("linux-64", "osx-arm64"):
        assert canonical_pylock(uv_output, env, platform, parsed) == canonical_pylock(
            uv_output, env, platform
        )
    assert parsed == before


def test_a_young_temp_file_may_be_a_concurrent_locks_and_is_left_alone(
    make_project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two ``flowenv lock`` runs of one project at once: neither removes the other's
    temporary file between its write and its rename (that rename then failed)."""
    root = make_project('[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n')
    assert main(["-q", "-C", str(root), "lock"]) == 0
    writing = root / "locks/base/.pylock.osx-arm64.toml.c0ncur.tmp"
    writing.write_text("being written by another flowenv lock")
    assert main(["-C", str(root), "lock"]) == 0  # not -q: the fast path would skip the clean-up
    assert main(["-q", "-C", str(root), "lock", "base", "-p", "linux-64"]) == 0
    assert writing.read_text() == "being written by another flowenv lock"
    capsys.readouterr()


def test_a_lock_known_unchanged_is_recorded_with_the_stat_it_was_found_at(
    settled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write_record takes the stats known_headers just found instead of stat'ing every lock
    again; the record is the one stat'ing would write, and a lock written in between is
    vouched for by neither (its old stat never matches it again)."""
    toml, locks = settled / "flowenv.toml", settled / "locks"
    config = load_config(toml)
    live = [r.target for r in lock(config)]
    expected: dict[str, dict[str, str]] = {}
    for target in live:
        name = target.path.relative_to(locks).as_posix()
        expected.setdefault(name, {})[target.platform] = target.env.input_hash(target.platform)
    # A clock past the racy window of every lock (their ctime cannot be set back).
    monkeypatch.setattr(freshness, "_RACY_NS", 3_000_000_000)
    newest = max(os.stat(locks / name).st_ctime_ns for name in expected)
    clock = [newest + 2 * freshness._RACY_NS]
    monkeypatch.setattr(freshness, "time", type("Clock", (), {"time_ns": lambda: clock[0]}))
    inputs = freshness.digest_inputs([toml])
    assert inputs is not None
    freshness.write_record(toml, inputs, locks, expected, validated=False)
    assert set(known_headers(toml, locks)) == set(expected)
    stat_calls: list[str] = []
    signature = freshness._signature

    def counted(path: str, now_ns: int) -> list[int] | None:
        stat_calls.append(path)
        return signature(path, now_ns)

    monkeypatch.setattr(freshness, "_signature", counted)
    freshness.write_record(toml, inputs, locks, expected, validated=False)
    assert stat_calls == []  # every lock was just found at its recorded stat
    reused = json.loads(freshness.record_path(toml).read_text())
    freshness._LAST_SEEN.clear()
    freshness.write_record(toml, inputs, locks, expected, validated=False)
    assert len(stat_calls) == len(expected)
    assert json.loads(freshness.record_path(toml).read_text()) == reused
    # Too long ago (a lock written since might no longer look just written): stat'ed again.
    assert set(known_headers(toml, locks)) == set(expected)
    stat_calls.clear()
    clock[0] += freshness._RACY_NS
    freshness.write_record(toml, inputs, locks, expected, validated=False)
    assert len(stat_calls) == len(expected)
    # A lock rewritten after known_headers found it: its old stat is recorded, which
    # vouches for nothing from then on, as the None a fresh stat (just written) gives.
    assert set(known_headers(toml, locks)) == set(expected)
    rewritten = locks / "base/pylock.linux-64.toml"
    rewritten.write_bytes(rewritten.read_bytes())
    clock[0] = max(clock[0], os.stat(rewritten).st_ctime_ns + 2 * freshness._RACY_NS)
    freshness.write_record(toml, inputs, locks, {"base/pylock.linux-64.toml": {}}, validated=False)
    assert "base/pylock.linux-64.toml" not in known_headers(toml, locks)
    assert not freshness.known_fresh(toml, validated=False)
