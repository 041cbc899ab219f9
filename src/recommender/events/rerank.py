"""Behaviour in a list: the content ranking's head re-ordered by the fitted ranker.

``Recommend`` ranks ``RERANK_DEPTH`` stories by content as before, then orders them by the
ranker's score (its log-odds of a click, features at this moment, position fixed) and keeps
``k``. With ``serve --rerank-lists``, a stored list's stories (``Related`` by id) are
re-ordered the same way at lookup (``reordered_response``). The item scores become the
ranker's click probabilities, so "higher is more related" still reads down the list. Without
a saved ranker or an event log, nothing changes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recommender.events.features import Context, feature_rows
from recommender.events.ranker import Ranker
from recommender.events.signals import Signals
from recommender.ranking import RankedList
from recommender.requests.explain import RelatedResponse
from recommender.rowspace.space import RowSpace
from recommender.storage.schema import int_id

RERANK_DEPTH = 50  # content-ranked stories the ranker chooses among (at least 3 x k)


def rerank_depth(k: int) -> int:
    """How deep the content ranking goes before the ranker orders it."""
    return min(100, max(RERANK_DEPTH, 3 * k))


def reranked(
    ranker: Ranker,
    space: RowSpace,
    signals: Signals,
    context: Context,
    keys: list[int],
    ranked: RankedList,
    k: int,
) -> RankedList:
    """``ranked`` (positions into a pool of ``keys``) re-ordered by the ranker, cut to ``k``."""
    head = list(ranked.main)
    if not head:
        return ranked
    head_keys = [keys[i] for i in head]
    rows = feature_rows(space, signals, context, head_keys, ranked.scores[head])
    best = _best(ranker, rows, head_keys, k)
    scores = np.array(ranked.scores, dtype=np.float64, copy=True)
    for n, probability in best:
        scores[head[n]] = probability
    main = [head[n] for n, _ in best]
    folded = {position: ranked.folded[position] for position in main if position in ranked.folded}
    return dataclasses.replace(ranked, main=main, scores=scores, folded=folded)


def reordered_response(
    ranker: Ranker,
    space: RowSpace,
    signals: Signals,
    context: Context,
    response: RelatedResponse,
    k: int,
) -> RelatedResponse:
    """A stored list's answer re-ordered by the ranker (its stories only), cut to ``k``."""
    items = response.results
    if not items:
        return response
    keys = [int_id(item.id) for item in items]
    content = np.array([item.score for item in items], dtype=np.float64)
    rows = feature_rows(space, signals, context, keys, content)
    results = [dataclasses.replace(items[n], score=p) for n, p in _best(ranker, rows, keys, k)]
    return RelatedResponse(results, response.other_languages)


def _best(ranker: Ranker, rows: np.ndarray, keys: list[int], k: int) -> list[tuple[int, float]]:
    """The ``k`` best of the feature ``rows`` by the ranker (equal logits by int id): their
    positions and click probabilities."""
    logits = ranker.score(rows)
    order = sorted(range(len(keys)), key=lambda n: (-logits[n], keys[n]))[:k]
    return [(n, float(1.0 / (1.0 + np.exp(-logits[n])))) for n in order]
