"""The two-tier vector index: a FAISS main tier built in one go, plus real-time changes.

Inner product on L2-normalised float32 vectors (= cosine). As search engines keep segments:

- the *main* tier is a FAISS index (exact ``Flat`` for small corpora, ``HNSW`` above
  ``HNSW_THRESHOLD`` vectors, or any FAISS factory string), saved to disk and memory-mapped on
  load where FAISS allows it. It is never changed after the build;
- the *delta* tier holds vectors added after the build (real-time upserts), scored exactly.

A ``VectorIndex`` is immutable: ``with_changes`` returns a new one that shares the main tier
and carries its own tombstones (removed main vectors, skipped by searches) and delta. Readers
holding the old one keep a consistent view, and the snapshot's index is never mutated. The
next build compacts tombstones and delta away. Integer ids are external (the store's 63-bit
ids); internal positions never leave this package.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import InvalidInputError
from recommender.index.factory import (
    configure_loaded,
    faiss,
    new_faiss_index,
    resolve_spec,
)
from recommender.index.filtered import (
    EXACT_GATHER_MAX,
    SearchResult,
    is_selective,
    merge,
    search_with_mask,
    top_k,
)

_INDEX_FILE = "index.faiss"
_LABELS_FILE = "labels.npy"
_META_FILE = "index.json"


class VectorIndex:
    """Immutable two-tier FAISS index with external int64 ids and tombstones."""

    def __init__(self, main: Any, labels: np.ndarray, spec: str, dimension: int) -> None:
        self.main = main
        self.spec = spec
        self.dimension = dimension
        self._labels = np.asarray(labels, dtype=np.int64)  # main position -> external id
        self._position: Mapping[int, int] = {int(x): p for p, x in enumerate(self._labels)}
        self._alive = np.ones(len(self._labels), dtype=bool)
        self._delta_ids = np.zeros(0, dtype=np.int64)
        self._delta_vectors = np.zeros((0, dimension), dtype=np.float32)
        self._delta_position: Mapping[int, int] = {}
        concrete = faiss.downcast_index(main)
        if isinstance(concrete, faiss.IndexIVF):
            concrete.make_direct_map()  # lets IVF indexes reconstruct vectors by position
        self._flat = _flat_storage(main)
        self._stored = _flat_vectors(self._flat, dimension)

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
        index = new_faiss_index(resolved, dimension)
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
        return int(self._alive.sum()) + len(self._delta_ids)

    def __contains__(self, external_id: object) -> bool:
        return isinstance(external_id, int) and self._find(external_id) is not None

    @property
    def tombstones(self) -> int:
        """Vectors of the main tier that are removed but not yet compacted."""
        return int((~self._alive).sum())

    @property
    def main_size(self) -> int:
        """Positions in the main tier (live or not): the length of a ``main_mask``."""
        return len(self._labels)

    def ids(self) -> np.ndarray:
        """External ids of every live vector: the main tier's in position order, then the
        delta's in the order they were added."""
        return np.concatenate([self._labels[self._alive], self._delta_ids])

    # -- changes (copy on write) -----------------------------------------------------------

    def with_changes(
        self,
        ids: np.ndarray | Iterable[int] = (),
        vectors: np.ndarray | None = None,
        removed: Iterable[int] = (),
    ) -> VectorIndex:
        """A new index with ``removed`` ids gone and ``ids`` added or replaced."""
        added = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        gone = {int(i) for i in removed} | {int(i) for i in added}
        alive = self._alive
        keep_delta = np.ones(len(self._delta_ids), dtype=bool)
        for external in gone:
            position = self._position.get(external)
            if position is not None and alive[position]:
                if alive is self._alive:
                    alive = alive.copy()
                alive[position] = False
            delta_row = self._delta_position.get(external)
            if delta_row is not None:
                keep_delta[delta_row] = False
        delta_ids = self._delta_ids[keep_delta]
        delta_vectors = self._delta_vectors[keep_delta]
        if len(added):
            if vectors is None:
                raise InvalidInputError("vectors are needed for the added ids", field="vectors")
            new_vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(
                -1, self.dimension
            )
            delta_ids = np.concatenate([delta_ids, added])
            delta_vectors = np.vstack([delta_vectors, new_vectors])
        new = copy.copy(self)  # shares the main tier, labels and position map
        new._alive = alive
        new._delta_ids = delta_ids
        new._delta_vectors = delta_vectors
        if len(added) or not keep_delta.all():
            new._delta_position = {int(x): row for row, x in enumerate(delta_ids)}
        return new

    def folded(self) -> VectorIndex:
        """A new index whose main tier is a copy of this one's with the delta's vectors added
        after its positions (removed vectors stay tombstones until the next snapshot). Costs
        the copy and the delta's insertion, not a rebuild: call it off the request path."""
        if not len(self._delta_ids):
            return self
        main = faiss.clone_index(self.main)
        configure_loaded(main)
        main.add(np.ascontiguousarray(self._delta_vectors, dtype=np.float32))
        new = VectorIndex(main, np.concatenate([self._labels, self._delta_ids]), self.spec,
                          self.dimension)  # fmt: skip
        # an id both removed from the main tier and re-added lives at its new position
        new._alive = np.concatenate([self._alive, np.ones(len(self._delta_ids), dtype=bool)])
        return new

    # -- search ----------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        *,
        main_mask: np.ndarray | None = None,
    ) -> SearchResult:
        """The ``k`` nearest live vectors of each query, optionally among ``allowed`` ids only.

        ``allowed`` is an array of external ids (see ``filtered`` for how a selective filter
        is searched). A caller that keeps its rows aligned with the main tier (as ``ids()``
        listed it after loading) may pass ``main_mask``, one boolean per main position,
        instead of looking every id up (measured: the lookup dominated filtered queries at 1M
        vectors); ``allowed`` then restricts the delta tier only.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}", field="k")
        live = self._alive
        delta_mask = np.ones(len(self._delta_ids), dtype=bool)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            delta_mask = np.isin(self._delta_ids, allowed)
        if main_mask is not None:
            if len(main_mask) != len(live):
                raise InvalidInputError(
                    f"has {len(main_mask)} entries, the main tier {len(live)}", field="main_mask"
                )
            live = live & main_mask
            if allowed is None:
                delta_mask[:] = False
        elif allowed is not None:
            live = live & np.isin(self._labels, allowed)
        n_main = int(live.sum())
        parts = []
        if n_main:
            filtered = allowed is not None or main_mask is not None
            if filtered and is_selective(n_main, len(live)) and not self.spec.startswith("Flat"):
                parts.append(self._exact(queries, k, live, n_main))
            else:
                parts.append(search_with_mask(self.main, self._labels, queries, k, live))
        if delta_mask.any():
            parts.append(
                top_k(queries @ self._delta_vectors[delta_mask].T, self._delta_ids[delta_mask], k)
            )
        return merge(parts, len(queries), k)

    def _exact(self, queries: np.ndarray, k: int, live: np.ndarray, n_live: int) -> SearchResult:
        """Exact scores of the ``live`` main positions: FAISS's flat scan with the mask as a
        selector where the index stores raw vectors (no copy of them), else the gathered
        vectors (a few, or compressed codes decoded)."""
        if self._flat is not None and n_live > EXACT_GATHER_MAX:
            return search_with_mask(self._flat, self._labels, queries, k, live)
        positions = np.flatnonzero(live)
        return top_k(queries @ self._main_vectors(positions).T, self._labels[positions], k)

    def main_vectors_at(self, positions: np.ndarray) -> np.ndarray:
        """Stored vectors of main-tier positions (live ones: the caller's rows say so)."""
        return self._main_vectors(np.asarray(positions, dtype=np.int64))

    def delta_vectors_of(self, external_ids: list[int]) -> np.ndarray:
        """Stored vectors of ids written to the delta tier since the last fold."""
        rows = [self._delta_position[i] for i in external_ids]
        return self._delta_vectors[rows]

    def vector(self, external_id: int) -> np.ndarray | None:
        """The stored vector of an id (None when absent)."""
        if self._find(external_id) is None:
            return None
        vector: np.ndarray = self.vectors([external_id])[0]
        return vector

    def vectors(self, external_ids: list[int]) -> np.ndarray:
        """Stored vectors of several ids (zeros for absent ones)."""
        out = np.zeros((len(external_ids), self.dimension), dtype=np.float32)
        if not len(external_ids):
            return out
        # one lookup per id, then one gather per tier (a request reads hundreds at once)
        delta = np.fromiter(
            (self._delta_position.get(int(i), -1) for i in external_ids), np.int64,
            len(external_ids),
        )  # fmt: skip
        main = np.fromiter(
            (self._position.get(int(i), -1) for i in external_ids), np.int64, len(external_ids)
        )
        main[delta >= 0] = -1  # a re-added id lives in the delta
        known = main >= 0
        main_rows = np.flatnonzero(known)
        main_rows = main_rows[self._alive[main[main_rows]]]
        if len(main_rows):
            out[main_rows] = self._main_vectors(main[main_rows])
        delta_rows = np.flatnonzero(delta >= 0)
        if len(delta_rows):
            out[delta_rows] = self._delta_vectors[delta[delta_rows]]
        return out

    def _main_vectors(self, positions: np.ndarray) -> np.ndarray:
        if self._stored is not None:
            stored: np.ndarray = self._stored[positions]
            return stored
        # compressed codes (IVF-PQ, SQ): decode one by one
        return np.vstack([self.main.reconstruct(int(p)) for p in positions])

    def _find(self, external_id: int) -> tuple[str, int] | None:
        row = self._delta_position.get(external_id)
        if row is not None:
            return "delta", row
        position = self._position.get(external_id)
        if position is not None and self._alive[position]:
            return "main", position
        return None

    # -- persistence -----------------------------------------------------------------------

    def save(self, directory: str | Path) -> list[Path]:
        """Write the index (compacted: tombstones and delta folded in only by a rebuild)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.tombstones or len(self._delta_ids):
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
        configure_loaded(main)
        labels = np.load(directory / _LABELS_FILE)
        return cls(main, labels, meta["spec"], int(meta["dimension"]))


def _flat_storage(index: Any) -> Any | None:
    """The flat index holding an index's raw vectors, when it has one (Flat, HNSW)."""
    concrete = faiss.downcast_index(index)
    storage = faiss.downcast_index(concrete.storage) if hasattr(concrete, "storage") else concrete
    return storage if isinstance(storage, faiss.IndexFlat) else None


def _flat_vectors(storage: Any | None, dimension: int) -> np.ndarray | None:
    """A zero-copy view of a flat index's raw vectors."""
    if storage is None or storage.ntotal == 0:
        return None
    flat = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * dimension)
    view: np.ndarray = np.asarray(flat).view(np.float32).reshape(storage.ntotal, dimension)
    return view
