"""Providers that misbehave: trickling answers, bad vectors, absurd usage, empty replies, echoed keys, and
an index left out of step with its chunks. The OpenAI-compatible ones run the real openai SDK against the
local server (tests/openai_server.py)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from openai_server import OpenAIServer, embed_text
from workbench import corpus, index, providers, rag, tokens, workspace
from workbench.chunking import ChunkSettings
from workbench.errors import WorkbenchError

KEY = "sk-proj-Q7vX2mN9pL4kR8tY1wZ5bC3dF6gH0jKs"   # shaped like a real key
DIMS = 8
EMBEDDER = "text-embedding-3-small (OpenAI-compatible)"
CHAT = "gpt-4o-mini (OpenAI-compatible)"


@pytest.fixture
def server():
    with OpenAIServer(api_key=KEY, embedding_dimensions=DIMS) as srv:
        yield srv
        assert srv.errors == [], "the test server raised inside its handler"


@pytest.fixture
def use_server(server, tmp_path, monkeypatch):
    """Point the providers config at the server; returns a function that rewrites it with other settings."""

    def configure(timeout_s: float = 2, max_retries: int = 2, key: str = KEY):
        path = tmp_path / "providers.yaml"
        path.write_text("embedder: {provider: openai, model: text-embedding-3-small}\n"
                        "chat: {provider: openai, model: gpt-4o-mini}\n"
                        f"openai: {{base_url: '{server.base_url}', api_key_env: WB_HOSTILE_KEY, "
                        f"timeout_s: {timeout_s}, max_retries: {max_retries}}}\n")
        monkeypatch.setenv("WB_HOSTILE_KEY", key)
        monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
        return providers.load_providers_config()

    configure()
    return configure


def _workspace(name: str = "hostile"):
    ws = workspace.open_workspace(name, create=True)
    corpus.ingest(ws, [("invoicing.md", b"# Invoicing\n\nNew invoices are due 30 days after the issue date."),
                       ("timer.md", b"# Timer\n\nThe desktop timer syncs every five minutes.")])
    return ws


def _stored(ws) -> dict:
    """Everything an index build writes: cached embeddings, chunk rows, meta.json and the FAISS file."""
    with ws.db() as db:
        embeddings = sorted(tuple(r) for r in db.execute(
            "SELECT model_id, content_sha256, dims, vector FROM embeddings"))
        chunks = [tuple(r) for r in db.execute("SELECT * FROM chunks ORDER BY id")]
    faiss_file = ws.file(f"{index.INDEX_DIR}/vectors.faiss")
    return {"embeddings": embeddings, "chunks": chunks, "meta": index.index_meta(ws),
            "faiss": faiss_file.read_bytes() if faiss_file.exists() else None}


def _wait_until_closed(server: OpenAIServer) -> None:
    """Returns once the server holds no client connection (bounded by the test's timeout mark)."""
    while server.open_connections:
        time.sleep(0.02)


# --- 1. a total deadline on every call -------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_a_trickling_embeddings_server_is_cut_off_at_the_deadline(server, use_server):
    # One byte every 0.1 s: no read ever waits 2 s, but the answer would take minutes.
    server.inject({"type": "trickle", "interval": 0.1, "pad": 3000}, times=10, path="/embeddings")
    embedder = providers.get_embedder()
    with pytest.raises(WorkbenchError) as err:
        embedder.embed(["hello world"])
    assert str(err.value) == ("the OpenAI-compatible server did not answer in time (2 s) while embedding; "
                              "retried and gave up")
    assert [r["path"] for r in server.requests].count("/v1/embeddings") == 3   # 1 + max_retries, each cut at 2 s
    _wait_until_closed(server)   # every abandoned connection was closed by the client, none leaked
    server.clear_faults()
    assert embedder.embed(["hello world"]).shape == (1, DIMS)   # the same client works afterwards


@pytest.mark.timeout(30)
def test_a_server_trickling_its_headers_is_cut_off_too(server, use_server):
    cfg = use_server(timeout_s=2, max_retries=0)
    server.inject({"type": "trickle", "interval": 0.1, "headers": True, "pad": 3000}, path="/chat")
    with pytest.raises(WorkbenchError) as err:
        providers.get_chat_model(cfg).complete([{"role": "user", "content": "hi"}])
    assert str(err.value) == ("the OpenAI-compatible server did not answer in time (2 s) while answering; "
                              "gave up (retries are off)")
    assert len(server.requests) == 1
    _wait_until_closed(server)


@pytest.mark.timeout(30)
def test_a_slow_answer_inside_the_deadline_still_arrives(server, use_server):
    server.inject({"type": "trickle", "interval": 0.05, "chunk": 64}, times=2)
    embedder = providers.get_embedder()
    vectors = embedder.embed(["hello world", "timer sync"])
    assert np.allclose(vectors[0], embed_text("hello world", DIMS), atol=1e-6)


# --- 2. vectors of the wrong shape or with NaN are refused, nothing is stored ---------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault, message", [
    ({"type": "embedding_dimensions", "dimensions": 7, "index": 1},
     f"{EMBEDDER} returned vectors of different lengths in one answer (7 and 8 dimensions) while embedding"),
    ("ragged_embeddings",
     f"{EMBEDDER} returned vectors of different lengths in one answer (7 and 8 dimensions) while embedding"),
    ({"type": "embedding_dimensions", "dimensions": 9, "index": 0},
     f"{EMBEDDER} returned vectors of different lengths in one answer (8 and 9 dimensions) while embedding"),
    ({"type": "nonfinite_embedding", "value": "nan", "index": 1},
     f"{EMBEDDER} returned a vector with NaN or infinite values (text 2 of 2) while embedding"),
    ({"type": "nonfinite_embedding", "value": "-inf"},
     f"{EMBEDDER} returned a vector with NaN or infinite values (text 1 of 2) while embedding"),
    ({"type": "nonfinite_embedding", "value": 1e39},   # finite in JSON, infinite as float32
     f"{EMBEDDER} returned a vector with NaN or infinite values (text 1 of 2) while embedding"),
])
def test_bad_vectors_are_refused_before_anything_is_stored(server, use_server, fault, message):
    ws = _workspace()
    index.build_index(ws, providers.get_embedder())
    corpus.ingest(ws, [("invoicing.md", b"# Invoicing\n\nInvoices are due 45 days after the issue date."),
                       ("timer.md", b"# Timer\n\nThe timer syncs every minute.")])
    before = _stored(ws)
    server.inject(fault, path="/embeddings")
    with pytest.raises(WorkbenchError) as err:
        index.build_index(ws, providers.get_embedder())
    assert str(err.value).startswith(message)
    assert _stored(ws) == before


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fault, message", [
    ({"type": "embedding_dimensions", "dimensions": 7, "index": 1},
     f"{EMBEDDER} returned a vector of 7 dimensions (text 2 of 3) where the other vectors of the answer have 8; "
     "refusing the whole answer"),
    ("ragged_embeddings",
     f"{EMBEDDER} returned a vector of 7 dimensions (text 2 of 3) where the other vectors of the answer have 8; "
     "refusing the whole answer"),
    ({"type": "nonfinite_embedding", "value": "inf", "index": 2},
     f"{EMBEDDER} returned a vector with NaN or infinite values (text 3 of 3) while embedding"),
])
def test_the_openai_embedder_checks_every_answer(server, use_server, fault, message):
    server.inject(fault, path="/embeddings")
    with pytest.raises(WorkbenchError) as err:
        providers.get_embedder().embed(["a b", "c d", "e f"])
    assert str(err.value) == message


