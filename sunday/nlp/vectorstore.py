"""Qdrant collections for tasks, comments, documents and meeting turns, every search filtered by workspace and access.

Embedded by default (Qdrant local mode, a folder under the state folder: ``<home>/qdrant``); ``SUNDAY_QDRANT_URL``
(e.g. ``http://qdrant:6333``) uses a Qdrant server instead, with the same collections and filters. Local mode
holds a lock on its folder, so one process owns the embedded store (in the Serve app: the search deployment);
use a server when several processes must write.

Every point carries ``workspace_id`` and the access fields, and no search runs without a workspace:

* ``visibility``: ``"workspace"`` (anyone in the workspace) or ``"restricted"`` (only ``allowed_users``);
* ``allowed_users``: user ids that may see a restricted point;
* ``project_id`` (optional): searches may be limited to projects.

A search by a user (``user_id``) sees workspace points and the restricted points that list the user; a search
without a user (a workspace service key) sees workspace points only, unless ``include_restricted`` (admins).
Point ids are the caller's string ids, mapped to UUIDs (uuid5) and kept in the payload as ``key``.

Embedded mode and scale. Qdrant's local mode evaluates payload filters point by point in Python and commits every
point in its own SQLite transaction: measured here, a filtered search over 20k points took 0.6-1.0 s and storing
5,000 points 75 s. So in embedded mode the store (a) switches the collection's SQLite file to WAL with
``synchronous=NORMAL`` (about 0.5 ms a point; a power cut may lose the last writes, never corrupt the file) and (b)
answers searches from an in-process copy of the vectors and access fields (:class:`_Mirror`: exact cosine kNN with
the same filters as :meth:`access_filter`, vectorised), fetching the hits' payloads from Qdrant by id. Qdrant stays
the store of record: the copy is rebuilt from it when the collection is opened, and a test checks that both give
the same hits. With ``SUNDAY_QDRANT_URL`` the server's indexed search is used as is.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sunday.errors import ValidationError

COLLECTIONS = ("tasks", "comments", "documents", "meeting_turns")
VISIBILITIES = ("workspace", "restricted")
DIM = 384
_NAMESPACE = uuid.UUID("6f1d0a3e-52a4-4c55-9d1e-5d2b8f0c7a11")
_OPEN: dict[str, "VectorStore"] = {}  # embedded stores open in this process, by folder
_OPEN_LOCK = threading.Lock()
_INDEXED = ("workspace_id", "visibility", "allowed_users", "project_id", "doc_id")


class _Mirror:
    """The vectors (unit length) and access fields of one embedded collection, for vectorised filtered kNN."""

    def __init__(self, dim: int):
        self.dim = dim
        self.rows: dict[str, int] = {}  # point uuid -> row
        self.ids: list[str] = []
        self.vectors = np.zeros((0, dim), dtype=np.float32)
        self.n = 0
        self.codes: dict[str, dict[str, int]] = {"workspace_id": {}, "project_id": {}, "doc_id": {}}
        self.fields = {k: np.zeros(0, dtype=np.int64) for k in self.codes}
        self.restricted = np.zeros(0, dtype=bool)
        self.live = np.zeros(0, dtype=bool)
        self.allowed: dict[int, frozenset[str]] = {}

    def _code(self, field: str, value: Any) -> int:
        if value is None:
            return -1
        table = self.codes[field]
        return table.setdefault(str(value), len(table))

    def _grow(self, need: int) -> None:
        cap = len(self.live)
        if need <= cap:
            return
        new = max(need, 2 * cap, 1024)
        self.vectors = np.resize(self.vectors, (new, self.dim))
        for k in self.fields:
            self.fields[k] = np.resize(self.fields[k], new)
        self.restricted = np.resize(self.restricted, new)
        live = np.zeros(new, dtype=bool)
        live[:cap] = self.live
        self.live = live

    def put(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]]) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
        self._grow(self.n + len(ids))
        for pid, v, p in zip(ids, vectors, payloads):
            row = self.rows.get(pid)
            if row is None:
                row = self.rows[pid] = self.n
                self.ids.append(pid)
                self.n += 1
            self.vectors[row] = v
            for k in self.fields:
                self.fields[k][row] = self._code(k, p.get(k))
            self.restricted[row] = p.get("visibility") == "restricted"
            if self.restricted[row]:
                self.allowed[row] = frozenset(p.get("allowed_users") or [])
            else:
                self.allowed.pop(row, None)
            self.live[row] = True

    def drop(self, ids: Sequence[str]) -> None:
        for pid in ids:
            row = self.rows.get(pid)
            if row is not None:
                self.live[row] = False

    def search(self, vector: np.ndarray, limit: int, workspace_id: str, user_id: str | None,
               include_restricted: bool, project_ids: Iterable[str] | None,
               doc_ids: Iterable[str] | None) -> list[tuple[str, float]]:
        n = self.n
        ws = self.codes["workspace_id"].get(workspace_id)
        if ws is None or n == 0:
            return []
        mask = self.live[:n] & (self.fields["workspace_id"][:n] == ws)
        for field, wanted in (("project_id", project_ids), ("doc_id", doc_ids)):
            if wanted is not None:
                codes = [self.codes[field][w] for w in wanted if w in self.codes[field]]
                mask &= np.isin(self.fields[field][:n], codes)
        if not include_restricted:
            visible = ~self.restricted[:n]
            if user_id:
                for row, users in self.allowed.items():
                    if user_id in users:
                        visible[row] = True
            mask &= visible
        rows = np.flatnonzero(mask)
        if not len(rows):
            return []
        q = vector / (np.linalg.norm(vector) or 1.0)
        scores = self.vectors[rows] @ q
        k = min(limit, len(rows))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[rows[i]], float(scores[i])) for i in top]


@dataclass(frozen=True)
class Hit:
    key: str
    score: float
    payload: dict[str, Any]


def point_uuid(collection: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{collection}/{key}"))


def _check_collection(collection: str) -> None:
    if collection not in COLLECTIONS:
        raise ValidationError("vector_store", "collection", f"must be one of {list(COLLECTIONS)}, got {collection!r}")


def _check_payload(payload: Mapping[str, Any], i: int) -> dict[str, Any]:
    ws = payload.get("workspace_id")
    if not isinstance(ws, str) or not ws:
        raise ValidationError("vector_store", "workspace_id", "is required on every point", record=i)
    out = dict(payload)
    out.setdefault("visibility", "workspace")
    if out["visibility"] not in VISIBILITIES:
        raise ValidationError("vector_store", "visibility", f"must be one of {list(VISIBILITIES)}", record=i)
    users = out.get("allowed_users") or []
    if isinstance(users, str) or not all(isinstance(u, str) for u in users):
        raise ValidationError("vector_store", "allowed_users", "must be a list of user ids", record=i)
    out["allowed_users"] = list(users)
    return out


class VectorStore:
    """A thin, typed layer over ``qdrant_client.QdrantClient`` (cosine distance, 384-d MiniLM vectors)."""

    def __init__(self, *, url: str | None = None, path: Path | None = None, location: str | None = None,
                 api_key: str | None = None, dim: int = DIM, prefix: str = "sunday_"):
        if path is not None and not url:
            Path(path).mkdir(parents=True, exist_ok=True)
        self._open_args = ({"url": url, "api_key": api_key} if url else {"path": str(path)} if path is not None
                           else {"location": location or ":memory:"})
        self.where = url or (str(path) if path is not None else location or ":memory:")
        self._client = None
        self.dim, self.prefix, self.remote = dim, prefix, bool(url)
        self.embedded_on_disk = path is not None and not url
        self._ready: set[str] = set()
        self._mirrors: dict[str, _Mirror] = {}
        self.closed = False
        self._lock = threading.RLock()

    @property
    def client(self):
        """The Qdrant client, opened on first use (an embedded folder is locked from then until ``close``)."""
        if self._client is None:
            from qdrant_client import QdrantClient

            with self._lock:
                if self._client is None:
                    try:
                        self._client = QdrantClient(**self._open_args)
                    except RuntimeError as exc:
                        if "already accessed" not in str(exc):
                            raise
                        from sunday.nlp.errors import VectorStoreBusy

                        raise VectorStoreBusy(f"the embedded vector store {self.where} is open in another process "
                                              "(a running Serve app or sunday command?); stop it, or use a Qdrant "
                                              "server (SUNDAY_QDRANT_URL)") from None
                    self.closed = False
        return self._client

    @classmethod
    def for_settings(cls, settings=None, **kwargs) -> "VectorStore":
        """``SUNDAY_QDRANT_URL`` when set, else the embedded store under ``<home>/qdrant`` -- one per folder and
        process (the folder is locked by the process that opens it, so every caller in it shares one)."""
        import os

        from sunday.settings import Settings

        settings = settings or Settings()
        if settings.qdrant_url:
            return cls(url=settings.qdrant_url, api_key=os.environ.get("SUNDAY_QDRANT_API_KEY"), **kwargs)
        key = str(settings.vector_store_dir)
        with _OPEN_LOCK:
            store = _OPEN.get(key)
            if store is None:
                store = _OPEN[key] = cls(path=settings.vector_store_dir, **kwargs)
            return store

    def name(self, collection: str) -> str:
        _check_collection(collection)
        return self.prefix + collection

    def ensure(self, collection: str) -> str:
        """Create the collection (and its payload indexes) when missing; returns its Qdrant name."""
        from qdrant_client import models

        name = self.name(collection)
        if name in self._ready:
            return name
        with self._lock:
            if not self.client.collection_exists(name):
                self.client.create_collection(name, vectors_config=models.VectorParams(
                    size=self.dim, distance=models.Distance.COSINE))
                for key in _INDEXED if self.remote else ():  # payload indexes: a server's (local mode has none)
                    self.client.create_payload_index(name, key, models.PayloadSchemaType.KEYWORD)
            if not self.remote:
                self._tune_local(name)
                self._mirrors[name] = self._load_mirror(name)
            self._ready.add(name)
        return name

    def _tune_local(self, name: str) -> None:
        """WAL and synchronous=NORMAL on the embedded collection's SQLite file (see the module notes)."""
        if not self.embedded_on_disk:
            return
        storage = getattr(getattr(self.client, "_client", None), "collections", {}).get(name)
        conn = getattr(getattr(storage, "storage", None), "storage", None)
        if conn is not None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

    def _load_mirror(self, name: str) -> _Mirror:
        mirror = _Mirror(self.dim)
        offset = None
        while True:
            points, offset = self.client.scroll(name, limit=10_000, offset=offset, with_vectors=True,
                                                with_payload=list(_INDEXED))
            if points:
                mirror.put([str(p.id) for p in points], np.array([p.vector for p in points], dtype=np.float32),
                           [p.payload or {} for p in points])
            if offset is None:
                break
        return mirror

    def upsert(self, collection: str, keys: Sequence[str], vectors: np.ndarray,
               payloads: Sequence[Mapping[str, Any]], batch: int = 512) -> int:
        """Insert or replace points (same key: replaced). Every payload needs ``workspace_id``."""
        from qdrant_client import models

        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValidationError("vector_store", "vector", f"must have shape (n, {self.dim}), got {vectors.shape}")
        if not (len(keys) == len(vectors) == len(payloads)):
            raise ValidationError("vector_store", "keys", f"{len(keys)} keys, {len(vectors)} vectors and "
                                  f"{len(payloads)} payloads differ in number")
        if not np.isfinite(vectors).all():
            raise ValidationError("vector_store", "vector", "holds NaN or infinite values")
        checked = [_check_payload(p, i) for i, p in enumerate(payloads)]
        name = self.ensure(collection)
        for lo in range(0, len(keys), batch):
            points = [models.PointStruct(id=point_uuid(collection, str(k)), vector=v.tolist(),
                                         payload={**p, "key": str(k)})
                      for k, v, p in zip(keys[lo:lo + batch], vectors[lo:lo + batch], checked[lo:lo + batch])]
            with warnings.catch_warnings():  # local mode's ">20,000 points" advice: the mirror handles search
                warnings.filterwarnings("ignore", message="Local mode is not recommended")
                self.client.upsert(name, points=points, wait=True)
            if name in self._mirrors:
                self._mirrors[name].put([p.id for p in points], vectors[lo:lo + batch], checked[lo:lo + batch])
        return len(keys)

    def access_filter(self, workspace_id: str, *, user_id: str | None = None, include_restricted: bool = False,
                      project_ids: Iterable[str] | None = None, doc_ids: Iterable[str] | None = None):
        from qdrant_client import models

        if not isinstance(workspace_id, str) or not workspace_id:
            raise ValidationError("search", "workspace_id", "is required: every search is limited to a workspace")
        must: list = [models.FieldCondition(key="workspace_id", match=models.MatchValue(value=workspace_id))]
        if project_ids is not None:
            must.append(models.FieldCondition(key="project_id", match=models.MatchAny(any=list(project_ids))))
        if doc_ids is not None:
            must.append(models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids))))
        if not include_restricted:
            should = [models.FieldCondition(key="visibility", match=models.MatchValue(value="workspace"))]
            if user_id:
                should.append(models.FieldCondition(key="allowed_users", match=models.MatchAny(any=[user_id])))
            must.append(models.Filter(should=should))
        return models.Filter(must=must)

    def search(self, collection: str, vector: np.ndarray, *, workspace_id: str, limit: int = 50,
               user_id: str | None = None, include_restricted: bool = False,
               project_ids: Iterable[str] | None = None, doc_ids: Iterable[str] | None = None,
               force_qdrant: bool = False) -> list[Hit]:
        """The ``limit`` nearest points the caller may see, best first (cosine similarity as ``score``).
        ``force_qdrant`` makes an embedded store use Qdrant's own (slow) filtered search: for checks."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise ValidationError("search", "vector", f"must have {self.dim} values, got {vector.shape[0]}")
        flt = self.access_filter(workspace_id, user_id=user_id, include_restricted=include_restricted,
                                 project_ids=project_ids, doc_ids=doc_ids)
        name = self.ensure(collection)
        if name in self._mirrors and not force_qdrant:
            found = self._mirrors[name].search(vector, int(limit), workspace_id, user_id, include_restricted,
                                               project_ids, doc_ids)
            if not found:
                return []
            records = {str(r.id): r.payload or {} for r in self.client.retrieve(name, [i for i, _ in found],
                                                                                 with_payload=True)}
            return [Hit(str(records[i].get("key")), score, dict(records[i])) for i, score in found if i in records]
        res = self.client.query_points(name, query=vector.tolist(), query_filter=flt, limit=int(limit),
                                       with_payload=True)
        return [Hit(str(p.payload.get("key")), float(p.score), dict(p.payload)) for p in res.points]

    def delete(self, collection: str, keys: Sequence[str]) -> None:
        from qdrant_client import models

        name = self.ensure(collection)
        ids = [point_uuid(collection, str(k)) for k in keys]
        self.client.delete(name, points_selector=models.PointIdsList(points=ids), wait=True)
        if name in self._mirrors:
            self._mirrors[name].drop(ids)

    def count(self, collection: str, workspace_id: str | None = None) -> int:
        from qdrant_client import models

        name = self.ensure(collection)
        flt = None if workspace_id is None else models.Filter(must=[models.FieldCondition(
            key="workspace_id", match=models.MatchValue(value=workspace_id))])
        return int(self.client.count(name, count_filter=flt, exact=True).count)

    def close(self) -> None:
        """Close the client (releases an embedded folder's lock); the store reopens on next use."""
        self.closed = True
        if self._client is not None:
            self._client.close()
            self._client = None
            self._ready.clear()
            self._mirrors.clear()
