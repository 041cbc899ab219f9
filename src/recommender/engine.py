"""The one API that the CLI, the gRPC service and batch jobs call.

``Engine`` serves a published snapshot of an index directory: related stories by article id
or by raw text, article lookup, statistics. It loads the embedding model only when a query
needs it (text queries), so id queries answer without torch in memory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recommender.articles import Article
from recommender.embedding import Embedder
from recommender.errors import InvalidInputError, ModelError, NotFoundError, NotReadyError
from recommender.snapshot import Snapshot, load_snapshot
from recommender.store import int_id
from recommender.text import TextRecipe

MAX_K = 100
MAX_TEXT_CHARS = 100_000


@dataclass(frozen=True)
class RelatedItem:
    """One related story."""

    id: str
    score: float
    article: Article
    explanation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: id, title, score and the article's metadata."""
        a = self.article
        return {
            "id": self.id,
            "title": a.title,
            "score": round(self.score, 6),
            "url": a.url,
            "lang": a.lang,
            "published_at": a.published_at.isoformat() if a.published_at else None,
            "source": a.source,
            "section": a.section,
            **self.explanation,
        }


class Engine:
    """Related stories over the published snapshot of one index directory."""

    def __init__(self, index_dir: str | Path, *, embedder: Embedder | None = None) -> None:
        self.index_dir = Path(index_dir)
        self._embedder = embedder
        self._snapshot: Snapshot | None = None
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------

    def load(self) -> Engine:
        """Load (or reload) the serving snapshot, verifying its checksums."""
        snapshot = load_snapshot(self.index_dir)
        with self._lock:
            previous, self._snapshot = self._snapshot, snapshot
        if previous is not None:
            previous.close()
        return self

    @property
    def snapshot(self) -> Snapshot:
        """The loaded snapshot; NotReadyError before ``load``."""
        snapshot = self._snapshot
        if snapshot is None:
            raise NotReadyError("no index is loaded yet")
        return snapshot

    @property
    def embedder(self) -> Embedder:
        """The model the snapshot was built with (loaded on first use)."""
        with self._lock:
            manifest = self.snapshot.manifest
            if self._embedder is None:
                self._embedder = Embedder(manifest.model_name)
            if self._embedder.identity != manifest.model:
                raise ModelError(
                    f"the index was built with {manifest.model}, the loaded model is "
                    f"{self._embedder.identity}; reindex or load the same model"
                )
            return self._embedder

    def close(self) -> None:
        """Release the snapshot."""
        with self._lock:
            if self._snapshot is not None:
                self._snapshot.close()
                self._snapshot = None

    # -- queries ---------------------------------------------------------------------------

    def get_article(self, article_id: str) -> Article:
        """The stored article; NotFoundError when unknown."""
        stored = self.snapshot.store.get(article_id)
        if stored is None:
            raise NotFoundError(f"unknown article id {article_id!r}")
        return stored.article

    def article_vector(self, article_id: str) -> np.ndarray:
        """The indexed vector of an article; NotFoundError when unknown."""
        snapshot = self.snapshot
        key = int_id(article_id)
        _, vectors = snapshot.store.vectors(snapshot.manifest.model, [key])
        if not len(vectors):
            raise NotFoundError(f"unknown article id {article_id!r}")
        vector: np.ndarray = vectors[0]
        return vector

    def text_vector(self, text: str) -> np.ndarray:
        """Embed raw text (an article not yet indexed) as the index's recipe would."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("text must be a non-empty string", field="text")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(
                f"text is {len(text)} characters, the limit is {MAX_TEXT_CHARS}", field="text"
            )
        recipe = TextRecipe(**self.snapshot.manifest.text_recipe)
        prepared = recipe.text(text)
        if not prepared:
            raise InvalidInputError("text holds nothing once HTML is removed", field="text")
        vector: np.ndarray = self.embedder.embed([prepared])[0]
        return vector

    def related(
        self, *, article_id: str | None = None, text: str | None = None, k: int = 10
    ) -> list[RelatedItem]:
        """The ``k`` stories most related to an indexed article or to raw text.

        The query article itself is never among its own results.
        """
        if (article_id is None) == (text is None):
            raise InvalidInputError("give exactly one of article_id and text", field="article_id")
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k must be between 1 and {MAX_K}, got {k}", field="k")
        snapshot = self.snapshot
        exclude: set[int] = set()
        if article_id is not None:
            query = self.article_vector(article_id)
            exclude.add(int_id(article_id))
        else:
            query = self.text_vector(text or "")
        found = snapshot.index.search(query[None, :], k + len(exclude))
        ids = [int(i) for i in found.ids[0] if int(i) >= 0 and int(i) not in exclude]
        scores = {int(i): float(s) for i, s in zip(found.ids[0], found.scores[0], strict=True)}
        articles = snapshot.store.get_many(ids[:k])
        return [
            RelatedItem(articles[i].article.id, scores[i], articles[i].article)
            for i in ids[:k]
            if i in articles
        ]

    def stats(self) -> dict[str, Any]:
        """Manifest and counts by language, source and section."""
        snapshot = self.snapshot
        store = snapshot.store
        return {
            "snapshot": snapshot.manifest.to_dict(),
            "articles": len(store),
            "index_size": len(snapshot.index),
            "by_lang": store.facet_counts("lang"),
            "by_source": store.facet_counts("source"),
            "by_section": store.facet_counts("section"),
        }
