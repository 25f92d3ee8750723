"""A workspace's documents and question/answer pairs: ingest uploads (kept verbatim), list, remove.

Uploads are stored as they came, named by content hash, so uploading the same file twice is a no-op;
a file that cannot be read is reported and the rest of the upload is kept.
"""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from . import tokens
from .parsing import Limits, parse_document_file, parse_qa_file, too_large
from .scenario import DataStats
from .shapes import Document, Problem, QAPair
from .text import normalize
from .workspace import Workspace

Kind = Literal["documents", "qa"]


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def detect_language(text: str) -> str:
    import py3langid

    sample = text[:1500]
    if len(re.findall(r"\w+", sample)) < 3:
        return "unknown"
    return py3langid.classify(sample)[0]


@dataclass
class IngestReport:
    files: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)        # same content already uploaded: nothing done
    added: list[str] = field(default_factory=list)             # document ids, or pair ids
    updated: list[str] = field(default_factory=list)
    pairs_added: int = 0
    problems: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for name in self.duplicates:
            out.append(f"unchanged  {name} (already uploaded)")
        for doc in self.added:
            out.append(f"added      {doc}")
        for doc in self.updated:
            out.append(f"updated    {doc}")
        if self.pairs_added:
            out.append(f"pairs      {self.pairs_added} question/answer pairs")
        for p in self.problems:
            out.append(f"{'rejected' if p.level == 'error' else p.level:<10} {p}")
        return out


class Unread(bytes):
    """A file that was not read (too large, or unreadable): no content, and the problem that says why.

    A bytes object, so that callers which hash or join the contents of what they pass on still work."""

    problem: Problem

    def __new__(cls, problem: Problem) -> Unread:
        unread = super().__new__(cls)
        unread.problem = problem
        return unread


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name)[:80] or "upload"


def ingest(ws: Workspace, files: Iterable[tuple[str, bytes]], kind: Kind = "documents",
           text_column: str | None = None, limits: Limits = Limits()) -> IngestReport:
    """Store uploads verbatim and add what they contain; problems are reported per file, never fatal."""
    report = IngestReport()
    for name, data in files:
        report.files.append(name)
        refused = data.problem if isinstance(data, Unread) else too_large(name, len(data), limits)
        if refused:  # before hashing or decoding: a file over the limit is never read
            report.problems.append(refused)
            with ws.db() as db:
                _record_problems(db, name, [refused])
            continue
        _ingest_file(ws, name, data, kind, text_column, limits, report)
    return report


def _ingest_file(ws: Workspace, name: str, data: bytes, kind: Kind, text_column: str | None, limits: Limits,
                 report: IngestReport) -> None:
    """Ingest one file in one transaction; the same content stored meanwhile by another session is a duplicate."""
    digest = sha256(data)
    with ws.db() as db:
        seen = db.execute("SELECT name FROM uploads WHERE sha256 = ? AND kind = ?", (digest, kind)).fetchone()
        if seen:
            report.duplicates.append(name)
            return
        parsed = parse_qa_file(name, data, limits) if kind == "qa" else \
            parse_document_file(name, data, limits, text_column)
        rows = [_document_row(doc, digest) for doc in parsed.documents]  # measured before the write lock is taken
        stored = f"uploads/{digest[:16]}-{_safe_name(name)}"
        if (parsed.documents or parsed.pairs) and not _claim_upload(db, digest, kind, name, len(data), stored):
            report.duplicates.append(name)  # another session stored the same content since the check above
            return
        report.problems += parsed.problems
        if parsed.documents or parsed.pairs:
            ws.write_file(stored, data)
        if kind == "qa" and parsed.pairs:
            stored_pairs, id_problems = _store_pairs(db, name, parsed.pairs)
            report.pairs_added += stored_pairs
            report.problems += id_problems
            parsed.problems += id_problems
        for doc, row in zip(parsed.documents, rows):
            (report.updated if _store_document(db, row) else report.added).append(doc.doc_id)
        _record_problems(db, name, parsed.problems)


