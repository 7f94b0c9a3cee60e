"""flowenv inside Metaflow, in one place.

* :mod:`flowenv.metaflow.environment`: the ``--environment=flowenv`` side: each
  step's environment, the store pins of a run, and the bootstrap commands an
  executor runs (``python -m flowenv.metaflow.environment support ...``).
* :mod:`flowenv.metaflow.flow_import`: ``flowenv import flow.py``, Metaflow's
  ``@pypi``/``@conda`` decorators read with :mod:`ast` into a flowenv.toml.

The package ``metaflow_extensions.flowenv`` (found by Metaflow's extension
loader) stays a thin shim that imports from here lazily, so that a Metaflow
command that never selects the flowenv environment pays nothing for it.
"""
