"""What the ``flowenv`` Metaflow environment does, kept out of the thin extension package.

The extension (``metaflow_extensions/flowenv``) is imported by every Metaflow
process, including step processes that run inside a step's environment,
where flowenv and its dependencies are deliberately absent. So the extension
imports nothing of flowenv at module level and calls into this module only
from the process that drives the run (``run``/``resume``/deploy), which runs
under the interpreter flowenv is installed in.

How a local step sees exactly its packages (the approach Metaflow's own
``@pypi``/``@conda`` take): the step runs under its hydrated env's
interpreter with ``PYTHONNOUSERSITE=1``; Metaflow itself and the flow's code
come from the extracted code package on ``PYTHONPATH``. Metaflow's own
runtime dependencies (``requests``, and the datastore's client for remote
datastores, the list Metaflow pins into its own environments) come from a
*support layer* appended to ``sys.path`` after the env's site-packages, so a
version the step declares always wins over it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from flowenv.config.discover import discover_config
from flowenv.config.load import did_you_mean, load_config, located
from flowenv.config.models import Config
from flowenv.errors import CheckFailed, UsageError
from flowenv.lock import Selection, stale_targets
from flowenv.platforms import host_platform
from flowenv.spec import Environments, build_environments

#: Set in every step process this environment starts: the extension then does nothing
#: flowenv-specific there (flowenv is not importable inside a step's env).
STEP_MARKER = "FLOWENV_METAFLOW_STEP"
#: Directory the extension appends to ``sys.path`` in a step process (the support layer).
SUPPORT_ENV = "FLOWENV_METAFLOW_SUPPORT"
#: Where remote executors (Kubernetes, Batch) run.
REMOTE_PLATFORM = "linux-64"
#: Metaflow's decorators that this environment replaces with flowenv.toml.
FOREIGN_DECORATORS = (
    "pypi",
    "conda",
    "pypi_base",
    "conda_base",
    "sys_packages",
    "sys_packages_base",
)
#: Step decorators that send a step to a remote executor (as Metaflow's conda env lists them).
REMOTE_DECORATORS = ("batch", "kubernetes", "nvidia", "snowpark", "slurm", "nvct", "skypilot_step")
#: What Metaflow needs importable in every step besides itself; datastore clients are added.
METAFLOW_RUNTIME = ("requests",)
DATASTORE_RUNTIME: Mapping[str, tuple[str, ...]] = {
    "local": (),
    "s3": ("boto3",),
    "azure": ("azure-identity", "azure-storage-blob"),
    "gs": ("google-cloud-storage", "google-auth"),
}


@attrs.frozen(kw_only=True)
class StepInfo:
    """What the extension tells this module about one step of the flow."""

    name: str
    decorators: tuple[str, ...] = ()

    @property
    def remote(self) -> bool:
        return any(d in REMOTE_DECORATORS for d in self.decorators)


def refuse_foreign_decorators(
    flow: str, flow_decorators: Iterable[str], steps: Sequence[StepInfo]
) -> None:
    """A flow run with ``--environment=flowenv`` must not also carry ``@pypi``/``@conda``.

    Two sources of truth for one step's packages would drift; the message says
    how to move the decorators into flowenv.toml.
    """
    found = [f"@{d} on {flow}" for d in flow_decorators if d in FOREIGN_DECORATORS]
    found += [
        f"@{d} on step {s.name}" for s in steps for d in s.decorators if d in FOREIGN_DECORATORS
    ]
    if found:
        raise UsageError(
            f"{', '.join(found)}: with --environment=flowenv the packages come from flowenv.toml; "
            "translate them with `flowenv import FLOW.py`, then remove the decorators"
        )


@attrs.frozen(kw_only=True)
class Prepared:
    """The local side of a run, ready: each local env's interpreter and the support layer."""

    pythons: Mapping[str, Path]
    support: Path


