"""The ``flowenv`` Metaflow environment and the step decorator it attaches to every step.

Thin on purpose: this module is imported by every Metaflow process, step
processes included, and there flowenv is not importable (a step sees only its
declared packages). Everything flowenv does is in ``flowenv.metaflow.environment``,
imported lazily by the process that drives the run.
"""

import os
import sys
import tempfile

from metaflow.decorators import StepDecorator
from metaflow.exception import MetaflowException
from metaflow.metaflow_environment import MetaflowEnvironment

_STEP_MARKER = "FLOWENV_METAFLOW_STEP"


def _in_step_process():
    return bool(os.environ.get(_STEP_MARKER))


class FlowenvException(MetaflowException):
    headline = "flowenv"


def _flowenv_errors(call, *args, **kwargs):
    """Run ``call``; turn flowenv's expected errors into Metaflow's (a message, no traceback)."""
    from flowenv.errors import FlowenvError

    try:
        return call(*args, **kwargs)
    except FlowenvError as exc:
        raise FlowenvException(exc.message) from None


class FlowenvEnvironment(MetaflowEnvironment):
    TYPE = "flowenv"

    def __init__(self, flow):
        super().__init__(flow)
        self.flow = flow
        self._run = None
        self._prepared = None
        self.datastore_type = "local"

    def _steps(self):
        from flowenv.metaflow.environment import StepInfo

        return [
            StepInfo(name=s.name, decorators=tuple(d.name for d in s.decorators)) for s in self.flow
        ]

    def flow_run(self):
        if self._run is None:
            from flowenv.metaflow.environment import FlowRun

            flow_file = sys.modules[self.flow.__class__.__module__].__file__
            self._run = _flowenv_errors(FlowRun.load, _path(flow_file), self._steps())
        return self._run

    def validate_environment(self, logger, datastore_type):
        self.datastore_type = datastore_type
        self.logger = logger
        if _in_step_process():
            return
        from flowenv.metaflow.environment import refuse_foreign_decorators

        _flowenv_errors(
            refuse_foreign_decorators,
            self.flow.name,
            list(self.flow._flow_decorators),
            self._steps(),
        )

    def decospecs(self):
        return ("flowenv_internal", *super().decospecs())

    def init_environment(self, echo, only_steps=None):
        # Runs once in the process that drives the run, before any step starts.
        run = self.flow_run()
        self._prepared = _flowenv_errors(run.prepare, self.datastore_type, echo)

    def local_interpreter(self, step_name):
        """The hydrated env's interpreter for a local step; None for a disabled one."""
        env = self.flow_run().env_of(step_name)
        return None if env is None else str(self._prepared.pythons[env])

    def support_dir(self):
        return self._prepared.support

    def executable(self, step_name, default=None):
        if _in_step_process() or step_name.startswith("_"):
            return super().executable(step_name, default)
        if self.flow_run().env_of(step_name) is None:
            return super().executable(step_name, default)
        # Set by bootstrap_commands on the remote executor.
        return "$FLOWENV_PYTHON"

    def bootstrap_commands(self, step_name, datastore_type):
        if step_name.startswith("_"):
            return super().bootstrap_commands(step_name, datastore_type)
        return _flowenv_errors(self.flow_run().bootstrap_commands, step_name, datastore_type)

    def pylint_config(self):
        # Step packages are not installed where the flow is checked.
        return [*super().pylint_config(), "--disable=F0401"]


def _path(text):
    from pathlib import Path

    return Path(text).resolve()


class FlowenvInternalDecorator(StepDecorator):
    """Runs a local step under its env's interpreter; attached by the environment, not by users."""

    name = "flowenv_internal"

    _code_dir = None
    _code_env = None

    def step_init(self, flow, graph, step, decos, environment, flow_datastore, logger):
        self.flow = flow
        self.step = step
        self.environment = environment
        self.remote = False
        self.interpreter = None

    def runtime_init(self, flow, graph, package, run_id):
        cls = self.__class__
        if cls._code_dir is None:
            # Metaflow itself and the flow's code reach the step through the
            # extracted code package, once per run, as with Metaflow's @pypi.
            from metaflow.packaging_sys import ContentType

            cls._code_dir = tempfile.TemporaryDirectory(prefix="flowenv-code-")
            package.extract_into(cls._code_dir.name, ContentType.ALL_CONTENT)
            cls._code_env = package.get_post_extract_env_vars(
                package.package_metadata, cls._code_dir.name
            )

    def runtime_task_created(
        self, task_datastore, task_id, split_index, input_paths, is_cloned, ubf_context
    ):
        from flowenv.metaflow.environment import REMOTE_DECORATORS

        step = next(s for s in self.flow if s.name == self.step)
        self.remote = any(d.name in REMOTE_DECORATORS for d in step.decorators)
        # A remote step's command runs the env's interpreter on the executor instead.
        self.interpreter = None if self.remote else self.environment.local_interpreter(self.step)

    def runtime_step_cli(self, cli_args, retry_count, max_user_code_retries, ubf_context):
        if self.interpreter is None:
            return  # disabled: the interpreter Metaflow was started with
        from flowenv.metaflow.environment import step_environment

        cli_args.env.update(
            step_environment(
                code_dir=self.__class__._code_dir.name,
                extra=self.__class__._code_env or {},
                support=self.environment.support_dir(),
            )
        )
        cli_args.entrypoint[0] = self.interpreter

    def runtime_finished(self, exception):
        cls = self.__class__
        if cls._code_dir is not None:
            cls._code_dir.cleanup()
            cls._code_dir = None
