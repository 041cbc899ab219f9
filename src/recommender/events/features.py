"""What the ranker knows about a (context, candidate) pair, as one row of numbers.

A context is where a list is shown: under an article (``source``) or on a front page, to a
reader with a recent history, at a time. The features (``FEATURES``):

- ``content``: the engine's own score of the candidate for the context (``candidate_scores``:
  relevance and recency, as lists are ranked); 0 when the context has no content (a new
  reader on a front page);
- ``log_ctr``, ``log_impressions``, ``log_clicks``: decayed popularity (``signals``);
- ``co_read``: log of 1 + how often readers of the source and of the reader's recent reads
  went on to read the candidate;
- ``log_age_hours``: hours since the candidate was published (or first seen in the events);
- ``section_share``: the share of the context's articles (source and history) in the
  candidate's section; ``same_source``: the candidate comes from the source's publisher;
- ``position``: where it was shown. A feature when fitting, fixed to ``SERVING_POSITION``
  when scoring, so position bias is learnt and then left out (Joachims et al., 2017).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from recommender.events.signals import Signals
from recommender.rowspace.space import RowSpace

FEATURES = (
    "content",
    "log_ctr",
    "log_impressions",
    "log_clicks",
    "co_read",
    "log_age_hours",
    "section_share",
    "same_source",
    "position",
)
SERVING_POSITION = 0
RECENT_READS = 10  # of a reader's history, the reads co-reading counts from


@dataclass(frozen=True)
class Context:
    """Where and when a list is shown, and to whom (their recent reads, oldest first)."""

    at: float
    source: int | None = None  # the article the list stands under; None: a front page
    history: tuple[int, ...] = ()


def feature_rows(
    space: RowSpace,
    signals: Signals,
    context: Context,
    keys: list[int],
    content: np.ndarray,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """One row of ``FEATURES`` per candidate int id in ``keys`` (``content``: their engine
    scores, NaN taken as 0; ``positions``: where each was shown, None when scoring)."""
    n, at = len(keys), context.at
    out = np.zeros((n, len(FEATURES)))
    out[:, 0] = np.nan_to_num(content, nan=0.0)
    rows = space.rows_of(keys)
    context_keys = ([context.source] if context.source is not None else []) + list(
        context.history[-RECENT_READS:]
    )
    context_rows = [r for r in space.rows_of(context_keys).tolist() if r >= 0]
    sections = Counter(str(space.sections[r]) for r in context_rows)
    source_row = int(space.rows_of([context.source])[0]) if context.source is not None else -1
    source_of = str(space.sources[source_row]) if source_row >= 0 else ""
    for i, (key, row) in enumerate(zip(keys, rows.tolist(), strict=True)):
        clicks, shown = signals.clicks(key, at), signals.impressions(key, at)
        out[i, 1] = math.log(max(signals.ctr(key, at), 1e-6))
        out[i, 2] = math.log1p(shown)
        out[i, 3] = math.log1p(clicks)
        out[i, 4] = math.log1p(sum(signals.co_reads(c, key, at) for c in context_keys))
        published = float(space.published_ts[row]) if row >= 0 else math.nan
        born = published if math.isfinite(published) else signals.first_seen.get(key, at)
        out[i, 5] = math.log1p(max(0.0, at - born) / 3600)
        if row >= 0 and context_rows:
            out[i, 6] = sections[str(space.sections[row])] / len(context_rows)
            out[i, 7] = float(bool(source_of) and str(space.sources[row]) == source_of)
    out[:, 8] = SERVING_POSITION if positions is None else positions
    return out
