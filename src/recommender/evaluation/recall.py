"""Candidate recall: how much of the exact answer an approximate stage lets through.

``candidate_recall`` compares the engine's top k (``candidates.rank_candidates``) with the
full default ranking function applied to every article in the index (``exhaustive_list``);
``recall_at_k`` compares nearest-neighbour lists (benchmarks and index tests).
``multi_year_archive`` re-dates the shared corpora over ten years, the case where candidates
that ignore time fail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from recommender.evaluation.quality import read_jsonl
from recommender.ingest.records import parse_datetime
from recommender.ranking import (
    Filters,
    RankingOptions,
    calibrate,
    rank,
    recency_factor,
    relevance,
)
from recommender.ranking.ordering import cosines, top_by_score
from recommender.requests import candidates, queries
from recommender.rowspace.space import RowSpace
from recommender.storage.schema import int_id


def recall_at_k(
    found: np.ndarray,
    truth: np.ndarray,
    k: int = 10,
    *,
    found_scores: np.ndarray | None = None,
    truth_scores: np.ndarray | None = None,
    tolerance: float = 1e-5,
) -> float:
    """Share of each query's true ``k`` nearest (``truth``, best first) among the ``k`` found,
    averaged over queries. With exact scores of both, a found item that scores at least the
    k-th true score (within ``tolerance``) counts as a hit: ties at the boundary are not misses.
    """
    hits = []
    for row, (got, want) in enumerate(zip(found, truth, strict=True)):
        got, want = got[:k], want[:k]
        hit = np.isin(got, want)
        if found_scores is not None and truth_scores is not None and len(want):
            hit |= found_scores[row][: len(got)] >= truth_scores[row][len(want) - 1] - tolerance
        hits.append(float(hit[got >= 0].sum()) / k)
    return float(np.mean(hits)) if hits else 0.0


def exhaustive_list(
    space: RowSpace,
    query: queries.Query,
    k: int,
    filters: Filters,
    options: RankingOptions,
    all_vectors: np.ndarray,
    depth: int = 2000,
) -> list[int]:
    """The top-k keys of the full ranking function applied to every article in the index:
    the ``depth`` best by score (relevance times recency; the list steps only ever drop
    stories, so the top k come from these), then ``ranking.rank``."""
    exclude_rows = [space.row_of[key] for key in query.exclude if key in space.row_of]
    exclude_rows += [space.row_of[key] for key in map(int_id, filters.exclude_ids)
                     if key in space.row_of]  # fmt: skip
    allowed = space.mask(filters)
    allowed[exclude_rows] = False
    rows = np.flatnonzero(allowed)
    dense = cosines(all_vectors[rows], query.vector)
    lexical = space.lexical.scores(rows, query.lexical)
    langs = space.langs[rows]
    other = (langs != query.lang) & (langs != "") & bool(query.lang)
    scores = relevance(calibrate(dense, other, options), lexical, options.dense_weight)
    if options.recency_half_life_days is not None:
        stamps = space.published_ts[rows]
        scores = scores * recency_factor(stamps, query.reference_ts, options.recency_half_life_days)
    if len(rows) > depth:
        best = top_by_score(scores, space.int_ids[rows], depth)
        rows, dense, lexical = rows[best], dense[best], lexical[best]
    pool = candidates.pool_of(space, rows, dense, lexical, all_vectors[rows])
    ranked = rank(pool, k, options, query_lang=query.lang, reference_ts=query.reference_ts)
    return [int(space.int_ids[rows[i]]) for i in ranked.main]


def candidate_recall(
    space: RowSpace,
    query_rows: Sequence[int],
    *,
    k: int = 10,
    options: RankingOptions | None = None,
    filters_of: Callable[[int], Filters] | None = None,
) -> dict[str, Any]:
    """How much of the exhaustive top k the engine's candidate stage lets through: for each
    query article, |engine's top k & exhaustive top k| / |exhaustive top k|.

    ``filters_of(row)`` gives the filters of a query (none by default)."""
    options = options or space.options
    all_vectors = space.vectors.vectors([int(key) for key in space.int_ids])
    recalls = []
    misses_by_rank: list[int] = [0] * k
    for row in query_rows:
        filters = filters_of(row) if filters_of is not None else Filters()
        query = queries.article_query(space, [space.ids[row]], [])
        found, ranked = candidates.rank_candidates(space, query, k, filters, options)
        engine = {found.keys[i] for i in ranked.main}
        truth = exhaustive_list(space, query, k, filters, options, all_vectors)
        if not truth:
            continue
        recalls.append(sum(key in engine for key in truth) / len(truth))
        for position, key in enumerate(truth):
            misses_by_rank[position] += key not in engine
    values = np.asarray(recalls)
    return {
        "queries": len(values),
        "k": k,
        "recall_at_k": round(float(values.mean()), 4) if len(values) else None,
        "min": round(float(values.min()), 4) if len(values) else None,
        "share_perfect": round(float((values == 1.0).mean()), 4) if len(values) else None,
        "misses_by_rank": misses_by_rank,
    }


def shared_archives(eval_dir: Path, sample: Path) -> dict[str, list[dict[str, Any]]]:
    """Two archives from the shared corpora and the sample corpus (``data/``, 2020): ANT +
    data/ (what ``make ant-index`` indexes: 2018 and 2020) and a multi-year archive (ANT and
    BBC over 2009-2018, then data/)."""
    ant = read_jsonl(eval_dir / "ant-arabic-news.jsonl.gz")
    bbc = read_jsonl(eval_dir / "bbc-news.jsonl")
    data = read_jsonl(sample)
    return {
        "ANT + data/": ant + data,
        "multi-year (ANT + BBC + data/)": multi_year_archive(ant, bbc) + data,
    }


def multi_year_archive(
    dated: Sequence[dict[str, Any]],
    undated: Sequence[dict[str, Any]],
    *,
    years: int = 10,
    last_year: int = 2018,
) -> list[dict[str, Any]]:
    """Article records spread over ``years`` years ending with ``last_year``.

    ``dated`` records keep their month, day and time; each ISO week of them moves to its own
    year (week number modulo ``years``), so a week's follow-ups stay together while similar
    stories recur across the years, as in a real archive. ``undated`` records get a date drawn
    uniformly (from their id's hash: the same archive every time) over the whole span.
    """
    out = []
    for record in dated:
        published = parse_datetime(str(record["published_at"]))
        year = last_year - (published.isocalendar().week % years)
        out.append({**record, "published_at": _with_year(published, year).isoformat()})
    start = datetime(last_year - years + 1, 1, 1, tzinfo=UTC)
    span_seconds = (datetime(last_year + 1, 1, 1, tzinfo=UTC) - start).total_seconds()
    for record in undated:
        digest = hashlib.sha256(str(record["id"]).encode("utf-8")).digest()
        share = int.from_bytes(digest[:8], "big") / 2**64
        published = start + timedelta(seconds=int(share * span_seconds))
        out.append({**record, "published_at": published.isoformat()})
    return out


def _with_year(moment: datetime, year: int) -> datetime:
    try:
        return moment.replace(year=year)
    except ValueError:  # 29 February into a year without it
        return moment.replace(year=year, day=28)
