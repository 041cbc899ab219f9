"""What a caller can ask of a list: ``Filters`` (which stories may be listed) and
``RankingOptions`` (how candidates become the list), with the measured defaults.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from recommender.errors import InvalidInputError
from recommender.ingest.records import echo, parse_date_field

_LANG_CODE = re.compile(r"[a-z]{2}")

# Chosen on ANT (same-section precision@10) and checked on BBC; see docs/quality.md.
DEFAULT_DENSE_WEIGHT = 0.6
# Live news: links decay with their distance in time from the article (follow-ups at half
# the rate). Measured on ANT: costs 2 points of same-section precision@10 and brings links
# much closer in time (docs/quality.md). Archives switch it off (recency_half_life_days=None).
DEFAULT_RECENCY_HALF_LIFE_DAYS = 30.0
# Cosine above which two same-language stories are the same story (one kept, others folded).
DEFAULT_DEDUP_THRESHOLD = 0.9
# Dense cosine above which a story in another language is the query's own story (NTREX).
DEFAULT_SAME_STORY_THRESHOLD = 0.5
SECONDS_PER_DAY = 86_400.0
# Recency stops decaying after this many half-lives (120 days back, 240 forward at 30 days):
# older stories keep 1/16 of their relevance, so on a multi-year archive the background that
# fills a list is the most related, not whatever decayed least. Candidate generation searches
# this window around the query's date as well as the whole archive (``candidates``).
RECENCY_FLOOR_HALF_LIVES = 4.0
RECENCY_FLOOR = 0.5**RECENCY_FLOOR_HALF_LIVES
# Near-duplicates are folded against at least this many kept stories whatever ``k``, so a
# shorter list is a prefix of a longer one, folded counts included: a stored list of this
# depth answers every k up to it (``lists``).
PREFIX_DEPTH = 30
MAX_CANDIDATE_IDS = 1_000  # a candidate set to re-rank (``Filters.ids``)


@dataclass(frozen=True)
class Filters:
    """Which stories may be returned. Empty tuples mean "any"."""

    langs: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    published_after: datetime | None = None
    published_before: datetime | None = None
    exclude_ids: tuple[str, ...] = ()
    # a candidate set: only these stories, every one of them scored (a front page to re-rank)
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.ids) > MAX_CANDIDATE_IDS:
            raise InvalidInputError(f"at most {MAX_CANDIDATE_IDS:,} candidate ids",
                                    field="filters.ids")  # fmt: skip
        for name in ("published_after", "published_before"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InvalidInputError("must include a UTC offset", field=f"filters.{name}")
        if (
            self.published_after is not None
            and self.published_before is not None
            and self.published_after > self.published_before
        ):
            raise InvalidInputError(
                "published_after is later than published_before", field="filters.published_after"
            )

    @classmethod
    def parse(
        cls,
        *,
        langs: Sequence[str] = (),
        sections: Sequence[str] = (),
        sources: Sequence[str] = (),
        after: str | None = None,
        before: str | None = None,
        exclude_ids: Sequence[str] = (),
        ids: Sequence[str] = (),
        date_fields: tuple[str, str] = ("filters.published_after", "filters.published_before"),
    ) -> Filters:
        """Filters from request values: dates as ISO 8601 text ("" or None: no bound), an
        unreadable date an error naming its field (``date_fields``, as the caller calls them)."""
        codes = tuple(lang.strip().lower() for lang in langs)
        for code in codes:
            if not _LANG_CODE.fullmatch(code):  # else "english" filters everything out, silently
                raise InvalidInputError(
                    f"{echo(code)} is not an ISO 639-1 code", field="filters.langs"
                )
        return cls(
            langs=codes,
            sections=tuple(sections),
            sources=tuple(sources),
            published_after=parse_date_field(after, date_fields[0]),
            published_before=parse_date_field(before, date_fields[1]),
            exclude_ids=tuple(exclude_ids),
            ids=tuple(dict.fromkeys(ids)),
        )

    @property
    def restricts(self) -> bool:
        """True when some story could be filtered out (exclusions aside)."""
        return bool(
            self.langs
            or self.sections
            or self.sources
            or self.published_after
            or self.published_before
            or self.ids
        )


@dataclass(frozen=True)
class RankingOptions:
    """How candidates become the final list; each option can be switched off (None)."""

    dense_weight: float = DEFAULT_DENSE_WEIGHT  # 1.0: dense only, 0.0: lexical only
    recency_half_life_days: float | None = DEFAULT_RECENCY_HALF_LIFE_DAYS  # None: off
    dedup_threshold: float | None = DEFAULT_DEDUP_THRESHOLD
    mmr_lambda: float | None = None  # 1.0 or None: no diversity re-ranking
    max_per_source: int | None = None
    other_languages: bool = True  # the query's own story in other languages, as a group
    same_story_threshold: float = DEFAULT_SAME_STORY_THRESHOLD
    # The model's calibration (``embedding.profiles``): relevance, recency and the same-story
    # threshold read ``dense_scale * (cosine + cross_language_shift * other language) +
    # dense_bias``, which puts a model's cosines on the scale these defaults were tuned on
    # (USE: the identity). MMR puts story-to-story cosines on that scale; collapse compares
    # them raw against the model's own threshold.
    dense_scale: float = 1.0
    dense_bias: float = 0.0
    cross_language_shift: float = 0.0
    candidates: int = 100  # nearest neighbours fetched before re-ranking

    def __post_init__(self) -> None:
        if not 0.0 <= self.dense_weight <= 1.0:
            raise InvalidInputError("must be between 0 and 1", field="options.dense_weight")
        half_life = self.recency_half_life_days
        if half_life is not None and not (math.isfinite(half_life) and half_life > 0):
            raise InvalidInputError(
                f"must be a positive number of days, got {half_life}",
                field="options.recency_half_life_days",
            )
        if self.dedup_threshold is not None and not 0.0 < self.dedup_threshold <= 1.0:
            raise InvalidInputError("must be in (0, 1]", field="options.dedup_threshold")
        if self.mmr_lambda is not None and not 0.0 <= self.mmr_lambda <= 1.0:
            raise InvalidInputError("must be between 0 and 1", field="options.mmr_lambda")
        if self.max_per_source is not None and self.max_per_source < 1:
            raise InvalidInputError("must be at least 1", field="options.max_per_source")
        if self.candidates < 1:
            raise InvalidInputError("must be at least 1", field="options.candidates")

    @classmethod
    def from_overrides(
        cls,
        *,
        base: RankingOptions | None = None,
        dense_weight: float | None = None,
        recency_half_life_days: float | None = None,
        no_recency: bool = False,
        dedup_threshold: float | None = None,
        no_dedup: bool = False,
        mmr_lambda: float | None = None,
        max_per_source: int | None = None,
        no_other_languages: bool = False,
    ) -> RankingOptions:
        """Options from a caller's overrides: None keeps the measured default (``base``: the
        model's defaults, ``embedding.profiles``), and a ``no_*`` switch wins over the value it
        switches off (CLI flags, API fields)."""
        values: dict[str, Any] = {}
        if dense_weight is not None:
            values["dense_weight"] = dense_weight
        if no_recency:
            values["recency_half_life_days"] = None
        elif recency_half_life_days is not None:
            values["recency_half_life_days"] = recency_half_life_days
        if no_dedup:
            values["dedup_threshold"] = None
        elif dedup_threshold is not None:
            values["dedup_threshold"] = dedup_threshold
        if mmr_lambda is not None:
            values["mmr_lambda"] = mmr_lambda
        if max_per_source is not None:
            values["max_per_source"] = max_per_source
        if no_other_languages:
            values["other_languages"] = False
        return replace(base, **values) if base is not None else cls(**values)
