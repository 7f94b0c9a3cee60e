"""Private index credentials reach uv, rattler and sync, and never a lock file or a message.

The index is a real HTTP server on 127.0.0.1 that answers 401 without the
right basic-auth header; uv gets the credentials from the index URL or from a
netrc file (``NETRC``), the two sources uv reads without extra set-up, or
from ``UV_INDEX_<NAME>_USERNAME/PASSWORD`` for a named index. ``sync`` then
downloads the locked files from the same server with the same credentials,
which the lock does not hold. Conda channels may carry anaconda.org's
``/t/<token>/`` path segment and direct URLs a ``?token=`` query: the same rules.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import shutil
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.lockfiles.pylock import read_pylock
from flowenv.store.cache import ArtifactCache, fetch_locked
from flowenv.url_credentials import SourceAuth, redact, strip_credentials
from tests.support.conda_channel import CondaChannels
from tests.support.index_server import serve_directory, serve_handler, serve_index
from tests.support.wheels import DEFAULT_WHEELS, build_simple_index, build_wheel

USER = "alice"
SECRET = "s3cret-t0ken"


@pytest.fixture
def private_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of an index that wants ``alice:s3cret-t0ken``."""
    # Private caches: uv would otherwise answer from pages another test fetched,
    # and sync from wheels another test downloaded.
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(tmp_path / "flowenv-cache"))
    wheels = [build_wheel(spec, tmp_path / "wheels") for spec in DEFAULT_WHEELS]
    with serve_index(wheels, tmp_path / "served", credentials=(USER, SECRET)) as url:
        yield url


def _project(root: Path, index_url: str, packages: str = 'delta = "0.5"') -> Path:
    root.mkdir()
    (root / "flowenv.toml").write_text(
        "[project]\n"
        'platforms = ["linux-64", "osx-arm64"]\n'
        f'pypi.index-url = "{index_url}/simple"\n\n'
        "[base]\n"
        'python = "3.11"\n'
        f"pypi.packages = {{ {packages} }}\n"
    )
    return root


def _assert_no_secret_in_locks(root: Path) -> None:
    locks = sorted((root / "locks").rglob("*"))
    assert [p.name for p in locks if p.is_file()] == [
        "pylock.linux-64.toml",
        "pylock.osx-arm64.toml",
    ]
    for path in locks:
        if path.is_file():
            text = path.read_text()
            assert SECRET not in text
            assert f"{USER}:" not in text
            assert f"{USER}@" not in text


def _locked_with_secret_in_url(private_index: str, tmp_path: Path) -> Path:
    """A project locked against the private index, its password in the index URL."""
    with_secret = private_index.replace("http://", f"http://{USER}:{SECRET}@")
    root = _project(tmp_path / "proj", with_secret)
    assert main(["-C", str(root), "lock"]) == 0
    return root


