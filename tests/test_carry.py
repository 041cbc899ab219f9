"""A batch run builds its snapshot on the serving one: the lexical model and the lists its
changes do not touch carry over, and the result equals a build from scratch, bytes included."""

from __future__ import annotations

import json
import random
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from conftest import SAMPLE

from recommender.batch.indexing import index_sources
from recommender.batch.summary import IndexSummary
from recommender.config import IndexConfig
from recommender.embedding import Embedder
from recommender.lists import build as listbuild
from recommender.storage.snapshot import current_name, read_manifest


def _serving(index_dir: Path) -> Path:
    return index_dir / "snapshots" / str(current_name(index_dir))


def _run(index_dir: Path, records: list[dict], model, **config) -> IndexSummary:
    source = index_dir.parent / f"batch-{random.random():.8f}.jsonl"
    source.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    summary = index_sources(
        IndexConfig(index_dir=index_dir, progress=False, **config),
        [str(source)],
        Embedder(model=model),
    )
    assert summary.rejected == 0
    return summary


def _random_batch(rng: random.Random, originals: list[dict], alive: list[str], step: int):
    """Edits a daily batch brings: new stories (follow-ups, near-copies), changed titles and
    dates, a deletion."""
    batch: list[dict] = []
    for n in range(rng.randint(1, 2)):
        source = rng.choice(originals)
        new = dict(source, id=f"new-{step}-{n}")
        if rng.random() < 0.5:
            new["title"] = source["title"] + " (update)"
        if source.get("published_at"):
            moved = datetime.fromisoformat(source["published_at"]) + timedelta(rng.randint(-5, 20))
            new["published_at"] = moved.isoformat()
        batch.append(new)
        alive.append(new["id"])
    for target_id in rng.sample(alive, 1):
        target = next((r for r in originals if r["id"] == target_id), None) or batch[0]
        changed = dict(target, title=rng.choice(originals)["title"])
        batch.append(changed)
    victim = rng.choice([a for a in alive if a not in {r["id"] for r in batch}])
    batch.append({"id": victim, "deleted": True})
    alive.remove(victim)
    return batch


def _full_recompute(snapshot: Path, target: Path, depth: int) -> list[Path]:
    """The lists of ``snapshot`` computed from scratch, in a copy at ``target``."""
    shutil.copytree(snapshot, target, ignore=shutil.ignore_patterns("lists.*"))
    return listbuild.write_for_snapshot(target, depth).files


def test_batches_built_on_the_serving_snapshot_equal_a_build_from_scratch(
    sample_index, model, tmp_path
):
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    originals = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    alive = [r["id"] for r in originals]
    # lists 6 deep: on 91 articles, 30-deep lists each hold a third of the archive, so any
    # change touches most of them (on ANT a list holds 0.1 %)
    depth = 6
    summary = _run(index_dir, originals[:1], model, list_depth=depth)
    assert summary.built_on == "" and "list_depth" in summary.from_scratch_because
    rng = random.Random(11)
    for step in range(4):
        before = _serving(index_dir)
        before_lexical = (before / "lexical_idf.npz").read_bytes()
        batch = _random_batch(rng, originals, alive, step)
        summary = _run(index_dir, batch, model, list_depth=depth)
        after = _serving(index_dir)
        assert after != before
        manifest = read_manifest(after)
        assert manifest.carried_from == before.name, manifest.from_scratch_because
        assert summary.built_on == before.name
        # the change is small: most lists carried over, the rest computed
        assert 0 < summary.lists_computed < summary.lists_carried
        assert summary.lists_computed + summary.lists_carried == len(alive)
        # the idf is the serving snapshot's (a refit would move every lexical score)
        assert (after / "lexical_idf.npz").read_bytes() == before_lexical
        scratch = _full_recompute(after, tmp_path / f"scratch-{step}", depth)
        for file in scratch:
            if file.name != "lists.updated.npy":  # when each list was computed
                assert file.read_bytes() == (after / file.name).read_bytes(), (step, file.name)
        # a carried list keeps the time its links last changed
        old_keys = np.load(before / "labels.npy").tolist()
        new_keys = np.load(after / "labels.npy").tolist()
        old_updated = np.load(before / "lists.updated.npy")
        new_updated = np.load(after / "lists.updated.npy")
        kept = [
            new_updated[new_keys.index(k)] == old_updated[old_keys.index(k)]
            for k in set(old_keys) & set(new_keys)
        ]
        assert sum(kept) >= summary.lists_carried
    assert len(np.load(_serving(index_dir) / "labels.npy")) == len(alive)


def test_a_rebuild_a_grown_archive_or_a_new_model_builds_from_scratch(
    sample_index, model, use_model, tmp_path
):
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    seed = json.loads(SAMPLE.read_text(encoding="utf-8").splitlines()[0])

    summary = _run(index_dir, [dict(seed, title="A title edited")], model, rebuild_lists=True)
    assert summary.built_on == "" and summary.from_scratch_because == "--rebuild-lists"
    assert summary.lists_carried == 0 and summary.lists_computed == 91

    # a quarter more articles than the lexical model was fit on: its idf is refit
    grown = [dict(seed, id=f"copy-{n}", title=f"{seed['title']} {n}") for n in range(30)]
    summary = _run(index_dir, grown, model)
    assert summary.built_on == ""
    assert "the lexical model was fit on 91" in summary.from_scratch_because
    assert summary.lists_computed == 121

    other = json.loads(SAMPLE.read_text(encoding="utf-8").splitlines()[40])
    summary = _run(index_dir, [dict(other, id="one-more")], model)
    assert summary.built_on != "" and summary.lists_carried > 0
    assert summary.lists_computed + summary.lists_carried == 122

    # another model: every vector, so every list, changes
    originals = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    summary = _run(index_dir, originals, use_model, model_name="use-multilingual-v3", sync=True)
    assert summary.built_on == "" and summary.from_scratch_because == "its model differs"
    assert summary.lists_computed == 91
