"""Engines: the one adapter to each external resolver flowenv drives.

:mod:`flowenv.engines.uv` runs uv (PyPI: ``pip compile`` to PEP 751, venvs,
installs), :mod:`flowenv.engines.rattler` py-rattler (conda: solves, channel
reads, installs). Nothing else in flowenv calls either tool; the per-kind
resolution (:mod:`flowenv.resolution`) goes through these.
"""
