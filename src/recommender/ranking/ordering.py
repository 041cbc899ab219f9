"""A total, deterministic order for ranked stories, the same on every path that builds a list.

A stored list must equal what ``Related`` ranks live, and a list kept fresh after writes must
equal a full recompute (``freshness``, ``tests/test_lists.py``). Those paths see the same
stories at different rows (a fold moves rows between tiers, a batch holds other rows), and
float32 BLAS products round a row's dot product differently by its position in the matrix:
two stories with equal scores (a near-copy at the same recency floor) then change places with
row order, batch size, package versions or the CPU. So wherever a list is built:

- cosines are computed in float64 from the stored float32 vectors (each product is exact;
  the sum rounds at about 1e-16, far below the precision scores are compared at);
- scores are compared at ``SCORE_DTYPE`` precision, float32: what the API serves
  (``RelatedItem.score`` is a protobuf float) and what stored lists keep;
- equal scores are broken by the story's int id (``store.int_id``), smallest first: a key
  that does not depend on where a story lies in the index.
"""

from __future__ import annotations

import numpy as np

SCORE_DTYPE = np.float32
_CHUNK_ROWS = 8192  # bounds the float64 copy when a whole index is scored (``recall``)


def cosines(vectors: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """float64 inner products of each row of ``vectors`` with ``vector`` (unit vectors:
    cosines)."""
    query = np.asarray(vector, dtype=np.float64)
    if len(vectors) <= _CHUNK_ROWS:
        return np.asarray(vectors, dtype=np.float64) @ query
    out = np.empty(len(vectors), dtype=np.float64)
    for start in range(0, len(vectors), _CHUNK_ROWS):
        part = vectors[start : start + _CHUNK_ROWS]
        out[start : start + len(part)] = np.asarray(part, dtype=np.float64) @ query
    return out


def comparable(scores: np.ndarray) -> np.ndarray:
    """Scores at the precision they are compared at (``SCORE_DTYPE``)."""
    return np.asarray(scores, dtype=np.float64).astype(SCORE_DTYPE)


def by_score(scores: np.ndarray, keys: np.ndarray) -> list[int]:
    """Positions ordered by score, best first, equal scores by key, smallest first."""
    if not len(scores):
        return []
    order: list[int] = np.lexsort((np.asarray(keys), -comparable(scores))).tolist()
    return order


def top_by_score(scores: np.ndarray, keys: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` best scores in ``by_score`` order, without sorting them all:
    ties at the cut are settled by key, so the same ``n`` are chosen in any row order."""
    if n <= 0 or not len(scores):
        return np.zeros(0, dtype=np.int64)
    values = comparable(scores)
    keys = np.asarray(keys)
    if len(values) > n:
        cut = -np.partition(-values, n - 1)[n - 1]  # the n-th best score
        above = np.flatnonzero(values > cut)
        at_cut = np.flatnonzero(values == cut)
        at_cut = at_cut[np.argsort(keys[at_cut], kind="stable")[: n - len(above)]]
        chosen = np.concatenate([above, at_cut])
    else:
        chosen = np.arange(len(values))
    return chosen[np.lexsort((keys[chosen], -values[chosen]))]
