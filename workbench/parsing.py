"""Read uploaded files into documents and question/answer pairs, with a clear problem for what cannot be read.

Pure functions over bytes: nothing here touches a workspace. Every problem names the file and, where
there is one, the line or row; whatever could be read is kept.
"""
from __future__ import annotations

import csv
import io
import logging
import posixpath
import re
import threading
import time
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any, Iterable, Iterator

from . import jsonl
from .shapes import Document, Problem, QAPair  # what parsing builds; other modules import them from here too

DOC_FORMATS = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".jsonl", ".zip")
QA_FORMATS = (".csv", ".jsonl")


@dataclass(frozen=True)
class Limits:
    """Bounds on what an upload may cost; sizes in bytes, stated to users in MB of 1,000,000 bytes."""

    max_file_bytes: int = 50_000_000
    max_zip_total_bytes: int = 200_000_000
    max_zip_entries: int = 5000
    max_zip_ratio: float = 100.0          # uncompressed / compressed, beyond which a zip is treated as a bomb
    max_line_chars: int = 1_000_000
    max_docx_xml_bytes: int = 200_000_000  # uncompressed size of one XML part of a .docx (its text, its styles)
    max_docx_seconds: float = 60.0         # time to read a .docx's text


@dataclass
class Parsed:
    documents: list[Document] = field(default_factory=list)
    pairs: list[QAPair] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def extend(self, other: Parsed) -> None:
        self.documents += other.documents
        self.pairs += other.pairs
        self.problems += other.problems


# --- text decoding ----------------------------------------------------------------------------------

def decode_text(data: bytes, name: str) -> tuple[str | None, Problem | None]:
    """Bytes to text: BOMs and UTF-8 first, then a detected encoding; binary data is refused."""
    if not data.strip():
        return None, Problem(name, "the file is empty")
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(enc), None
            except UnicodeDecodeError:
                break
    sample = data[:65536]
    if sample.count(b"\x00") > len(sample) // 100 or _mostly_control(sample):
        return None, Problem(name, "binary data, not text (or an encoding that cannot be recognised)")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None, Problem(name, "could not recognise the text encoding")
    # Short Western text often fits several code pages equally well; prefer the common Windows-1252 on a tie.
    tied = [m for m in matches if m.chaos <= best.chaos and m.encoding == "cp1252"]
    chosen = tied[0] if tied else best
    return str(chosen), Problem(name, f"not UTF-8; read as {chosen.encoding}", level="info")


def _mostly_control(sample: bytes) -> bool:
    control = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return control > len(sample) * 0.05


# --- HTML to text -----------------------------------------------------------------------------------

