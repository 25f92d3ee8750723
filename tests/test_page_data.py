"""The Data page, clicked through with AppTest: its tables, the index status and the chunk inspector."""
import json

import pytest

from workbench import corpus, index, sample, workspace
from workbench.chunking import ChunkSettings, chunk_document

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def quick(plugin, tmp_path, monkeypatch):
    """The sample in its own workspace, indexed by the test plugin's hashing embedder (instant) and
    generated from by its scripted question writer; the workspace saves sentence packing at 120/20 tokens."""
    config = tmp_path / "providers.yaml"
    config.write_text("chat: {provider: scripted-qa}\nembedder: {provider: fake-hash}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(config))
    ws = workspace.open_workspace("inspect", create=True)
    sample.ensure_sample(ws)
    saved = index.load_settings(ws)
    chunking = ChunkSettings(strategy="sentences", max_tokens=120, overlap_tokens=20)
    index.save_settings(ws, saved.model_copy(update={"index": saved.index.model_copy(update={"chunking": chunking})}))
    return ws, chunking


def _texts(at):
    return [e.value for kind in ("caption", "info", "success", "markdown") for e in getattr(at, kind)]


def test_index_status_and_chunk_inspector_follow_the_index_in_the_same_run(app_test, quick):
    ws, chunking = quick
    at = app_test("inspect").run()
    at.switch_page("pages/data.py").run()
    assert not at.exception

    # The documents table: key columns first, each with a width, all within the page at 1400 px (about
    # 940 px of content); the source column only when a source differs from the document name.
    table = at.dataframe[0]
    assert list(table.value.columns[:4]) == ["document", "title", "chunks", "tokens"]
    config = json.loads(table.proto.columns)
    shown = list(table.proto.column_order)
    assert "source" not in shown and sum(config[c]["width"] for c in shown) <= 940

    # No index yet: the inspector starts on the workspace's saved chunking, not on fixed windows.
    assert (at.selectbox(key="data_inspect_strategy").value, at.number_input(key="data_inspect_max").value,
            at.number_input(key="data_inspect_overlap").value) == ("sentences", 120, 20)
    assert "No index yet: these are the chunks a build with these settings would make." in [i.value for i in at.info]
    assert "The index is built first when you generate (RAG page settings)." in [c.value for c in at.caption]

    # Generating builds the index mid-run: what the page says after it reads the new index.
    at.number_input(key="data_gen_count").set_value(1)
    at.button(key="data_gen_run").click().run()
    assert not at.exception and not at.error
    expected = len(index.chunk_workspace(ws, chunking))
    status = (f"Index: {expected} chunks from 28 documents, cut by Sentence / paragraph packing, at most 120 "
              "tokens, overlap 20.")
    assert [t for t in _texts(at) if "No index yet" in t or "index is built first" in t] == []
    assert _texts(at).count(status) == 2     # beside the generated pair and in the inspector
    assert "These are the chunks the index holds for this document." in [s.value for s in at.success]

    # Other settings are a preview, said so; the chunks are paged, 20 at a time, with the total.
    at.selectbox(key="data_inspect_doc").set_value("account-and-billing.pdf")
    at.selectbox(key="data_inspect_strategy").set_value("fixed")
    at.number_input(key="data_inspect_max").set_value(20)
    at.number_input(key="data_inspect_overlap").set_value(0).run()
    doc = corpus.document(ws, "account-and-billing.pdf")
    fixed = ChunkSettings(strategy="fixed", max_tokens=20, overlap_tokens=0)
    chunks = chunk_document(doc["doc_id"], doc["title"], doc["text"], fixed)
    assert len(chunks) == 29    # 569 tokens in windows of 20 (the last one 9)
    assert "A preview: the index holds other chunks for this document." in [i.value for i in at.info]
    assert any(c.value.startswith("**29 chunks** in this document") for c in at.caption)
    pager = at.selectbox(key="data_inspect_page")
    assert pager.options == ["1-20 of 29", "21-29 of 29"]
    assert [c.value.split(" · ")[0] for c in at.caption if c.value.startswith("Chunk ")] == [
        f"Chunk {i}" for i in range(1, 21)]
    pager.set_value(1).run()
    assert [c.value.split(" · ")[0] for c in at.caption if c.value.startswith("Chunk ")] == [
        f"Chunk {i}" for i in range(21, 30)]

    at.button(key="data_inspect_reset").click().run()     # back to the index's settings
    assert (at.selectbox(key="data_inspect_strategy").value, at.number_input(key="data_inspect_max").value,
            at.number_input(key="data_inspect_overlap").value) == ("sentences", 120, 20)
    assert "These are the chunks the index holds for this document." in [s.value for s in at.success]

    # Building with other settings: the page that says "Indexed" shows the new index everywhere.
    at.selectbox(key="data_inspect_strategy").set_value("fixed")
    at.number_input(key="data_inspect_max").set_value(20)
    at.number_input(key="data_inspect_overlap").set_value(0).run()
    at.button(key="data_inspect_build").click().run()
    assert not at.exception
    total = len(index.chunk_workspace(ws, fixed))
    assert f"Indexed 28 documents as {total} chunks with fake hashing embedder (32 dims, test plugin)." in [
        s.value for s in at.success]
    assert (f"Index: {total} chunks from 28 documents, cut by Fixed token windows with overlap, at most 20 tokens, "
            "overlap 0.") in [c.value for c in at.caption]
    assert "These are the chunks the index holds for this document." in [s.value for s in at.success]
    assert at.dataframe[0].value["chunks"].sum() == total
    assert index.load_settings(ws).index.chunking == fixed     # what the RAG page and `workbench ask` now use

    # A new document makes the index out of date, and the page says so.
    corpus.ingest(ws, [("new-guide.md", b"# New guide\n\nSomething new.")], kind="documents")
    at.run()
    assert "The index is out of date with the documents: these are the chunks a rebuild with these settings would " \
           "make." in [i.value for i in at.info]
    assert any(c.value.endswith("The documents changed since it was built: rebuild it.") for c in at.caption)
