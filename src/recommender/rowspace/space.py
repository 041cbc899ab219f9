"""One numbering for everything a request reads: the row space of a loaded snapshot.

Row ``r`` of a ``RowSpace`` is one article version. Every per-article array is indexed by it:

- ``int_ids[r]``, ``ids[r]`` and the facets (``langs``, ``sources``, ``sections``,
  ``published_ts``) that filters and ranking read;
- lexical row ``r`` (``lexical``), and for ``r < n_main`` word row ``r`` of the snapshot's
  ``WordTable`` (key terms);
- for ``r < n_main``, position ``r`` of the snapshot's FAISS main tier: the snapshot lists
  its vectors in that order (``VectorIndex.ids()`` after a load), so a boolean mask over the
  first ``n_main`` rows is a FAISS selector with no id lookups.

Rows ``>= n_main`` are articles written since the snapshot (the live overlay); a changed or
deleted article's old row is marked dead in ``alive``. A ``RowSpace`` is frozen: a write
builds a new one (``with_changes``) that shares what did not change, so a request keeps one
consistent view while writes go on, and the snapshot's own index is never mutated. The
per-row arrays grow in shared append-only buffers (``columns``): a write costs its own rows,
not a copy of every row.

Live rows cost every query a little (the delta tier is scanned exactly, its lexical postings
rebuilt), so ``folded`` moves them into a new main tier, in the background
(``writer.LiveIndex``): then rows ``< n_main`` are that tier's positions, and word rows come
from ``word_rows`` (each key's row in the snapshot's table), no longer from the row number.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from recommender.embedding.profiles import default_options
from recommender.index import VectorIndex
from recommender.index.lexical import LexicalIndex, LexicalModel
from recommender.index.words import ArticleWords
from recommender.ingest.records import Article
from recommender.ingest.text import TextRecipe
from recommender.ranking import Filters, RankingOptions
from recommender.rowspace.columns import appended, column
from recommender.rowspace.layered import LayeredMap
from recommender.storage.schema import int_id
from recommender.storage.snapshot import Snapshot


class LiveArticle(NamedTuple):
    """An article written since the snapshot, ready to join the row space."""

    key: int
    article: Article
    vector: np.ndarray
    lexical: sp.csr_matrix  # one row


@dataclass(frozen=True)
class RowSpace:
    """The rows of a loaded snapshot plus its live overlay (see the module docstring)."""

    vectors: VectorIndex
    lexical: LexicalIndex
    lexical_model: LexicalModel
    recipe: TextRecipe
    int_ids: np.ndarray
    ids: np.ndarray  # object: the article ids as strings
    langs: np.ndarray
    sources: np.ndarray
    sections: np.ndarray
    published_ts: np.ndarray  # POSIX seconds, NaN when unknown
    alive: np.ndarray
    n_main: int
    # int id -> its live row, and the articles written since the snapshot: layered, so that a
    # write copies its own changes, not every row (see ``layered``)
    row_of: LayeredMap[int, int]
    overlay: LayeredMap[int, Article] = field(default_factory=LayeredMap)
    snapshot: Snapshot | None = None  # None for an in-memory space (evaluation)
    word_rows: Mapping[int, int] = field(default_factory=dict)  # key -> snapshot word-table row
    # the ranking defaults under the model the vectors come from (``embedding.profiles``)
    options: RankingOptions = field(default_factory=RankingOptions)

    # -- building --------------------------------------------------------------------------

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> RowSpace:
        """The row space of a loaded snapshot, with no live changes."""
        facets = {row[0]: row for row in snapshot.store.facets()}
        int_ids = np.asarray(snapshot.index.ids(), dtype=np.int64)
        rows = [facets[int(i)] for i in int_ids]
        return cls(
            vectors=snapshot.index,
            lexical=LexicalIndex(snapshot.lexical_matrix),
            lexical_model=snapshot.lexical,
            recipe=TextRecipe(**snapshot.manifest.text_recipe),
            int_ids=int_ids,
            ids=column([r[1] for r in rows], object),
            langs=np.array([r[2] for r in rows], dtype=object),
            sources=np.array([r[3] for r in rows], dtype=object),
            sections=np.array([r[4] for r in rows], dtype=object),
            published_ts=np.array([np.nan if r[5] is None else r[5] for r in rows], np.float64),
            alive=np.ones(len(rows), dtype=bool),
            n_main=len(rows),
            row_of=LayeredMap(word_rows := {int(i): row for row, i in enumerate(int_ids)}),
            snapshot=snapshot,
            word_rows=word_rows,  # never mutated: ``row_of`` layers writes over it
            options=default_options(snapshot.manifest.model_name),
        )

    @classmethod
    def in_memory(
        cls,
        articles: Sequence[Article],
        vectors: np.ndarray,
        lexical_model: LexicalModel,
        lexical_matrix: sp.csr_matrix,
        *,
        index_type: str = "auto",
        recipe: TextRecipe | None = None,
        model_name: str | None = None,
    ) -> RowSpace:
        """A row space over articles held in memory (no store, no key terms): what the
        evaluation tool ranks with, so its figures come from the engine's own code."""
        int_ids = np.array([int_id(a.id) for a in articles], dtype=np.int64)
        stamps = [a.published_at.timestamp() if a.published_at else np.nan for a in articles]
        return cls(
            vectors=VectorIndex.build(int_ids, vectors, index_type, dimension=vectors.shape[1]),
            lexical=LexicalIndex(lexical_matrix),
            lexical_model=lexical_model,
            recipe=recipe or TextRecipe(),
            int_ids=int_ids,
            ids=column([a.id for a in articles], object),
            langs=np.array([a.lang for a in articles], dtype=object),
            sources=np.array([a.source for a in articles], dtype=object),
            sections=np.array([a.section for a in articles], dtype=object),
            published_ts=np.asarray(stamps, dtype=np.float64),
            alive=np.ones(len(articles), dtype=bool),
            n_main=len(articles),
            row_of=LayeredMap({int(key): row for row, key in enumerate(int_ids)}),
            overlay=LayeredMap({int(key): a for key, a in zip(int_ids, articles, strict=True)}),
            options=default_options(model_name),
        )

    def with_changes(self, added: Sequence[LiveArticle], removed: Sequence[int]) -> RowSpace:
        """A new space with articles added (replacing any row of the same id) and ids removed."""
        alive = self.alive.copy()
        replaced = [*removed, *(a.key for a in added)]
        for key in replaced:
            row = self.row_of.get(key)
            if row is not None:
                alive[row] = False
        start = len(self.int_ids)
        row_of = self.row_of.changed(
            ((a.key, start + offset) for offset, a in enumerate(added)),
            removed=replaced,  # ``changed`` skips keys it does not hold
        )
        overlay = self.overlay
        if added or any(key in overlay for key in removed):
            overlay = overlay.changed(
                ((a.key, a.article) for a in added),
                removed=removed,
            )
        changes: dict[str, Any] = {}
        if added:
            articles = [a.article for a in added]
            stamps = [a.published_at.timestamp() if a.published_at else np.nan for a in articles]

            # appended in the spare room of shared buffers: a write does not copy every row
            changes = {
                "int_ids": appended(self.int_ids, [a.key for a in added]),
                "ids": appended(self.ids, [a.id for a in articles]),
                "langs": appended(self.langs, [a.lang for a in articles]),
                "sources": appended(self.sources, [a.source for a in articles]),
                "sections": appended(self.sections, [a.section for a in articles]),
                "published_ts": appended(self.published_ts, stamps),
                "lexical": self.lexical.with_rows(sp.vstack([a.lexical for a in added]).tocsr()),
            }
            alive = np.concatenate([alive, np.ones(len(added), dtype=bool)])  # 1 byte a row
        keys = np.array([a.key for a in added], dtype=np.int64)
        vectors = self.vectors.with_changes(
            keys, np.vstack([a.vector for a in added]) if added else None, removed
        )
        return dataclasses.replace(
            self, alive=alive, row_of=row_of, overlay=overlay, vectors=vectors, **changes
        )

    def folded(self) -> RowSpace:
        """The same articles with the live rows written since the snapshot (or the last fold)
        moved into the main tier, after its rows: the vector index's delta added to a copy of
        its main tier (``VectorIndex.folded``), lexical rows and postings rebuilt, rows of
        changed and deleted articles dropped from the tail. Rows of the main tier keep their
        numbers (dead ones stay dead until the next snapshot). Call it off the request path."""
        tail = np.arange(self.n_main, len(self.int_ids))
        tail = tail[self.alive[tail]]
        rows = np.concatenate([np.arange(self.n_main), tail])
        keys = self.int_ids[rows]
        vectors = self.vectors.folded()
        if not np.array_equal(vectors.ids(), keys[self.alive[rows]]):
            raise RuntimeError("the vector index and the row space disagree on the live rows")
        old_rows = np.fromiter(self.row_of.values(), dtype=np.int64, count=len(self.row_of))
        new_rows = np.searchsorted(rows, old_rows)  # ``rows`` is sorted
        return dataclasses.replace(
            self,
            vectors=vectors,
            lexical=LexicalIndex(self.lexical.rows(rows)),
            int_ids=keys,
            ids=self.ids[rows],
            langs=self.langs[rows],
            sources=self.sources[rows],
            sections=self.sections[rows],
            published_ts=self.published_ts[rows],
            alive=self.alive[rows],
            n_main=len(rows),
            row_of=LayeredMap(dict(zip(self.row_of.keys(), new_rows.tolist(), strict=True))),
            overlay=self.overlay.flattened(),
        )

    @property
    def live_rows(self) -> int:
        """Rows written since the snapshot or the last fold: what a fold moves."""
        return len(self.int_ids) - self.n_main

    def with_index_type(self, index_type: str) -> RowSpace:
        """The same rows over a vector index of another type (built from this one's vectors;
        for comparisons such as exact against approximate search)."""
        vectors = self.vectors.vectors([int(key) for key in self.int_ids])
        index = VectorIndex.build(self.int_ids, vectors, index_type, dimension=vectors.shape[1])
        return dataclasses.replace(self, vectors=index)

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.row_of)

    @property
    def main_aligned(self) -> bool:
        """True when the first ``n_main`` rows are the FAISS main tier's positions."""
        return self.vectors.main_size == self.n_main

    def mask(self, filters: Filters) -> np.ndarray:
        """Live rows that pass the filters."""
        mask = self.alive.copy()
        if filters.langs:
            mask &= np.isin(self.langs, list(filters.langs))
        if filters.sections:
            mask &= np.isin(self.sections, list(filters.sections))
        if filters.sources:
            mask &= np.isin(self.sources, list(filters.sources))
        if filters.published_after is not None:
            mask &= self.published_ts >= filters.published_after.timestamp()
        if filters.published_before is not None:
            mask &= self.published_ts <= filters.published_before.timestamp()
        if filters.ids:
            chosen = np.zeros(len(mask), dtype=bool)
            rows = self.rows_of([int_id(i) for i in filters.ids])
            chosen[rows[rows >= 0]] = True
            mask &= chosen
        return mask

    def rows_of(self, keys: Sequence[int]) -> np.ndarray:
        """The live rows of int ids, -1 for ids the space does not hold."""
        return np.fromiter(self.row_of.get_many(keys, -1), dtype=np.int64, count=len(keys))

    def vectors_of(self, rows: np.ndarray, keys: Sequence[int]) -> np.ndarray:
        """The stored vectors of live rows (``keys`` their int ids): main-tier rows read by
        position, no id lookups, when the rows are aligned with the FAISS main tier."""
        if not self.main_aligned:
            return self.vectors.vectors(list(keys))
        in_main = rows < self.n_main
        if in_main.all():
            return self.vectors.main_vectors_at(rows)
        out = np.empty((len(rows), self.vectors.dimension), dtype=np.float32)
        out[in_main] = self.vectors.main_vectors_at(rows[in_main])
        tail = np.flatnonzero(~in_main)
        out[tail] = self.vectors.delta_vectors_of([keys[i] for i in tail.tolist()])
        return out

    def newest_ts(self) -> float | None:
        """The date of the newest live article (None when none is dated)."""
        stamps = self.published_ts[self.alive]
        if not len(stamps) or np.isnan(stamps).all():
            return None
        return float(np.nanmax(stamps))

    def articles(self, keys: Sequence[int], *, body: bool = True) -> dict[int, Article]:
        """Articles by int id: live writes first, then the snapshot's store."""
        found = {k: self.overlay[k] for k in keys if k in self.overlay}
        rest = [k for k in keys if k not in found and k in self.row_of]
        if rest and self.snapshot is not None:
            stored = self.snapshot.store.get_many(rest, body=body)
            found.update({key: s.article for key, s in stored.items()})
        return found

    def words(self, key: int, article: Article) -> ArticleWords:
        """An article's words for key terms: from the snapshot's table while its row there is
        the live one; articles written since are read from their text."""
        if key not in self.overlay and self.snapshot is not None:
            row = self.word_rows.get(key)
            if row is not None:
                return self.snapshot.words.row(row)
        return _article_words(self.recipe, article.title, article.lead, article.body)


@functools.lru_cache(maxsize=4096)
def _article_words(recipe: TextRecipe, title: str, lead: str, body: str) -> ArticleWords:
    # only articles written since the snapshot get here; they repeat across requests
    return ArticleWords.of(recipe.text(title, lead, body))
