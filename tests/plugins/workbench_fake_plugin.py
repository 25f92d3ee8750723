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


def register(registry) -> None:
    registry.add(Backend("embedder", "fake-hash", "fake hashing embedder (test plugin)", True,
                         lambda s, cfg: HashEmbedder(s.dimensions), HashSettings))
    registry.add(Backend("chat", "scripted", "scripted chat model (test plugin)", True,
                         lambda s, cfg: ScriptedChat(s.reply), ScriptedSettings))
