"""Local packages (``mylib = { path = "libs/mylib" }``) through lock, sync and offline hydrate."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.diff.load import read_pylock_text
from flowenv.errors import ConfigError, LockFileError, UsageError
from flowenv.inputs.local import source_hash
from flowenv.lock import Selection, select_targets, stale_targets
from flowenv.lockfiles.condalock import parse_conda_lock, read_conda_lock
from flowenv.lockfiles.pylock import read_pylock
from flowenv.spec import build_environments
from flowenv.store import open_store
from flowenv.store.layout import Manifest
from flowenv.store.plan import plan_target
from tests.support.git_repo import commit_all, init_repo
from tests.support.local_package import write_local_package
from tests.support.stores import StoreTarget, run_flowenv, s3_target
from tests.support.wheels import DEFAULT_WHEELS
from tests.test_hydrate_offline import _executor_env, _linux_only, mixed_project_on_s3
from tests.test_store_conformance import store_invariants

BODY = """
[base]
python = "3.11"
pypi.packages = { mylib = { path = "libs/mylib" }, beta = "1.0" }
"""


def _run_on_executor(
    store: StoreTarget, tmp_path: Path, code: str, gone: Iterable[Path] = ()
) -> CompletedProcess[str]:
    """``flowenv run base -- python -c CODE`` from an empty directory, fresh cache, no index.

    ``gone``: what the executor must do without (indexes, channels, sources),
    deleted first along with the test index's wheels.
    """
    for path in (*gone, tmp_path / "index-wheels"):
        shutil.rmtree(path)
    executor = tmp_path / "executor"
    executor.mkdir()
    return run_flowenv(
        "run",
        "base",
        "--store",
        store.url,
        "--project",
        "proj",
        "--prefix",
        str(tmp_path / "env"),
        "--",
        "python",
        "-c",
        code,
        cwd=executor,
        env=_executor_env(store, tmp_path),
    )


def _project(make_project, make_index, tag: str = "py3-none-any", project_extra: str = "") -> Path:
    root: Path = make_project(BODY, index=make_index(DEFAULT_WHEELS), project_extra=project_extra)
    write_local_package(
        root / "libs/mylib",
        "mylib",
        "0.3.0",
        ["alpha>=2"],
        module_source="import alpha\nVERSION = '0.3.0'\nALPHA = alpha.VERSION\n",
        tag=tag,
    )
    return root


def test_local_package_is_locked_with_its_dependencies_and_a_source_hash(
    make_project, make_index
) -> None:
    root = _project(make_project, make_index)
    assert main(["-C", str(root), "lock"]) == 0
    lock = root / "locks/base/pylock.linux-64.toml"
    packages = {p.name: p for p in read_pylock(lock)}
    # mylib's own dependency (alpha>=2, which needs beta>=1) is resolved with the env.
    assert {n: p.version for n, p in packages.items()} == {
        "alpha": "2.0",
        "beta": "1.0",
        "mylib": "",
    }
    assert packages["mylib"].directory == "../../libs/mylib"
    assert len(packages["mylib"].source_hash) == 64
    assert str(root) not in lock.read_text()  # no absolute path: any checkout reads it

    config = load_config(root / "flowenv.toml")
    assert stale_targets(config) == []
    # Build output and caches are not source: still fresh.
    (root / "libs/mylib/src/mylib/__pycache__").mkdir()
    (root / "libs/mylib/src/mylib/__pycache__/x.pyc").write_bytes(b"\0")
    assert stale_targets(load_config(root / "flowenv.toml")) == []
    (root / "libs/mylib/src/mylib/extra.py").write_text("Y = 2\n")
    assert len(stale_targets(load_config(root / "flowenv.toml"))) == 2
    # Re-locked, the edit shows in a lock diff as a changed hash of the same version.
    before = read_pylock_text(lock.read_text(), "before")["mylib"]
    assert main(["-C", str(root), "lock"]) == 0
    after = read_pylock_text(lock.read_text(), "after")["mylib"]
    assert (before.source, before.version) == (after.source, after.version)
    assert before.hashes != after.hashes
    assert after.hashes == (f"source-sha256:{read_pylock(lock)[2].source_hash}",)


def test_local_package_syncs_and_hydrates_offline_on_a_fresh_cache(
    make_project, make_index, moto_server, flowenv_cache, tmp_path
) -> None:
    store = s3_target(moto_server)
    root = _project(make_project, make_index, project_extra=store.project_lines())
    _linux_only(root)
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "sync"]) == 0
    (manifest_key,) = store_invariants(store)
    manifest = Manifest.from_json(
        open_store(store.url, store.options).read(manifest_key) or b"", manifest_key
    )
    assert sorted(a.filename for a in manifest.artifacts) == [
        "alpha-2.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "mylib-0.3.0-py3-none-any.whl",
    ]
    mylib = next(a for a in manifest.artifacts if a.name == "mylib")
    assert (mylib.version, len(mylib.source)) == ("0.3.0", 64)
    # The wheel is kept in the cache by source hash: a second sync builds nothing.
    (built,) = flowenv_cache.glob(f"builds/wheel-{mylib.source}/*.whl")
    stamp = built.stat().st_mtime_ns
    assert main(["-C", str(root), "sync"]) == 0
    assert built.stat().st_mtime_ns == stamp
    # The env id follows from the lock alone: hydrate inside the project finds it.
    assert (
        manifest_key.split("/")[1]
        == plan_target(
            select_targets(
                config := load_config(root / "flowenv.toml"),
                build_environments(config),
                Selection(),
            )[0]
        ).env_id
    )

    # The executor: no index, no project source, a fresh cache.
    ran = _run_on_executor(
        store,
        tmp_path,
        "import mylib, importlib.metadata as m;"
        "print(mylib.VERSION, mylib.ALPHA, m.version('beta'))",
        gone=[tmp_path / "index", root / "libs"],
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "0.3.0 2.0 1.0\n"

    # An executor that has the project's checkout but not the package's source
    # (deleted above): hydrate inside the project needs only the store.
    def hydrate_in_project(prefix: str) -> CompletedProcess[str]:
        return run_flowenv(
            *("-C", str(root), "hydrate", "base", "--store", store.url),
            *("--prefix", str(tmp_path / prefix)),
            env=_executor_env(store, tmp_path),
        )

    hydrated = hydrate_in_project("env-in-project")
    assert hydrated.returncode == 0, hydrated.stderr
    assert hydrated.stdout.strip().endswith("/bin/python")
    # Every other input is still checked: a changed requirement makes the lock stale.
    config = root / "flowenv.toml"
    config.write_text(config.read_text().replace('beta = "1.0"', 'beta = ">=1.0"'))
    stale = hydrate_in_project("env-stale")
    assert stale.returncode == 1
    assert "lock is stale (base/pylock.linux-64.toml)" in stale.stderr
    # Locking still needs the source, and says which key names it.
    assert main(["-C", str(root), "lock", "--check"]) == 2


def test_a_platform_specific_local_package_is_refused_at_sync(
    make_project, make_index, tmp_path, capsys
) -> None:
    root = _project(make_project, make_index, tag="cp311-cp311-manylinux_2_17_x86_64")
    _linux_only(root)
    assert main(["-C", str(root), "lock"]) == 0
    capsys.readouterr()
    assert main(["-C", str(root), "sync", "--store", (tmp_path / "s").as_uri()]) == 2
    err = capsys.readouterr().err
    assert (
        "base · linux-64: local package mylib: the built wheel "
        "mylib-0.3.0-cp311-cp311-manylinux_2_17_x86_64.whl is not pure Python; flowenv builds "
        "local packages only when one wheel serves every platform"
    ) in err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").rglob("*.whl"))


def test_a_missing_local_package_directory_names_the_key(make_project) -> None:
    root = make_project(BODY)
    with pytest.raises(ConfigError) as info:
        load_config(root / "flowenv.toml")
    assert [d.render().replace(str(root) + "/", "") for d in info.value.diagnostics] == [
        "flowenv.toml:9: base.pypi.packages.mylib.path: 'libs/mylib': no such directory"
    ]


def test_a_local_package_in_a_mixed_conda_env_locks_syncs_and_hydrates_offline(
    make_project,
    make_index,
    live_python_channel: Path,
    moto_server,
    flowenv_cache,
    tmp_path,
    capsys,
) -> None:
    root, index, channel, store = mixed_project_on_s3(
        make_project,
        make_index,
        live_python_channel,
        moto_server,
        tmp_path,
        'mylib = { path = "libs/mylib" }',
    )
    write_local_package(
        root / "libs/mylib",
        "mylib",
        "0.3.0",
        ["alpha>=2"],
        module_source="import alpha\nVERSION = '0.3.0'\nALPHA = alpha.VERSION\n",
    )
    assert main(["-C", str(root), "lock"]) == 0
    lock_file = root / "locks/base/conda-lock.yml"
    pip = {p.name: p for p in read_conda_lock(lock_file).packages if p.manager == "pip"}
    # mylib's dependency (alpha>=2, which needs beta) is resolved in the env's PyPI part.
    assert sorted(pip) == ["alpha", "beta", "mylib"]
    digest = source_hash(root / "libs/mylib")
    assert pip["mylib"].url == f"../../libs/mylib#source-sha256={digest}"
    assert pip["mylib"].source_hash == digest
    # conda-lock's own parser takes the file: the source hash rides in the URL fragment
    # because its v1 schema forbids extra keys.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from conda_lock.lockfile import parse_conda_lock_file

        parsed = parse_conda_lock_file(lock_file)
    assert any(p.name == "mylib" and p.manager == "pip" for p in parsed.package)
    config = load_config(root / "flowenv.toml")
    assert stale_targets(config) == []
    # An edit to the package's source makes the lock stale.
    module = root / "libs/mylib/src/mylib/__init__.py"
    module.write_text(module.read_text() + "# edited\n")
    assert len(stale_targets(load_config(root / "flowenv.toml"))) == 1
    module.write_text(module.read_text().replace("# edited\n", ""))
    assert stale_targets(load_config(root / "flowenv.toml")) == []

    # Exported, it stays a path (relative to the lock file, as for a pylock).
    capsys.readouterr()
    assert main(["-C", str(root), "export", "base", "--platform", "linux-64"]) == 0
    assert "\n../../libs/mylib\n" in capsys.readouterr().out

    assert main(["-C", str(root), "sync"]) == 0
    ran = _run_on_executor(
        store,
        tmp_path,
        "import mylib, condapkg, importlib.metadata as m\n"
        "print(mylib.VERSION, mylib.ALPHA, condapkg.VERSION, m.version('mylib'))",
        gone=[channel, index.parent, root / "libs"],
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "0.3.0 2.0 2.1 0.3.0\n"
    # The wheel hydrate installed is the one sync stored, checked against its hash.
    (manifest_key,) = store_invariants(store)
    manifest = Manifest.from_json(
        open_store(store.url, store.options).read(manifest_key) or b"", manifest_key
    )
    (built,) = [a for a in manifest.artifacts if a.name == "mylib"]
    assert built.source == digest
    assert built.filename == "mylib-0.3.0-py3-none-any.whl"
    # Without libs/ (deleted above), the store-only commands' loader takes the
    # hash conda-lock.yml records, and the lock is still fresh.
    from flowenv.lockfiles.recorded_sources import recorded_source_hash

    assert recorded_source_hash(root, root / "locks", "libs/mylib") == digest
    executor_view = load_config(root / "flowenv.toml", missing_source=recorded_source_hash)
    assert stale_targets(executor_view) == []


def _gitlib_repo(tmp_path: Path) -> tuple[Path, str]:
    """A git repo holding gitlib 1.2.0 (needs beta==1.0) under pkgs/gitlib; (repo, commit)."""
    (tmp_path / "repo").mkdir()
    repo = init_repo(tmp_path / "repo")
    write_local_package(repo / "pkgs/gitlib", "gitlib", "1.2.0", ["beta==1.0"])
    return repo, commit_all(repo, "gitlib 1.2.0")


def _gitlib(repo: Path, commit: str) -> str:
    """gitlib's inline table in flowenv.toml."""
    return f'gitlib = {{ git = "{repo.as_uri()}", rev = "{commit}", subdirectory = "pkgs/gitlib" }}'


