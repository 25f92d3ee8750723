"""A third-party plugin for the tests: a deterministic embedder and a scripted chat model.

It registers through the `workbench.providers` entry-point group like any installed package would
(the tests write its dist-info with the entry point), never by patching the library.
"""
from __future__ import annotations

import hashlib
from typing import Annotated

import numpy as np
from pydantic import Field

from workbench.config import Strict
from workbench.providers import Backend, ChatResult


class HashSettings(Strict):
    dimensions: Annotated[int, Field(ge=4, le=1024)] = 32


class HashEmbedder:
    """Bag of hashed words: texts that share words get similar unit vectors; the same text, the same vector."""

    name, offline = "fake-hash", True

    def __init__(self, dimensions: int):
        self.dimensions = dimensions
        self.model_id = f"fake-hash-{dimensions}"
        self.label = f"fake hashing embedder ({dimensions} dims, test plugin)"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.sha1(word.strip(".,?!").encode()).hexdigest(), 16) % self.dimensions] += 1
            out[i, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class ScriptedSettings(Strict):
    reply: str = "Scripted answer [1]"


class ScriptedChat:
    """Replies with a fixed text, counting the words it was sent."""

    name, offline, model_id, generative = "scripted", True, "scripted", True

    def __init__(self, reply: str):
        self.reply = reply
        self.label = "scripted chat model (test plugin)"

    def complete(self, messages, max_tokens=512, grounding=None, *, schema=None, on_token=None) -> ChatResult:
        words = sum(len(m["content"].split()) for m in messages)
        return ChatResult(self.reply, words, len(self.reply.split()), self.model_id)


class ScriptedQASettings(Strict):
    broken_every: Annotated[int, Field(ge=0)] = 0      # every Nth reply is not JSON (0: never)
    unanswerable: str = "Which moon base hosts the annual tallyboard invoicing festival?"   # "@passage": one it answers


class ScriptedQA:
    """Writes question/answer pairs from the passage it is sent, as a generator model would: the question
    names the passage's first words, the answer is the end of its first sentence (a span of the passage)."""

    name, offline, model_id, generative = "scripted-qa", True, "scripted-qa", True
    label = "scripted question writer (test plugin)"

    def __init__(self, broken_every: int = 0, unanswerable: str = ScriptedQASettings().unanswerable):
        self.broken_every, self.unanswerable, self.calls = broken_every, unanswerable, 0

    def complete(self, messages, max_tokens=512, grounding=None, *, schema=None, on_token=None) -> ChatResult:
        import json
        import re

        self.calls += 1
        prompt = messages[-1]["content"] if not messages[-1]["content"].startswith("Reply with one JSON") \
            else messages[-2]["content"]
        if self.broken_every and self.calls % self.broken_every == 0:
            text = "Sure! Here is a question about the passage."
        elif prompt.startswith("Rephrase"):
            question = prompt.split("\n", 1)[1].rstrip("?")
            text = json.dumps({"question": f"Could you tell me: {question.lower()}?"})
        else:
            passage = re.split(r"\n\n(?:Choose|Write)", prompt.split("Newer passage:\n")[-1].split("Passage:\n")[-1])[0]
            sentences = [x for x in re.split(r"(?<=[.!?])\s+|\n+", passage.strip()) if len(x.split()) >= 8]
            sentence = (sentences or [passage.strip()])[0]
            words = re.findall(r"[A-Za-z][A-Za-z'-]+", sentence)
            tail = " ".join(sentence.rstrip(".!?").split()[-4:])
            question = f"What is {' '.join(words[:4]).lower()}?"
            if "does not answer" in prompt:   # "@passage": a question the passage does answer, to be caught
                text = json.dumps({"question": question if self.unanswerable == "@passage" else self.unanswerable})
            else:
                text = json.dumps({"question": question, "answer": tail})
        return ChatResult(text, sum(len(m["content"].split()) for m in messages), len(text.split()), self.model_id)


def register(registry) -> None:
    registry.add(Backend("embedder", "fake-hash", "fake hashing embedder (test plugin)", True,
                         lambda s, cfg: HashEmbedder(s.dimensions), HashSettings))
    registry.add(Backend("chat", "scripted", "scripted chat model (test plugin)", True,
                         lambda s, cfg: ScriptedChat(s.reply), ScriptedSettings))
    registry.add(Backend("chat", "scripted-qa", ScriptedQA.label, True,
                         lambda s, cfg: ScriptedQA(s.broken_every, s.unanswerable), ScriptedQASettings))