def _claim_upload(db: sqlite3.Connection, digest: str, kind: Kind, name: str, size: int, stored: str) -> bool:
    """Record an upload; False if the same content is already recorded (the write lock makes this the arbiter)."""
    return db.execute("INSERT OR IGNORE INTO uploads VALUES (?, ?, ?, ?, ?, ?)",
                      (digest, kind, name, size, stored, time.time())).rowcount == 1


def _record_problems(db: sqlite3.Connection, upload: str, problems: list[Problem]) -> None:
    db.executemany("INSERT INTO problems (upload, file, line, level, message, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                   [(upload, p.file, p.line, p.level, p.message, time.time()) for p in problems])


def _document_row(doc: Document, upload_sha: str) -> tuple[Any, ...]:
    """A document as a row of the documents table, with its token count and language."""
    return (doc.doc_id, doc.source, upload_sha, doc.fmt, doc.title, doc.text, sha256(doc.text), len(doc.text),
            tokens.count(doc.text), detect_language(doc.text), time.time())


def _store_document(db: sqlite3.Connection, row: tuple[Any, ...]) -> bool:
    """Insert or replace a document row; returns True if it replaced one (its chunks go with it)."""
    existed = db.execute("SELECT 1 FROM documents WHERE doc_id = ?", (row[0],)).fetchone() is not None
    if existed:
        db.execute("DELETE FROM documents WHERE doc_id = ?", (row[0],))
    db.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    return existed


def pair_id(source: str, question: str) -> str:
    """A pair's id when its file gives none: its source and a hash of its normalised question, so that
    editing, reordering or inserting rows never moves an id to another question."""
    return f"{source}:{sha256(source + chr(10) + normalize(question))[:12]}"


def _store_pairs(db: sqlite3.Connection, source: str, pairs: list[QAPair]) -> tuple[int, list[Problem]]:
    """Replace the pairs of a source file; an id already used by another file, or twice in this one, is
    reported and that row is not stored (nothing stored is replaced by it)."""
    db.execute("DELETE FROM qa_pairs WHERE source = ?", (source,))  # a new version of a file replaces the old
    taken = dict(db.execute("SELECT id, source FROM qa_pairs").fetchall())
    start = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM qa_pairs").fetchone()[0]
    rows, problems, seen, repeats = [], [], {}, {}
    for p in pairs:
        if p.id:
            pid = p.id
        else:
            base = pair_id(source, p.question)
            repeats[base] = repeats.get(base, 0) + 1
            pid = base if repeats[base] == 1 else f"{base}-{repeats[base]}"
        if pid in taken:
            problems.append(Problem(source, f"id '{pid}' is already used by a pair from {taken[pid]}; this row "
                                            "was not stored (give it another id)", line=p.line or None))
            continue
        if pid in seen:
            problems.append(Problem(source, f"id '{pid}' is used twice in this file (first on line {seen[pid]}); "
                                            "this row was not stored", line=p.line or None))
            continue
        seen[pid] = p.line
        rows.append((pid, start + len(rows), p.question, p.answer, json.dumps(p.doc_grades or p.doc_ids), p.context,
                     p.system,
                     p.group or pid, p.category or ("unanswerable" if not p.answer else ""), source, time.time()))
    db.executemany("INSERT INTO qa_pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows), problems


def replace_pairs(ws: Workspace, source: str, pairs: list[QAPair]) -> tuple[int, list[Problem]]:
    """Make `pairs` the workspace's pairs from `source` (e.g. the accepted synthetic ones), replacing the earlier set."""
    with ws.db() as db:
        return _store_pairs(db, source, pairs)


# --- reading back -----------------------------------------------------------------------------------

def documents(ws: Workspace, with_text: bool = False) -> list[dict[str, Any]]:
    cols = "doc_id, source, fmt, title, chars, tokens, lang, added_at, content_sha256" + (", text" if with_text else "")
    with ws.db() as db:
        rows = db.execute(f"SELECT {cols} FROM documents ORDER BY doc_id").fetchall()
        chunk_counts = dict(db.execute("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id").fetchall())
    return [{**dict(r), "chunks": chunk_counts.get(r["doc_id"], 0)} for r in rows]


def document(ws: Workspace, doc_id: str) -> dict[str, Any] | None:
    with ws.db() as db:
        row = db.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
    return dict(row) if row else None


def remove_document(ws: Workspace, doc_id: str) -> bool:
    """Remove a document and its chunks (the verbatim upload stays, so nothing given is lost)."""
    with ws.db() as db:
        db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        return db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,)).rowcount > 0


