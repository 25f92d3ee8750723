"""Data and RAG figures: indexing throughput, retrieval latency at 100,000 chunks, retrieval quality on the sample.

Run: python -m pytest tests/benchmarks/test_rag_speed.py -s
WORKBENCH_BENCH_MB sets the generated corpus size (default 10 MB of text).
"""
import json
import os
import random
import statistics
import time

import numpy as np

from workbench import corpus, index, sample, workspace
from workbench.chunking import ChunkSettings
from workbench.providers.local_embedder import LocalEmbedder


def _sentences() -> list[str]:
    from workbench.chunking import sentence_spans

    docs, _ = sample.sample_files()
    out = []
    for name, data in docs:
        if name.endswith((".md", ".txt")):
            text = data.decode("utf-8")
            out += [text[a:b] for a, b in sentence_spans(text) if not text[a:b].startswith("#")]
    return out


def _generated_corpus(megabytes: float, seed: int = 7) -> list[tuple[str, bytes]]:
    """Markdown documents of about 4 KB made of sentences from the sample, shuffled."""
    rng = random.Random(seed)
    sentences = _sentences()
    files, size, n = [], 0, 0
    while size < megabytes * 1e6:
        parts = [f"# Generated document {n}\n"]
        for section in range(4):
            parts.append(f"\n## Section {section}\n\n" + " ".join(rng.choice(sentences) for _ in range(8)))
        data = "\n".join(parts).encode()
        files.append((f"gen-{n:05d}.md", data))
        size += len(data)
        n += 1
    return files


def test_indexing_throughput(tmp_path):
    megabytes = float(os.environ.get("WORKBENCH_BENCH_MB", "10"))
    files = _generated_corpus(megabytes)
    total_mb = sum(len(d) for _, d in files) / 1e6
    ws = workspace.open_workspace("bench", home=tmp_path, create=True)
    t0 = time.perf_counter()
    corpus.ingest(ws, files)
    t1 = time.perf_counter()
    chunks = index.chunk_workspace(ws, ChunkSettings())
    t2 = time.perf_counter()
    report = index.build_index(ws, LocalEmbedder())
    t3 = time.perf_counter()
    rebuild = index.build_index(ws, LocalEmbedder())
    t4 = time.perf_counter()
    print(f"\ncorpus: {len(files)} documents, {total_mb:.1f} MB, {report.chunks} chunks (headings, 200 tokens)")
    print(f"ingest (parse, count tokens, detect language, store): {t1 - t0:.1f} s = {total_mb / (t1 - t0):.2f} MB/s")
    print(f"chunk: {t2 - t1:.1f} s = {total_mb / (t2 - t1):.2f} MB/s ({len(chunks)} chunks)")
    print(f"embed + index (local MiniLM int8, {report.embedded} embedded): {t3 - t2:.1f} s = "
          f"{total_mb / (t3 - t2):.3f} MB/s, {report.embedded / (t3 - t2):.1f} chunks/s")
    print(f"end to end: {t3 - t0:.1f} s = {total_mb / (t3 - t0):.3f} MB/s")
    print(f"re-index with every embedding cached: {t4 - t3:.1f} s ({rebuild.reused} reused, {rebuild.embedded} embedded)")


def test_retrieval_latency_at_100000_chunks(tmp_path):
    n, dims = 100_000, 384
    rng = np.random.default_rng(3)
    sentences = _sentences()
    texts = [" ".join(sentences[(i * 7 + j) % len(sentences)] for j in range(3)) for i in range(n)]
    vectors = rng.standard_normal((n, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ws = workspace.open_workspace("bench100k", home=tmp_path, create=True)
    import faiss

    flat = faiss.IndexFlatIP(dims)
    flat.add(vectors)
    with ws.db() as db:
        db.execute("INSERT INTO documents VALUES ('gen', 'gen', '', 'text', 'Generated', '', '', 0, 0, 'en', 0)")
        db.executemany("INSERT INTO chunks (id, doc_id, position, title, heading_path, text, tokens, start, end, "
                       "content_sha256) VALUES (?, 'gen', ?, 'Generated', '', ?, 60, 0, 0, '')",
                       [(i, i, t) for i, t in enumerate(texts)])
    embedder = LocalEmbedder()
    ws.write_file("index/vectors.faiss", faiss.serialize_index(flat).tobytes())
    ws.file("index/meta.json").write_text(json.dumps({
        "embedder": f"{embedder.name}:{embedder.model_id}", "embedder_label": embedder.label, "offline": True,
        "dims": dims, "chunks": n, "approximate": False, "settings": {}, "built_at": time.time(), "documents": 1}))
    t = time.perf_counter()
    retriever = index.Retriever(ws, embedder)
    print(f"\nload 100,000 chunks (FAISS exact + BM25 index): {time.perf_counter() - t:.1f} s")
    questions = [s for s in sentences[:60]]
    for mode in ("dense", "bm25", "hybrid"):
        settings = index.RetrievalSettings(top_k=5, mode=mode)
        retriever.search(questions[0], settings)
        total, search = [], []
        for q in questions:
            start = time.perf_counter()
            r = retriever.search(q, settings)
            total.append((time.perf_counter() - start) * 1000)
            search.append(r.search_ms)
        total.sort()
        search.sort()
        print(f"{mode:>6}: search p50 {statistics.median(search):.1f} ms, p95 {search[int(0.95 * (len(search) - 1))]:.1f} ms; "
              f"with query embedding p50 {statistics.median(total):.1f} ms, p95 {total[int(0.95 * (len(total) - 1))]:.1f} ms")


def test_retrieval_quality_on_the_sample(tmp_path):
    ws = workspace.open_workspace("sample", home=tmp_path, create=True)
    sample.ensure_sample(ws)
    embedder = LocalEmbedder()
    index.build_index(ws, embedder)
    retriever = index.Retriever(ws, embedder)
    pairs = [p for p in corpus.qa_pairs(ws) if p.answer and p.doc_ids]
    print(f"\n{len(pairs)} answerable sample questions, doc-level recall@5 and MRR (top 5 chunks):")
    for mode, rrf_k in (("bm25", 10), ("dense", 10), ("hybrid", 10), ("hybrid", 60)):
        q = index.retrieval_quality(retriever, pairs, index.RetrievalSettings(top_k=5, mode=mode, rrf_k=rrf_k))
        label = f"hybrid (RRF k={rrf_k})" if mode == "hybrid" else mode
        print(f"  {label:<18} recall@5 {q['recall']:.3f}  MRR {q['mrr']:.3f}")
