"""What ``Engine.stats`` reports: the serving snapshot, live counts by language, source and
section, the result cache and the stored lists."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.rowspace.space import RowSpace
from recommender.storage.snapshot import Manifest


@dataclass(frozen=True)
class EngineStats:
    """The serving snapshot and live counts by language, source and section."""

    manifest: Manifest
    articles: int
    index_size: int
    by_lang: dict[str, int]
    by_source: dict[str, int]
    by_section: dict[str, int]
    result_cache: dict[str, Any]
    lists: dict[str, int]
    events: dict[str, int]  # reader events stored, by kind (empty: no event log)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``snapshot`` is the manifest)."""
        return {
            "snapshot": self.manifest.to_dict(),
            "articles": self.articles,
            "index_size": self.index_size,
            "by_lang": self.by_lang,
            "by_source": self.by_source,
            "by_section": self.by_section,
            "result_cache": self.result_cache,
            "lists": self.lists,
            "events": self.events,
        }


def space_stats(
    space: RowSpace,
    manifest: Manifest,
    result_cache: dict[str, Any],
    lists: dict[str, int],
    events: dict[str, int],
) -> EngineStats:
    """The stats of a row space served from the snapshot of ``manifest``."""

    def counts(values: np.ndarray) -> dict[str, int]:
        return dict(Counter(str(v) for v in values[space.alive]).most_common())

    return EngineStats(
        manifest=manifest,
        articles=int(space.alive.sum()),
        index_size=len(space.vectors),
        by_lang=counts(space.langs),
        by_source=counts(space.sources),
        by_section=counts(space.sections),
        result_cache=result_cache,
        lists=lists,
        events=events,
    )
