"""The vector store role on Qdrant: local mode in the workspace (no server), or a server or cluster by URL.

Both go through the same qdrant-client API (an optional extra: `pip install -e ".[qdrant]"`). A rebuild
writes into a new collection and `persist` points the configured name (an alias) at it in one step, then
drops the old one: until then every reader keeps the previous index, as FAISS's atomic file replace gives.
Adds and deletes on an index that is already live are written as they are made.

Local mode locks its folder, so this process keeps one client per folder, shared by every store open on
it, and closes it when the last one is closed or dropped. Another process cannot open the same folder at
the same time: use a server for that.
"""
from __future__ import annotations

import importlib.util
import os
import re
import threading
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field

from ..config import Strict
from ..errors import WorkbenchError
from .protocols import StoreStats, VectorHit

if TYPE_CHECKING:
    import numpy as np


LOCAL_FOLDER = "qdrant"
BATCH = 256
MISSING = 'qdrant-client is not installed: pip install -e ".[qdrant]"'


class QdrantSettings(Strict):
    url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None   # None: local mode in the workspace
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None   # the key's variable
    # None: "workbench" in local mode (the folder is the workspace's own); "workbench-<workspace>" on a server,
    # so workspaces sharing one server never overwrite each other's index
    collection: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None = None
    timeout_s: Annotated[int, Field(gt=0, le=600)] = 10


def _unavailable() -> str | None:
    try:
        found = importlib.util.find_spec("qdrant_client") is not None
    except (ImportError, ValueError):   # a module entry of None, or one without a spec
        found = False
    return None if found else MISSING


def _client_module() -> Any:
    try:
        import qdrant_client
    except ImportError:
        raise WorkbenchError(MISSING, field="vector_store.provider") from None
    return qdrant_client


def _public_url(url: str) -> str:
    """The URL without any user name or password in it, for labels and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class _LocalClients:
    """One local-mode client per folder in this process, counted by the stores using it, with its lock.

    Local mode takes an exclusive lock on its folder, so a second client on the same folder fails; and its
    in-memory collections are not safe to use from two threads at once.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._open: dict[str, list[Any]] = {}      # folder -> [client, lock, users]

    def acquire(self, folder: Path) -> tuple[str, Any, threading.RLock]:
        key = str(folder.resolve())
        with self._guard:
            if key not in self._open:
                module = _client_module()
                folder.mkdir(parents=True, exist_ok=True)
                try:
                    client = module.QdrantClient(path=key)
                except RuntimeError:             # the folder is locked by another process
                    raise WorkbenchError(f"the Qdrant folder {key} is in use by another process (local mode "
                                         "allows one at a time); close the app or command using it, or use a "
                                         "Qdrant server") from None
                self._open[key] = [client, threading.RLock(), 0]
            entry = self._open[key]
            entry[2] += 1
            return key, entry[0], entry[1]

    def release(self, key: str) -> None:
        with self._guard:
            entry = self._open.get(key)
            if entry is None:
                return
            entry[2] -= 1
            if entry[2] <= 0:
                del self._open[key]
                entry[0].close()


LOCAL_CLIENTS = _LocalClients()


