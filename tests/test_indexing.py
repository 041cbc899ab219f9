"""The batch reindex job end to end with the real model, store, FAISS and snapshots."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import SAMPLE

from recommender.batch.indexing import index_sources
from recommender.config import IndexConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.errors import NotFoundError
from recommender.storage.snapshot import current_name

pytestmark = pytest.mark.slow


def _config(index_dir, **kwargs):
    return IndexConfig(index_dir=index_dir, progress=False, **kwargs)


def _write(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return str(path)


def test_seed_article_ranks_the_tripoli_visit_above_wuhan(sample_index):
    engine = Engine(sample_index).load()
    response = engine.related(article_id="libya-security-memoranda", k=90)
    ids = [r.id for r in response.results]
    assert "libya-security-memoranda" not in ids
    assert ids.index("german-fm-tripoli-visit") < ids.index("wuhan-life-returns")
    # the same story in English and Turkish is found across languages, as the closest
    # other-language stories
    assert {r.id for r in response.other_languages[:2]} == {
        "libya-memoranda-en",
        "libya-memoranda-tr",
    }


def test_rerun_on_unchanged_input_embeds_nothing_and_keeps_the_snapshot(sample_index, model):
    before = current_name(sample_index)
    summary = index_sources(_config(sample_index), [str(SAMPLE)], Embedder(model=model))
    assert summary.embedded == 0 and summary.unchanged == summary.read
    assert summary.added == summary.updated == summary.deleted == 0
    assert not summary.snapshot_built and current_name(sample_index) == before


def test_updates_deletes_rejects_and_sync(tmp_path, model):
    embedder = Embedder(model=model)
    first = _write(
        tmp_path / "a.jsonl",
        [
            {"id": "one", "title": "Oil prices rise after OPEC cut", "lang": "en"},
            {"id": "two", "title": "Bayern wins the Champions League", "lang": "en"},
            {"id": "three", "title": "Wuhan lifts its lockdown", "lang": "en"},
        ],
    )
    summary = index_sources(_config(tmp_path / "idx"), [first], embedder)
    assert (summary.added, summary.embedded, summary.articles) == (3, 3, 3)

    second = _write(
        tmp_path / "b.jsonl",
        [
            {"id": "one", "title": "Oil prices rise after OPEC cut", "lang": "en"},
            {"id": "two", "title": "Bayern Munich win the Champions League in Lisbon"},
            {"id": "three", "deleted": True},
            {"id": "bad", "title": 42},
            {"id": "four", "title": "Nasa rover lands on Mars", "lang": "en"},
        ],
    )
    summary = index_sources(_config(tmp_path / "idx", max_rejects=5), [second], embedder)
    assert (summary.unchanged, summary.updated, summary.deleted, summary.added) == (1, 1, 1, 1)
    assert summary.rejected == 1 and summary.embedded == 2
    with open(summary.rejects_file) as handle:
        rejects = [json.loads(line) for line in handle]
    assert rejects[0]["line"] == 4 and rejects[0]["field"] == "title"

    engine = Engine(tmp_path / "idx").load()
    assert engine.get_article("two").title.startswith("Bayern Munich")
    with pytest.raises(NotFoundError):
        engine.get_article("three")

    # --sync: the sources are the whole archive; a rejected id is not deleted
    third = _write(tmp_path / "c.jsonl", [{"id": "four", "title": "Nasa rover lands on Mars"},
                                          {"id": "two", "title": None}])  # fmt: skip
    summary = index_sources(_config(tmp_path / "idx", sync=True), [third], embedder)
    assert summary.deleted == 1 and summary.articles == 2  # "one" deleted, "two" kept


def test_cli_exits_2_when_records_are_rejected_but_valid_ones_land(tmp_path):
    source = _write(tmp_path / "a.jsonl", [{"id": "ok", "title": "Fine"}, {"id": "", "title": "x"}])
    out = subprocess.run(
        [sys.executable, "-m", "recommender", "index", source, "--index-dir", str(tmp_path / "i"),
         "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "a.jsonl:2: field 'id'" in out.stderr
    summary = json.loads(out.stdout)
    assert summary["added"] == 1 and summary["rejected"] == 1


def test_sigkill_during_reindex_leaves_the_previous_snapshot_serving(tmp_path):
    index_dir = tmp_path / "idx"
    base = [sys.executable, "-m", "recommender", "index", "--index-dir", str(index_dir), "--quiet"]
    subprocess.run([*base, str(SAMPLE)], check=True, capture_output=True)
    serving = current_name(index_dir)

    big = _write(
        tmp_path / "big.jsonl",
        [
            {"id": f"gen-{i}", "lang": "en",
             "title": f"Story {i} about markets, football, elections and the weather",
             "body": " ".join(f"paragraph {i} sentence {j} with words" for j in range(15))}
            for i in range(3000)
        ],
    )  # fmt: skip
    job = subprocess.Popen(
        [*base, "--batch-size", "64", big], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until_some_batches_landed(index_dir / "store.sqlite", more_than=91)
    finally:
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
    assert job.returncode == -signal.SIGKILL

    assert current_name(index_dir) == serving
    engine = Engine(index_dir).load()
    assert engine.snapshot.manifest.article_count == 91
    assert engine.related(article_id="libya-security-memoranda", k=3)

    done = subprocess.run([*base, big], check=True, capture_output=True, text=True)
    summary = json.loads(done.stdout)
    assert summary["snapshot_built"] and summary["articles"] == 3091
    assert summary["embedded"] < 3000  # what landed before the kill is not embedded again
    assert Engine(index_dir).load().snapshot.manifest.article_count == 3091


def _wait_until_some_batches_landed(store_path, more_than, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(store_path) as conn:
                if conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0] > more_than:
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.2)
    raise AssertionError("the reindex job made no progress")


def test_a_snapshot_from_an_older_release_is_refused_then_rebuilt_by_index(
    sample_index, model, tmp_path
):
    import shutil

    from recommender.storage.snapshot import SnapshotError, load_snapshot

    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    manifest_path = index_dir / "snapshots" / current_name(index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] -= 1  # as an older release wrote it
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match=r"run `recommender index` on .* to rebuild it"):
        load_snapshot(index_dir)
    summary = index_sources(_config(index_dir), [str(SAMPLE)], Embedder(model=model))
    assert summary.snapshot_built and summary.embedded == 0  # nothing changed but the format
    assert Engine(index_dir).load().related(article_id="libya-security-memoranda", k=3).results
