"""Vector stores behind the VectorStore protocol: FAISS (the default) and Qdrant in local mode, which must
retrieve the same neighbours from the same vectors, keep a rebuild out of sight until it is persisted, and
refuse an index built with the other one."""
import hashlib
import json
import socket
import subprocess
import sys

import faiss
import numpy as np
import pytest

from workbench import corpus, index, providers, sample, workspace
from workbench.chunking import ChunkSettings
from workbench.errors import WorkbenchError
from workbench.providers.faiss_store import FaissOpener, FaissSettings
from workbench.providers.local_embedder import LocalEmbedder
from workbench.providers.qdrant_store import MISSING, QdrantOpener, QdrantSettings

FAISS_LABEL = "FAISS, saved in the workspace (offline default)"
QDRANT_LABEL = "Qdrant (local mode in the workspace)"
DIMS = 16


def _qdrant():
    return pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install -e '.[qdrant]')")


def _configure(tmp_path, monkeypatch, vector_store: str) -> providers.ProvidersConfig:
    """Point WORKBENCH_PROVIDERS at a providers file whose vector store block is `vector_store` (YAML)."""
    path = tmp_path / f"providers-{hashlib.sha1(vector_store.encode()).hexdigest()[:8]}.yaml"
    path.write_text(f"vector_store: {vector_store}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
    return providers.load_providers_config()


class HashEmbedder:
    """Deterministic unit vectors from a hash of the text: fast, and the same on every run."""

    name, label, offline, model_id, dimensions = "hash", "hash embedder (test)", True, "hash-16", DIMS

    def embed(self, texts):
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)


def _small_workspace(name: str):
    ws = workspace.open_workspace(name, create=True)
    corpus.ingest(ws, [(f"d{i}.md", f"# Topic {i}\n\nNotes on subject {i}, with details.".encode())
                       for i in range(6)])
    return ws


