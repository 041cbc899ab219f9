"""Offline quality figures through the engine's own row space, candidates and ranking
(``quality``: pairs, clusters, parallel corpora, neighbour lists) and candidate recall against
the exhaustive ranking (``recall``).

May import ``requests`` and everything below it; not live state, the facade or the adapters.
"""

from recommender.evaluation.quality import (
    EvalCorpus,
    PoolCache,
    QueryPool,
    article_text,
    candidate_pools,
    cluster_metrics,
    eval_clusters,
    eval_pairs,
    eval_pairs_under,
    eval_parallel,
    eval_space,
    group_counts,
    neighbour_lists,
    read_jsonl,
    records_space,
)

__all__ = [
    "EvalCorpus",
    "PoolCache",
    "QueryPool",
    "article_text",
    "candidate_pools",
    "cluster_metrics",
    "eval_clusters",
    "eval_pairs",
    "eval_pairs_under",
    "eval_parallel",
    "eval_space",
    "group_counts",
    "neighbour_lists",
    "read_jsonl",
    "records_space",
]
