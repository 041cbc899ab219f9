"""Snapshots: atomic publish, checksums verified on load, pruning."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.errors import NotFoundError
from recommender.ingest.records import Article
from recommender.storage.snapshot import (
    SnapshotError,
    build_snapshot,
    current_name,
    load_snapshot,
)
from recommender.storage.working import working_store


def _build(index_dir, n_articles, keep=3):
    store = working_store(index_dir)
    articles = [Article(id=f"a{i}", title=f"title {i}") for i in range(n_articles)]
    rng = np.random.default_rng(n_articles)
    vectors = rng.normal(size=(n_articles, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.upsert(articles, "m@1", vectors, [str(i).encode() for i in range(n_articles)])
    manifest = build_snapshot(index_dir, store, model="m@1", model_name="m", dimension=8, keep=keep)
    store.close()
    return manifest


def test_publish_load_and_manifest(tmp_path):
    manifest = _build(tmp_path, 5)
    assert current_name(tmp_path) == manifest.name
    snapshot = load_snapshot(tmp_path)
    assert snapshot.manifest.article_count == 5 and snapshot.manifest.dimension == 8
    assert snapshot.manifest.index_type == "Flat" and len(snapshot.index) == 5
    assert set(snapshot.manifest.checksums) == {
        "store.sqlite", "index.faiss", "labels.npy", "index.json", "lexical_idf.npz",
        "lexical_matrix.npz", "lexical_words.npz",
    }  # fmt: skip


def test_corrupted_snapshot_is_refused_with_a_clear_error(tmp_path):
    manifest = _build(tmp_path, 5)
    target = tmp_path / "snapshots" / manifest.name / "index.faiss"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match=r"corrupted: index.faiss has SHA-256"):
        load_snapshot(tmp_path)


def test_no_snapshot_yet_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="no published snapshot"):
        load_snapshot(tmp_path)


def test_old_snapshots_are_pruned_keeping_the_last_few(tmp_path):
    names = [_build(tmp_path, n, keep=2).name for n in (3, 4, 5, 6)]
    remaining = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert remaining == names[-2:]
    assert load_snapshot(tmp_path).manifest.article_count == 6


def test_a_failed_build_leaves_the_previous_snapshot_serving(tmp_path, monkeypatch):
    first = _build(tmp_path, 5)
    from recommender.storage import snapshot as snapshot_module

    def broken_build(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(snapshot_module.VectorIndex, "build", broken_build)
    with pytest.raises(RuntimeError, match="disk full"):
        _build(tmp_path, 7)
    assert current_name(tmp_path) == first.name
    assert load_snapshot(tmp_path).manifest.article_count == 5
    assert not [p for p in (tmp_path / "snapshots").iterdir() if p.name.startswith(".")]
