"""Candidate generation: the stories worth ranking for a query, from two sides.

- **dense**: the nearest neighbours of the query vector in the FAISS index (under the filters
  through the index's filtered search);
- **lexical**: the stories sharing the query's most distinctive character n-grams, through the
  inverted index.

Each side fetches ``fetch_size`` stories; their union, with exact dense and lexical cosines,
is the ``CandidatePool`` that ``ranking.rank`` orders. The engine and the evaluation tool both
call ``gather``, so the quality figures describe what users get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.queries import Query
from recommender.ranking import CandidatePool, Filters, RankingOptions
from recommender.rowspace import RowSpace
from recommender.store import int_id


@dataclass(frozen=True)
class Candidates:
    """A query's candidates: int ids, their rows, the pool, and which side found each."""

    keys: list[int]
    rows: np.ndarray
    pool: CandidatePool
    from_dense: np.ndarray
    from_lexical: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)


def fetch_size(k: int, options: RankingOptions) -> int:
    """How many candidates each side fetches for a list of ``k``."""
    return max(options.candidates, 3 * k)


def sides(options: RankingOptions) -> tuple[bool, bool]:
    """(dense, lexical): dense only searches embeddings only, lexical only n-grams only."""
    return options.dense_weight > 0.0, options.dense_weight < 1.0


def gather(
    space: RowSpace,
    query: Query,
    fetch: int,
    filters: Filters,
    *,
    dense: bool = True,
    lexical: bool = True,
) -> Candidates:
    """The union of the ``fetch`` best stories of each side that pass ``filters`` and are not
    excluded (the query's own articles, ``filters.exclude_ids``)."""
    exclude = query.exclude | {int_id(i) for i in filters.exclude_ids}
    mask = space.mask(filters) if filters.restricts else space.alive
    keys: list[int] = []
    if dense:
        keys = _dense(space, query, fetch, filters, mask, exclude)
    n_dense = len(keys)
    lexical_keys: set[int] = set()
    if lexical:
        seen = set(keys)
        for row in space.lexical.candidates(query.lexical, mask, fetch + len(exclude)):
            key = int(space.int_ids[row])
            if key in exclude:
                continue
            lexical_keys.add(key)
            if key not in seen:
                keys.append(key)
                seen.add(key)
    from_dense = np.arange(len(keys)) < n_dense
    from_lexical = np.array([key in lexical_keys for key in keys], dtype=bool)
    return _pool(space, query, keys, from_dense, from_lexical)


def _dense(
    space: RowSpace,
    query: Query,
    fetch: int,
    filters: Filters,
    mask: np.ndarray,
    exclude: frozenset[int] | set[int],
) -> list[int]:
    vector = query.vector[None, :]
    if filters.restricts:
        allowed = mask.copy()
        for key in exclude:
            row = space.row_of.get(key)
            if row is not None:
                allowed[row] = False
        n_main = space.n_main
        if space.main_aligned:
            # rows before n_main are the main tier's positions: no id lookups
            found = space.vectors.search(
                vector,
                fetch,
                allowed=space.int_ids[n_main:][allowed[n_main:]],
                main_mask=allowed[:n_main],
            )
        else:
            found = space.vectors.search(vector, fetch, allowed=space.int_ids[allowed])
    else:
        found = space.vectors.search(vector, fetch + len(exclude))
    return [
        int(i)
        for i in found.ids[0]
        if int(i) >= 0 and int(i) not in exclude and int(i) in space.row_of
    ][:fetch]  # an id the row space does not know yet is a write in flight: skip it


def _pool(
    space: RowSpace,
    query: Query,
    keys: list[int],
    from_dense: np.ndarray,
    from_lexical: np.ndarray,
) -> Candidates:
    rows = np.array([space.row_of[key] for key in keys], dtype=np.int64)
    vectors = space.vectors.vectors(keys)
    pool = CandidatePool(
        dense=vectors @ query.vector if keys else np.zeros(0),
        lexical=space.lexical.scores(rows, query.lexical),
        vectors=vectors,
        published_ts=space.published_ts[rows],
        langs=[str(space.langs[r]) for r in rows],
        sources=[str(space.sources[r]) for r in rows],
    )
    return Candidates(keys, rows, pool, from_dense, from_lexical)
