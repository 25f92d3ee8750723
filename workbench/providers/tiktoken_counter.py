"""The tokenizer role: tiktoken with its BPE files shipped in the package (workbench.tokens), never downloaded."""
from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    from .. import tokens
    from .registry import Backend

    registry.add(Backend("tokenizer", "tiktoken", "tiktoken (bundled BPE files)", True, lambda settings, cfg: tokens))
