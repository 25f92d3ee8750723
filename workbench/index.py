"""Index a workspace's chunks (a vector store beside BM25) and retrieve from it: dense, lexical, or fused (RRF).

Embeddings are cached in the workspace by chunk content hash and embedding model, so re-indexing after
a document change embeds only what changed. The vectors go to the configured vector store (FAISS in the
workspace by default, or Qdrant; see workbench.providers), through its protocol only: exact search for
small corpora, approximate above a configurable size.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal

import numpy as np
from pydantic import Field

from . import corpus, providers
from .chunking import Chunk, ChunkSettings, chunk_document, describe
from .config import Strict
from .errors import WorkbenchError
from .text import content_words
from .workspace import Workspace, atomic_write_text

Mode = Literal["hybrid", "dense", "bm25"]
INDEX_DIR = "index"
SETTINGS_KEY = "rag_settings"


class IndexSettings(Strict):
    chunking: ChunkSettings = ChunkSettings()
    approximate_above: Annotated[int, Field(ge=1)] = 50_000     # chunks; approximate (HNSW) above, exact below
    # Kept so saved settings still load; the FAISS graph degree is now the vector store's own setting
    # (`vector_store: {provider: faiss, hnsw_m: 32}` in configs/providers.yaml).
    hnsw_m: Annotated[int, Field(ge=4, le=128)] = 32


class RetrievalSettings(Strict):
    top_k: Annotated[int, Field(ge=1, le=100)] = 4
    mode: Mode = "hybrid"
    rrf_k: Annotated[int, Field(ge=1, le=1000)] = 10             # reciprocal rank fusion constant
    min_relevance: Annotated[float, Field(ge=-1, le=1)] = 0.35    # cosine of the best hit; below it, abstain
    min_coverage: Annotated[float, Field(ge=0, le=1)] = 0.5       # share of the question's distinctive words found
    doc_ids: list[str] = []                                      # metadata filter: only these documents


class RagSettings(Strict):
    index: IndexSettings = IndexSettings()
    retrieval: RetrievalSettings = RetrievalSettings()


def load_settings(ws: Workspace) -> RagSettings:
    saved = ws.get_state(SETTINGS_KEY)
    return RagSettings.model_validate(saved) if saved else RagSettings()


def save_settings(ws: Workspace, settings: RagSettings) -> None:
    ws.set_state(SETTINGS_KEY, settings.model_dump(mode="json"))


@dataclass
class IndexReport:
    documents: int
    chunks: int
    embedded: int
    reused: int
    seconds: float
    approximate: bool
    embedder: str
    embed_tokens: int = 0
    embed_cost_usd: float | None = 0.0     # None when the embedding model has no known price


def _model_key(embedder: Any) -> str:
    return f"{embedder.name}:{embedder.model_id}"


def embedding_text(chunk: Chunk) -> str:
    """What gets embedded: the chunk with its document title and heading path, so a passage that does not
    repeat its topic is still found by it."""
    context = " > ".join(p for p in (chunk.title, chunk.heading_path) if p)
    return f"{context}\n{chunk.text}" if context else chunk.text


def chunk_workspace(ws: Workspace, settings: ChunkSettings) -> list[Chunk]:
    chunks: list[Chunk] = []
    for doc in corpus.documents(ws, with_text=True):
        chunks += chunk_document(doc["doc_id"], doc["title"], doc["text"], settings)
    return chunks


def check_vectors(embedder: Any, vectors: Any, count: int, dims: int | None, what: str = "embedding") -> np.ndarray:
    """An embedder's answer as a float32 matrix of `count` rows of `dims` finite values, or an error naming it.

    Any embedder's output is checked here before it is stored or searched: a vector of another length
    would crash the vector store, ragged rows would crash numpy, and NaN would be stored and ranked as if it
    meant something.
    """
    label = getattr(embedder, "label", type(embedder).__name__)
    try:
        with np.errstate(over="ignore"):
            matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise WorkbenchError(f"{label} returned vectors of different lengths, or values that are not numbers, "
                             f"while {what}") from None
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise WorkbenchError(f"{label} returned an array of shape {matrix.shape} for {count} texts while {what}")
    if dims is not None and matrix.shape[1] != dims:
        raise WorkbenchError(f"{label} returned a vector of {matrix.shape[1]} dimensions where the index has {dims}")
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise WorkbenchError(f"{label} returned a vector with NaN or infinite values (text {bad[0] + 1} of {count}) "
                             f"while {what}")
    return matrix


def chunks_fingerprint(content_hashes: list[str]) -> str:
    """One hash over the ordered chunk content hashes: ties the stored vectors and meta.json to the chunk table."""
    return corpus.sha256("\n".join(content_hashes))


def build_index(ws: Workspace, embedder: Any, settings: IndexSettings | None = None,
                progress: Callable[[int, int, str], None] | None = None,
                vector_store: Any | None = None) -> IndexReport:
    """Chunk every document, embed what is not cached yet, and write the vectors to the vector store.

    `vector_store` is an opener (`providers.get_vector_store()`, the configured one, by default). Every
    batch of vectors is checked (shape, finite values) before it is cached, so a bad answer stores
    nothing. The store is filled out of sight and made the live index by `persist`, after the chunk table
    is written and before meta.json, which records a fingerprint of the chunks the vectors belong to: a
    crash in between leaves them disagreeing, which `index_is_stale` and `Retriever` detect.
    """
    settings = settings or load_settings(ws).index
    opener = vector_store or providers.get_vector_store()   # a configuration error stops here, before any work
    started = time.perf_counter()
    chunks = chunk_workspace(ws, settings.chunking)
    if not chunks:
        raise WorkbenchError("there are no documents to index; add some on the Data page or with `workbench ingest`")
    texts = [embedding_text(c) for c in chunks]
    hashes = [corpus.sha256(t) for t in texts]
    key = _model_key(embedder)
    with ws.db() as db:
        cached = {row["content_sha256"]: row["vector"] for row in db.execute(
            "SELECT content_sha256, vector FROM embeddings WHERE model_id = ?", (key,))}
    # vectors cached before they were checked may be NaN: embed those again
    cached = {h: v for h, v in cached.items() if np.isfinite(np.frombuffer(v, dtype=np.float32)).all()}
    reused = next((cached[h] for h in hashes if h in cached), None)
    dims = len(reused) // 4 if reused is not None else None   # new vectors must match those reused from the cache
    missing = sorted({h for h in hashes if h not in cached})
    by_hash = dict(zip(hashes, texts))
    batch = 64
    tokens_before = getattr(embedder, "usage_tokens", 0)
    for start in range(0, len(missing), batch):
        part = missing[start:start + batch]
        if progress:
            progress(start, len(missing), f"embedding chunks {start + 1}-{start + len(part)} of {len(missing)}")
        vectors = check_vectors(embedder, embedder.embed([by_hash[h] for h in part]), len(part), dims,
                                "embedding the documents")
        dims = vectors.shape[1]
        with ws.db() as db:  # saved per batch, so an interrupted run keeps what it embedded
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                           [(key, h, vectors.shape[1], v.tobytes()) for h, v in zip(part, vectors)])
        cached.update({h: v.tobytes() for h, v in zip(part, vectors)})
    if progress:
        progress(len(missing), len(missing), "writing the index")
    matrix = check_vectors(embedder, [np.frombuffer(cached[h], dtype=np.float32) for h in hashes], len(hashes), dims,
                           "reading cached embeddings")
    approximate = len(chunks) > settings.approximate_above
    dims = matrix.shape[1]
    store = opener.open(ws.file(INDEX_DIR), dims, approximate, True)   # empty; the live index is untouched
    try:
        store.add(list(range(len(chunks))), matrix)   # a chunk's row in the store is its id in the chunk table
        with ws.db() as db:
            db.execute("DELETE FROM chunks")
            db.executemany("INSERT INTO chunks (id, doc_id, position, title, heading_path, text, tokens, start, end, "
                           "content_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(i, c.doc_id, c.position, c.title, c.heading_path, c.text, c.tokens, c.start, c.end, h)
                            for i, (c, h) in enumerate(zip(chunks, hashes))])
        store.persist()
    finally:
        store.close()
    meta = {"embedder": key, "embedder_label": embedder.label, "offline": embedder.offline, "dims": dims,
            "chunks": len(chunks), "chunks_sha256": chunks_fingerprint(hashes), "approximate": approximate,
            "vector_store": store.name, "vector_store_label": store.label,
            "settings": settings.model_dump(mode="json"),
            "built_at": time.time(), "documents": len({c.doc_id for c in chunks})}
    atomic_write_text(ws.file(f"{INDEX_DIR}/meta.json"), json.dumps(meta, indent=2))
    current = load_settings(ws)
    save_settings(ws, current.model_copy(update={"index": settings}))
    used_tokens = getattr(embedder, "usage_tokens", 0) - tokens_before
    return IndexReport(documents=meta["documents"], chunks=len(chunks), embedded=len(missing),
                       reused=len(set(hashes)) - len(missing), seconds=time.perf_counter() - started,
                       approximate=approximate, embedder=embedder.label, embed_tokens=used_tokens,
                       embed_cost_usd=_embedding_cost(embedder, used_tokens))


def _embedding_cost(embedder: Any, used_tokens: int) -> float | None:
    if embedder.offline:
        return 0.0
    from .pricing import load_pricing

    try:
        return used_tokens * load_pricing().embedding(embedder.model_id).price / 1e6
    except WorkbenchError:
        return None


def index_meta(ws: Workspace) -> dict[str, Any] | None:
    path = ws.file(f"{INDEX_DIR}/meta.json")
    return json.loads(path.read_text()) if path.exists() else None


STALE_MESSAGE = "the index is out of date with the documents; rebuild it on the RAG page or with `workbench index`"


def index_is_stale(ws: Workspace) -> bool:
    """True when the index does not match the documents and the chunk table: the one check to call before use.

    Stale when a document was added, changed or removed since the build, or when the chunk table is not
    the one the vectors were built from (a build interrupted between writing the two, or an index from a
    version that recorded no fingerprint), even if the number of chunks is the same.
    """
    meta = index_meta(ws)
    if meta is None:
        return True
    with ws.db() as db:
        latest = db.execute("SELECT MAX(added_at) FROM documents").fetchone()[0] or 0
        hashes = [r[0] for r in db.execute("SELECT content_sha256 FROM chunks ORDER BY id")]
        indexed = {r[0] for r in db.execute("SELECT DISTINCT doc_id FROM chunks")}
        present = {r[0] for r in db.execute("SELECT doc_id FROM documents")}
    return (latest > meta["built_at"] or len(hashes) != meta["chunks"] or indexed != present
            or meta.get("chunks_sha256") != chunks_fingerprint(hashes))


def built_chunking(ws: Workspace) -> ChunkSettings | None:
    """The chunk settings the live index was built with (None when there is no index)."""
    meta = index_meta(ws)
    if meta is None:
        return None
    # An index from before meta.json recorded its settings was built with the saved ones.
    saved = (meta.get("settings") or {}).get("chunking")
    return ChunkSettings.model_validate(saved) if saved else load_settings(ws).index.chunking


def status_line(ws: Workspace) -> str:
    """The index as it is now, in one line: what it holds and how it was cut, or that there is none."""
    meta = index_meta(ws)
    if meta is None:
        return "No index yet."
    line = (f"Index: {meta['chunks']} chunks from {meta['documents']} documents, cut by "
            f"{describe(built_chunking(ws))}.")
    return line + (" The documents changed since it was built: rebuild it." if index_is_stale(ws) else "")


ChunksStatus = Literal["no index", "stale", "same", "different"]


def chunks_status(ws: Workspace, doc_id: str, chunks: list[Chunk]) -> ChunksStatus:
    """Whether `chunks` (one document's) are exactly what the live index holds for that document.

    Compares the chunk table itself (text and character span), not the settings: that is what retrieval
    searches, whatever settings were asked for.
    """
    if index_meta(ws) is None:
        return "no index"
    if index_is_stale(ws):
        return "stale"
    with ws.db() as db:
        held = [tuple(r) for r in db.execute("SELECT text, start, end FROM chunks WHERE doc_id = ? ORDER BY position",
                                             (doc_id,))]
    return "same" if held == [(c.text, c.start, c.end) for c in chunks] else "different"


@dataclass
class Hit:
    chunk_id: int
    doc_id: str
    title: str
    heading_path: str
    text: str
    tokens: int
    score: float          # the ranking score of the mode (cosine, BM25, or RRF)
    relevance: float      # cosine similarity to the question, whatever the mode
    rank: int
    dense_rank: int | None = None
    bm25_rank: int | None = None


@dataclass
class Retrieval:
    hits: list[Hit]
    embed_ms: float
    search_ms: float
    mode: str
    best_relevance: float = field(default=-1.0)


# What an index records when it was built before the vector store was a choice.
_FIRST_STORE = ("faiss", "FAISS, saved in the workspace (offline default)")


class Retriever:
    """A loaded index: the vector store, BM25 over the same chunks, and the chunk rows.

    `vector_store` is an opener (the configured one by default); it must be the kind the index was built with.
    """

    def __init__(self, ws: Workspace, embedder: Any, vector_store: Any | None = None):
        meta = index_meta(ws)
        if meta is None:
            raise WorkbenchError("no index yet: build it on the RAG page or with `workbench index`")
        if meta["embedder"] != _model_key(embedder):
            raise WorkbenchError(f"the index was built with {meta['embedder_label']}, but the configured embedder "
                                 f"is {embedder.label}; rebuild the index")
        opener = vector_store or providers.get_vector_store()
        built_with = meta.get("vector_store", _FIRST_STORE[0])
        if built_with != opener.name:
            raise WorkbenchError(f"the index was built with {meta.get('vector_store_label', _FIRST_STORE[1])}, but "
                                 f"the configured vector store is {opener.label}; rebuild the index")
        if index_is_stale(ws):
            raise WorkbenchError(STALE_MESSAGE)
        self.store = opener.open(ws.file(INDEX_DIR), meta["dims"], meta["approximate"], False)
        with ws.db() as db:
            self.rows = [dict(r) for r in db.execute(
                "SELECT id, doc_id, title, heading_path, text, tokens, content_sha256 FROM chunks ORDER BY id")]
        stats = self.store.stats()
        if (len(self.rows) != stats.vectors or stats.dimensions != meta["dims"]
                or chunks_fingerprint([r["content_sha256"] for r in self.rows]) != meta.get("chunks_sha256")):
            self.store.close()
            raise WorkbenchError(STALE_MESSAGE)  # changed between the check and the read, or foreign vectors
        self.meta = meta
        self.embedder = embedder
        import bm25s

        self._bm25s = bm25s
        self.bm25 = bm25s.BM25()
        texts = [f"{r['title']} {r['heading_path']} {r['text']}" for r in self.rows]
        self.bm25.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        self.doc_freq: dict[str, int] = {}
        for text in texts:
            for w in content_words(text):
                self.doc_freq[w] = self.doc_freq.get(w, 0) + 1

    def idf(self, word: str) -> float:
        return math.log((len(self.rows) + 1) / (self.doc_freq.get(word, 0) + 0.5))

    def coverage(self, question: str, hits: list[Hit]) -> tuple[float, list[str]]:
        """Share of the question's distinctive words (IDF-weighted) that appear in the passages, and the
        words that do not, rarest first. A question about something the documents never mention scores low."""
        words = content_words(question)
        if not words:
            return 1.0, []
        found = content_words(" ".join(f"{h.title} {h.heading_path} {h.text}" for h in hits))
        total = sum(self.idf(w) for w in words)
        missing = sorted((w for w in words if w not in found), key=lambda w: -self.idf(w))
        return (total - sum(self.idf(w) for w in missing)) / total if total > 0 else 1.0, missing

    def _vectors(self, ids: list[int]) -> np.ndarray:
        return self.store.vectors(ids) if ids else np.zeros((0, self.meta["dims"]), dtype=np.float32)

    def search(self, question: str, settings: RetrievalSettings) -> Retrieval:
        t0 = time.perf_counter()
        query = check_vectors(self.embedder, self.embedder.embed([question]), 1, self.meta["dims"],
                              "embedding the question")
        t1 = time.perf_counter()
        n = len(self.rows)
        allowed = set(settings.doc_ids)
        depth = n if allowed else min(n, max(50, settings.top_k * 10))
        dense: list[tuple[int, float]] = []
        if settings.mode != "bm25":
            dense = [(h.row, h.score) for h in self.store.search(query[0], depth) if 0 <= h.row < n]
        tokens = self._bm25s.tokenize([question], stopwords="en", show_progress=False)
        lexical: list[tuple[int, float]] = []
        if settings.mode != "dense" and tokens.vocab:
            docs, scores = self.bm25.retrieve(tokens, k=min(n, depth), show_progress=False)
            lexical = [(int(i), float(s)) for i, s in zip(docs[0], scores[0]) if s > 0]
        if allowed:
            dense = [(i, s) for i, s in dense if self.rows[i]["doc_id"] in allowed]
            lexical = [(i, s) for i, s in lexical if self.rows[i]["doc_id"] in allowed]
        dense_rank = {i: r for r, (i, _) in enumerate(dense, 1)}
        bm25_rank = {i: r for r, (i, _) in enumerate(lexical, 1)}
        if settings.mode == "dense":
            ranked = dense
        elif settings.mode == "bm25":
            ranked = lexical
        else:
            fused: dict[int, float] = {}
            for ranking in (dense, lexical):
                for r, (i, _) in enumerate(ranking, 1):
                    fused[i] = fused.get(i, 0.0) + 1.0 / (settings.rrf_k + r)
            ranked = sorted(fused.items(), key=lambda kv: -kv[1])
        top = ranked[:settings.top_k]
        vectors = self._vectors([i for i, _ in top])
        relevance = (vectors @ query[0]).tolist() if len(top) else []
        t2 = time.perf_counter()
        hits = [Hit(chunk_id=i, doc_id=self.rows[i]["doc_id"], title=self.rows[i]["title"],
                    heading_path=self.rows[i]["heading_path"], text=self.rows[i]["text"], tokens=self.rows[i]["tokens"],
                    score=s, relevance=float(rel), rank=r, dense_rank=dense_rank.get(i), bm25_rank=bm25_rank.get(i))
                for r, ((i, s), rel) in enumerate(zip(top, relevance), 1)]
        return Retrieval(hits=hits, embed_ms=(t1 - t0) * 1000, search_ms=(t2 - t1) * 1000, mode=settings.mode,
                         best_relevance=max((h.relevance for h in hits), default=-1.0))


def retrieval_quality(retriever: Retriever, pairs: list[Any], settings: RetrievalSettings) -> dict[str, float]:
    """Document-level recall@top_k and MRR over question/answer pairs that name their gold documents."""
    recall, mrr = [], []
    for p in pairs:
        docs = [h.doc_id for h in retriever.search(p.question, settings).hits]
        ranks = [i for i, d in enumerate(docs, 1) if d in p.doc_ids]
        recall.append(1.0 if ranks else 0.0)
        mrr.append(1.0 / ranks[0] if ranks else 0.0)
    n = max(1, len(recall))
    return {"recall": sum(recall) / n, "mrr": sum(mrr) / n, "questions": len(recall)}
