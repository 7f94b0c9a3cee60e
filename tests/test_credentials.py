"""Private index credentials reach uv, and never a lock file or an error message.

The index is a real HTTP server on 127.0.0.1 that answers 401 without the
right basic-auth header; uv gets the credentials from the index URL or from a
netrc file (``NETRC``), the two sources uv reads without extra set-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowenv.cli import main
from flowenv.locks.pylock import read_pylock
from tests.support.index_server import serve_index
from tests.support.wheels import DEFAULT_WHEELS, build_wheel

USER = "alice"
SECRET = "s3cret-t0ken"


@pytest.fixture
def private_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of an index that wants ``alice:s3cret-t0ken``."""
    # A private cache: uv would otherwise answer from pages another test fetched.
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
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


def test_credentials_in_the_url_stay_out_of_locks_and_output(
    private_index: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_secret = private_index.replace("http://", f"http://{USER}:{SECRET}@")
    root = _project(tmp_path / "proj", with_secret)
    assert main(["-C", str(root), "lock"]) == 0
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
    from flowenv.locks.pylock import canonical_pylock
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
