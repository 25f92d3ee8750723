"""Every accepted format, and broken files: each problem names the file and the line, the rest is kept."""
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from workbench.parsing import Limits, parse_document_file, parse_qa_file

SAMPLE = Path(__file__).resolve().parent.parent / "workbench" / "data" / "sample" / "docs"


def errors(parsed):
    return [str(p) for p in parsed.problems if p.level == "error"]


def test_text_markdown_and_encodings():
    md = parse_document_file("guide.md", b"# Setup guide\n\nInstall it.\n")
    assert md.documents[0].title == "Setup guide" and md.documents[0].fmt == "markdown"
    latin = parse_document_file("notes.txt", "Café prices: 12 € for crème brûlée, déjà vu, naïve résumé.".encode("cp1252"))
    assert "Café" in latin.documents[0].text and "crème" in latin.documents[0].text
    assert any("not UTF-8; read as" in str(p) for p in latin.problems)
    utf16 = parse_document_file("u.txt", "Grüße aus Köln".encode("utf-16"))
    assert utf16.documents[0].text == "Grüße aus Köln"


@pytest.mark.parametrize("name, data, message", [
    ("empty.txt", b"   \n", "empty.txt: the file is empty"),
    ("image.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image.txt: binary data, not text"),
    ("tool.exe", b"MZ...", "tool.exe: unsupported file type '.exe'"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", "broken.pdf: not a readable PDF"),
    ("broken.docx", b"PK\x03\x04 not really a docx", "broken.docx: not a readable .docx"),
])
def test_unreadable_files_get_a_clear_message(name, data, message):
    parsed = parse_document_file(name, data)
    assert not parsed.documents
    assert any(e.startswith(message) for e in errors(parsed)), errors(parsed)


def test_too_large_and_huge_lines():
    assert "too large" in errors(parse_document_file("big.txt", b"x" * 100, Limits(max_file_bytes=10)))[0]
    parsed = parse_document_file("long.txt", b"ok\n" + b"y" * 50 + b"\n", Limits(max_line_chars=20))
    assert errors(parsed) == ["long.txt, line 2: a line of over 20 characters; refused"]


def test_html_drops_scripts_and_styles_and_keeps_headings():
    html = (b"<html><head><title>Shortcuts</title><style>body{color:red}</style></head><body>"
            b"<h1>Keyboard</h1><p>Press <b>S</b> to start.</p><script>alert('x')</script>"
            b"<h2>Timer</h2><ul><li>Space pauses</li></ul></body></html>")
    doc = parse_document_file("keys.html", html).documents[0]
    assert doc.title == "Shortcuts"
    assert "alert" not in doc.text and "color:red" not in doc.text
    assert "# Keyboard" in doc.text and "## Timer" in doc.text and "- Space pauses" in doc.text
    assert "Press S to start." in doc.text


def test_pdf_from_the_sample():
    pdf = next(SAMPLE.glob("*.pdf"))
    doc = parse_document_file(pdf.name, pdf.read_bytes()).documents[0]
    assert doc.fmt == "pdf" and len(doc.text) > 500


def test_docx_with_headings():
    import docx

    document = docx.Document()
    document.add_heading("Billing", level=1)
    document.add_paragraph("Invoices are due in 30 days.")
    document.add_heading("Refunds", level=2)
    document.add_paragraph("Refunds take 5 business days.")
    buf = io.BytesIO()
    document.save(buf)
    doc = parse_document_file("billing.docx", buf.getvalue()).documents[0]
    assert doc.title == "Billing"
    assert doc.text == "# Billing\n\nInvoices are due in 30 days.\n\n## Refunds\n\nRefunds take 5 business days."


def _python_docx_markdown(data):
    """What parsing gave for a .docx when it read it through python-docx (too slow for long documents)."""
    import docx

    lines = []
    for para in docx.Document(io.BytesIO(data)).paragraphs:
        style = (para.style.name or "").lower() if para.style is not None else ""
        text = para.text.strip()
        level = re.match(r"heading (\d)", style)
        if text:
            title = "# " + text if style == "title" else text
            lines.append("#" * int(level.group(1)) + " " + text if level else title)
    return "\n\n".join(lines)


def test_docx_reads_as_python_docx_did():
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.enum.text import WD_BREAK
    from docx.oxml import OxmlElement, parse_xml
    from docx.oxml.ns import nsdecls

    document = docx.Document()
    document.add_heading("Handbook", level=0)
    document.add_heading("Billing", level=1)
    para = document.add_paragraph("Tab\there, ")
    para.add_run("bold").bold = True
    run = para.add_run(" line")
    run.add_break()
    run.add_text("two")
    run.add_break(WD_BREAK.PAGE)
    run.add_text("page")
    run._r.append(OxmlElement("w:noBreakHyphen"))
    document.add_paragraph("   ")
    document.add_paragraph("A quote", style="Quote")
    document.add_heading("Deep", level=3)
    document.add_paragraph("An item", style="List Bullet")
    document.add_table(rows=1, cols=2).cell(0, 0).text = "in a table"
    link = document.add_paragraph("See ")
    link._p.append(parse_xml(f'<w:hyperlink {nsdecls("w", "r")} r:id="rId99"><w:r><w:t>the docs</w:t></w:r>'
                             "</w:hyperlink>"))
    link.add_run(" now.")
    document.add_paragraph("Unknown style")._p.style = "NoSuchStyle"
    document.styles.add_style("Heading Custom", WD_STYLE_TYPE.PARAGRAPH)
    document.add_paragraph("Custom", style="Heading Custom")
    buf = io.BytesIO()
    document.save(buf)
    text = parse_document_file("handbook.docx", buf.getvalue()).documents[0].text
    assert text == _python_docx_markdown(buf.getvalue())
    assert text == ("# Handbook\n\n# Billing\n\nTab\there, bold line\ntwopage-\n\nA quote\n\n### Deep\n\nAn item\n\n"
                    "See the docs now.\n\nUnknown style\n\nCustom")


def test_csv_documents_keep_good_rows_and_name_the_bad_ones():
    data = b"id,title,text\nd1,One,First document\nd2,Two\nd3,Three,Third document\n"
    parsed = parse_document_file("docs.csv", data)
    assert [d.doc_id for d in parsed.documents] == ["d1", "d3"]
    assert errors(parsed) == ["docs.csv, line 3: malformed row: expected 3 fields, got 2"]


def test_csv_with_a_chosen_text_column():
    data = b"name,body\nA,Alpha body\nB,Beta body\n"
    parsed = parse_document_file("x.csv", data, text_column="body")
    assert [d.text for d in parsed.documents] == ["Alpha body", "Beta body"]
    assert [d.doc_id for d in parsed.documents] == ["x.csv#2", "x.csv#3"]


def test_jsonl_corpus_with_a_malformed_line():
    lines = [json.dumps({"id": "a", "title": "A", "text": "Alpha text"}), "{not json",
             json.dumps({"id": "b", "title": "B", "text": "Beta text"}), json.dumps([1, 2])]
    parsed = parse_document_file("corpus.jsonl", "\n".join(lines).encode())
    assert [(d.doc_id, d.title) for d in parsed.documents] == [("a", "A"), ("b", "B")]
    assert errors(parsed)[0].startswith("corpus.jsonl, line 2: malformed JSON")
    assert errors(parsed)[1] == "corpus.jsonl, line 4: expected a JSON object, got list"


def _zip(entries, compression=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_reads_what_it_can_and_refuses_unsafe_paths():
    data = _zip([("docs/a.md", "# A\n\nAlpha"), ("b.txt", "Beta"), ("../evil.txt", "x"), ("/etc/passwd.txt", "x"),
                 ("inner.zip", _zip([("c.txt", "C")])), ("photo.png", b"\x89PNG")])
    parsed = parse_document_file("bundle.zip", data)
    assert sorted(d.doc_id for d in parsed.documents) == ["b.txt", "docs/a.md"]
    assert all(d.source == "bundle.zip" for d in parsed.documents)
    messages = errors(parsed)
    assert "bundle.zip/../evil.txt: unsafe path in the zip (absolute or with '..'); skipped" in messages
    assert "bundle.zip//etc/passwd.txt: unsafe path in the zip (absolute or with '..'); skipped" in messages
    assert "bundle.zip/inner.zip: a zip inside a zip is not opened" in messages
    assert any(m.startswith("bundle.zip/photo.png: unsupported file type") for m in messages)


def test_zip_bomb_is_refused():
    bomb = _zip([("zeros.txt", b"0" * 5_000_000)])
    assert len(bomb) < 50_000
    parsed = parse_document_file("bomb.zip", bomb)
    assert not parsed.documents
    assert "refused as a likely zip bomb" in errors(parsed)[0]
    assert "refused as a likely zip bomb" in errors(parse_document_file(
        "big.zip", _zip([("a.txt", b"x" * 2000)], zipfile.ZIP_STORED), Limits(max_zip_total_bytes=1000)))[0]


def test_qa_csv_jsonl_and_chat_formats():
    csv_data = b"question,answer,doc_id\nHow long?,30 days,invoicing.md\nWho?,,\nBroken,\n"
    parsed = parse_qa_file("qa.csv", csv_data)
    assert [(p.question, p.answer, p.doc_ids) for p in parsed.pairs] == [
        ("How long?", "30 days", ["invoicing.md"]), ("Who?", "", [])]
    assert errors(parsed) == ["qa.csv, line 4: malformed row: expected 3 fields, got 2"]
    jl = "\n".join([json.dumps({"question": "Q1", "answer": "A1", "doc_ids": ["d"]}),
                    json.dumps({"question": "Q2"}),
                    json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "Q3"},
                                             {"role": "assistant", "content": "A3"}]}),
                    json.dumps({"messages": [{"role": "user", "content": "Q4"}]})]).encode()
    parsed = parse_qa_file("train.jsonl", jl)
    assert [(p.question, p.answer, p.system) for p in parsed.pairs] == [("Q1", "A1", ""), ("Q3", "A3", "Be brief.")]
    assert errors(parsed) == [
        "train.jsonl, line 2: missing 'answer' (use an empty answer for questions the documents cannot answer)",
        "train.jsonl, line 4: a chat example needs a user and an assistant message"]
    assert "unsupported file type" in errors(parse_qa_file("qa.txt", b"x"))[0]


def test_the_bundled_sample_parses_cleanly():
    files = sorted(SAMPLE.iterdir())
    assert len(files) >= 25
    formats = {f.suffix for f in files}
    assert {".md", ".html", ".pdf", ".txt"} <= formats
    for f in files:
        parsed = parse_document_file(f.name, f.read_bytes())
        assert len(parsed.documents) == 1 and not errors(parsed), f.name
    qa = SAMPLE.parent / "qa.jsonl"
    pairs = parse_qa_file(qa.name, qa.read_bytes()).pairs
    assert len(pairs) >= 150
    assert sum(1 for p in pairs if not p.answer) >= 15
    names = {f.name for f in files}
    assert all(set(p.doc_ids) <= names for p in pairs)


def test_the_shared_shapes_live_in_shapes_and_are_still_importable_from_parsing():
    from workbench import parsing, shapes

    assert parsing.QAPair is shapes.QAPair and parsing.Document is shapes.Document
    assert parsing.Problem is shapes.Problem
