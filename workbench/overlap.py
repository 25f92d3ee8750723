"""What a trained model saw, and whether evaluation questions overlap it.

Every trained model keeps a record of the pairs it was trained on and early-stopped (or tuned) on, with
a fingerprint of their content. Before a model is scored, the evaluation questions are checked against
that record: the same id or the same normalised question (exact), and near-identical wording or the
same paraphrase group of the same file (near-duplicate, the guard the split uses), so a model is never
scored on what it learned from without that being said.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .shapes import QAPair
from .text import normalize
from .training_data import near_duplicate_pairs_between


@dataclass
class SeenPair:
    id: str
    question: str
    group: str = ""
    source: str = ""


@dataclass
class TrainingRecord:
    """The pairs a model was trained on (train) and early-stopped or tuned on (dev)."""

    train_ids: list[str]
    dev_ids: list[str]
    pairs: list[SeenPair]
    fingerprint: str
    note: str = ""

    @classmethod
    def of(cls, train: list[QAPair], dev: list[QAPair], note: str = "") -> TrainingRecord:
        return cls([p.id for p in train], [p.id for p in dev],
                   [SeenPair(p.id, p.question, p.group, p.source) for p in train + dev], fingerprint(train, dev), note)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainingRecord | None:
        if not data or "pairs" not in data:
            return None
        return cls(data["train_ids"], data["dev_ids"], [SeenPair(**p) for p in data["pairs"]], data["fingerprint"],
                   data.get("note", ""))


def fingerprint(train: list[QAPair], dev: list[QAPair]) -> str:
    """sha256 of exactly what was seen on each side: ids, normalised questions and answers, in id order."""
    rows = sorted([side, p.id, normalize(p.question), normalize(p.answer)]
                  for side, pairs in (("train", train), ("dev", dev)) for p in pairs)
    return hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()


@dataclass
class Overlap:
    model: str
    questions: int                                    # evaluation questions checked
    exact: list[str] = field(default_factory=list)    # ids of questions seen as they are
    near: list[str] = field(default_factory=list)     # ids of near-duplicates or paraphrases of seen ones

    @property
    def count(self) -> int:
        return len(self.exact) + len(self.near)

    def message(self) -> str:
        return (f"{self.count} of {self.questions} evaluation questions overlap what {self.model} was trained or "
                f"tuned on ({len(self.exact)} exact, {len(self.near)} near-duplicate or paraphrase)")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "count": self.count}


def check(questions: list[QAPair], record: TrainingRecord, model: str) -> Overlap:
    """Which evaluation questions the model has seen, exactly or nearly."""
    seen_ids = {p.id for p in record.pairs}
    seen_text = {normalize(p.question) for p in record.pairs}
    seen_groups = {(p.source, p.group) for p in record.pairs if p.group and p.group != p.id}
    exact = [q.id for q in questions if q.id in seen_ids or normalize(q.question) in seen_text]
    flagged = set(exact)
    near = [q.id for q in questions if q.id not in flagged and q.group and q.group != q.id
            and (q.source, q.group) in seen_groups]
    flagged.update(near)
    n = len(questions)
    for i, _, _ in near_duplicate_pairs_between([q.question for q in questions], [p.question for p in record.pairs]):
        if questions[i].id not in flagged:
            flagged.add(questions[i].id)
            near.append(questions[i].id)
    return Overlap(model, n, exact, near)
