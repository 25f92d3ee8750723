"""Evaluation metrics, bootstrap confidence intervals and paired comparisons.

Exact match and token F1 follow the SQuAD conventions (lower case, punctuation and articles removed).
Retrieval metrics are document-level: chunks of one document collapse to its best rank, and relevance
may be graded (nDCG uses the grade as gain, as trec_eval does). Intervals are 95 % percentile bootstraps
with a fixed seed, so the same results give the same intervals; below MIN_N values there is no interval.
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Iterable, Mapping, Sequence

import numpy as np

from .text import STOP_WORDS, fold, words

_ARTICLES = frozenset(("a", "an", "the"))
_PUNCT = str.maketrans("", "", string.punctuation)
MIN_N = 5            # fewer values than this get no interval: a bootstrap of 1-4 values says nothing


def normalize(text: str) -> str:
    """SQuAD's answer normalisation, its words (text.words, so Chinese answers have words) joined by spaces."""
    text = re.sub(r"\[\d+\]", " ", fold(text))              # citation marks are not part of the answer
    return " ".join(w for w in words(text.translate(_PUNCT)) if w not in _ARTICLES)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def token_f1(prediction: str, gold: str) -> float:
    p, g = normalize(prediction).split(), normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def documents(retrieved: Sequence[str]) -> list[str]:
    """Ranked document ids from ranked chunks' document ids: each document once, at its best rank."""
    return list(dict.fromkeys(retrieved))


def _grades(gold: Iterable[str] | Mapping[str, float]) -> dict[str, float]:
    grades = dict(gold) if isinstance(gold, Mapping) else {d: 1.0 for d in gold}
    return {d: float(g) for d, g in grades.items() if g and g > 0}


def hit_at_k(retrieved: Sequence[str], gold: Iterable[str] | Mapping[str, float], k: int) -> float:
    """1 if any relevant document is among the first k distinct documents."""
    relevant = _grades(gold)
    return float(any(d in relevant for d in documents(retrieved)[:k]))


def recall_at_k(retrieved: Sequence[str], gold: Iterable[str] | Mapping[str, float], k: int) -> float:
    """Share of the relevant documents found among the first k distinct documents."""
    relevant = _grades(gold)
    if not relevant:
        return 0.0
    return sum(d in relevant for d in documents(retrieved)[:k]) / len(relevant)


def reciprocal_rank(retrieved: Sequence[str], gold: Iterable[str] | Mapping[str, float]) -> float:
    """1 / the rank of the first relevant document (ranks counted over distinct documents)."""
    relevant = _grades(gold)
    return next((1.0 / r for r, d in enumerate(documents(retrieved), 1) if d in relevant), 0.0)


def ndcg_at_k(retrieved: Sequence[str], gold: Iterable[str] | Mapping[str, float], k: int = 10) -> float:
    """nDCG@k over distinct documents with gain = relevance grade (1 for binary) and a log2(rank + 1) discount."""
    relevant = _grades(gold)
    dcg = sum(relevant.get(d, 0.0) / math.log2(rank + 1) for rank, d in enumerate(documents(retrieved)[:k], 1))
    ideal = sum(g / math.log2(rank + 1) for rank, g in enumerate(sorted(relevant.values(), reverse=True)[:k], 1))
    return dcg / ideal if ideal else 0.0


def groundedness(answer: str, context: str) -> float:
    """Share of the answer's words, stop words aside, found in the retrieved context (1.0 for an empty answer)."""
    content = [w for w in normalize(answer).split() if w not in STOP_WORDS]
    if not content:
        return 1.0
    ctx = set(normalize(context).split())
    return sum(w in ctx for w in content) / len(content)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def bootstrap_ci(values: Sequence[float], resamples: int = 2000, seed: int = 0, level: float = 0.95,
                 statistic: str = "mean") -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (or the 50th/95th percentile) of the values."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) < MIN_N:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, len(x), size=(resamples, len(x)))]
    if statistic == "mean":
        stats = samples.mean(axis=1)
    else:
        stats = np.percentile(samples, float(statistic.lstrip("p")), axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def paired_difference(a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0
                      ) -> dict[str, float | bool]:
    """Mean of a - b over the same questions, its 95 % bootstrap interval, and whether it excludes zero."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if not pairs:
        return {"difference": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "significant": False,
                "questions": 0}
    diff = [x - y for x, y in pairs]
    low, high = bootstrap_ci(diff, resamples, seed)
    return {"difference": float(np.mean(diff)), "ci_low": low, "ci_high": high,
            "significant": bool(low > 0 or high < 0), "questions": len(diff)}   # NaN bounds compare False
