"""The configuration memo (flowenv.config.memo): a memo-served result is the fresh one.

Every check loads a configuration after the memo was filled by another one
(what a re-lock through the warm server does) and compares everything the
lock path reads of it, the configuration, its environments and every input
hash, or the exact diagnostics, with a load from an empty memo. The checks
also assert that the unchanged tables were served from the memo (the same
objects), so that they cannot pass with the memo switched off.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowenv.config import memo
from flowenv.config.load import load_config
from flowenv.errors import ConfigError
from flowenv.spec import build_environments
from flowenv.warm import memo_channel
from tests.support.local_package import write_local_package

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*/flowenv.toml"))
INVALID = sorted((Path(__file__).parent / "data" / "invalid").glob("*.toml"))

#: A configuration with every kind of table the memo keys: target tables, named envs,
#: solve groups, conda and mixed envs, named indexes, system requirements, a git package.
RICH = """\
[project]
name = "rich"
platforms = ["linux-64", "osx-arm64"]

[project.pypi]
index-url = "https://pypi.example/simple"
extra-index-urls = ["https://extra.example/simple"]

[project.pypi.indexes]
cpu = "https://download.example/cpu"
cu121 = "https://download.example/cu121"

[project.conda]
channels = ["conda-forge"]
channel-priority = "strict"
virtual-packages = { __glibc = "2.28" }
pypi-map = { "py-lightgbm" = "lightgbm" }

[base]
python = "3.11"
pypi.packages = { torch = "2.4.1", numpy = "1.26.4" }

[base.target.linux-64]
pypi.packages = { torch = { version = "2.4.1", index = "cpu" } }

[steps.start]

[steps.train]
platforms = ["linux-64"]
system-requirements = { cuda = "12.1" }
pypi.packages = { torch = { version = "2.4.1", index = "cu121" }, "scikit-learn[all]" = ">=1.5" }

[steps.features]
solve-group = "flow"
pypi.packages = { pandas = "2.2.3" }

[steps.report]
solve-group = "flow"
pypi.packages = { jinja2 = "~=3.1" }

[steps.mixed]
conda.packages = { "scikit-learn" = "1.5.2", "conda-forge::lightgbm" = "4.5.0" }
pypi.packages = { mlflow-skinny = ">=2.16,<3" }

[steps.mixed.target.osx-arm64]
conda.packages = { "llvm-openmp" = ">=17" }

[steps.fromgit.pypi.packages.tool]
git = "https://git.example/tool.git"
rev = "0123456789abcdef0123456789abcdef01234567"

[envs.gpu]
conda.packages = { "pytorch" = "2.4.*", "numpy" = "<2" }
system-requirements = { glibc = "2.28" }

[steps.finetune]
env = "gpu"

[steps.evaluate]
env = "gpu"
pypi.packages = { torchmetrics = "1.4.2" }

[steps.publish]
disabled = true
"""


@pytest.fixture(autouse=True)
def _empty_memo() -> Iterator[None]:
    """Each test starts and ends with an empty memo: none leaks into another test."""
    memo.DECLS.clear()
    memo.SPECS.clear()
    yield
    memo.DECLS.clear()
    memo.SPECS.clear()


def outcome(path: Path) -> tuple[Any, ...]:
    """Everything the lock path reads of ``path``: the configuration, its environments
    (with the steps of each) and every input hash; or the exact diagnostics."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        return ("error", exc.diagnostics)
    environments = build_environments(config)
    hashes = {(e.name, p): e.input_hash(p) for e in environments.envs for p in e.platforms}
    return ("ok", config, environments, hashes)


def fresh(path: Path) -> tuple[Any, ...]:
    """:func:`outcome` from an empty memo (and the memo left as it was)."""
    saved = [(t.last, t.now) for t in (memo.DECLS, memo.SPECS)]
    memo.DECLS.clear()
    memo.SPECS.clear()
    try:
        return outcome(path)
    finally:
        for table, (last, now) in zip((memo.DECLS, memo.SPECS), saved, strict=True):
            table.last, table.now = last, now


def served(before: tuple[Any, ...], after: tuple[Any, ...]) -> set[str]:
    """The envs of ``after`` whose spec is the very object ``before`` had (from the memo)."""
    if before[0] != "ok" or after[0] != "ok":
        return set()
    old = {e.name: e for e in before[2].envs}
    return {e.name for e in after[2].envs if old.get(e.name) is e}


