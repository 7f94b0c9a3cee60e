"""``flowenv diff`` over hand-written conda-lock v1 and PEP 751 files committed to a real git repo.

Hand-written locks pin what real resolutions cannot easily produce on demand:
a same-version rebuild (new hash), a package that moved channel or index, and
conda versions that PEP 440 cannot parse.
"""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import yaml

from flowenv.cli import main
from tests.support.git_repo import commit_all, init_repo

CONFIG = """\
[project]
name = "proj"
platforms = ["linux-64", "osx-arm64"]

[base]
python = "3.11"
"""

FORGE = "https://conda.anaconda.org/conda-forge"
PYTORCH = "https://conda.anaconda.org/pytorch"


def _digest(text: str, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, text.encode()).hexdigest()


def conda_package(
    platform: str,
    name: str,
    version: str,
    build: str = "0",
    channel: str = FORGE,
    manager: str = "conda",
) -> dict[str, object]:
    if manager == "pip":
        filename = f"{name}-{version}-py3-none-any.whl"
        url = f"https://files.pythonhosted.org/packages/{_digest(filename)[:2]}/{filename}"
    else:
        filename = f"{name}-{version}-{build}.conda"
        url = f"{channel}/{platform}/{filename}"
    hashes = (
        {"sha256": _digest(url)}
        if manager == "pip"
        else {"md5": _digest(url, "md5"), "sha256": _digest(url)}
    )
    return {
        "name": name,
        "version": version,
        "manager": manager,
        "platform": platform,
        "dependencies": {},
        "url": url,
        "hash": hashes,
        "category": "main",
        "optional": False,
    }


def conda_lock(packages: list[dict[str, object]], platforms: tuple[str, ...]) -> str:
    """A conda-lock v1 document, in the layout conda-lock itself writes."""
    document = {
        "version": 1,
        "metadata": {
            "content_hash": {p: _digest(p) for p in platforms},
            "channels": [{"url": "conda-forge", "used_env_vars": []}],
            "platforms": list(platforms),
            "sources": ["flowenv.toml"],
        },
        "package": packages,
    }
    return yaml.safe_dump(document, sort_keys=False)


