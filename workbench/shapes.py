"""The data shapes the modules pass each other: a document, a question/answer pair, a problem with a file."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Document:
    doc_id: str
    title: str
    text: str
    fmt: str
    source: str


@dataclass
class QAPair:
    question: str
    answer: str
    doc_ids: list[str] = field(default_factory=list)
    context: str = ""
    system: str = ""
    group: str = ""
    category: str = ""
    id: str = ""
    source: str = ""
    line: int = 0              # where the pair was read in its source file (0: not from a file)
    doc_grades: dict[str, float] = field(default_factory=dict)   # graded relevance, when the file gives grades


@dataclass
class Problem:
    file: str
    message: str
    line: int | None = None
    level: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line else self.file
        return f"{where}: {self.message}"
