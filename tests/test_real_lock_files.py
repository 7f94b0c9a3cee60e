"""Every real conda-lock v1 file of the corpus through textconv, diff and all three exports.

The files were written by conda-lock itself, old and new (see
tests/data/real/NOTICE.rst): categories, pip entries with URL and VCS
sources, md5-only hashes, ``sha256: null``, virtual packages. The explicit
export must list exactly what ``conda-lock render --kind explicit`` lists (its
Python API, same categories) and in dependency order, checked by walking
every dependency of every line.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import warnings
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from flowenv.cli import main
from flowenv.config.load import load_config
from flowenv.lockfiles.condalock import CondaLock, LockedCondaPackage, read_conda_lock
from flowenv.platforms import KNOWN_PLATFORMS
from flowenv.spec import build_environments
from tests.support.git_repo import commit_all, init_repo
from tests.support.real_data import CONDA_LOCK_FILES

FORMATS = ("requirements", "explicit", "environment-yml")


def _platforms(lock: CondaLock) -> list[str]:
    return [p for p in lock.platforms if p in KNOWN_PLATFORMS]


def _project(tmp_path: Path, source: Path, with_lock: bool = True) -> Path:
    lock = read_conda_lock(source)
    root = tmp_path / "proj"
    (root / "locks" / "base").mkdir(parents=True)
    platforms = ", ".join(f'"{p}"' for p in _platforms(lock))
    (root / "flowenv.toml").write_text(
        textwrap.dedent(f"""\
            [project]
            name = "real"
            platforms = [{platforms}]
            conda.channels = ["conda-forge"]

            [base]
            python = "3.11"
            conda.packages = {{ python = "3.11.*" }}
            """)
    )
    if with_lock:
        shutil.copy(source, root / "locks" / "base" / "conda-lock.yml")
    return root


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


#: conda-lock's current parser rejects this old example of its own (virtual
#: packages without ``optional``); flowenv reads it, with nothing to compare to.
REJECTED_BY_CONDA_LOCK = {"example-pangeo"}


def _conda_lock_render(path: Path, platform: str, categories: set[str]) -> list[str] | None:
    """conda-lock's own explicit rendering (its Python API), package lines only."""
    from pydantic import ValidationError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from conda_lock.conda_lock import render_lockfile_for_platform
        from conda_lock.lockfile import parse_conda_lock_file

        try:
            lockfile = parse_conda_lock_file(path)
        except ValidationError:
            assert path.stem in REJECTED_BY_CONDA_LOCK
            return None
        lines = render_lockfile_for_platform(
            lockfile=lockfile,
            include_dev_dependencies="dev" in categories,
            extras=categories - {"main", "dev"},
            kind="explicit",
            platform=platform,
        )
    return [line for line in lines if "://" in line and not line.startswith("#")]


def _explicit_lines(text: str) -> list[str]:
    return text.split("@EXPLICIT\n", 1)[1].splitlines()


def assert_dependency_order(lines: list[str], packages: dict[str, LockedCondaPackage]) -> None:
    """Each package's dependencies come before it, except across a dependency cycle."""
    by_url = {p.url: p for p in packages.values()}
    order = [by_url[line.rsplit("#", 1)[0] if "#" in line else line].name for line in lines]
    assert len(order) == len(set(order)), "a package is listed twice"
    position = {name: i for i, name in enumerate(order)}
    graph = {name: [d for d, _ in packages[name].dependencies if d in position] for name in order}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = {start}, [start]
        while todo:
            for dep in graph[todo.pop()]:
                if dep == goal:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return False

    late = [
        (name, dep)
        for name in order
        for dep in graph[name]
        if position[dep] > position[name] and not reaches(dep, name)
    ]
    assert late == [], "dependencies listed after their dependents"


@pytest.mark.parametrize("source", CONDA_LOCK_FILES, ids=lambda p: p.stem)
def test_real_conda_lock_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: Path
) -> None:
    lock = read_conda_lock(source)
    root = _project(tmp_path, source)
    category_sets = [("main",)]
    if len(lock.categories()) > 1:
        category_sets.append(lock.categories())
    for platform in _platforms(lock):
        for categories in category_sets:
            flags = [arg for c in categories for arg in ("--category", c)]
            outputs = {}
            for fmt in FORMATS:
                code, out, err = _run(
                    capsys, "-C", str(root), "export", "base", "-p", platform, "--format", fmt,
                    *flags,
                )
                assert code == 0, err
                assert "None" not in out
                outputs[fmt] = out
            wanted = lock.for_platform(platform, categories)
            conda = {p.name: p for p in wanted if p.manager == "conda" and not p.is_virtual}
            pip = {p.name for p in wanted if p.manager == "pip"}
            lines = _explicit_lines(outputs["explicit"])
            theirs = _conda_lock_render(source, platform, set(categories))
            if theirs is not None:
                assert sorted(lines) == sorted(theirs)
            assert len(lines) == len(conda)
            assert_dependency_order(lines, conda)
            requirement_names = {
                line.split("==")[0].split(" @ ")[0]
                for line in outputs["requirements"].splitlines()
                if line and not line.startswith((" ", "#"))
            }
            assert requirement_names == pip
            environment = outputs["environment-yml"]
            assert environment.count("\n      - ") == len(pip)
            # A VCS checkout is a direct reference: its commit id is no sha256.
            for package in wanted:
                if package.url.startswith("git+"):
                    assert f"{package.name} @ {package.url}" in outputs["requirements"]
                    assert package.url.rsplit("@", 1)[1] not in outputs["requirements"].replace(
                        package.url, ""
                    )


