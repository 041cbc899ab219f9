"""Quality at archive scale: the engine's lists on archives that span years (for quality.py).

Two archives from the shared corpora plus ``data/`` (2020): ANT + data/ (what ``make ant-index``
builds: 2018 and 2020), and a multi-year archive (ANT re-dated week by week over 2009-2018, BBC
dated over the same years, and data/; ``recall.multi_year_archive``). For each: candidate
recall@10 against the exhaustive ranking, same-section P@10, median days between an article and
its links, the time per query in process, and where the reference case's Tripoli visit ranks.
All through the engine's own row space, candidates and ranking.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from recommender import evaluation
from recommender.embedding import Embedder
from recommender.evaluation import recall
from recommender.ranking import Filters, RankingOptions
from recommender.requests import candidates, queries
from recommender.rowspace.space import RowSpace

SEED = "libya-security-memoranda"
TRIPOLI = "german-fm-tripoli-visit"
DEFAULT = RankingOptions()


@contextmanager
def without_time_windows() -> Iterator[None]:
    """The candidate stage as it was before time windows (for the comparison rows)."""
    saved = candidates.WINDOW_HALF_LIVES
    candidates.WINDOW_HALF_LIVES = ()
    try:
        yield
    finally:
        candidates.WINDOW_HALF_LIVES = saved


def lists_and_time(
    space: RowSpace, rows: np.ndarray, k: int, filters_of: Callable[[int], Filters]
) -> tuple[list[list[int]], float]:
    """The engine's top-k rows for each query row, and the mean milliseconds per query."""
    lists = []
    started = time.perf_counter()
    for row in rows:
        query = queries.article_query(space, [space.ids[row]], [])
        found, ranked = candidates.rank_candidates(space, query, k, filters_of(int(row)), DEFAULT)
        lists.append([int(found.rows[i]) for i in ranked.main])
    return lists, (time.perf_counter() - started) * 1000.0 / max(1, len(rows))


def measure(
    name: str,
    configuration: str,
    space: RowSpace,
    records: list[dict[str, Any]],
    k: int,
    filters_of: Callable[[int], Filters],
) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    sample = rng.choice(len(records), size=min(1000, len(records)), replace=False)
    lists, ms = lists_and_time(space, sample, k, filters_of)
    labels = np.array([str(r.get("section") or "") for r in records])
    hits = [
        float(np.sum(labels[lst] == labels[q])) / k for q, lst in zip(sample, lists, strict=True)
    ]
    gaps = []
    for q, lst in zip(sample, lists, strict=True):
        days = np.abs(space.published_ts[lst] - space.published_ts[q]) / 86_400.0
        days = days[~np.isnan(days)]
        if len(days):
            gaps.append(float(np.median(days)))
    found = recall.candidate_recall(
        space, sample[:200], k=k, options=DEFAULT, filters_of=filters_of
    )
    seed_row = next(i for i, r in enumerate(records) if r.get("id") == SEED)
    seed_list, _ = lists_and_time(space, np.array([seed_row]), k, filters_of)
    seed_ids = [records[r]["id"] for r in seed_list[0]]
    dated = space.published_ts[~np.isnan(space.published_ts)]
    row = {
        "archive": name,
        "configuration": configuration,
        "articles": len(records),
        "years": round(float(np.ptp(dated)) / 86_400 / 365.25, 1),
        "candidate_recall_at_10": found["recall_at_k"],
        "candidate_recall_min": found["min"],
        "precision_at_k": round(float(np.mean(hits)), 4),
        "median_days_apart": round(statistics.median(gaps), 1) if gaps else None,
        "ms_per_query": round(ms, 2),
        "tripoli_rank": seed_ids.index(TRIPOLI) + 1 if TRIPOLI in seed_ids else None,
    }  # fmt: skip
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return row


def run_archives(eval_dir: Path, sample: Path, embedder: Embedder, k: int) -> list[dict[str, Any]]:
    """Every row of the archive tables."""
    rows = []
    for name, records in recall.shared_archives(eval_dir, sample).items():
        space = evaluation.records_space(records, embedder)
        sections = [str(r.get("section") or "") for r in records]

        def none(row: int) -> Filters:
            return Filters()

        def same_section(row: int, sections: list[str] = sections) -> Filters:
            return Filters(sections=(sections[row],))

        rows.append(measure(name, "default (HNSW)", space, records, k, none))
        rows.append(
            measure(
                name, "default, exact index (Flat)", space.with_index_type("Flat"), records, k, none
            )
        )
        rows.append(measure(name, "default, same-section filter", space, records, k, same_section))
        with without_time_windows():
            rows.append(measure(name, "before: no time windows", space, records, k, none))
    return rows


def archive_section(rows: list[dict[str, Any]]) -> list[str]:
    """The markdown of the archive tables."""
    if not rows:
        return []
    lines = [
        "## Archives that span years",
        "",
        "Recency is on by default, so the links under an article are mostly stories of its time;",
        "on an archive of many years the nearest stories of the whole archive can all be years",
        "away. Candidates therefore also come from nested windows around the query's date",
        "(1/8, 1/2, 2 and 4 recency half-lives back, twice as far forward), and recency stops",
        "decaying at 1/16 (4 half-lives): beyond that, background stories compete on relevance",
        "alone. A list thus holds the related stories of its time first, then the most related",
        "background, in order of relevance. Candidate recall: the share of the exhaustive top 10",
        "(the full default ranking applied to every article) that the engine returns (200",
        "queries); P@10, days apart and time per query over 1,000 queries; the Tripoli visit's",
        "rank under the reference article.",
        "",
        "| archive | configuration | candidate recall@10 (min) | P@10 | median days apart | "
        "ms / query | Tripoli visit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['archive']} ({r['articles']} articles, {r['years']} years) | "
            f"{r['configuration']} | {r['candidate_recall_at_10']} ({r['candidate_recall_min']}) "
            f"| {r['precision_at_k']} | {r['median_days_apart']} | {r['ms_per_query']} | "
            f"{r['tripoli_rank'] or 'not in top 10'} |"
        )
    return [*lines, ""]