class QdrantStore:
    """Unit vectors keyed by chunk row in one Qdrant collection (DOT distance: cosine on unit vectors)."""

    name = "qdrant"

    def __init__(self, opener: QdrantOpener, index_dir: Path, dimensions: int, approximate: bool, fresh: bool):
        self.label, self.offline = opener.label, opener.offline
        self._settings = opener.settings
        self._models = _client_module().models
        self._alias = self._settings.collection or (
            "workbench" if self.offline else f"workbench-{Path(index_dir).resolve().parent.name}")
        self._dims = int(dimensions)
        self._approximate = approximate and not self.offline   # local mode always searches exactly
        self._lock: Any = threading.RLock()
        if self.offline:
            folder = Path(index_dir) / LOCAL_FOLDER
            key, self._client, self._lock = LOCAL_CLIENTS.acquire(folder)
            self._where = str(folder)
            self._release = weakref.finalize(self, LOCAL_CLIENTS.release, key)
        else:
            self._client = opener.remote_client()
            self._where = f"{_public_url(self._settings.url)}/collections/{self._alias}"
            self._release = weakref.finalize(self, self._client.close)
        try:
            self._pending = fresh
            self._collection = self._create() if fresh else self._live()
        except BaseException:
            self.close()
            raise

    # --- plumbing -----------------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One client call under this folder's lock, with its failures said in terms a user can act on."""
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        with self._lock:
            try:
                return fn(*args, **kwargs)
            except UnexpectedResponse as exc:
                raise WorkbenchError(f"Qdrant at {self._where} refused {what} (HTTP {exc.status_code} "
                                     f"{exc.reason_phrase})") from None
            except ResponseHandlingException as exc:
                raise WorkbenchError(f"could not reach Qdrant at {self._where} while {what} "
                                     f"({type(exc.source).__name__})") from None
            except ValueError as exc:            # local mode: a collection that is not there any more
                if "not found" in str(exc):
                    raise WorkbenchError(f"the Qdrant collection behind '{self._alias}' in {self._where} is gone "
                                         "(the index was rebuilt or removed); open the index again") from None
                raise

    def _aliases(self) -> dict[str, str]:
        found = self._call("listing aliases", self._client.get_aliases).aliases
        return {a.alias_name: a.collection_name for a in found}

    def _collections(self) -> set[str]:
        return {c.name for c in self._call("listing collections", self._client.get_collections).collections}

    def _create(self) -> str:
        """A new, empty collection for a rebuild, invisible under the configured name until `persist`."""
        name = f"{self._alias}-build-{uuid.uuid4().hex[:12]}"
        params = self._models.VectorParams(size=self._dims, distance=self._models.Distance.DOT)
        self._call("creating a collection", self._client.create_collection, collection_name=name,
                   vectors_config=params)
        return name

    def _live(self) -> str:
        """The collection the configured name points at, checked against the expected vector size."""
        name = self._aliases().get(self._alias) or (self._alias if self._alias in self._collections() else None)
        if name is None:
            raise WorkbenchError(f"there is no Qdrant collection '{self._alias}' in {self._where}; rebuild the index")
        size = self._call("reading the collection", self._client.get_collection, name).config.params.vectors.size
        if size != self._dims:
            raise WorkbenchError(f"the Qdrant collection '{self._alias}' in {self._where} holds vectors of {size} "
                                 f"dimensions where the index records {self._dims}; rebuild the index")
        return name

    # --- the VectorStore protocol -------------------------------------------------------------------------

    def add(self, rows: list[int], vectors: np.ndarray) -> None:
        import numpy as np

        ids = [int(r) for r in rows]
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim == 1 and len(ids) == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.shape != (len(ids), self._dims):
            raise WorkbenchError(f"the vector store expected {len(ids)} vectors of {self._dims} dimensions, "
                                 f"got shape {matrix.shape}")
        if len(set(ids)) != len(ids) or any(i < 0 for i in ids):
            raise WorkbenchError("chunk rows given to the vector store must be distinct and not negative")
        point = self._models.PointStruct
        for start in range(0, len(ids), BATCH):
            points = [point(id=i, vector=v) for i, v in zip(ids[start:start + BATCH],
                                                             matrix[start:start + BATCH].tolist())]
            self._call("adding vectors", self._client.upsert, collection_name=self._collection, points=points,
                       wait=True)

    def delete(self, rows: list[int]) -> None:
        ids = [int(r) for r in rows]
        for start in range(0, len(ids), BATCH):
            selector = self._models.PointIdsList(points=ids[start:start + BATCH])
            self._call("deleting vectors", self._client.delete, collection_name=self._collection,
                       points_selector=selector, wait=True)

    def search(self, query: np.ndarray, k: int) -> list[VectorHit]:
        import numpy as np

        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape != (self._dims,):
            raise WorkbenchError(f"the vector store expected a query of {self._dims} dimensions, got {vector.shape}")
        if k <= 0:
            return []
        # A server indexes with HNSW: ask it for an exact search below `approximate_above` (local mode always is).
        params = None if self._approximate or self.offline else self._models.SearchParams(exact=True)
        found = self._call("searching", self._client.query_points, collection_name=self._collection,
                           query=vector.tolist(), limit=int(k), with_payload=False, search_params=params).points
        return [VectorHit(int(p.id), float(p.score)) for p in found]

    def vectors(self, rows: list[int]) -> np.ndarray:
        import numpy as np

        if not rows:
            return np.zeros((0, self._dims), dtype=np.float32)
        ids = [int(r) for r in rows]
        found = {}
        for start in range(0, len(ids), BATCH):
            for record in self._call("reading vectors", self._client.retrieve, collection_name=self._collection,
                                     ids=ids[start:start + BATCH], with_payload=False, with_vectors=True):
                found[int(record.id)] = record.vector
        missing = [i for i in ids if i not in found]
        if missing:
            raise WorkbenchError(f"the Qdrant collection '{self._alias}' in {self._where} has no vector for chunk "
                                 f"row {missing[0]}; rebuild the index")
        return np.asarray([found[i] for i in ids], dtype=np.float32)

    def persist(self) -> None:
        """After a rebuild: point the configured name at the new collection in one step, then drop the old ones."""
        if not self._pending:
            return                                   # adds and deletes on a live collection are already stored
        with self._lock:
            aliases = self._aliases()
            if self._alias in self._collections():   # a plain collection of that name (made by hand, say)
                self._call("replacing the collection", self._client.delete_collection, self._alias)
            ops: list[Any] = []
            if self._alias in aliases:
                ops.append(self._models.DeleteAliasOperation(
                    delete_alias=self._models.DeleteAlias(alias_name=self._alias)))
            ops.append(self._models.CreateAliasOperation(create_alias=self._models.CreateAlias(
                collection_name=self._collection, alias_name=self._alias)))
            self._call("switching to the new index", self._client.update_collection_aliases,
                       change_aliases_operations=ops)
            self._pending = False
            built = re.compile(rf"{re.escape(self._alias)}-build-[0-9a-f]{{12}}")
            for name in self._collections():         # the previous index, and builds that never finished
                if name != self._collection and built.fullmatch(name):
                    self._call("dropping the previous index", self._client.delete_collection, name)

    def stats(self) -> StoreStats:
        count = self._call("counting vectors", self._client.count, collection_name=self._collection, exact=True).count
        return StoreStats(vectors=int(count), dimensions=self._dims, approximate=self._approximate, where=self._where)

    def close(self) -> None:
        """Release the client (local mode: the folder's lock once no other store in this process uses it)."""
        self._release()


