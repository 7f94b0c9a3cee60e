"""The executor's cache: warm hydrates, no growth, hard links to a local store, info/prune, and
many hydrates at once into one cache (a node's fan-out), from a local folder and from S3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowenv.cli import main
from tests.support.stores import run_flowenv, s3_target

BODY = """\
[base]
python = "3.11"
pypi.packages = { delta = "0.5" }

[envs.small]
pypi.packages = { beta = "1.0" }
"""
BASE_WHEELS = {"alpha-2.0", "beta-1.5", "delta-0.5", "gamma-1.0"}


def _project(make_project, store_lines: str) -> Path:
    root = make_project(BODY, project_extra=store_lines)
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"linux-64", "osx-arm64"', '"linux-64"', 1))
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert main(["-q", "-C", str(root), "sync"]) == 0
    return root


@pytest.fixture
def local_store(make_project, tmp_path: Path) -> Path:
    """A project synced to a local-folder store; returns the store's directory."""
    store = tmp_path / "store"
    _project(make_project, f'store = "{store}"\n')
    return store


def _executor_env(cache: Path, store: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    return env | {
        "FLOWENV_CACHE_DIR": str(cache),
        "FLOWENV_STORE": store,
        "FLOWENV_PROJECT": "proj",
        **(extra or {}),
    }


def _hydrate(env: dict[str, str], name: str, prefix: Path, cwd: Path) -> dict[str, object]:
    ran = run_flowenv("hydrate", name, "--prefix", str(prefix), "--json", env=env, cwd=cwd)
    assert ran.returncode == 0, ran.stderr
    data: dict[str, object] = json.loads(ran.stdout)
    return data


def _snapshot(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its size, bookkeeping aside.

    Aside: uv's interpreter-info entry (about 2 KB per new prefix: it queries each new
    venv's interpreter once), the per-prefix record (``prefixes/``, what ``cache prune``
    reads) and lock files (empty, and bounded in number by their hash buckets).
    """
    found: dict[str, int] = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            if relative.startswith(("uv/interpreter-v", "prefixes/")):
                continue
            if relative.startswith("locks/"):
                assert path.lstat().st_size == 0
                continue
            found[relative] = path.lstat().st_size
    return found


def _wheels_unpacked(cache: Path) -> list[str]:
    """The wheels uv unpacked into its cache (one ``*.dist-info`` per unpacking)."""
    return sorted(
        p.name.removesuffix(".dist-info") for p in (cache / "uv").glob("archive-v*/*/*.dist-info")
    )


def test_a_warm_hydrate_into_a_new_prefix_unpacks_nothing_and_grows_nothing(
    local_store: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "node-cache"
    env = _executor_env(cache, str(local_store))
    first = _hydrate(env, "base", tmp_path / "p1", tmp_path)
    after_first = _snapshot(cache)
    unpacked = _wheels_unpacked(cache)
    for n in (2, 3, 4):
        again = _hydrate(env, "base", tmp_path / f"p{n}", tmp_path)
        assert (again["env_id"], again["reused"]) == (first["env_id"], False)

    assert set(unpacked) == BASE_WHEELS
    assert _wheels_unpacked(cache) == unpacked  # uv unpacked each wheel once, not once per hydrate
    assert _snapshot(cache) == after_first  # same files, same sizes: no growth
    site = tmp_path / "p4/lib/python3.11/site-packages"
    assert {p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info")} == BASE_WHEELS


def test_local_store_and_cache_share_each_artifact_as_one_inode(
    local_store: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "node-cache"
    _hydrate(_executor_env(cache, str(local_store)), "base", tmp_path / "p", tmp_path)

    cached = sorted((cache / "artifacts").rglob("*.whl"))
    assert len(cached) == len(BASE_WHEELS)
    for in_cache in cached:
        in_store = local_store / in_cache.relative_to(cache)
        assert in_store.stat().st_ino == in_cache.stat().st_ino
        # store + cache + the cache's find-links directory: three names, one file.
        assert in_store.stat().st_nlink == 3


def _cache_cli(cache: Path, *args: str, monkeypatch: pytest.MonkeyPatch, capsys) -> str:
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(cache))
    capsys.readouterr()
    assert main(["cache", *args]) == 0
    out: str = capsys.readouterr().out
    return out


def test_cache_info_and_prune_drop_only_what_no_env_uses(
    local_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    cache = tmp_path / "node-cache"
    env = _executor_env(cache, str(local_store))
    _hydrate(env, "base", tmp_path / "base-env", tmp_path)
    _hydrate(env, "small", tmp_path / "small-env", tmp_path)

    def info() -> dict[str, object]:
        data: dict[str, object] = json.loads(
            _cache_cli(cache, "info", "--json", monkeypatch=monkeypatch, capsys=capsys)
        )
        return data

    before = info()
    assert (before["artifacts"], before["unused_artifacts"], before["stale_records"]) == (5, 0, 0)
    assert before["envs"] == [str(tmp_path / "base-env"), str(tmp_path / "small-env")]

    import shutil

    shutil.rmtree(tmp_path / "base-env")
    gone = info()
    # beta 1.0 is small's; base's four wheels are used by nothing now.
    assert (gone["unused_artifacts"], gone["stale_records"]) == (4, 1)
    assert gone["envs"] == [str(tmp_path / "small-env")]

    dry = _cache_cli(cache, "prune", "--dry-run", monkeypatch=monkeypatch, capsys=capsys)
    assert dry.startswith("would remove 4 unused artifacts (")
    assert info()["artifacts"] == 5
    out = _cache_cli(cache, "prune", monkeypatch=monkeypatch, capsys=capsys)
    assert out.startswith("removed 4 unused artifacts (")
    assert out.endswith(" and 1 records of envs since removed\n")

    after = info()
    assert (after["artifacts"], after["unused_artifacts"], after["stale_records"]) == (1, 0, 0)
    assert sorted(p.name for p in (cache / "wheels").iterdir()) == ["beta-1.0-py3-none-any.whl"]
    # What is left still builds the env that uses it, and base comes back from the store.
    _hydrate(env, "small", tmp_path / "small-again", tmp_path)
    _hydrate(env, "base", tmp_path / "base-again", tmp_path)
    assert info()["unused_artifacts"] == 0


WORKERS = 16


def hydrate_at_once(
    env: dict[str, str], prefixes: list[Path], cwd: Path
) -> list[dict[str, object]]:
    """``flowenv hydrate base`` in ``len(prefixes)`` processes started together."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flowenv", "hydrate", "base", "--prefix", str(p), "--json"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in prefixes
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def _assert_cache_holds_each_artifact_once(cache: Path) -> None:
    files = sorted(p.name for p in (cache / "artifacts").rglob("*") if p.is_file())
    verified = {
        f".{w}-py3-none-{'manylinux_2_17_x86_64' if w.startswith('gamma') else 'any'}.whl.verified"
        for w in BASE_WHEELS
    }
    wheels = {v.removeprefix(".").removesuffix(".verified") for v in verified}
    # One file per artifact, its verified marker, and no temporary leftovers.
    assert sorted(files) == sorted(wheels | verified)
    assert sorted(p.name for p in (cache / "wheels").iterdir()) == sorted(wheels)
    assert _wheels_unpacked(cache) == sorted(BASE_WHEELS)


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_16_concurrent_hydrates_into_separate_prefixes_share_one_cache(
    make_project, moto_server, tmp_path: Path, store_kind: str
) -> None:
    if store_kind == "local":
        url, extra = str(tmp_path / "store"), {}
        _project(make_project, f'store = "{url}"\n')
    else:
        target = s3_target(moto_server)
        _project(make_project, target.project_lines())
        url, extra = target.url, target.env
    cache = tmp_path / "node-cache"
    env = _executor_env(cache, url, extra)
    prefixes = [tmp_path / f"worker-{i}" for i in range(WORKERS)]

    results = hydrate_at_once(env, prefixes, tmp_path)

    assert len({r["env_id"] for r in results}) == 1
    assert [r["reused"] for r in results] == [False] * WORKERS  # each prefix built, once
    for prefix in prefixes:
        site = prefix / "lib/python3.11/site-packages"
        assert {p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info")} == BASE_WHEELS
    _assert_cache_holds_each_artifact_once(cache)


def test_16_concurrent_hydrates_into_one_prefix_build_it_once(
    local_store: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "node-cache"
    env = _executor_env(cache, str(local_store))
    prefix = tmp_path / "shared-env"

    results = hydrate_at_once(env, [prefix] * WORKERS, tmp_path)

    assert sorted(r["reused"] for r in results) == [False] + [True] * (WORKERS - 1)
    ran = subprocess.run(
        [str(prefix / "bin/python"), "-c", "import delta, alpha, beta, gamma"], check=False
    )
    assert ran.returncode == 0
    _assert_cache_holds_each_artifact_once(cache)


def _cached(cache, data: bytes, name: str) -> Path:
    import hashlib

    from flowenv.store.cache import ArtifactCache

    assert isinstance(cache, ArtifactCache)
    sha256 = hashlib.sha256(data).hexdigest()
    return cache.add(sha256, name, "test", lambda out: out.write(data))


def test_the_shared_wheel_dir_never_serves_other_bytes_under_a_name(tmp_path: Path) -> None:
    from flowenv.store.cache import ArtifactCache

    cache = ArtifactCache(tmp_path / "c")
    name = "pkg-1.0-py3-none-any.whl"
    first = _cached(cache, b"one", name)
    assert cache.link_wheels([first]) == cache.wheel_dir()
    assert (cache.wheel_dir() / name).samefile(first)

    # Another wheel of the same name (another index's build): the caller must use a
    # private directory, and the shared link keeps serving the first one.
    other = _cached(cache, b"two", name)
    assert cache.link_wheels([other]) is None
    assert (cache.wheel_dir() / name).read_bytes() == b"one"

    # Once the first leaves the cache, its link is an orphan and is replaced.
    first.unlink()
    assert cache.link_wheels([other]) == cache.wheel_dir()
    assert (cache.wheel_dir() / name).samefile(other)


def test_a_warm_conda_hydrate_grows_nothing_either(
    make_project, conda_channels, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    root = make_project(
        '[base]\npython = "3.11"\nconda.packages = { "scikit-learn" = "1.3.1" }\n',
        project_extra=f'conda.channels = ["{conda_channels.main_url}"]\nstore = "{store}"\n',
    )
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('"linux-64", "osx-arm64"', '"linux-64"', 1))
    assert main(["-q", "-C", str(root), "lock"]) == 0
    assert main(["-q", "-C", str(root), "sync"]) == 0
    cache = tmp_path / "node-cache"
    env = _executor_env(cache, str(store))

    _hydrate(env, "base", tmp_path / "c1", tmp_path)
    after_first = _snapshot(cache)
    for n in (2, 3):
        assert _hydrate(env, "base", tmp_path / f"c{n}", tmp_path)["reused"] is False
    assert _snapshot(cache) == after_first
    assert (
        len(list((cache / "artifacts").rglob("*.conda")))
        + len(list((cache / "artifacts").rglob("*.tar.bz2")))
        == 5
    )
