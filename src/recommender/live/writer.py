"""Writes: the one write path of the batch job and ``Upsert``, and the live index that serves.

``prepare_texts``, ``embed_texts`` and ``store_articles`` are the write path both callers
share (validate, prepare text, embed through the cache, store), so a batch-indexed and an
upserted article cannot differ. ``LiveIndex`` owns the serving ``RowSpace``: it loads a
published snapshot, replays the working store's newer changes onto it, watches for newer
snapshots, and applies real-time upserts and deletes (durable in the working store first,
then a new row space).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from recommender.embedding import Embedder, EmbeddingCache
from recommender.embedding.cache import text_hash
from recommender.errors import InvalidInputError, ModelError, NotReadyError, StoreError
from recommender.ingest.records import Article
from recommender.ingest.text import TextRecipe
from recommender.lists.freshness import ListTable
from recommender.lists.stored import StoredLists
from recommender.live.changecounter import COUNTER_FILE, ChangeCounter
from recommender.rowspace.space import LiveArticle, RowSpace
from recommender.runtime import SERVING_THREADS, set_threads
from recommender.storage.schema import UpsertOutcome, int_id
from recommender.storage.snapshot import CACHE_FILE, current_name, load_newest_good
from recommender.storage.store import ArticleStore
from recommender.storage.working import working_store

MAX_UPSERT = 1000
# More changes than this in the working store since the last look is a batch job writing: it
# publishes a snapshot when done, so following stops until a snapshot is loaded.
FOLLOW_LIMIT = 2 * MAX_UPSERT
# Live rows (written since the snapshot or the last fold) that start a fold into the main
# tier in the background: each live-ranked query scans them exactly (``RowSpace.folded``).
FOLD_AT = 1000
_log = logging.getLogger("recommender.writer")


# -- the write path -------------------------------------------------------------------------


def prepare_texts(
    articles: Sequence[Article], recipe: TextRecipe
) -> tuple[list[str | None], list[tuple[int, str, str]]]:
    """Each article's text as the index embeds it (None where it has none), and the problems
    found as (position, field, message): a repeated id, an article with no text."""
    texts: list[str | None] = []
    problems: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for position, article in enumerate(articles):
        if article.id in seen:
            problems.append((position, "id", f"id {article.id!r} appears twice"))
        seen.add(article.id)
        text = recipe.text(article.title, article.lead, article.body) or None
        if text is None:
            message = f"article {article.id!r} has no text once HTML is removed"
            problems.append((position, "body", message))
        texts.append(text)
    return texts, problems


def embed_texts(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Vectors of prepared texts, through the embedder's cache (checked against its model)."""
    vectors = embedder.embed(list(texts))
    if vectors.shape[1] != embedder.dimension:
        raise ModelError(f"model returned {vectors.shape[1]} dimensions, not {embedder.dimension}")
    return vectors


def store_articles(
    store: ArticleStore,
    embedder: Embedder,
    articles: Sequence[Article],
    texts: Sequence[str],
    vectors: np.ndarray,
) -> UpsertOutcome:
    """Articles and their vectors into the store, in one transaction; durable on return."""
    return store.upsert(articles, embedder.identity, vectors, [text_hash(t) for t in texts])


# -- the live index --------------------------------------------------------------------------


