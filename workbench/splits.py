"""Train, dev and test sides with a leakage guard, saved in the workspace.

Paraphrases of one question (same group id, or near-identical wording) and questions answered by the
same document passage always land on the same side. The test side is what Compare scores; the dev side
is carved from the training side for early stopping and any tuning, so nothing a model learns from or
is tuned on is ever scored. Unanswerable questions teach nothing to a fine-tune and all go to test.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from typing import Any

from .chunking import ChunkSettings, chunk_document
from .shapes import QAPair
from .text import words
from .training_data import near_duplicate_pairs

SPLIT_KEY = "finetune_split"
SIDES = ("train", "dev", "test")


@dataclass
class Split:
    train: list[str]
    dev: list[str]
    test: list[str]
    test_share: float
    dev_share: float
    seed: int
    groups: int
    guarded_links: int        # pairs of questions tied together by the guard (paraphrase or shared passage)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Split:
        """A saved split; one saved before the dev side existed keeps its two sides (train, and test)."""
        if "validation" in data:
            data = {"train": data["train"], "dev": [], "test": data["validation"],
                    "test_share": data.get("validation_share", 0.0), "dev_share": 0.0, "seed": data.get("seed", 0),
                    "groups": data.get("groups", 0), "guarded_links": data.get("guarded_links", 0)}
        return cls(**data)


@dataclass
class Sides:
    """The workspace's pairs on each side of a split."""

    train: list[QAPair]
    dev: list[QAPair]
    test: list[QAPair]


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


def answer_passages(pairs: list[QAPair], documents: dict[str, dict[str, Any]],
                    settings: ChunkSettings = ChunkSettings()) -> dict[str, str]:
    """For each answered pair with gold documents: the chunk ('doc#position') whose words best cover its answer."""
    chunks_of: dict[str, list[tuple[int, set[str]]]] = {}
    out = {}
    for p in pairs:
        if not p.answer or not p.doc_ids:
            continue
        answer = set(words(p.answer))
        best, best_score = None, 0.0
        for doc_id in p.doc_ids:
            if doc_id not in documents:
                continue
            if doc_id not in chunks_of:
                doc = documents[doc_id]
                chunks_of[doc_id] = [(c.position, set(words(c.text)))
                                     for c in chunk_document(doc_id, doc["title"], doc["text"], settings)]
            for position, chunk_words in chunks_of[doc_id]:
                score = len(answer & chunk_words) / max(1, len(answer))
                if score > best_score:
                    best, best_score = f"{doc_id}#{position}", score
        if best is not None and best_score >= 0.5:
            out[p.id] = best
    return out


def _leakage_groups(pairs: list[QAPair], passages: dict[str, str] | None) -> tuple[list[list[int]], int]:
    """Indices of pairs that must stay on one side together (same group, same passage, near-identical
    question), and how many links tied them."""
    union = _Union(len(pairs))
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
    for i in range(len(pairs)):
        groups.setdefault(union.find(i), []).append(i)
    return list(groups.values()), links


def _take(groups: list[list[int]], share: float) -> tuple[list[int], list[list[int]]]:
    """Whole groups, in order, until they hold about `share` of all the pairs; the groups left over."""
    target = share * sum(len(g) for g in groups)
    taken: list[int] = []
    rest: list[list[int]] = []
    for g in groups:
        if len(taken) + len(g) / 2 <= target:
            taken.extend(g)
        else:
            rest.append(g)
    return taken, rest


def split_pairs(pairs: list[QAPair], test_share: float = 0.2, seed: int = 0,
                passages: dict[str, str] | None = None, dev_share: float = 0.15) -> Split:
    """Assign whole leakage groups to test, then dev (a share of what is left), then train."""
    if not 0 < test_share < 1:
        raise ValueError("test_share must be between 0 and 1")
    if not 0 <= dev_share < 1:
        raise ValueError("dev_share must be between 0 and 1")
    groups, links = _leakage_groups(pairs, passages)
    answerable = [g for g in groups if any(pairs[i].answer for i in g)]
    unanswerable = [i for g in groups if not any(pairs[i].answer for i in g) for i in g]
    # A stable order, independent of input order, then a seeded shuffle.
    answerable.sort(key=lambda g: hashlib.sha256(min(pairs[i].id for i in g).encode()).hexdigest())
    random.Random(seed).shuffle(answerable)
    test, rest = _take(answerable, test_share)
    dev, rest = _take(rest, dev_share)
    train = [i for g in rest for i in g]
    test += unanswerable

    def ids(side: list[int]) -> list[str]:
        return [pairs[i].id for i in sorted(side)]

    return Split(train=ids(train), dev=ids(dev), test=ids(test), test_share=test_share, dev_share=dev_share,
                 seed=seed, groups=len(groups), guarded_links=links)


def save_split(ws: Any, split: Split) -> None:
    ws.set_state(SPLIT_KEY, split.to_dict())


def saved_split(ws: Any) -> Split | None:
    data = ws.get_state(SPLIT_KEY)
    return Split.from_dict(data) if data else None


def make_split(ws: Any, test_share: float = 0.2, seed: int = 0, dev_share: float = 0.15) -> Split:
    """Split the workspace's pairs with the leakage guard (passages found in its documents) and save it."""
    from . import corpus

    pairs = corpus.qa_pairs(ws)
    documents = {d["doc_id"]: d for d in corpus.documents(ws, with_text=True)}
    split = split_pairs(pairs, test_share, seed, answer_passages(pairs, documents), dev_share)
    save_split(ws, split)
    return split


def sides(ws: Any, split: Split) -> Sides:
    """The workspace's pairs on each side of a split (pairs added since the split are on no side)."""
    from . import corpus

    by_id = {p.id: p for p in corpus.qa_pairs(ws)}

    def side(ids: list[str]) -> list[QAPair]:
        return [by_id[i] for i in ids if i in by_id]

    return Sides(side(split.train), side(split.dev), side(split.test))
