"""Cut documents into chunks: fixed token windows, sentence/paragraph packing, or heading sections.

Each chunk keeps its document id, title, position, heading path and character span, so the inspector
can show exactly where a document was cut. Token budgets count o200k_base tokens (the chat models'
tokenizer); the sentence splitter is a small regex written here, which is enough for documentation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, model_validator

from . import tokens
from .config import Strict

Strategy = Literal["fixed", "sentences", "headings"]
STRATEGY_LABELS = {"fixed": "Fixed token windows with overlap", "sentences": "Sentence / paragraph packing",
                   "headings": "Heading sections (Markdown / HTML)"}


class ChunkSettings(Strict):
    strategy: Strategy = "headings"
    max_tokens: Annotated[int, Field(ge=4, le=8192)] = 200
    overlap_tokens: Annotated[int, Field(ge=0, le=4096)] = 30

    @model_validator(mode="after")
    def _overlap(self) -> ChunkSettings:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be smaller than max_tokens ({self.max_tokens})")
        return self


def describe(settings: ChunkSettings) -> str:
    """Chunk settings in words, for a status line: the strategy, the size limit and the overlap."""
    return (f"{STRATEGY_LABELS[settings.strategy]}, at most {settings.max_tokens} tokens, "
            f"overlap {settings.overlap_tokens}")


@dataclass
class Chunk:
    doc_id: str
    position: int
    title: str
    heading_path: str
    text: str
    tokens: int
    start: int
    end: int


_ABBREVIATION = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|Prof|St|vs|etc|e\.g|i\.e|Inc|Ltd|No|Fig|approx)\.$", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


def _enc():
    return tokens.get_encoding("o200k_base")


def count(text: str) -> int:
    return len(_enc().encode_ordinary(text))


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character spans of sentences (and of lines such as list items and headings) in text[start:end]."""
    end = len(text) if end is None else end
    spans = []
    for para in re.finditer(r"[^\n]+(?:\n(?!\s*\n)(?!\s*[-*#]|\s*\d+[.)]\s)[^\n]+)*", text[start:end]):
        p_start = start + para.start()
        pos = 0
        body = para.group()
        for m in _SENTENCE_END.finditer(body):
            if _ABBREVIATION.search(body[pos:m.start()]):
                continue  # "Mr. Smith" is one sentence
            spans.append((p_start + pos, p_start + m.start()))
            pos = m.end()
        spans.append((p_start + pos, p_start + len(body.rstrip())))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _windows(text: str, start: int, end: int, max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Spans of fixed token windows over text[start:end], overlapping by `overlap` tokens."""
    enc = _enc()
    ids = enc.encode_ordinary(text[start:end])
    if not ids:
        return []
    _, offsets = enc.decode_with_offsets(ids)
    step = max_tokens - overlap
    spans = []
    for i in range(0, len(ids), step):
        a = start + offsets[i]
        j = i + max_tokens
        b = start + offsets[j] if j < len(ids) else end
        spans.append((a, b))
        if j >= len(ids):
            break
    return spans


def _pack(text: str, start: int, end: int, settings: ChunkSettings) -> list[tuple[int, int]]:
    """Pack whole sentences into spans of at most max_tokens; the next span restarts at trailing sentences
    worth up to overlap_tokens. A sentence longer than max_tokens is cut into token windows."""
    sents = [(a, b, count(text[a:b])) for a, b in sentence_spans(text, start, end)]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(sents):
        if sents[i][2] > settings.max_tokens:
            spans += _windows(text, sents[i][0], sents[i][1], settings.max_tokens, settings.overlap_tokens)
            i += 1
            continue
        j = i + 1
        while j < len(sents) and count(text[sents[i][0]:sents[j][1]]) <= settings.max_tokens:
            j += 1
        spans.append((sents[i][0], sents[j - 1][1]))
        if j >= len(sents):
            break
        k, back = j, 0
        while k - 1 > i and back + sents[k - 1][2] <= settings.overlap_tokens:
            k -= 1
            back += sents[k][2]
        i = k
    return spans


def _sections(text: str) -> list[tuple[int, int, str]]:
    """(start, end, heading path) of each heading section; text before the first heading is its own section."""
    marks = list(_HEADING.finditer(text))
    out = []
    if not marks or marks[0].start() > 0:
        first_end = marks[0].start() if marks else len(text)
        if text[:first_end].strip():
            out.append((0, first_end, ""))
    path: list[tuple[int, str]] = []
    for i, m in enumerate(marks):
        level, name = len(m.group(1)), m.group(2).strip()
        path = [(lvl, n) for lvl, n in path if lvl < level] + [(level, name)]
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.append((m.start(), end, " > ".join(n for _, n in path)))
    return out


def chunk_document(doc_id: str, title: str, text: str, settings: ChunkSettings = ChunkSettings()) -> list[Chunk]:
    """Chunks of one document under the given settings."""
    if settings.strategy == "fixed":
        pieces = [(a, b, "") for a, b in _windows(text, 0, len(text), settings.max_tokens, settings.overlap_tokens)]
    elif settings.strategy == "sentences":
        pieces = [(a, b, "") for a, b in _pack(text, 0, len(text), settings)]
    else:
        pieces = []
        for s_start, s_end, path in _sections(text):
            body = text[s_start:s_end]
            if count(body) <= settings.max_tokens:
                pieces.append((s_start, s_start + len(body.rstrip()), path))
            else:
                pieces += [(a, b, path) for a, b in _pack(text, s_start, s_end, settings)]
    chunks = []
    for a, b, path in pieces:
        piece = text[a:b].strip()
        if not piece:
            continue
        lead = len(text[a:b]) - len(text[a:b].lstrip())
        chunks.append(Chunk(doc_id, len(chunks), title, path, piece, count(piece), a + lead, a + lead + len(piece)))
    return chunks


def size_stats(chunks: list[Chunk]) -> dict[str, float]:
    sizes = sorted(c.tokens for c in chunks)
    if not sizes:
        return {"chunks": 0}
    return {"chunks": len(sizes), "min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1],
            "mean": round(sum(sizes) / len(sizes), 1)}