class _HtmlText(HTMLParser):
    """Visible text of an HTML page; scripts and styles dropped, headings kept as Markdown headings."""

    SKIP = {"script", "style", "noscript", "template", "head", "svg"}
    BLOCK = {"p", "div", "section", "article", "br", "tr", "table", "ul", "ol", "li", "pre", "blockquote",
             "header", "footer", "main", "nav", "dd", "dt", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.title = ""
        self.in_title = False
        self.heading: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in self.SKIP:
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = int(tag[1])
            self.parts.append("\n\n" + "#" * self.heading + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = None
            self.parts.append("\n\n")
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        if self.skip:
            return
        self.parts.append(data.replace("\n", " ") if self.heading else data)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML page."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    text = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    text = re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", text)
    text = "\n".join(line.strip() for line in text.splitlines()).strip()
    return parser.title.strip(), text


def _md_title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


# --- documents --------------------------------------------------------------------------------------

def _stem(name: str) -> str:
    return PurePosixPath(name).stem


def too_large(name: str, size: int, limits: Limits) -> Problem | None:
    """The problem with a file of `size` bytes, if it is over the size limit."""
    if size <= limits.max_file_bytes:
        return None
    return Problem(name, f"too large ({size / 1e6:.1f} MB; the limit is {limits.max_file_bytes / 1e6:g} MB)")


def _refuse(name: str, data: bytes, formats: tuple[str, ...], what: str, limits: Limits) -> Problem | None:
    """The problem that stops a file before parsing: wrong type, too large, or empty."""
    suffix = PurePosixPath(name.lower()).suffix
    if suffix not in formats:
        return Problem(name, f"unsupported file type{what} '{suffix or '(none)'}'; accepted: {', '.join(formats)}")
    if oversize := too_large(name, len(data), limits):
        return oversize
    if not data.strip():
        return Problem(name, "the file is empty")
    return None


def parse_document_file(name: str, data: bytes, limits: Limits = Limits(), text_column: str | None = None,
                        _depth: int = 0) -> Parsed:
    """Documents in one uploaded file (a .csv or .jsonl holds one per row; a .zip holds files)."""
    out = Parsed()
    refused = _refuse(name, data, DOC_FORMATS, "", limits)
    if refused:
        out.problems.append(refused)
        return out
    suffix = PurePosixPath(name.lower()).suffix
    if suffix == ".zip":
        if _depth:
            out.problems.append(Problem(name, "a zip inside a zip is not opened"))
            return out
        return _parse_zip(name, data, limits, text_column)
    if suffix == ".pdf":
        return _parse_pdf(name, data)
    if suffix == ".docx":
        return _parse_docx(name, data, limits)
    text, problem = decode_text(data, name)
    if problem:
        out.problems.append(problem)
    if text is None:
        return out
    long_line = next((i for i, line in jsonl.lines(text) if len(line) > limits.max_line_chars), None)
    if long_line:
        out.problems.append(Problem(name, f"a line of over {limits.max_line_chars:,} characters; refused",
                                    line=long_line))
        return out
    if suffix in (".html", ".htm"):
        title, body = html_to_text(text)
        if not body:
            out.problems.append(Problem(name, "no visible text in the page"))
            return out
        out.documents.append(Document(name, title or _md_title(body, _stem(name)), body, "html", name))
    elif suffix in (".md", ".markdown"):
        out.documents.append(Document(name, _md_title(text, _stem(name)), text.strip(), "markdown", name))
    elif suffix == ".txt":
        first = text.strip().splitlines()[0].strip() if text.strip() else _stem(name)
        out.documents.append(Document(name, first[:120] or _stem(name), text.strip(), "text", name))
    elif suffix == ".csv":
        out.extend(_rows_to_documents(name, _csv_rows(name, text, out.problems), text_column, "csv"))
    elif suffix == ".jsonl":
        out.extend(_rows_to_documents(name, _jsonl_rows(name, text, out.problems), text_column, "jsonl"))
    return out


class _QuietLogger:
    """A logger silenced while any thread is inside `quiet()`.

    The first thread in raises its level and the last one out restores it, so parses running at once
    neither leak its messages nor leave it silenced for the rest of the program."""

    def __init__(self, name: str) -> None:
        self.name, self.lock, self.inside, self.saved = name, threading.Lock(), 0, logging.NOTSET

    @contextmanager
    def quiet(self) -> Iterator[None]:
        logger = logging.getLogger(self.name)
        with self.lock:
            if not self.inside:
                self.saved = logger.level
                logger.setLevel(logging.CRITICAL)
            self.inside += 1
        try:
            yield
        finally:
            with self.lock:
                self.inside -= 1
                if not self.inside:
                    logger.setLevel(self.saved)


_PYPDF_LOG = _QuietLogger("pypdf")  # pypdf logs what it repaired; a PDF it cannot read raises, and that is reported


def _parse_pdf(name: str, data: bytes) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PyPdfError

    out = Parsed()
    try:
        with _PYPDF_LOG.quiet():
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                out.problems.append(Problem(name, "the PDF is encrypted; export it without a password"))
                return out
            pages = [(page.extract_text() or "") for page in reader.pages]
            title = (reader.metadata.title if reader.metadata and reader.metadata.title else "") or ""
    except LimitReachedError as exc:
        out.problems.append(Problem(name, f"refused as a likely PDF bomb (over a safety limit of the PDF reader: "
                                          f"{str(exc)[:120]})"))
        return out
    except RecursionError:
        out.problems.append(Problem(name, "not a readable PDF (objects nested too deeply)"))
        return out
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError, IndexError, zlib.error) as exc:
        out.problems.append(Problem(name, f"not a readable PDF ({type(exc).__name__}: {str(exc)[:120]})"))
        return out
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        out.problems.append(Problem(name, "the PDF has no extractable text (scanned images need OCR first)"))
        return out
    first_line = text.splitlines()[0].strip()
    out.documents.append(Document(name, title.strip() or first_line[:120] or _stem(name), text, "pdf", name))
    return out


# --- .docx, read as a stream (python-docx searches every style for each paragraph: slow on long files) ---

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_RUN_TEXT = {_W + "tab": "\t", _W + "ptab": "\t", _W + "cr": "\n", _W + "noBreakHyphen": "-"}


class _DocxRefused(Exception):
    """A .docx part over a bound (size or time); the message says which."""


