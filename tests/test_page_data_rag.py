"""The Data and RAG pages, clicked through with AppTest on the sample workspace."""
import pytest

from workbench import corpus, index, workspace


@pytest.fixture
def page(app_test):
    def open_page(path):
        at = app_test().run()
        at.switch_page(path).run()
        assert not at.exception
        return at
    return open_page


def metrics(at):
    return {m.label: m.value for m in at.metric}


def test_data_page_shows_the_sample(page):
    at = page("pages/data.py")
    m = metrics(at)
    assert int(m["Documents"]) >= 25 and int(m["Question/answer pairs"]) >= 150 and m["Problems found"] == "0"
    docs = at.dataframe[0].value
    assert {"document", "format", "tokens", "language", "chunks"} <= set(docs.columns)
    assert set(docs["format"]) >= {"markdown", "html", "pdf", "text"}
    assert set(docs["language"]) == {"en"}


def test_upload_keeps_good_files_and_reports_bad_ones(page):
    at = page("pages/data.py")
    uploader = at.file_uploader(key="data_docs_upload")
    uploader.upload("new-guide.md", b"# New guide\n\nSomething new.", "text/markdown")
    uploader.upload("broken.pdf", b"%PDF-1.4 nothing", "application/pdf")
    next(b for b in at.button if b.label == "Add documents").click().run()
    assert not at.exception
    assert any("Added 1 and updated 0 documents" in s.value for s in at.success)
    assert any(e.value.startswith("broken.pdf: not a readable PDF") for e in at.error)
    ws = workspace.open_workspace("sample")
    assert "new-guide.md" in {d["doc_id"] for d in corpus.documents(ws)}
    assert metrics(at)["Problems found"] == "1"


def test_chunk_inspector_shows_boundaries(page):
    at = page("pages/data.py")
    at.selectbox(key="data_inspect_doc").set_value("invoicing.md")
    at.selectbox(key="data_inspect_strategy").set_value("fixed")
    at.number_input(key="data_inspect_max").set_value(100)
    at.number_input(key="data_inspect_overlap").set_value(20).run()
    captions = [c.value for c in at.caption if c.value.startswith("Chunk ")]
    assert captions and all("tokens" in c for c in captions)
    assert all(int(c.split(" · ")[-2].split()[0]) <= 100 for c in captions)
    at.number_input(key="data_inspect_overlap").set_value(100).run()
    assert any("must be smaller than max_tokens" in e.value for e in at.error)


def test_rag_page_builds_the_index_and_answers(page):
    at = page("pages/rag.py")
    assert any("No index yet." in c.value for c in at.caption)
    at.button(key="rag_build").click().run()
    assert any(s.value.startswith("Indexed ") and "embedded" in s.value for s in at.success)
    assert not any("No index yet." in c.value for c in at.caption)     # the status line follows the build
    assert any(c.value.startswith("Built with ") and " chunks from 28 documents" in c.value for c in at.caption)
    at.text_input(key="rag_question").set_value("When are new invoices due by default?")
    next(b for b in at.button if b.label == "Ask").click().run()
    assert not at.exception
    answer = next(m.value for m in at.markdown if m.value.startswith("#### "))
    assert "30 days" in answer.replace("\\", "")
    assert any("offline stand-in" in c.value for c in at.caption)
    assert any("invoicing.md" in e.label and " · score " in e.label and " · relevance " in e.label
               for e in at.expander)
    # What a citation's score and relevance are, and their ranges: hybrid retrieval with rrf_k = 10 fuses two
    # rankings, each giving at most 1/(10 + 1), so a score is at most 2/11 = 0.182.
    citations = next(m for m in at.markdown if m.value == "**Citations**")
    assert "reciprocal rank fusion" in citations.proto.help and "1/(10 + rank), from 0 to 0.182" in citations.proto.help
    assert "cosine similarity" in citations.proto.help and "-1 to 1" in citations.proto.help
    assert "cosine similarity" in next(m for m in at.metric if m.label == "Best relevance").help
    m = metrics(at)
    assert m["Cost"] == "$0.00" and "ms" in m["Latency"]
    # Settings are saved in the workspace.
    at.slider(key="rag_top_k").set_value(6).run()
    assert index.load_settings(workspace.open_workspace("sample")).retrieval.top_k == 6


def test_rag_page_abstains_visibly(page):
    at = page("pages/rag.py")
    at.button(key="rag_build").click().run()
    at.text_input(key="rag_question").set_value("Who is the chief executive of Tallyboard?")
    next(b for b in at.button if b.label == "Ask").click().run()
    assert any("can't answer that from the documents" in w.value for w in at.warning)


@pytest.mark.local_llm
@pytest.mark.timeout(300)
def test_rag_page_answers_with_the_local_llm_by_default_and_offers_the_extractive_answerer(page):
    at = page("pages/rag.py")
    at.button(key="rag_build").click().run()
    radio = at.radio(key="rag_answerer")
    assert radio.value == "llamacpp" and set(radio.options) == {
        "SmolLM2-135M-Instruct, local (tiny model, demo quality)", "Extractive answerer (offline stand-in, not an LLM)"}
    at.text_input(key="rag_question").set_value("When are new invoices due by default?")
    next(b for b in at.button if b.label == "Ask").click().run()
    assert not at.exception
    answer = next(m.value for m in at.markdown if m.value.startswith("#### ") and "▌" not in m.value)
    assert len(answer) > len("#### ")
    assert any("SmolLM2-135M-Instruct, local (tiny model, demo quality)" in c.value and "on this machine" in c.value
               for c in at.caption)
    assert any(c.value.startswith("Time to first token ") and "tokens/s" in c.value for c in at.caption)
    # The same question through the no-LLM option quotes the sentence with the answer.
    at.radio(key="rag_answerer").set_value("extractive").run()
    next(b for b in at.button if b.label == "Ask").click().run()
    assert "30 days" in next(m.value for m in at.markdown if m.value.startswith("#### ")).replace("\\", "")
    assert any("offline stand-in" in c.value for c in at.caption)
