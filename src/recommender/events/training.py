"""Impressions replayed into examples: what the ranker learns from, and what ``eval clicks``
scores.

The log is replayed in time order with signals kept as serving keeps them, and each impression
becomes an example set *before* it (and its clicks) is counted: its features are what a server
would have known when it showed the list, never what came after. A shown story is clicked
when the same reader clicked it from the same place within ``CLICK_WINDOW_S`` and before that
place showed them a new list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.errors import InvalidInputError, NotFoundError
from recommender.events.features import SERVING_POSITION, Context, feature_rows
from recommender.events.log import HOME_ID, StoredEvent
from recommender.events.ranker import Ranker, fit_ranker
from recommender.events.signals import Signals, SignalSettings
from recommender.ranking import RankingOptions
from recommender.requests import queries
from recommender.requests.candidates import candidate_scores
from recommender.rowspace.space import RowSpace

CLICK_WINDOW_S = 1800.0


@dataclass
class Shown:
    """One impression as examples: its context, the stories shown, their features, clicks."""

    at: float
    context: Context
    keys: list[int]
    rows: np.ndarray  # feature rows, with the position each story was shown at
    clicked: np.ndarray


def content_scores(
    space: RowSpace, context: Context, keys: list[int], options: RankingOptions
) -> np.ndarray:
    """The engine's score of each candidate for a context: related to the source article, or
    recommended from the reader's history; NaN where there is neither."""
    source_row = int(space.rows_of([context.source])[0]) if context.source is not None else -1
    try:
        if source_row >= 0:
            query = queries.article_query(space, [str(space.ids[source_row])], [])
        else:
            rows = [r for r in space.rows_of(list(context.history)).tolist() if r >= 0]
            if not rows:
                return np.full(len(keys), np.nan)
            query = queries.history_query(space, [str(space.ids[r]) for r in rows])
    except (InvalidInputError, NotFoundError):
        return np.full(len(keys), np.nan)
    # recency as it was then; a story the reader read is still scored (a list may show it)
    query = dataclasses.replace(query, reference_ts=context.at, exclude=frozenset())
    return candidate_scores(space, query, keys, options)


def replay(
    space: RowSpace,
    events: Iterable[StoredEvent],
    options: RankingOptions,
    settings: SignalSettings | None = None,
) -> Iterator[Shown]:
    """Every impression of ``events`` with its features and clicks (see the module doc)."""
    signals = Signals(settings or SignalSettings())
    pending: dict[tuple[bytes, int | None], Shown] = {}
    # in time order: a log written by several processes, or a MIND file, is not quite in it,
    # and an impression must not see what happened after it
    for event in sorted(events, key=lambda event: (event.at, event.seq)):
        place = (event.reader, event.source)
        if event.kind == "impression":
            source = None if event.source in (None, HOME_ID) else event.source
            context = Context(event.at, source, tuple(signals.history(event.reader)))
            keys = list(event.ids)
            content = content_scores(space, context, keys, options)
            positions = np.arange(len(keys), dtype=float)
            rows = feature_rows(space, signals, context, keys, content, positions)
            earlier = pending.pop(place, None)
            if earlier is not None:
                yield earlier
            pending[place] = Shown(event.at, context, keys, rows, np.zeros(len(keys)))
        elif event.kind == "click":
            shown = pending.get(place)
            if shown is not None and event.at - shown.at <= CLICK_WINDOW_S:
                for n, key in enumerate(shown.keys):
                    if key == event.target:
                        shown.clicked[n] = 1.0
        signals.apply(event)
    yield from sorted(pending.values(), key=lambda shown: shown.at)


def train(shown: Iterable[Shown], report: dict[str, Any] | None = None) -> Ranker:
    """A ranker fit on impressions (every story shown an example, clicked or not)."""
    sets = list(shown)
    if not sets:
        raise InvalidInputError("no impressions to train on", field="events")
    rows = np.vstack([s.rows for s in sets])
    clicked = np.concatenate([s.clicked for s in sets])
    details = {"impressions": len(sets), "clicks": int(clicked.sum()), **(report or {})}
    return fit_ranker(rows, clicked, details)


def serving_rows(rows: np.ndarray) -> np.ndarray:
    """Feature rows as scored at serving: position fixed (its bias is not the story's)."""
    fixed = rows.copy()
    fixed[:, -1] = SERVING_POSITION
    return fixed