class _Bounded:
    """A zip member as a parser reads it: past the XML size limit or the deadline, reading raises _DocxRefused."""

    def __init__(self, stream: Any, member: str, limits: Limits, deadline: float) -> None:
        self.stream, self.member, self.limits, self.deadline, self.read_bytes = stream, member, limits, deadline, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size if size and size > 0 else 65536)
        self.read_bytes += len(chunk)
        if self.read_bytes > self.limits.max_docx_xml_bytes:
            raise _DocxRefused(f"{self.member} is over {self.limits.max_docx_xml_bytes / 1e6:g} MB uncompressed")
        if time.monotonic() > self.deadline:
            raise _DocxRefused(f"reading {self.member} took over {self.limits.max_docx_seconds:g} s")
        return chunk


def _xml_elements(archive: zipfile.ZipFile, member: str, tag: str | tuple[str, ...], limits: Limits,
                  deadline: float) -> Iterator[Any]:
    """Elements of a zip member as each one ends, streamed: no entities, no DTD, no network, bounded."""
    from lxml import etree

    info = archive.getinfo(member)
    if info.file_size > limits.max_docx_xml_bytes:
        raise _DocxRefused(f"{member} is {info.file_size / 1e6:.1f} MB uncompressed; the limit is "
                           f"{limits.max_docx_xml_bytes / 1e6:g} MB")
    with archive.open(info) as stream:
        source = _Bounded(stream, member, limits, deadline)
        yield from (element for _, element in etree.iterparse(
            source, events=("end",), tag=tag, resolve_entities=False, no_network=True, load_dtd=False))


def _docx_target(archive: zipfile.ZipFile, rels: str, kind: str, default: str, limits: Limits,
                 deadline: float) -> str:
    """The part a relationship of `kind` (officeDocument, styles) points to, from a .rels part, or `default`."""
    if rels not in archive.namelist():
        return default
    for rel in _xml_elements(archive, rels, _REL, limits, deadline):
        target = rel.get("Target") or ""
        if rel.get("Type", "").endswith("/" + kind) and target and rel.get("TargetMode") != "External":
            base = posixpath.dirname(posixpath.dirname(rels))
            return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(base, target))
    return default


def _docx_styles(archive: zipfile.ZipFile, member: str, limits: Limits, deadline: float) -> dict[str | None, str]:
    """Paragraph style id -> lower-case style name; the default paragraph style under the key None."""
    names: dict[str | None, str] = {}
    if member not in archive.namelist():
        return names
    for style in _xml_elements(archive, member, _W + "style", limits, deadline):
        if style.get(_W + "type") == "paragraph":
            name = style.find(_W + "name")
            name = (name.get(_W + "val") or "").lower() if name is not None else ""
            names.setdefault(style.get(_W + "styleId"), name)  # the first of an id, and the last default, count
            if style.get(_W + "default") in ("1", "true", "on"):
                names[None] = name
        style.clear()
    return names


def _run_text(run: Any) -> str:
    """Text of a w:r, as python-docx gives it: tabs, line breaks and non-breaking hyphens as characters."""
    parts = []
    for child in run:
        if child.tag == _W + "t":
            parts.append(child.text or "")
        elif child.tag == _W + "br":
            parts.append("\n" if child.get(_W + "type", "textWrapping") == "textWrapping" else "")
        else:
            parts.append(_RUN_TEXT.get(child.tag, ""))
    return "".join(parts)


def _paragraph_text(paragraph: Any) -> str:
    """Text of a w:p: its runs and the runs of its hyperlinks, in order."""
    runs = []
    for child in paragraph:
        if child.tag == _W + "r":
            runs.append(child)
        elif child.tag == _W + "hyperlink":
            runs += child.iterchildren(_W + "r")
    return "".join(_run_text(run) for run in runs)


def _paragraph_line(paragraph: Any, styles: dict[str | None, str]) -> str:
    """A body paragraph as a line of Markdown: "Heading N" styles as N #'s, the "Title" style as one."""
    text = _paragraph_text(paragraph).strip()
    style_ref = paragraph.find(f"{_W}pPr/{_W}pStyle")
    style_id = style_ref.get(_W + "val") if style_ref is not None else None
    style = styles.get(style_id, styles.get(None, ""))
    level = re.match(r"heading (\d)", style)
    if text and level:
        return "#" * int(level.group(1)) + " " + text
    return "# " + text if text and style == "title" else text