def write(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "flowenv.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_served_from_the_memo_is_what_a_fresh_load_gives(
    example: Path, tmp_path: Path
) -> None:
    root = tmp_path / example.parent.name
    shutil.copytree(example.parent, root)
    path = root / "flowenv.toml"
    first = outcome(path)
    assert first[0] == "ok"
    second = outcome(path)
    assert second == first == fresh(path)
    # Served, not rebuilt: every env (each reads no file, or reads the same files).
    assert served(first, second) == {e.name for e in first[2].envs}
    # Tables that name files (requirements, a local package) are read every time.
    config, again = first[1], second[1]
    for (name, decl), (_, decl_again) in zip(config.steps, again.steps, strict=True):
        assert (decl_again is decl) != bool(decl.inputs or any(p.path for p in decl.pypi)), name


def test_a_rich_configuration_is_served_whole_and_alike(tmp_path: Path) -> None:
    path = write(tmp_path / "p", RICH)
    first = outcome(path)
    assert first[0] == "ok", first
    assert {e.name for e in first[2].envs} >= {"base", "train", "mixed", "gpu", "evaluate"}
    assert any(e.targets for e in first[2].envs)  # target tables are in play
    assert any(e.group_hash for e in first[2].envs)  # and a solve group
    second = outcome(path)
    assert second == first == fresh(path)
    assert served(first, second) == {e.name for e in first[2].envs}
    assert all(a is b for (_, a), (_, b) in zip(first[1].steps, second[1].steps, strict=True))
    assert second[1].base is first[1].base


#: One edit of RICH each: (id, old text, new text). Every edit changes an input the memo
#: keys by: a step's table, base's, a named env's, the project's platforms, indexes,
#: channels and settings, the set of steps (base's users), and values that differ by
#: type or key order only.
EDITS = [
    ("step-spec", '"scikit-learn[all]" = ">=1.5"', '"scikit-learn[all]" = ">=1.5,<3"'),
    ("step-python", "[steps.features]\n", '[steps.features]\npython = "3.12"\n'),
    ("base-package", 'numpy = "1.26.4" }', 'numpy = "1.26.5" }'),
    ("base-python", 'python = "3.11"', 'python = "3.12"'),
    ("base-target", '{ version = "2.4.1", index = "cpu" }', '{ version = "2.4.0", index = "cpu" }'),
    ("named-env", '"numpy" = "<2" }', '"numpy" = "<2.1" }'),
    ("env-switch", '[steps.evaluate]\nenv = "gpu"', "[steps.evaluate]"),
    ("solve-group", '[steps.report]\nsolve-group = "flow"', "[steps.report]"),
    ("group-member", 'pandas = "2.2.3"', 'pandas = "2.2.2"'),
    ("disabled", "[steps.publish]\ndisabled = true", "[steps.publish]\ndisabled = false"),
    ("drop-step", "[steps.start]\n", ""),
    ("add-step", "[steps.start]\n", "[steps.start]\n\n[steps.extra]\n"),
    ("platforms", 'platforms = ["linux-64", "osx-arm64"]', 'platforms = ["linux-64", "osx-64"]'),
    ("add-platform", '["linux-64", "osx-arm64"]', '["linux-64", "linux-aarch64", "osx-arm64"]'),
    ("index-url", 'cu121 = "https://download.example/cu121"', 'cu121 = "https://x.example/cu121"'),
    ("index-rename", 'cu121 = "https://download', 'cu122 = "https://download'),
    ("main-index", '"https://pypi.example/simple"', '"https://mirror.example/simple"'),
    ("extra-index", 'extra-index-urls = ["https://extra.example/simple"]', ""),
    ("channels", 'channels = ["conda-forge"]', 'channels = ["conda-forge", "bioconda"]'),
    ("priority", 'channel-priority = "strict"', 'channel-priority = "flexible"'),
    ("virtual", '__glibc = "2.28"', '__glibc = "2.31"'),
    ("pypi-map", '"py-lightgbm" = "lightgbm"', '"py-lightgbm" = "lightgbm2"'),
    ("system", 'cuda = "12.1"', 'cuda = "12.4"'),
    ("git-rev", "0123456789abcdef0123456789abcdef01234567", "f" * 40),
    # Errors: located exactly as from an empty memo.
    ("float-python", 'python = "3.11"', "python = 3.11"),
    ("int-spec", 'jinja2 = "~=3.1"', "jinja2 = 3"),
    ("bool-spec", 'jinja2 = "~=3.1"', "jinja2 = true"),
    ("bad-spec", '"scikit-learn[all]" = ">=1.5"', '"scikit-learn[all]" = ">=1.5,<<3"'),
    ("unknown-key", "[steps.features]\n", '[steps.features]\npythn = "3.12"\n'),
    ("target-outside", 'platforms = ["linux-64", "osx-arm64"]', 'platforms = ["osx-arm64"]'),
    ("unknown-env", '[steps.finetune]\nenv = "gpu"', '[steps.finetune]\nenv = "gpus"'),
]


