"""The offline stand-in for a chat model: quotes the best supporting sentence from the retrieved passages.

Not an LLM: it cannot paraphrase, combine facts or reason. It picks the sentence most similar to the
question (embedding cosine plus a small bonus for shared words) and abstains when retrieval found
nothing relevant enough.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ..chunking import sentence_spans
from ..text import STOP_WORDS, words
from .protocols import ChatResult, Grounding


def _words(text: str) -> set[str]:
    return set(words(text)) - STOP_WORDS


def _clean(sentence: str) -> str:
    s = re.sub(r"^\s*(?:#{1,6}\s+|[-*]\s+|\d+[.)]\s+)", "", sentence.strip())
    return re.sub(r"\*\*|__|`", "", s).strip()


@dataclass
class Extracted:
    text: str
    passage: int | None          # index of the cited passage among those given
    score: float
    abstained: bool


NOTE = "Answered by the extractive answerer, an offline stand-in that quotes a sentence; it is not an LLM."


class ExtractiveAnswerer:
    """A ChatModel that only quotes: it answers from the grounding passages, and abstains without them."""

    name = "extractive"
    label = "Extractive answerer (offline stand-in, not an LLM)"
    offline = True
    model_id = "extractive"
    generative = False

    def complete(self, messages: list[dict[str, str]], max_tokens: int = 512, grounding: Grounding | None = None, *,
                 schema: dict[str, Any] | None = None, on_token: Callable[[str], None] | None = None) -> ChatResult:
        """The quoted sentence with its citation mark [n], or an abstention; it knows nothing of its own.

        It cannot follow a JSON schema (it only quotes): callers that need one check `generative` first.
        """
        result = self._complete(grounding)
        if on_token is not None:
            on_token(result.text)
        return result

    def _complete(self, grounding: Grounding | None) -> ChatResult:
        if grounding is None:
            return ChatResult("I can't answer without documents: the offline stand-in has no knowledge of its own.",
                              0, 0, self.model_id, abstained=True, notes=[NOTE])
        g = grounding
        found = self.answer(g.question, g.passages, g.relevance, g.embedder, g.min_relevance, g.coverage, g.missing,
                            g.min_coverage, g.prior)
        text = found.text if found.passage is None else f"{found.text} [{found.passage + 1}]"
        return ChatResult(text, 0, 0, self.model_id, abstained=found.abstained, notes=[NOTE])

    def answer(self, question: str, passages: list[str], relevance: list[float], embedder: Any,
               min_relevance: float, coverage: float = 1.0, missing: list[str] | None = None,
               min_coverage: float = 0.0, prior: Any = None) -> Extracted:
        """Quote the best sentence, or abstain when the passages are not relevant enough or do not mention
        enough of the question's distinctive words (coverage, IDF-weighted)."""
        import numpy as np

        best = max(relevance, default=-1.0)
        reason = None
        if not passages:
            reason = "no passage was retrieved"
        elif best < min_relevance:
            reason = f"the closest passage has relevance {best:.2f}, under the threshold {min_relevance:.2f}"
        elif coverage < min_coverage:
            named = ", ".join(f"'{w}'" for w in (missing or [])[:3])
            reason = f"the passages found do not mention {named}" if named else "the passages found miss the question's terms"
        if reason:
            return Extracted(f"I can't answer that from the documents ({reason}).", None, best, True)
        candidates: list[tuple[int, str]] = []
        for p, text in enumerate(passages):
            for a, b in sentence_spans(text):
                sentence = _clean(text[a:b])
                if len(words(sentence)) >= 3 and not text[a:b].lstrip().startswith("#"):
                    candidates.append((p, sentence))
        if not candidates:
            return Extracted("I can't answer that from the documents (no usable sentence).", None, best, True)
        vectors = np.asarray(embedder.embed([question] + [s for _, s in candidates]), dtype=np.float32)
        cosine = vectors[1:] @ vectors[0]
        q_words = _words(question)
        overlap = np.array([len(q_words & _words(s)) / max(1, len(q_words)) for _, s in candidates])
        # Prefer sentences from better-ranked passages a little, so ties go to the top hit.
        rank_bonus = np.array([0.02 * (len(passages) - p) / len(passages) for p, _ in candidates])
        score = cosine + 0.25 * overlap + rank_bonus
        if prior is not None:  # e.g. a fine-tuned model's preference among the sentences
            score = score + np.asarray(prior([s for _, s in candidates]), dtype=np.float32)
        i = int(np.argmax(score))
        return Extracted(candidates[i][1], candidates[i][0], float(score[i]), False)


def register(registry: Any) -> None:
    from .registry import Backend

    registry.add(Backend("chat", "extractive", ExtractiveAnswerer.label, True, lambda s, cfg: ExtractiveAnswerer()))