def test_a_git_package_pinned_to_a_commit_locks_syncs_and_hydrates_offline(
    make_project, make_index, tmp_path, flowenv_cache
) -> None:
    repo, commit = _gitlib_repo(tmp_path)
    store = tmp_path / "store"
    root = make_project(
        f"""
        [base]
        python = "3.11"

        [base.pypi.packages.gitlib]
        git = "{repo.as_uri()}"
        rev = "{commit}"
        subdirectory = "pkgs/gitlib"
        """,
        index=make_index(DEFAULT_WHEELS),
        project_extra=f'store = "{store.as_uri()}"\n',
    )
    _linux_only(root)
    assert main(["-C", str(root), "lock"]) == 0
    (gitlib,) = [p for p in read_pylock(root / "locks/base/pylock.linux-64.toml") if p.git]
    assert (gitlib.name, gitlib.version) == ("gitlib", "1.2.0")
    assert gitlib.git == f"git+{repo.as_uri()}@{commit}#subdirectory=pkgs/gitlib"
    # A later commit on the branch changes nothing: the lock names the commit.
    (repo / "pkgs/gitlib/src/gitlib/__init__.py").write_text("VERSION = 'moved'\n")
    commit_all(repo, "moved on")
    assert main(["-C", str(root), "sync"]) == 0

    ran = _run_on_executor(
        StoreTarget(kind="file", url=store.as_uri()),
        tmp_path,
        "import gitlib, importlib.metadata as m; print(gitlib.VERSION, m.version('beta'))",
        gone=[repo, tmp_path / "index"],
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "1.2.0 1.0\n"


def _mixed_gitlib_locked(
    make_project, make_index, live_python_channel: Path, moto_server: str, tmp_path: Path
) -> tuple[Path, str, tuple[Path, Path, Path, StoreTarget]]:
    """gitlib's repo and commit, and the mixed project on S3 that declares it, locked."""
    repo, commit = _gitlib_repo(tmp_path)
    project = mixed_project_on_s3(
        make_project, make_index, live_python_channel, moto_server, tmp_path, _gitlib(repo, commit)
    )
    assert main(["-C", str(project[0]), "lock"]) == 0
    return repo, commit, project


def test_a_git_package_in_a_mixed_conda_env_locks_syncs_and_hydrates_offline(
    make_project,
    make_index,
    live_python_channel: Path,
    moto_server,
    flowenv_cache,
    tmp_path,
    capsys,
) -> None:
    repo, commit, (root, index, channel, store) = _mixed_gitlib_locked(
        make_project, make_index, live_python_channel, moto_server, tmp_path
    )
    vcs = f"git+{repo.as_uri()}@{commit}#subdirectory=pkgs/gitlib"
    lock_file = root / "locks/base/conda-lock.yml"
    pip = {p.name: p for p in read_conda_lock(lock_file).packages if p.manager == "pip"}
    # gitlib's dependency is resolved in the env's PyPI part; the entry names the commit.
    assert sorted(pip) == ["beta", "gitlib"]
    assert (pip["gitlib"].url, pip["gitlib"].version, pip["beta"].version) == (vcs, "1.2.0", "1.0")
    assert pip["gitlib"].direct
    assert not pip["gitlib"].sha256
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from conda_lock.lockfile import parse_conda_lock_file

        parsed = parse_conda_lock_file(lock_file)
    assert [p.url for p in parsed.package if p.name == "gitlib"] == [vcs]
    capsys.readouterr()
    assert main(["-C", str(root), "export", "base", "--platform", "linux-64"]) == 0
    assert f"\ngitlib @ {vcs}\n" in capsys.readouterr().out
    # A later commit on the branch changes nothing: sync builds the locked commit.
    (repo / "pkgs/gitlib/src/gitlib/__init__.py").write_text("VERSION = 'moved'\n")
    commit_all(repo, "moved on")
    assert main(["-C", str(root), "sync"]) == 0

    ran = _run_on_executor(
        store,
        tmp_path,
        "import gitlib, condapkg, importlib.metadata as m\n"
        "print(gitlib.VERSION, m.version('beta'), condapkg.VERSION)",
        gone=[repo, channel, index.parent],
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "1.2.0 1.0 2.1\n"


def test_a_vcs_entry_the_config_does_not_declare_is_not_built(
    make_project, make_index, live_python_channel: Path, moto_server, tmp_path
) -> None:
    """A conda-lock naming a git URL is built only when flowenv.toml declares that commit."""
    _, _, (root, *_) = _mixed_gitlib_locked(
        make_project, make_index, live_python_channel, moto_server, tmp_path
    )
    lock_file = root / "locks/base/conda-lock.yml"
    # The lock is edited to another URL (its input hash still fresh).
    lock_file.write_text(lock_file.read_text().replace("#subdirectory=pkgs/gitlib", ""))
    config = load_config(root / "flowenv.toml")
    (target,) = select_targets(config, build_environments(config), Selection())
    with pytest.raises(UsageError) as info:
        plan_target(target)
    assert "is a direct reference (git+file://" in info.value.message


def test_a_git_package_must_name_a_commit(make_project) -> None:
    root = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { gitlib = { git = "https://example.invalid/gitlib.git", rev = "main" } }
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(root / "flowenv.toml")
    assert [d.render().replace(str(root) + "/", "") for d in info.value.diagnostics] == [
        "flowenv.toml:9: base.pypi.packages.gitlib.rev: expected the full 40-character commit "
        "id the package is built from (got 'main'): a branch or tag can move, a locked env "
        "must not"
    ]


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ('git = "ext::sh -c touch% /tmp/pwned"', "git", "expected an https://"),
        ('git = "--upload-pack=touch /tmp/pwned"', "git", "expected an https://"),
        ('git = "git@github.com:org/gitlib.git"', "git", "expected an https://"),
        ('git = "https://example.invalid/g.git#egg=x"', "git", "expected an https://"),
        (
            'git = "https://example.invalid/g.git", subdirectory = "../../etc"',
            "subdirectory",
            "expected a relative path inside the repository",
        ),
        (
            'git = "https://example.invalid/g.git", subdirectory = "/abs"',
            "subdirectory",
            "expected a relative path inside the repository",
        ),
    ],
)
def test_a_git_url_or_subdirectory_that_is_no_plain_location_is_refused(
    make_project, entry: str, key: str, message: str
) -> None:
    commit = "0" * 40
    root = make_project(
        f"""
        [base]
        python = "3.11"
        pypi.packages = {{ gitlib = {{ {entry}, rev = "{commit}" }} }}
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(root / "flowenv.toml")
    [rendered] = [d.render().replace(str(root) + "/", "") for d in info.value.diagnostics]
    assert rendered.startswith(f"flowenv.toml:9: base.pypi.packages.gitlib.{key}: {message}")


def test_a_conda_lock_local_entry_with_a_bad_source_hash_is_refused() -> None:
    text = (
        "version: 1\nmetadata:\n  content_hash: {linux-64: x}\n  channels: []\n"
        "  platforms: [linux-64]\n  sources: [flowenv.toml]\npackage:\n"
        "- name: mylib\n  version: ''\n  manager: pip\n  platform: linux-64\n"
        "  dependencies: {}\n  url: '../../libs/mylib#source-sha256=abc'\n  hash: {}\n"
    )
    with pytest.raises(LockFileError) as info:
        parse_conda_lock(text, "locks/base/conda-lock.yml")
    assert str(info.value) == (
        "locks/base/conda-lock.yml: package[0].url: expected 64 hexadecimal digits after "
        "#source-sha256="
    )


def test_a_subpackage_named_build_or_dist_is_source(make_project, make_index) -> None:
    """Only the package root's build/ and dist/ are tool output; mylib/build/ is code uv builds."""
    root = _project(make_project, make_index)
    assert main(["-C", str(root), "lock"]) == 0
    # What a build writes at the root is not source: still fresh.
    (root / "libs/mylib/build/lib").mkdir(parents=True)
    (root / "libs/mylib/build/lib/x.py").write_text("X = 1\n")
    (root / "libs/mylib/dist").mkdir()
    (root / "libs/mylib/dist/mylib-0.3.0-py3-none-any.whl").write_bytes(b"PK")
    assert stale_targets(load_config(root / "flowenv.toml")) == []
    for sub in ("build", "dist"):
        package = root / "libs/mylib/src/mylib" / sub
        package.mkdir()
        (package / "__init__.py").write_text("STEPS = 1\n")
        assert len(stale_targets(load_config(root / "flowenv.toml"))) == 2, sub
        assert main(["-C", str(root), "lock"]) == 0
        (package / "__init__.py").write_text("STEPS = 2\n")
        assert len(stale_targets(load_config(root / "flowenv.toml"))) == 2, sub
        assert main(["-C", str(root), "lock"]) == 0


def test_retargeting_a_directory_symlink_in_a_local_package_makes_the_lock_stale(
    make_project, make_index
) -> None:
    """A link is hashed by its target path (never followed), a link to a directory too."""
    root = _project(make_project, make_index)
    for name in ("one", "two"):
        (root / "libs/data" / name).mkdir(parents=True)
    link = root / "libs/mylib/src/mylib/data"
    link.symlink_to("../../../data/one", target_is_directory=True)
    assert main(["-C", str(root), "lock"]) == 0
    assert stale_targets(load_config(root / "flowenv.toml")) == []
    link.unlink()
    link.symlink_to("../../../data/two", target_is_directory=True)
    assert len(stale_targets(load_config(root / "flowenv.toml"))) == 2


def test_a_local_package_at_the_project_root_is_fresh_after_lock_and_sync(
    make_project, make_index, tmp_path
) -> None:
    """The lock dir and .flowenv/ (the default store) are flowenv's output, not the package's."""
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        pypi.packages = { myapp = { path = "." } }
        """,
        index=make_index(DEFAULT_WHEELS),
    )
    write_local_package(root, "myapp", "0.1.0", ["alpha>=2"])
    _linux_only(root)
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "lock", "--check"]) == 0
    assert main(["-C", str(root), "sync", "--no-python"]) == 0
    assert any((root / ".flowenv/store").rglob("myapp-0.1.0-py3-none-any.whl"))
    assert main(["-C", str(root), "lock", "--check"]) == 0
    # The package's own files still count.
    (root / "src/myapp/extra.py").write_text("Y = 2\n")
    assert main(["-C", str(root), "lock", "--check"]) == 1


def test_a_local_package_directory_with_a_hash_sign_in_a_mixed_env_syncs(
    make_project, make_index, conda_channels, tmp_path
) -> None:
    """The source hash rides in the URL's last ``#source-sha256=``: a '#' in the path is path."""
    root: Path = make_project(
        """
        [base]
        python = "3.11"
        conda.packages = { numpy = "*" }
        pypi.packages = { mylib = { path = "libs/lib#1" } }
        """,
        project_extra=f'conda.channels = ["{conda_channels.main_url}"]\n',
        index=make_index(DEFAULT_WHEELS),
    )
    write_local_package(root / "libs/lib#1", "mylib", "0.3.0", ["alpha>=2"])
    _linux_only(root)
    assert main(["-C", str(root), "lock"]) == 0
    (mylib,) = [
        p for p in read_conda_lock(root / "locks/base/conda-lock.yml").packages if p.name == "mylib"
    ]
    assert mylib.directory == "../../libs/lib#1"
    assert mylib.source_hash == source_hash(root / "libs/lib#1")
    store = tmp_path / "store"
    assert main(["-C", str(root), "sync", "--no-python", "--store", store.as_uri()]) == 0
    assert any(store.rglob("mylib-0.3.0-py3-none-any.whl"))


def test_a_named_pipe_in_a_local_package_is_an_error_not_a_hang(make_project, make_index) -> None:
    """Reading a FIFO blocks until a writer comes: the source hash must never open one."""
    root = _project(make_project, make_index)
    os.mkfifo(root / "libs/mylib/src/mylib/pipe")
    with pytest.raises(ConfigError) as info:
        load_config(root / "flowenv.toml")
    assert [d.render().replace(str(root) + "/", "") for d in info.value.diagnostics] == [
        "flowenv.toml:9: base.pypi.packages.mylib.path: 'libs/mylib': "
        "src/mylib/pipe is not a regular file, a directory or a symbolic link"
    ]


def test_locks_that_disagree_on_a_missing_source_vouch_for_nothing(
    make_project, make_index
) -> None:
    from flowenv.lockfiles.recorded_sources import recorded_source_hash

    root = _project(make_project, make_index)
    _linux_only(root)
    assert main(["-C", str(root), "-q", "lock"]) == 0
    digest = source_hash(root / "libs/mylib", root / "locks")
    assert recorded_source_hash(root, root / "locks", "libs/mylib") == digest
    assert recorded_source_hash(root, root / "locks", "libs/other") is None
    # A second lock (another env's, stale) recording another hash: no answer,
    # so the loader reports the missing directory instead of guessing.
    other = root / "locks/other/pylock.linux-64.toml"
    other.parent.mkdir()
    lock = (root / "locks/base/pylock.linux-64.toml").read_text()
    other.write_text(lock.replace(digest, "0" * 64))
    assert recorded_source_hash(root, root / "locks", "libs/mylib") is None
    shutil.rmtree(root / "libs")
    with pytest.raises(ConfigError, match="libs/mylib"):
        load_config(root / "flowenv.toml", missing_source=recorded_source_hash)