def pylock(packages: list[tuple[str, str, str, str]]) -> str:
    """A PEP 751 file: (name, version, index, wheel content) per package."""
    parts = [
        'lock-version = "1.0"',
        'created-by = "flowenv"',
        "",
        "[tool.flowenv]",
        'platform = "linux-64"',
    ]
    for name, version, index, content in packages:
        url = f"{index.replace('/simple', '')}/files/{name}-{version}-py3-none-any.whl"
        parts += [
            "",
            "[[packages]]",
            f'name = "{name}"',
            f'version = "{version}"',
            f'index = "{index}"',
            f'wheels = [{{ url = "{url}", hashes = {{ sha256 = "{_digest(content)}" }} }}]',
        ]
    return "\n".join(parts) + "\n"


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "flowenv.toml").write_text(CONFIG)
    return init_repo(root)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _diff(root: Path, capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["-C", str(root), "diff", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


BOTH = ("linux-64", "osx-arm64")
SUMMARY = (
    "<summary><b>train</b> · linux-64, osx-arm64: "
    "2 upgraded, 1 downgraded, 1 added, 1 source changed, 1 hash changed</summary>"
)


def _old_conda() -> str:
    packages = []
    for platform in BOTH:
        packages += [
            conda_package(platform, "numpy", "1.26.4", "py311h64a7726_0"),
            conda_package(platform, "openssl", "1.1.1w", "hd590300_0"),
            conda_package(platform, "python", "3.11.9", "hb806964_0"),
            conda_package(platform, "tzdata", "2024a", "h0c530f3_0"),
            conda_package(platform, "requests", "2.31.0", manager="pip"),
        ]
    return conda_lock(packages, BOTH)


def _new_conda() -> str:
    packages = [
        conda_package("linux-64", "numpy", "2.0.1", "py311h1461c94_0"),
        conda_package("linux-64", "openssl", "1.1.1v", "hd590300_0"),
        conda_package("linux-64", "python", "3.11.9", "hb806964_1_cpython"),
        conda_package("linux-64", "scipy", "1.13.1", "py311h517d4fd_0"),
        conda_package("linux-64", "tzdata", "2024a", "h0c530f3_0", channel=PYTORCH),
        conda_package("linux-64", "requests", "2.32.3", manager="pip"),
        conda_package("osx-arm64", "numpy", "2.0.1", "py311h4268184_0"),
        conda_package("osx-arm64", "openssl", "1.1.1w", "hd590300_0"),
        conda_package("osx-arm64", "python", "3.11.9", "hb806964_0"),
        conda_package("osx-arm64", "scipy", "1.13.1", "py311h2929bc6_0"),
        conda_package("osx-arm64", "tzdata", "2024a", "h0c530f3_0"),
        conda_package("osx-arm64", "requests", "2.32.3", manager="pip"),
    ]
    return conda_lock(packages, BOTH)


def test_conda_lock_changes_per_platform(tmp_path, capsys) -> None:
    root = _project(tmp_path)
    _write(root, "locks/train/conda-lock.yml", _old_conda())
    commit_all(root, "old")
    _write(root, "locks/train/conda-lock.yml", _new_conda())
    # 1.1.1w -> 1.1.1v is not PEP 440: the natural order still calls it a downgrade.
    assert _diff(root, capsys) == (
        0,
        textwrap.dedent(f"""\
        train · linux-64
          ↑ numpy     1.26.4 → 2.0.1
          ↓ openssl   1.1.1w → 1.1.1v
          ~ python    3.11.9   hash changed
          ↑ requests  2.31.0 → 2.32.3
          + scipy              1.13.1
          ~ tzdata    2024a    source {FORGE} → {PYTORCH}
        train · osx-arm64
          ↑ numpy     1.26.4 → 2.0.1
          ↑ requests  2.31.0 → 2.32.3
          + scipy              1.13.1
          versions differ across platforms: openssl (linux-64 1.1.1v, osx-arm64 1.1.1w)
        """),
    )


def test_conda_lock_markdown_counts_when_platforms_differ(tmp_path, capsys) -> None:
    root = _project(tmp_path)
    _write(root, "locks/train/conda-lock.yml", _old_conda())
    commit_all(root, "old")
    _write(root, "locks/train/conda-lock.yml", _new_conda())
    commit_all(root, "new")
    code, out = _diff(root, capsys, "HEAD~1", "HEAD", "--format", "markdown")
    assert code == 0
    assert out == textwrap.dedent(f"""\
        ### flowenv lock changes (`HEAD~1` → `HEAD`)

        <details>
        {SUMMARY}

        **linux-64**

        | | package | before | after |
        |:-:|:--|:--|:--|
        | ↑ | numpy | 1.26.4 | 2.0.1 |
        | ↓ | openssl | 1.1.1w | 1.1.1v |
        | ~ | python | 3.11.9 | 3.11.9 (hash changed) |
        | ↑ | requests | 2.31.0 | 2.32.3 |
        | + | scipy | | 1.13.1 |
        | ~ | tzdata | 2024a ({FORGE}) | 2024a ({PYTORCH}) |

        **osx-arm64**

        | | package | before | after |
        |:-:|:--|:--|:--|
        | ↑ | numpy | 1.26.4 | 2.0.1 |
        | ↑ | requests | 2.31.0 | 2.32.3 |
        | + | scipy | | 1.13.1 |

        ⚠ versions differ across platforms: openssl (linux-64 1.1.1v, osx-arm64 1.1.1w)

        </details>
        """)


def test_pylock_same_version_new_index_and_new_hash(tmp_path, capsys) -> None:
    root = _project(tmp_path)
    pypi, mirror = "https://pypi.org/simple", "https://mirror.example.org/simple"
    _write(
        root,
        "locks/base/pylock.linux-64.toml",
        pylock([("alpha", "2.0", pypi, "a"), ("beta", "1.5", pypi, "b")]),
    )
    commit_all(root, "old")
    _write(
        root,
        "locks/base/pylock.linux-64.toml",
        pylock([("alpha", "2.0", mirror, "a"), ("beta", "1.5", pypi, "rebuilt")]),
    )
    assert _diff(root, capsys) == (
        0,
        textwrap.dedent(f"""\
        base · linux-64
          ~ alpha  2.0   source {pypi} → {mirror}
          ~ beta   1.5   hash changed
        """),
    )
    code, out = _diff(root, capsys, "--format", "json", "--exit-code")
    assert code == 1
    assert '"change": "hash"' in out
    assert f'"sha256:{_digest("rebuilt")}"' in out


def test_malformed_lock_is_one_clear_error(tmp_path, capsys) -> None:
    root = _project(tmp_path)
    _write(
        root, "locks/base/pylock.linux-64.toml", pylock([("alpha", "2.0", "https://x/simple", "a")])
    )
    commit_all(root, "old")
    _write(root, "locks/base/pylock.linux-64.toml", "packages = [\n")
    code, out = _diff(root, capsys)
    assert code == 2
    assert out.startswith(
        "flowenv: error: working tree:locks/base/pylock.linux-64.toml: not valid TOML: "
    )
    assert "Traceback" not in out
