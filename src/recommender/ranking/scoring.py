"""From nearest neighbours to a "read also" list: filters, hybrid relevance, recency, same-story
grouping across languages, near-duplicate collapse, diversity (MMR) and a per-source cap.

Pure functions over a candidate pool (numpy arrays); the engine builds the pool and the
evaluation tool reuses exactly the same functions. The defaults are measured: see
``docs/quality.md`` for the tables they come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from recommender.ranking.duplicates import collapse
from recommender.ranking.options import (
    PREFIX_DEPTH,
    RECENCY_FLOOR,
    RECENCY_FLOOR_HALF_LIVES,
    SECONDS_PER_DAY,
    RankingOptions,
)
from recommender.ranking.ordering import by_score, comparable, cosines


@dataclass
class CandidatePool:
    """Candidates for one query: parallel arrays, one entry per candidate."""

    dense: np.ndarray  # cosine with the query
    lexical: np.ndarray  # lexical cosine with the query
    vectors: np.ndarray  # (n, d) unit vectors, for collapse and MMR
    published_ts: np.ndarray  # POSIX seconds, NaN when unknown
    langs: list[str]
    sources: list[str]
    keys: np.ndarray  # int ids: what breaks ties between equal scores (``ordering``)

    def __len__(self) -> int:
        return len(self.dense)


@dataclass
class RankedList:
    """Positions into the pool: the main list, and the query's story in other languages."""

    main: list[int]
    scores: np.ndarray  # final score of every pool entry
    folded: dict[int, int] = field(default_factory=dict)  # kept position -> duplicates folded
    other_languages: list[int] = field(default_factory=list)


def calibrate(dense: np.ndarray, other_language: np.ndarray, options: RankingOptions) -> np.ndarray:
    """Cosines on the common scale (see ``RankingOptions.dense_scale``); ``other_language``
    marks the stories in another language than the query (a bool array, or False)."""
    if options.cross_language_shift:
        dense = dense + options.cross_language_shift * other_language
    if options.dense_scale != 1.0 or options.dense_bias:
        dense = options.dense_scale * dense + options.dense_bias
    return dense


def calibrated(pool: CandidatePool, options: RankingOptions, query_lang: str) -> np.ndarray:
    """The pool's dense cosines on the common scale, for a query in ``query_lang``."""
    if not options.cross_language_shift and options.dense_scale == 1.0 and not options.dense_bias:
        return pool.dense  # USE: nothing to do on the request path
    other = np.fromiter((bool(lang) and lang != query_lang for lang in pool.langs), bool, len(pool))
    return calibrate(pool.dense, other if query_lang else np.zeros(len(pool), bool), options)


def relevance(dense: np.ndarray, lexical: np.ndarray, dense_weight: float) -> np.ndarray:
    """Hybrid relevance: a weighted sum of dense and lexical cosine."""
    return dense_weight * dense + (1.0 - dense_weight) * lexical


def recency_factor(
    published_ts: np.ndarray, reference_ts: float | np.ndarray | None, half_life_days: float
) -> np.ndarray:
    """Exponential decay by distance in time from the reference, floored at ``RECENCY_FLOOR``.

    Follow-ups (published after the reference) age at half the rate of background stories:
    under an article, what happened next matters more than what came before. Undated stories
    and undated queries are not decayed. Beyond ``RECENCY_FLOOR_HALF_LIVES`` half-lives the
    factor stops falling, so background stories compete on relevance alone (scaled by the
    floor) instead of on decay noise: a list first holds the related stories of its time,
    then the most related background, in order of relevance.
    """
    if reference_ts is None:  # one reference, or one per story (a NaN: no decay)
        return np.ones_like(published_ts, dtype=np.float64)
    delta_days = (published_ts - reference_ts) / SECONDS_PER_DAY
    age = np.where(delta_days >= 0, delta_days / 2.0, -delta_days)
    factor = np.maximum(np.power(0.5, age / half_life_days), RECENCY_FLOOR)
    return np.where(np.isnan(factor), 1.0, factor)


def recency_window(
    reference_ts: float, half_life_days: float, half_lives: float = RECENCY_FLOOR_HALF_LIVES
) -> tuple[float, float]:
    """(start, end) POSIX seconds inside which a story's recency factor is at least
    0.5 ** ``half_lives`` (by default: outside it, the factor is the floor)."""
    back = half_lives * half_life_days * SECONDS_PER_DAY
    return reference_ts - back, reference_ts + 2.0 * back  # follow-ups age at half the rate


