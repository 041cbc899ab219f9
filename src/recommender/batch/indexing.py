"""The batch (re)index job: read sources, embed what changed, update the store, publish a snapshot.

Incremental: an article whose embedded text is unchanged is never embedded again (the store
keeps each article's vector with the hash of the text it came from, and the embedding cache
catches identical texts across ids and rebuilds). Articles go through the same write
path as a real-time ``Upsert`` (``writer``). Safe: the working store commits batch by
batch, but serving reads only published snapshots, and a snapshot is published atomically
after a complete build. Observable: progress, a summary of counts, rejects with reasons.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from recommender.batch import raybatch, raylists
from recommender.batch.summary import IndexSummary, Replaced
from recommender.config import IndexConfig
from recommender.embedding import Embedder, EmbeddingCache
from recommender.embedding.cache import text_hash
from recommender.errors import InvalidInputError
from recommender.index.factory import check_spec
from recommender.ingest.readers import missing_sources, read_many
from recommender.ingest.records import Article, Deletion, Duplicate, Rejection
from recommender.lists import build as listbuild
from recommender.live.writer import embed_texts, prepare_texts, store_articles
from recommender.storage.carry import Carried
from recommender.storage.schema import UpsertOutcome
from recommender.storage.snapshot import (
    CACHE_FILE,
    FORMAT_VERSION,
    Manifest,
    build_snapshot,
    current_name,
    read_manifest,
    snapshot_problem,
)
from recommender.storage.store import ArticleStore
from recommender.storage.working import working_store

REJECTS_FILE = "rejects.jsonl"


class _CountingEmbedder(Embedder):
    """Counts texts that really reach the model (cache misses)."""

    embedded = 0

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> Any:
        self.embedded += len(texts)
        return super().encode(texts, show_progress_bar)


def _model_name_for(index_dir: Path, requested: str | None) -> str | None:
    """The model to use: the one asked for, else the one the live snapshot was built with."""
    if requested:
        return requested
    name = current_name(index_dir)
    if name:
        try:
            return read_manifest(index_dir / "snapshots" / name).model_name
        except Exception:  # an unreadable manifest: fall back to the default
            return None
    return None


def index_sources(
    config: IndexConfig, sources: Sequence[str], embedder: Embedder | None = None
) -> IndexSummary:
    """Run the job over ``sources`` into ``config.index_dir``; see the module docstring."""
    started = time.perf_counter()
    check_spec(config.index_type)
    missing = missing_sources(sources)
    if missing:  # checked before any work: nothing is half indexed
        raise InvalidInputError(f"no such file: {', '.join(missing)}", field="source")
    if config.engine not in ("local", "ray"):
        raise InvalidInputError(f"{config.engine!r} is not local or ray", field="engine")
    deferred = None
    if config.engine == "ray":
        raybatch.import_ray()  # a missing extra fails before any work
        deferred = raybatch.Deferred(config.ray_address)
    root = Path(config.index_dir)
    root.mkdir(parents=True, exist_ok=True)
    summary = IndexSummary()
    store = working_store(root)
    cache = EmbeddingCache(root / CACHE_FILE)
    model_name = _model_name_for(root, config.model_name)
    counting = _CountingEmbedder(
        model_name,
        cache=cache,
        model=embedder.model if embedder is not None else None,
    )
    try:
        seen: set[str] = set()
        rejected_ids: set[str] = set()
        pending: dict[str, Article] = {}
        progress = _progress(config.progress)
        web_items: dict[str, tuple[str, int]] = {}
        for item in read_many(sources, config.detect_language, web_items=web_items):
            summary.read += 1
            progress.update(1)
            if isinstance(item, Rejection):
                summary.rejections.append(item)
                record_id = item.record.get("id") if isinstance(item.record, dict) else None
                if isinstance(record_id, str):
                    rejected_ids.add(record_id.strip())
                continue
            if isinstance(item, Duplicate):
                summary.read -= 1  # a note about the next item, not an item
                summary.note_duplicate(item)
                continue
            if isinstance(item, Deletion):
                _flush(pending, store, counting, config, summary, deferred)
                if deferred is not None:
                    deferred.action(item.id)  # an earlier version waiting for Ray is void
                summary.deleted += len(store.delete([item.id]))
                seen.discard(item.id)
                continue
            if item.id in web_items and item.id not in seen:
                replaced = _replaced(store, item, *web_items[item.id])
                if replaced is not None:
                    summary.note_replaced(replaced)
            seen.add(item.id)
            if item.id in pending:  # the same id twice in one batch: the later record wins
                _flush(pending, store, counting, config, summary, deferred)
            pending[item.id] = item
            if len(pending) >= config.batch_size:
                _flush(pending, store, counting, config, summary, deferred)
        _flush(pending, store, counting, config, summary, deferred)
        progress.close()
        if deferred is not None:
            _store_deferred(deferred, store, counting, config, summary)

        if config.sync:
            gone = store.all_ids() - seen - rejected_ids
            unreadable = [r for r in summary.rejections if r.line == 0]
            if gone and (not seen or unreadable):
                # a sync deletes what the sources no longer hold: from an empty, all-rejected
                # or partly unreadable source that would be everything, or an unknown part
                why = f"{unreadable[0]}" if unreadable else "the sources hold no valid article"
                raise InvalidInputError(
                    f"--sync refused: {why}; it would delete {len(gone):,} of "
                    f"{len(store):,} articles. Nothing was deleted.",
                    field="sync",
                )
            summary.deleted += len(store.delete(sorted(gone)))

        summary.rejected = len(summary.rejections)
        summary.embedded = counting.embedded + summary.embedded_on_ray
        summary.articles = len(store)
        if summary.rejections:
            rejects_path = root / REJECTS_FILE
            with open(rejects_path, "w", encoding="utf-8") as handle:
                for rejection in summary.rejections:
                    handle.write(json.dumps(rejection.to_dict(), ensure_ascii=False) + "\n")
            summary.rejects_file = str(rejects_path)

        if not len(store):
            # an index of nothing serves nothing: the previous snapshot (if any) stays
            raise InvalidInputError(
                f"no article to index: {summary.read:,} records read, {summary.rejected:,} "
                "rejected"
                + (f" (reasons in {summary.rejects_file})" if summary.rejects_file else "")
                + "; the serving snapshot, if any, is unchanged",
                field="source",
            )
        serving = _serving_dir(root)
        # checked once: it decides both whether to build and whether to build on it
        damage = snapshot_problem(serving) if serving is not None else None
        no_base = "--rebuild-lists" if config.rebuild_lists else ""
        no_base = f"it cannot serve ({damage})" if damage and not no_base else no_base
        if (
            config.rebuild_lists
            or damage
            or _needs_snapshot(root, store, counting.identity, config.index_type, config.list_depth)
        ):
            manifest = build_snapshot(
                root,
                store,
                model=counting.identity,
                model_name=counting.model_name,
                dimension=counting.dimension,
                index_type=config.index_type,
                text_recipe=asdict(config.recipe),
                keep=config.keep_snapshots,
                list_depth=config.list_depth,
                extras=_lists_builder(root, config, summary) if config.list_depth else None,
                base=None if no_base else serving,
                no_base_because=no_base,
            )
            summary.snapshot, summary.snapshot_built = manifest.name, True
            summary.built_on = manifest.carried_from
            summary.from_scratch_because = manifest.from_scratch_because
        else:
            summary.snapshot = current_name(root)
    finally:
        store.close()
        cache.close()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _replaced(store: ArticleStore, item: Article, file: str, line: int) -> Replaced | None:
    """A feed or page item that takes the id of an article stored from elsewhere (another
    URL). The same feed read again (same id, same link) is a refresh, not a replacement; the
    id of a JSONL/CSV record is the site's own, so its edits are never reported."""
    stored = store.get(item.id)
    if stored is None or stored.article.url == item.url:
        return None
    return Replaced(item.id, file, line, stored.article.source, stored.article.url)


