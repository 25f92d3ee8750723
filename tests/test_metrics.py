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


def test_retrieval_metrics_are_document_level():
    # Chunks of one document collapse to its best rank: ranked chunks a, a, b, c, b are documents a, b, c.
    ranked = ["a", "a", "b", "c", "b"]
    assert metrics.documents(ranked) == ["a", "b", "c"]
    assert metrics.hit_at_k(ranked, ["c"], 2) == 0.0 and metrics.hit_at_k(ranked, ["c"], 3) == 1.0
    assert metrics.reciprocal_rank(ranked, ["b"]) == 0.5 and metrics.reciprocal_rank(ranked, ["z"]) == 0.0
    # Recall counts relevant documents found: gold {b, z} with b at rank 2 -> 1 of 2.
    assert metrics.recall_at_k(ranked, ["b", "z"], 5) == 0.5 and metrics.recall_at_k(ranked, ["b", "c"], 3) == 1.0
    # Gold {b, c} at document ranks 2 and 3: DCG = 1/log2(3) + 1/log2(4); ideal = 1/log2(2) + 1/log2(3).
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert metrics.ndcg_at_k(ranked, ["b", "c"], 10) == pytest.approx(expected)


def test_a_perfect_ranking_scores_one_even_with_repeated_chunks():
    # The one gold document fills the first three chunk ranks: chunk-level nDCG would reward it three times.
    assert metrics.ndcg_at_k(["a", "a", "a", "b"], ["a"], 10) == 1.0
    assert metrics.ndcg_at_k(["a", "b", "b", "c"], ["a", "b"], 10) == 1.0
    assert metrics.reciprocal_rank(["a", "a"], ["a"]) == 1.0 and metrics.recall_at_k(["a", "a"], ["a"], 5) == 1.0


def test_graded_relevance_uses_the_grade_as_gain():
    # Grades a=3, b=1 (trec_eval's gain: the grade; discount log2(rank + 1)).
    grades = {"a": 3, "b": 1, "z": 0}
    ideal = 3 / math.log2(2) + 1 / math.log2(3)
    assert metrics.ndcg_at_k(["b", "a"], grades, 10) == pytest.approx((1 / math.log2(2) + 3 / math.log2(3)) / ideal)
    assert metrics.ndcg_at_k(["a", "b"], grades, 10) == 1.0
    assert metrics.recall_at_k(["z", "a"], grades, 5) == 0.5          # a grade of 0 is not relevant
    assert metrics.reciprocal_rank(["z", "b"], grades) == 0.5


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
    # Below MIN_N values there is no interval at all, rather than a zero-width one around a single value.
    assert all(math.isnan(x) for x in metrics.bootstrap_ci([0.5]))
    assert all(math.isnan(x) for x in metrics.bootstrap_ci([1.0] * (metrics.MIN_N - 1)))
    assert metrics.bootstrap_ci([1.0] * metrics.MIN_N) == (1.0, 1.0)


def test_paired_difference():
    a = [1.0] * 30 + [0.0] * 10
    b = [0.0] * 30 + [0.0] * 10
    d = metrics.paired_difference(a, b)
    assert d["difference"] == pytest.approx(0.75) and d["significant"] and d["ci_low"] > 0
    same = metrics.paired_difference([1, 0, 1, 0] * 5, [0, 1, 0, 1] * 5)
    assert same["difference"] == 0 and not same["significant"]


def test_chinese_answers_have_words():
    # Each Han character is a word (as MLQA and CMRC 2018 score Chinese), so nothing is vacuously right.
    assert metrics.normalize("密码：每 90 天更改。") == "密 码 每 90 天 更 改"
    assert metrics.exact_match("每90天。", "每 90 天") == 1.0 and metrics.exact_match("每30天", "每90天") == 0.0
    assert metrics.token_f1("每90天更改", "每90天") == pytest.approx(2 * (3 / 5) * 1 / (3 / 5 + 1))
    context = "发票在开具后30天内到期。"
    assert metrics.groundedness("发票30天内到期", context) == 1.0
    # An answer the context does not support: none of its words are there (it scored 1.0 with ASCII words).
    assert metrics.groundedness("请联系客服重置密码", context) == 0.0


def test_english_answers_score_as_before():
    assert metrics.normalize("The U.S. plan, an e-mail & the [2] refund!") == "us plan email refund"
    assert metrics.token_f1("A refund within 30 days", "refunds within 30 days") == pytest.approx(3 / 4)


def test_groundedness_leaves_out_the_one_stop_word_list():
    # text.STOP_WORDS holds metrics' old list and 17 words more ("there", "will", "what"...): this was 1/3.
    assert metrics.groundedness("There will be a refund", "A refund is issued.") == 1.0
