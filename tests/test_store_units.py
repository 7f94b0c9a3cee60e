"""Store URLs, backend hints, and errors that never show a storage option's value."""

from __future__ import annotations

import json

import pytest

from flowenv.cli import main
from flowenv.errors import StoreError, UsageError
from flowenv.store import open_store, registry
from flowenv.store.layout import Manifest, check_filename


def test_unknown_scheme_is_a_usage_error() -> None:
    with pytest.raises(
        UsageError, match=r"^unsupported store URL scheme 'ftp://' in 'ftp://h/x'; "
    ):
        open_store("ftp://h/x")


def test_missing_backend_names_the_extra(monkeypatch) -> None:
    missing = registry.Backend(
        protocol="gs", module="flowenv_no_such_module", install_hint="pip install 'flowenv[gcs]'"
    )
    monkeypatch.setitem(registry.BACKENDS, "gs", missing)
    with pytest.raises(UsageError) as info:
        open_store("gs://bucket/x")
    assert info.value.message == (
        "store gs:// needs the 'flowenv_no_such_module' package: pip install 'flowenv[gcs]'"
    )


@pytest.mark.parametrize(
    "name", ["../x.whl", "a/b.whl", "a\\b.whl", "..", ".hidden.whl", "", "c:x.whl"]
)
def test_unsafe_artifact_names_are_refused(name: str) -> None:
    with pytest.raises(StoreError, match="not a plain file name"):
        check_filename(name, "lock")


def test_edited_manifest_no_longer_matches_its_env_id() -> None:
    manifest = Manifest(
        kind="pypi",
        platform="linux-64",
        python="3.11",
        lock_name="pylock.linux-64.toml",
        artifacts=(),
    )
    data = json.loads(manifest.to_json())
    data["python"] = "3.12"
    with pytest.raises(StoreError, match=r"manifest content does not match its env id"):
        Manifest.from_json(json.dumps(data), "m.json")


def test_store_errors_never_show_option_values(
    make_project, moto_server, flowenv_cache, capsys
) -> None:
    options = {
        "key": "AKIDSECRETKEYID",
        "secret": "very-secret-value",
        "client_kwargs": {"endpoint_url": moto_server},
    }
    extra = (
        f'store = "s3://no-such-bucket-flowenv/x"\nstore-options = {{ key = "{options["key"]}", '
        f'secret = "{options["secret"]}", client_kwargs = {{ endpoint_url = "{moto_server}" }} }}\n'
    )
    root = make_project(
        '[base]\npython = "3.11"\npypi.packages = { beta = "1.0" }\n', project_extra=extra
    )
    assert main(["-C", str(root), "lock"]) == 0
    capsys.readouterr()
    assert main(["-C", str(root), "sync"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("flowenv: error: s3://no-such-bucket-flowenv/x: cannot ")
    assert "very-secret-value" not in err
    assert "AKIDSECRETKEYID" not in err
    assert "Traceback" not in err


def test_cache_checks_again_a_file_changed_after_it_was_verified(tmp_path) -> None:
    import hashlib
    import os

    from flowenv.store.cache import ArtifactCache

    cache = ArtifactCache(tmp_path / "cache")
    data = b"the locked wheel"
    sha = hashlib.sha256(data).hexdigest()
    name = "x-1.0-py3-none-any.whl"
    path = cache.add(sha, name, "lock", lambda out: out.write(data))
    assert cache.get(sha, name) == path
    assert path.with_name(f".{name}.verified").is_file()

    # Replaced by other bytes of the same size: a new inode, so no longer trusted.
    swap = path.with_name("swap")
    swap.write_bytes(b"THE LOCKED WHEEL")
    os.replace(swap, path)
    assert cache.get(sha, name) is None
    assert sorted(p.name for p in path.parent.iterdir()) == []

    path = cache.add(sha, name, "lock", lambda out: out.write(data))
    with path.open("r+b") as handle:
        handle.truncate(3)
    assert cache.get(sha, name) is None
    assert not path.exists()


def test_sync_refuses_a_wheel_changed_since_it_was_locked(
    make_project, make_index, moto_server, flowenv_cache, tmp_path, capsys
) -> None:
    from tests.support.stores import s3_target
    from tests.support.wheels import DEFAULT_WHEELS

    index = make_index(DEFAULT_WHEELS)
    store = s3_target(moto_server)
    root = make_project(
        '[base]\npython = "3.11"\npypi.packages = { beta = "1.0" }\n',
        project_extra=store.project_lines(),
        index=index,
    )
    assert main(["-C", str(root), "lock"]) == 0
    wheel = tmp_path / "index-wheels/beta-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not the locked wheel")
    capsys.readouterr()

    assert main(["-C", str(root), "sync"]) == 4
    err = capsys.readouterr().err
    assert err.startswith(
        "flowenv: error:\nsync incomplete; re-run to finish:\n"
        f"  sha256 mismatch for beta-1.0-py3-none-any.whl from {wheel.as_uri()}: expected "
    )
    assert err.endswith("; nothing was uploaded\n")
    assert open_store(store.url, store.options).list_sizes() == {}
