"""Vector stores at 100,000 vectors of 384 dimensions: add + persist, reopen, and single-query latency.

Run: python -m pytest tests/benchmarks/test_vector_store_speed.py -s
Random unit vectors (seeded); 200 single queries at the depth the Retriever asks for (50), then the
vectors of the top 5 (what relevance needs). Recall@10 is against exact search on the same vectors; HNSW is
run with FAISS's default candidate list (hnsw_ef_search 16) and with 256.
"""
import statistics
import time
import warnings
from functools import lru_cache

import numpy as np
import pytest

from workbench.providers.faiss_store import FaissOpener, FaissSettings

N, DIMS, QUERIES, DEPTH = 100_000, 384, 200, 50


@lru_cache(maxsize=1)
def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((N, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((QUERIES, DIMS)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vectors, queries


@lru_cache(maxsize=1)
def _exact_top10() -> list[set[int]]:
    vectors, queries = _data()
    scores = queries @ vectors.T
    return [set(np.argpartition(-row, 10)[:10].tolist()) for row in scores]


def _opener(name: str):
    if name == "qdrant-local":
        pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
        from workbench.providers.qdrant_store import QdrantOpener, QdrantSettings

        return QdrantOpener(QdrantSettings()), False
    if name.startswith("faiss-hnsw"):
        ef = int(name.rpartition("ef")[2]) if "ef" in name else FaissSettings().hnsw_ef_search
        return FaissOpener(FaissSettings(hnsw_ef_search=ef)), True
    return FaissOpener(FaissSettings()), False


def _ms(values: list[float]) -> str:
    values = sorted(values)
    return f"p50 {statistics.median(values):.2f} ms, p95 {values[int(0.95 * (len(values) - 1))]:.2f} ms"


@pytest.mark.parametrize("name", ["faiss-exact", "faiss-hnsw", "faiss-hnsw-ef256", "qdrant-local"])
def test_vector_store_speed_at_100000(name, tmp_path):
    opener, approximate = _opener(name)
    vectors, queries = _data()
    rows = list(range(N))
    t0 = time.perf_counter()
    store = opener.open(tmp_path, DIMS, approximate, True)
    store.add(rows, vectors)
    t1 = time.perf_counter()
    store.persist()
    t2 = time.perf_counter()
    store.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # Qdrant's local mode warns above 20,000 points
        t3 = time.perf_counter()
        store = opener.open(tmp_path, DIMS, approximate, False)
        t4 = time.perf_counter()
    assert store.stats().vectors == N
    store.search(queries[0], DEPTH)
    search, fetch, recall = [], [], []
    for q, truth in zip(queries, _exact_top10()):
        start = time.perf_counter()
        hits = store.search(q, DEPTH)
        mid = time.perf_counter()
        store.vectors([h.row for h in hits[:5]])
        end = time.perf_counter()
        search.append((mid - start) * 1000)
        fetch.append((end - mid) * 1000)
        recall.append(len(truth & {h.row for h in hits[:10]}) / 10)
    store.close()
    print(f"\n{name}: {N:,} x {DIMS}: add {t1 - t0:.1f} s, persist {t2 - t1:.1f} s, reopen {t4 - t3:.1f} s; "
          f"search k={DEPTH} {_ms(search)}; vectors of top 5 {_ms(fetch)}; recall@10 {statistics.mean(recall):.3f}")
    if not approximate:   # HNSW on random 384-d vectors (no structure) is a worst case: its figure is printed
        assert statistics.mean(recall) > 0.999
