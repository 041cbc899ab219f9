"""The FAISS vector index: build, add, remove, search, save, load.

Inner product on L2-normalised float32 vectors (= cosine). The index has two tiers, as
search engines keep segments:

- the *main* FAISS index, built in one go (exact ``Flat`` for small corpora, ``HNSW`` above
  ``HNSW_THRESHOLD`` vectors, or any FAISS factory string), saved to disk and memory-mapped
  on load where FAISS allows it;
- a small exact *delta* index for vectors added after the build (real-time upserts).

Removing a vector from the main tier marks it with a tombstone that searches skip (most FAISS
index types cannot remove in place); the next build compacts them away. Integer ids are
external (the store's 63-bit ids); internal positions never leave this module.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
from threadpoolctl import ThreadpoolController

from recommender.errors import InvalidInputError

# faiss ships partial SWIG stubs that do not know its keyword arguments; treat it as untyped
faiss: Any = _faiss

# Measured in benchmarks/bench_ann.py (results/ann-quick.json): exact single-query search over
# 512-d vectors costs ~0.1 ms per 1,000 vectors on one core (20k: ~2 ms); HNSW32 answers in
# 0.2-0.4 ms at recall@10 >= 0.99 from there on, so "auto" switches at 20,000.
HNSW_THRESHOLD = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
# efSearch 64: recall@10 0.991 on ANT embeddings and 0.989 on 100k synthetic, at ~0.2-0.35 ms.
HNSW_EF_SEARCH = 64
# Under a filter that keeps at most this many vectors (or under 2 %), score the allowed subset
# exactly. Measured (bench_ann.py): exact costs about 1 ms per 1,000 allowed vectors with the id
# matching (0.8 ms at 750, 4.6 ms at 5,000, 9.9 ms at 15,000), while HNSW with the filter as a
# selector and a beam widened by 1 / share kept recall 0.996 at 1.2 ms for a 50 % filter.
EXACT_SUBSET_MAX = 5_000
FILTERED_EF_MAX = 1024
# One OpenMP thread per query: on 2 cores exact search is faster single-threaded (100k: 9.7 ms
# vs 18.6 ms with 2 threads); concurrent requests use the other core.
SERVING_THREADS = 1
IVF_NPROBE = 16
_INDEX_FILE = "index.faiss"
_LABELS_FILE = "labels.npy"
_META_FILE = "index.json"


def resolve_spec(spec: str, n_vectors: int) -> str:
    """The FAISS factory string for ``spec`` ("auto" picks by corpus size)."""
    if spec == "auto":
        return "Flat" if n_vectors < HNSW_THRESHOLD else f"HNSW{HNSW_M},Flat"
    return spec


def _new_faiss_index(spec: str, dimension: int) -> Any:
    try:
        index = faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise InvalidInputError(
            f"not a FAISS factory string FAISS accepts: {spec!r} ({exc})", field="index_type"
        ) from None
    if "IDMap" in spec:
        raise InvalidInputError("give the factory string without IDMap", field="index_type")
    hnsw = _hnsw_of(index)
    if hnsw is not None:
        hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.efSearch = HNSW_EF_SEARCH
    concrete = faiss.downcast_index(index)
    if isinstance(concrete, faiss.IndexIVF):
        concrete.nprobe = min(concrete.nlist, IVF_NPROBE)  # saved with the index
    return index


def _hnsw_of(index: Any) -> Any:
    try:
        return faiss.downcast_index(index).hnsw
    except AttributeError:
        return None


@dataclass
class SearchResult:
    """Scores and external ids, best first, one row per query; missing slots are id -1."""

    scores: np.ndarray
    ids: np.ndarray


class VectorIndex:
    """Two-tier FAISS index with external int64 ids and tombstones. Thread-safe."""

    def __init__(self, main: Any, labels: np.ndarray, spec: str, dimension: int) -> None:
        self.main = main
        self.spec = spec
        self.dimension = dimension
        self._labels = np.asarray(labels, dtype=np.int64)  # main position -> external id
        self._alive = np.ones(len(self._labels), dtype=bool)
        self._position = {int(label): pos for pos, label in enumerate(self._labels)}
        self._delta = faiss.IndexFlatIP(dimension)
        self._delta_labels: list[int] = []
        self._lock = threading.RLock()
        concrete = faiss.downcast_index(main)
        if isinstance(concrete, faiss.IndexIVF):
            concrete.make_direct_map()  # lets IVF indexes reconstruct vectors by position

    # -- building --------------------------------------------------------------------------

    @classmethod
    def build(
        cls, ids: np.ndarray, vectors: np.ndarray, spec: str = "auto", dimension: int | None = None
    ) -> VectorIndex:
        """A new index over ``vectors`` (rows L2-normalised) with external ``ids``."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if dimension is None:
            if vectors.ndim != 2 or vectors.shape[1] == 0:
                raise InvalidInputError("cannot infer the dimension of no vectors", field="vectors")
            dimension = vectors.shape[1]
        if len(ids) and vectors.shape != (len(ids), dimension):
            raise InvalidInputError(
                f"vectors have shape {vectors.shape}, expected ({len(ids)}, {dimension})",
                field="vectors",
            )
        if len(np.unique(ids)) != len(ids):
            raise InvalidInputError("ids are not unique", field="ids")
        resolved = resolve_spec(spec, len(ids))
        index = _new_faiss_index(resolved, dimension)
        if not index.is_trained:
            if len(ids) < 1:
                raise InvalidInputError(f"{resolved} needs training vectors", field="index_type")
            try:
                index.train(vectors)
            except RuntimeError as exc:
                raise InvalidInputError(
                    f"cannot train {resolved} on {len(ids)} vectors: {exc}", field="index_type"
                ) from None
        if len(ids):
            index.add(vectors)
        return cls(index, np.asarray(ids, dtype=np.int64), resolved, dimension)

    # -- size ------------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return int(self._alive.sum()) + len(self._delta_labels)

    def __contains__(self, external_id: object) -> bool:
        with self._lock:
            return isinstance(external_id, int) and self._find(external_id) is not None

    @property
    def tombstones(self) -> int:
        """Vectors of the main tier that are removed but not yet compacted."""
        with self._lock:
            return int((~self._alive).sum())

    def ids(self) -> np.ndarray:
        """External ids of every live vector."""
        with self._lock:
            return np.concatenate(
                [self._labels[self._alive], np.asarray(self._delta_labels, dtype=np.int64)]
            )

    # -- changes ---------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors (replacing removes the old vector first)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dimension)
        with self._lock:
            self.remove(ids)
            self._delta.add(vectors)
            self._delta_labels.extend(int(i) for i in ids)

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Remove vectors by external id; returns how many were present."""
        removed = 0
        with self._lock:
            delta_drop: list[int] = []
            for external in (int(i) for i in ids):
                position = self._position.get(external)
                if position is not None and self._alive[position]:
                    self._alive[position] = False
                    removed += 1
                    continue
                if external in self._delta_labels:
                    delta_drop.append(self._delta_labels.index(external))
            if delta_drop:
                # the delta is a small exact index: rebuild it without the dropped rows
                keep = [i for i in range(len(self._delta_labels)) if i not in set(delta_drop)]
                kept_vectors = (
                    self._delta.reconstruct_n(0, self._delta.ntotal)[keep]
                    if keep
                    else np.zeros((0, self.dimension), dtype=np.float32)
                )
                self._delta = faiss.IndexFlatIP(self.dimension)
                if keep:
                    self._delta.add(kept_vectors)
                self._delta_labels = [self._delta_labels[i] for i in keep]
                removed += len(delta_drop)
        return removed

    # -- search ----------------------------------------------------------------------------

    @property
    def main_size(self) -> int:
        """Positions in the main tier (live or not): the length of a ``main_mask``."""
        return len(self._labels)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        *,
        main_mask: np.ndarray | None = None,
    ) -> SearchResult:
        """The ``k`` nearest live vectors of each query, optionally among ``allowed`` ids only.

        ``allowed`` is an array of external ids. When it is small relative to the index
        (at most ``EXACT_SUBSET_MAX`` vectors or below 2 %), its vectors are scored exactly
        instead of walking the approximate index, which loses recall under very selective
        filters. A caller that keeps its rows aligned with the main tier (as ``ids()`` listed
        it after loading) may pass ``main_mask``, one boolean per main position, instead of
        looking every id up (measured: the lookup dominated filtered queries at 1M vectors);
        ``allowed`` then restricts the real-time (delta) tier only.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}", field="k")
        with self._lock:
            live = self._alive
            delta_ids = np.asarray(self._delta_labels, dtype=np.int64)
            delta_mask = np.ones(len(delta_ids), dtype=bool)
            if allowed is not None:
                allowed = np.asarray(allowed, dtype=np.int64)
                delta_mask = np.isin(delta_ids, allowed)
            if main_mask is not None:
                if len(main_mask) != len(live):
                    raise InvalidInputError(
                        f"has {len(main_mask)} entries, the main tier {len(live)}",
                        field="main_mask",
                    )
                live = live & main_mask
                if allowed is None:
                    delta_mask[:] = False
            elif allowed is not None:
                live = live & np.isin(self._labels, allowed)
            n_main = int(live.sum())
            parts = []
            if n_main:
                selective = (allowed is not None or main_mask is not None) and (
                    n_main <= EXACT_SUBSET_MAX or n_main < 0.02 * len(self._labels)
                )
                if selective and not self.spec.startswith("Flat"):
                    parts.append(self._exact_subset(queries, k, np.flatnonzero(live)))
                else:
                    parts.append(self._search_main(queries, k, live, n_main))
            if delta_mask.any():
                parts.append(self._search_delta(queries, k, delta_mask, delta_ids))
        return _merge(parts, len(queries), k)

    def _search_main(
        self, queries: np.ndarray, k: int, mask: np.ndarray, n_live: int
    ) -> SearchResult:
        params = None
        if not mask.all():
            selector = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
            params = _search_params(self.main, selector, n_live / max(1, len(mask)))
        kk = min(k, n_live)
        scores, positions = self.main.search(queries, kk, params=params)
        labels = np.where(positions >= 0, self._labels[np.maximum(positions, 0)], -1)
        return SearchResult(scores, labels)

    def _exact_subset(self, queries: np.ndarray, k: int, positions: np.ndarray) -> SearchResult:
        stored = self._flat_vectors()
        if stored is not None:
            vectors = stored[positions]
        else:  # compressed codes (IVF-PQ, SQ): decode one by one
            vectors = np.vstack([self.main.reconstruct(int(p)) for p in positions])
        return _top_k(queries @ vectors.T, self._labels[positions], k)

    def _flat_vectors(self) -> np.ndarray | None:
        """A zero-copy view of the main tier's raw vectors, when it stores them (Flat, HNSW)."""
        concrete = faiss.downcast_index(self.main)
        storage = (
            faiss.downcast_index(concrete.storage) if hasattr(concrete, "storage") else concrete
        )
        if not isinstance(storage, faiss.IndexFlat) or storage.ntotal == 0:
            return None
        flat = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * self.dimension)
        view: np.ndarray = np.asarray(flat).view(np.float32).reshape(storage.ntotal, self.dimension)
        return view

    def _search_delta(
        self, queries: np.ndarray, k: int, mask: np.ndarray, delta_ids: np.ndarray
    ) -> SearchResult:
        vectors = self._delta.reconstruct_n(0, self._delta.ntotal)[mask]
        return _top_k(queries @ vectors.T, delta_ids[mask], k)

    def vector(self, external_id: int) -> np.ndarray | None:
        """The stored vector of an id (None when absent)."""
        with self._lock:
            found = self._find(external_id)
            if found is None:
                return None
            tier, position = found
            source = self.main if tier == "main" else self._delta
            return np.asarray(source.reconstruct(position), dtype=np.float32)

    def vectors(self, external_ids: list[int]) -> np.ndarray:
        """Stored vectors of several ids (zeros for absent ones)."""
        out = np.zeros((len(external_ids), self.dimension), dtype=np.float32)
        with self._lock:
            stored = self._flat_vectors()
            for row, external in enumerate(external_ids):
                position = self._position.get(int(external))
                if stored is not None and position is not None and self._alive[position]:
                    out[row] = stored[position]
                    continue
                found = self._find(int(external))
                if found is not None:
                    tier, position = found
                    source = self.main if tier == "main" else self._delta
                    out[row] = source.reconstruct(position)
        return out

    def _find(self, external_id: int) -> tuple[str, int] | None:
        if external_id in self._delta_labels:
            return "delta", self._delta_labels.index(external_id)
        position = self._position.get(external_id)
        if position is not None and self._alive[position]:
            return "main", position
        return None

    # -- persistence -----------------------------------------------------------------------

    def save(self, directory: str | Path) -> list[Path]:
        """Write the index (compacted: tombstones and delta folded in only by a rebuild)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self.tombstones or self._delta_labels:
                raise InvalidInputError(
                    "save a rebuilt index: this one has live changes", field="index"
                )
            faiss.write_index(self.main, str(directory / _INDEX_FILE))
            np.save(directory / _LABELS_FILE, self._labels)
            meta = {"spec": self.spec, "dimension": self.dimension, "count": len(self._labels)}
            (directory / _META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        return [directory / n for n in (_INDEX_FILE, _LABELS_FILE, _META_FILE)]

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = True) -> VectorIndex:
        """Load a saved index, memory-mapped when FAISS supports it for the index type."""
        directory = Path(directory)
        meta = json.loads((directory / _META_FILE).read_text(encoding="utf-8"))
        path = str(directory / _INDEX_FILE)
        main = None
        if mmap:
            try:
                main = faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                main = None  # this index type cannot be mapped: read it into memory
        if main is None:
            main = faiss.read_index(path)
        hnsw = _hnsw_of(main)
        if hnsw is not None:
            hnsw.efSearch = HNSW_EF_SEARCH
        labels = np.load(directory / _LABELS_FILE)
        return cls(main, labels, meta["spec"], int(meta["dimension"]))


def _search_params(index: Any, selector: Any, share: float) -> Any:
    concrete = faiss.downcast_index(index)
    if isinstance(concrete, faiss.IndexHNSW):
        ef = int(min(FILTERED_EF_MAX, max(concrete.hnsw.efSearch, concrete.hnsw.efSearch / share)))
        return faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
    if isinstance(concrete, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=concrete.nprobe)
    return faiss.SearchParameters(sel=selector)


def _top_k(scores: np.ndarray, labels: np.ndarray, k: int) -> SearchResult:
    kk = min(k, scores.shape[1])
    if kk == 0:
        return SearchResult(
            np.zeros((len(scores), 0), np.float32), np.zeros((len(scores), 0), np.int64)
        )
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return SearchResult(
        np.take_along_axis(top_scores, order, axis=1).astype(np.float32),
        labels[np.take_along_axis(top, order, axis=1)],
    )


def _merge(parts: list[SearchResult], n_queries: int, k: int) -> SearchResult:
    if not parts:
        return SearchResult(
            np.full((n_queries, 0), -np.inf, np.float32), np.full((n_queries, 0), -1, np.int64)
        )
    if len(parts) == 1:
        result = parts[0]
    else:
        scores = np.concatenate([p.scores for p in parts], axis=1)
        ids = np.concatenate([p.ids for p in parts], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        result = SearchResult(
            np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
        )
    valid = result.ids[0] >= 0 if n_queries == 1 else None
    if valid is not None and not valid.all():
        result = SearchResult(result.scores[:, valid], result.ids[:, valid])
    return result


_BLAS = ThreadpoolController()


def set_threads(threads: int) -> None:
    """FAISS (OpenMP) and numpy's BLAS threads for this process.

    A server runs many requests at once, each on its own thread: BLAS threads on top of them
    only contend (measured: the 200 x 200 similarity product of one request took 30 % of the
    server's time with 2 BLAS threads under 4 concurrent requests).
    """
    faiss.omp_set_num_threads(max(1, threads))
    _BLAS.limit(limits=max(1, threads), user_api="blas")


def fsync_file(path: str | Path) -> None:
    """Flush a written file to disk."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
