"""Metrics against values worked by hand on tiny cases."""
import math

import numpy as np
import pytest

from workbench import metrics


def test_exact_match_and_f1():
    assert metrics.exact_match("The 30 days.", "30 days") == 1.0          # articles and punctuation dropped
    assert metrics.exact_match("30 days [1]", "30 days") == 1.0           # citation marks are not the answer
    assert metrics.exact_match("thirty days", "30 days") == 0.0
    # prediction "due in 30 days" vs gold "30 days": common 2; precision 2/4... "due in 30 days" has 4 tokens.
    assert metrics.token_f1("due in 30 days", "30 days") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    assert metrics.token_f1("", "") == 1.0 and metrics.token_f1("x", "") == 0.0
    assert metrics.token_f1("days days", "days") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_abstention_detection():
    assert metrics.is_abstention("I can't answer that from the documents (no passage).")
    assert metrics.is_abstention("The documents do not contain this information.")
    assert metrics.is_abstention("")
    assert not metrics.is_abstention("Invoices are due in 30 days.")


def test_retrieval_metrics():
    ranked = ["a", "b", "c", "b"]
    assert metrics.hit_at_k(ranked, ["c"], 2) == 0.0 and metrics.hit_at_k(ranked, ["c"], 3) == 1.0
    assert metrics.reciprocal_rank(ranked, ["b"]) == 0.5 and metrics.reciprocal_rank(ranked, ["z"]) == 0.0
    # Gold {b, c}: DCG = 1/log2(3) + 1/log2(4); ideal = 1/log2(2) + 1/log2(3).
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert metrics.ndcg_at_k(ranked, ["b", "c"], 10) == pytest.approx(expected)
    assert metrics.ndcg_at_k(["a"], ["a"], 10) == 1.0


def test_groundedness():
    context = "New invoices are due 30 days after the issue date."
    assert metrics.groundedness("due 30 days after issue", context) == 1.0
    # Content words: due, 14, days -> 2 of 3 found.
    assert metrics.groundedness("due in 14 days", context) == pytest.approx(2 / 3)


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_more_questions():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 80, 320):
        values = rng.binomial(1, 0.6, size=n).astype(float)
        low, high = metrics.bootstrap_ci(values, seed=1)
        assert low <= values.mean() <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert metrics.bootstrap_ci([0.5]) == (0.5, 0.5)
    assert metrics.bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_paired_difference():
    a = [1.0] * 30 + [0.0] * 10
    b = [0.0] * 30 + [0.0] * 10
    d = metrics.paired_difference(a, b)
    assert d["difference"] == pytest.approx(0.75) and d["significant"] and d["ci_low"] > 0
    same = metrics.paired_difference([1, 0, 1, 0] * 5, [0, 1, 0, 1] * 5)
    assert same["difference"] == 0 and not same["significant"]
