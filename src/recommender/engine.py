"""The one API that the CLI, the gRPC service and batch jobs call.

``Engine`` serves the published snapshot of an index directory:

- ``related``: stories related to an indexed article, to raw text, or to several positive and
  negative example articles, with filters and ranking options (``recommender.ranking``);
- ``recommend``: stories for a reader, from the articles they read;
- ``get_article`` and ``stats``.

The embedding model is loaded only when a query needs it (raw text), so id queries answer
without torch in memory.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.articles import Article, detect_lang
from recommender.embedding import Embedder, EmbeddingCache
from recommender.embedding.cache import text_hash
from recommender.errors import InvalidInputError, ModelError, NotFoundError, NotReadyError
from recommender.index import SERVING_THREADS, set_threads
from recommender.lexical import ArticleWords, LexicalModel, prune_rows
from recommender.ranking import (
    CandidatePool,
    Filters,
    RankedList,
    RankingOptions,
    rank,
    time_relation,
)
from recommender.result_cache import ResultCache
from recommender.snapshot import (
    CACHE_FILE,
    Snapshot,
    current_name,
    load_snapshot,
    working_store,
)
from recommender.store import ArticleStore, UpsertOutcome, int_id
from recommender.text import TextRecipe

MAX_K = 100
MAX_TEXT_CHARS = 100_000
MAX_EXAMPLES = 100
MAX_UPSERT = 1000
_log = logging.getLogger("recommender.engine")
# Rocchio weight of negative examples, and how fast a reader's older reads fade (in reads).
NEGATIVE_WEIGHT = 0.5
HISTORY_HALF_LIFE = 5.0


@dataclass(frozen=True)
class RelatedItem:
    """One related story, with why it is related.

    ``article`` holds every field but the body (a list of links does not need it, and cached
    answers stay small); ``Engine.get_article`` returns the whole article.
    """

    id: str
    score: float
    article: Article
    dense_score: float = 0.0
    lexical_score: float = 0.0
    key_terms: tuple[str, ...] = ()
    relation: str = ""  # follow_up, background, same_time, or "" when a date is unknown
    folded: int = 0  # near-duplicates of this story left out of the list

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: id, title, score, the article's metadata and the explanation."""
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
            "dense_score": round(self.dense_score, 6),
            "lexical_score": round(self.lexical_score, 6),
            "key_terms": list(self.key_terms),
            "relation": self.relation,
            "folded": self.folded,
        }


@dataclass(frozen=True)
class RelatedResponse:
    """The ranked list, and the query's own story in other languages."""

    results: list[RelatedItem]
    other_languages: list[RelatedItem] = field(default_factory=list)

    def __iter__(self) -> Any:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "results": [r.to_dict() for r in self.results],
            "other_languages": [r.to_dict() for r in self.other_languages],
        }


@dataclass
class _Query:
    vector: np.ndarray
    lexical: sp.csr_matrix
    text: str  # for key terms; empty when ``text_key`` names the article to read it from
    lang: str
    reference_ts: float | None
    exclude: set[int]
    text_key: int | None = None


