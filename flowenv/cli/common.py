"""Pieces shared by commands: loading the configuration the global options point at."""

from __future__ import annotations

import argparse

from flowenv.config.discover import discover_config
from flowenv.config.load import load_config
from flowenv.config.models import Config


def config_from_args(args: argparse.Namespace) -> Config:
    """The configuration ``-C``/``-c`` (or discovery from the cwd) selects."""
    return load_config(discover_config(start=args.directory, explicit=args.config))


def config_and_digests(args: argparse.Namespace) -> tuple[Config, dict[str, str] | None]:
    """:func:`config_from_args` and the digests a freshness record needs of it.

    The configuration file is digested before it is loaded, so a record can
    never pair a verdict on these bytes with the digest of newer ones.
    """
    from flowenv.lockfiles.freshness import digest_inputs

    path = discover_config(start=args.directory, explicit=args.config)
    digests = digest_inputs([path])
    return load_config(path), digests


def add_platform_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``-p/--platform P``, repeatable, collected in ``args.platforms``."""
    parser.add_argument(
        "-p",
        "--platform",
        action="append",
        default=[],
        dest="platforms",
        metavar="P",
        help=help_text,
    )


def add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("envs", nargs="*", metavar="ENV", help="environments (default: all)")
    add_platform_option(parser, "only this platform (repeatable; default: all of the project's)")
