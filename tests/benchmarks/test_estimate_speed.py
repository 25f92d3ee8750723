"""How fast the estimator answers: one scenario, and a sweep of 10,000 scenarios.

Run: python -m pytest tests/benchmarks/test_estimate_speed.py -s
Targets (issue): one scenario well under 5 ms; the 10,000-scenario sweep under 200 ms.
"""
import statistics
import time

import numpy as np

from workbench import costs, pricing, scenario, sensitivity


def _timings(fn, repeat: int) -> list[float]:
    fn()  # warm up
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _report(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    print(f"\n{name}: median {statistics.median(ms):.2f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]:.2f} ms, "
          f"min {ms[0]:.2f} ms over {len(ms)} runs")


def test_one_scenario_and_a_10000_scenario_sweep():
    book, cfg = pricing.load_pricing(), scenario.load_estimate_config()
    s = scenario.default_scenario(cfg)
    one = _timings(lambda: costs.estimate(s, book, cfg), 300)
    _report("one scenario (estimate: costs, latency, break-even month and volume, warnings)", one)
    params = costs.resolve(s, book, cfg)
    xs, ys = np.geomspace(1e3, 1e8, 100), np.arange(1, 101)
    sweep = _timings(lambda: sensitivity.sweep(params, "queries", xs, "rag_top_k", ys), 30)
    _report("10,000-scenario sweep (100 x 100 grid, all four options)", sweep)
    tornado = _timings(lambda: sensitivity.tornado(params), 100)
    _report("tornado (+/-50 % of every input)", tornado)