def test_credentials_in_the_url_stay_out_of_locks_and_output(
    private_index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _locked_with_secret_in_url(private_index, tmp_path)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    _assert_no_secret_in_locks(root)
    wheels = {
        p.name: [w.url for w in p.wheels]
        for p in read_pylock(root / "locks/base/pylock.linux-64.toml")
    }
    assert wheels["delta"] == [f"{private_index}/files/delta-0.5-py3-none-any.whl"]
    # A rotated password is not a new input: the locks stay fresh.
    config = root / "flowenv.toml"
    config.write_text(config.read_text().replace(SECRET, "rotated"))
    assert main(["-C", str(root), "lock", "--check"]) == 0


def test_credentials_from_netrc(
    private_index: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin {USER}\npassword {SECRET}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    root = _project(tmp_path / "proj", private_index)
    assert main(["-C", str(root), "lock"]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    _assert_no_secret_in_locks(root)
    assert {p.name: p.version for p in read_pylock(root / "locks/base/pylock.osx-arm64.toml")} == {
        "alpha": "2.0",
        "beta": "1.5",
        "delta": "0.5",
        "gamma": "1.0",
    }


def test_wrong_credentials_fail_without_echoing_them(
    private_index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(
        tmp_path / "proj", private_index.replace("http://", f"http://{USER}:{SECRET}-x@")
    )
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 3
    err = capsys.readouterr().err
    assert err == (
        "flowenv: error:\ncannot resolve base · linux-64:\n"
        "error: No solution found when resolving dependencies\n"
        "  cause: Because delta was not found in the package registry and you require "
        "delta==0.5, we can conclude that your requirements are unsatisfiable.\n\n"
        f"hint: An index URL ({private_index}/simple) could not be queried due to a lack "
        "of valid authentication credentials (401 Unauthorized)\n"
    )
    assert not (root / "locks").exists()


def test_resolution_failure_with_valid_credentials_does_not_echo_them(
    private_index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_secret = private_index.replace("http://", f"http://{USER}:{SECRET}@")
    root = _project(tmp_path / "proj", with_secret, packages='alpha = "1.0", delta = "0.5"')
    assert main(["-C", str(root), "lock", "-p", "linux-64"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("flowenv: error:\ncannot resolve base · linux-64:\n")
    assert "alpha==1.0" in err
    assert SECRET not in err
    assert USER not in err


def test_canonical_pylock_strips_userinfo_from_every_url() -> None:
    from flowenv.lockfiles.pylock import canonical_pylock
    from flowenv.spec import EnvSpec

    uv_output = (
        'lock-version = "1.0"\n'
        "[[packages]]\n"
        'name = "alpha"\n'
        'version = "1.0"\n'
        f'index = "https://{USER}:{SECRET}@pypi.example/simple"\n'
        f'sdist = {{ url = "https://{USER}:{SECRET}@files.example/alpha-1.0.tar.gz" }}\n'
        "wheels = [\n"
        f'  {{ url = "https://__token__:{SECRET}@files.example/alpha-1.0-py3-none-any.whl" }},\n'
        "]\n"
    )
    text = canonical_pylock(uv_output, EnvSpec(name="base", python="3.11"), "linux-64")
    assert SECRET not in text
    assert 'index = "https://pypi.example/simple"' in text
    assert 'sdist = { url = "https://files.example/alpha-1.0.tar.gz" }' in text
    assert '{ url = "https://files.example/alpha-1.0-py3-none-any.whl" },' in text


def _stored_files(root: Path) -> list[str]:
    """Names of the artifacts in the project's default (local folder) store."""
    return sorted(p.name for p in (root / ".flowenv/store/artifacts").rglob("*") if p.is_file())


def _assert_secret_free(root: Path, output: str, secret: str) -> None:
    assert secret not in output
    for path in (root / "locks").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(), path


def test_sync_downloads_with_the_configured_url_credentials(
    private_index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _locked_with_secret_in_url(private_index, tmp_path)
    assert main(["-C", str(root), "sync", "--no-python"]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "delta-0.5-py3-none-any.whl" in _stored_files(root)
    assert len(_stored_files(root)) == 5  # alpha beta delta, gamma for each platform


def test_sync_without_the_credentials_fails_naming_no_secret(
    private_index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _locked_with_secret_in_url(private_index, tmp_path)
    # The password rotated: the lock stays fresh, but the old one no longer downloads.
    config = root / "flowenv.toml"
    config.write_text(config.read_text().replace(SECRET, f"{SECRET}-old"))
    assert main(["-C", str(root), "sync", "--no-python"]) == 4
    err = capsys.readouterr().err
    assert "401" in err
    assert SECRET not in err
    # The 401 responses were closed, not left to the garbage collector: an
    # unclosed one warns here (ResourceWarning is an error in this suite).
    gc.collect()


def test_named_index_credentials_from_uv_environment_variables(
    private_index: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UV_INDEX_MY_PRIVATE_USERNAME", USER)
    monkeypatch.setenv("UV_INDEX_MY_PRIVATE_PASSWORD", SECRET)
    open_index = build_simple_index(
        [build_wheel(spec, tmp_path / "open-wheels") for spec in DEFAULT_WHEELS],
        tmp_path / "open-index",
    )
    root = tmp_path / "proj"
    root.mkdir()
    (root / "flowenv.toml").write_text(
        "[project]\n"
        'platforms = ["linux-64"]\n'
        f'pypi.index-url = "{open_index.as_uri()}"\n'
        f'pypi.indexes = {{ my-private = "{private_index}/simple" }}\n\n'
        "[base]\n"
        'python = "3.11"\n'
        'pypi.packages = { delta = { version = "0.5", index = "my-private" } }\n'
    )
    assert main(["-C", str(root), "lock"]) == 0
    assert main(["-C", str(root), "sync", "--no-python"]) == 0
    assert SECRET not in "".join(capsys.readouterr())
    # delta came from the private index (its dependencies from the open one).
    assert "delta-0.5-py3-none-any.whl" in _stored_files(root)
    assert len(_stored_files(root)) == 4


def test_direct_url_with_a_query_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(tmp_path / "flowenv-cache"))
    served = tmp_path / "served"
    wheel = build_wheel(DEFAULT_WHEELS[0], served)
    with serve_directory(served, query_token=SECRET) as url:
        root = tmp_path / "proj"
        root.mkdir()
        (root / "requirements.txt").write_text(
            f"{DEFAULT_WHEELS[0].name} @ {url}/{wheel.name}?token={SECRET}\n"
        )
        (root / "flowenv.toml").write_text(
            "[project]\n"
            'platforms = ["linux-64"]\n\n'
            "[base]\n"
            'python = "3.11"\n'
            'pypi.requirements = "requirements.txt"\n'
        )
        assert main(["-C", str(root), "lock"]) == 0
        [locked] = read_pylock(root / "locks/base/pylock.linux-64.toml")
        assert locked.archive is not None or locked.wheels
        assert main(["-C", str(root), "sync", "--no-python"]) == 0
        _assert_secret_free(root, "".join(capsys.readouterr()), SECRET)
        assert _stored_files(root) == [wheel.name]


def test_anaconda_token_channel(
    conda_channels: CondaChannels,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FLOWENV_CACHE_DIR", str(tmp_path / "cache"))
    served = tmp_path / "served"
    shutil.copytree(conda_channels.main, served / "t" / SECRET / "main")
    with serve_directory(served) as url:
        root = tmp_path / "proj"
        root.mkdir()
        config = root / "flowenv.toml"
        config.write_text(
            "[project]\n"
            'platforms = ["linux-64"]\n'
            f'conda.channels = ["{url}/t/{SECRET}/main"]\n\n'
            "[base]\n"
            'python = "3.11"\n'
            'conda.packages = { numpy = "1.26.0" }\n'
        )
        assert main(["-C", str(root), "lock"]) == 0
        lock_text = (root / "locks/base/conda-lock.yml").read_text()
        assert f"{url}/main/linux-64/numpy-1.26.0-" in lock_text
        assert main(["-C", str(root), "sync", "--no-python"]) == 0
        _assert_secret_free(root, "".join(capsys.readouterr()), SECRET)
        assert any(name.startswith("numpy-1.26.0-") for name in _stored_files(root))
        # A new token is not a new input.
        config.write_text(config.read_text().replace(SECRET, "rotated-token"))
        assert main(["-C", str(root), "lock", "--check"]) == 0
        # A wrong token cannot solve: the error names the channel without it.
        assert main(["-C", str(root), "lock", "--upgrade"]) == 3
        err = capsys.readouterr().err
        assert "rotated-token" not in err
        assert f"channels: {url}/t/****/main\n" in err


@pytest.mark.parametrize(
    ("url", "stripped"),
    [
        ("https://u:p@host/simple", "https://host/simple"),
        ("https://conda.anaconda.org/t/tk-123/chan", "https://conda.anaconda.org/chan"),
        (
            "https://conda.anaconda.org/t/tk-123/chan::numpy",
            "https://conda.anaconda.org/chan::numpy",
        ),
        ("https://h/p.whl?token=x&v=1", "https://h/p.whl?v=1"),
        ("https://h/p.whl?Access_Token=x", "https://h/p.whl"),
        # Nothing secret: unchanged, byte for byte (no re-encoding).
        ("https://h/simple?x=a%20b", "https://h/simple?x=a%20b"),
        ("https://h/toolkit/t/chan", "https://h/toolkit/t/chan"),
        ("conda-forge", "conda-forge"),
        ("file:///srv/t/x", "file:///srv/t/x"),
    ],
)
def test_strip_credentials(url: str, stripped: str) -> None:
    assert strip_credentials(url) == stripped


def test_redact_masks_every_kind_of_url_secret() -> None:
    text = (
        "GET https://u:pw@h/simple/a/ failed; "
        "see https://conda.anaconda.org/t/tk-123/chan/noarch/repodata.json "
        "and https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Expires=60"
    )
    assert redact(text) == (
        "GET https://****@h/simple/a/ failed; "
        "see https://conda.anaconda.org/t/****/chan/noarch/repodata.json "
        "and https://b.s3.amazonaws.com/k?X-Amz-Signature=****&X-Amz-Expires=60"
    )


def test_source_auth_matches_realms_prefixes_and_uv_variables() -> None:
    auth = SourceAuth.from_urls(
        [
            "https://u:p%40ss@private.example/simple",
            "https://conda.anaconda.org/t/tk-1/chan",
            "https://h.example/p.whl?token=s&v=1",
        ],
        named_indexes=[("corp-index", "https://corp.example:8443/simple")],
        environ={"UV_INDEX_CORP_INDEX_USERNAME": "me", "UV_INDEX_CORP_INDEX_PASSWORD": "pw"},
    )
    # user info: every URL of the same realm (files live beside the index), password unquoted.
    assert auth.request_for("https://private.example/files/a.whl") == (
        "https://private.example/files/a.whl",
        "Basic " + base64.b64encode(b"u:p@ss").decode(),
    )
    # another port is another realm
    assert auth.request_for("https://private.example:8443/files/a.whl")[1] is None
    assert auth.request_for("https://corp.example:8443/files/b.whl")[1] == (
        "Basic " + base64.b64encode(b"me:pw").decode()
    )
    assert auth.request_for("https://conda.anaconda.org/chan/noarch/x.conda") == (
        "https://conda.anaconda.org/t/tk-1/chan/noarch/x.conda",
        None,
    )
    # a prefix matches whole path segments only
    assert auth.request_for("https://conda.anaconda.org/chan2/noarch/x.conda")[0] == (
        "https://conda.anaconda.org/chan2/noarch/x.conda"
    )
    assert (
        auth.request_for("https://h.example/p.whl?v=1")[0] == "https://h.example/p.whl?token=s&v=1"
    )


def test_credentials_do_not_follow_a_redirect_to_another_host(tmp_path: Path) -> None:
    seen: list[str | None] = []

    class Files(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"data")

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serve_handler(Files) as files_url:

        class Index(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("Authorization"))
                self.send_response(302)
                self.send_header("Location", f"{files_url}/a.whl")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        with serve_handler(Index) as index_url:
            auth = SourceAuth.from_urls([index_url.replace("http://", f"http://{USER}:{SECRET}@")])
            sha = hashlib.sha256(b"data").hexdigest()
            path = fetch_locked(
                ArtifactCache(tmp_path / "cache"),
                f"{index_url}/f/a.whl",
                sha,
                "a.whl",
                tmp_path,
                auth,
            )
    assert path.read_bytes() == b"data"
    # The index got the password; the other host it redirected to did not.
    assert str(seen[0]).startswith("Basic ")
    assert seen[1:] == [None]
