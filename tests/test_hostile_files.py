"""Hostile uploads: each ends in a problem naming the file (and line), in bounded time and memory, with what the
workspace already holds unchanged byte for byte and the later files of the same upload still read."""
import io
import json
import logging
import random
import sqlite3
import string
import subprocess
import sys
import threading
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench import corpus, exports, parsing, training_data, workspace
from workbench.cli import main
from workbench.errors import WorkbenchError

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def errors(problems):
    return [str(p) for p in problems if p.level == "error"]


def snapshot(ws, leave_out=()):
    """What the workspace holds, byte for byte, leaving out what came from the files named in `leave_out`."""
    uploads = corpus.uploads(ws)
    new = {u["stored_path"] for u in uploads if u["name"] in leave_out}
    folder = ws.file("uploads")
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if f"uploads/{p.name}" not in new}
    return ([u for u in uploads if u["name"] not in leave_out],
            [d for d in corpus.documents(ws, with_text=True) if d["source"] not in leave_out],
            [p for p in corpus.qa_pairs(ws) if p.source not in leave_out], files)


@pytest.fixture
def ws():
    """A workspace that already holds documents and question/answer pairs."""
    ws = workspace.open_workspace("hostile", create=True)
    corpus.ingest(ws, [("keep.md", b"# Keep\n\nImportant text."), ("notes.txt", "Café notes.".encode())])
    rows = [{"question": "What is kept?", "answer": "Everything.", "doc_ids": ["keep.md"]}]
    corpus.ingest(ws, [("qa.jsonl", "\n".join(json.dumps(r) for r in rows).encode())], kind="qa")
    return ws


def around(hostile, kind="documents"):
    """A good file before and after the hostile one (named after it, so that each is new)."""
    stem = Path(hostile[0]).stem
    if kind == "qa":
        return [(f"before-{stem}.jsonl", f'{{"question": "Before {stem}?", "answer": "one"}}\n'.encode()), hostile,
                (f"after-{stem}.jsonl", f'{{"question": "After {stem}?", "answer": "two"}}\n'.encode())]
    return [(f"before-{stem}.md", f"# Before\n\nRead before {stem}.".encode()), hostile,
            (f"after-{stem}.md", f"# After\n\nRead after {stem}.".encode())]


def ingest_around(ws, hostile, kind="documents", **kw):
    """Ingest the hostile file between two good ones; checks the good ones are read and nothing stored moved."""
    before = snapshot(ws)
    files = around(hostile, kind)
    report = corpus.ingest(ws, files, kind=kind, **kw)
    good = [files[0][0], files[2][0]]
    if kind == "qa":
        assert set(good) <= {p.source for p in corpus.qa_pairs(ws)}
    else:
        assert good[0] in report.added and good[1] in report.added
    assert snapshot(ws, leave_out=good + [hostile[0]]) == before
    return report


# --- 1. a long .docx is read as a stream, in seconds ---------------------------------------------------

def docx_package(body_xml: str | None, doctype: str = "", write_body=None) -> bytes:
    """A .docx: python-docx's blank document (Word's styles and parts) with the given body, or with
    document.xml written by `write_body(member)`."""
    import docx

    blank, buf = io.BytesIO(), io.BytesIO()
    docx.Document().save(blank)
    with zipfile.ZipFile(blank) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            if info.filename != "word/document.xml":
                z.writestr(info.filename, src.read(info))
            elif write_body:
                with z.open(info.filename, "w", force_zip64=True) as member:
                    write_body(member)
            else:
                z.writestr(info.filename, f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{doctype}'
                                          f'<w:document xmlns:w="{W}"><w:body>{body_xml}<w:sectPr/></w:body>'
                                          "</w:document>")
    return buf.getvalue()


def paragraph(text: str, style: str = "") -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f"<w:p>{props}<w:r><w:t xml:space=\"preserve\">{text}</w:t></w:r></w:p>"


def long_docx(min_bytes: int, seed: int = 0) -> tuple[bytes, int]:
    """A .docx of at least `min_bytes` of plain paragraphs of random words, under a title and headings;
    returns it and its number of paragraphs."""
    rng = random.Random(seed)
    parts, count, size = [paragraph("Handbook", "Title")], 0, 0
    while size < min_bytes * 1.9:  # random letters deflate to a little over half their size
        if count % 1000 == 0:
            parts.append(paragraph(f"Part {count // 1000}", "Heading2"))
        words = " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(12))
        parts.append(paragraph(words))
        count, size = count + 1, size + len(words)
    return docx_package("".join(parts)), count