@pytest.mark.timeout(60)
def test_a_single_vector_of_another_length_than_the_index(server, use_server):
    ws = _workspace()
    index.build_index(ws, providers.get_embedder())
    corpus.ingest(ws, [("timer.md", b"# Timer\n\nThe timer syncs every minute.")])
    before = _stored(ws)
    server.inject({"type": "embedding_dimensions", "dimensions": 7}, path="/embeddings")
    with pytest.raises(WorkbenchError) as err:
        index.build_index(ws, providers.get_embedder())
    assert str(err.value) == f"{EMBEDDER} returned a vector of 7 dimensions where the index has 8"
    assert _stored(ws) == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault, message", [
    ({"type": "embedding_dimensions", "dimensions": 7}, f"{EMBEDDER} returned a vector of 7 dimensions where the "
                                                        "index has 8"),
    ({"type": "nonfinite_embedding", "value": "nan"}, f"{EMBEDDER} returned a vector with NaN or infinite values "
                                                      "(text 1 of 1) while embedding"),
])
def test_a_bad_query_vector_is_refused_not_searched(server, use_server, fault, message):
    ws = _workspace()
    index.build_index(ws, providers.get_embedder())
    retriever = index.Retriever(ws, providers.get_embedder())
    server.inject(fault, path="/embeddings")
    with pytest.raises(WorkbenchError) as err:
        retriever.search("When are invoices due?", index.RetrievalSettings())
    assert str(err.value) == message
    assert retriever.search("When are invoices due?", index.RetrievalSettings()).best_relevance > 0


