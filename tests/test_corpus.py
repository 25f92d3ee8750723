"""Ingest into a workspace: verbatim uploads, duplicates as no-ops, nothing lost on a bad file."""
import json

from workbench import corpus, sample, workspace


def test_ingest_keeps_uploads_verbatim_and_is_idempotent():
    ws = workspace.open_workspace("w", create=True)
    good = ("guide.md", b"# Guide\n\nInstall the timer.\n")
    bad = ("broken.pdf", b"%PDF-1.4 garbage")
    report = corpus.ingest(ws, [good, bad])
    assert report.added == ["guide.md"]
    assert [str(p) for p in report.problems if p.level == "error"][0].startswith("broken.pdf: not a readable PDF")
    stored = corpus.uploads(ws)
    assert len(stored) == 1 and ws.file(stored[0]["stored_path"]).read_bytes() == good[1]
    again = corpus.ingest(ws, [good])
    assert again.duplicates == ["guide.md"] and not again.added
    assert len(corpus.uploads(ws)) == 1
    assert corpus.problems(ws)[0]["file"] == "broken.pdf"  # problems are kept for the Data page
    doc = corpus.documents(ws)[0]
    # o200k: "#", " Guide", "\n\n", "Install", " the", " timer", "." = 7 tokens (trailing newline stripped).
    assert (doc["doc_id"], doc["title"], doc["lang"], doc["tokens"]) == ("guide.md", "Guide", "en", 7)


def test_a_new_version_replaces_the_document_and_removal_drops_chunks():
    from workbench import index
    from workbench.chunking import ChunkSettings

    ws = workspace.open_workspace("w", create=True)
    corpus.ingest(ws, [("a.md", b"# A\n\nFirst version."), ("b.md", b"# B\n\nOther.")])
    report = corpus.ingest(ws, [("a.md", b"# A\n\nSecond version.")])
    assert report.updated == ["a.md"]
    assert "Second version." in corpus.document(ws, "a.md")["text"]

    class Fake:  # a deterministic stand-in embedder for the chunk bookkeeping
        name, label, offline, model_id, dimensions = "fake", "fake", True, "fake", 4

        def embed(self, texts):
            import numpy as np
            return np.eye(4, dtype="float32")[[len(t) % 4 for t in texts]]

    index.build_index(ws, Fake(), index.IndexSettings(chunking=ChunkSettings(strategy="headings")))
    assert {d["doc_id"]: d["chunks"] for d in corpus.documents(ws)} == {"a.md": 1, "b.md": 1}
    assert corpus.remove_document(ws, "a.md")
    with ws.db() as db:
        assert [r[0] for r in db.execute("SELECT DISTINCT doc_id FROM chunks")] == ["b.md"]
    assert index.index_is_stale(ws)
    assert len(corpus.uploads(ws)) == 3  # the uploaded files themselves are never deleted


def test_qa_pairs_and_measured_stats():
    ws = workspace.open_workspace("w", create=True)
    corpus.ingest(ws, [("d.md", b"# D\n\nhello world")])
    rows = [{"question": "hello world", "answer": "hello world", "doc_ids": ["d.md"]},
            {"question": "unknown?", "answer": ""}]
    report = corpus.ingest(ws, [("qa.jsonl", "\n".join(json.dumps(r) for r in rows).encode())], kind="qa")
    assert report.pairs_added == 2
    pairs = corpus.qa_pairs(ws)
    assert [p.category for p in pairs] == ["", "unanswerable"]
    stats = corpus.data_stats(ws)
    # One answered pair: 3 + 1 + 2 (user "hello world") + 3 + 1 + 2 (assistant) + 3 = 15 tokens.
    assert (stats.training_examples, stats.tokens_per_example, stats.output_tokens) == (1, 15, 2)
    assert stats.corpus_tokens == corpus.documents(ws)[0]["tokens"]


def test_language_detection():
    ws = workspace.open_workspace("w", create=True)
    corpus.ingest(ws, [("de.txt", "Rechnungen werden dreißig Tage nach dem Ausstellungsdatum fällig.".encode()),
                       ("fr.txt", "Les factures sont payables trente jours après la date d'émission.".encode())])
    assert {d["doc_id"]: d["lang"] for d in corpus.documents(ws)} == {"de.txt": "de", "fr.txt": "fr"}


def test_sample_workspace_is_loaded_once():
    ws = workspace.open_workspace("sample", create=True)
    assert sample.ensure_sample(ws) is True
    docs = corpus.documents(ws)
    assert len(docs) >= 25 and len(corpus.qa_pairs(ws)) >= 150
    assert not [p for p in corpus.problems(ws) if p["level"] == "error"]
    corpus.remove_document(ws, docs[0]["doc_id"])
    assert sample.ensure_sample(ws) is False  # a workspace that has had uploads is left as it is
    assert len(corpus.documents(ws)) == len(docs) - 1
