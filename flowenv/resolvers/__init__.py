"""Adapters to the resolvers flowenv drives: uv for PyPI, py-rattler for conda."""