@pytest.mark.timeout(60)
def test_a_5_mb_docx_of_many_paragraphs_ingests_in_seconds(ws):
    data, count = long_docx(5_000_000)
    assert len(data) >= 5_000_000 and count > 100_000
    report = ingest_around(ws, ("handbook.docx", data))
    assert "handbook.docx" in report.added and not errors(report.problems)
    doc = corpus.document(ws, "handbook.docx")
    assert doc["title"] == "Handbook" and doc["fmt"] == "docx"
    blocks = doc["text"].split("\n\n")
    assert blocks[:2] == ["# Handbook", "## Part 0"] and len(blocks) == 1 + count + (count + 999) // 1000
    assert blocks[1002] == "## Part 1"


@pytest.mark.timeout(60)
def test_a_docx_over_the_xml_size_limit_is_refused_unread(ws):
    def spaces(member):
        member.write(f'<w:document xmlns:w="{W}"><w:body>'.encode())
        for _ in range(201):
            member.write(b" " * 1_000_000)
        member.write(b"</w:body></w:document>")

    data = docx_package(None, write_body=spaces)
    assert len(data) < 1_500_000  # 201 MB of XML in a small file
    report = ingest_around(ws, ("spaces.docx", data))
    assert errors(report.problems) == ["spaces.docx: refused: word/document.xml is 201.0 MB uncompressed; "
                                       "the limit is 200 MB"]


