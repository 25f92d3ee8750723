"""Bad input, property-based: every accepted format, wrong encodings, absurd numbers; concurrent sessions;
secrets; uploaded script tags. Always a clear message, never a traceback, never a stored file lost."""
import io
import math
import os
import sqlite3
import threading
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from workbench import corpus, costs, decision, parsing, scenario, workspace
from workbench.errors import WorkbenchError

SAMPLE = Path(__file__).resolve().parent.parent / "workbench" / "data" / "sample" / "docs"
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _assert_clean(parsed: parsing.Parsed) -> None:
    assert isinstance(parsed, parsing.Parsed)
    if not parsed.documents and not parsed.pairs:
        assert parsed.problems and all(p.message for p in parsed.problems)


@FAST
@given(name=st.sampled_from(["a.txt", "a.md", "a.html", "a.pdf", "a.docx", "a.csv", "a.jsonl", "a.zip"]),
       data=st.binary(max_size=4000))
def test_random_bytes_in_every_format(name, data):
    _assert_clean(parsing.parse_document_file(name, data))


@FAST
@given(name=st.sampled_from(["q.csv", "q.jsonl"]), data=st.binary(max_size=3000))
def test_random_bytes_as_question_answer_pairs(name, data):
    _assert_clean(parsing.parse_qa_file(name, data))


def _docx() -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("Title", 1)
    d.add_paragraph("Some text " * 50)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.md", "# A\n\n" + "alpha " * 200)
        z.writestr("b.txt", "beta " * 200)
    return buf.getvalue()


VALID = {"a.pdf": next(SAMPLE.glob("*.pdf")).read_bytes(), "a.html": next(SAMPLE.glob("*.html")).read_bytes(),
         "a.md": next(SAMPLE.glob("*.md")).read_bytes(), "a.docx": _docx(), "a.zip": _zip(),
         "a.csv": b"id,text\n1,hello there\n2,general kenobi\n",
         "a.jsonl": b'{"id": "1", "text": "hello"}\n{"id": "2", "text": "there"}\n'}


@FAST
@given(name=st.sampled_from(sorted(VALID)), cut=st.floats(0, 1), flip=st.integers(0, 255))
def test_truncated_and_corrupted_valid_files(name, cut, flip):
    data = VALID[name][: int(len(VALID[name]) * cut)]
    _assert_clean(parsing.parse_document_file(name, data))
    if data:
        corrupted = bytearray(data)
        corrupted[len(data) // 2] ^= flip
        _assert_clean(parsing.parse_document_file(name, bytes(corrupted)))


@FAST
@given(text=st.text(min_size=1, max_size=500), encoding=st.sampled_from(["utf-8", "utf-16", "cp1252", "latin-1",
                                                                          "utf-8-sig", "shift_jis"]))
def test_wrong_and_unusual_encodings(text, encoding):
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode(encoding, errors="replace")
    _assert_clean(parsing.parse_document_file("notes.txt", data))


def test_huge_lines_are_refused_by_name():
    parsed = parsing.parse_document_file("huge.md", b"# ok\n" + b"x" * 1_500_000)
    assert parsed.problems[0].line == 2 and "line of over 1,000,000 characters" in parsed.problems[0].message


@FAST
@given(text=st.text(max_size=300))
def test_malformed_answer_files(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("a") / "answers.yaml"
    path.write_text(text, encoding="utf-8")
    cfg = decision.load_decision_config()
    try:
        decision.load_answers(cfg, path)
    except WorkbenchError as exc:
        assert str(exc)


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**15, 10**15),
                    st.text(max_size=5), st.none())


@FAST
@given(queries=NUMBERS, prompt=NUMBERS, months=NUMBERS, top_k=NUMBERS, examples=NUMBERS, churn=NUMBERS)
def test_absurd_numbers_in_the_estimator(queries, prompt, months, top_k, examples, churn):
    data = {"queries_per_month": queries, "prompt_tokens": prompt, "months": months,
            "rag": {"top_k": top_k, "monthly_churn": churn}, "fine_tuning": {"training_examples": examples}}
    try:
        s = scenario.scenario_from_dict(data)
    except WorkbenchError as exc:
        assert "field" in str(exc) or "line" in str(exc) or ":" in str(exc)
        return
    e = costs.estimate(s)
    for o in e.options.values():
        assert math.isfinite(o.total_cost_usd) and o.total_cost_usd >= 0
        assert math.isfinite(o.latency_ms["total"])


def test_a_bad_upload_never_costs_a_stored_file():
    ws = workspace.open_workspace("keep", create=True)
    corpus.ingest(ws, [("keep.md", b"# Keep\n\nImportant text.")])
    before = {p.name: p.read_bytes() for p in ws.file("uploads").iterdir()}
    for name, data in [("keep.md", b""), ("x.pdf", b"%PDF broken"), ("bomb.zip", VALID["a.zip"][:30]),
                       ("keep.md", b"\x00\x01\x02" * 100)]:
        corpus.ingest(ws, [(name, data)])
    after = {p.name: p.read_bytes() for p in ws.file("uploads").iterdir()}
    assert after == before
    assert corpus.document(ws, "keep.md")["text"] == "# Keep\n\nImportant text."