def rank(
    pool: CandidatePool,
    k: int,
    options: RankingOptions,
    *,
    query_lang: str = "",
    reference_ts: float | None = None,
) -> RankedList:
    """Order a candidate pool into the final list (see the module docstring for the steps)."""
    dense = calibrated(pool, options, query_lang)
    scores = relevance(dense, pool.lexical, options.dense_weight).astype(np.float64)
    if options.recency_half_life_days is not None:
        scores = scores * recency_factor(
            pool.published_ts, reference_ts, options.recency_half_life_days
        )
    keys = pool.keys
    order = by_score(scores, keys)  # a total order: the same list in any row order

    other: list[int] = []
    if options.other_languages and query_lang:
        same_story: dict[str, list[int]] = {}  # per language: its stories above the threshold
        remaining = []
        for i in order:
            lang = pool.langs[i]
            if lang and lang != query_lang and dense[i] >= options.same_story_threshold:
                same_story.setdefault(lang, []).append(i)
                continue
            remaining.append(i)
        # each language's nearest story, by dense cosine (ties by key, as every order here)
        best = [group[by_score(dense[group], keys[group])[0]] for group in same_story.values()]
        other = [best[j] for j in by_score(dense[best], keys[best])]
        order = remaining

    folded: dict[int, int] = {}
    if options.dedup_threshold is not None:
        # MMR and the per-source cap read the whole order; otherwise k stories are enough
        whole = options.max_per_source is not None or (
            options.mmr_lambda is not None and options.mmr_lambda < 1.0
        )
        order, folded = collapse(
            order, pool.vectors, options.dedup_threshold,
            limit=None if whole else max(k, PREFIX_DEPTH),
        )  # fmt: skip

    if options.mmr_lambda is not None and options.mmr_lambda < 1.0:
        # greedy: the first k picks do not depend on how many follow; the per-source cap
        # may drop some of them, so it reads the whole order
        depth = len(order) if options.max_per_source is not None else k
        order = mmr(order, scores, pool.vectors, options.mmr_lambda, depth, options)

    if options.max_per_source is not None:
        order = cap_per_source(order, pool.sources, options.max_per_source)

    return RankedList(order[:k], scores, folded, other)


def mmr(
    order: list[int],
    scores: np.ndarray,
    vectors: np.ndarray,
    lam: float,
    k: int,
    scale: RankingOptions | None = None,
) -> list[int]:
    """Maximal marginal relevance: trade relevance against similarity to what is already listed.

    The similarity between two stories is put on the scale of the relevance (``scale``: the
    model's calibration, same language), so that ``lam`` weighs the two alike under any model.
    """
    gain, bias = (scale.dense_scale, scale.dense_bias) if scale is not None else (1.0, 0.0)
    remaining = list(order)
    selected: list[int] = []
    max_similarity = np.zeros(len(scores))
    while remaining and len(selected) < k:
        values = [lam * scores[i] - (1.0 - lam) * max_similarity[i] for i in remaining]
        # compared as scores are (``ordering``): a tie goes to the earlier in ``order``
        best = remaining.pop(int(np.argmax(comparable(np.asarray(values)))))
        selected.append(best)
        if remaining:
            similarity = gain * cosines(vectors[remaining], vectors[best]) + bias
            for position, i in enumerate(remaining):
                max_similarity[i] = max(max_similarity[i], float(similarity[position]))
    return selected


def cap_per_source(order: list[int], sources: list[str], cap: int) -> list[int]:
    """At most ``cap`` stories per source (stories without a source are not capped)."""
    counts: dict[str, int] = {}
    kept = []
    for i in order:
        source = sources[i]
        if source:
            if counts.get(source, 0) >= cap:
                continue
            counts[source] = counts.get(source, 0) + 1
        kept.append(i)
    return kept


class Relation(StrEnum):
    """How a story stands in time to the query article."""

    FOLLOW_UP = "follow_up"  # published after it
    BACKGROUND = "background"  # published before it
    SAME_TIME = "same_time"
    UNKNOWN = ""  # either date is unknown


def time_relation(published_ts: float, reference_ts: float | None) -> Relation:
    """The story's relation in time to the reference date."""
    if reference_ts is None or math.isnan(reference_ts) or math.isnan(published_ts):
        return Relation.UNKNOWN
    if published_ts > reference_ts:
        return Relation.FOLLOW_UP
    if published_ts < reference_ts:
        return Relation.BACKGROUND
    return Relation.SAME_TIME