@attrs.define
class FlowRun:
    """One run of one flow under flowenv: the configuration and each step's environment."""

    config: Config
    environments: Environments
    steps: tuple[StepInfo, ...]
    #: Env ids already pinned in the store by this process (one write per env, not per task).
    _pinned: set[str] = attrs.field(factory=set, init=False)

    @classmethod
    def load(cls, flow_file: Path, steps: Sequence[StepInfo]) -> FlowRun:
        config = load_config(discover_config(start=flow_file.parent))
        run = cls(config=config, environments=build_environments(config), steps=tuple(steps))
        run._check_step_names()
        return run

    def _check_step_names(self) -> None:
        # A misspelt [steps.NAME] would silently run that step in base.
        names = [s.name for s in self.steps]
        unknown = [name for name, _ in self.config.steps if name not in names]
        if unknown:
            raise located(
                self.config,
                [
                    (("steps", name), f"the flow has no step '{name}'{did_you_mean(name, names)}")
                    for name in unknown
                ],
            )

    def env_of(self, step: str) -> str | None:
        return self.environments.env_of_step(step)

    def needed(self) -> dict[str, set[str]]:
        """platform -> env names that this run's steps need locked (and synced) for it."""
        out: dict[str, set[str]] = {}
        for step in self.steps:
            env = self.env_of(step.name)
            if env is not None:
                platform = REMOTE_PLATFORM if step.remote else host_platform()
                out.setdefault(platform, set()).add(env)
        return out

    def check_fresh(self) -> None:
        """Refuse to run on a stale or missing lock; never resolves anything."""
        stale = []
        for platform, envs in sorted(self.needed().items()):
            if platform not in self.config.project.platforms:
                raise UsageError(
                    f"steps run on {platform}, which is not in project.platforms "
                    f"({', '.join(self.config.project.platforms)}) in {self.config.path}"
                )
            self._check_env_platforms(platform)
            stale += stale_targets(
                self.config, Selection(envs=tuple(sorted(envs)), platforms=(platform,))
            )
        if stale:
            lines = [
                f"  {t.label}: {'stale' if t.path.exists() else 'missing'} "
                f"({t.path.relative_to(self.config.root)})"
                for t in stale
            ]
            raise CheckFailed("stale locks (run `flowenv lock`):\n" + "\n".join(lines))

    def _check_env_platforms(self, platform: str) -> None:
        """A step whose env is locked for other platforms only (a GPU step) cannot run here."""
        for step in self.steps:
            env = self.env_of(step.name)
            where = REMOTE_PLATFORM if step.remote else host_platform()
            if env is None or where != platform:
                continue
            platforms = self.environments.get(env).platforms
            if platform not in platforms:
                how = "remotely" if step.remote else "locally"
                raise UsageError(
                    f"step {step.name} would run {how} on {platform}, but its env '{env}' is "
                    f"locked for {', '.join(platforms)} only (platforms in {self.config.path}); "
                    "send the step where its env is locked (e.g. @kubernetes for linux-64) "
                    "or add the platform to the env"
                )

    def prepare(self, datastore_type: str, log: Callable[[str], None] = lambda _: None) -> Prepared:
        """Sync what the run needs to the store, hydrate the local envs, build the support layer."""
        from flowenv.cachedir import default_cache_dir
        from flowenv.hydrate import hydrate
        from flowenv.sync import sync

        self.check_fresh()
        needed = self.needed()
        for platform, envs in sorted(needed.items()):
            summary = sync(self.config, Selection(envs=tuple(sorted(envs)), platforms=(platform,)))
            if summary.uploaded:
                log(f"flowenv: synced {summary.uploaded} artifacts to {summary.store}")
        pythons: dict[str, Path] = {}
        for env in sorted(needed.get(host_platform(), ())):
            hydrated = hydrate(self.config, env, platform=host_platform())
            how = "reused" if hydrated.reused else "built"
            log(f"flowenv: env {env} {how} at {hydrated.prefix}")
            pythons[env] = hydrated.python
        support = build_support_layer(default_cache_dir() / "metaflow-support", datastore_type)
        return Prepared(pythons=pythons, support=support)

    def remote_env_id(self, env: str) -> str:
        """The env id of ``env``'s committed lock for the remote platform.

        A stale or missing lock is refused (CheckFailed), as at the start of a run.
        """
        from flowenv.lockfiles.layout import LockTarget, lock_path
        from flowenv.store.plan import plan_target

        spec = self.environments.get(env)
        path = lock_path(self.config.lock_root, spec, REMOTE_PLATFORM)
        return plan_target(LockTarget(spec, REMOTE_PLATFORM, path)).env_id

    def pin(self, env: str, env_id: str) -> None:
        """Record in the store that a run (or deployment) uses ``env_id``: gc keeps it.

        Pins stay until removed (``flowenv store unpin``): a deployed flow may
        start a run months after it was deployed.
        """
        if env_id in self._pinned:
            return
        import datetime

        from flowenv.store.catalog import pin
        from flowenv.sync import store_for_config

        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
        store = store_for_config(self.config)
        pin(store, self.config.project.name, env, REMOTE_PLATFORM, env_id, pinned_at=now)
        self._pinned.add(env_id)

    def bootstrap_commands(self, step: str, datastore_type: str) -> list[str]:
        """Shell commands that build ``step``'s env on a remote executor from the store alone.

        The container needs flowenv (for ``flowenv hydrate``) and read access
        to the store; the env's interpreter is then ``$FLOWENV_PYTHON``. The
        env id is pinned here, where the locks are (these commands are written
        when a run starts or a flow is deployed), so an executor builds exactly
        the env the run was started with, never a newer one synced under the
        same name later. :meth:`prepare` has synced that env id before; the
        pin is recorded in the store too, so ``flowenv store gc`` keeps it.
        """
        env = self.env_of(step)
        if env is None:
            return []
        from flowenv.store import store_url_for

        env_id = self.remote_env_id(env)
        self.pin(env, env_id)
        store = store_url_for(None, self.config.project.store, self.config.root)
        hydrate = shlex.join(
            [
                "flowenv",
                "hydrate",
                env,
                "--store",
                store,
                "--project",
                self.config.project.name,
                "--platform",
                REMOTE_PLATFORM,
                "--env-id",
                env_id,
                "--prefix",
                ".flowenv-env",
            ]
        )
        support = shlex.join(
            [
                "python",
                "-m",
                "flowenv.metaflow.environment",
                "support",
                ".flowenv-support",
                datastore_type,
            ]
        )
        # A bare assignment fails with its command substitution (an export would not).
        return [
            "echo " + shlex.quote(f"flowenv: hydrating {env} (env id {env_id})"),
            f"FLOWENV_PYTHON=$({hydrate})",
            f"{SUPPORT_ENV}=$(pwd)/$({support})",
            f"export FLOWENV_PYTHON {SUPPORT_ENV} {STEP_MARKER}=1 PYTHONNOUSERSITE=1",
        ]