def _serving_dir(root: Path) -> Path | None:
    """The serving snapshot's directory, if there is one."""
    serving = current_name(root)
    path = root / "snapshots" / serving if serving else None
    return path if path is not None and path.is_dir() else None


def _lists_builder(
    root: Path, config: IndexConfig, summary: IndexSummary
) -> Callable[[Path, Carried | None], list[Path]]:
    """Writes the related lists into a snapshot being built (``lists``), timed."""
    previous = _serving_dir(root)

    runner = None
    if config.engine == "ray":
        on_ray = raylists.runner(config.ray_address, config.ray_workers)

        def runner(directory: Path, depth: int, chunks: list[list[int]]) -> Iterator[Any]:
            for chunk in on_ray(directory, depth, chunks):
                summary.lists_on_ray += len(chunk)
                yield chunk

    def build(directory: Path, carried: Carried | None) -> list[Path]:
        total = len(np.load(directory / "labels.npy", mmap_mode="r"))
        progress = _progress(config.progress, "related lists", total)
        started = time.perf_counter()
        try:
            written = listbuild.write_for_snapshot(
                directory,
                config.list_depth,
                previous_dir=previous,
                carried=carried,
                progress=progress.update,
                runner=runner,
            )
            summary.lists_computed, summary.lists_carried = written.computed, written.carried
            return written.files
        finally:
            progress.close()
            summary.lists_seconds = round(time.perf_counter() - started, 3)

    return build


