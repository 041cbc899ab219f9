"""What each built-in model (or fusion of models) brings besides its vectors.

A model's cosines have their own scale: unrelated news sits near 0.1 under USE and near 0.75
under multilingual-e5-small, and e5's cosines drop when the two texts are in different
languages. So the score-scale constants of ranking (hybrid weight, near-duplicate collapse,
same-story threshold) and the calibration across languages belong to the model, not to the
ranking code. Each value here was measured; ``docs/quality.md`` has the tables.

A fusion ``"a+b"`` embeds a text with each part and concatenates the unit vectors scaled by
``sqrt(weight)`` (weights summing to 1): the fused vector is a unit vector and its inner
product is the weighted sum of the parts' cosines, so FAISS, snapshots, upserts and every
ranking step work on it unchanged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from recommender.ranking import RankingOptions

USE = "use-multilingual-v3"
E5 = "multilingual-e5-small"
FUSION_SEPARATOR = "+"


@dataclass(frozen=True)
class ModelProfile:
    """Score-scale settings of one model or fusion (see the module docstring)."""

    name: str
    dense_weight: float  # hybrid relevance: share of the dense cosine (rest: lexical)
    dedup_threshold: float  # same-language cosine above which stories are near-duplicates
    same_story_threshold: float  # cosine above which another language's story is the same
    # added to the cosine of two texts in different languages before ranking: the model's
    # cosines of unrelated pairs sit lower across languages than within one
    cross_language_shift: float = 0.0
    # the affine map that puts the model's (shifted) cosines on USE's scale, where hybrid
    # relevance, recency and the same-story threshold were tuned: its nearest neighbours'
    # cosines get USE's mean and spread
    dense_scale: float = 1.0
    dense_bias: float = 0.0
    parts: tuple[str, ...] = ()  # a fusion's models
    weights: tuple[float, ...] = ()  # a fusion's weight per part (sum 1)

    @property
    def is_fusion(self) -> bool:
        return bool(self.parts)


# The USE values are the ones measured before there was more than one model (docs/quality.md);
# the others come from benchmarks/calibrate_models.py (benchmarks/results/calibration.json).
_BUILT_IN = {
    USE: ModelProfile(USE, dense_weight=0.6, dedup_threshold=0.9, same_story_threshold=0.5),
    E5: ModelProfile(
        E5, dense_weight=0.4, dedup_threshold=0.967, same_story_threshold=0.58,
        cross_language_shift=0.0556, dense_scale=4.42, dense_bias=-3.315,
    ),
}  # fmt: skip
# fusions measured and offered by name (any "a+b" of built-in models also works)
_FUSIONS: dict[tuple[str, ...], ModelProfile] = {
    (USE, E5): ModelProfile(
        f"{USE}+{E5}", dense_weight=0.6, dedup_threshold=0.943, same_story_threshold=0.54,
        cross_language_shift=0.0454, dense_scale=2.255, dense_bias=-1.191,
        parts=(USE, E5), weights=(0.3, 0.7),
    ),
}  # fmt: skip
_SETTINGS = ("dense_weight", "dedup_threshold", "same_story_threshold", "cross_language_shift",
             "dense_scale", "dense_bias")  # fmt: skip


def fusion_parts(name: str) -> tuple[str, ...]:
    """The parts of a fusion name (``"a+b"``), or () for a single model."""
    if FUSION_SEPARATOR not in name:
        return ()
    parts = tuple(part.strip() for part in name.split(FUSION_SEPARATOR))
    return parts if all(part in _BUILT_IN for part in parts) and len(parts) > 1 else ()


def profile_for(name: str) -> ModelProfile:
    """The profile of a model name; other models get USE's values (sentence-transformers
    models normalise to a similar scale less often than not: measure and tune per request)."""
    parts = fusion_parts(name)
    if not parts:
        found = _BUILT_IN.get(name)
        if found is not None:
            return found
        base = _BUILT_IN[USE]
        return ModelProfile(
            name, base.dense_weight, base.dedup_threshold, base.same_story_threshold
        )
    measured = _FUSIONS.get(parts)
    if measured is not None:
        return replace(measured, name=name)
    # an unmeasured fusion: equal weights, the weighted mean of its parts' settings
    weights = tuple(1.0 / len(parts) for _ in parts)
    members = [_BUILT_IN[part] for part in parts]
    settings = {
        key: sum(w * getattr(m, key) for w, m in zip(weights, members, strict=True))
        for key in _SETTINGS
    }
    return ModelProfile(name, **settings, parts=parts, weights=weights)


@functools.lru_cache(maxsize=64)
def default_options(name: str | None) -> RankingOptions:
    """The ranking defaults under a model (or fusion): the general defaults with the model's
    score-scale settings. For USE these are exactly ``RankingOptions()``."""
    profile = profile_for(name or USE)
    return RankingOptions(
        dense_weight=profile.dense_weight,
        dedup_threshold=profile.dedup_threshold,
        same_story_threshold=profile.same_story_threshold,
        cross_language_shift=profile.cross_language_shift,
        dense_scale=profile.dense_scale,
        dense_bias=profile.dense_bias,
    )