class ListEmbedder:
    """Any embedder (not the OpenAI one): returns plain lists, as a third-party backend might."""

    name, label, offline, model_id, dimensions = "lists", "list embedder (test)", True, "lists-8", DIMS

    def __init__(self):
        self.spoil = None

    def embed(self, texts):
        rows = [embed_text(t, DIMS) for t in texts]
        return self.spoil(rows) if self.spoil else rows


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spoil, message", [
    (lambda rows: [rows[0][:5]] + rows[1:], "list embedder (test) returned vectors of different lengths, or values "
                                            "that are not numbers, while embedding the documents"),
    (lambda rows: [[float("nan")] * DIMS] + rows[1:], "list embedder (test) returned a vector with NaN or infinite "
                                                      "values (text 1 of 2) while embedding the documents"),
    (lambda rows: rows[:1], "list embedder (test) returned an array of shape (1, 8) for 2 texts while embedding "
                            "the documents"),
])
def test_any_embedder_is_checked_before_its_vectors_are_stored(spoil, message):
    ws = _workspace("lists")
    embedder = ListEmbedder()
    index.build_index(ws, embedder)
    corpus.ingest(ws, [("invoicing.md", b"# Invoicing\n\nInvoices are due 45 days after the issue date."),
                       ("timer.md", b"# Timer\n\nThe timer syncs every minute.")])
    before = _stored(ws)
    embedder.spoil = spoil
    with pytest.raises(WorkbenchError) as err:
        index.build_index(ws, embedder)
    assert str(err.value) == message
    assert _stored(ws) == before


@pytest.mark.timeout(60)
def test_any_embedder_must_match_the_length_of_the_vectors_it_cached():
    ws = _workspace("lists")
    embedder = ListEmbedder()
    index.build_index(ws, embedder)
    corpus.ingest(ws, [("timer.md", b"# Timer\n\nThe timer syncs every minute.")])
    before = _stored(ws)
    embedder.spoil = lambda rows: [r[:5] for r in rows]
    with pytest.raises(WorkbenchError) as err:
        index.build_index(ws, embedder)
    assert str(err.value) == "list embedder (test) returned a vector of 5 dimensions where the index has 8"
    assert _stored(ws) == before


@pytest.mark.timeout(60)
def test_nan_vectors_cached_by_an_older_version_are_embedded_again():
    ws = _workspace("legacy")
    embedder = ListEmbedder()
    index.build_index(ws, embedder)
    with ws.db() as db:
        db.execute("UPDATE embeddings SET vector = ? WHERE rowid = (SELECT MIN(rowid) FROM embeddings)",
                   (np.full(DIMS, np.nan, dtype=np.float32).tobytes(),))
    report = index.build_index(ws, embedder)
    assert (report.embedded, report.reused) == (1, 1)
    with ws.db() as db:
        vectors = [np.frombuffer(r[0], dtype=np.float32) for r in db.execute("SELECT vector FROM embeddings")]
    assert all(np.isfinite(v).all() for v in vectors)


# --- 3. absurd usage and empty replies ------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("usage, note", [
    ({"prompt_tokens": 1e30, "completion_tokens": -5},
     "reported 1e+30 prompt tokens, which the request could not hold"),
    ({"prompt_tokens": "12", "completion_tokens": 2.5}, "reported '12' prompt tokens, which is not a token count"),
    ({"prompt_tokens": None, "completion_tokens": None}, "reported no prompt tokens; counted"),
    ({"prompt_tokens": 200_000}, "reported 200,000 prompt tokens, which the request could not hold"),
])
def test_implausible_usage_is_replaced_by_our_own_count(server, use_server, usage, note):
    cfg = use_server()
    ws = _workspace()
    embedder, chat = providers.get_embedder(cfg), providers.get_chat_model(cfg)
    index.build_index(ws, embedder)
    retriever = index.Retriever(ws, embedder)
    server.inject({"type": "usage", **usage}, path="/chat")
    answer = rag.ask("When are invoices due?", retriever, chat, index.RetrievalSettings(top_k=2))
    hits = retriever.search("When are invoices due?", index.RetrievalSettings(top_k=2)).hits
    own_prompt = tokens.count_messages(rag.build_messages(rag.load_prompts(), "When are invoices due?", hits),
                                       "gpt-4o-mini")
    assert answer.prompt_tokens == own_prompt
    if "completion_tokens" in usage:
        assert answer.output_tokens == tokens.count(answer.text, "gpt-4o-mini")
    # gpt-4o-mini at $0.15 / $0.60 per 1M, plus the query embedding at $0.02 per 1M
    expected = (answer.prompt_tokens * 0.15 + answer.output_tokens * 0.60
                + tokens.count("When are invoices due?", "text-embedding-3-small") * 0.02) / 1e6
    assert answer.cost_usd == pytest.approx(expected) and answer.cost_usd < 0.01
    assert any(n.startswith(f"{CHAT} {note}") for n in answer.notes), answer.notes


