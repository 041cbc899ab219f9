"""Candidate generation on a synthetic ten-year archive: the time windows find what recency
ranks first, checked against the exhaustive ranking (no model)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recommender.evaluation.recall import candidate_recall
from recommender.index.lexical import LexicalModel
from recommender.ingest.records import Article
from recommender.ranking import Filters, RankingOptions
from recommender.requests import candidates, queries
from recommender.rowspace.space import RowSpace

NOW = datetime(2020, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def archive() -> RowSpace:
    """3,000 stories over ten years. The query (row 0) is today; 400 close copies of its topic
    lie five to ten years back; 30 less close stories of its topic are from this month."""
    rng = np.random.default_rng(0)
    d = 32
    topic = rng.normal(size=d)
    vectors, dates = [topic], [NOW]
    for _ in range(400):
        vectors.append(topic + 0.3 * rng.normal(size=d))
        dates.append(NOW - timedelta(days=int(rng.integers(5 * 365, 10 * 365))))
    for _ in range(30):
        vectors.append(topic + 0.9 * rng.normal(size=d))
        dates.append(NOW - timedelta(days=int(rng.integers(0, 20))))
    for _ in range(3000 - len(vectors)):
        vectors.append(rng.normal(size=d))
        dates.append(NOW - timedelta(days=int(rng.integers(0, 10 * 365))))
    matrix = np.asarray(vectors, dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    articles = [
        Article(id=f"a{i}", title=f"story {i}", lang="en", published_at=day, section=f"s{i % 3}")
        for i, day in enumerate(dates)
    ]
    model, lexical = LexicalModel.fit([a.title for a in articles])
    return RowSpace.in_memory(articles, matrix, model, lexical, index_type="HNSW32,Flat")


def test_the_stories_of_the_query_time_enter_the_pool(archive):
    query = queries.article_query(archive, ["a0"], [])
    options = RankingOptions(dense_weight=1.0)
    found, ranked = candidates.rank_candidates(archive, query, 10, Filters(), options)
    top = [archive.ids[found.rows[i]] for i in ranked.main]
    this_month = {f"a{i}" for i in range(401, 431)}
    assert set(top) <= this_month  # recency puts them first; they are only in the windows
    no_windows = candidates.gather(archive, query, 100, Filters(), half_life_days=None)
    assert not {archive.ids[r] for r in no_windows.rows} & this_month


@pytest.mark.parametrize("filters", [Filters(), Filters(sections=("s1",))])
def test_candidate_recall_against_the_exhaustive_ranking(archive, filters, monkeypatch):
    options = RankingOptions(dense_weight=1.0)
    rows = list(range(0, 3000, 60))
    found = candidate_recall(archive, rows, options=options, filters_of=lambda row: filters)
    assert found["recall_at_k"] >= 0.95, found
    monkeypatch.setattr(candidates, "WINDOW_HALF_LIVES", ())
    before = candidate_recall(archive, [0], options=options, filters_of=lambda row: filters)
    assert before["recall_at_k"] < 0.5, "the archive no longer tests the windows"