@pytest.mark.parametrize(("old", "new"), [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_a_change_to_any_keyed_input_gives_the_new_result_not_the_memoised_one(
    tmp_path: Path, old: str, new: str
) -> None:
    assert old in RICH
    path = write(tmp_path / "p", RICH)
    before = outcome(path)
    assert before[0] == "ok"
    path.write_text(RICH.replace(old, new, 1))
    after = outcome(path)
    expected = fresh(path)
    assert after == expected
    assert after != before
    if after[0] != "ok":
        return
    # Only envs that came out the same were served from the memo (a step over a
    # changed base may come out the same too, and is rebuilt all the same) ...
    unchanged = {
        e.name
        for e in expected[2].envs
        if any(e == b and e.steps == b.steps for b in before[2].envs)
    }
    assert served(before, after) <= unchanged
    old_config, new_config = before[1], after[1]
    if new_config.project != old_config.project:
        return
    # ... and, the project's settings alike, every table alike was served whole.
    old_tables = dict(old_config.steps) | {f"envs.{n}": d for n, d in old_config.envs}
    for name, decl in (*new_config.steps, *((f"envs.{n}", d) for n, d in new_config.envs)):
        assert (decl is old_tables.get(name)) == (decl == old_tables.get(name)), name
    assert (new_config.base is old_config.base) == (new_config.base == old_config.base)
    if new_config.base == old_config.base:
        assert served(before, after), "no env came from the memo"


def test_keys_in_another_order_are_a_new_key_with_the_same_result(tmp_path: Path) -> None:
    path = write(tmp_path / "p", RICH)
    before = outcome(path)
    path.write_text(
        RICH.replace('torch = "2.4.1", numpy = "1.26.4"', 'numpy = "1.26.4", torch = "2.4.1"')
    )
    after = outcome(path)
    assert after == before == fresh(path)
    assert after[1].base is not before[1].base  # repr keeps the order: looked at again


@pytest.mark.parametrize("invalid", INVALID, ids=lambda p: p.stem)
def test_an_invalid_file_after_a_valid_one_reports_exactly_what_a_fresh_load_does(
    invalid: Path, tmp_path: Path
) -> None:
    """Each invalid test file is loaded after a valid version of it (its error lines
    dropped, where that leaves a valid file), so the memo holds its valid tables."""
    path = tmp_path / "flowenv.toml"
    text = invalid.read_text()
    path.write_text(text)
    expected = fresh(path)
    assert expected[0] == "error"
    lines = text.splitlines(keepends=True)
    for line in {d.line for d in expected[1] if d.line}:
        candidate = "".join(lines[: line - 1] + lines[line:])
        path.write_text(candidate)
        outcome(path)  # fills the memo, valid or not
    path.write_text(text)
    assert outcome(path) == expected
    assert outcome(path) == expected  # and again, from a memo the error left alone


def test_a_table_that_names_input_files_reads_them_again(tmp_path: Path) -> None:
    root = tmp_path / "p"
    path = write(
        root,
        textwrap.dedent(
            """\
            [project]
            name = "inputs"
            platforms = ["linux-64"]

            [base]
            python = "3.11"
            pypi.requirements = "requirements.txt"

            [steps.env]
            conda.environment-file = "environment.yml"

            [steps.lib]
            pypi.packages = { mylib = { path = "libs/mylib" } }
            """
        ),
    )
    (root / "requirements.txt").write_text("numpy==1.26.4\n")
    (root / "environment.yml").write_text("dependencies:\n  - python=3.11\n  - scipy=1.13\n")
    write_local_package(root / "libs" / "mylib", "mylib", "1.0")
    before = outcome(path)
    assert before[0] == "ok", before

    (root / "requirements.txt").write_text("numpy==2.0.0\n")
    (root / "environment.yml").write_text("dependencies:\n  - python=3.11\n  - scipy=1.14\n")
    module = next((root / "libs" / "mylib").rglob("*.py"))
    module.write_text(module.read_text() + "\n# changed\n")
    after = outcome(path)
    assert after == fresh(path)
    config = after[1]
    assert [p.requirement() for p in config.base.pypi] == ["numpy==2.0.0"]
    assert [c.match_spec() for c in config.step("env").conda] == ["scipy =1.14"]
    local = next(p for p in config.step("lib").pypi if p.path)
    assert local.source_hash != next(p for p in before[1].step("lib").pypi if p.path).source_hash
    # A missing input file is still reported, located, whatever the memo holds.
    (root / "requirements.txt").unlink()
    gone = outcome(path)
    assert gone == fresh(path)
    assert gone[0] == "error"
    assert any("requirements.txt" in d.file + d.message for d in gone[1]), gone[1]


def test_the_same_tables_in_another_project_or_pyproject_are_located_in_that_file(
    tmp_path: Path,
) -> None:
    """The memo keys omit the file: a kept result holds nothing of it, and errors
    (never kept) name the file that has them, with pyproject's key prefix."""
    first = outcome(write(tmp_path / "a", RICH))
    other = outcome(write(tmp_path / "b", RICH))
    assert other == fresh(tmp_path / "b" / "flowenv.toml")
    assert other[1].root == tmp_path / "b"
    assert first[1].root == tmp_path / "a"
    assert served(first, other) == {e.name for e in first[2].envs}

    body = RICH.replace("[project]", "[tool.flowenv.project]").replace("\n[", "\n[tool.flowenv.")
    pyproject = tmp_path / "c" / "pyproject.toml"
    pyproject.parent.mkdir()
    pyproject.write_text(body.replace('jinja2 = "~=3.1"', "jinja2 = 3"))
    located = outcome(pyproject)
    assert located == fresh(pyproject)
    assert located[0] == "error"
    (problem,) = [d for d in located[1] if d.key_path.endswith("jinja2")]
    assert problem.file == str(pyproject)
    assert problem.key_path == "tool.flowenv.steps.report.pypi.packages.jinja2"
    assert pyproject.read_text().splitlines()[problem.line - 1].startswith("pypi.packages")


def test_the_memo_keeps_only_what_the_latest_load_used(tmp_path: Path) -> None:
    path = write(tmp_path / "p", RICH)
    config = outcome(path)[1]
    decls = len(memo.DECLS.now)
    assert decls == len(config.steps) + len(config.envs) + 1  # and base
    path.write_text(RICH.replace("[steps.start]\n", ""))
    outcome(path)
    assert len(memo.DECLS.now) == decls - 1
    path.write_text(RICH.replace("[steps.start]\n", "").replace("[steps.publish]", "[steps.p2]"))
    outcome(path)
    # What the previous load used, and what this one did: never more.
    assert len(memo.DECLS.now) == decls - 1
    assert len(memo.DECLS.last) == decls - 1


def _child_sends(path: Path, channel: tuple[int, int], cut: bool = False) -> int:
    """Fork a child that loads ``path`` and sends its memo, as a warm child does; its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            memo_channel.in_child(channel, ())
            outcome(path)
            if cut:
                payload = memo.export(memo.inherited(), {})
                os.write(channel[1], payload[: len(payload) // 2])
                os.kill(os.getpid(), 9)  # dies mid-send
            memo_channel.send_back()
            status = 0
        finally:
            os._exit(status)
    os.close(channel[1])
    return pid


def _receive(reader: memo_channel.MemoReader) -> bytes | bool:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(reader.fd, selectors.EVENT_READ)
        while True:
            selector.select(60)
            outcome_ = reader.read()
            if outcome_ is not True:
                return outcome_


def _payload_from_child(path: Path, cut: bool = False) -> bytes:
    """What a forked child that loads ``path`` sends back through a real channel."""
    channel = memo_channel.open_channel()
    assert channel is not None
    pid = _child_sends(path, channel, cut)
    reader = memo_channel.MemoReader(channel[0])
    payload = _receive(reader)
    reader.close()
    status = os.waitpid(pid, 0)[1]
    assert cut or status == 0
    assert isinstance(payload, bytes)
    return payload


def _forked(test: Callable[..., None]) -> Callable[..., None]:
    return pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")(test)


@_forked
def test_a_childs_memo_reaches_the_parent_and_serves_its_next_load(tmp_path: Path) -> None:
    path = write(tmp_path / "p", RICH)
    payload = _payload_from_child(path)
    stamps: dict[str, tuple[int, int]] = {}
    assert memo_channel.receive(payload, stamps)
    # The child's modules come along, so the server notices when their code changes.
    assert str(Path(memo.__file__)) in stamps
    adopted = dict(memo.DECLS.now)
    assert adopted
    assert not memo.DECLS.last
    # The envs come with the input hashes the child computed: none is computed again.
    environments = build_environments(load_config(path))
    assert all(env._input_hashes for env in environments.envs)
    loaded = outcome(path)
    assert loaded == fresh(path)
    assert all(decl in adopted.values() for _, decl in loaded[1].steps)
    assert any(decl is kept for _, decl in loaded[1].steps for kept in adopted.values())


@_forked
def test_a_child_that_dies_mid_send_leaves_the_memo_as_it_was(tmp_path: Path) -> None:
    path = write(tmp_path / "p", RICH)
    outcome(write(tmp_path / "q", RICH.replace('"3.11"', '"3.12"')))
    kept = (dict(memo.DECLS.now), dict(memo.SPECS.now))
    assert all(kept)
    payload = _payload_from_child(path, cut=True)
    assert payload
    stamps: dict[str, tuple[int, int]] = {}
    assert not memo_channel.receive(payload, stamps)
    assert not stamps
    assert (memo.DECLS.now, memo.SPECS.now) == kept


def test_an_oversized_or_foreign_payload_is_refused(tmp_path: Path) -> None:
    read, write_end = os.pipe()
    os.set_blocking(read, False)
    reader = memo_channel.MemoReader(read)
    try:
        os.write(write_end, b"x" * 1000)
        assert reader.read() is True
        reader.data += b"x" * memo.MAX_PAYLOAD
        os.write(write_end, b"x")
        assert reader.read() is False
    finally:
        reader.close()
        os.close(write_end)
    good = memo.export(memo.inherited(), {})
    assert memo.adopt(good) == {}
    assert memo.adopt(good[:-1]) is None
    assert memo.adopt(b"") is None
    import pickle

    other = pickle.dumps((0, 0, {}, {}))
    assert memo.adopt(len(other).to_bytes(8, "big") + other) is None


@_forked
def test_a_childs_delta_leaves_the_parent_with_what_the_child_used(tmp_path: Path) -> None:
    """The child sends the positions of the entries it used and its new ones: the
    parent ends up with the child's one-step-changed configuration, nothing more."""
    path = write(tmp_path / "p", RICH)
    before = outcome(path)
    changed = RICH.replace('pandas = "2.2.3"', 'pandas = "2.2.2"')
    path.write_text(changed)
    assert memo_channel.receive(_payload_from_child(path), {})
    # What the child's load used: every table of the changed file, once.
    assert len(memo.DECLS.now) == len(before[1].steps) + len(before[1].envs) + 1
    after = outcome(path)
    assert after == fresh(path)
    assert served(before, after) >= {"gpu", "evaluate", "train", "mixed"}
    assert after[1].step("features") != before[1].step("features")


def test_a_delta_from_another_state_adds_to_the_memo_without_pruning(tmp_path: Path) -> None:
    """Two children forked from one state (two locks at once): the second's positions
    refer to a state the first one's adoption replaced, so its entries are added."""
    first, second = write(tmp_path / "a", RICH), write(tmp_path / "b", RICH.replace("3.11", "3.12"))
    since = memo.inherited()
    outcome(first)
    one = memo.export(since)
    memo.restore([({}, {}), ({}, {})])
    outcome(second)
    two = memo.export(since)
    memo.restore([({}, {}), ({}, {})])
    assert memo.adopt(one) is None  # no extra sent
    kept = len(memo.DECLS.now)
    assert kept
    memo.adopt(two)
    assert len(memo.DECLS.now) > kept  # both configurations' entries
    for path in (first, second):
        assert outcome(path) == fresh(path)