def test_two_sessions_writing_the_same_workspace_at_once():
    """Two sessions (threads here, each with its own connections) save answers, prices and uploads together."""
    ws = workspace.open_workspace("shared", create=True)
    cfg = decision.load_decision_config()
    errors = []

    def session(n: int) -> None:
        try:
            for i in range(15):
                answers = {"citations": ["no", "nice", "required"][(n + i) % 3]}
                decision.save_decision(ws, answers, decision.recommend(cfg, answers))
                ws.set_state(f"session-{n}", {"i": i})
                corpus.ingest(ws, [(f"s{n}-{i}.md", f"# Doc {n} {i}\n\nText {n} {i}.".encode())])
        except Exception as exc:  # the test reports any failure of either session
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(corpus.documents(ws)) == 30 and len(corpus.uploads(ws)) == 30
    assert ws.get_state("session-1") == {"i": 14} and ws.get_state("session-2") == {"i": 14}
    with sqlite3.connect(ws.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert decision.saved_answers(ws)["citations"] in {"no", "nice", "required"}


def test_no_key_reaches_disk_reports_or_exports(openai_server, openai_providers, tmp_path, monkeypatch):
    """A run through every OpenAI-backed step with a key set; then every file written is scanned for it."""
    from workbench import evaluation, exports, finetune, index, notebook, providers, rag, report, sample, splits

    key = openai_server.api_key = "sk-test-VERYSECRET-0123456789abcdef"
    monkeypatch.setenv("WB_TEST_KEY", key)
    home = Path(os.environ["WORKBENCH_HOME"])
    ws = workspace.open_workspace("secret", create=True)
    sample.ensure_sample(ws)
    embedder, chat = providers.get_embedder(), providers.get_chat_model()
    index.build_index(ws, embedder)
    rag.ask("When are invoices due?", index.Retriever(ws, embedder), chat, index.RetrievalSettings())
    splits.make_split(ws)
    job = finetune.start_job(ws, providers.get_fine_tuner(), "gpt-4o-mini-2024-07-18")
    finetune.refresh(ws, job["id"], providers.get_fine_tuner())
    settings = evaluation.EvalSettings(arms=["rag"])
    run_id = evaluation.create_run(ws, evaluation.default_questions(ws)[:3], settings)
    evaluation.run(ws, run_id, evaluation.build_arms(ws, settings))
    outputs = {"memo.md": report.to_markdown(report.build(ws)), "memo.html": report.to_html(report.build(ws)),
               "notebook.ipynb": notebook.to_json(ws),
               "train.jsonl": exports.export(finetune.training_examples(ws), "openai").decode()}
    for name, text in outputs.items():
        (tmp_path / name).write_text(text)
    scanned = 0
    for root in (home, tmp_path):
        for path in root.rglob("*"):
            if path.is_file():
                scanned += 1
                assert key.encode() not in path.read_bytes(), path
    assert scanned > 10


def test_uploaded_script_tags_are_never_rendered(app_test):
    at = app_test().run()
    at.switch_page("pages/data.py").run()
    page = (b"<html><head><title>Evil <script>alert(1)</script></title></head><body><h1>Hello</h1>"
            b"<p>Text <script>document.cookie</script> and <img src=x onerror=alert(2)> here.</p></body></html>")
    at.file_uploader(key="data_docs_upload").upload("evil.html", page, "text/html")
    next(b for b in at.button if b.label == "Add documents").click().run()
    assert not at.exception
    ws = workspace.open_workspace("sample")
    doc = corpus.document(ws, "evil.html")
    assert "<script" not in doc["text"] and "document.cookie" not in doc["text"] and "onerror" not in doc["text"]
    assert doc["title"] == "Evil alert(1)"  # tags inside the title are dropped too
    # Nothing on the page is allowed to render HTML.
    for element in at.markdown:
        assert not element.proto.allow_html
    titles = at.dataframe[0].value["title"].tolist()
    assert any("Evil" in t for t in titles)
    assert doc["title"] == "Evil alert(1)"  # tags inside the title are dropped too
    # A Markdown document keeps markup in its title as text; the memo lists it escaped.
    from workbench import report

    corpus.ingest(ws, [("evil.md", b"# Evil <script>alert(1)</script>\n\nBody.")])
    data = report.build(ws)
    page_html = report.to_html(data)
    assert "<script>alert(1)</script>" not in page_html
    assert "Evil &lt;script&gt;alert(1)&lt;/script&gt;" in page_html
    assert "Evil \\<script\\>alert(1)\\</script\\>" in report.to_markdown(data)