# -- the support layer ------------------------------------------------------------


def _requirement_closure(names: Iterable[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` need, following their unconditional requirements."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise UsageError(
                f"Metaflow needs '{name}' in its steps, and it is not installed beside flowenv "
                "(pip install 'flowenv[metaflow]')"
            ) from None
        seen[name] = dist
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return [seen[k] for k in sorted(seen)]


def _copyable(relative: str) -> bool:
    # Compiled modules are built for this interpreter, not the step's, and every
    # package in the closure falls back to pure Python without them.
    parts = relative.split("/")
    return (
        ".." not in parts
        and not parts[0].endswith(".dist-info")
        and not relative.endswith((".so", ".pyd", ".pyc"))
        and "__pycache__" not in parts
    )


def build_support_layer(root: Path, datastore_type: str) -> Path:
    """A directory of Metaflow's runtime dependencies, copied from this interpreter.

    Content-addressed (``root/<hash>``) and built in a sibling directory that is
    renamed into place, so concurrent runs share one copy and never see half of one.
    """
    names = (*METAFLOW_RUNTIME, *DATASTORE_RUNTIME.get(datastore_type, ()))
    dists = _requirement_closure(names)
    key = hashlib.sha256(
        "\n".join(f"{d.metadata['Name']}=={d.version}" for d in dists).encode()
    ).hexdigest()[:16]
    target = root / key
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        for dist in dists:
            for file in dist.files or ():
                if not _copyable(file.as_posix()):
                    continue
                source = Path(str(dist.locate_file(file)))
                if source.is_file():
                    destination = building / file.as_posix()
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, destination)
        try:
            os.replace(building, target)
        except OSError:
            if not target.is_dir():  # not another run that won the race
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def step_environment(
    *, code_dir: str | None, extra: Mapping[str, str], support: Path
) -> dict[str, str]:
    """Environment variables of a local step process running in its env's interpreter.

    ``PYTHONPATH`` is *set*, not extended: anything the driving process had on
    it would leak packages into the step.
    """
    env = {key[:-1] if key.endswith(":") else key: value for key, value in extra.items()}
    paths = [p for p in (env.get("PYTHONPATH"), code_dir) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONNOUSERSITE"] = "1"
    env[STEP_MARKER] = "1"
    env[SUPPORT_ENV] = str(support)
    return env


def _main(argv: Sequence[str]) -> int:
    """``python -m flowenv.metaflow.environment support DIR DATASTORE``: build the layer.

    Prints the layer's path.

    Run by the remote bootstrap commands with the executor's Python.
    """
    if len(argv) != 3 or argv[0] != "support":
        raise SystemExit("usage: python -m flowenv.metaflow.environment support DIR DATASTORE")
    layer = build_support_layer(Path(argv[1]), argv[2])
    print(os.path.relpath(layer))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
