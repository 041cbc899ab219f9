"""Stored related lists: a lookup answers exactly what the live ranking would, and lists kept
fresh through upserts and deletes equal a full recompute."""

from __future__ import annotations

import dataclasses
import random
import shutil
from datetime import timedelta

import pytest
from conftest import SAMPLE

from recommender import lists
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.lists.stored import LIST_DEPTH
from recommender.ranking import Filters, RankingOptions
from recommender.service import convert
from recommender.storage.schema import int_id
from recommender.v1 import recommender_pb2 as pb

SEED = "libya-security-memoranda"


def answer(response):
    """A response as comparable data (scores already rounded at float32 precision)."""
    return response.to_dict()


@pytest.fixture(scope="module")
def engines(sample_index, model):
    embedder = Embedder(model=model)
    stored = Engine(sample_index, embedder=embedder).load()
    live = Engine(sample_index, embedder=embedder, use_lists=False).load()
    yield stored, live
    stored.close()
    live.close()


def test_every_lookup_equals_the_live_ranking(engines):
    stored, live = engines
    assert stored.live.lists.depth == LIST_DEPTH
    article_ids = list(stored.space.ids)
    assert len(article_ids) == 91
    for article_id in article_ids:
        for k in (1, 5, 10, LIST_DEPTH):
            assert stored._stored_list(article_id, k, Filters(), stored.default_options) is not None
            expected = answer(live.related(article_id=article_id, k=k))
            assert answer(stored.related(article_id=article_id, k=k)) == expected, (article_id, k)
            # the bytes the service sends, joined from the mapped files
            encoded = stored.related_encoded(article_id, k, Filters(), stored.default_options)
            message = pb.RelatedResponse.FromString(encoded)
            assert answer(convert.response_from_pb(message)) == expected, (article_id, k)


def test_lookup_bytes_are_the_service_answer(engines):
    stored, live = engines
    encoded = stored.related_encoded(SEED, 5, Filters(), stored.default_options)
    assert encoded is not None
    message = pb.RelatedResponse.FromString(encoded)
    assert message.snapshot == stored.snapshot.manifest.name
    assert answer(convert.response_from_pb(message)) == answer(live.related(article_id=SEED, k=5))
    # the seed case comes from the stored list too
    ranked = [item.id for item in message.results]
    assert "german-fm-tripoli-visit" in ranked[:3]
    # requests a list cannot answer rank live
    assert stored.related_encoded(SEED, LIST_DEPTH + 1, Filters(), stored.default_options) is None
    assert stored.related_encoded(SEED, 5, Filters(langs=("ar",)), stored.default_options) is None
    assert stored.related_encoded(SEED, 5, Filters(), RankingOptions(dense_weight=1.0)) is None


