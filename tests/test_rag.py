"""Indexing, retrieval and answering: offline defaults on the sample, and the OpenAI path on the local server."""
import pytest

from workbench import corpus, index, providers, rag, sample, workspace
from workbench.chunking import ChunkSettings
from workbench.errors import WorkbenchError
from workbench.providers.extractive import ExtractiveAnswerer
from workbench.providers.local_embedder import LocalEmbedder


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    ws = workspace.open_workspace("sample", home=home, create=True)
    sample.ensure_sample(ws)
    embedder = LocalEmbedder()
    report = index.build_index(ws, embedder)
    return ws, index.Retriever(ws, embedder), report


def test_hybrid_recall_at_5_is_at_least_bm25_on_the_sample(sample_index):
    ws, retriever, report = sample_index
    assert report.chunks > 100 and report.embedded == report.chunks and not report.approximate
    pairs = [p for p in corpus.qa_pairs(ws) if p.answer and p.doc_ids]
    figures = {}
    for mode in ("bm25", "dense", "hybrid"):
        q = index.retrieval_quality(retriever, pairs, index.RetrievalSettings(top_k=5, mode=mode))
        figures[mode] = (q["recall"], q["mrr"])
    print("\nrecall@5 / MRR on the sample (%d questions): %s" % (
        len(pairs), ", ".join(f"{m} {r:.3f} / {q:.3f}" for m, (r, q) in figures.items())))
    assert figures["hybrid"][0] >= figures["bm25"][0]
    assert figures["hybrid"][0] > 0.9


def test_extractive_answer_with_citation_and_stages(sample_index):
    ws, retriever, _ = sample_index
    answer = rag.ask("When are new invoices due by default?", retriever, ExtractiveAnswerer(),
                     index.RetrievalSettings())
    assert "30 days" in answer.text and not answer.abstained
    used = [c for c in answer.citations if c.used]
    assert len(used) == 1 and used[0].doc_id == "invoicing.md" and f"[{used[0].n}]" in answer.text
    assert set(answer.latency_ms) == {"embed query", "search", "generate", "total"}
    assert answer.latency_ms["total"] == pytest.approx(sum(v for k, v in answer.latency_ms.items() if k != "total"))
    assert answer.cost_usd == 0 and answer.offline and "not an LLM" in answer.provider
    assert answer.prompt_tokens > 100 and answer.output_tokens > 5


def test_abstains_when_support_is_weak(sample_index):
    ws, retriever, _ = sample_index
    ceo = rag.ask("Who is the chief executive of Tallyboard?", retriever, ExtractiveAnswerer(),
                  index.RetrievalSettings())
    assert ceo.abstained and "can't answer" in ceo.text and "'chief'" in ceo.text
    strict = rag.ask("When are new invoices due?", retriever, ExtractiveAnswerer(),
                     index.RetrievalSettings(min_relevance=0.99))
    assert strict.abstained and "under the threshold 0.99" in strict.text


def test_document_filter_and_modes(sample_index):
    ws, retriever, _ = sample_index
    only = retriever.search("API rate limit", index.RetrievalSettings(top_k=5, doc_ids=["webhooks.md"]))
    assert only.hits and {h.doc_id for h in only.hits} == {"webhooks.md"}
    for mode in ("dense", "bm25", "hybrid"):
        hits = retriever.search("requests per minute API rate limit", index.RetrievalSettings(mode=mode)).hits
        assert hits[0].doc_id in {"api-rate-limits.txt", "release-notes-3-0.md", "release-notes-2-0.md"}, mode
        assert all(-1 <= h.relevance <= 1 for h in hits)


def test_reindex_embeds_only_changed_chunks():
    ws = workspace.open_workspace("cache", create=True)
    docs = [(f"d{i}.md", f"# Doc {i}\n\nThis is document number {i} about timers.".encode()) for i in range(5)]
    corpus.ingest(ws, docs)
    embedder = LocalEmbedder()
    settings = index.IndexSettings(chunking=ChunkSettings(strategy="headings"))
    first = index.build_index(ws, embedder, settings)
    assert (first.chunks, first.embedded, first.reused) == (5, 5, 0)
    corpus.ingest(ws, [("d2.md", b"# Doc 2\n\nChanged text about invoices.")])
    second = index.build_index(ws, embedder, settings)
    assert (second.chunks, second.embedded, second.reused) == (5, 1, 4)
    corpus.remove_document(ws, "d4.md")
    assert index.index_is_stale(ws)
    third = index.build_index(ws, embedder, settings)
    assert (third.chunks, third.embedded, third.reused) == (4, 0, 4)


