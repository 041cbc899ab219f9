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
from dataclasses import dataclass

from recommender.ranking import RankingOptions

USE = "use-multilingual-v3"
E5 = "multilingual-e5-small"
FUSION_SEPARATOR = "+"
# the best measured model on story-level pairs at a cost a site can pay (docs/quality.md)
DEFAULT_MODEL = f"{USE}{FUSION_SEPARATOR}{E5}"


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
        E5, dense_weight=0.6, dedup_threshold=0.967, same_story_threshold=0.58,
        cross_language_shift=0.0556, dense_scale=4.42, dense_bias=-3.315,
    ),
}  # fmt: skip
# fusions offered by name, as (mix on the common scale, dense weight); any "a+b" of built-in
# models also works, mixed equally. See ``fusion_profile``.
_FUSIONS: dict[tuple[str, ...], tuple[tuple[float, ...], float]] = {
    # benchmarks/tune_fusion.py: the best story-level Spearman whose NTREX worst pair holds
    (USE, E5): ((0.6, 0.4), 0.8),
}


def fusion_parts(name: str) -> tuple[str, ...]:
    """The parts of a fusion name (``"a+b"``), or () for a single model."""
    if FUSION_SEPARATOR not in name:
        return ()
    parts = tuple(part.strip() for part in name.split(FUSION_SEPARATOR))
    return parts if all(part in _BUILT_IN for part in parts) and len(parts) > 1 else ()


def fusion_profile(
    name: str, parts: tuple[str, ...], mix: tuple[float, ...], dense_weight: float
) -> ModelProfile:
    """A fusion's profile from its parts' profiles and a ``mix`` on the common scale.

    Each part's cosines are first put on the common scale (its shift, scale and bias), so
    that ``mix`` weighs comparable numbers (unlike raw cosines: e5's spread ~4x less than
    USE's). That calibrated mix is an affine map of a raw inner product with weights
    ``mix_i * scale_i`` (normalised): those are the vector weights, and the fusion's own
    shift, scale and bias follow exactly. The same-story threshold (calibrated) mixes by
    ``mix``, the near-duplicate threshold (raw cosines) by the vector weights.
    """
    members = [_BUILT_IN[part] for part in parts]
    total = sum(mix)
    mix = tuple(m / total for m in mix)
    spreads = [m * member.dense_scale for m, member in zip(mix, members, strict=True)]
    scale = sum(spreads)
    weights = tuple(spread / scale for spread in spreads)
    return ModelProfile(
        name,
        dense_weight=dense_weight,
        dedup_threshold=sum(w * m.dedup_threshold for w, m in zip(weights, members, strict=True)),
        same_story_threshold=sum(
            x * m.same_story_threshold for x, m in zip(mix, members, strict=True)
        ),
        cross_language_shift=sum(
            w * m.cross_language_shift for w, m in zip(weights, members, strict=True)
        ),
        dense_scale=scale,
        dense_bias=sum(x * m.dense_bias for x, m in zip(mix, members, strict=True)),
        parts=parts,
        weights=weights,
    )


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
    mix, dense_weight = _FUSIONS.get(parts, ((1.0,) * len(parts), 0.0))
    if parts not in _FUSIONS:
        # an unmeasured fusion: the mean of its parts' dense weights
        dense_weight = sum(_BUILT_IN[part].dense_weight for part in parts) / len(parts)
    return fusion_profile(name, parts, mix, dense_weight)


@functools.lru_cache(maxsize=64)
def default_options(name: str | None) -> RankingOptions:
    """The ranking defaults under a model (or fusion): the general defaults with the model's
    score-scale settings (``None``: the default model's). For USE these are exactly
    ``RankingOptions()``."""
    return ranking_options(profile_for(name or DEFAULT_MODEL))


def ranking_options(profile: ModelProfile) -> RankingOptions:
    """The general ranking defaults with a profile's score-scale settings."""
    return RankingOptions(
        dense_weight=profile.dense_weight,
        dedup_threshold=profile.dedup_threshold,
        same_story_threshold=profile.same_story_threshold,
        cross_language_shift=profile.cross_language_shift,
        dense_scale=profile.dense_scale,
        dense_bias=profile.dense_bias,
    )