def test_lists_kept_fresh_through_random_writes_equal_a_full_recompute(
    sample_index, model, tmp_path
):
    shutil.copytree(sample_index, tmp_path / "i")
    engine = Engine(tmp_path / "i", embedder=Embedder(model=model), writable=True).load()
    engine.live.fold_at = 6  # live rows are folded into the main tier several times meanwhile
    rng = random.Random(7)
    try:
        originals = [engine.get_article(i) for i in engine.space.ids]
        alive = [a.id for a in originals]
        for step in range(24):
            action = rng.random()
            if action < 0.3 and len(alive) > 40:
                victims = rng.sample(alive, rng.randint(1, 3))
                engine.delete(victims)
                alive = [i for i in alive if i not in victims]
            elif action < 0.6:
                # a changed version of a live article: new title and a later date
                target = engine.get_article(rng.choice(alive))
                source = rng.choice(originals)
                changed = dataclasses.replace(
                    target,
                    title=source.title,
                    published_at=(target.published_at or source.published_at)
                    and (target.published_at or source.published_at) + timedelta(days=3),
                )
                engine.upsert([changed])
            else:
                # a new story: a follow-up of an existing one, or a near-copy of it
                source = rng.choice(originals)
                new = dataclasses.replace(
                    source,
                    id=f"new-{step}",
                    title=source.title + (" (update)" if action < 0.8 else ""),
                    published_at=source.published_at + timedelta(days=rng.randint(-10, 20))
                    if source.published_at
                    else None,
                )
                engine.upsert([new])
                alive.append(new.id)
            assert engine.wait_for_lists(120)
        space = engine.space
        assert sorted(alive) == sorted(space.ids[space.row_of[int_id(i)]] for i in alive)
        assert len(space) == len(alive)
        recomputed = 0
        for article_id in alive:
            maintained = engine.live.lists.get(int_id(article_id))
            assert maintained is not None, article_id
            full = lists.compute(space, int_id(article_id))
            assert maintained.keys.tolist() == full.keys.tolist(), article_id
            assert maintained.other.tolist() == full.other.tolist(), article_id
            assert maintained.scores.tolist() == pytest.approx(full.scores.tolist(), abs=1e-6)
            # key terms, folded counts, relations, titles and dates: the bytes a client gets
            assert maintained.encoded(LIST_DEPTH, b"") == full.encoded(LIST_DEPTH, b""), article_id
            recomputed += 1
        assert recomputed == len(alive)
        assert engine.stats().lists["recomputed"] > 0
        assert engine.live.folds >= 2
    finally:
        engine.close()


def test_precompute_writes_every_list_and_since_only_the_changed_ones(sample_index, tmp_path):
    import gzip
    import json
    import time
    from datetime import UTC, datetime

    from recommender.cli.main import main

    index_dir = tmp_path / "i"
    shutil.copytree(sample_index, index_dir)
    out = tmp_path / "lists.jsonl.gz"
    assert main(["precompute", "--index-dir", str(index_dir), "--out", str(out), "-k", "5"]) == 0
    with gzip.open(out, "rt", encoding="utf-8") as handle:
        every = [json.loads(line) for line in handle]
    assert len(every) == 91
    engine = Engine(index_dir).load()
    try:
        for entry in every:
            expected = engine.related(article_id=entry["id"], k=5).to_dict()
            assert {"results": entry["results"], "other_languages": entry["other_languages"]} == (
                expected
            )
    finally:
        engine.close()

    before = datetime.now(UTC)
    time.sleep(1.1)
    source = tmp_path / "new.jsonl"
    title = "وزير الخارجية الألماني يبحث في طرابلس مذكرات التفاهم الأمنية مع تركيا"
    new = {"id": "tripoli-talks-follow-up", "lang": "ar", "published_at": "2020-08-20"}
    new["title"] = title
    source.write_text(json.dumps(new, ensure_ascii=False) + "\n", encoding="utf-8")
    assert main(["index", str(source), "--index-dir", str(index_dir), "--quiet"]) == 0
    changed_out = tmp_path / "changed.jsonl"
    since = before.isoformat()
    assert main(["precompute", "--index-dir", str(index_dir), "--out", str(changed_out),
                 "--since", since]) == 0  # fmt: skip
    changed = [json.loads(line) for line in changed_out.read_text(encoding="utf-8").splitlines()]
    changed_ids = {entry["id"] for entry in changed}
    assert new["id"] in changed_ids
    assert 1 < len(changed) < 60, "unchanged lists keep their time across a rebuild"
    assert all(entry["updated"] >= since[:19] for entry in changed)
    # every list that now holds the new story is among the changed ones
    engine = Engine(index_dir).load()
    try:
        holders = {
            i
            for i in engine.space.ids
            if new["id"] in {r.id for r in engine.related(article_id=i, k=10).results}
        }
        assert holders and holders <= changed_ids
    finally:
        engine.close()