@pytest.mark.parametrize("source", CONDA_LOCK_FILES, ids=lambda p: p.stem)
def test_real_conda_lock_textconv_and_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: Path
) -> None:
    lock = read_conda_lock(source)
    code, out, err = _run(capsys, "git", "textconv", str(source))
    assert code == 0, err
    for platform in lock.platforms:
        assert f"# {platform}\n" in out
    for package in lock.packages:
        if package.manager == "pip":
            assert f"{canonicalize_name(package.name)} {package.version} (pip)\n" in out
        else:
            assert f"{package.name} {package.version}\n" in out

    # The lock appears in a commit: every package of every platform is "added".
    root = _project(tmp_path, source, with_lock=False)
    init_repo(root)
    commit_all(root, "no lock yet")
    shutil.copy(source, root / "locks" / "base" / "conda-lock.yml")
    code, out, err = _run(capsys, "-C", str(root), "diff", "--format", "json")
    assert code == 0, err
    (env,) = json.loads(out)["envs"]
    counts = {p["platform"]: len(p["changes"]) for p in env["platforms"]}
    expected = {
        platform: len({(p.manager, p.name) for p in lock.packages if p.platform == platform})
        for platform in lock.platforms
    }
    assert counts == expected


def test_diff_between_conda_lock_versions_of_one_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """conda-lock 2.5.8 and 3.0.2 wrote the same environment: only what really differs shows."""
    old, new = (
        next(p for p in CONDA_LOCK_FILES if p.stem.endswith(version))
        for version in ("v2.5.8", "v3.0.2")
    )
    root = _project(tmp_path, old)
    init_repo(root)
    commit_all(root, "conda-lock 2.5.8")
    shutil.copy(new, root / "locks" / "base" / "conda-lock.yml")
    code, out, err = _run(capsys, "-C", str(root), "diff", "--format", "json")
    assert code == 0, err
    before, after = read_conda_lock(old), read_conda_lock(new)
    versions_before = {(p.platform, p.manager, p.name): p.version for p in before.packages}
    versions_after = {(p.platform, p.manager, p.name): p.version for p in after.packages}
    assert versions_before.keys() == versions_after.keys()
    moved = {
        (platform, name)
        for (platform, _, name), version in versions_before.items()
        if versions_after[platform, _, name] != version
    }
    reported = {
        (platform["platform"], change["package"], change["change"])
        for env in json.loads(out)["envs"]
        for platform in env["platforms"]
        for change in platform["changes"]
    }
    # The two files differ in one pip package (cowsay 6.1 -> 0.0.0, an sdist's
    # version as conda-lock 3 reads it) on every platform: only that shows.
    assert moved == {(platform, "cowsay") for platform in before.platforms}
    assert reported == {(platform, name, "downgraded") for platform, name in moved}


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        # md5-only hashes (conda-lock before it recorded sha256 for every package)
        ("test-lockfile", "is locked without a sha256: hydrate checks every artifact's sha256"),
        # a pip package from git: its "sha256" is a commit id, not a file hash
        ("test-v2-to-v3-upgrade-conda-lock-v3.0.3", "is a direct reference (git+https://"),
    ],
)
def test_sync_refuses_what_hydrate_could_not_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stem: str, expected: str
) -> None:
    source = next(p for p in CONDA_LOCK_FILES if p.stem == stem)
    root = _project(tmp_path, source)
    # Make the foreign lock fresh for this project, so sync reads it.
    env = build_environments(load_config(root / "flowenv.toml")).get("base")
    path = root / "locks" / "base" / "conda-lock.yml"
    hashes = "".join(
        f"    flowenv-input-hash-{platform}: '{env.input_hash(platform)}'\n"
        for platform in _platforms(read_conda_lock(source))
    )
    text = re.sub(r"^metadata:\n", lambda _: "metadata:\n  custom_metadata:\n" + hashes,
                  path.read_text(), count=1, flags=re.MULTILINE)
    path.write_text(text)
    code, _, err = _run(capsys, "-C", str(root), "sync")
    assert code == 2, err
    assert expected in err
    assert err.count("\n") == 1
