"""examples/ci: every flowenv command the workflow runs is one today's CLI accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from flowenv.cli import build_parser

WORKFLOW = Path(__file__).resolve().parents[1] / "examples/ci/flowenv-locks.yml"


def _flowenv_commands() -> list[list[str]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    commands = []
    for step in workflow["jobs"]["locks"]["steps"]:
        script = re.sub(r"\$\{\{[^}]*\}\}", "main", step.get("run", ""))
        for line in script.splitlines():
            if line.strip().startswith("flowenv "):
                commands.append(shlex.split(line.split(">")[0])[1:])
    return commands


def test_workflow_runs_check_and_posts_markdown_diff() -> None:
    commands = _flowenv_commands()
    assert commands == [
        ["diff", "origin/main", "HEAD", "--format", "markdown"],
        ["lock", "--check"],
    ]
    parser = build_parser()
    diff = parser.parse_args(commands[0])
    assert (diff.arguments, diff.format) == (["origin/main", "HEAD"], "markdown")
    assert parser.parse_args(commands[1]).check is True


def test_workflow_updates_only_its_own_marked_comment() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["locks"]["steps"]
    (post,) = [s for s in steps if s.get("name", "").startswith("Post")]
    script = post["run"]
    # The body starts with the marker and the comment to update is found by it,
    # not by "the token's last comment", which may be another bot's.
    assert "marker='<!-- flowenv-lock-diff -->'" in script
    assert 'select(.body | startswith(\\"$marker\\"))' in script
    assert "--edit-last" not in script