def test_lists_built_in_worker_processes_equal_the_in_process_build(
    sample_index, tmp_path, monkeypatch
):
    from recommender.lists import build as listbuild

    source = sample_index / "snapshots" / (sample_index / "CURRENT").read_text().strip()
    target = tmp_path / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("lists.*"))
    monkeypatch.setattr(listbuild, "PARALLEL_FROM", 10)  # the path large archives take
    files = listbuild.write_for_snapshot(target, LIST_DEPTH).files
    assert len(files) == 14
    for file in files:
        if file.name != "lists.updated.npy":  # when each list was computed
            assert file.read_bytes() == (source / file.name).read_bytes(), file.name


def _twin_ids(original: str) -> tuple[str, str]:
    """Two new ids for copies of ``original``: one sorts before it by int id, one after."""
    below = next(f"twin-{n}" for n in range(1000) if int_id(f"twin-{n}") < int_id(original))
    above = next(f"twin-{n}" for n in range(1000) if int_id(f"twin-{n}") > int_id(original))
    return below, above


def _shown(response):
    """What a page shows of a list: ids in order with their folded counts, other languages."""
    return (
        [(item.id, item.folded) for item in response.results],
        [item.id for item in response.other_languages],
    )


def test_equal_scores_give_the_same_list_in_any_row_order_on_every_path(
    sample_index, model, tmp_path
):
    """Copies of a story under other ids score exactly as it does: which one a list keeps
    (and in which order they come with collapse off) must not depend on where the rows lie:
    a snapshot (rows by int id), live upserts (rows after the main tier, in write order),
    the stored list, its incremental recompute, the live ranking and the exhaustive one."""
    import json

    from recommender.batch.indexing import CACHE_FILE, index_sources
    from recommender.config import IndexConfig
    from recommender.embedding.cache import EmbeddingCache
    from recommender.evaluation import recall
    from recommender.requests import queries

    original = "german-fm-tripoli-visit"  # third under the seed: its copies tie with it
    below, above = _twin_ids(original)
    embedder = Embedder(model=model)

    # path 1: every copy in one snapshot (the embedding cache gives them the original's vector)
    built = tmp_path / "built"
    shutil.copytree(sample_index, built)
    record = next(
        json.loads(line)
        for line in SAMPLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line)["id"] == original
    )
    copies = tmp_path / "copies.jsonl"
    copies.write_text(
        "".join(
            json.dumps({**record, "id": twin, "url": f"{record['url']}?{twin}"}) + "\n"
            for twin in (above, below)
        ),
        encoding="utf-8",
    )
    config = IndexConfig(index_dir=built, progress=False)
    assert index_sources(config, [str(SAMPLE), str(copies)], embedder).snapshot_built

    # path 2: the copies upserted live into the snapshot without them, the later id first
    grown = tmp_path / "grown"
    shutil.copytree(sample_index, grown)
    # as a server's own embedder: through the index's cache, so the copies are not re-embedded
    cached = Embedder(model=model, cache=EmbeddingCache(grown / CACHE_FILE))
    writer = Engine(grown, embedder=cached, writable=True).load()
    stored = Engine(built, embedder=embedder).load()
    live = Engine(built, embedder=embedder, use_lists=False).load()
    try:
        story = writer.get_article(original)
        for twin in (above, below):
            writer.upsert([dataclasses.replace(story, id=twin, url=f"{story.url}?{twin}")])
            assert writer.wait_for_lists(120)
        for engine in (stored, writer):  # the premise: exact ties, whatever the tier
            space = engine.space
            vectors = space.vectors.vectors([int_id(i) for i in (original, below, above)])
            assert (vectors == vectors[0]).all()
        assert writer.space.row_of[int_id(above)] < writer.space.row_of[int_id(below)]

        expected = _shown(live.related(article_id=SEED, k=LIST_DEPTH))
        kept = [i for i, _ in expected[0] if i in (original, below, above)]
        assert kept == [below]  # the smallest int id of equals, the other two folded into it
        assert dict(expected[0])[below] >= 2
        assert _shown(stored.related(article_id=SEED, k=LIST_DEPTH)) == expected
        maintained = writer.live.lists.get(int_id(SEED))
        assert maintained is not None
        assert _shown(maintained.response(LIST_DEPTH)) == expected
        recomputed = lists.compute(writer.space, int_id(SEED))
        assert _shown(recomputed.response(LIST_DEPTH)) == expected

        for engine in (live, writer):
            space = engine.space
            query = queries.article_query(space, [SEED], [])
            every = space.vectors.vectors([int(key) for key in space.int_ids])
            exhaustive = recall.exhaustive_list(
                space, query, LIST_DEPTH, Filters(), space.options, every
            )
            listed = [space.ids[space.row_of[key]] for key in exhaustive]
            assert listed == [i for i, _ in expected[0]]

        # collapse off: the equals come together, by int id, on both row orders
        apart = RankingOptions.from_overrides(base=live.default_options, no_dedup=True)
        for engine in (live, writer):
            shown = _shown(engine.related(article_id=SEED, k=LIST_DEPTH, options=apart))
            equals = [i for i, _ in shown[0] if i in (original, below, above)]
            assert equals == sorted((original, below, above), key=int_id), engine.index_dir
    finally:
        for engine in (writer, stored, live):
            engine.close()


