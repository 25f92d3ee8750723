"""Tornado and two-input sweep against hand-worked values."""
import numpy as np
import pytest

from workbench import costs, scenario, sensitivity
from workbench.errors import WorkbenchError


@pytest.fixture(scope="module")
def params():
    # gpt-4o-mini fine-tuning: per-token prices, so the bars can be worked by hand
    return costs.resolve(scenario.scenario_from_dict({"start_date": "2026-11-29",
                                                      "fine_tuning": {"model": "gpt-4o-mini-2024-07-18"}}))


def test_tornado_bar_worked_by_hand(params):
    t = sensitivity.tornado(params, "fine_tuning", None, metric="monthly", inputs=["queries", "ftm_out"])
    # Fine-tuning monthly = 100k x $0.00024 inference + $0.60 retraining = $24.60.
    assert t.base_result == pytest.approx(24.60)
    q = next(b for b in t.bars if b.input == "queries")
    # 50,000 queries: 12.00 + 0.60; 150,000: 36.00 + 0.60.
    assert (q.low_value, q.high_value) == (50_000, 150_000)
    assert (q.low_result, q.high_result) == (pytest.approx(12.60), pytest.approx(36.60))
    out = next(b for b in t.bars if b.input == "ftm_out")
    # Output price $0.60 / $1.80 per 1M: 100k x (200 x 0.30 + 150 x p)/1M + 0.60.
    assert out.low_result == pytest.approx(100_000 * (60 + 150 * 0.6) / 1e6 + 0.6)
    assert out.high_result == pytest.approx(100_000 * (60 + 150 * 1.8) / 1e6 + 0.6)
    assert t.bars[0].swing >= t.bars[1].swing  # widest first


def test_tornado_of_a_difference_ranks_inputs(params):
    t = sensitivity.tornado(params, "fine_tuning", "rag")
    assert t.base_result == pytest.approx(24.60 - 79.324)
    assert [b.swing for b in t.bars] == sorted((b.swing for b in t.bars), reverse=True)
    assert all(b.base_value != 0 for b in t.bars)  # inputs at zero are skipped
    top_k = next(b for b in t.bars if b.input == "rag_top_k")
    assert (top_k.low_value, top_k.high_value) == (2, 6)


def test_tornado_rejects_unknown_inputs(params):
    with pytest.raises(WorkbenchError) as err:
        sensitivity.tornado(params, inputs=["queries", "nope", "ragm_inn"])
    msg = str(err.value)
    assert "unknown input(s): nope, ragm_inn;" in msg and "queries, prompt, output" in msg
    with pytest.raises(WorkbenchError, match=r"unknown input\(s\): nope;"):
        sensitivity.tornado(params, inputs=["nope"])
    # Known inputs at zero are still skipped: the hourly rate is 0 in the default scenario.
    assert [b.input for b in sensitivity.tornado(params, inputs=["rate", "queries"]).bars] == ["queries"]


def test_sweep_matches_single_estimates(params):
    xs, ys = [1_000, 100_000, 10_000_000], [1, 4, 16]
    sw = sensitivity.sweep(params, "queries", xs, "rag_top_k", ys, "fine_tuning", "rag")
    assert np.array(sw.values).shape == (3, 3)
    for yi, k in enumerate(ys):
        for xi, q in enumerate(xs):
            e = costs.estimate(scenario.scenario_from_dict(
                {"start_date": "2026-11-29", "queries_per_month": q, "rag": {"top_k": k},
                 "fine_tuning": {"model": "gpt-4o-mini-2024-07-18"}}))
            diff = e.options["fine_tuning"].monthly_cost_usd - e.options["rag"].monthly_cost_usd
            assert sw.values[yi][xi] == pytest.approx(diff)
            cheapest = min(costs.OPTIONS, key=lambda o: e.options[o].monthly_cost_usd)
            assert sw.cheapest[yi][xi] == cheapest


def test_sweep_of_10000_scenarios_has_the_right_shape(params):
    sw = sensitivity.sweep(params, "queries", np.linspace(1e3, 1e7, 100), "rag_chunk", np.arange(100, 1100, 10))
    assert np.array(sw.values).shape == (100, 100)
    assert np.isfinite(sw.values).all()


def test_bad_sweep_inputs(params):
    with pytest.raises(WorkbenchError, match="unknown input 'nope'"):
        sensitivity.sweep(params, "nope", [1], "queries", [1])
    with pytest.raises(WorkbenchError, match="two different inputs"):
        sensitivity.sweep(params, "queries", [1], "queries", [1])
    with pytest.raises(WorkbenchError, match="unknown option 'svm'"):
        sensitivity.tornado(params, "svm")


def test_an_index_in_the_app_process_has_no_machine_to_vary():
    own = costs.resolve(scenario.scenario_from_dict({"start_date": "2026-11-29", "rag": {"in_process_index": True}}))
    assert own["vs_machine_hr"] == 0
    t = sensitivity.tornado(own, "rag", None)
    assert "vs_machine_hr" not in [b.input for b in t.bars]
    # The RAG bill without the $36.50 FAISS machine: $42.72 inference + $0.10 query embedding + $0.004 re-embedding.
    assert t.base_result == pytest.approx(42.72 + 0.10 + 0.004)
