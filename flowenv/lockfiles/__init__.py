"""Lock files: their formats (PEP 751, conda-lock v1), where they live, what they record.

Reading and writing only: the files are made by :mod:`flowenv.resolution`
(through :mod:`flowenv.engines`) under the orchestration of :mod:`flowenv.lock`.
"""
