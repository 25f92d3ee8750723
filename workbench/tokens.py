"""Token counting with tiktoken, offline: the BPE files ship in the package and are checked by sha256.

tiktoken downloads its BPE files on first use (and its download has no timeout), so the encodings are
built here from the shipped files instead; nothing touches the network.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import tiktoken

from .errors import WorkbenchError

DATA = Path(__file__).parent / "data" / "tiktoken"
FALLBACK_ENCODING = "o200k_base"

# Pattern and special tokens as defined by tiktoken_ext/openai_public.py; sha256 of the uncompressed
# files as pinned there (`expected_hash`), so a file that passes is byte-identical to the download.
_O200K_PAT = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
_CL100K_PAT = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
               r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
ENCODINGS: dict[str, dict[str, Any]] = {
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pat_str": _O200K_PAT,
        "special_tokens": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    },
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pat_str": _CL100K_PAT,
        "special_tokens": {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                           "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
    },
}

# Chat requests and fine-tuning examples are billed with a few tokens of framing per message
# (OpenAI cookbook, "How to count tokens with tiktoken" and the chat fine-tuning data-prep notebook).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3


def _ranks(name: str) -> dict[bytes, int]:
    path = DATA / f"{name}.tiktoken.gz"
    raw = gzip.decompress(path.read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != ENCODINGS[name]["sha256"]:
        raise WorkbenchError(f"tokenizer file is corrupt (sha256 {digest}, expected {ENCODINGS[name]['sha256']})",
                             file=str(path))
    ranks = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@lru_cache(maxsize=None)
def get_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken Encoding built from the shipped BPE file (no network)."""
    if name not in ENCODINGS:
        raise WorkbenchError(f"unknown encoding '{name}'; shipped: {', '.join(ENCODINGS)}")
    spec = ENCODINGS[name]
    return tiktoken.Encoding(name=name, pat_str=spec["pat_str"], mergeable_ranks=_ranks(name),
                             special_tokens=spec["special_tokens"])


@dataclass(frozen=True)
class EncodingChoice:
    """Which encoding counts tokens for a model, and a note when it is a guess."""

    model: str
    encoding: str
    note: str | None = None


def encoding_for_model(model: str) -> EncodingChoice:
    """o200k_base for gpt-4o/4.1/o-series, cl100k_base for gpt-3.5/gpt-4/embeddings; unknown models fall back."""
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        name = None
    if name in ENCODINGS:
        return EncodingChoice(model, name)
    return EncodingChoice(model, FALLBACK_ENCODING,
                          f"'{model}' has no known OpenAI tokenizer; counted with {FALLBACK_ENCODING}, "
                          "so token figures are approximate")


def count(text: str, model: str = "gpt-4o-mini") -> int:
    """Tokens in a piece of text for a model (special-token text is counted as ordinary text)."""
    return len(get_encoding(encoding_for_model(model).encoding).encode_ordinary(text))


def count_many(texts: Iterable[str], model: str = "gpt-4o-mini") -> list[int]:
    """Tokens of each text, as `count` gives them.

    One thread on purpose: tiktoken's batch call hands each text to a thread pool, which on two cores runs
    at a third of the speed of encoding the texts in turn.
    """
    enc = get_encoding(encoding_for_model(model).encoding)
    return list(map(len, map(enc.encode_ordinary, texts)))


def count_messages(messages: Iterable[Mapping[str, Any]], model: str = "gpt-4o-mini") -> int:
    """Tokens of a chat request or fine-tuning example, per-message framing included."""
    enc = get_encoding(encoding_for_model(model).encoding)
    total = 0
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if isinstance(value, str):
                total += len(enc.encode_ordinary(value))
            if key == "name":
                total += TOKENS_PER_NAME
    return total + TOKENS_REPLY_PRIMING