class _Corpus:
    """Per-article facts aligned by row, for filtering and lexical scoring.

    Rows of the snapshot come first; rows added in real time follow. A changed or deleted
    article's old row is marked dead. Changes build a new object (copy on write), so a
    request keeps a consistent view while writes go on.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        facets = {row[0]: row for row in snapshot.store.facets()}
        self.int_ids = np.asarray(snapshot.index.ids(), dtype=np.int64)
        rows = [facets[int(i)] for i in self.int_ids]
        self.ids = [r[1] for r in rows]
        self.langs = np.array([r[2] for r in rows], dtype=object)
        self.sources = np.array([r[3] for r in rows], dtype=object)
        self.sections = np.array([r[4] for r in rows], dtype=object)
        self.published_ts = np.array(
            [np.nan if r[5] is None else r[5] for r in rows], dtype=np.float64
        )
        self.alive = np.ones(len(rows), dtype=bool)
        self.n_main = len(rows)
        self.lexical_main: sp.csr_matrix = snapshot.lexical_matrix
        # n-gram -> documents: the inverted index for lexical candidates
        self.postings_main: sp.csr_matrix = self.lexical_main.T.tocsr()
        self._postings_delta: sp.csr_matrix | None = None
        self.lexical_delta: sp.csr_matrix = sp.csr_matrix((0, self.lexical_main.shape[1]))
        self.row_of = {int(i): row for row, i in enumerate(self.int_ids)}

    def lexical_scores(self, rows: list[int], query: sp.csr_matrix) -> np.ndarray:
        """Lexical cosine of the query with each row."""
        out = np.zeros(len(rows), dtype=np.float64)
        query = query.tocsr()
        if not query.nnz:
            return out
        # the query as a dense lookup table over the hashed n-gram space: a sparse matrix by
        # dense vector product, the fastest form measured. The 4 MiB table is kept per thread
        # and cleared after use (allocating and zeroing it cost more than the product).
        lookup = _lookup_table(query.shape[1])
        lookup[query.indices] = query.data
        try:
            wanted = np.asarray(rows, dtype=np.int64)
            in_main = wanted < self.n_main
            for part, matrix, offset in (
                (in_main, self.lexical_main, 0),
                (~in_main, self.lexical_delta, self.n_main),
            ):
                if part.any():
                    out[part] = matrix[wanted[part] - offset] @ lookup  # row slicing runs in C
        finally:
            lookup[query.indices] = 0.0
        return out

    def lexical_candidates(self, query: sp.csr_matrix, mask: np.ndarray, n: int) -> np.ndarray:
        """Rows sharing the query's most distinctive n-grams, best partial score first."""
        pruned = prune_rows(query)
        if pruned.nnz == 0:
            return np.zeros(0, dtype=np.int64)
        scores = np.zeros(len(self.int_ids), dtype=np.float64)
        tiers = [(self.postings_main, 0)]
        if self.lexical_delta.shape[0]:
            tiers.append((self.postings_delta(), self.n_main))
        for postings, offset in tiers:
            # walk the posting lists of the query's n-grams: one bincount, no sparse product
            starts = postings.indptr[pruned.indices]
            stops = postings.indptr[pruned.indices + 1]
            lengths = stops - starts
            if not lengths.sum():
                continue
            take = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
            weights = postings.data[take] * np.repeat(pruned.data, lengths)
            part = np.bincount(postings.indices[take], weights=weights, minlength=postings.shape[1])
            scores[offset : offset + len(part)] += part
        scores[~mask] = 0.0
        hits = np.flatnonzero(scores > 0)
        if len(hits) > n:
            hits = hits[np.argpartition(-scores[hits], n - 1)[:n]]
        return hits[np.argsort(-scores[hits], kind="stable")]

    def postings_delta(self) -> sp.csr_matrix:
        """Inverted index of the rows added in real time (built once per change)."""
        if self._postings_delta is None:
            self._postings_delta = self.lexical_delta.T.tocsr()
        return self._postings_delta

    def lexical_row(self, row: int) -> sp.csr_matrix:
        """The lexical vector of one row."""
        if row < self.n_main:
            return self.lexical_main[row]
        return self.lexical_delta[row - self.n_main]

    def with_changes(
        self,
        added: list[tuple[int, Article, sp.csr_matrix]],
        removed: list[int],
    ) -> _Corpus:
        """A copy with articles added (replacing any row of the same id) and ids removed."""
        new = copy.copy(self)
        new.row_of = dict(self.row_of)
        new.alive = self.alive.copy()
        for key in [*removed, *(a[0] for a in added)]:
            row = new.row_of.pop(key, None)
            if row is not None:
                new.alive[row] = False
        if added:
            start = len(new.int_ids)
            new.int_ids = np.concatenate([self.int_ids, [a[0] for a in added]])
            new.ids = [*self.ids, *(a[1].id for a in added)]
            new.langs = np.concatenate([self.langs, np.array([a[1].lang for a in added], object)])
            new.sources = np.concatenate(
                [self.sources, np.array([a[1].source for a in added], object)]
            )
            new.sections = np.concatenate(
                [self.sections, np.array([a[1].section for a in added], object)]
            )
            stamps = [a[1].published_at.timestamp() if a[1].published_at else np.nan for a in added]
            new.published_ts = np.concatenate([self.published_ts, stamps])
            new.alive = np.concatenate([new.alive, np.ones(len(added), dtype=bool)])
            new.lexical_delta = sp.vstack([self.lexical_delta, *(a[2] for a in added)]).tocsr()
            new._postings_delta = None
            for offset, (key, _, _) in enumerate(added):
                new.row_of[key] = start + offset
        return new

    def mask(self, filters: Filters) -> np.ndarray:
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
        return mask