@pytest.mark.timeout(60)
def test_implausible_embedding_usage_is_replaced(server, use_server):
    ws = _workspace()
    server.inject({"type": "usage", "prompt_tokens": 1e30}, path="/embeddings")
    embedder = providers.get_embedder()
    report = index.build_index(ws, embedder)
    own = sum(tokens.count_many([index.embedding_text(c) for c in index.chunk_workspace(ws, ChunkSettings())],
                                "text-embedding-3-small"))
    assert report.embed_tokens == own and report.embed_cost_usd == pytest.approx(own * 0.02 / 1e6)
    assert embedder.usage_note.startswith(f"{EMBEDDER} reported 1e+30 prompt tokens")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fault, message", [
    ("null_content", f"{CHAT} returned an empty answer (null message content, finish reason 'stop') while answering"),
    ("no_choices", f"{CHAT} returned no answer (no choices) while answering"),
    ("wrong_shape", f"{CHAT} returned no answer (no choices) while answering"),
])
def test_an_empty_reply_is_an_error_naming_the_provider(server, use_server, fault, message):
    server.inject(fault, path="/chat")
    with pytest.raises(WorkbenchError) as err:
        providers.get_chat_model().complete([{"role": "user", "content": "hi"}])
    assert str(err.value) == message


# --- 4. keys never reach a message, the terminal or a log -----------------------------------------------

def test_redact_removes_the_configured_key_and_anything_shaped_like_one(monkeypatch):
    from workbench.providers import OpenAISettings
    from workbench.providers.openai import redact

    monkeypatch.setenv("WB_REDACT_KEY", "local-secret-value")
    settings = OpenAISettings(api_key_env="WB_REDACT_KEY")
    text = ("got local-secret-value; Authorization: Bearer abc.def-123; key sk-live-0123456789abcdefXYZ; "
            "api_key=9f86d081884c7d659a2feaa0c55ad015; token: eyJhbGciOiJIUzI1NiJ9xyz; "
            "the tokenization of 'key' words stays")
    assert redact(text, settings) == ("got [redacted]; Authorization: Bearer [redacted]; key [redacted]; "
                                      "api_key=[redacted]; token: [redacted]; the tokenization of 'key' words stays")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("key", [KEY, "wb-local-secret-42"])
def test_an_echoed_authorization_header_is_redacted(server, use_server, key):
    server.api_key = key
    cfg = use_server(key=key)
    server.inject({"type": "echo_auth", "status": 400}, path="/chat")
    with pytest.raises(WorkbenchError) as err:
        providers.get_chat_model(cfg).complete([{"role": "user", "content": "hi"}])
    message = str(err.value)
    assert message.startswith("the OpenAI-compatible server rejected the request (400) while answering: ")
    assert "Bearer [redacted]" in message
    assert key not in message and "Bearer sk-" not in message and key[-8:] not in message


def _hostile_cli_workspace(server, use_server):
    use_server()
    ws = _workspace("cli")
    index.build_index(ws, providers.get_embedder())
    server.inject({"type": "echo_auth", "status": 400}, times=5, path="/chat")
    return ws


@pytest.mark.timeout(60)
def test_the_cli_prints_no_key_when_the_server_echoes_it(server, use_server, capfd, caplog):
    from workbench.cli import main

    _hostile_cli_workspace(server, use_server)
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(main, ["ask", "When are invoices due?", "--workspace", "cli"])
    assert result.exit_code == 1
    assert "rejected the request (400) while answering" in result.stderr
    captured = capfd.readouterr()
    for text in (result.output, result.stderr, captured.out, captured.err, caplog.text):
        assert KEY not in text and "Bearer sk-" not in text and KEY[-12:] not in text
    assert any(r["path"] == "/v1/chat/completions" for r in server.requests)


