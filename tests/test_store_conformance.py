"""The same store behaviour on every backend: local folder, S3 (moto), GCS (emulator), Azure.

Each test gets a fresh, empty store from ``store_target`` (tests/support/stores.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flowenv.cli import main
from flowenv.config.discover import discover_config
from flowenv.config.load import load_config
from flowenv.hydrate import hydrate
from flowenv.store import open_store
from flowenv.store.layout import Manifest, alias_key, parse_alias
from flowenv.sync import sync
from tests.support.stores import StoreTarget, run_flowenv

BODY = """
[base]
python = "3.11"
pypi.packages = { delta = "0.5" }
"""


def locked_project(make_project, store: StoreTarget, body: str = BODY) -> Path:
    root = make_project(body, project_extra=store.project_lines())
    assert main(["-C", str(root), "lock"]) == 0
    return root


def store_invariants(store: StoreTarget) -> list[str]:
    """Every manifest's artifacts are in the store; returns the manifests' keys."""
    opened = open_store(store.url, store.options)
    keys = opened.list_sizes()
    manifests = sorted(k for k in keys if k.endswith("/manifest.json"))
    for key in manifests:
        data = opened.read(key)
        assert data is not None
        manifest = Manifest.from_json(data, key, expected_env_id=key.split("/")[1])
        for artifact in manifest.artifacts:
            assert keys.get(artifact.key) == artifact.size, f"{key} names missing {artifact.key}"
    return manifests


def test_sync_then_hydrate_then_import(make_project, store_target, flowenv_cache, tmp_path) -> None:
    root = locked_project(make_project, store_target)
    config = load_config(discover_config(start=root))

    summary = sync(config)
    # alpha, beta, delta and one gamma wheel per platform.
    assert (summary.uploaded, summary.present, summary.manifests_written) == (5, 0, 2)
    assert [(e.env, e.platform, e.status) for e in summary.envs] == [
        ("base", "linux-64", "written"),
        ("base", "osx-arm64", "written"),
    ]
    assert len(store_invariants(store_target)) == 2

    again = sync(config)
    assert (again.uploaded, again.present, again.manifests_written, again.aliases_written) == (
        0,
        5,
        0,
        0,
    )
    assert [e.env_id for e in again.envs] == [e.env_id for e in summary.envs]

    # The executor: no configuration, only the store, the project and the env name.
    env = hydrate(
        None,
        "base",
        store_url=store_target.url,
        project="proj",
        prefix=tmp_path / "env",
        store_options=store_target.options,
    )
    assert env.env_id == summary.envs[0].env_id
    assert (env.prefix, env.reused) == (tmp_path / "env", False)
    out = subprocess.run(
        [
            str(env.python),
            "-c",
            "import alpha, beta, delta, gamma; print(alpha.VERSION, gamma.TAG)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "2.0 py3-none-manylinux_2_17_x86_64\n"
    assert (
        hydrate(
            None,
            "base",
            store_url=store_target.url,
            project="proj",
            prefix=tmp_path / "env",
            store_options=store_target.options,
        ).reused
        is True
    )


def test_tampered_artifact_is_refused_and_deleted(
    make_project, store_target, flowenv_cache, tmp_path, capsys, monkeypatch
) -> None:
    root = locked_project(make_project, store_target)
    assert main(["-C", str(root), "sync"]) == 0
    executor_cache = tmp_path / "executor-cache"
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(executor_cache))
    fs = store_target.filesystem()
    wheel = next(p for p in fs.find(store_target.root) if p.endswith("alpha-2.0-py3-none-any.whl"))
    fs.pipe_file(wheel, b"not the locked wheel")
    capsys.readouterr()

    assert main(["-C", str(root), "hydrate", "base", "--prefix", str(tmp_path / "env")]) == 4
    err = capsys.readouterr().err
    assert err.startswith("flowenv: error: sha256 mismatch for alpha-2.0-py3-none-any.whl from ")
    assert "the file was deleted and nothing was installed" in err
    assert "Traceback" not in err
    assert not (tmp_path / "env").exists()
    assert list(executor_cache.rglob("alpha-2.0-*")) == []
    assert list(executor_cache.rglob("*.part")) == []


def test_lock_naming_a_path_outside_is_refused(
    make_project, store_target, flowenv_cache, capsys
) -> None:
    root = locked_project(make_project, store_target)
    lock = root / "locks/base/pylock.linux-64.toml"
    text = lock.read_text()
    entry = '{ url = "file://'
    assert text.count(entry) == 4
    # PEP 751 lets a wheel entry name its file; a hostile lock names one outside the cache.
    lock.write_text(text.replace(entry, '{ name = "../../x.whl", url = "file://', 1))
    capsys.readouterr()
    # Locking may leave its freshness record in the cache; the refused sync adds nothing.
    cached_before = sorted(flowenv_cache.rglob("*"))

    assert main(["-C", str(root), "sync"]) == 4
    err = capsys.readouterr().err
    assert err == (
        f"flowenv: error: {lock}: packages[0].wheels[0]: refusing artifact name '../../x.whl': "
        "not a plain file name\n"
    )
    assert open_store(store_target.url, store_target.options).list_sizes() == {}
    assert sorted(flowenv_cache.rglob("*")) == cached_before


def test_concurrent_syncs_both_succeed(make_project, store_target, flowenv_cache, tmp_path) -> None:
    root = locked_project(make_project, store_target)
    env = {**os.environ, **store_target.env}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "flowenv", "-C", str(root), "sync", "-j", "2"],
            env={**env, "FLOWENV_CACHE_DIR": str(tmp_path / f"cache{i}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate() for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    assert len(store_invariants(store_target)) == 2
    config = load_config(discover_config(start=root))
    after = sync(config)
    assert (after.uploaded, after.manifests_written, after.aliases_written) == (0, 0, 0)


def test_hydrate_cli_without_config(make_project, store_target, flowenv_cache, tmp_path) -> None:
    root = locked_project(make_project, store_target)
    assert main(["-C", str(root), "sync"]) == 0
    executor = tmp_path / "executor"
    executor.mkdir()
    env = {
        **os.environ,
        **store_target.env,
        "FLOWENV_CACHE_DIR": str(tmp_path / "exec-cache"),
    }
    hydrated = run_flowenv(
        "hydrate",
        "base",
        "--store",
        store_target.url,
        "--project",
        "proj",
        "--json",
        cwd=executor,
        env=env,
    )
    assert hydrated.returncode == 0, hydrated.stderr
    info = json.loads(hydrated.stdout)
    assert Path(info["prefix"]).parent == tmp_path / "exec-cache" / "envs"
    assert (info["env"], info["kind"], info["reused"]) == ("base", "pypi", False)
    ran = run_flowenv(
        "run",
        "base",
        "--store",
        store_target.url,
        "--project",
        "proj",
        "--",
        "python",
        "-c",
        "import delta, sys; print(delta.VERSION, sys.prefix)",
        cwd=executor,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"0.5 {info['prefix']}\n"


def test_hydrate_env_id_pins_an_older_sync(
    make_project, store_target, flowenv_cache, tmp_path, capsys
) -> None:
    """Two versions of one env synced under one name: ``--env-id`` builds the one it names."""
    root = locked_project(
        make_project, store_target, '[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n'
    )
    config = load_config(discover_config(start=root))
    old = next(e.env_id for e in sync(config).envs if e.platform == "linux-64")
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = "1.0"', 'alpha = "2.0"'))
    assert main(["-C", str(root), "lock"]) == 0
    config = load_config(discover_config(start=root))
    new = next(e.env_id for e in sync(config).envs if e.platform == "linux-64")
    assert new != old
    store = open_store(store_target.url, store_target.options)
    alias = store.read(alias_key("proj", "base", "linux-64"))
    assert alias is not None
    assert parse_alias(alias, "current") == new

    # The executor: no configuration and no --project; only the store and the env id.
    executor = tmp_path / "executor"
    executor.mkdir()
    env = {
        **os.environ,
        **store_target.env,
        "FLOWENV_CACHE_DIR": str(tmp_path / "exec-cache"),
    }
    pinned = ["base", "--store", store_target.url, "--env-id", old]
    hydrated = run_flowenv("hydrate", *pinned, "--json", cwd=executor, env=env)
    assert hydrated.returncode == 0, hydrated.stderr
    info = json.loads(hydrated.stdout)
    assert (info["env"], info["env_id"], info["reused"]) == ("base", old, False)
    probe = (
        "import alpha, importlib.util, sys; "
        "print(alpha.VERSION, importlib.util.find_spec('beta'), sys.prefix)"
    )
    ran = run_flowenv("run", *pinned, "--", "python", "-c", probe, cwd=executor, env=env)
    assert ran.returncode == 0, ran.stderr
    # alpha 1.0 and not alpha 2.0's beta, although the alias names the alpha 2.0 env.
    assert ran.stdout == f"1.0 None {info['prefix']}\n"

    # With the project at hand, --env-id wins over the local lock's (the alpha 2.0) env id.
    capsys.readouterr()
    unknown = "0123456789abcdef" * 2
    assert main(["-C", str(root), "hydrate", "base", "--env-id", unknown]) == 4
    assert capsys.readouterr().err == (
        f"flowenv: error: {store.url}: no env id {unknown} for linux-64 "
        "(run `flowenv sync` where it was locked)\n"
    )
    assert main(["-C", str(root), "hydrate", "base", "--env-id", f"../{old}"]) == 2
    assert capsys.readouterr().err == (
        f"flowenv: error: invalid env id '../{old}': expected 32 lowercase hex digits "
        "(as `flowenv sync` prints it)\n"
    )


def _ls(root: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["-C", str(root), "store", "ls", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tags_ls_and_gc(make_project, store_target, flowenv_cache, tmp_path, capsys) -> None:
    """Two locks of one env synced in turn: tag the old one, list, collect, hydrate by tag."""
    root = locked_project(
        make_project, store_target, '[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n'
    )
    config = load_config(discover_config(start=root))
    old = {e.platform: e.env_id for e in sync(config).envs}
    capsys.readouterr()
    assert main(["-C", str(root), "store", "tag", "base", "stable", "-p", "linux-64"]) == 0
    assert capsys.readouterr().out == f"tagged base · linux-64  {old['linux-64']}  as stable\n"
    toml = root / "flowenv.toml"
    toml.write_text(toml.read_text().replace('alpha = "1.0"', 'alpha = "2.0"'))
    assert main(["-C", str(root), "lock"]) == 0
    config = load_config(discover_config(start=root))
    new = {e.platform: e.env_id for e in sync(config).envs}
    capsys.readouterr()
    store = open_store(store_target.url, store_target.options)
    alpha1 = next(k for k in store.list_sizes() if k.endswith("/alpha-1.0-py3-none-any.whl"))

    listing = _ls(root, capsys)
    assert (listing["stored"], listing["unreferenced"]) == (4, 1)
    rows = {(e["project"], e["env"], e["platform"]): e for e in listing["envs"]}
    assert sorted(rows) == [("proj", "base", "linux-64"), ("proj", "base", "osx-arm64")]
    linux = rows[("proj", "base", "linux-64")]
    assert (linux["env_id"], linux["tags"], linux["pins"], linux["missing"]) == (
        new["linux-64"],
        {"stable": old["linux-64"]},
        [],
        [],
    )
    # alpha 2.0 + beta 1.5, as uploaded; the project is no git repository.
    sizes = store.list_sizes()
    wanted = ("/alpha-2.0-", "/beta-1.5-")
    assert linux["size"] == sum(s for k, s in sizes.items() if any(w in k for w in wanted))
    assert linux["commit"] is None
    assert linux["synced_at"].endswith("+00:00")
    assert rows[("proj", "base", "osx-arm64")]["tags"] == {}

    # Everything is younger than the default grace period: nothing goes.
    capsys.readouterr()
    assert main(["-C", str(root), "store", "gc"]) == 0
    assert capsys.readouterr().out.startswith("removed 0 envs and 0 artifacts (0 B)")

    before = store.list_sizes()
    assert main(["-C", str(root), "store", "gc", "--grace", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"would remove env {old['osx-arm64']}/osx-arm64"
    assert "would remove 1 envs and 0 artifacts" in out
    assert store.list_sizes() == before

    assert main(["-C", str(root), "store", "gc", "--grace", "0"]) == 0
    assert "removed 1 envs and 0 artifacts" in capsys.readouterr().out
    after = store.list_sizes()
    assert sorted(set(before) - set(after)) == sorted(
        k for k in before if k.startswith(f"envs/{old['osx-arm64']}/")
    )
    assert alpha1 in after  # the tagged env still names it
    store_invariants(store_target)

    # The tag builds the old env on an executor, from the store alone.
    env = {**os.environ, **store_target.env, "FLOWENV_CACHE_DIR": str(tmp_path / "exec")}
    tagged = ["base", "--store", store_target.url, "--project", "proj", "--tag", "stable"]
    ran = run_flowenv(
        "run",
        *tagged,
        "--",
        "python",
        "-c",
        "import alpha; print(alpha.VERSION)",
        env=env,
        cwd=tmp_path,
    )
    assert (ran.returncode, ran.stdout) == (0, "1.0\n"), ran.stderr

    # Untagged, the old env and the artifact only it used go.
    assert main(["-C", str(root), "store", "tag", "base", "stable", "--delete"]) == 0
    assert capsys.readouterr().out == f"untagged base · linux-64  {old['linux-64']}  as stable\n"
    assert main(["-C", str(root), "store", "gc", "--grace", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["envs_removed"], report["artifacts_removed"]) == (
        [f"{old['linux-64']}/linux-64"],
        1,
    )
    assert report["bytes_removed"] == before[alpha1] + sum(
        size for key, size in before.items() if key.startswith(f"envs/{old['linux-64']}/")
    )
    assert alpha1 not in store.list_sizes()
    assert sorted(store_invariants(store_target)) == sorted(
        f"envs/{i}/{p}/manifest.json" for p, i in new.items()
    )
    # The current envs still hydrate.
    current = run_flowenv(
        "hydrate", "base", "--store", store_target.url, "--project", "proj", env=env, cwd=tmp_path
    )
    assert current.returncode == 0, current.stderr
    ls_after = _ls(root, capsys)
    assert (ls_after["stored"], ls_after["unreferenced"]) == (2, 0)


def test_tag_and_hydrate_errors(make_project, store_target, flowenv_cache, capsys) -> None:
    root = locked_project(make_project, store_target)
    capsys.readouterr()
    assert main(["-C", str(root), "store", "tag", "base", "stable"]) == 4
    url = open_store(store_target.url, store_target.options).url
    assert capsys.readouterr().err == (
        f"flowenv: error: {url}: no env 'base' in project 'proj' (run `flowenv sync` first)\n"
    )
    assert main(["-C", str(root), "sync"]) == 0
    capsys.readouterr()
    assert main(["-C", str(root), "store", "tag", "base", "current"]) == 2
    assert capsys.readouterr().err == "flowenv: error: invalid tag name 'current': reserved\n"
    assert main(["-C", str(root), "store", "tag", "base", "../x"]) == 2
    assert "invalid tag name '../x'" in capsys.readouterr().err
    unknown = "0123456789abcdef" * 2
    assert main(["-C", str(root), "store", "tag", "base", "x", "--env-id", unknown]) == 4
    assert capsys.readouterr().err == (
        f"flowenv: error: {url}: env id {unknown} for linux-64 is not in the store; "
        "nothing was tagged\n"
    )
    assert main(["-C", str(root), "hydrate", "base", "--tag", "nope"]) == 4
    assert capsys.readouterr().err == (
        f"flowenv: error: {url}: no tag 'nope' of env 'base' for linux-64 in project 'proj' "
        "(see `flowenv store ls`)\n"
    )


def _gc_during_first_pass(monkeypatch, store_target: StoreTarget) -> list[bool]:
    """Run a gc (no grace) inside the next sync, after it read the store and before it writes."""
    import flowenv.sync
    from flowenv.store.gc import gc

    real_pass = flowenv.sync._pass
    calls: list[bool] = []

    def pass_after_a_gc(*args, **kwargs):
        if not calls:
            gc(open_store(store_target.url, store_target.options), grace_seconds=0)
        calls.append(kwargs["full_check"])
        return real_pass(*args, **kwargs)

    monkeypatch.setattr(flowenv.sync, "_pass", pass_after_a_gc)
    return calls


def test_sync_repeats_a_pass_a_gc_overlapped(
    make_project, store_target, flowenv_cache, monkeypatch
) -> None:
    """The race gc must survive, made to happen: a sync finds an old env and its artifact
    present (so it uploads nothing), then a gc deletes both before the sync points its alias
    at them. The sync sees the gc's marker and repeats its pass, uploading them again."""
    root = locked_project(
        make_project, store_target, '[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n'
    )
    first = {e.platform: e.env_id for e in sync(load_config(discover_config(start=root))).envs}
    toml = root / "flowenv.toml"
    one, two = toml.read_text(), toml.read_text().replace('alpha = "1.0"', 'alpha = "2.0"')
    toml.write_text(two)
    assert main(["-C", str(root), "lock"]) == 0
    sync(load_config(discover_config(start=root)))  # the alias moves away from the first env
    toml.write_text(one)
    assert main(["-C", str(root), "lock"]) == 0

    calls = _gc_during_first_pass(monkeypatch, store_target)
    summary = sync(load_config(discover_config(start=root)))
    assert calls == [False, True]
    assert {e.platform: e.env_id for e in summary.envs} == first
    assert (summary.uploaded, summary.manifests_written) == (1, 2)  # alpha 1.0, both manifests
    manifests = store_invariants(store_target)
    assert {f"envs/{i}/{p}/manifest.json" for p, i in first.items()} <= set(manifests)


