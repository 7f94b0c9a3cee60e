"""flowenv: reproducible per-step, per-platform environments for ML workflows."""

__version__ = "0.1.0"
