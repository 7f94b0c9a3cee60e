"""gc against concurrent syncs and hydrates, for real: separate processes on one moto S3 server.

Three lock variants of one env share artifacts and take turns at the alias,
so every round makes garbage that another sync, starting at the same moment,
needs again: exactly the race a gc must survive (an artifact a sync found
present and skipped, deleted before its manifest is written). gc runs with no
grace period, so only the protocol (flowenv.store.gc) protects the syncs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from flowenv.cli import main
from flowenv.store import open_store
from flowenv.store.layout import alias_key, parse_alias, tag_key
from tests.support.stores import StoreTarget, s3_target
from tests.test_store_conformance import store_invariants

ROUNDS = 10
VARIANTS = ('alpha = "1.0"', 'alpha = "2.0"', 'alpha = "2.0", epsilon = "3.1"')


def _start(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowenv", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _hydrate(store: StoreTarget, prefix: Path, *args: str, cache: str) -> subprocess.Popen[str]:
    """An executor: no configuration, only the store, the project and the env name."""
    return _start(
        "hydrate", "base", "--store", store.url, "--project", "proj", "--prefix", str(prefix),
        *args, env={**os.environ, **store.env, "FLOWENV_CACHE_DIR": cache}, cwd=prefix.parent,
    )  # fmt: skip


def _variants(make_project, store: StoreTarget, tmp_path: Path) -> list[Path]:
    first = make_project(
        f'[base]\npython = "3.11"\npypi.packages = {{ {VARIANTS[0]} }}\n',
        project_extra=store.project_lines(),
    )
    roots = []
    for i, packages in enumerate(VARIANTS):
        root = tmp_path / f"variant{i}"
        shutil.copytree(first, root)
        toml = root / "flowenv.toml"
        toml.write_text(toml.read_text().replace(VARIANTS[0], packages))
        assert main(["-C", str(root), "lock"]) == 0
        roots.append(root)
    return roots


def test_gc_interleaved_with_syncs_and_hydrates(
    make_project, moto_process, flowenv_cache, tmp_path
) -> None:
    store_target = s3_target(moto_process)
    roots = _variants(make_project, store_target, tmp_path)
    base_env = {**os.environ, **store_target.env}
    assert main(["-C", str(roots[0]), "sync"]) == 0
    assert main(["-C", str(roots[0]), "store", "tag", "base", "stable"]) == 0
    store = open_store(store_target.url, store_target.options)
    removed = 0

    for round_ in range(ROUNDS):
        # Two syncs of different variants race for the alias while two gcs collect
        # whatever the alias just stopped naming, and a hydrate builds the tagged env.
        a, b = roots[round_ % 3], roots[(round_ + 1) % 3]
        cache = tmp_path / f"cache{round_}"
        url = store_target.url
        runs = [
            _start("-C", str(a), "sync", env={**base_env, "FLOWENV_CACHE_DIR": f"{cache}a"}, cwd=a),
            _start("store", "gc", "--store", url, "--grace", "0", "--json", env=base_env, cwd=a),
            _start("-C", str(b), "sync", env={**base_env, "FLOWENV_CACHE_DIR": f"{cache}b"}, cwd=b),
            _start("store", "gc", "--store", url, "--grace", "0", env=base_env, cwd=a),
            _hydrate(store_target, tmp_path / f"tag{round_}", "--tag", "stable", cache=f"{cache}h"),
        ]
        outputs = [p.communicate() for p in runs]
        assert [p.returncode for p in runs] == [0] * len(runs), outputs
        removed += int('"objects_removed": 0' not in outputs[1][0])

        # No manifest names a missing artifact, and every rooted env builds from the store.
        manifests = store_invariants(store_target)
        for platform in ("linux-64", "osx-arm64"):
            for key in (
                alias_key("proj", "base", platform),
                tag_key("proj", "base", platform, "stable"),
            ):
                data = store.read(key)
                assert data is not None
                env_id = parse_alias(data, key)
                assert f"envs/{env_id}/{platform}/manifest.json" in manifests
        hydrated = _hydrate(store_target, tmp_path / f"current{round_}", cache=f"{cache}c")
        _, err = hydrated.communicate()
        assert hydrated.returncode == 0, err
        # Each round's fresh cache means every artifact came from the store, now.
        assert (tmp_path / f"cache{round_}c" / "artifacts").is_dir()
        shutil.rmtree(tmp_path / f"current{round_}")
        shutil.rmtree(tmp_path / f"tag{round_}")

    # The gcs did collect: the race was real, not avoided.
    assert removed > 0
