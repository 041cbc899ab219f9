"""ResultCache: answers kept per index generation, least recently used dropped first."""

from __future__ import annotations

import pytest

from recommender.live.result_cache import ResultCache


def test_answers_are_kept_until_the_index_changes():
    cache: ResultCache[str] = ResultCache(4)
    cache.put("a", "answer", cache.generation)
    assert cache.get("a") == "answer"
    cache.invalidate()
    assert cache.get("a") is None
    assert cache.info() == {"capacity": 4, "entries": 0, "hits": 1, "misses": 1}


def test_an_answer_computed_before_a_change_is_not_kept():
    cache: ResultCache[str] = ResultCache(4)
    generation = cache.generation  # a request starts computing
    cache.invalidate()  # a write lands meanwhile
    cache.put("a", "stale", generation)
    assert cache.get("a") is None


def test_least_recently_used_answer_goes_first():
    cache: ResultCache[int] = ResultCache(2)
    for key in ("a", "b"):
        cache.put(key, 1, cache.generation)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 1, cache.generation)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 1


def test_capacity_zero_keeps_nothing_and_negative_is_refused():
    cache: ResultCache[int] = ResultCache(0)
    cache.put("a", 1, cache.generation)
    assert cache.get("a") is None
    with pytest.raises(ValueError, match="capacity"):
        ResultCache(-1)