def test_without_the_protocol_the_race_breaks_the_store(
    make_project, store_target, flowenv_cache, monkeypatch
) -> None:
    """The same race with the gc check switched off leaves an alias naming a deleted env:
    proof that the test above exercises the protocol, not luck."""
    import flowenv.sync

    root = locked_project(
        make_project, store_target, '[base]\npython = "3.11"\npypi.packages = { alpha = "1.0" }\n'
    )
    sync(load_config(discover_config(start=root)))
    toml = root / "flowenv.toml"
    one = toml.read_text()
    toml.write_text(one.replace('alpha = "1.0"', 'alpha = "2.0"'))
    assert main(["-C", str(root), "lock"]) == 0
    sync(load_config(discover_config(start=root)))
    toml.write_text(one)
    assert main(["-C", str(root), "lock"]) == 0

    monkeypatch.setattr(flowenv.sync, "gc_overlapped", lambda before, after: False)
    _gc_during_first_pass(monkeypatch, store_target)
    summary = sync(load_config(discover_config(start=root)))
    store = open_store(store_target.url, store_target.options)
    linux = next(e for e in summary.envs if e.platform == "linux-64")
    alias = store.read(alias_key("proj", "base", "linux-64"))
    assert alias is not None
    assert parse_alias(alias, "current") == linux.env_id
    assert store.read(f"envs/{linux.env_id}/linux-64/manifest.json") is None


def test_each_s3_target_is_served_by_the_client_it_names(store_target) -> None:
    """"s3" runs these tests through flowenv's own S3 client, "s3fs" through the fallback."""
    served = open_store(store_target.url, store_target.options).backend.module
    expected = {
        "s3": "flowenv.store.s3_fast",
        "s3fs": "s3fs",
        "gcs": "gcsfs",
        "azure": "adlfs",
        "file": "fsspec.implementations.local",
    }
    assert served == expected[store_target.kind]
