"""Judged on clicks: replay a click log, fit the ranker on its earlier part, and score each
later impression's stories with four methods (``eval clicks``).

Methods, all in the same run: ``random``; ``popularity`` (smoothed CTR from earlier
impressions, decayed); ``content`` (the engine's score alone: related to the source article,
or ``recommend`` from the reader's history); ``ranker`` (fit on the impressions before the
split). Metrics per impression, averaged over impressions with at least one click and one
story not clicked, as MIND defines them (Wu et al., ACL 2020; the ``evaluate.py`` of the
MIND competition): AUC; MRR = sum over clicked stories of 1/rank, over the number clicked;
nDCG@k with gains 2^label - 1 and discounts log2(rank + 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from recommender.errors import InvalidInputError
from recommender.events.features import FEATURES
from recommender.events.log import StoredEvent
from recommender.events.signals import SignalSettings
from recommender.events.training import Shown, replay, serving_rows, train
from recommender.ranking import RankingOptions
from recommender.rowspace.space import RowSpace

METHODS = ("random", "popularity", "content", "ranker")
TRAIN_SHARE = 0.8  # without --train-until: the first 80 % of impressions train


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a clicked story scores above a story not clicked (ties count half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    positives = labels > 0
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mrr(labels: np.ndarray, scores: np.ndarray) -> float:
    """MIND's MRR: reciprocal ranks of the clicked stories, summed, over how many there are."""
    order = np.argsort(-scores, kind="stable")
    gains = labels[order] / (np.arange(len(labels)) + 1)
    return float(gains.sum() / labels.sum())


def ndcg(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """MIND's nDCG@k."""

    def dcg(order: np.ndarray) -> float:
        top = labels[order][:k]
        return float(((2**top - 1) / np.log2(np.arange(len(top)) + 2)).sum())

    return dcg(np.argsort(-scores, kind="stable")) / dcg(np.argsort(-labels, kind="stable"))


def evaluate_clicks(
    space: RowSpace,
    events: Iterable[StoredEvent],
    options: RankingOptions,
    train_until: float | None = None,
    settings: SignalSettings | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Replay ``events`` over the index of ``space``; see the module doc for the result."""
    return score_clicks(list(replay(space, events, options, settings)), train_until, seed)


def score_clicks(
    shown: list[Shown], train_until: float | None = None, seed: int = 0
) -> dict[str, Any]:
    """The four methods on impressions already replayed (``evaluate_clicks``)."""
    if not shown:
        raise InvalidInputError("the log holds no impressions", field="events")
    if train_until is None:
        times = sorted(s.at for s in shown)
        train_until = times[min(len(times) - 1, int(TRAIN_SHARE * len(times)))]
    before = [s for s in shown if s.at < train_until]
    after = [s for s in shown if s.at >= train_until and 0 < s.clicked.sum() < len(s.clicked)]
    if not after:
        raise InvalidInputError("no impression with clicks after the split", field="train_until")
    ranker = train(before, {"train_until": train_until})
    rng = np.random.default_rng(seed)
    scores: dict[str, list[dict[str, float]]] = {method: [] for method in METHODS}
    for s in after:
        by_method = {
            "random": rng.random(len(s.keys)),
            "popularity": s.rows[:, FEATURES.index("log_ctr")],
            "content": s.rows[:, FEATURES.index("content")],
            "ranker": ranker.score(serving_rows(s.rows)),
        }
        for method, values in by_method.items():
            scores[method].append(_metrics(s.clicked, values))
    return {
        "methods": {m: _mean(rows) for m, rows in scores.items()},
        "impressions": len(after),
        "train_impressions": len(before),
        "train_until": train_until,
        "ranker": dict(zip(ranker.features, np.round(ranker.weights, 4).tolist(), strict=True)),
    }


def _metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {
        "auc": auc(labels, scores),
        "mrr": mrr(labels, scores),
        "ndcg5": ndcg(labels, scores, 5),
        "ndcg10": ndcg(labels, scores, 10),
    }


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: round(float(np.mean([r[name] for r in rows])), 4) for name in rows[0]}
