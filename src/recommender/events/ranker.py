"""A ranker fit on a site's own impressions: logistic regression over ``features.FEATURES``.

Measured choice (``docs/quality.md``, the reader simulator and ``eval clicks``): a linear model
on standardised, log-scaled features. It needs no pickle (the model is a JSON file of
weights, safe to load and to read), fits a million examples in seconds on 2 cores, and click
probability in news is close to a product of factors (position x interest x popularity x
freshness), which is linear in the logs the features already are.

Models are saved versioned under ``<index>/rankers/`` (``ranker-<UTC time>.json``, written
atomically) and serving uses the newest one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import InvalidInputError
from recommender.events.features import FEATURES

RANKERS_DIR = "rankers"


@dataclass(frozen=True)
class Ranker:
    """Standardisation and weights of a fitted model, with what it was fit on."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    trained_at: str
    examples: int
    report: dict[str, Any]

    def score(self, rows: np.ndarray) -> np.ndarray:
        """The model's log-odds of a click for each feature row."""
        if rows.shape[1] != len(self.features):
            raise InvalidInputError(f"the ranker takes {len(self.features)} features",
                                    field="features")  # fmt: skip
        result: np.ndarray = ((rows - self.mean) / self.scale) @ self.weights + self.bias
        return result

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``save`` writes)."""
        return {
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "trained_at": self.trained_at,
            "examples": self.examples,
            "report": self.report,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ranker:
        return cls(
            features=tuple(data["features"]),
            mean=np.asarray(data["mean"], dtype=float),
            scale=np.asarray(data["scale"], dtype=float),
            weights=np.asarray(data["weights"], dtype=float),
            bias=float(data["bias"]),
            trained_at=str(data["trained_at"]),
            examples=int(data["examples"]),
            report=dict(data.get("report", {})),
        )

    def save(self, index_dir: str | Path) -> Path:
        """Write the model as the newest version under ``<index_dir>/rankers/``."""
        directory = Path(index_dir) / RANKERS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = directory / f"ranker-{stamp}.json"
        staging = path.with_suffix(".json.tmp")
        staging.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        with open(staging, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staging, path)
        return path


def latest_ranker(index_dir: str | Path) -> tuple[Path, Ranker] | None:
    """The newest saved ranker of an index (None: none saved, or its features are not this
    version's)."""
    directory = Path(index_dir) / RANKERS_DIR
    paths = sorted(directory.glob("ranker-*.json")) if directory.is_dir() else []
    if not paths:
        return None
    ranker = Ranker.from_dict(json.loads(paths[-1].read_text(encoding="utf-8")))
    return (paths[-1], ranker) if ranker.features == FEATURES else None


def fit_ranker(rows: np.ndarray, clicked: np.ndarray, report: dict[str, Any]) -> Ranker:
    """Fit on feature rows of shown candidates (``clicked``: 1 for a click, else 0)."""
    from sklearn.linear_model import LogisticRegression

    if len(rows) == 0 or len(set(clicked.tolist())) < 2:
        raise InvalidInputError("training needs impressions with clicks and without",
                                field="events")  # fmt: skip
    mean, scale = rows.mean(axis=0), rows.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit((rows - mean) / scale, clicked)
    return Ranker(
        features=FEATURES,
        mean=mean,
        scale=scale,
        weights=model.coef_[0].astype(float),
        bias=float(model.intercept_[0]),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        examples=len(rows),
        report=report,
    )
