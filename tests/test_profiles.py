"""Ranking settings that belong to the model: profiles, their defaults, the language shift."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recommender.embedding.profiles import (
    DEFAULT_MODEL,
    E5,
    USE,
    default_options,
    fusion_parts,
    profile_for,
)
from recommender.ranking import CandidatePool, RankingOptions, calibrate, rank

FUSION = f"{USE}+{E5}"


def test_use_keeps_the_defaults_it_was_measured_with():
    assert default_options(USE) == RankingOptions()
    assert default_options(None) == default_options(DEFAULT_MODEL) != RankingOptions()


def test_each_built_in_model_and_the_fusion_has_its_own_scale():
    e5, fused = profile_for(E5), profile_for(FUSION)
    assert e5.cross_language_shift > 0 and fused.cross_language_shift > 0
    assert e5.dense_scale > fused.dense_scale > profile_for(USE).dense_scale == 1.0
    assert e5.dedup_threshold > profile_for(USE).dedup_threshold
    assert fused.is_fusion and fused.parts == (USE, E5)
    assert sum(fused.weights) == pytest.approx(1.0)
    assert default_options(E5).dedup_threshold == e5.dedup_threshold


def test_fusion_names_need_known_parts_and_other_models_get_use_values():
    assert fusion_parts(FUSION) == (USE, E5)
    assert fusion_parts(f" {E5} + {USE} ") == (E5, USE)
    assert fusion_parts("some/model+with-a-plus") == ()  # a Hugging Face id, not a fusion
    assert fusion_parts(USE) == ()
    other = profile_for("sentence-transformers/LaBSE")
    assert not other.is_fusion and other.dense_weight == profile_for(USE).dense_weight
    # an unmeasured fusion mixes its parts equally on the common scale: e5's cosines spread
    # 4.42x less than USE's, so its vector weighs 4.42x more in the inner product
    reverse = profile_for(f"{E5}+{USE}")
    e5_scale = profile_for(E5).dense_scale
    assert reverse.weights == pytest.approx((e5_scale / (e5_scale + 1), 1 / (e5_scale + 1)))
    expected = sum(
        w * profile_for(name).dedup_threshold
        for w, name in zip(reverse.weights, (E5, USE), strict=True)
    )
    assert reverse.dedup_threshold == pytest.approx(expected)


def test_a_fusion_is_the_mix_of_its_parts_calibrated_cosines():
    """The fused inner product, calibrated, equals the mix of each part's calibrated cosine
    (what ``fusion_profile`` promises), within and across languages."""
    from recommender.embedding.profiles import fusion_profile

    mix = (0.3, 0.7)
    fused = fusion_profile("f", (USE, E5), mix, 0.6)
    rng = np.random.default_rng(5)
    cos_use, cos_e5 = rng.uniform(-0.2, 1, 50), rng.uniform(0.6, 1, 50)
    other = rng.random(50) < 0.5
    raw = fused.weights[0] * cos_use + fused.weights[1] * cos_e5
    expected = mix[0] * calibrate(cos_use, other, default_options(USE)) + mix[1] * calibrate(
        cos_e5, other, default_options(E5)
    )
    options = replace(
        RankingOptions(),
        cross_language_shift=fused.cross_language_shift,
        dense_scale=fused.dense_scale,
        dense_bias=fused.dense_bias,
    )
    got = calibrate(raw, other, options)
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_overrides_keep_the_models_other_settings():
    base = default_options(E5)
    options = RankingOptions.from_overrides(base=base, dense_weight=0.3, no_recency=True)
    assert options.dense_weight == 0.3 and options.recency_half_life_days is None
    assert options.dedup_threshold == base.dedup_threshold
    assert options.same_story_threshold == base.same_story_threshold
    assert options.cross_language_shift == base.cross_language_shift
    assert RankingOptions.from_overrides(dense_weight=0.3).dedup_threshold == 0.9


def test_the_language_shift_ranks_and_groups_stories_in_other_languages():
    """An Arabic query: an English story at raw cosine 0.80 against an Arabic one at 0.83.
    With a model whose unrelated stories in two languages sit 0.055 lower, the English story
    is the better match, and it is the query's own story once shifted above the threshold."""
    candidates = CandidatePool(
        dense=np.array([0.83, 0.80, 0.75]),
        lexical=np.zeros(3),
        vectors=np.eye(3, dtype=np.float32),
        published_ts=np.full(3, np.nan),
        langs=["ar", "en", "ar"],
        sources=["", "", ""],
        keys=np.arange(3),
    )
    base = RankingOptions(dense_weight=1.0, other_languages=False, dedup_threshold=None)
    assert rank(candidates, 3, base, query_lang="ar").main == [0, 1, 2]
    shifted = replace(base, cross_language_shift=0.055)
    assert rank(candidates, 3, shifted, query_lang="ar").main == [1, 0, 2]
    grouped = replace(shifted, other_languages=True, same_story_threshold=0.85)
    ranked = rank(candidates, 3, grouped, query_lang="ar")
    assert ranked.other_languages == [1] and 1 not in ranked.main
    # the shift never applies to a query of unknown language
    assert rank(candidates, 3, shifted, query_lang="").main == [0, 1, 2]


def test_calibration_maps_a_compressed_scale_onto_uses():
    """e5's cosines of neighbouring stories sit in a narrow high band: the affine map spreads
    them as USE's, so a same-story threshold of USE's kind and recency weigh them alike."""
    e5 = default_options(E5)
    assert e5.dense_scale > 1.0 and e5.dense_bias < 0.0
    raw = np.array([0.80, 0.85, 0.90])
    same = calibrate(raw, np.zeros(3, bool), e5)
    np.testing.assert_allclose(np.diff(same), e5.dense_scale * np.diff(raw))
    other = calibrate(raw, np.ones(3, bool), e5)
    np.testing.assert_allclose(other - same, e5.dense_scale * e5.cross_language_shift)
    assert calibrate(raw, np.ones(3, bool), default_options(USE)) is raw  # USE: untouched


def test_mmr_weighs_similarity_on_the_models_scale():
    """Under a compressed model, stories are 0.95 (a near-copy) or 0.80 (another story)
    alike: raw, the gap is too small for MMR at 0.7 to pass over the near-copy; on the
    calibrated scale it is as wide as under USE, and the other story comes second."""
    from recommender.ranking import mmr

    first = np.array([1.0, 0.0, 0.0])
    copy = np.array([0.95, np.sqrt(1 - 0.95**2), 0.0])
    other = np.array([0.80, 0.0, 0.6])
    vectors = np.stack([first, copy, other]).astype(np.float32)
    scores = np.array([0.60, 0.58, 0.48])
    assert mmr([0, 1, 2], scores, vectors, 0.7, 3) == [0, 1, 2]
    compressed = replace(RankingOptions(), dense_scale=4.42, dense_bias=-3.315)
    assert mmr([0, 1, 2], scores, vectors, 0.7, 3, compressed) == [0, 2, 1]
