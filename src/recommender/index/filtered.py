"""Search under a filter, and merging the answers of several tiers.

A filter is a bitmap over the main tier's positions. When it keeps few vectors (at most
``EXACT_SUBSET_MAX``, or under 2 %), the allowed vectors are scored exactly instead of walking
an approximate index, which loses recall under very selective filters; otherwise FAISS walks
its index with the bitmap as a selector and a beam widened by 1 / share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.index.factory import faiss

# Measured (bench_ann.py): exact costs about 1 ms per 1,000 allowed vectors with the id
# matching (0.8 ms at 750, 4.6 ms at 5,000, 9.9 ms at 15,000), while HNSW with the filter as a
# selector and a beam widened by 1 / share kept recall 0.996 at 1.2 ms for a 50 % filter.
EXACT_SUBSET_MAX = 5_000
# Exact scoring of a subset: gathering its vectors (a copy) beats FAISS's flat scan with the
# subset as a selector (which checks every position) only for small subsets. Measured on
# 31.6k x 512: 2,000 vectors 1.9 ms gathered, 0.6 ms scanned; 500: 0.08 against 0.3 ms.
EXACT_GATHER_MAX = 1_000
FILTERED_EF_MAX = 1024


@dataclass(frozen=True)
class SearchResult:
    """Scores and external ids, best first, one row per query; missing slots are id -1."""

    scores: np.ndarray
    ids: np.ndarray


def is_selective(n_allowed: int, n_total: int) -> bool:
    """True when a filter keeps so few vectors that exact scoring beats the index."""
    return n_allowed <= EXACT_SUBSET_MAX or n_allowed < 0.02 * n_total


def search_with_mask(
    index: Any, labels: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray
) -> SearchResult:
    """FAISS search restricted to the positions where ``mask`` is true."""
    n_live = int(mask.sum())
    params = None
    if not mask.all():
        selector = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        params = _search_params(index, selector, n_live / max(1, len(mask)))
    scores, positions = index.search(queries, min(k, n_live), params=params)
    found = np.where(positions >= 0, labels[np.maximum(positions, 0)], -1)
    return SearchResult(scores, found)


def _search_params(index: Any, selector: Any, share: float) -> Any:
    concrete = faiss.downcast_index(index)
    if isinstance(concrete, faiss.IndexHNSW):
        ef = int(min(FILTERED_EF_MAX, max(concrete.hnsw.efSearch, concrete.hnsw.efSearch / share)))
        return faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
    if isinstance(concrete, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=concrete.nprobe)
    return faiss.SearchParameters(sel=selector)


def top_k(scores: np.ndarray, labels: np.ndarray, k: int) -> SearchResult:
    """The ``k`` best of exact scores (queries x candidates), labelled."""
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


def merge(parts: list[SearchResult], n_queries: int, k: int) -> SearchResult:
    """One best-first answer from the answers of several tiers."""
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
