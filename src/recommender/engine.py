"""The one API that the CLI, the gRPC service and batch jobs call: a short facade.

``Engine`` serves the published snapshot of an index directory:

- ``related``: stories related to an indexed article, to raw text, or to several positive and
  negative example articles, with filters and ranking options (``recommender.ranking``);
- ``recommend``: stories for a reader, from the articles they read;
- ``get_article``, ``stats``, and (writable engines) ``upsert``, ``delete`` and ``events``
  (the reader event log: ``recommender.events``).

Each request reads the current ``RowSpace`` once and runs the same four steps on it: build a
``Query`` (``queries``), gather candidates (``candidates``), rank them (``ranking``), explain
the results (``explain``). Writes and snapshot loading live in ``writer.LiveIndex``. The
embedding model is loaded only when a query needs it (raw text), so id queries answer without
torch in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from recommender.embedding import Embedder
from recommender.errors import ModelError, NotFoundError, StoreError, disk_full_refused
from recommender.events.live import ReaderEvents
from recommender.events.log import EVENTS_FILE
from recommender.events.ranker import RANKERS_DIR, Ranker
from recommender.ingest.records import Article, echo
from recommender.ingest.text import TextRecipe
from recommender.lists.stored import StoredList
from recommender.live.result_cache import ResultCache
from recommender.live.stats import EngineStats, space_stats
from recommender.live.writer import LiveIndex
from recommender.ranking import Filters, RankingOptions
from recommender.requests import candidates, queries
from recommender.requests.checks import MAX_K, check_k, check_related, hashable
from recommender.requests.explain import RelatedItem, RelatedResponse, build_response
from recommender.rowspace.space import RowSpace
from recommender.storage.schema import UpsertOutcome, int_id
from recommender.storage.snapshot import Snapshot

# A request without filters or options: adapters pass these very objects, so recognising
# the page-view request costs an identity check (``_answerable``). DEFAULT_OPTIONS stands for
# the model's defaults (``Engine.default_options``), whatever values it holds.
NO_FILTERS = Filters()
DEFAULT_OPTIONS = RankingOptions()

__all__ = [
    "DEFAULT_OPTIONS",
    "MAX_K",
    "NO_FILTERS",
    "Engine",
    "EngineStats",
    "RelatedItem",
    "RelatedResponse",
]


class Engine:
    """Related stories and reader recommendations over one index directory's snapshot.

    With ``writable=True`` the engine also takes real-time changes (``upsert``, ``delete``):
    they are written to the working store durably, then applied to the loaded snapshot in
    memory. A newly published snapshot is picked up by ``reload_if_changed`` (or the watcher
    thread), replaying the working store's changes that the snapshot does not contain yet.
    """

    def __init__(
        self,
        index_dir: str | Path,
        *,
        embedder: Embedder | None = None,
        writable: bool = False,
        result_cache_size: int = 0,
        use_lists: bool = True,
        rerank_lists: bool = False,
    ) -> None:
        self.index_dir = Path(index_dir)
        # answers to article-id queries, for the current index generation (0: no cache)
        self.results: ResultCache[RelatedResponse] = ResultCache(result_cache_size)
        self.live = LiveIndex(self.index_dir, writable=writable, on_change=self.results.invalidate)
        self.writable = writable
        self.use_lists = use_lists  # False: rank every request live (comparisons, benchmarks)
        self.rerank_lists = rerank_lists  # True: stored lists re-ordered by the click ranker
        self._embedder = embedder
        self._model_lock = threading.Lock()
        self._events: ReaderEvents | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def load(self) -> Engine:
        """Load (or reload) the serving snapshot; see ``LiveIndex.load``."""
        self.live.load()
        return self

    def reload_if_changed(self) -> bool:
        """Load the published snapshot if it is not the one serving; True when it was."""
        return self.live.reload_if_changed()

    def start_watching(self, interval: float = 2.0, follow_interval: float = 0.2) -> None:
        """Pick up newly published snapshots, and (writable engines) other processes' writes
        to the working store, in background threads."""
        self.live.start_watching(interval)
        if self.writable:
            self.live.start_following(follow_interval)

    @property
    def ready(self) -> bool:
        """True once a snapshot is loaded."""
        return self.live.ready

    @property
    def space(self) -> RowSpace:
        """The current row space (NotReadyError before ``load``)."""
        return self.live.space

    @property
    def snapshot(self) -> Snapshot:
        """The loaded snapshot; NotReadyError before ``load``."""
        snapshot = self.space.snapshot
        assert snapshot is not None  # an engine's row space always comes from a snapshot
        return snapshot

    @property
    def recipe(self) -> TextRecipe:
        """The text recipe the snapshot was built with."""
        return self.space.recipe

    @property
    def embedder(self) -> Embedder:
        """The model the snapshot was built with (loaded on first use)."""
        manifest = self.snapshot.manifest
        with self._model_lock:
            if self._embedder is None:
                self._embedder = Embedder(manifest.model_name, cache=self.live.cache)
            if self._embedder.identity != manifest.model:
                raise ModelError(
                    f"the index was built with {manifest.model}, the loaded model is "
                    f"{self._embedder.identity}; reindex or load the same model"
                )
            return self._embedder

    @property
    def events(self) -> ReaderEvents:
        """Reader events and their signals, beside the store (writable engines; opened on
        first use)."""
        if not self.writable:
            raise StoreError("this server is read-only: send reader events to a writable one")
        with self._model_lock:
            if self._events is None:
                self._events = ReaderEvents(self.index_dir)
            return self._events

    def close(self) -> None:
        """Stop watching and release the snapshot and stores."""
        self.live.close()
        if self._events is not None:
            self._events.close()

    def upsert(self, articles: Sequence[Article]) -> UpsertOutcome:
        """Add or replace articles: durable in the working store, searchable on return."""
        with disk_full_refused(str(self.index_dir)):
            return self.live.upsert(articles, lambda: self.embedder)

    def delete(self, article_ids: Sequence[str]) -> list[str]:
        """Remove articles everywhere; returns the ids that existed."""
        with disk_full_refused(str(self.index_dir)):
            return self.live.delete(article_ids)

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
        check_k(k)
        check_related(article_id, text, positive_ids, negative_ids, lang)
        filters, options = filters or Filters(), self._options(options)
        self.live.catch_up_if_behind()
        if article_id is not None:
            stored = self._stored_list(article_id, k, filters, options)
            ranker = self._ranker() if stored is not None and self.rerank_lists else None
            if stored is not None and ranker is not None:
                answer = stored.response(self.live.lists.depth)
                return self.events.reorder(ranker, self.space, article_id, answer, k)
            if stored is not None:
                return stored.response(k)
        cache_key = None
        if text is None:  # article queries repeat (every page view of a story asks the same)
            cache_key = hashable(
                (article_id, tuple(positive_ids), tuple(negative_ids), k, filters, options)
            )
            cached = self.results.get(cache_key) if cache_key is not None else None
            if cached is not None:
                return cached
        generation = self.results.generation
        space = self.space
        if article_id is not None:
            query = queries.article_query(space, [article_id], [])
        elif text is not None:
            query = queries.text_query(space, text, self.embedder.embed, lang, published_at)
        else:
            query = queries.article_query(space, list(positive_ids), list(negative_ids))
        response = self._rank(space, query, k, filters, options)
        if cache_key is not None:
            self.results.put(cache_key, response, generation)
        return response

    def related_encoded(
        self, article_id: str, k: int, filters: Filters, options: RankingOptions, json: bool = False
    ) -> bytes | None:
        """The serialised ``RelatedResponse`` for an article id when its stored list answers
        the request (the service sends these bytes as they are), written as JSON with ``json``
        (None there also when the snapshot has no JSON pieces); None: call ``related``."""
        if not self._answerable(k, filters, options) or (self.rerank_lists and self._ranker()):
            return None  # (a re-ordered list is written from ``related``)
        self.live.catch_up_if_behind()
        lists = self.live.lists
        return (lists.json if json else lists.encoded)(int_id(article_id), k)

    def _stored_list(
        self, article_id: str, k: int, filters: Filters, options: RankingOptions
    ) -> StoredList | None:
        if not self._answerable(k, filters, options):
            return None
        return self.live.lists.get(int_id(article_id))

    def _answerable(self, k: int, filters: Filters, options: RankingOptions) -> bool:
        # A stored list is the default answer: no filters (a filter changes which stories
        # are gathered and folded, so a filtered list is not a slice of the stored one),
        # default options, and k within its depth. The rest ranks live.
        return (
            self.use_lists
            and 1 <= k <= self.live.lists.depth
            and (filters is NO_FILTERS or filters == NO_FILTERS)
            and (options is DEFAULT_OPTIONS or options == self.default_options)
        )

    @property
    def default_options(self) -> RankingOptions:
        """The ranking defaults under the index's model (``embedding.profiles``): what a
        request without options gets, and what the stored lists were ranked with."""
        return self.space.options

    def _options(self, options: RankingOptions | None) -> RankingOptions:
        return self.default_options if options is None or options is DEFAULT_OPTIONS else options

    def wait_for_lists(self, timeout: float = 60.0) -> bool:
        """Wait until every stored list changed by a write is recomputed; False on timeout."""
        return self.live.lists.wait_fresh(timeout)

    def recommend(
        self,
        history_ids: Sequence[str],
        k: int = 10,
        filters: Filters | None = None,
        options: RankingOptions | None = None,
        reader: str = "",
    ) -> RelatedResponse:
        """Unread stories for a reader, from the ids they read (oldest first) after the
        reads recorded for ``reader``; see ``queries.history_query`` for how reads weigh."""
        check_k(k)
        self.live.catch_up_if_behind()
        space = self.space
        if reader:
            history_ids = self.events.read_ids(space, reader, history_ids)
        query = queries.history_query(space, history_ids)
        filters, options = filters or Filters(), self._options(options)
        ranker = self._ranker()
        if ranker is None:
            return self._rank(space, query, k, filters, options)
        return self.events.recommend(ranker, space, query, history_ids, k, filters, options)

    def _ranker(self) -> Ranker | None:
        # a fitted ranker (``train-ranker``) and the event log it needs: writable engines only
        if not (self.writable and (self.index_dir / RANKERS_DIR).is_dir()):
            return None
        return self.events.ranker()

    def _rank(
        self,
        space: RowSpace,
        query: queries.Query,
        k: int,
        filters: Filters,
        options: RankingOptions,
    ) -> RelatedResponse:
        found, ranked = candidates.rank_candidates(space, query, k, filters, options)
        if not found:
            return RelatedResponse([])
        return build_response(space, query, found, ranked)

    # -- lookups ---------------------------------------------------------------------------

    def get_article(self, article_id: str) -> Article:
        """The stored article; NotFoundError when unknown."""
        self.live.catch_up_if_behind()
        key = int_id(article_id)
        article = self.space.articles([key]).get(key)
        if article is None:
            raise NotFoundError(f"unknown article id {echo(article_id)}")
        return article

    def stats(self) -> EngineStats:
        """Manifest and live counts by language, source and section."""
        logged = self.writable and (self.index_dir / EVENTS_FILE).exists()
        return space_stats(
            self.space, self.snapshot.manifest, self.results.info(), self.live.lists.info(),
            self.events.counts() if logged else {},
        )  # fmt: skip