class LiveIndex:
    """The serving row space of an index directory, kept current.

    ``on_change`` is called after every new row space is visible (a load, a write), so
    answers cached from the previous one can be dropped.
    """

    def __init__(
        self, index_dir: Path, *, writable: bool, on_change: Callable[[], None] = lambda: None
    ) -> None:
        self.index_dir = index_dir
        self._on_change = on_change
        self._space: RowSpace | None = None
        self.lists = ListTable.none()  # the stored related lists, kept fresh
        self._seq = 0  # the working store's change counter the space has caught up with
        self._following = True
        self.fold_at = FOLD_AT
        # changes made while a fold builds, replayed onto its result (None: no fold running)
        self._fold_log: list[tuple[list[LiveArticle], list[int]]] | None = None
        self.folds = 0
        self._write_lock = threading.Lock()  # one writer at a time; a reload replays under it
        self._stop_watching = threading.Event()
        self.store: ArticleStore | None = None
        self.store_problem: str | None = None  # why writes are refused, when the store is bad
        if writable:
            try:
                self.store = working_store(index_dir)
            except StoreError as exc:  # serve the snapshot, refuse writes, say how to mend
                self.store_problem = str(exc)
                _log.error("%s; serving the snapshot read-only until then", exc)
        # acknowledged writes of every process of the server (see ``changecounter``)
        self.counter = ChangeCounter(index_dir / COUNTER_FILE) if self.store else None
        self.cache: EmbeddingCache | None = (
            EmbeddingCache(index_dir / CACHE_FILE) if writable else None
        )
        self._refused: str | None = None  # the CURRENT snapshot that failed to load

    @property
    def space(self) -> RowSpace:
        """The current row space (one attribute read: a request keeps what it got)."""
        space = self._space
        if space is None:
            raise NotReadyError("no index is loaded yet")
        return space

    @property
    def ready(self) -> bool:
        """True once a snapshot is loaded."""
        return self._space is not None

    def load(self) -> RowSpace:
        """Load (or reload) the published snapshot, verifying its checksums, then replay the
        working store's changes newer than it (writable indexes)."""
        set_threads(SERVING_THREADS)  # measured: one thread per query serves fastest
        snapshot, problems = load_newest_good(self.index_dir)
        for problem in problems:
            _log.error("%s; serving %s instead", problem, snapshot.manifest.name)
        current = current_name(self.index_dir)
        self._refused = current if current != snapshot.manifest.name else None
        base = RowSpace.from_snapshot(snapshot)
        stored = StoredLists.load(snapshot.path, base.word_rows)  # a plain dict: C-speed lookups
        table = ListTable(stored, base, snapshot.manifest.name)
        with self._write_lock:
            space, seq = base, snapshot.manifest.store_seq
            if self.store is not None:
                space, seq, affected, deleted = self._catch_up(base, seq, table)
                table.mark(affected, deleted)
            previous, self._space = self._space, space
            previous_lists, self.lists = self.lists, table
            self._seq, self._following = seq, True
            self._on_change()  # after the new space is visible (see ResultCache)
        previous_lists.stop()
        table.start(lambda: self.space)
        if previous is not None and previous.snapshot is not None:
            # requests may still hold the old snapshot: close it once they are surely done
            timer = threading.Timer(30.0, previous.snapshot.close)
            timer.daemon = True
            timer.start()
        _log.info("loaded snapshot %s (%d articles)", snapshot.manifest.name, len(space))
        return space

    def _catch_up(
        self, space: RowSpace, seq: int, table: ListTable
    ) -> tuple[RowSpace, int, set[int], list[int]]:
        """``space`` with the working store's changes after ``seq`` applied, the change counter
        reached, the lists the changes affect and the deleted ids (under the write lock)."""
        assert self.store is not None and space.snapshot is not None
        model = space.snapshot.manifest.model
        upserted, deleted, reached = self.store.changes_after(seq)
        if not upserted and not deleted:
            return space, reached, set(), []
        old = space
        if deleted:
            space = self._changed(space, [], deleted)
        if upserted:
            stored = self.store.get_many(upserted)
            keys, vectors = self.store.vectors(model, list(stored))
            articles = [stored[int(key)].article for key in keys]
            texts = [space.recipe.text(a.title, a.lead, a.body) for a in articles]
            space = self._changed(space, _live(space, keys, articles, vectors, texts), [])
        _log.info("applied %d upserts, %d deletes from the store", len(upserted), len(deleted))
        return space, reached, table.affected(old, space, upserted, deleted), deleted

    def catch_up_if_behind(self) -> None:
        """Before answering: apply the writes another process has acknowledged and this one
        has not applied yet (a memory read when there are none)."""
        counter = self.counter
        if counter is not None and counter.read() > self._seq:
            self.follow_store()

    def follow_store(self) -> bool:
        """Apply what other processes wrote to the working store since the last look (the
        change counter moved); True when something was applied."""
        if self.store is None or self._space is None or not self._following:
            return False
        if self.store.seq == self._seq:
            return False
        with self._write_lock:
            if self.store.changes_count(self._seq) > FOLLOW_LIMIT:
                _log.info("a batch job is writing: its snapshot will bring the changes")
                self._following = False
                return False
            space = self.space
            new, self._seq, affected, deleted = self._catch_up(space, self._seq, self.lists)
            if new is space:
                return False
            self._publish(new, affected, deleted)
        return True

    def _publish(self, space: RowSpace, affected: set[int], deleted: Sequence[int]) -> None:
        """Make ``space`` the serving one, with the lists it changes marked in the same step
        (a list recomputed meanwhile on the old space is then discarded). Starts a fold when
        live rows have grown past ``fold_at``."""

        def swap() -> None:
            self._space = space

        self.lists.mark(affected, deleted, then=swap)
        self._on_change()
        if space.live_rows >= self.fold_at and self._fold_log is None:
            self._fold_log = []
            threading.Thread(target=self._fold, args=(space,), name="fold", daemon=True).start()

    def _changed(self, space: RowSpace, added: list[LiveArticle], removed: list[int]) -> RowSpace:
        """``space`` with a write applied, remembered for a fold in progress."""
        if self._fold_log is not None:
            self._fold_log.append((added, removed))
        return space.with_changes(added, removed)

    def _fold(self, base: RowSpace) -> None:
        """Build ``base`` folded (off the request path), then serve it with the writes made
        meanwhile replayed onto it; given up when a new snapshot was loaded meanwhile."""
        try:
            started = time.perf_counter()
            folded = base.folded()
            with self._write_lock:
                log, self._fold_log = self._fold_log or [], None
                if self._space is None or self._space.snapshot is not base.snapshot:
                    return
                for added, removed in log:
                    folded = folded.with_changes(added, removed)
                self._space = folded
                self.folds += 1
                self._on_change()
            _log.info(
                "folded %d live rows into the main tier in %.1f s",
                base.live_rows, time.perf_counter() - started,
            )  # fmt: skip
        except Exception:
            with self._write_lock:
                self._fold_log = None
            _log.exception("could not fold the live rows; serving them as they are")

    def _acknowledge(self, store: ArticleStore) -> None:
        # Before a Delete is acknowledged: the other processes' next requests apply it (and
        # what came before it) first. Upserts reach them by polling, within the follow
        # interval: applying one on the request path (finding the lists it changes) stalled
        # every request of the other processes for tens of milliseconds in the soak test.
        if self.counter is not None and store.last_write_seq:
            self.counter.advance(store.last_write_seq)

    def _advance(self, store: ArticleStore) -> None:
        # our own write is not another process's: skip it when nothing came in between
        if store.last_write_seq == self._seq + 1:
            self._seq = store.last_write_seq

    def reload_if_changed(self) -> bool:
        """Load the published snapshot if it is not the one serving; True when it was."""
        name = current_name(self.index_dir)
        space = self._space
        if name is None or (space and space.snapshot and space.snapshot.manifest.name == name):
            return False
        if name == self._refused:  # already found unloadable: wait for the next publication
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

        threading.Thread(target=watch, name="snapshot-watcher", daemon=True).start()

    def start_following(self, interval: float = 0.2) -> None:
        """Apply other processes' writes to the working store in a background thread, within
        about ``interval`` seconds (``serve --processes``: a write any process accepts reaches
        the others)."""

        def follow() -> None:
            while not self._stop_watching.wait(interval):
                try:
                    self.follow_store()
                except Exception:  # keep serving; the next look tries again
                    _log.exception("could not apply the working store's changes")

        threading.Thread(target=follow, name="store-follower", daemon=True).start()

    def upsert(self, articles: Sequence[Article], model: Callable[[], Embedder]) -> UpsertOutcome:
        """Add or replace articles: durable in the working store, searchable on return.
        ``model`` gives the embedder (loaded only when there is something to embed)."""
        store = self._writable_store()
        if not articles:
            return UpsertOutcome([], [], [])
        if len(articles) > MAX_UPSERT:
            raise InvalidInputError(f"at most {MAX_UPSERT} articles per call", field="articles")
        texts, problems = prepare_texts(articles, self.space.recipe)
        if problems:
            position, name, message = problems[0]
            raise InvalidInputError(message, field=f"articles[{position}].{name}")
        prepared = [t for t in texts if t is not None]
        embedder = model()
        vectors = embed_texts(embedder, prepared)  # outside the lock: reloads need not wait
        with self._write_lock:
            outcome = store_articles(store, embedder, articles, prepared, vectors)
            self._advance(store)
            old = self.space
            keys = np.array([int_id(a.id) for a in articles], dtype=np.int64)
            new = self._changed(old, _live(old, keys, articles, vectors, prepared), [])
            changed = [int_id(i) for i in [*outcome.added, *outcome.updated]]
            self._publish(new, self.lists.affected(old, new, changed, []), [])
        return outcome

    def delete(self, article_ids: Sequence[str]) -> list[str]:
        """Remove articles everywhere; returns the ids that existed."""
        store = self._writable_store()
        with self._write_lock:
            removed = store.delete(article_ids)
            self._advance(store)
            self._acknowledge(store)
            old = self.space
            live = [int_id(i) for i in article_ids if int_id(i) in old.row_of]
            new = self._changed(old, [], live)
            self._publish(new, self.lists.affected(old, new, [], live), live)
        return removed

    def _writable_store(self) -> ArticleStore:
        if self.store is None and self.store_problem is not None:
            raise StoreError(self.store_problem)
        if self.store is None:
            raise StoreError(
                "this index is served read-only (a replica of a published index): send writes "
                "to the server or job that owns its working store"
            )
        return self.store

    def close(self) -> None:
        """Stop watching and release the snapshot and stores."""
        self._stop_watching.set()
        if self.counter is not None:
            self.counter.close()
            self.counter = None
        self.lists.stop(wait=10.0)  # it reads the snapshot's store: finish before closing it
        with self._write_lock:
            space, self._space = self._space, None
            if space is not None and space.snapshot is not None:
                space.snapshot.close()
            for resource in (self.store, self.cache):
                if resource is not None:
                    resource.close()
            self.store = self.cache = None


def _live(
    space: RowSpace,
    keys: np.ndarray,
    articles: Sequence[Article],
    vectors: np.ndarray,
    texts: Sequence[str],
) -> list[LiveArticle]:
    lexical = space.lexical_model.transform(list(texts))
    return [
        LiveArticle(int(key), article, vectors[i], lexical[i])
        for i, (key, article) in enumerate(zip(keys, articles, strict=True))
    ]
