"""How near-duplicate detection scales: 5,000, 20,000 and 50,000 generated questions, some of them paraphrases.

Run: python -m pytest tests/benchmarks/test_near_duplicates.py -s
Prints seconds (a run without tracemalloc) and peak Python memory (a second run under tracemalloc) for
training_data.near_duplicate_pairs at each size, and checks its pairs at 5,000 against the sparse matrix
product it replaced (which took 97 s and 4.1 GB at 16,000 questions). Target: 50,000 in seconds.
"""
import random
import time
import tracemalloc

import numpy as np
import pytest

from workbench.text import words
from workbench.training_data import NEAR_DUPLICATE, near_duplicate_pairs

SIZES = (5_000, 20_000, 50_000)
OPENINGS = ["How do I", "How can I", "What is the", "Can I", "Why does the", "Where do I find the", "When does the",
            "Is there a way to", "What happens to the", "Which plan includes the", "Who can change the"]


def generated_questions(n: int, seed: int = 0) -> list[str]:
    """Questions of an opening and 3 to 10 Zipf-distributed words of a 4,000-word vocabulary; about one in
    eight is a paraphrase of an earlier one (case and punctuation changed, a word dropped, added or moved)."""
    rng = random.Random(seed)
    syllables = ["ba", "ko", "ri", "tu", "ne", "sa", "lo", "mi", "de", "fa", "gu", "pe", "zo", "ch", "qu"]
    vocabulary = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(6000)})[:4000]
    rng.shuffle(vocabulary)
    weights = 1 / np.arange(1, len(vocabulary) + 1)
    draws = iter(np.random.default_rng(seed).choice(len(vocabulary), size=12 * n, p=weights / weights.sum()))
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.125:
            base = rng.choice(out).rstrip("?").split()
            edit = rng.randrange(4)
            if edit == 0 and len(base) > 4:
                base.pop(rng.randrange(len(base)))
            elif edit == 1:
                base.insert(rng.randrange(len(base)), vocabulary[next(draws)])
            elif edit == 2:
                i, j = rng.randrange(len(base)), rng.randrange(len(base))
                base[i], base[j] = base[j], base[i]
            out.append(" ".join(base).upper() if edit == 3 else " ".join(base) + " ?")
        else:
            out.append(f"{rng.choice(OPENINGS)} {' '.join(vocabulary[next(draws)] for _ in range(rng.randint(3, 10)))}?")
    return out


def sparse_product_pairs(texts: list[str], threshold: float) -> list[tuple[int, int, float]]:
    """The implementation near_duplicate_pairs replaced: the word-incidence matrix times its transpose."""
    from scipy import sparse

    sets = [frozenset(words(t)) for t in texts]
    vocab = {w: k for k, w in enumerate(sorted(set().union(*sets)))}
    rows = [i for i, s in enumerate(sets) for _ in s]
    cols = [vocab[w] for s in sets for w in s]
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), len(vocab)))
    inter = (m @ m.T).tocoo()
    sizes = np.asarray(m.sum(axis=1)).ravel()
    out = []
    for i, j, n in zip(inter.row, inter.col, inter.data):
        if i < j and n / (sizes[i] + sizes[j] - n) >= threshold:
            out.append((int(i), int(j), float(n / (sizes[i] + sizes[j] - n))))
    return sorted(out)


@pytest.mark.timeout(600)
def test_near_duplicate_pairs_at_5000_20000_and_50000_questions():
    print()
    for n in SIZES:
        questions = generated_questions(n)
        started = time.perf_counter()
        pairs = near_duplicate_pairs(questions, NEAR_DUPLICATE)
        seconds = time.perf_counter() - started
        tracemalloc.start()
        near_duplicate_pairs(questions, NEAR_DUPLICATE)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"near_duplicate_pairs, {n:,} questions: {seconds:.2f} s, peak {peak / 1e6:.1f} MB, "
              f"{len(pairs):,} pairs at Jaccard >= {NEAR_DUPLICATE}")
        if n == SIZES[0]:
            started = time.perf_counter()
            before = sparse_product_pairs(questions, NEAR_DUPLICATE)
            print(f"  the sparse product it replaced, {n:,} questions: {time.perf_counter() - started:.2f} s, "
                  "the same pairs" if before == pairs else "DIFFERENT PAIRS")
            assert before == pairs
