"""``flowenv server status|stop``: see and end the warm server ``flowenv lock`` uses."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "server",
        help="show or stop the warm server that speeds up `flowenv lock`",
        description="`flowenv lock` starts a background server that keeps flowenv imported and "
        "forks it for the next lock (off with FLOWENV_SERVER=0). `status` says whether one is "
        "running; `stop` ends it.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("status", help="whether a warm server is running").set_defaults(
        run=run_status
    )
    actions.add_parser(
        "stop", help="end the warm server (and those of other environments)"
    ).set_defaults(run=run_stop)


def _describe(state: Any, running: str) -> str:
    if state.off_reason is not None:
        return f"warm server off: {state.off_reason}"
    if state.pid is None:
        return f"no warm server running (socket {state.socket})"
    spare = f", a spare ready: pid {state.spare}" if state.spare else ""
    return f"{running} (pid {state.pid}, {state.served} locks served{spare}, socket {state.socket})"


def run_status(args: argparse.Namespace) -> int:
    from flowenv.warm.control import state

    print(_describe(state(), "warm server running"))
    return 0


def run_stop(args: argparse.Namespace) -> int:
    from flowenv.warm.control import stop

    stopped = stop()
    print(_describe(stopped, "warm server stopped"))
    if stopped.others:
        print(f"stopped {stopped.others} warm server(s) of other environments too")
    return 0