def _docx_lines(data: bytes, limits: Limits) -> list[str]:
    """The body paragraphs of a .docx as Markdown lines (tables and text boxes are not read, as before)."""
    deadline = time.monotonic() + limits.max_docx_seconds
    archive = zipfile.ZipFile(io.BytesIO(data))
    document = _docx_target(archive, "_rels/.rels", "officeDocument", "word/document.xml", limits, deadline)
    rels = posixpath.join(posixpath.dirname(document), "_rels", posixpath.basename(document) + ".rels")
    styles = _docx_styles(archive, _docx_target(archive, rels, "styles", "word/styles.xml", limits, deadline),
                          limits, deadline)
    lines = []
    for paragraph in _xml_elements(archive, document, (_W + "p", _W + "tr"), limits, deadline):
        parent = paragraph.getparent()
        if paragraph.tag == _W + "p" and parent is not None and parent.tag == _W + "body":
            lines.append(_paragraph_line(paragraph, styles))
        paragraph.clear()  # what has been read is dropped, so memory stays flat however long the document
        while paragraph.getprevious() is not None:
            del parent[0]
    return [line for line in lines if line]


def _parse_docx(name: str, data: bytes, limits: Limits) -> Parsed:
    from lxml.etree import LxmlError

    out = Parsed()
    try:
        lines = _docx_lines(data, limits)
    except _DocxRefused as exc:
        out.problems.append(Problem(name, f"refused: {exc}"))
        return out
    except (zipfile.BadZipFile, zlib.error, LxmlError, KeyError, ValueError, OSError, EOFError, RuntimeError,
            NotImplementedError) as exc:
        out.problems.append(Problem(name, f"not a readable .docx ({type(exc).__name__})"))
        return out
    body = "\n\n".join(lines)
    if not body:
        out.problems.append(Problem(name, "the document has no text"))
        return out
    out.documents.append(Document(name, _md_title(body, _stem(name)), body, "docx", name))
    return out


def _parse_zip(name: str, data: bytes, limits: Limits, text_column: str | None) -> Parsed:
    out = Parsed()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except zipfile.BadZipFile:
        out.problems.append(Problem(name, "not a readable zip file"))
        return out
    if len(infos) > limits.max_zip_entries:
        out.problems.append(Problem(name, f"{len(infos)} entries; the limit is {limits.max_zip_entries}"))
        return out
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if total > limits.max_zip_total_bytes or total / packed > limits.max_zip_ratio:
        out.problems.append(Problem(name, f"refused as a likely zip bomb: {total / 1e6:.1f} MB uncompressed from "
                                          f"{packed / 1e6:.2f} MB (limits {limits.max_zip_total_bytes / 1e6:.0f} MB, "
                                          f"ratio {limits.max_zip_ratio:.0f})"))
        return out
    for info in infos:
        entry = info.filename
        inner = f"{name}/{entry}"
        parts = PurePosixPath(entry.replace("\\", "/")).parts
        if entry.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", entry) or ".." in parts:
            out.problems.append(Problem(inner, "unsafe path in the zip (absolute or with '..'); skipped"))
            continue
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            out.problems.append(Problem(inner, "symbolic link in the zip; skipped"))
            continue
        if parts and (parts[0] == "__MACOSX" or parts[-1].startswith(".")):
            continue
        try:
            content = archive.read(info)
        except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as exc:
            out.problems.append(Problem(inner, f"could not be extracted ({type(exc).__name__})"))
            continue
        sub = parse_document_file(entry, content, limits, text_column, _depth=1)
        for doc in sub.documents:
            doc.source = name
        for problem in sub.problems:
            problem.file = f"{name}/{problem.file}"
        out.extend(sub)
    return out


def _csv_rows(name: str, text: str, problems: list[Problem]) -> Iterable[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        problems.append(Problem(name, f"no header row ({exc})" if str(exc) else "no header row", line=1))
        return []
    header = [h.strip() for h in header]
    rows = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(name, f"malformed row: {exc}", line=reader.line_num))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(Problem(name, f"malformed row: expected {len(header)} fields, got {len(row)}",
                                    line=reader.line_num))
            continue
        rows.append((reader.line_num, dict(zip(header, row))))
    return rows


def _jsonl_rows(name: str, text: str, problems: list[Problem]) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line in jsonl.parse(text):
        if line.error:
            problems.append(Problem(name, line.error, line=line.number))
        elif not isinstance(line.value, dict):
            problems.append(Problem(name, f"expected a JSON object, got {type(line.value).__name__}",
                                    line=line.number))
        else:
            rows.append((line.number, line.value))
    return rows


