"""The FAISS index: approximate search against exact, removal, filters, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.errors import InvalidInputError
from recommender.evaluation.recall import recall_at_k
from recommender.index import VectorIndex


def clustered(n: int, d: int = 64, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres, like sentence embeddings of topical news."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, d))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    points = clustered(6200)  # queries come from the same distribution as the corpus
    vectors, queries = points[:6000], points[6000:]
    ids = np.arange(10_000, 16_000, dtype=np.int64)
    exact = VectorIndex.build(ids, vectors, "Flat").search(queries, 10)
    return ids, vectors, queries, exact


@pytest.mark.parametrize(("spec", "bound"), [("HNSW32,Flat", 0.95), ("IVF64,Flat", 0.9)])
def test_approximate_index_recall_against_exact(data, spec, bound):
    ids, vectors, queries, exact = data
    index = VectorIndex.build(ids, vectors, spec)
    found = index.search(queries, 10)
    # tie-tolerant: a vector as near as the 10th true neighbour is not a miss
    recall = recall_at_k(
        found.ids, exact.ids, 10, found_scores=found.scores, truth_scores=exact.scores
    )
    assert recall >= bound


def test_auto_picks_flat_for_small_corpora(data):
    ids, vectors, *_ = data
    assert VectorIndex.build(ids[:100], vectors[:100]).spec == "Flat"


def test_removed_vectors_are_never_returned_and_re_added_ones_are(data):
    ids, vectors, _, _ = data
    index = VectorIndex.build(ids, vectors, "HNSW32,Flat")
    top = index.search(vectors[:1], 5).ids[0]
    assert top[0] == ids[0]
    removed = index.with_changes(removed=[ids[0]])
    assert removed.tombstones == 1 and len(removed) == len(ids) - 1
    assert ids[0] not in removed.search(vectors[:1], 50).ids[0]
    # copy on write: the index a reader already holds is unchanged
    assert index.tombstones == 0 and index.search(vectors[:1], 1).ids[0][0] == ids[0]
    readded = removed.with_changes([ids[0]], vectors[:1])
    assert readded.search(vectors[:1], 1).ids[0][0] == ids[0]
    assert len(readded) == len(ids)
    # replacing a vector moves the id, it does not duplicate it
    replaced = readded.with_changes([ids[0]], vectors[1:2])
    found = replaced.search(vectors[1:2], 3).ids[0]
    assert list(found).count(ids[0]) == 1 and len(replaced) == len(ids)
    np.testing.assert_array_equal(replaced.vector(int(ids[0])), vectors[1])
    assert (
        int(ids[0]) in replaced
        and replaced.with_changes(removed=[ids[0]]).vector(int(ids[0])) is None
    )


def test_filtered_search_returns_k_allowed_results_even_when_very_selective(data):
    ids, vectors, queries, _ = data
    index = VectorIndex.build(ids, vectors, "HNSW32,Flat")
    allowed = ids[::500]  # 12 of 6000
    result = index.search(queries[:5], 10, allowed=allowed)
    assert result.ids.shape == (5, 10)
    assert set(result.ids.ravel()) <= set(allowed)
    exact = VectorIndex.build(allowed, vectors[::500], "Flat").search(queries[:5], 10)
    np.testing.assert_array_equal(result.ids, exact.ids)


@pytest.mark.parametrize("kept", [300, 3000])  # gathered, then scanned with a selector
def test_selective_filters_are_scored_exactly(data, kept):
    ids, vectors, queries, _ = data
    index = VectorIndex.build(ids, vectors, "HNSW32,Flat")
    chosen = np.sort(np.random.default_rng(kept).choice(len(ids), kept, replace=False))
    mask = np.zeros(len(ids), dtype=bool)
    mask[chosen] = True
    found = index.search(queries[:20], 30, main_mask=mask)
    exact = VectorIndex.build(ids[chosen], vectors[chosen], "Flat").search(queries[:20], 30)
    np.testing.assert_array_equal(found.ids, exact.ids)
    np.testing.assert_allclose(found.scores, exact.scores, atol=1e-5)


@pytest.mark.parametrize("share", [0.5, 0.002])
def test_a_mask_over_main_positions_filters_like_the_allowed_ids(data, share):
    ids, vectors, queries, _ = data
    index = VectorIndex.build(ids, vectors, "HNSW32,Flat")
    index = index.with_changes([99], vectors[:1])  # a real-time (delta) vector, allowed by id
    mask = np.random.default_rng(4).random(len(ids)) < share
    allowed = np.concatenate([ids[mask], [99]])
    by_ids = index.search(queries[:20], 10, allowed=allowed)
    by_mask = index.search(queries[:20], 10, allowed=np.array([99]), main_mask=mask)
    np.testing.assert_array_equal(by_mask.ids, by_ids.ids)
    assert set(by_mask.ids.ravel()) <= set(allowed)
    # without ids, the mask alone leaves the delta tier out
    assert 99 not in index.search(vectors[:1], 10, main_mask=mask).ids
    with pytest.raises(InvalidInputError, match="entries") as error:
        index.search(queries[:1], 10, main_mask=mask[:-1])
    assert error.value.field == "main_mask"


def test_save_and_load_memory_mapped(tmp_path, data):
    ids, vectors, queries, exact = data
    VectorIndex.build(ids, vectors, "Flat").save(tmp_path)
    loaded = VectorIndex.load(tmp_path, mmap=True)
    np.testing.assert_array_equal(loaded.search(queries, 10).ids, exact.ids)


def test_bad_factory_string_is_an_input_error(data):
    ids, vectors, *_ = data
    with pytest.raises(InvalidInputError, match="factory string"):
        VectorIndex.build(ids, vectors, "NotAnIndex42")


@pytest.mark.parametrize("spec", ["Flat", "HNSW32,Flat"])
def test_folding_the_delta_keeps_every_answer(data, spec):
    ids, vectors, queries, _ = data
    n = len(ids) // 2
    index = VectorIndex.build(ids[:n], vectors[:n], spec)
    # writes since the snapshot: new vectors, a changed one (re-added), removed ones
    live = index.with_changes(ids[n : n + 300], vectors[n : n + 300], removed=ids[:5])
    live = live.with_changes(ids[10:11], vectors[n + 400 : n + 401])
    folded = live.folded()
    assert folded.main_size == n + 300 + 1 and len(folded) == len(live)
    assert sorted(folded.ids().tolist()) == sorted(live.ids().tolist())
    assert np.array_equal(folded.vectors(ids[:20].tolist()), live.vectors(ids[:20].tolist()))
    before, after = live.search(queries, 10), folded.search(queries, 10)
    if spec == "Flat":
        assert np.array_equal(before.ids, after.ids)
    else:  # the delta is searched exactly before the fold, through the graph after it
        assert recall_at_k(after.ids, before.ids, 10) >= 0.95
    assert not set(ids[:5].tolist()) & set(after.ids.ravel().tolist())
    assert live.main_size == n  # the index folded from is untouched
