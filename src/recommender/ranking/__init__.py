"""How a candidate pool becomes a "read also" list: pure functions over numpy arrays.

Owns the request options (``options``: ``Filters``, ``RankingOptions`` and their measured
defaults), the steps of the ranking (``scoring``: hybrid relevance, calibration, recency, the
same story in other languages, MMR, per-source cap), near-duplicate collapse (``duplicates``)
and the total order every list path shares (``ordering``). May import ``ingest`` (dates) and
the support modules (``errors``); nothing that holds state.
"""

from recommender.ranking.duplicates import collapse
from recommender.ranking.options import (
    DEFAULT_DEDUP_THRESHOLD,
    DEFAULT_DENSE_WEIGHT,
    DEFAULT_RECENCY_HALF_LIFE_DAYS,
    DEFAULT_SAME_STORY_THRESHOLD,
    PREFIX_DEPTH,
    RECENCY_FLOOR,
    RECENCY_FLOOR_HALF_LIVES,
    SECONDS_PER_DAY,
    Filters,
    RankingOptions,
)
from recommender.ranking.scoring import (
    CandidatePool,
    RankedList,
    Relation,
    calibrate,
    calibrated,
    cap_per_source,
    mmr,
    rank,
    recency_factor,
    recency_window,
    relevance,
    time_relation,
)

__all__ = [
    "DEFAULT_DEDUP_THRESHOLD",
    "DEFAULT_DENSE_WEIGHT",
    "DEFAULT_RECENCY_HALF_LIFE_DAYS",
    "DEFAULT_SAME_STORY_THRESHOLD",
    "PREFIX_DEPTH",
    "RECENCY_FLOOR",
    "RECENCY_FLOOR_HALF_LIVES",
    "SECONDS_PER_DAY",
    "CandidatePool",
    "Filters",
    "RankedList",
    "RankingOptions",
    "Relation",
    "calibrate",
    "calibrated",
    "cap_per_source",
    "collapse",
    "mmr",
    "rank",
    "recency_factor",
    "recency_window",
    "relevance",
    "time_relation",
]