class QdrantOpener:
    """Opens the Qdrant store of an index: local mode in the index folder, or the server at `url`."""

    name = "qdrant"

    def __init__(self, settings: QdrantSettings):
        self.settings = settings
        self.offline = settings.url is None
        self.label = "Qdrant (local mode in the workspace)" if self.offline else \
            f"Qdrant at {_public_url(settings.url)}"

    def remote_client(self) -> Any:
        key = None
        if self.settings.api_key_env:
            key = os.environ.get(self.settings.api_key_env)
            if not key:
                raise WorkbenchError(f"the environment variable {self.settings.api_key_env} named by "
                                     "vector_store.api_key_env is not set", field="vector_store.api_key_env")
        return _client_module().QdrantClient(url=self.settings.url, api_key=key, timeout=self.settings.timeout_s,
                                             check_compatibility=False)

    def open(self, index_dir: Path, dimensions: int, approximate: bool, fresh: bool) -> QdrantStore:
        return QdrantStore(self, index_dir, dimensions, approximate, fresh)


def register(registry: Any) -> None:
    from .registry import Backend

    registry.add(Backend(role="vector_store", name="qdrant",
                         label="Qdrant (local mode in the workspace, or a server by URL)", offline=True,
                         factory=lambda settings, cfg: QdrantOpener(settings), settings=QdrantSettings,
                         unavailable=_unavailable))