def _needs_snapshot(
    root: Path, store: ArticleStore, model: str, index_type: str, list_depth: int
) -> bool:
    """Whether the serving snapshot (checked sound by the caller) is out of date."""
    name = current_name(root)
    if name is None:
        return True
    try:
        manifest: Manifest = read_manifest(root / "snapshots" / name)
    except Exception:
        return True
    same_type = index_type == "auto" or index_type == manifest.index_type
    return (
        manifest.store_seq != store.seq
        or manifest.model != model
        or not same_type
        or manifest.list_depth != list_depth
        or manifest.format_version != FORMAT_VERSION  # written by an older release
    )


def _flush(
    pending: dict[str, Article],
    store: ArticleStore,
    embedder: Embedder,
    config: IndexConfig,
    summary: IndexSummary,
    deferred: raybatch.Deferred | None = None,
) -> None:
    """Embed and write one batch of articles; articles with no text are rejected. With Ray,
    articles whose texts miss the cache are ``deferred`` to the cluster instead."""
    if not pending:
        return
    articles = list(pending.values())
    pending.clear()
    known = store.content_hashes([a.id for a in articles])
    with_vector = store.ids_with_vector(embedder.identity, [a.id for a in articles])
    changed = [
        a for a in articles if not (known.get(a.id) == a.content_hash() and a.id in with_vector)
    ]
    summary.unchanged += len(articles) - len(changed)
    texts, problems = prepare_texts(changed, config.recipe)
    for _, name, message in problems:
        summary.rejections.append(Rejection("-", 0, name, message))
    kept = [(a, t) for a, t in zip(changed, texts, strict=True) if t is not None]
    if deferred is not None:
        for article in articles:
            deferred.action(article.id)  # supersedes an earlier version waiting for Ray
        kept = _defer_uncached(kept, embedder, deferred)
    if not kept:
        return
    articles, prepared = [a for a, _ in kept], [t for _, t in kept]
    vectors = embed_texts(embedder, prepared)
    _tally(summary, store_articles(store, embedder, articles, prepared, vectors))


def _defer_uncached(
    kept: list[tuple[Article, str]], embedder: Embedder, deferred: raybatch.Deferred
) -> list[tuple[Article, str]]:
    """The articles whose vectors the cache holds (written now); the rest go to Ray."""
    cached = (
        embedder.cache.get_many(embedder.identity, list({text_hash(t) for _, t in kept}))
        if embedder.cache is not None
        else {}
    )
    now = []
    for article, text in kept:
        if text_hash(text) in cached:
            now.append((article, text))
        else:
            deferred.add(article, text)
    return now


def _store_deferred(
    deferred: raybatch.Deferred,
    store: ArticleStore,
    embedder: Embedder,
    config: IndexConfig,
    summary: IndexSummary,
) -> None:
    """Embed the deferred texts on Ray and write what is still current, batch by batch."""
    progress = _progress(config.progress, "embedding on Ray", deferred.count)
    batches = deferred.embedded(
        embedder.model_name, embedder.identity, config.ray_workers, config.batch_size
    )
    try:
        for articles, texts, vectors in batches:
            if embedder.cache is not None:
                hashes = [text_hash(t) for t in texts]
                embedder.cache.put_many(embedder.identity, zip(hashes, vectors, strict=True))
            _tally(summary, store_articles(store, embedder, articles, texts, vectors))
            progress.update(len(articles))
    finally:
        deferred.close()
        progress.close()
    summary.embedded_on_ray = deferred.count


def _tally(summary: IndexSummary, outcome: UpsertOutcome) -> None:
    summary.added += len(outcome.added)
    summary.updated += len(outcome.updated)
    # content identical but the vector for this model was missing: counted as unchanged
    summary.unchanged += len(outcome.unchanged)


class _NoProgress:
    def update(self, n: int) -> None:
        return None

    def close(self) -> None:
        return None


def _progress(enabled: bool, label: str = "indexing", total: int | None = None) -> Any:
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(unit=" articles", desc=label, total=total, mininterval=1.0)


def read_rejects(path: str | Path) -> Iterable[dict[str, Any]]:
    """The rejects file written by a run."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)
