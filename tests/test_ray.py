"""``recommender index --engine ray`` (a local Ray instance) equals the local path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import SAMPLE

from recommender.engine import Engine
from recommender.storage.snapshot import load_snapshot

pytestmark = pytest.mark.slow

# Records after the sample corpus that the Ray path must order as the local one does: a
# version sent to Ray and then superseded by a newer one, or by a deletion
LATER = [
    {"id": "ray-order-a", "title": "Libya receives Turkish military advisers", "lang": "en"},
    {"id": "ray-order-b", "title": "Malta patrol boats leave for Tripoli", "lang": "en"},
    {"id": "ray-order-a", "deleted": True},
    {"id": "ray-order-b", "title": "Malta and Libya begin joint sea patrols", "lang": "en"},
    {"id": "wuhan-life-returns", "deleted": True},
]


def index(engine: str, sources: list[str], index_dir) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "recommender", "index", *sources, "--index-dir", str(index_dir),
         "--quiet", "--engine", engine, "--batch-size", "32"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def vectors_by_id(index_dir) -> dict[str, np.ndarray]:
    snapshot = load_snapshot(index_dir)
    try:
        names = {row[0]: row[1] for row in snapshot.store.facets()}
        int_ids, matrix = snapshot.store.vectors(snapshot.manifest.model)
        pairs = zip(int_ids, matrix, strict=True)
        return {names[int(i)]: row.astype(np.float64) for i, row in pairs}
    finally:
        snapshot.close()


def test_ray_and_local_give_the_same_ids_vectors_and_lists(tmp_path):
    pytest.importorskip("ray.data", reason='an optional extra: pip install "recommender[ray]"')
    later = tmp_path / "later.jsonl"
    later.write_text("".join(json.dumps(r) + "\n" for r in LATER), encoding="utf-8")
    sources = [str(SAMPLE), str(later)]
    local = index("local", sources, tmp_path / "local")
    remote = index("ray", sources, tmp_path / "ray")
    assert remote["embedded_on_ray"] > 0 and local["embedded_on_ray"] == 0
    # the same final index; the added / deleted counts may differ, since a version the Ray
    # path defers and a later record supersedes never reaches the store to be counted
    for key in ("read", "rejected", "articles"):
        assert remote[key] == local[key], key
    assert (local["added"], local["deleted"]) == (93, 2) and remote["deleted"] == 0

    a, b = vectors_by_id(tmp_path / "local"), vectors_by_id(tmp_path / "ray")
    assert set(a) == set(b) and "ray-order-a" not in b and "wuhan-life-returns" not in b
    cosines = [a[i] @ b[i] / (np.linalg.norm(a[i]) * np.linalg.norm(b[i])) for i in a]
    assert min(cosines) >= 0.9999

    here, there = Engine(tmp_path / "local").load(), Engine(tmp_path / "ray").load()
    try:
        assert "joint sea patrols" in there.get_article("ray-order-b").title  # the later one
        for article_id in sorted(a):
            ours = [r.id for r in here.related(article_id=article_id, k=10).results]
            theirs = [r.id for r in there.related(article_id=article_id, k=10).results]
            assert ours == theirs, article_id
    finally:
        here.close()
        there.close()


def test_ray_is_imported_only_on_its_path_and_its_absence_names_the_extra(tmp_path):
    check = (
        "import sys, recommender.cli, recommender.batch.indexing; assert 'ray' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", check], check=True, timeout=120)
    # Ray made unimportable: --engine ray fails before any work, naming the extra
    script = (
        "import sys; sys.modules['ray'] = None; from recommender.cli import main; "
        f"sys.exit(main(['index', {str(SAMPLE)!r}, '--index-dir', {str(tmp_path / 'i')!r}, "
        "'--engine', 'ray', '--quiet']))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 2 and 'pip install "recommender[ray]"' in run.stderr
    assert not (tmp_path / "i").exists()


def test_lists_computed_on_ray_are_the_local_build(sample_index, tmp_path, monkeypatch):
    pytest.importorskip("ray.data", reason='an optional extra: pip install "recommender[ray]"')
    import shutil

    from recommender.batch import raylists
    from recommender.lists import LIST_DEPTH
    from recommender.lists import build as listbuild

    source = sample_index / "snapshots" / (sample_index / "CURRENT").read_text().strip()
    target = tmp_path / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("lists.*"))
    monkeypatch.setattr(listbuild, "PARALLEL_FROM", 10)  # the path large archives take
    monkeypatch.setattr(listbuild, "_CHUNK", 16)  # chunks over both actors, back in order
    on_ray = raylists.runner(None, 2)
    chunks: list[int] = []

    def runner(directory, depth, rows):
        for chunk in on_ray(directory, depth, rows):
            chunks.append(len(chunk))
            yield chunk

    written = listbuild.write_for_snapshot(target, LIST_DEPTH, runner=runner)
    assert written.computed == sum(chunks) == 91 and len(chunks) == 6
    assert len(written.files) == 14
    for file in written.files:
        if file.name != "lists.updated.npy":  # when each list was computed
            assert file.read_bytes() == (source / file.name).read_bytes(), file.name