class Engine:
    """Related stories and reader recommendations over one index directory's snapshot.

    With ``writable=True`` the engine also takes real-time changes (``upsert``, ``delete``):
    they are written to the working store durably, then applied to the loaded snapshot in
    memory. A newly published snapshot is picked up by ``reload`` (or the watcher thread),
    replaying the working store's changes that the snapshot does not contain yet.
    """

    def __init__(
        self,
        index_dir: str | Path,
        *,
        embedder: Embedder | None = None,
        writable: bool = False,
        result_cache_size: int = 0,
    ) -> None:
        self.index_dir = Path(index_dir)
        # answers to article-id queries, for the current index generation (0: no cache)
        self.results: ResultCache[RelatedResponse] = ResultCache(result_cache_size)
        self.writable = writable
        self._embedder = embedder
        self._snapshot: Snapshot | None = None
        self._corpus: _Corpus | None = None
        self._overlay: dict[int, Article] = {}  # articles changed since the snapshot
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()  # one writer at a time; reload replays under it
        self._store: ArticleStore | None = None
        self._cache: EmbeddingCache | None = None
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()
        if writable:
            self._store = working_store(self.index_dir)
            self._cache = EmbeddingCache(self.index_dir / CACHE_FILE)

    # -- lifecycle -------------------------------------------------------------------------

    def load(self) -> Engine:
        """Load (or reload) the serving snapshot, verifying its checksums.

        A writable engine then replays the working store's changes newer than the snapshot.
        """
        set_threads(SERVING_THREADS)  # measured: one thread per query serves fastest
        snapshot = load_snapshot(self.index_dir)
        corpus = _Corpus(snapshot)
        with self._write_lock:
            overlay: dict[int, Article] = {}
            if self._store is not None:
                corpus = self._replay(snapshot, corpus, overlay)
            with self._lock:
                previous = self._snapshot
                self._snapshot, self._corpus, self._overlay = snapshot, corpus, overlay
            self.results.invalidate()  # after the new corpus is visible (see ResultCache)
        if previous is not None:
            # requests may still hold the old snapshot: close it once they are surely done
            timer = threading.Timer(30.0, previous.close)
            timer.daemon = True
            timer.start()
        _log.info("loaded snapshot %s (%d articles)", snapshot.manifest.name, len(snapshot.index))
        return self

    def _replay(self, snapshot: Snapshot, corpus: _Corpus, overlay: dict[int, Article]) -> _Corpus:
        assert self._store is not None
        upserted, deleted = self._store.changes_since(snapshot.manifest.store_seq)
        if deleted:
            snapshot.index.remove(deleted)
            corpus = corpus.with_changes([], deleted)
        if upserted:
            stored = self._store.get_many(upserted)
            keys, vectors = self._store.vectors(snapshot.manifest.model, list(stored))
            recipe = TextRecipe(**snapshot.manifest.text_recipe)
            articles = [stored[int(key)].article for key in keys]
            lexical = snapshot.lexical.transform(
                [recipe.text(a.title, a.lead, a.body) for a in articles]
            )
            snapshot.index.add(keys, vectors)
            added = [
                (int(key), a, lexical[i])
                for i, (key, a) in enumerate(zip(keys, articles, strict=True))
            ]
            corpus = corpus.with_changes(added, [])
            overlay.update({key: a for key, a, _ in added})
        if upserted or deleted:
            _log.info("replayed %d upserts, %d deletes", len(upserted), len(deleted))
        return corpus

    def reload_if_changed(self) -> bool:
        """Load the published snapshot if it is not the one serving; True when it was."""
        name = current_name(self.index_dir)
        if name is None or (self._snapshot and self._snapshot.manifest.name == name):
            return False
        self.load()
        return True

    def start_watching(self, interval: float = 2.0) -> None:
        """Pick up newly published snapshots in a background thread."""

        def watch() -> None:
            while not self._stop_watching.wait(interval):
                try:
                    self.reload_if_changed()
                except Exception:  # keep serving the loaded snapshot
                    _log.exception("could not load the new snapshot; still serving the old one")

        self._watcher = threading.Thread(target=watch, name="snapshot-watcher", daemon=True)
        self._watcher.start()

    @property
    def ready(self) -> bool:
        """True once a snapshot is loaded."""
        return self._snapshot is not None

    @property
    def snapshot(self) -> Snapshot:
        """The loaded snapshot; NotReadyError before ``load``."""
        snapshot = self._snapshot
        if snapshot is None:
            raise NotReadyError("no index is loaded yet")
        return snapshot

    def _view(self) -> tuple[Snapshot, _Corpus]:
        """The snapshot and the corpus built on it, as one consistent pair."""
        with self._lock:
            return self.snapshot, self.corpus

    @property
    def corpus(self) -> _Corpus:
        corpus = self._corpus
        if corpus is None:
            raise NotReadyError("no index is loaded yet")
        return corpus

    @property
    def recipe(self) -> TextRecipe:
        """The text recipe the snapshot was built with."""
        return TextRecipe(**self.snapshot.manifest.text_recipe)

    @property
    def embedder(self) -> Embedder:
        """The model the snapshot was built with (loaded on first use)."""
        with self._lock:
            manifest = self.snapshot.manifest
            if self._embedder is None:
                self._embedder = Embedder(manifest.model_name, cache=self._cache)
            if self._embedder.identity != manifest.model:
                raise ModelError(
                    f"the index was built with {manifest.model}, the loaded model is "
                    f"{self._embedder.identity}; reindex or load the same model"
                )
            return self._embedder

    def close(self) -> None:
        """Stop watching and release the snapshot and stores."""
        self._stop_watching.set()
        with self._lock:
            if self._snapshot is not None:
                self._snapshot.close()
                self._snapshot = None
                self._corpus = None
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._cache is not None:
                self._cache.close()
                self._cache = None

    # -- lookups ---------------------------------------------------------------------------

    def _articles(self, keys: Sequence[int]) -> dict[int, Article]:
        """Articles by FAISS id: real-time changes first, then the snapshot's store."""
        corpus, overlay = self.corpus, self._overlay
        found = {k: overlay[k] for k in keys if k in overlay}
        rest = [k for k in keys if k not in found and k in corpus.row_of]
        for key, stored in self.snapshot.store.get_many(rest).items():
            found[key] = stored.article
        return found

    def get_article(self, article_id: str) -> Article:
        """The stored article; NotFoundError when unknown."""
        key = int_id(article_id)
        article = self._articles([key]).get(key)
        if article is None:
            raise NotFoundError(f"unknown article id {article_id!r}")
        return article

    def article_vector(self, article_id: str) -> np.ndarray:
        """The indexed vector of an article; NotFoundError when unknown."""
        key = int_id(article_id)
        if key not in self.snapshot.index:
            raise NotFoundError(f"unknown article id {article_id!r}")
        vector: np.ndarray = self.snapshot.index.vectors([key])[0]
        return vector

    def text_vector(self, text: str) -> np.ndarray:
        """Embed raw text (an article not yet indexed) as the index's recipe would."""
        prepared = self._prepare_text(text)
        vector: np.ndarray = self.embedder.embed([prepared])[0]
        return vector

    def _prepare_text(self, text: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("must be a non-empty string", field="text")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(
                f"is {len(text)} characters, the limit is {MAX_TEXT_CHARS}", field="text"
            )
        prepared = self.recipe.text(text)
        if not prepared:
            raise InvalidInputError("holds nothing once HTML is removed", field="text")
        return prepared

    # -- real-time changes -----------------------------------------------------------------

    def upsert(self, articles: Sequence[Article]) -> UpsertOutcome:
        """Add or replace articles: durable in the working store, searchable on return."""
        store = self._writable_store()
        if not articles:
            return UpsertOutcome([], [], [])
        if len(articles) > MAX_UPSERT:
            raise InvalidInputError(f"at most {MAX_UPSERT} articles per call", field="articles")
        seen: set[str] = set()
        texts = []
        for position, article in enumerate(articles):
            if article.id in seen:
                raise InvalidInputError(
                    f"id {article.id!r} appears twice", field=f"articles[{position}].id"
                )
            seen.add(article.id)
            text = self.recipe.text(article.title, article.lead, article.body)
            if not text:
                raise InvalidInputError(
                    "title, lead and body hold no text", field=f"articles[{position}].body"
                )
            texts.append(text)
        embedder = self.embedder
        vectors = embedder.embed(texts)
        with self._write_lock:
            snapshot = self.snapshot
            outcome = store.upsert(
                articles, embedder.identity, vectors, [text_hash(t) for t in texts]
            )
            keys = np.array([int_id(a.id) for a in articles], dtype=np.int64)
            lexical = snapshot.lexical.transform(texts)
            snapshot.index.add(keys, vectors)
            added = [
                (int(key), a, lexical[i])
                for i, (key, a) in enumerate(zip(keys, articles, strict=True))
            ]
            with self._lock:
                self._corpus = self.corpus.with_changes(added, [])
                overlay = dict(self._overlay)
                overlay.update({key: a for key, a, _ in added})
                self._overlay = overlay
            self.results.invalidate()
        return outcome

    def delete(self, article_ids: Sequence[str]) -> list[str]:
        """Remove articles everywhere; returns the ids that existed."""
        store = self._writable_store()
        with self._write_lock:
            removed = store.delete(article_ids)
            live = [int_id(i) for i in article_ids if int_id(i) in self.corpus.row_of]
            self.snapshot.index.remove(live)
            with self._lock:
                self._corpus = self.corpus.with_changes([], live)
                self._overlay = {k: v for k, v in self._overlay.items() if k not in set(live)}
            self.results.invalidate()
        return removed

    def _writable_store(self) -> ArticleStore:
        if self._store is None:
            raise InvalidInputError("this engine is read-only", field="index_dir")
        return self._store

    # -- queries ---------------------------------------------------------------------------

    def related(
        self,
        *,
        article_id: str | None = None,
        text: str | None = None,
        positive_ids: Sequence[str] = (),
        negative_ids: Sequence[str] = (),
        k: int = 10,
        filters: Filters | None = None,
        options: RankingOptions | None = None,
        lang: str | None = None,
        published_at: datetime | None = None,
    ) -> RelatedResponse:
        """Stories related to an article id, to raw text, or to positive/negative examples.

        The query article(s) are never among the results. ``lang`` and ``published_at`` are
        the language (detected when absent) and date of a text query; recency counts from that
        date, or from now (no later than the newest indexed article) when it is absent.
        """
        _check_k(k)
        given = sum(x is not None for x in (article_id, text)) + bool(positive_ids)
        if given != 1:
            raise InvalidInputError(
                "give exactly one of article_id, text, positive_ids", field="article_id"
            )
        if negative_ids and not positive_ids:
            raise InvalidInputError("negative_ids need positive_ids", field="negative_ids")
        filters, options = filters or Filters(), options or RankingOptions()
        cache_key = None
        if text is None:  # article queries repeat (every page view of a story asks the same)
            cache_key = _hashable(
                (article_id, tuple(positive_ids), tuple(negative_ids), k, filters, options)
            )
            cached = self.results.get(cache_key) if cache_key is not None else None
            if cached is not None:
                return cached
        generation = self.results.generation
        if article_id is not None:
            query = self._article_query([article_id], [])
        elif text is not None:
            query = self._text_query(text, lang)
            if published_at is not None:
                query.reference_ts = published_at.timestamp()
        else:
            query = self._article_query(list(positive_ids), list(negative_ids))
        response = self._rank(query, k, filters, options)
        if cache_key is not None:
            self.results.put(cache_key, response, generation)
        return response

    def recommend(
        self,
        history_ids: Sequence[str],
        k: int = 10,
        filters: Filters | None = None,
        options: RankingOptions | None = None,
    ) -> RelatedResponse:
        """Unread stories for a reader, from the ids they read (oldest first).

        Recent reads weigh more (half weight every ``HISTORY_HALF_LIFE`` reads back); ids not
        in the index are skipped, since readers' histories outlive articles.
        """
        _check_k(k)
        if not history_ids:
            raise InvalidInputError("needs at least one article id", field="history_ids")
        if len(history_ids) > 10 * MAX_EXAMPLES:
            raise InvalidInputError(f"at most {10 * MAX_EXAMPLES} ids", field="history_ids")
        known = [i for i in history_ids if int_id(i) in self.corpus.row_of]
        if not known:
            raise NotFoundError("none of the history ids is in the index")
        n = len(known)
        weights = np.power(0.5, (n - 1 - np.arange(n)) / HISTORY_HALF_LIFE)
        query = self._weighted_query(known, weights, [])
        query.exclude |= {int_id(i) for i in history_ids}
        query.reference_ts = self._now()
        query.lang = ""  # a reader profile has no "same story in other languages"
        return self._rank(query, k, filters or Filters(), options or RankingOptions())

    def _article_query(self, positive: list[str], negative: list[str]) -> _Query:
        if len(positive) + len(negative) > MAX_EXAMPLES:
            raise InvalidInputError(f"at most {MAX_EXAMPLES} example ids", field="positive_ids")
        for article_id in [*positive, *negative]:
            if int_id(article_id) not in self.corpus.row_of:
                raise NotFoundError(f"unknown article id {article_id!r}")
        return self._weighted_query(positive, np.ones(len(positive)), negative)

    def _weighted_query(
        self, positive: list[str], weights: np.ndarray, negative: list[str]
    ) -> _Query:
        corpus = self.corpus
        keys = [int_id(i) for i in positive]
        rows = [corpus.row_of[key] for key in keys]
        vectors = self.snapshot.index.vectors(keys)
        vector = (weights[:, None] * vectors).sum(axis=0) / weights.sum()
        if negative:
            negative_vectors = self.snapshot.index.vectors([int_id(i) for i in negative])
            vector = vector - NEGATIVE_WEIGHT * negative_vectors.mean(axis=0)
        vector = _unit(vector)
        if len(rows) == 1:  # one article: its own (normalised) row
            lexical_row = corpus.lexical_row(rows[0])
        else:
            stacked = sp.vstack([corpus.lexical_row(r) for r in rows]).tocsr()
            lexical_row = sp.csr_matrix(sp.csr_matrix(weights[None, :]) @ stacked)  # sparse
            norm = float(np.sqrt(lexical_row.multiply(lexical_row).sum()))
            lexical_row = lexical_row / max(norm, 1e-12)
        langs = Counter(corpus.langs[r] for r in rows)
        stamps = corpus.published_ts[rows]
        reference = float(np.nanmax(stamps)) if not np.isnan(stamps).all() else None
        return _Query(
            vector=vector,
            lexical=lexical_row,
            text="",  # key terms come from the last example, read with the results
            lang=langs.most_common(1)[0][0] if langs else "",
            reference_ts=reference,
            exclude={*keys, *(int_id(i) for i in negative)},
            text_key=keys[-1],
        )

    def _text_query(self, text: str, lang: str | None) -> _Query:
        prepared = self._prepare_text(text)
        vector = self.embedder.embed([prepared])[0]
        lexical = self.snapshot.lexical.transform([prepared])
        return _Query(
            vector=vector,
            lexical=lexical,
            text=prepared,
            lang=(lang or detect_lang(prepared)),
            reference_ts=self._now(),
            exclude=set(),
        )

    def _now(self) -> float:
        """Now, but no later than the newest article: an archive's "now" is its last day."""
        stamps = self.corpus.published_ts[self.corpus.alive]
        newest = float(np.nanmax(stamps)) if len(stamps) and not np.isnan(stamps).all() else None
        now = time.time()
        return min(now, newest) if newest is not None else now

    def _rank(
        self, query: _Query, k: int, filters: Filters, options: RankingOptions
    ) -> RelatedResponse:
        snapshot, corpus = self._view()
        exclude = query.exclude | {int_id(i) for i in filters.exclude_ids}
        fetch = max(options.candidates, 3 * k)
        mask = corpus.mask(filters) if filters.restricts else corpus.alive
        if filters.restricts:
            allowed_rows = mask.copy()
            for key in exclude:
                row = corpus.row_of.get(key)
                if row is not None:
                    allowed_rows[row] = False
            n_main = corpus.n_main
            if snapshot.index.main_size == n_main:
                # rows before n_main are the main tier's positions: no id lookups
                found = snapshot.index.search(
                    query.vector[None, :],
                    fetch,
                    allowed=corpus.int_ids[n_main:][allowed_rows[n_main:]],
                    main_mask=allowed_rows[:n_main],
                )
            else:
                found = snapshot.index.search(
                    query.vector[None, :], fetch, allowed=corpus.int_ids[allowed_rows]
                )
        else:
            found = snapshot.index.search(query.vector[None, :], fetch + len(exclude))
        keys = [
            int(i)
            for i in found.ids[0]
            if int(i) >= 0 and int(i) not in exclude and int(i) in corpus.row_of
        ][:fetch]  # an id the corpus does not know yet is a write in flight: skip it
        if options.dense_weight == 0.0:
            keys = []  # lexical only: candidates come from the n-gram lookup alone
        if options.dense_weight < 1.0:
            # hybrid: add the nearest stories by their most distinctive shared n-grams
            seen = set(keys)
            for row in corpus.lexical_candidates(query.lexical, mask, fetch + len(exclude)):
                key = int(corpus.int_ids[row])
                if key not in seen and key not in exclude:
                    keys.append(key)
                    seen.add(key)
        if not keys:
            return RelatedResponse([])
        rows = [corpus.row_of[key] for key in keys]
        vectors = snapshot.index.vectors(keys)
        pool = CandidatePool(
            dense=vectors @ query.vector,
            lexical=corpus.lexical_scores(rows, query.lexical),
            vectors=vectors,
            published_ts=corpus.published_ts[rows],
            langs=[str(corpus.langs[r]) for r in rows],
            sources=[str(corpus.sources[r]) for r in rows],
        )
        ranked = rank(pool, k, options, query_lang=query.lang, reference_ts=query.reference_ts)
        return self._response(query, keys, pool, ranked, snapshot, corpus)

    def _response(
        self,
        query: _Query,
        keys: list[int],
        pool: CandidatePool,
        ranked: RankedList,
        snapshot: Snapshot,
        corpus: _Corpus,
    ) -> RelatedResponse:
        wanted = [keys[i] for i in [*ranked.main, *ranked.other_languages]]
        if query.text_key is not None:
            wanted.append(query.text_key)  # one store read for the results and the query
        articles = self._articles(wanted)
        lexical_model: LexicalModel = snapshot.lexical
        recipe = TextRecipe(**snapshot.manifest.text_recipe)

        def words(key: int, article: Article) -> ArticleWords:
            # from the snapshot's table while the article's row there is the live one; articles
            # written since the snapshot are read from their text
            row = corpus.row_of.get(key)
            if row is not None and row < corpus.n_main:
                return snapshot.words.row(row)
            return _article_words(recipe, article.title, article.lead, article.body)

        if query.text_key is not None and query.text_key in articles:
            query_words = words(query.text_key, articles[query.text_key])
        else:
            query_words = lexical_model.words_of(query.text)

        def item(position: int) -> RelatedItem | None:
            a = articles.get(keys[position])
            if a is None:
                return None
            return RelatedItem(
                id=a.id,
                score=float(ranked.scores[position]),
                article=dataclasses.replace(a, body=""),
                dense_score=float(pool.dense[position]),
                lexical_score=float(pool.lexical[position]),
                key_terms=tuple(lexical_model.key_terms(query_words, words(keys[position], a))),
                relation=time_relation(float(pool.published_ts[position]), query.reference_ts),
                folded=ranked.folded.get(position, 0),
            )

        results = [r for r in map(item, ranked.main) if r is not None]
        other = [r for r in map(item, ranked.other_languages) if r is not None]
        return RelatedResponse(results, other)

    def stats(self) -> dict[str, Any]:
        """Manifest and live counts by language, source and section."""
        snapshot, corpus = self.snapshot, self.corpus

        def counts(values: np.ndarray) -> dict[str, int]:
            return dict(Counter(str(v) for v in values[corpus.alive]).most_common())

        return {
            "snapshot": snapshot.manifest.to_dict(),
            "articles": int(corpus.alive.sum()),
            "index_size": len(snapshot.index),
            "by_lang": counts(corpus.langs),
            "by_source": counts(corpus.sources),
            "by_section": counts(corpus.sections),
            "result_cache": self.results.info(),
        }


_thread_state = threading.local()


def _lookup_table(size: int) -> np.ndarray:
    """This thread's all-zero float32 table of ``size`` entries (callers clear what they set)."""
    table: np.ndarray | None = getattr(_thread_state, "lookup", None)
    if table is None or len(table) != size:
        table = np.zeros(size, dtype=np.float32)
        _thread_state.lookup = table
    return table


@functools.lru_cache(maxsize=4096)
def _article_words(recipe: TextRecipe, title: str, lead: str, body: str) -> ArticleWords:
    # only articles written since the snapshot get here; they repeat across requests
    return LexicalModel.words_of(recipe.text(title, lead, body))


def _hashable(key: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The key, or None when a caller passed something unhashable (a list in Filters)."""
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"must be between 1 and {MAX_K}, got {k!r}", field="k")


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    out: np.ndarray = (vector / norm if norm > 0 else vector).astype(np.float32)
    return out
