"""Train/validation split with a leakage guard, saved in the workspace.

Paraphrases of one question (same group id, or near-identical wording) and questions answered by the
same document passage always land on the same side, so the validation side measures what the model
never saw. Unanswerable questions teach nothing to a fine-tune and all go to the validation side.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import asdict, dataclass
from typing import Any

from .chunking import ChunkSettings, chunk_document
from .parsing import QAPair
from .training_data import near_duplicate_pairs

SPLIT_KEY = "finetune_split"


@dataclass
class Split:
    train: list[str]
    validation: list[str]
    validation_share: float
    seed: int
    groups: int
    guarded_links: int        # pairs of questions tied together by the guard (paraphrase or shared passage)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Union:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def answer_passages(pairs: list[QAPair], documents: dict[str, dict[str, Any]],
                    settings: ChunkSettings = ChunkSettings()) -> dict[str, str]:
    """For each answered pair with gold documents: the chunk ('doc#position') whose words best cover its answer."""
    chunks_of: dict[str, list[tuple[int, set[str]]]] = {}
    out = {}
    for p in pairs:
        if not p.answer or not p.doc_ids:
            continue
        answer = set(_words(p.answer))
        best, best_score = None, 0.0
        for doc_id in p.doc_ids:
            if doc_id not in documents:
                continue
            if doc_id not in chunks_of:
                doc = documents[doc_id]
                chunks_of[doc_id] = [(c.position, set(_words(c.text)))
                                     for c in chunk_document(doc_id, doc["title"], doc["text"], settings)]
            for position, words in chunks_of[doc_id]:
                score = len(answer & words) / max(1, len(answer))
                if score > best_score:
                    best, best_score = f"{doc_id}#{position}", score
        if best is not None and best_score >= 0.5:
            out[p.id] = best
    return out


def split_pairs(pairs: list[QAPair], validation_share: float = 0.2, seed: int = 0,
                passages: dict[str, str] | None = None) -> Split:
    """Assign whole leakage groups to train or validation, aiming at the validation share."""
    if not 0 < validation_share < 1:
        raise ValueError("validation_share must be between 0 and 1")
    n = len(pairs)
    union = _Union(n)
    links = 0
    first_of: dict[str, int] = {}
    for i, p in enumerate(pairs):
        for key in filter(None, (f"group:{p.group}" if p.group else None,
                                 f"passage:{passages[p.id]}" if passages and p.id in passages else None)):
            if key in first_of:
                links += union.join(first_of[key], i)
            else:
                first_of[key] = i
    for i, j, _ in near_duplicate_pairs([p.question for p in pairs]):
        links += union.join(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(union.find(i), []).append(i)
    answerable = [g for g in groups.values() if any(pairs[i].answer for i in g)]
    unanswerable = [i for g in groups.values() if not any(pairs[i].answer for i in g) for i in g]
    # A stable order, independent of input order, then a seeded shuffle.
    answerable.sort(key=lambda g: hashlib.sha256(min(pairs[i].id for i in g).encode()).hexdigest())
    random.Random(seed).shuffle(answerable)
    target = validation_share * sum(len(g) for g in answerable)
    validation: list[int] = []
    train: list[int] = []
    for g in answerable:
        (validation if len(validation) + len(g) / 2 <= target else train).extend(g)
    validation += unanswerable
    return Split(train=[pairs[i].id for i in sorted(train)], validation=[pairs[i].id for i in sorted(validation)],
                 validation_share=validation_share, seed=seed, groups=len(groups), guarded_links=links)


def save_split(ws: Any, split: Split) -> None:
    ws.set_state(SPLIT_KEY, split.to_dict())


def saved_split(ws: Any) -> Split | None:
    data = ws.get_state(SPLIT_KEY)
    return Split(**data) if data else None


def make_split(ws: Any, validation_share: float = 0.2, seed: int = 0) -> Split:
    """Split the workspace's pairs with the leakage guard (passages found in its documents) and save it."""
    from . import corpus

    pairs = corpus.qa_pairs(ws)
    documents = {d["doc_id"]: d for d in corpus.documents(ws, with_text=True)}
    split = split_pairs(pairs, validation_share, seed, answer_passages(pairs, documents))
    save_split(ws, split)
    return split


def sides(ws: Any, split: Split) -> tuple[list[QAPair], list[QAPair]]:
    """The workspace's pairs on each side of a split (pairs added since the split are left out)."""
    from . import corpus

    by_id = {p.id: p for p in corpus.qa_pairs(ws)}
    return [by_id[i] for i in split.train if i in by_id], [by_id[i] for i in split.validation if i in by_id]