def test_approximate_index_above_the_configured_size():
    ws = workspace.open_workspace("hnsw", create=True)
    corpus.ingest(ws, [(f"d{i}.md", f"# Topic {i}\n\nNotes on subject {i}.".encode()) for i in range(6)])
    embedder = LocalEmbedder()
    report = index.build_index(ws, embedder, index.IndexSettings(approximate_above=3))
    assert report.approximate and index.index_meta(ws)["approximate"]
    hits = index.Retriever(ws, embedder).search("subject 4", index.RetrievalSettings(mode="dense", top_k=3)).hits
    assert len(hits) == 3


def test_retriever_refuses_an_index_from_another_embedder(sample_index):
    ws, _, _ = sample_index

    class Other:
        name, label, offline, model_id, dimensions = "other", "another model", True, "x", 4

    with pytest.raises(WorkbenchError, match="rebuild the index"):
        index.Retriever(ws, Other())


# --- the OpenAI-compatible path, against the local test server -------------------------------------

def _small_workspace(name="oa"):
    ws = workspace.open_workspace(name, create=True)
    corpus.ingest(ws, [("invoicing.md", b"# Invoicing\n\nNew invoices are due 30 days after the issue date."),
                       ("timer.md", b"# Timer\n\nThe desktop timer syncs every five minutes.")])
    return ws


def test_openai_embeddings_and_chat_end_to_end(openai_server, openai_providers):
    cfg = providers.load_providers_config()
    embedder, chat = providers.get_embedder(cfg), providers.get_chat_model(cfg)
    assert not embedder.offline and not chat.offline
    ws = _small_workspace()
    report = index.build_index(ws, embedder)
    assert report.embedded == 2 and report.embed_tokens > 0
    assert report.embed_cost_usd == pytest.approx(report.embed_tokens * 0.02 / 1e6)  # text-embedding-3-small
    answer = rag.ask("When are invoices due?", index.Retriever(ws, embedder), chat, index.RetrievalSettings(top_k=2))
    assert answer.text and not answer.offline and answer.model == "gpt-4o-mini"
    # gpt-4o-mini at $0.15 / $0.60 per 1M, plus the query embedding at $0.02 per 1M.
    from workbench import tokens
    expected = (answer.prompt_tokens * 0.15 + answer.output_tokens * 0.60
                + tokens.count("When are invoices due?", "text-embedding-3-small") * 0.02) / 1e6
    assert answer.cost_usd == pytest.approx(expected)
    paths = [r["path"] for r in openai_server.requests]
    assert "/v1/embeddings" in paths and "/v1/chat/completions" in paths
    chat_body = next(r["json"] for r in openai_server.requests if r["path"] == "/v1/chat/completions")
    assert "New invoices are due 30 days" in chat_body["messages"][-1]["content"]


def test_rate_limit_is_retried_then_succeeds(openai_server, openai_providers):
    embedder = providers.get_embedder()
    openai_server.inject({"status": 429, "retry_after": 0}, times=1, path="/v1/embeddings")
    vectors = embedder.embed(["hello world"])
    assert vectors.shape == (1, 64)
    assert [r["path"] for r in openai_server.requests].count("/v1/embeddings") == 2


@pytest.mark.parametrize("fault, message", [
    ({"status": 500}, "failed (500) while embedding; retried and gave up"),
    ("malformed", "sent an answer that could not be read while embedding"),
    ("drop", "could not connect to the OpenAI-compatible server while embedding"),
])
def test_provider_faults_become_clear_messages(openai_server, openai_providers, fault, message):
    ws = _small_workspace()
    openai_server.inject(fault, times=10)
    with pytest.raises(WorkbenchError, match=message.replace("(", "\\(").replace(")", "\\)")):
        index.build_index(ws, providers.get_embedder())
    assert index.index_meta(ws) is None and len(corpus.documents(ws)) == 2  # nothing stored was lost