def _older_copy(sample_index, tmp_path, missing: str):
    """(the sample's snapshot, a copy without the files ``missing`` matches, its row labels,
    int id -> row): a snapshot as an older release wrote it."""
    import numpy as np

    source = sample_index / "snapshots" / (sample_index / "CURRENT").read_text().strip()
    older = tmp_path / "old"
    shutil.copytree(source, older, ignore=shutil.ignore_patterns(missing))
    labels = np.load(source / "labels.npy")
    return source, older, labels, {int(key): row for row, key in enumerate(labels)}


def test_the_reverse_index_finds_exactly_the_lists_holding_a_story(sample_index, tmp_path):
    import numpy as np

    from recommender.lists.stored import StoredLists

    # a snapshot written before the reverse index
    source, old_format, labels, position = _older_copy(sample_index, tmp_path, "lists.held_*")
    rng = random.Random(3)
    for directory in (source, old_format):
        stored = StoredLists.load(directory, position)
        assert stored is not None
        for size in (1, 2, 5, 20):
            wanted = np.array([*rng.sample(labels.tolist(), size), 12345], dtype=np.int64)
            scanned = np.isin(stored.keys, wanted).any(axis=1)
            scanned |= np.isin(stored.other, wanted).any(axis=1)
            assert stored.holders(wanted).tolist() == np.flatnonzero(scanned).tolist()
            assert len(stored.holders(wanted)) > 0


def test_json_pieces_join_to_the_entry_and_are_derived_for_older_snapshots(sample_index, tmp_path):

    from recommender.lists import jsonwire
    from recommender.lists.files import save
    from recommender.lists.stored import StoredLists

    # a snapshot written before the JSON pieces
    source, old_format, labels, position = _older_copy(sample_index, tmp_path, "lists.*json*")
    new, old = StoredLists.load(source, position), StoredLists.load(old_format, position)
    assert new is not None and old is not None
    tail = jsonwire.snapshot_tail("s")
    entries = []
    for row in range(len(new)):
        entry, derived = new.entry(row), old.entry(row)
        assert entry.card_json == derived.card_json and entry.spec_json == derived.spec_json
        for k in (1, 5, LIST_DEPTH):
            assert new.json(row, k, tail) == entry.json(k, tail) == derived.json(k, tail)
        assert old.json(row, 10, tail) is None  # the HTTP API writes the protobuf as JSON
        entries.append(derived)
    # a snapshot built on an older one writes the pieces it derived: the same files
    rewritten = tmp_path / "rewritten"
    rewritten.mkdir()
    for path in save(rewritten, entries, labels, new.depth, new.other.shape[1]):
        assert path.read_bytes() == (source / path.name).read_bytes(), path.name