def _rows_to_documents(name: str, rows: Iterable[tuple[int, dict[str, Any]]], text_column: str | None,
                       fmt: str) -> Parsed:
    out = Parsed()
    rows = list(rows)
    if not rows:
        if not out.problems:
            out.problems.append(Problem(name, "no rows"))
        return out
    columns = list(rows[0][1])
    column = text_column or ("text" if "text" in columns else None)
    if column is None:
        lengths = {c: sum(len(str(r.get(c) or "")) for _, r in rows) for c in columns}
        column = max(lengths, key=lengths.get)
        out.problems.append(Problem(name, f"no 'text' column; used '{column}' (the longest)", level="info"))
    seen: set[str] = set()
    for line_no, row in rows:
        text = row.get(column)
        if not isinstance(text, str) or not text.strip():
            out.problems.append(Problem(name, f"row has no text in column '{column}'", line=line_no))
            continue
        doc_id = str(row.get("id") or f"{name}#{line_no}")
        if doc_id in seen:
            out.problems.append(Problem(name, f"duplicate id '{doc_id}'; row skipped", line=line_no))
            continue
        seen.add(doc_id)
        title = str(row.get("title") or text.strip().splitlines()[0][:120])
        out.documents.append(Document(doc_id, title, text.strip(), fmt, name))
    return out


# --- question / answer pairs ------------------------------------------------------------------------

def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value if str(v).strip()]
    return [v.strip() for v in re.split(r"[;|]", str(value)) if v.strip()]


def _pair_from_chat(name: str, line_no: int, row: dict[str, Any], problems: list[Problem]) -> QAPair | None:
    messages = row.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        problems.append(Problem(name, "'messages' must be a list of objects", line=line_no))
        return None
    by_role: dict[str, list[str]] = {}
    for m in messages:
        if isinstance(m.get("content"), str):
            by_role.setdefault(str(m.get("role")), []).append(m["content"])
    if not by_role.get("user") or not by_role.get("assistant"):
        problems.append(Problem(name, "a chat example needs a user and an assistant message", line=line_no))
        return None
    return QAPair(question=by_role["user"][-1], answer=by_role["assistant"][-1],
                  system=(by_role.get("system") or [""])[0], id=str(row.get("id") or ""), source=name, line=line_no)


def parse_qa_file(name: str, data: bytes, limits: Limits = Limits()) -> Parsed:
    """Question/answer pairs from .csv (question, answer, optional doc_id(s)/context/system) or .jsonl
    (question/answer objects, or OpenAI chat examples)."""
    out = Parsed()
    refused = _refuse(name, data, QA_FORMATS, " for question/answer pairs", limits)
    if refused:
        out.problems.append(refused)
        return out
    suffix = PurePosixPath(name.lower()).suffix
    text, problem = decode_text(data, name)
    if problem:
        out.problems.append(problem)
    if text is None:
        return out
    rows = _csv_rows(name, text, out.problems) if suffix == ".csv" else _jsonl_rows(name, text, out.problems)
    for line_no, row in rows:
        if "messages" in row:
            pair = _pair_from_chat(name, line_no, row, out.problems)
        else:
            question, answer = row.get("question"), row.get("answer")
            if not isinstance(question, str) or not question.strip():
                out.problems.append(Problem(name, "missing 'question'", line=line_no))
                continue
            if answer is None or not isinstance(answer, str):
                out.problems.append(Problem(name, "missing 'answer' (use an empty answer for questions the "
                                                  "documents cannot answer)", line=line_no))
                continue
            docs = row.get("doc_ids", row.get("doc_id"))
            grades: dict[str, float] = {}
            if isinstance(docs, dict):
                if not all(isinstance(g, (int, float)) and not isinstance(g, bool) and g >= 0 for g in docs.values()):
                    out.problems.append(Problem(name, "'doc_ids' as an object maps document ids to relevance grades "
                                                      "(numbers of 0 or more)", line=line_no))
                    continue
                grades = {str(d): float(g) for d, g in docs.items()}
                docs = [d for d, g in grades.items() if g > 0]
            pair = QAPair(question=question.strip(), answer=answer.strip(), doc_ids=_as_list(docs), doc_grades=grades,
                          context=str(row.get("context") or ""), system=str(row.get("system") or ""),
                          group=str(row.get("group") or ""), category=str(row.get("category") or ""),
                          id=str(row.get("id") or ""), source=name, line=line_no)
        if pair is not None:
            out.pairs.append(pair)
    if not out.pairs and not any(p.level == "error" for p in out.problems):
        out.problems.append(Problem(name, "no question/answer pairs found"))
    return out
