"""Resolution: one environment's spec into lock file text, a locker per environment kind.

A locker is looked up by :attr:`EnvSpec.kind` in :data:`LOCKERS` (a lazy
``"module:function"`` registry, so ``lock --check`` never imports uv or rattler
code). Each locker resolves one env for the platforms asked and returns the
text of every lock file it wants written (by file name); the orchestrator in
:mod:`flowenv.lock` decides what to resolve, runs lockers in parallel and
writes atomically.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from flowenv.config.models import Config
from flowenv.spec import EnvSpec


@attrs.frozen(kw_only=True)
class LockOptions:
    """How to resolve: what may move relative to the previous lock."""

    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()


def disagree(mine: Mapping[str, str], lead: Mapping[str, str]) -> bool:
    """Whether a platform's name -> version pins differ from the lead's on a shared package."""
    return any(lead[name] != version for name, version in mine.items() if name in lead)


class Locker(Protocol):
    def __call__(
        self,
        config: Config,
        env: EnvSpec,
        platforms: Sequence[str],
        options: LockOptions,
    ) -> Mapping[str, str]:
        """Resolve ``env`` for ``platforms``: file name in the env's lock directory -> text.

        The text must not depend on the env's name, so that envs with identical
        specs share one resolution and get identical files.
        """
        ...


LOCKERS: dict[str, str] = {
    "pypi": "flowenv.resolution.pypi:lock_pypi_env",
    "conda": "flowenv.resolution.conda:lock_conda_env",
}


def locker_for(kind: str) -> Locker:
    module, _, attr = LOCKERS[kind].partition(":")
    locker: Locker = getattr(importlib.import_module(module), attr)
    return locker
