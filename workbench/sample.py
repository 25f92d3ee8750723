"""The bundled sample workspace: documentation of a fictional product and question/answer pairs about it."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable

from . import corpus, jsonl
from .shapes import QAPair
from .text import normalize
from .workspace import DEFAULT_WORKSPACE, Workspace, open_workspace

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"


def sample_files() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(documents, question/answer files) shipped with the package."""
    docs = corpus.load_corpus_path(SAMPLE_DIR / "docs")
    qa = SAMPLE_DIR / "qa.jsonl"
    return docs, ([(qa.name, qa.read_bytes())] if qa.exists() else [])


def ensure_sample(ws: Workspace) -> bool:
    """Load the sample into a workspace that has never had an upload; returns True if it did."""
    if corpus.uploads(ws):
        return False
    docs, qa = sample_files()
    corpus.ingest(ws, docs, kind="documents")
    if qa:
        corpus.ingest(ws, qa, kind="qa")
    return True


def open_sample(home: Path | None = None) -> Workspace:
    """The sample workspace, made from the bundled files if it is missing or has never had an upload."""
    ws = open_workspace(DEFAULT_WORKSPACE, home=home, create=True)
    ensure_sample(ws)
    return ws


@lru_cache(maxsize=1)
def _sample_questions() -> frozenset[str]:
    qa = SAMPLE_DIR / "qa.jsonl"
    if not qa.exists():
        return frozenset()
    return frozenset(normalize(line.value["question"]) for line in jsonl.parse(qa.read_text(encoding="utf-8"))
                     if isinstance(line.value, dict) and isinstance(line.value.get("question"), str))


def sample_question_share(questions: Iterable[QAPair]) -> float:
    """Share of the questions that are the bundled sample's own (its defaults were tuned on them)."""
    questions = list(questions)
    if not questions:
        return 0.0
    known = _sample_questions()
    return sum(normalize(q.question) in known for q in questions) / len(questions)
