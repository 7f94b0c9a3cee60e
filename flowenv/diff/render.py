"""Render a :class:`LockDiff` as aligned terminal text, PR-comment markdown or stable JSON.

Platforms of one environment whose changes are the same (same packages, same
versions, same sources; digests differ per platform and are not compared) are
shown once, as ``train · linux-64, osx-arm64``: a bump usually lands on every
platform and a reviewer should read it once.

A removed environment or platform is one line with its package count: what
matters in review is that it is gone, not the list of what it held.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from flowenv.diff.load import WORK_TREE
from flowenv.diff.model import CHANGE_KINDS, Change, EnvDiff, LockDiff, PlatformDiff

FORMATS = ("text", "markdown", "json")

_MARKERS = {
    "upgraded": "↑",
    "downgraded": "↓",
    "changed": "~",
    "added": "+",
    "removed": "-",
    "source": "~",
    "hash": "~",
}
_COUNT_WORDS = {
    "upgraded": "upgraded",
    "downgraded": "downgraded",
    "changed": "changed",
    "added": "added",
    "removed": "removed",
    "source": "source changed",
    "hash": "hash changed",
}
_ANSI = {
    "header": "1",
    "upgraded": "36",
    "downgraded": "33",
    "changed": "35",
    "added": "32",
    "removed": "31",
    "source": "35",
    "hash": "35",
}
#: How many packages a markdown <summary> names before "… and N more".
SUMMARY_ITEMS = 5


def _signature(platform: PlatformDiff) -> tuple[object, ...]:
    changes = tuple(
        (
            c.kind,
            c.name,
            c.old and c.old.version,
            c.new and c.new.version,
            c.old and c.old.source,
            c.new and c.new.source,
        )
        for c in platform.changes
    )
    return (platform.status, platform.size if platform.status == "removed" else 0, changes)


def group_platforms(env: EnvDiff) -> list[tuple[tuple[str, ...], PlatformDiff]]:
    """Platforms with identical changes, merged: (platform names, the first one's diff)."""
    groups: dict[tuple[object, ...], tuple[list[str], PlatformDiff]] = {}
    for platform in env.platforms:
        names, _ = groups.setdefault(_signature(platform), ([], platform))
        names.append(platform.platform)
    return [(tuple(names), diff) for names, diff in groups.values()]


def _columns(change: Change) -> tuple[str, str, str]:
    """(old column, separator, new column) of one change."""
    old, new = change.old, change.new
    if change.kind == "added" and new:
        return "", " ", new.version
    if change.kind == "removed" and old:
        return old.version, "", ""
    if change.kind == "hash" and new:
        return new.version, " ", "hash changed"
    if change.kind == "source" and old and new:
        return new.version, " ", f"source {old.source} → {new.source}"
    assert old is not None, change
    assert new is not None, change
    return old.version, "→", new.version


def _inline(change: Change) -> str:
    """``numpy 1.26.4 → 2.0.1``, ``+ scipy 1.13.1``: one change on one line."""
    old, new = change.old, change.new
    if change.kind == "added" and new:
        return f"+ {change.name} {new.version}"
    if change.kind == "removed" and old:
        return f"- {change.name} {old.version}"
    if change.kind in ("source", "hash") and new:
        return f"{change.name} {new.version} ({_COUNT_WORDS[change.kind]})"
    assert old is not None, change
    assert new is not None, change
    return f"{change.name} {old.version} → {new.version}"


def _group_note(diff: PlatformDiff, env: EnvDiff) -> str:
    if env.status == "added":
        return " (new environment)"
    if env.status == "removed":
        return f" (environment removed, {_packages(diff.size)})"
    if diff.status == "added":
        return " (new platform)"
    if diff.status == "removed":
        return f" (platform removed, {_packages(diff.size)})"
    return ""


def _packages(n: int) -> str:
    return f"{n} package" if n == 1 else f"{n} packages"


def _lists_changes(diff: PlatformDiff) -> bool:
    return diff.status != "removed"


# -- text ---------------------------------------------------------------------


def render_text(diff: LockDiff, *, color: bool = False) -> str:
    """Aligned, one package per line; ANSI colours when ``color``."""
    if not diff:
        return f"no lock changes ({diff.old} → {diff.new})\n"
    paint: Callable[[str, str], str] = (
        (lambda role, text: f"\x1b[{_ANSI[role]}m{text}\x1b[0m")
        if color
        else (lambda _r, text: text)
    )
    blocks = [(env, names, group) for env in diff.envs for names, group in group_platforms(env)]
    rows = [c for _, _, g in blocks if _lists_changes(g) for c in g.changes]
    name_width = max((len(c.name) for c in rows), default=0)
    old_width = max((len(_columns(c)[0]) for c in rows), default=0)
    lines = []
    for index, (env, names, group) in enumerate(blocks):
        lines.append(paint("header", f"{env.env} · {', '.join(names)}") + _group_note(group, env))
        if _lists_changes(group):
            for change in group.changes:
                old, sep, new = _columns(change)
                # Without an "old" column (only additions) the new versions follow the names.
                values = f"{old:<{old_width}} {sep} {new}" if old_width else new
                row = f"{_MARKERS[change.kind]} {change.name:<{name_width}}  {values}"
                lines.append("  " + paint(change.kind, row.rstrip()))
        last_of_env = index + 1 == len(blocks) or blocks[index + 1][0] is not env
        if last_of_env and env.platform_differences:
            lines.append("  " + differences_note(env))
    return "\n".join(lines) + "\n"


def differences_note(env: EnvDiff) -> str:
    """One line naming the packages still locked at different versions per platform."""
    items = [
        f"{name} ({', '.join(f'{p} {v}' for p, v in versions)})"
        for name, versions in env.platform_differences
    ]
    return f"versions differ across platforms: {'; '.join(items)}"


# -- markdown -----------------------------------------------------------------


def _md(text: str) -> str:
    """Table-cell and HTML-safe text (a source URL may hold ``|`` or ``<``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _md_label(label: str) -> str:
    return label if label == WORK_TREE else f"`{label}`"


def _summary(env: EnvDiff, groups: Sequence[tuple[tuple[str, ...], PlatformDiff]]) -> str:
    platforms = ", ".join(p.platform for p in env.platforms)
    head = f"<b>{_md(env.env)}</b> · {platforms}"
    if env.status == "added":
        return f"{head}: new environment"
    if env.status == "removed":
        return f"{head}: environment removed"
    if len(groups) == 1 and groups[0][1].status == "changed":
        items = [_md(_inline(c)) for c in groups[0][1].changes]
        if len(items) > SUMMARY_ITEMS:
            items = [*items[:SUMMARY_ITEMS], f"… and {len(items) - SUMMARY_ITEMS} more"]
        return f"{head}: {', '.join(items)}"
    distinct = {(c.kind, c.name) for _, g in groups for c in g.changes}
    counts = [
        f"{sum(1 for k, _ in distinct if k == kind)} {_COUNT_WORDS[kind]}"
        for kind in CHANGE_KINDS
        if any(k == kind for k, _ in distinct)
    ]
    notes = [f"{', '.join(n)}{_group_note(g, env)}" for n, g in groups if g.status != "changed"]
    return f"{head}: {', '.join(counts + notes)}"


def _md_table(changes: Sequence[Change]) -> list[str]:
    lines = ["| | package | before | after |", "|:-:|:--|:--|:--|"]
    for change in changes:
        old = change.old.version if change.old else ""
        new = change.new.version if change.new else ""
        if change.kind == "hash":
            new += " (hash changed)"
        elif change.kind == "source" and change.old and change.new:
            old += f" ({change.old.source})"
            new += f" ({change.new.source})"
        cells = [_MARKERS[change.kind], change.name, old, new]
        lines.append("|" + "|".join(f" {_md(c)} " if c else " " for c in cells) + "|")
    return lines


def render_markdown(diff: LockDiff) -> str:
    """A PR comment: a heading, then one collapsible section per environment."""
    lines = [f"### flowenv lock changes ({_md_label(diff.old)} → {_md_label(diff.new)})", ""]
    if not diff:
        return "\n".join([*lines, "No lock changes.", ""])
    for env in diff.envs:
        groups = group_platforms(env)
        lines += ["<details>", f"<summary>{_summary(env, groups)}</summary>", ""]
        for names, group in groups:
            lines.append(f"**{', '.join(names)}**{_group_note(group, env)}")
            lines.append("")
            if _lists_changes(group):
                lines += [*_md_table(group.changes), ""]
        if env.platform_differences:
            lines += [f"⚠ {_md(differences_note(env))}", ""]
        lines += ["</details>", ""]
    return "\n".join(lines)


# -- json ---------------------------------------------------------------------


def render_json(diff: LockDiff) -> str:
    """Sorted keys, every digest included: stable for tools across runs and versions."""
    return json.dumps(diff.to_dict(), indent=2, sort_keys=True) + "\n"


def render(diff: LockDiff, fmt: str, *, color: bool = False) -> str:
    if fmt == "markdown":
        return render_markdown(diff)
    if fmt == "json":
        return render_json(diff)
    return render_text(diff, color=color)