def test_timeout_and_wrong_key(openai_server, tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text(f"embedder: {{provider: openai, model: text-embedding-3-small}}\n"
                    f"openai: {{base_url: '{openai_server.base_url}', api_key_env: WB_KEY, timeout_s: 0.5, "
                    f"max_retries: 0}}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
    monkeypatch.setenv("WB_KEY", "wrong-key")
    with pytest.raises(WorkbenchError, match="refused the API key \\(401\\)") as err:
        providers.get_embedder().embed(["x"])
    assert "wrong-key" not in str(err.value)
    monkeypatch.setenv("WB_KEY", openai_server.api_key)
    openai_server.inject({"type": "timeout", "delay": 3})
    with pytest.raises(WorkbenchError, match="did not answer in time"):
        providers.get_embedder().embed(["x"])


def test_missing_key_for_a_remote_server(monkeypatch, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("embedder: {provider: openai}\nopenai: {api_key_env: WB_ABSENT_KEY}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
    monkeypatch.delenv("WB_ABSENT_KEY", raising=False)
    with pytest.raises(WorkbenchError, match="set the environment variable WB_ABSENT_KEY"):
        providers.get_embedder().embed(["x"])


def test_context_window_guard(openai_server, openai_providers, tmp_path, monkeypatch):
    path = tmp_path / "small.yaml"
    path.write_text(openai_providers.read_text().replace(
        "chat: {provider: openai, model: gpt-4o-mini}", "chat: {provider: openai, model: tiny-llm, context_window: 150}"))
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
    cfg = providers.load_providers_config()
    embedder = providers.get_embedder(cfg)
    ws = _small_workspace()
    index.build_index(ws, embedder)
    with pytest.raises(WorkbenchError) as err:
        rag.ask("When are invoices due?", index.Retriever(ws, embedder), providers.get_chat_model(cfg),
                index.RetrievalSettings(top_k=2), context_window=cfg.chat.context_window)
    msg = str(err.value)
    assert "overflow tiny-llm's context window of 150 tokens by" in msg and "lower top_k" in msg
    assert not any(r["path"] == "/v1/chat/completions" for r in openai_server.requests)  # refused before sending


def test_optional_sentence_transformers_embedder_explains_what_it_needs(tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text("embedder: {provider: sentence-transformers, model: bge-base-en-v1.5}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:   # the extra is not installed: the registry says so, with the install command
        with pytest.raises(WorkbenchError, match="provider 'sentence-transformers' cannot run here: sentence-transformers "
                                                 'is not installed: pip install -e "\\.\\[torch\\]"'):
            providers.get_embedder()
        labels = {p.role: p for p in providers.active_providers(providers.load_providers_config())}
        assert labels["embedder"].unavailable.startswith("sentence-transformers is not installed")
    else:
        with pytest.raises(WorkbenchError, match="needs a local model folder .* nothing is downloaded"):
            providers.get_embedder()


def test_retrieval_quality_worked_by_hand():
    from workbench.parsing import QAPair

    class Stub:  # ranks documents in a fixed order, whatever the question
        def search(self, question, settings):
            order = {"q1": ["a", "b"], "q2": ["c", "a"], "q3": ["c", "c"]}[question]
            return index.Retrieval([index.Hit(0, d, "", "", "", 0, 0.0, 0.0, r) for r, d in enumerate(order, 1)],
                                   0, 0, "hybrid")

    pairs = [QAPair("q1", "x", ["a"]), QAPair("q2", "x", ["a"]), QAPair("q3", "x", ["a"])]
    q = index.retrieval_quality(Stub(), pairs, index.RetrievalSettings(top_k=2))
    # Found at rank 1, rank 2, not found: recall 2/3, MRR (1 + 1/2 + 0) / 3 = 0.5.
    assert q == {"recall": pytest.approx(2 / 3), "mrr": pytest.approx(0.5), "questions": 3}
