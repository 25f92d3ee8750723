"""Optional heavier local embedder: any sentence-transformers model from a local folder (needs torch).

Install with `pip install "workbench[torch]"` and point configs/providers.yaml at a model folder, e.g.
`embedder: {provider: sentence-transformers, model: /models/bge-base-en-v1.5}`. Nothing is downloaded:
a name that is not a local folder is refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Strict
from ..errors import WorkbenchError

if TYPE_CHECKING:
    import numpy as np


class SentenceTransformersEmbedder:
    name = "sentence-transformers"
    offline = True

    def __init__(self, model: str | None):
        if not model or not Path(model).is_dir():
            raise WorkbenchError(f"sentence-transformers needs a local model folder (got {model!r}); nothing is "
                                 "downloaded at run time", field="embedder.model")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise WorkbenchError('sentence-transformers is not installed: pip install "workbench[torch]"') from None
        self._model = SentenceTransformer(model, device="cpu", local_files_only=True)
        self.model_id = Path(model).name
        self.label = f"{self.model_id} (sentence-transformers, local)"
        self.dimensions = int(self._model.get_sentence_embedding_dimension())

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        vectors = self._model.encode(texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


class SentenceTransformersSettings(Strict):
    model: str | None = None      # a local model folder; nothing is downloaded


def _missing() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("sentence_transformers") else \
        'sentence-transformers is not installed: pip install -e ".[torch]"'


def register(registry) -> None:
    from .registry import Backend

    registry.add(Backend("embedder", "sentence-transformers",
                         "sentence-transformers model from a local folder (optional, torch)", True,
                         lambda settings, cfg: SentenceTransformersEmbedder(settings.model),
                         SentenceTransformersSettings, _missing))