@pytest.mark.timeout(120)
def test_the_cli_in_a_real_terminal_with_sdk_debug_logging(server, use_server):
    _hostile_cli_workspace(server, use_server)
    env = {**os.environ, "OPENAI_LOG": "debug"}   # the SDK then logs every request to stderr
    proc = subprocess.run([sys.executable, "-c", "from workbench.cli import main; main()", "ask",
                           "When are invoices due?", "--workspace", "cli"],
                          capture_output=True, text=True, env=env, timeout=100)
    assert proc.returncode == 1, proc.stderr
    assert "rejected the request (400) while answering" in proc.stderr
    assert "HTTP Request: POST" in proc.stderr   # debug logging was on
    for text in (proc.stdout, proc.stderr):
        assert KEY not in text and "Bearer sk-" not in text and KEY[-12:] not in text


# --- 5. an index out of step with its chunk table ----------------------------------------------------------

def _files(ws) -> dict[str, bytes]:
    return {name: ws.file(f"{index.INDEX_DIR}/{name}").read_bytes() for name in ("vectors.faiss", "meta.json")}


def _chunk_hashes(ws) -> list[str]:
    with ws.db() as db:
        return [r[0] for r in db.execute("SELECT content_sha256 FROM chunks ORDER BY id")]


@pytest.mark.timeout(60)
def test_old_vectors_restored_after_a_rebuild_are_refused():
    ws = _workspace("restored")
    embedder = ListEmbedder()
    index.build_index(ws, embedder)
    old = _files(ws)
    corpus.ingest(ws, [("invoicing.md", b"# Invoicing\n\nInvoices are due 45 days after the issue date.")])
    index.build_index(ws, embedder)
    new_chunks = _chunk_hashes(ws)
    for name, data in old.items():   # as if the rebuild died after the chunk table and before the index files
        ws.file(f"{index.INDEX_DIR}/{name}").write_bytes(data)
    assert json.loads(old["meta.json"])["chunks"] == len(new_chunks)   # the count alone cannot tell
    assert index.index_is_stale(ws)
    with pytest.raises(WorkbenchError) as err:
        index.Retriever(ws, embedder)
    assert str(err.value) == ("the index is out of date with the documents; rebuild it on the RAG page or with "
                              "`workbench index`")
    assert _chunk_hashes(ws) == new_chunks and _files(ws) == old   # checking changed nothing
    index.build_index(ws, embedder)
    assert not index.index_is_stale(ws)
    hits = index.Retriever(ws, embedder).search("invoices due", index.RetrievalSettings(top_k=2)).hits
    assert any("45 days" in h.text for h in hits)


@pytest.mark.timeout(60)
def test_a_crash_between_the_chunk_table_and_the_faiss_write_is_detected(monkeypatch):
    ws = _workspace("crash")
    embedder = ListEmbedder()
    index.build_index(ws, embedder, index.IndexSettings(chunking=ChunkSettings(strategy="headings")))
    old = _files(ws)
    original_write = workspace.Workspace.write_file

    def crash_at_the_index(self, name, data):
        if name.endswith("vectors.faiss"):
            raise KeyboardInterrupt("the process died here")
        return original_write(self, name, data)

    # Same documents, same number of chunks, other chunk text (no heading paths): only the content tells.
    monkeypatch.setattr(workspace.Workspace, "write_file", crash_at_the_index)
    with pytest.raises(KeyboardInterrupt):
        index.build_index(ws, embedder, index.IndexSettings(chunking=ChunkSettings(strategy="sentences")))
    monkeypatch.undo()
    assert _files(ws) == old and len(_chunk_hashes(ws)) == json.loads(old["meta.json"])["chunks"]
    assert index.index_is_stale(ws)
    with pytest.raises(WorkbenchError, match="the index is out of date with the documents; rebuild it"):
        index.Retriever(ws, embedder)
    index.build_index(ws, embedder)
    assert not index.index_is_stale(ws) and index.Retriever(ws, embedder).rows


def test_an_all_zero_vector_is_refused(monkeypatch):
    from types import SimpleNamespace

    from workbench.providers import OpenAISettings
    from workbench.providers.openai import OpenAIEmbedder

    answer = SimpleNamespace(data=[SimpleNamespace(index=0, embedding=[0.0] * DIMS)])
    with pytest.raises(WorkbenchError) as err:
        OpenAIEmbedder(OpenAISettings(), "text-embedding-3-small")._vectors(answer, 1, None)
    assert str(err.value) == f"{EMBEDDER} returned an all-zero vector (text 1 of 1) while embedding"