class Clock:
    """A clock that moves one second each time it is read: a slow parse, without waiting for it."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        self.now += 1.0
        return self.now


@pytest.mark.timeout(60)
def test_a_docx_that_takes_too_long_is_refused(ws, monkeypatch):
    data, _ = long_docx(1_500_000)
    monkeypatch.setattr(parsing, "time", Clock())
    report = ingest_around(ws, ("slow.docx", data), limits=parsing.Limits(max_docx_seconds=30))
    assert errors(report.problems) == ["slow.docx: refused: reading word/document.xml took over 30 s"]


@pytest.mark.timeout(30)
def test_docx_entities_are_never_resolved(ws, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    doctype = f'<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
    ingest_around(ws, ("xxe.docx", docx_package(paragraph("Before &xxe; after"), doctype)))
    assert corpus.document(ws, "xxe.docx")["text"] == "Before"
    laughs = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    doctype = f'<!DOCTYPE w:document [<!ENTITY lol0 "lol">{laughs}]>'
    report = ingest_around(ws, ("laughs.docx", docx_package(paragraph("Laughs &lol9;"), doctype)))
    assert errors(report.problems) == ["laughs.docx: not a readable .docx (XMLSyntaxError)"]


# --- 2. a file's size is checked before it is read ---------------------------------------------------

@pytest.mark.timeout(60)
def test_a_file_over_the_limit_is_not_read_from_disk(ws, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "first.md").write_bytes(b"# First\n\nRead before.")
    with open(folder / "huge.txt", "wb") as f:
        f.truncate(60_000_001)  # sparse: no disk used
    (folder / "last.md").write_bytes(b"# Last\n\nRead after.")
    tracemalloc.start()
    files = corpus.load_corpus_path(folder)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000
    assert [name for name, _ in files] == ["first.md", "huge.txt", "last.md"]
    assert files[1][1] == b"" and isinstance(files[1][1], corpus.Unread)
    before = snapshot(ws)
    report = corpus.ingest(ws, files)
    assert errors(report.problems) == ["huge.txt: too large (60.0 MB; the limit is 50 MB)"]
    assert report.added == ["first.md", "last.md"]
    assert snapshot(ws, leave_out=["first.md", "last.md"]) == before
    assert corpus.problems(ws)[-1]["file"] == "huge.txt"
    assert corpus.load_corpus_path(folder / "huge.txt")[0][1].problem.message == \
        "too large (60.0 MB; the limit is 50 MB)"


@pytest.mark.timeout(60)
def test_the_cli_reports_a_file_over_the_limit_and_reads_the_rest(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.md").write_bytes(b"# A\n\nAlpha.")
    with open(folder / "b.pdf", "wb") as f:
        f.truncate(60_000_001)
    (folder / "c.md").write_bytes(b"# C\n\nGamma.")
    result = CliRunner().invoke(main, ["ingest", str(folder), "--workspace", "cli"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "rejected   b.pdf: too large (60.0 MB; the limit is 50 MB)" in result.output.splitlines()
    assert "added      a.md" in result.output and "added      c.md" in result.output


@pytest.mark.timeout(60)
def test_bytes_over_the_limit_are_refused_before_hashing(ws, monkeypatch):
    hashed = []
    real = corpus.sha256
    monkeypatch.setattr(corpus, "sha256", lambda data: hashed.append(len(data)) or real(data))
    report = ingest_around(ws, ("big.txt", b"x" * 60_000_000))
    assert errors(report.problems) == ["big.txt: too large (60.0 MB; the limit is 50 MB)"]
    assert max(hashed) < 1000


def test_limits_are_in_mb_of_a_million_bytes():
    limits = parsing.Limits()
    assert (limits.max_file_bytes, limits.max_zip_total_bytes) == (50_000_000, 200_000_000)
    assert parsing.too_large("f.txt", 50_000_000, limits) is None
    assert str(parsing.too_large("f.txt", 52_500_000, limits)) == "f.txt: too large (52.5 MB; the limit is 50 MB)"


# --- 3. JSON nested too deep is that line's problem ----------------------------------------------------

DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.timeout(30)
def test_deep_nesting_is_a_line_problem_in_question_answer_files():
    lines = ['{"question": "One?", "answer": "1"}', DEEP,
             json.dumps({"question": "Three?", "answer": "[" * 1000, "meta": json.loads("[" * 99 + "]" * 99)})]
    parsed = parsing.parse_qa_file("qa.jsonl", "\n".join(lines).encode())
    assert errors(parsed.problems) == ["qa.jsonl, line 2: nested deeper than 100 levels"]
    assert [(p.question, p.line) for p in parsed.pairs] == [("One?", 1), ("Three?", 3)]


@pytest.mark.timeout(30)
def test_deep_nesting_is_a_line_problem_in_document_files():
    lines = ['{"id": "a", "text": "Alpha"}', '{"id": "b", "text": ' + DEEP + "}", '{"id": "c", "text": "Gamma"}']
    parsed = parsing.parse_document_file("docs.jsonl", "\n".join(lines).encode())
    assert errors(parsed.problems) == ["docs.jsonl, line 2: nested deeper than 100 levels"]
    assert [d.doc_id for d in parsed.documents] == ["a", "c"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["documents", "qa"])
def test_deep_nesting_in_the_middle_of_an_upload(ws, kind):
    good = '{"id": "m", "text": "Middle text"}' if kind == "documents" else '{"question": "Middle?", "answer": "m"}'
    report = ingest_around(ws, ("middle.jsonl", f"{good}\n{DEEP}\n".encode()), kind=kind)
    assert errors(report.problems) == ["middle.jsonl, line 2: nested deeper than 100 levels"]
    report = ingest_around(ws, ("only.jsonl", DEEP.encode()), kind=kind)
    assert errors(report.problems)[0] == "only.jsonl, line 1: nested deeper than 100 levels"


def test_deep_nesting_in_training_files_and_exports():
    _, findings = training_data.read_jsonl(DEEP.encode())
    assert [f.message for f in findings] == ["line 1: nested deeper than 100 levels"]
    with pytest.raises(WorkbenchError, match=r"^line 1: nested deeper than 100 levels$"):
        exports.read_back(DEEP.encode(), "openai")


# --- 4. PDF stream bombs, and pypdf's log lines --------------------------------------------------------

def pdf(stream: bytes, filters: str = "", broken_xref: bool = False) -> bytes:
    """A one-page PDF written by hand around a content stream (already encoded with `filters`)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 "
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>",
               b"<< /Length %d %s >>\nstream\n" % (len(stream), filters.encode()) + stream + b"\nendstream"]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out) + (7 if broken_xref else 0)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def zeros_deflated(size: int) -> bytes:
    """`size` zero bytes, deflated a megabyte at a time (never held whole)."""
    packer = zlib.compressobj(9)
    chunk = b"\0" * 1_000_000
    return b"".join(packer.compress(chunk) for _ in range(size // len(chunk))) + packer.flush()


HELLO = b"BT /F1 12 Tf 72 700 Td (Hello from a repaired PDF) Tj ET"


@pytest.mark.timeout(60)
def test_a_pdf_stream_bomb_is_refused(ws):
    bomb = pdf(zeros_deflated(200_000_000), "/Filter /FlateDecode")
    assert len(bomb) < 300_000
    report = ingest_around(ws, ("bomb.pdf", bomb))
    assert errors(report.problems) == ["bomb.pdf: refused as a likely PDF bomb (over a safety limit of the PDF "
                                       "reader: Limit reached while decompressing. 121506 bytes remaining.)"]


@pytest.mark.timeout(60)
def test_a_pdf_nested_too_deep_is_refused(ws):
    report = ingest_around(ws, ("deep.pdf", pdf(b"BT /F1 12 Tf " + b"[" * 5000 + b"]" * 5000 + b" TJ ET")))
    assert errors(report.problems) == ["deep.pdf: not a readable PDF (objects nested too deeply)"]


@pytest.mark.timeout(60)
def test_pypdf_log_lines_never_reach_the_terminal(ws, caplog, capsys):
    level = logging.getLogger("pypdf").level
    with caplog.at_level(logging.DEBUG):
        report = ingest_around(ws, ("repaired.pdf", pdf(HELLO, broken_xref=True)))
        corpus.ingest(ws, [("bomb.pdf", pdf(zeros_deflated(100_000_000), "/Filter /FlateDecode", broken_xref=True))])
    assert "repaired.pdf" in report.added and "Hello from a repaired PDF" in corpus.document(ws, "repaired.pdf")["text"]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pypdf")] == []
    assert capsys.readouterr().err == ""
    assert logging.getLogger("pypdf").level == level


@pytest.mark.timeout(60)
def test_pypdf_stays_quiet_while_sessions_parse_at_once_and_is_restored_after(caplog):
    level = logging.getLogger("pypdf").level
    data = pdf(HELLO, broken_xref=True)
    texts = []

    def session():
        texts.extend(parsing.parse_document_file("repaired.pdf", data).documents[0].text for _ in range(20))

    with caplog.at_level(logging.DEBUG):
        threads = [threading.Thread(target=session) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert texts == ["Hello from a repaired PDF"] * 80
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pypdf")] == []
    assert logging.getLogger("pypdf").level == level


@pytest.mark.timeout(60)
def test_pypdf_log_lines_never_reach_stderr_of_a_program(tmp_path):
    path = tmp_path / "repaired.pdf"
    path.write_bytes(pdf(HELLO, broken_xref=True))
    code = ("import sys; from pathlib import Path; from workbench import parsing; p = Path(sys.argv[1]); "
            "print(parsing.parse_document_file(p.name, p.read_bytes()).documents[0].text)")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=50)
    assert (run.returncode, run.stdout, run.stderr) == (0, "Hello from a repaired PDF\n", "")


# --- 5. the same file ingested by two sessions at once -------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind, name, data", [
    ("documents", "same.md", b"# Same\n\nThe same file, twice at once."),
    ("qa", "same.jsonl", b'{"question": "Same?", "answer": "Twice at once."}\n'),
])
def test_the_same_file_ingested_twice_at_once(ws, monkeypatch, kind, name, data):
    """Both sessions have checked that the file is new before either stores it: one adds it, one is a no-op."""
    barrier = threading.Barrier(2, timeout=5)
    target = "parse_qa_file" if kind == "qa" else "parse_document_file"
    real = getattr(corpus, target)

    def parse_in_step(*args, **kw):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:  # a fix that serialises the sessions never gets both here
            pass
        return real(*args, **kw)

    monkeypatch.setattr(corpus, target, parse_in_step)
    before = snapshot(ws)
    reports, failures = [], []

    def session():
        try:
            reports.append(corpus.ingest(ws, [(name, data)], kind=kind))
        except Exception as exc:  # the test reports any failure of either session
            failures.append(exc)

    threads = [threading.Thread(target=session) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted((r.duplicates, bool(r.added or r.pairs_added)) for r in reports) == [([], True), ([name], False)]
    assert snapshot(ws, leave_out=[name]) == before
    assert [u["name"] for u in corpus.uploads(ws)].count(name) == 1
    assert sum(1 for p in ws.file("uploads").iterdir() if p.name.endswith(name)) == 1
    with sqlite3.connect(ws.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
