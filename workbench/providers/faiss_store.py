"""The vector store role, offline default: FAISS, one file in the workspace's index folder.

Exact inner product (IndexFlatIP) for small corpora, HNSW above the index settings' `approximate_above`;
both sit in an IndexIDMap2, so a vector is found by its chunk row and can be replaced or deleted. Vectors
are unit length, so inner product is cosine. Nothing is written until `persist`, which replaces the file
atomically: a crash leaves the previous index whole.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from ..config import Strict
from ..errors import WorkbenchError
from .protocols import StoreStats, VectorHit

if TYPE_CHECKING:
    import numpy as np


FILE_NAME = "vectors.faiss"
LABEL = "FAISS, saved in the workspace (offline default)"


class FaissSettings(Strict):
    # HNSW, used above `approximate_above` chunks: graph degree, and candidates kept per query (FAISS's default,
    # 16; more finds more of the true neighbours, more slowly: see tests/benchmarks/test_vector_store_speed.py)
    hnsw_m: Annotated[int, Field(ge=4, le=128)] = 32
    hnsw_ef_search: Annotated[int, Field(ge=1, le=4096)] = 16


def _faiss() -> Any:
    import faiss

    faiss.omp_set_num_threads(1)  # single queries run several times faster on a small machine
    return faiss


def _matrix(vectors: Any, rows: int, dims: int) -> np.ndarray:
    import numpy as np

    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim == 1 and rows == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.shape != (rows, dims):
        raise WorkbenchError(f"the vector store expected {rows} vectors of {dims} dimensions, got shape {matrix.shape}")
    return matrix


def _ids(rows: list[int]) -> np.ndarray:
    import numpy as np

    ids = np.asarray([int(r) for r in rows], dtype=np.int64)
    if len(set(ids.tolist())) != len(ids) or (ids < 0).any():
        raise WorkbenchError("chunk rows given to the vector store must be distinct and not negative")
    return ids


class FaissStore:
    """A FAISS index of unit vectors keyed by chunk row, held in memory and written by `persist`."""

    name = "faiss"
    label = LABEL
    offline = True

    def __init__(self, path: Path, index: Any, approximate: bool, settings: FaissSettings):
        self.path = path
        self._faiss = _faiss()
        self._approximate = approximate
        self._settings = settings
        self._set(index)

    def _set(self, index: Any) -> None:
        self._index = index
        # An index written before rows were keyed (a bare IndexFlatIP or IndexHNSWFlat) has row == position.
        self._positional = not isinstance(index, self._faiss.IndexIDMap2)
        inner = self._faiss.downcast_index(index if self._positional else index.index)
        if isinstance(inner, self._faiss.IndexHNSW):
            inner.hnsw.efSearch = self._settings.hnsw_ef_search

    @classmethod
    def empty(cls, path: Path, dimensions: int, approximate: bool, settings: FaissSettings) -> FaissStore:
        return cls(path, cls._new_index(_faiss(), dimensions, approximate, settings.hnsw_m), approximate, settings)

    @staticmethod
    def _new_index(faiss: Any, dims: int, approximate: bool, hnsw_m: int) -> Any:
        inner = (faiss.IndexHNSWFlat(dims, hnsw_m, faiss.METRIC_INNER_PRODUCT) if approximate
                 else faiss.IndexFlatIP(dims))
        return faiss.IndexIDMap2(inner)

    @property
    def dimensions(self) -> int:
        return int(self._index.d)

    def _rows(self) -> np.ndarray:
        """Every stored row, in storage order."""
        import numpy as np

        if self._positional:
            return np.arange(self._index.ntotal, dtype=np.int64)
        return self._faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def _contents(self) -> tuple[np.ndarray, np.ndarray]:
        """Every stored row and its vector, in storage order."""
        inner = self._index if self._positional else self._faiss.downcast_index(self._index.index)
        return self._rows(), inner.reconstruct_n(0, self._index.ntotal)

    def _rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        import numpy as np

        index = self._new_index(self._faiss, self.dimensions, self._approximate, self._settings.hnsw_m)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._set(index)

    def add(self, rows: list[int], vectors: np.ndarray) -> None:
        import numpy as np

        ids = _ids(rows)
        matrix = _matrix(vectors, len(ids), self.dimensions)
        if not len(ids):
            return
        if self._positional:
            self._rebuild(*self._contents())
        present = np.isin(ids, self._rows())
        if present.any():
            self.delete(ids[present].tolist())
        self._index.add_with_ids(matrix, ids)

    def delete(self, rows: list[int]) -> None:
        import numpy as np

        ids = _ids(rows)
        if not len(ids) or not self._index.ntotal:
            return
        keep = ~np.isin(self._rows(), ids)
        if keep.all():
            return
        if self._approximate or self._positional:   # HNSW cannot remove: build the graph again without them
            stored, vectors = self._contents()
            self._rebuild(stored[keep], vectors[keep])
        else:
            self._index.remove_ids(self._faiss.IDSelectorBatch(ids))

    def search(self, query: np.ndarray, k: int) -> list[VectorHit]:
        k = min(int(k), self._index.ntotal)
        if k <= 0:
            return []
        scores, ids = self._index.search(_matrix(query, 1, self.dimensions), k)
        return [VectorHit(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def vectors(self, rows: list[int]) -> np.ndarray:
        import numpy as np

        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        out = []
        for row in rows:
            try:
                out.append(self._index.reconstruct(int(row)))
            except RuntimeError:
                raise WorkbenchError(f"the FAISS index in {self.path} has no vector for chunk row {row}; "
                                     "rebuild the index") from None
        return np.stack(out)

    def persist(self) -> None:
        from ..workspace import Workspace

        data = self._faiss.serialize_index(self._index).tobytes()
        # Through the workspace's writer (temp file + os.replace, kept inside the folder), as every index file is.
        folder = self.path.parent
        Workspace(folder.parent.name, folder.parent).write_file(f"{folder.name}/{self.path.name}", data)

    def stats(self) -> StoreStats:
        return StoreStats(vectors=int(self._index.ntotal), dimensions=self.dimensions,
                          approximate=self._approximate, where=str(self.path))

    def close(self) -> None:
        """Nothing to release: the index lives in memory until the store is dropped."""


class FaissOpener:
    """Opens the FAISS store of an index folder: empty for a rebuild, or the one persisted there."""

    name = "faiss"
    label = LABEL
    offline = True

    def __init__(self, settings: FaissSettings):
        self.settings = settings

    def open(self, index_dir: Path, dimensions: int, approximate: bool, fresh: bool) -> FaissStore:
        import numpy as np

        path = Path(index_dir) / FILE_NAME
        if fresh:
            return FaissStore.empty(path, dimensions, approximate, self.settings)
        if not path.exists():
            raise WorkbenchError(f"no FAISS index at {path}; rebuild the index")
        faiss = _faiss()
        index = faiss.deserialize_index(np.frombuffer(path.read_bytes(), dtype=np.uint8))
        if index.d != dimensions:
            raise WorkbenchError(f"the FAISS index at {path} holds vectors of {index.d} dimensions where the index "
                                 f"records {dimensions}; rebuild the index")
        inner = faiss.downcast_index(index.index if isinstance(index, faiss.IndexIDMap2) else index)
        return FaissStore(path, index, isinstance(inner, faiss.IndexHNSW), self.settings)


def register(registry: Any) -> None:
    from .registry import Backend

    registry.add(Backend(role="vector_store", name="faiss", label=LABEL, offline=True,
                         factory=lambda settings, cfg: FaissOpener(settings), settings=FaissSettings))
