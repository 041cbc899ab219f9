"""Candidate generation: the stories worth ranking for a query, from two sides.

- **dense**: the nearest neighbours of the query vector in the FAISS index (under the filters
  through the index's filtered search);
- **lexical**: the stories sharing the query's most distinctive character n-grams, through the
  inverted index.

With recency on, each side also searches the query's time window (see ``gather``). Each
side fetches ``fetch_size`` stories; their union, with exact dense and lexical cosines,
is the ``CandidatePool`` that ``ranking.rank`` orders. The engine and the evaluation tool both
call ``gather``, so the quality figures describe what users get.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recommender.index.lexical import top_rows
from recommender.ranking import (
    RECENCY_FLOOR_HALF_LIVES,
    CandidatePool,
    Filters,
    RankedList,
    RankingOptions,
    rank,
    recency_window,
)
from recommender.ranking.ordering import cosines
from recommender.requests.queries import Query
from recommender.rowspace.space import RowSpace
from recommender.storage.schema import int_id

# Nested windows around the query's date, in recency half-lives back (twice as far forward):
# the widest is where recency reaches its floor; the narrow ones find same-time stories that
# recency lifts above more relevant ones further away (measured on ANT: docs/quality.md).
WINDOW_HALF_LIVES: tuple[float, ...] = (0.125, 0.5, 2.0, RECENCY_FLOOR_HALF_LIVES)
WINDOW_FETCH_SHARE = 0.5  # each window side fetches this share of what a global side fetches
WINDOW_REDUNDANT_SHARE = 0.75


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
    half_life_days: float | None = None,
) -> Candidates:
    """The union of the ``fetch`` best stories of each side that pass ``filters`` and are not
    excluded (the query's own articles, ``filters.exclude_ids``).

    With a recency half-life, each side also searches the query's time window (where recency
    has not reached its floor, ``ranking.recency_window``): on a multi-year archive the
    nearest stories of the whole archive can all be years away, decayed to the floor, while
    the stories recency puts first are near the query's date.
    """
    exclude = query.exclude | {int_id(i) for i in filters.exclude_ids}
    mask = space.mask(filters) if filters.restricts else space.alive
    if filters.ids:  # a candidate set: every one of its stories, none searched for
        return given(space, query, [int_id(i) for i in filters.ids], mask, exclude)
    masks: list[np.ndarray | None] = [mask if filters.restricts else None]
    enclosing = int(mask.sum())
    for window in reversed(time_windows(space, query.reference_ts, half_life_days)):
        in_window = mask & window
        size = int(in_window.sum())
        # a window holding most of the search around it adds little but its cost
        if 0 < size <= WINDOW_REDUNDANT_SHARE * enclosing:
            masks.append(in_window)
            enclosing = size
    window_fetch = max(1, round(fetch * WINDOW_FETCH_SHARE))
    searches = [(side_mask, fetch if i == 0 else window_fetch) for i, side_mask in enumerate(masks)]
    dense_found: list[int] = []
    lexical_found: list[int] = []
    if dense:
        for side_mask, n in searches:
            dense_found += _dense(space, query, n, side_mask, exclude)
    if lexical:
        scores = space.lexical.partial_scores(query.lexical)
        for side_mask, n in searches:
            allowed = mask if side_mask is None else side_mask
            rows = top_rows(scores, allowed, n + len(exclude), space.int_ids)
            lexical_found += [key for key in space.int_ids[rows].tolist() if key not in exclude]
    keys = list(dict.fromkeys([*dense_found, *lexical_found]))  # first found first
    dense_keys, lexical_keys = set(dense_found), set(lexical_found)
    from_dense = np.array([key in dense_keys for key in keys], dtype=bool)
    from_lexical = np.array([key in lexical_keys for key in keys], dtype=bool)
    return _pool(space, query, keys, from_dense, from_lexical)


def given(
    space: RowSpace,
    query: Query,
    keys: Sequence[int],
    mask: np.ndarray,
    exclude: frozenset[int] | set[int],
) -> Candidates:
    """The candidates of a given set of int ids: those live, in ``mask`` and not excluded."""
    wanted = [key for key in dict.fromkeys(keys) if key not in exclude]
    rows = space.rows_of(wanted)
    kept = [key for key, row in zip(wanted, rows.tolist(), strict=True) if row >= 0 and mask[row]]
    everywhere = np.ones(len(kept), dtype=bool)
    return _pool(space, query, kept, everywhere, everywhere)


def time_windows(
    space: RowSpace, reference_ts: float | None, half_life_days: float | None
) -> list[np.ndarray]:
    """Row masks of the query's nested time windows (``WINDOW_HALF_LIVES``), undated rows in
    each (recency spares them); none when recency is off or the query has no date."""
    if half_life_days is None or reference_ts is None or math.isnan(reference_ts):
        return []
    stamps = space.published_ts
    undated = np.isnan(stamps)
    masks = []
    for half_lives in WINDOW_HALF_LIVES:
        start, end = recency_window(reference_ts, half_life_days, half_lives)
        with np.errstate(invalid="ignore"):
            masks.append(((stamps >= start) & (stamps <= end)) | undated)
    return masks


def _dense(
    space: RowSpace,
    query: Query,
    fetch: int,
    mask: np.ndarray | None,
    exclude: frozenset[int] | set[int],
) -> list[int]:
    """The nearest live stories by embedding, among the rows of ``mask`` when given."""
    vector = query.vector[None, :]
    if mask is not None:
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
    ids = found.ids[0].tolist()
    rows = space.row_of.get_many(ids, -1)
    # an id the row space does not know (yet) is a write in flight: skip it
    return [i for i, row in zip(ids, rows, strict=True) if row >= 0 and i not in exclude][:fetch]


def _pool(
    space: RowSpace,
    query: Query,
    keys: list[int],
    from_dense: np.ndarray,
    from_lexical: np.ndarray,
) -> Candidates:
    rows = space.rows_of(keys)
    vectors = space.vectors_of(rows, keys)
    dense = cosines(vectors, query.vector) if keys else np.zeros(0)
    pool = pool_of(space, rows, dense, space.lexical.scores(rows, query.lexical), vectors)
    return Candidates(keys, rows, pool, from_dense, from_lexical)


def pool_of(
    space: RowSpace, rows: np.ndarray, dense: np.ndarray, lexical: np.ndarray, vectors: np.ndarray
) -> CandidatePool:
    """The candidate pool of ``rows`` of the row space, given their cosines and vectors."""
    rows = np.asarray(rows, dtype=np.int64)
    return CandidatePool(
        dense=dense,
        lexical=lexical,
        vectors=vectors,
        published_ts=space.published_ts[rows],
        langs=[str(space.langs[r]) for r in rows],
        sources=[str(space.sources[r]) for r in rows],
        keys=space.int_ids[rows],
    )


def rank_candidates(
    space: RowSpace, query: Query, k: int, filters: Filters, options: RankingOptions
) -> tuple[Candidates, RankedList]:
    """The engine's list for a query: candidates from the sides ``options`` use, ranked."""
    dense, lexical = sides(options)
    found = gather(
        space,
        query,
        fetch_size(k, options),
        filters,
        dense=dense,
        lexical=lexical,
        half_life_days=options.recency_half_life_days,
    )
    ranked = rank(found.pool, k, options, query_lang=query.lang, reference_ts=query.reference_ts)
    return found, ranked


def candidate_scores(
    space: RowSpace, query: Query, keys: list[int], options: RankingOptions
) -> np.ndarray:
    """The engine's score of each of ``keys`` for ``query`` (relevance and recency, as a list
    ranks them), NaN for a key the row space does not hold or the query excludes."""
    scores = np.full(len(keys), np.nan)
    if not keys:
        return scores
    found = given(space, query, keys, space.alive, query.exclude)
    if not len(found):
        return scores
    ranked = rank(found.pool, 1, options, query_lang=query.lang, reference_ts=query.reference_ts)
    where = {key: n for n, key in enumerate(keys)}
    for key, score in zip(found.keys, ranked.scores.tolist(), strict=True):
        scores[where[key]] = score
    return scores