def qa_pairs(ws: Workspace) -> list[QAPair]:
    with ws.db() as db:
        rows = db.execute("SELECT * FROM qa_pairs ORDER BY position").fetchall()
    out = []
    for r in rows:
        docs = json.loads(r["doc_ids"])   # a list, or document id -> relevance grade
        grades = docs if isinstance(docs, dict) else {}
        out.append(QAPair(question=r["question"], answer=r["answer"],
                          doc_ids=[d for d, g in grades.items() if g > 0] if grades else docs, context=r["context"],
                          system=r["system"], group=r["group_id"], category=r["category"], id=r["id"],
                          source=r["source"], doc_grades=grades))
    return out


def problems(ws: Workspace) -> list[dict[str, Any]]:
    with ws.db() as db:
        return [dict(r) for r in db.execute("SELECT upload, file, line, level, message FROM problems ORDER BY id")]


def clear_problems(ws: Workspace) -> None:
    with ws.db() as db:
        db.execute("DELETE FROM problems")


def uploads(ws: Workspace) -> list[dict[str, Any]]:
    with ws.db() as db:
        return [dict(r) for r in db.execute("SELECT * FROM uploads ORDER BY added_at")]


def data_stats(ws: Workspace, system_prompt: str = "") -> DataStats | None:
    """Measured figures for the Estimate step: corpus tokens, and size of the Q&A pairs as training examples."""
    docs = documents(ws)
    pairs = [p for p in qa_pairs(ws) if p.answer]
    if not docs and not pairs:
        return None
    per_example = [tokens.count_messages(
        ([{"role": "system", "content": p.system or system_prompt}] if (p.system or system_prompt) else [])
        + [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.answer}]) for p in pairs]
    return DataStats(
        corpus_tokens=sum(d["tokens"] for d in docs) if docs else None,
        training_examples=len(pairs) if pairs else None,
        tokens_per_example=round(statistics.fmean(per_example), 1) if per_example else None,
        output_tokens=round(statistics.fmean(tokens.count(p.answer) for p in pairs)) if pairs else None,
    )


def load_corpus_path(path: Path, limits: Limits = Limits()) -> list[tuple[str, bytes]]:
    """Files to ingest from a path: a file, or every supported file below a folder; a file over the size
    limit is not read (it comes back as an Unread, which `ingest` reports)."""
    from .parsing import DOC_FORMATS

    if path.is_dir():
        return [(str(p.relative_to(path)), _read_upload(p, str(p.relative_to(path)), limits))
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in DOC_FORMATS and not p.name.startswith(".")]
    return [(path.name, _read_upload(path, path.name, limits))]


def _read_upload(path: Path, name: str, limits: Limits) -> bytes:
    """A file's bytes, its size checked before reading; an Unread when it is too large or cannot be read."""
    try:
        size = path.stat().st_size
        if oversize := too_large(name, size, limits):
            return Unread(oversize)
        with path.open("rb") as fh:
            data = fh.read(size + 1)
            if len(data) > size:  # growing, or not a regular file (st_size 0): read on, up to just over the limit
                data += fh.read(limits.max_file_bytes + 1 - len(data))
    except OSError as exc:
        return Unread(Problem(name, f"could not be read ({exc.strerror or type(exc).__name__})"))
    oversize = too_large(name, len(data), limits)
    return Unread(oversize) if oversize else data
