"""Registers flowenv's Metaflow environment: ``python flow.py --environment=flowenv run``."""

import os
import sys

ENVIRONMENTS_DESC = [("flowenv", ".flowenv_environment.FlowenvEnvironment")]
STEP_DECORATORS_DESC = [("flowenv_internal", ".flowenv_environment.FlowenvInternalDecorator")]

# In a step process started by the flowenv environment, Metaflow's own runtime
# dependencies live in a support directory. It is appended *after* the step
# env's site-packages, so a version the step declares wins, and it must be in
# place before Metaflow resolves its plugins, which is right after this module
# is imported.
_support = (
    os.environ.get("FLOWENV_METAFLOW_SUPPORT") if os.environ.get("FLOWENV_METAFLOW_STEP") else None
)
if _support and _support not in sys.path:
    sys.path.append(_support)
