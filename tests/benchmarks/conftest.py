"""Benchmarks run on demand (`python -m pytest tests/benchmarks -s`), never in the default test run."""
