"""Benchmarks run on demand (`python -m pytest tests/benchmarks -s`), never in the default test run."""
import time

import pytest


@pytest.fixture
def timed_compare():
    """Run Compare's arms on questions and return (summary, wall seconds): one way to time a comparison."""
    from workbench import evaluation

    def run(ws, questions, settings):
        ctx = evaluation.build_arms(ws, settings)
        run_id = evaluation.create_run(ws, questions, settings)
        started = time.perf_counter()
        evaluation.run(ws, run_id, ctx)
        wall = time.perf_counter() - started
        return evaluation.summarize(ws, run_id, ctx.embedder), wall, ctx
    return run