def _unit(rng, n: int, dims: int = DIMS) -> np.ndarray:
    v = rng.standard_normal((n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --- 1. the same vectors give the same neighbours, on the sample ---------------------------------------

def _same_up_to_ties(a: list[index.Hit], b: list[index.Hit], tol: float = 1e-6) -> int:
    """Asserts two rankings agree rank by rank in score, and in chunk wherever the scores are not tied;
    returns how many positions differ (each a tie)."""
    assert len(a) == len(b)
    differ = 0
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.score == pytest.approx(y.score, abs=tol) and x.relevance == pytest.approx(y.relevance, abs=tol)
        if x.chunk_id != y.chunk_id:
            differ += 1
            other = {h.chunk_id: h.score for h in a}
            tied = (abs(other[y.chunk_id] - x.score) <= tol if y.chunk_id in other
                    else abs(x.score - a[-1].score) <= tol)           # a tie across the cut-off
            assert tied, (i, x, y)
    return differ


def test_faiss_and_qdrant_local_retrieve_the_same_documents_on_the_sample(tmp_path, monkeypatch):
    _qdrant()
    ws = sample.open_sample()
    pairs = corpus.qa_pairs(ws)
    assert len(pairs) >= 100
    embedder = LocalEmbedder()
    settings = index.RetrievalSettings(top_k=5, mode="dense")

    def ranked() -> list[list[index.Hit]]:
        retriever = index.Retriever(ws, embedder)
        return [retriever.search(p.question, settings).hits for p in pairs]

    first = index.build_index(ws, embedder)
    assert index.index_meta(ws)["vector_store"] == "faiss"
    with_faiss = ranked()
    _configure(tmp_path, monkeypatch, "{provider: qdrant}")
    second = index.build_index(ws, embedder)
    assert second.embedded == 0 and second.reused == first.embedded + first.reused   # the same cached vectors
    meta = index.index_meta(ws)
    assert (meta["vector_store"], meta["vector_store_label"]) == ("qdrant", QDRANT_LABEL)
    assert ws.file("index/qdrant").is_dir()
    with_qdrant = ranked()

    ties = 0
    for p, f, q in zip(pairs, with_faiss, with_qdrant):
        assert len(f) == 5, p.question
        ties += _same_up_to_ties(f, q)
        if [h.doc_id for h in f] != [h.doc_id for h in q]:
            assert ties, p.question
    print(f"\n{len(pairs)} questions, dense top-5: FAISS and Qdrant local agree; "
          f"{ties} positions differ on tied scores")
    assert ties <= len(pairs) // 20


# --- 2. add, delete, persist and reopen through the protocol ---------------------------------------------

@pytest.mark.parametrize("store_name, approximate", [("faiss", False), ("faiss", True), ("qdrant", False)],
                         ids=["faiss-exact", "faiss-hnsw", "qdrant-local"])
def test_add_delete_persist_and_reopen(store_name, approximate, tmp_path):
    if store_name == "qdrant":
        _qdrant()
    opener = FaissOpener(FaissSettings(hnsw_m=8)) if store_name == "faiss" else QdrantOpener(QdrantSettings())
    rng = np.random.default_rng(7)
    vectors = _unit(rng, 10)
    store = opener.open(tmp_path, DIMS, approximate, True)
    assert isinstance(store, providers.VectorStore) and store.name == opener.name
    store.add(list(range(10)), vectors)
    top = store.search(vectors[3], 3)
    assert top[0].row == 3 and top[0].score == pytest.approx(1.0, abs=1e-5) and len(top) == 3
    assert [h.score for h in top] == sorted((h.score for h in top), reverse=True)
    np.testing.assert_allclose(store.vectors([5, 2]), vectors[[5, 2]], atol=1e-6)
    assert store.stats().vectors == 10 and store.stats().dimensions == DIMS

    with pytest.raises(WorkbenchError, match="rebuild the index"):
        opener.open(tmp_path, DIMS, approximate, False)        # nothing is live before `persist`
    store.persist()

    again = opener.open(tmp_path, DIMS, approximate, False)    # a second open in the same process
    assert again.stats().vectors == 10
    np.testing.assert_allclose(again.vectors([9, 0]), vectors[[9, 0]], atol=1e-6)
    replacement, extra = _unit(rng, 2)
    again.delete([3, 7])
    again.add([5, 12], np.stack([replacement, extra]))           # row 5 replaced, row 12 new
    again.persist()
    for s in (store, again):
        s.close()

    reopened = opener.open(tmp_path, DIMS, approximate, False)
    assert reopened.stats().vectors == 10 - 2 + 1
    assert 3 not in {h.row for h in reopened.search(vectors[3], 9)}
    assert {h.row for h in reopened.search(vectors[0], 20)} == {0, 1, 2, 4, 5, 6, 8, 9, 12}
    np.testing.assert_allclose(reopened.vectors([5, 12]), np.stack([replacement, extra]), atol=1e-6)
    assert reopened.search(replacement, 1)[0].row == 5
    with pytest.raises(WorkbenchError, match="no vector for chunk row 7"):
        reopened.vectors([7])
    reopened.close()

    rebuilt = opener.open(tmp_path, DIMS, approximate, True)     # a rebuild starts empty ...
    assert rebuilt.stats().vectors == 0 and rebuilt.search(vectors[0], 5) == []
    live = opener.open(tmp_path, DIMS, approximate, False)       # ... and the live index is untouched until persist
    assert live.stats().vectors == 9
    rebuilt.add([0, 1], vectors[:2])
    rebuilt.persist()
    rebuilt.close()
    final = opener.open(tmp_path, DIMS, approximate, False)
    assert final.stats().vectors == 2 and final.search(vectors[1], 1)[0].row == 1
    final.close()
    live.close()


@pytest.mark.parametrize("store_name", ["faiss", "qdrant"])
def test_a_store_refuses_vectors_of_another_size(store_name, tmp_path):
    if store_name == "qdrant":
        _qdrant()
    make = (FaissOpener(FaissSettings()) if store_name == "faiss" else QdrantOpener(QdrantSettings())).open
    store = make(tmp_path, DIMS, False, True)
    with pytest.raises(WorkbenchError, match=f"expected 2 vectors of {DIMS} dimensions, got shape \\(2, 4\\)"):
        store.add([0, 1], np.ones((2, 4), dtype=np.float32))
    store.add([0], _unit(np.random.default_rng(1), 1))
    store.persist()
    store.close()
    with pytest.raises(WorkbenchError, match=f"holds vectors of {DIMS} dimensions where the index records 8"):
        make(tmp_path, 8, False, False)


def test_a_faiss_file_from_before_rows_were_keyed_still_loads(tmp_path):
    vectors = _unit(np.random.default_rng(3), 6)
    plain = faiss.IndexFlatIP(DIMS)                              # what index.py wrote before the store protocol
    plain.add(vectors)
    (tmp_path / "vectors.faiss").write_bytes(faiss.serialize_index(plain).tobytes())
    store = FaissOpener(FaissSettings()).open(tmp_path, DIMS, False, False)
    assert store.search(vectors[4], 1)[0].row == 4 and store.stats().vectors == 6
    np.testing.assert_allclose(store.vectors([2]), vectors[[2]], atol=1e-6)
    store.delete([0])
    assert {h.row for h in store.search(vectors[0], 10)} == {1, 2, 3, 4, 5}


def test_faiss_writes_its_file_only_on_persist_and_atomically(tmp_path):
    store = FaissOpener(FaissSettings()).open(tmp_path, DIMS, False, True)
    store.add([0, 1], _unit(np.random.default_rng(2), 2))
    assert not (tmp_path / "vectors.faiss").exists()
    store.persist()
    assert (tmp_path / "vectors.faiss").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.faiss"]   # no temporary file left beside it


# --- 3. Qdrant local mode: one client per folder, released when the stores are done -------------------------

def test_qdrant_local_shares_one_client_per_folder_and_releases_its_lock(tmp_path):
    qdrant_client = _qdrant()
    from workbench.providers import qdrant_store

    opener = QdrantOpener(QdrantSettings())
    a = opener.open(tmp_path, DIMS, False, True)
    a.add([0], _unit(np.random.default_rng(4), 1))
    a.persist()
    b = opener.open(tmp_path, DIMS, False, False)
    assert b.stats().vectors == 1
    key = str((tmp_path / "qdrant").resolve())
    assert qdrant_store.LOCAL_CLIENTS._open[key][2] == 2
    a.close()
    a.close()                                                      # closing twice is harmless
    assert qdrant_store.LOCAL_CLIENTS._open[key][2] == 1
    del b                                                          # a store dropped without close releases too
    assert key not in qdrant_store.LOCAL_CLIENTS._open
    direct = qdrant_client.QdrantClient(path=key)                  # the folder's lock is free again
    assert [c.name for c in direct.get_collections().collections] != []
    direct.close()


def test_qdrant_local_in_use_by_another_process_is_said_plainly(tmp_path):
    _qdrant()
    folder = tmp_path / "qdrant"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, qdrant_client; "
                               f"c = qdrant_client.QdrantClient(path={str(folder)!r}); print('ready', flush=True); "
                               "sys.stdin.read(); c.close()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WorkbenchError) as err:
            QdrantOpener(QdrantSettings()).open(tmp_path, DIMS, False, True)
        assert str(err.value) == (f"the Qdrant folder {folder.resolve()} is in use by another process (local mode "
                                  "allows one at a time); close the app or command using it, or use a Qdrant server")
    finally:
        holder.communicate("", timeout=30)
    store = QdrantOpener(QdrantSettings()).open(tmp_path, DIMS, False, True)   # free once the other one closed
    store.close()


def test_a_qdrant_rebuild_drops_the_old_collection_and_an_old_reader_is_told_to_reopen(tmp_path):
    _qdrant()
    opener = QdrantOpener(QdrantSettings(collection="docs"))
    vectors = _unit(np.random.default_rng(5), 4)
    first = opener.open(tmp_path, DIMS, False, True)
    first.add([0, 1], vectors[:2])
    first.persist()
    reader = opener.open(tmp_path, DIMS, False, False)
    orphan = opener.open(tmp_path, DIMS, False, True)              # a build that never finished
    orphan.add([0], vectors[:1])
    orphan.close()
    second = opener.open(tmp_path, DIMS, False, True)
    second.add([0, 1, 2], vectors[:3])
    second.persist()
    names = {c.name for c in second._client.get_collections().collections}
    assert len(names) == 1 and names == {second._collection}       # the previous index and the orphan are gone
    with pytest.raises(WorkbenchError, match="the index was rebuilt or removed\\); open the index again"):
        reader.search(vectors[0], 1)
    assert opener.open(tmp_path, DIMS, False, False).stats().vectors == 3
    second.close()
    reader.close()


# --- 4. the index records its store, and a Retriever on another store refuses ------------------------------

def test_a_retriever_on_another_vector_store_refuses(tmp_path, monkeypatch):
    _qdrant()
    ws = _small_workspace("mismatch")
    embedder = HashEmbedder()
    index.build_index(ws, embedder)
    _configure(tmp_path, monkeypatch, "{provider: qdrant}")
    with pytest.raises(WorkbenchError) as err:
        index.Retriever(ws, embedder)
    assert str(err.value) == (f"the index was built with {FAISS_LABEL}, but the configured vector store is "
                              f"{QDRANT_LABEL}; rebuild the index")
    index.build_index(ws, embedder)
    assert index.Retriever(ws, embedder).search("subject 4", index.RetrievalSettings(top_k=2)).hits
    _configure(tmp_path, monkeypatch, "{provider: faiss}")
    with pytest.raises(WorkbenchError) as err:
        index.Retriever(ws, embedder)
    assert str(err.value) == (f"the index was built with {QDRANT_LABEL}, but the configured vector store is "
                              f"{FAISS_LABEL}; rebuild the index")


def test_an_index_built_before_stores_were_recorded_is_read_as_faiss():
    ws = _small_workspace("older")
    embedder = HashEmbedder()
    index.build_index(ws, embedder)
    meta_path = ws.file("index/meta.json")
    meta = json.loads(meta_path.read_text())
    del meta["vector_store"], meta["vector_store_label"]
    meta_path.write_text(json.dumps(meta))
    hits = index.Retriever(ws, embedder).search("subject 2", index.RetrievalSettings(mode="dense", top_k=6)).hits
    assert len(hits) == 6


@pytest.mark.parametrize("store", ["faiss", "qdrant"])
def test_approximate_above_the_configured_size_on_either_store(store, tmp_path, monkeypatch):
    if store == "qdrant":
        _qdrant()
    _configure(tmp_path, monkeypatch, f"{{provider: {store}}}")
    ws = _small_workspace(f"approx-{store}")
    embedder = HashEmbedder()
    report = index.build_index(ws, embedder, index.IndexSettings(approximate_above=3))
    assert report.approximate and index.index_meta(ws)["approximate"]
    retriever = index.Retriever(ws, embedder)
    hits = retriever.search("subject 4", index.RetrievalSettings(mode="dense", top_k=3)).hits
    assert len(hits) == 3 and all(-1 <= h.relevance <= 1 for h in hits)
    only = retriever.search("subject", index.RetrievalSettings(mode="dense", top_k=5, doc_ids=["d2.md"])).hits
    assert {h.doc_id for h in only} == {"d2.md"}


def test_a_crash_before_a_qdrant_rebuild_is_persisted_leaves_the_old_index_live_and_detected(tmp_path, monkeypatch):
    _qdrant()
    from workbench.providers.qdrant_store import QdrantStore

    _configure(tmp_path, monkeypatch, "{provider: qdrant, collection: crash}")
    ws = _small_workspace("qcrash")
    embedder = HashEmbedder()
    index.build_index(ws, embedder, index.IndexSettings(chunking=ChunkSettings(strategy="headings")))
    before = index.index_meta(ws)

    def die(self):
        raise KeyboardInterrupt("the process died here")

    with monkeypatch.context() as m:
        m.setattr(QdrantStore, "persist", die)
        with pytest.raises(KeyboardInterrupt):
            index.build_index(ws, embedder, index.IndexSettings(chunking=ChunkSettings(strategy="sentences")))
    assert index.index_meta(ws) == before and index.index_is_stale(ws)
    with pytest.raises(WorkbenchError, match="the index is out of date with the documents"):
        index.Retriever(ws, embedder)
    index.build_index(ws, embedder)
    retriever = index.Retriever(ws, embedder)
    assert retriever.store.stats().vectors == len(retriever.rows)
    collections = retriever.store._client.get_collections().collections
    assert len(collections) == 1                                   # the unfinished build was dropped too


# --- 5. configuration and an absent qdrant-client ------------------------------------------------------------

def test_qdrant_unavailable_without_qdrant_client(tmp_path, monkeypatch):
    cfg = _configure(tmp_path, monkeypatch, "{provider: qdrant}")   # the settings check needs no client
    monkeypatch.setitem(sys.modules, "qdrant_client", None)
    backend = providers.REGISTRY.get("vector_store", "qdrant")
    assert backend.why_unavailable() == 'qdrant-client is not installed: pip install -e ".[qdrant]"' == MISSING
    info = {p.role: p for p in providers.active_providers(cfg)}["vector_store"]
    assert info.name == "qdrant" and info.unavailable == MISSING
    with pytest.raises(WorkbenchError) as err:
        providers.get_vector_store(cfg)
    assert str(err.value).endswith(f"the vector store provider 'qdrant' cannot run here: {MISSING}")
    ws = _small_workspace("noqdrant")
    with pytest.raises(WorkbenchError, match="qdrant-client is not installed"):
        index.build_index(ws, HashEmbedder())
    assert index.index_meta(ws) is None                           # refused before anything was written


def test_faiss_is_the_default_and_its_settings_are_checked(tmp_path, monkeypatch):
    assert providers.get_vector_store(providers.ProvidersConfig()).name == "faiss"
    cfg = _configure(tmp_path, monkeypatch, "{provider: faiss, hnsw_m: 16}")
    assert providers.get_vector_store(cfg).settings.hnsw_m == 16
    with pytest.raises(WorkbenchError, match="hnsw_m"):
        _configure(tmp_path, monkeypatch, "{provider: faiss, hnsw_m: 1000}")
    opener = FaissOpener(FaissSettings(hnsw_m=8, hnsw_ef_search=40))
    store = opener.open(tmp_path, DIMS, True, True)
    store.add(list(range(5)), _unit(np.random.default_rng(6), 5))
    store.persist()
    for s in (store, opener.open(tmp_path, DIMS, True, False)):   # the candidate list is set on load too
        hnsw = faiss.downcast_index(s._index.index)
        assert (hnsw.hnsw.efSearch, hnsw.hnsw.nb_neighbors(1)) == (40, 8)


@pytest.mark.parametrize("block, field", [
    ("{provider: qdrant, colection: docs}", "colection"),
    ("{provider: qdrant, collection: '../outside'}", "collection"),
    ("{provider: qdrant, collection: 'a/b'}", "collection"),
    ("{provider: qdrant, url: 'qdrant:6333'}", "url"),
    ("{provider: qdrant, api_key: secret}", "api_key"),
    ("{provider: qdrant, timeout_s: 0}", "timeout_s"),
])
def test_qdrant_settings_are_checked(block, field, tmp_path, monkeypatch):
    with pytest.raises(WorkbenchError) as err:
        _configure(tmp_path, monkeypatch, block)
    assert err.value.field == f"vector_store.{field}" and "providers-" in str(err.value)


def test_a_qdrant_server_key_comes_from_the_environment_and_an_unreachable_server_is_named(tmp_path, monkeypatch):
    _qdrant()
    with socket.socket() as s:                                       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _configure(tmp_path, monkeypatch, f"{{provider: qdrant, url: 'http://user:pw@127.0.0.1:{port}', "
                                             "api_key_env: WB_QDRANT_KEY, timeout_s: 2}")
    monkeypatch.delenv("WB_QDRANT_KEY", raising=False)
    opener = providers.get_vector_store(cfg)
    assert opener.label == f"Qdrant at http://127.0.0.1:{port}" and not opener.offline   # no password shown
    index_dir = tmp_path / "team-docs" / "index"
    with pytest.raises(WorkbenchError) as err:
        opener.open(index_dir, DIMS, False, False)
    assert "WB_QDRANT_KEY named by vector_store.api_key_env is not set" in str(err.value)
    monkeypatch.setenv("WB_QDRANT_KEY", "qk-secret-123")
    with pytest.warns(UserWarning, match="insecure connection"):   # qdrant-client's own warning about http
        with pytest.raises(WorkbenchError) as err:
            opener.open(index_dir, DIMS, False, False)
    message = str(err.value)   # one collection per workspace on a shared server, unless `collection` pins one
    assert message.startswith(f"could not reach Qdrant at http://127.0.0.1:{port}/collections/workbench-team-docs "
                              "while ")
    assert "qk-secret-123" not in message and "pw" not in message
    assert not tmp_path.joinpath("team-docs").exists()               # server mode writes nothing in the workspace
