"""Ranking options on synthetic candidate pools: each changes the list as a user expects."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from recommender.errors import InvalidInputError
from recommender.ranking import (
    RECENCY_FLOOR,
    CandidatePool,
    Filters,
    RankingOptions,
    collapse,
    mmr,
    rank,
    recency_factor,
    recency_window,
    time_relation,
)

DAY = 86_400.0


def unit(rows):
    x = np.asarray(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pool(dense, vectors=None, lexical=None, ts=None, langs=None, sources=None):
    n = len(dense)
    return CandidatePool(
        dense=np.asarray(dense, dtype=np.float64),
        lexical=np.asarray(lexical if lexical is not None else [0.0] * n, dtype=np.float64),
        vectors=unit(vectors) if vectors is not None else np.eye(n, dtype=np.float32),
        published_ts=np.asarray(ts if ts is not None else [np.nan] * n, dtype=np.float64),
        langs=langs or ["ar"] * n,
        sources=sources or [""] * n,
        keys=np.arange(n),
    )


PLAIN = RankingOptions(
    dense_weight=1.0, dedup_threshold=None, other_languages=False, recency_half_life_days=None
)


def test_hybrid_weight_moves_lexically_close_stories_up():
    candidates = pool(dense=[0.6, 0.55], lexical=[0.0, 0.5])
    assert rank(candidates, 2, PLAIN).main == [0, 1]
    hybrid = RankingOptions(dense_weight=0.6, dedup_threshold=None, other_languages=False)
    assert rank(candidates, 2, hybrid).main == [1, 0]


def test_collapse_folds_near_identical_stories_into_one():
    vectors = [[1, 0, 0], [0.99, 0.05, 0], [0, 1, 0]]
    options = RankingOptions(dense_weight=1.0, dedup_threshold=0.95, other_languages=False)
    ranked = rank(pool([0.9, 0.89, 0.5], vectors), 3, options)
    assert ranked.main == [0, 2] and ranked.folded == {0: 1}


def test_a_short_list_counts_copies_found_after_it_as_folded():
    # k = 1: the list is the first story; its copies before and after the cut are both folded
    vectors = [[1, 0, 0], [0.99, 0.05, 0], [0, 1, 0], [0.98, 0, 0.05]]
    options = RankingOptions(dense_weight=1.0, dedup_threshold=0.95, other_languages=False)
    ranked = rank(pool([0.9, 0.89, 0.5, 0.4], vectors), 1, options)
    assert ranked.main == [0] and ranked.folded == {0: 2}


def test_collapse_with_a_limit_keeps_the_same_stories_as_the_whole_pass():
    rng = np.random.default_rng(7)
    # 60 stories in 15 groups of near-copies, in random order
    centres = rng.standard_normal((15, 32))
    vectors = unit(centres[rng.integers(0, 15, 60)] + 0.05 * rng.standard_normal((60, 32)))
    order = [int(i) for i in rng.permutation(60)]
    whole, _ = collapse(order, vectors, 0.95)
    assert 5 < len(whole) <= 15
    for limit in (1, 3, 5):
        kept, folded = collapse(order, vectors, 0.95, limit=limit)
        assert kept == whole[:limit]
        assert set(folded) <= set(kept) and sum(folded.values()) > 0


def test_recency_prefers_recent_follow_ups_over_old_background():
    now = 1_600_000_000.0
    candidates = pool(dense=[0.60, 0.55], ts=[now - 200 * DAY, now + 5 * DAY])
    assert rank(candidates, 2, PLAIN, reference_ts=now).main == [0, 1]
    recent = RankingOptions(
        dense_weight=1.0, dedup_threshold=None, other_languages=False, recency_half_life_days=30
    )
    assert rank(candidates, 2, recent, reference_ts=now).main == [1, 0]


def test_follow_ups_age_at_half_the_rate_of_background():
    now = 0.0
    factors = recency_factor(np.array([-30 * DAY, 30 * DAY, np.nan]), now, 30.0)
    np.testing.assert_allclose(factors, [0.5, 0.5**0.5, 1.0])
    assert time_relation(10.0, 0.0) == "follow_up" and time_relation(-10.0, 0.0) == "background"
    assert time_relation(10.0, None) == ""


def test_recency_stops_at_its_floor_so_old_background_competes_on_relevance():
    now = 1_600_000_000.0
    years = np.array([-2 * 365 * DAY, -10 * 365 * DAY, -120 * DAY, 240 * DAY, -119 * DAY])
    factors = recency_factor(now + years, now, 30.0)
    np.testing.assert_allclose(factors[:4], RECENCY_FLOOR)  # 4 half-lives back, 8 forward
    assert factors[4] > RECENCY_FLOOR
    start, end = recency_window(now, 30.0)
    assert (start, end) == (now - 120 * DAY, now + 240 * DAY)
    # two years old and ten years old: the more related comes first, not the less decayed
    options = RankingOptions(dense_weight=1.0, dedup_threshold=None, other_languages=False)
    old = pool(dense=[0.4, 0.8], ts=[now - 2 * 365 * DAY, now - 10 * 365 * DAY])
    assert rank(old, 2, options, reference_ts=now).main == [1, 0]


def test_same_story_in_other_languages_is_its_own_group():
    candidates = pool(dense=[0.8, 0.7, 0.4, 0.75], langs=["en", "ar", "en", "tr"])
    ranked = rank(candidates, 5, RankingOptions(dense_weight=1.0), query_lang="ar")
    assert ranked.other_languages == [0, 3]  # best first, one per language
    assert ranked.main == [1, 2]  # an unrelated English story stays in the main list


def test_mmr_diversifies_a_list_of_near_copies():
    vectors = [[1, 0.0], [1, 0.05], [1, 0.1], [0, 1]]
    candidates = pool([0.9, 0.89, 0.88, 0.6], vectors)
    assert rank(candidates, 2, PLAIN).main == [0, 1]
    diverse = RankingOptions(
        dense_weight=1.0, dedup_threshold=None, other_languages=False, mmr_lambda=0.5
    )
    assert rank(candidates, 2, diverse).main == [0, 3]


def test_per_source_cap():
    candidates = pool([0.9, 0.8, 0.7, 0.6], sources=["a", "a", "a", "b"])
    capped = RankingOptions(
        dense_weight=1.0, dedup_threshold=None, other_languages=False, max_per_source=2
    )
    assert rank(candidates, 4, capped).main == [0, 1, 3]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dense_weight": 1.5}, "options.dense_weight"),
        ({"mmr_lambda": -0.1}, "options.mmr_lambda"),
        ({"recency_half_life_days": 0}, "options.recency_half_life_days"),
        ({"max_per_source": 0}, "options.max_per_source"),
    ],
)
def test_bad_options_name_the_field(kwargs, field):
    with pytest.raises(InvalidInputError) as error:
        RankingOptions(**kwargs)
    assert error.value.field == field


def test_filter_dates_need_an_offset_and_an_order():
    with pytest.raises(InvalidInputError, match="offset"):
        Filters(published_after=datetime(2020, 1, 1))
    with pytest.raises(InvalidInputError, match="later than"):
        Filters(
            published_after=datetime(2021, 1, 1, tzinfo=UTC),
            published_before=datetime(2020, 1, 1, tzinfo=UTC),
        )


def test_mmr_for_k_picks_what_a_full_pass_picks_first():
    rng = np.random.default_rng(2)
    vectors = unit(rng.normal(size=(60, 8)))
    scores = rng.random(60)
    order = [int(i) for i in np.argsort(-scores)]
    assert mmr(order, scores, vectors, 0.7, 10) == mmr(order, scores, vectors, 0.7, 60)[:10]


def _permuted(candidates, keys, order):
    """The same candidates at other positions (as another row order gathers them)."""
    take = np.asarray(order)
    return CandidatePool(
        dense=candidates.dense[take],
        lexical=candidates.lexical[take],
        vectors=candidates.vectors[take],
        published_ts=candidates.published_ts[take],
        langs=[candidates.langs[i] for i in order],
        sources=[candidates.sources[i] for i in order],
        keys=np.asarray(keys)[take],
    )


def test_equal_scores_are_ordered_by_key_in_any_row_order():
    keys = [907, 12, 455, 3, 88]
    # three stories tie (one by a float64 difference far below float32 precision)
    candidates = pool([0.7, 0.7, 0.7 + 1e-12, 0.9, 0.2], langs=["ar", "ar", "ar", "ar", "en"])
    options = RankingOptions(dense_weight=1.0, recency_half_life_days=None)
    lists = set()
    for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3], [1, 4, 0, 3, 2]):
        shuffled = _permuted(candidates, keys, order)
        ranked = rank(shuffled, 5, options, query_lang="ar")
        lists.add(tuple(int(shuffled.keys[i]) for i in ranked.main))
    assert lists == {(3, 12, 455, 907, 88)}  # 0.9 first, then the equals by key


def test_equal_scores_in_other_languages_and_under_mmr_are_ordered_by_key():
    keys = [50, 40, 30, 20]
    vectors = [[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]]
    candidates = pool([0.8, 0.6, 0.6, 0.6], vectors=vectors, langs=["ar", "en", "en", "fr"])
    grouped = RankingOptions(dense_weight=1.0, recency_half_life_days=None, dedup_threshold=None)
    diverse = replace(grouped, other_languages=False, mmr_lambda=0.5)
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 3, 0, 1]):
        shuffled = _permuted(candidates, keys, order)
        ranked = rank(shuffled, 4, grouped, query_lang="ar")
        # the nearest English story is a tie: the smaller key; then the groups by key too
        assert [int(shuffled.keys[i]) for i in ranked.other_languages] == [20, 30]
        picked = rank(shuffled, 4, diverse, query_lang="ar").main
        assert [int(shuffled.keys[i]) for i in picked] == [50, 20, 30, 40]


def test_the_best_n_are_chosen_by_key_at_a_tied_cut():
    from recommender.ranking.ordering import top_by_score

    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1])
    keys = np.array([7, 1, 3, 9, 2])
    for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [3, 0, 4, 2, 1]):
        take = np.asarray(order)
        chosen = top_by_score(scores[take], keys[take], 3)
        assert keys[take][chosen].tolist() == [1, 3, 7]
    assert top_by_score(scores, keys, 0).tolist() == []
    assert keys[top_by_score(scores, keys, 10)].tolist() == [1, 3, 7, 9, 2]
