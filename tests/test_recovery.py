"""Start and recover without a person (issue 14, part 2): a server started before the first
index or on a corrupted snapshot, corrupt caches and stores. Real servers on real ports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import SAMPLE

from recommender.batch.indexing import index_sources
from recommender.client import RecommenderClient
from recommender.config import IndexConfig, ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.service.server import create_server
from recommender.storage.snapshot import current_name
from recommender.v1 import recommender_pb2 as pb
from recommender.v1.recommender_pb2_grpc import RecommenderStub

SEED = "libya-security-memoranda"
TOKEN = "recovery-token"


def start(index_dir: Path, model: Any) -> Any:
    config = ServerConfig(
        index_dir=index_dir, address="127.0.0.1:0", metrics_port=None, auth_token=TOKEN,
        watch_interval=0.2,
    )  # fmt: skip
    return create_server(config, Engine(index_dir, embedder=Embedder(model=model), writable=True))


def health(port: int) -> str:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(status))


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def related_ids(port: int) -> list[str]:
    with RecommenderClient(f"127.0.0.1:{port}") as client:
        return [r.id for r in client.related(article_id=SEED, k=3).results]


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_server_started_before_the_first_index_serves_once_it_is_published(
    tmp_path: Path, model: Any
) -> None:
    index_dir = tmp_path / "index"
    running = start(index_dir, model)
    try:
        time.sleep(1.0)
        assert health(running.port) == "NOT_SERVING"
        config = IndexConfig(index_dir=index_dir, progress=False)
        index_sources(config, [str(SAMPLE)], Embedder(model=model))
        wait_for(lambda: health(running.port) == "SERVING")
        assert "german-fm-tripoli-visit" in related_ids(running.port)[:3]
    finally:
        running.stop(grace=1)


def test_a_corrupted_snapshot_falls_back_to_the_newest_good_one_then_heals(
    sample_index: Path, model: Any, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    good = current_name(index_dir)
    # publish a second snapshot (one more article), then damage it
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        '{"id": "extra", "title": "Snow closes roads in Oslo", "published_at": "2020-01-05"}\n',
        encoding="utf-8",
    )
    config = IndexConfig(index_dir=index_dir, progress=False)
    index_sources(config, [str(SAMPLE), str(extra)], Embedder(model=model))
    damaged = current_name(index_dir)
    assert damaged != good
    corrupt(index_dir / "snapshots" / str(damaged) / "index.faiss")

    running = start(index_dir, model)
    try:
        wait_for(lambda: health(running.port) == "SERVING")
        assert running.engine.snapshot.manifest.name == good
        # the working store is newer than the good snapshot: its changes are replayed on it
        with RecommenderClient(f"127.0.0.1:{running.port}") as client:
            assert client.get_article("extra").id == "extra"
        # an unchanged `index` run sees the damage and publishes a sound snapshot
        summary = index_sources(config, [str(SAMPLE), str(extra)], Embedder(model=model))
        assert summary.snapshot_built and summary.snapshot not in (good, damaged)
        # never built on the damaged snapshot it replaces
        assert summary.built_on == "" and "cannot serve" in summary.from_scratch_because
        wait_for(lambda: running.engine.snapshot.manifest.name == summary.snapshot)
        assert "german-fm-tripoli-visit" in related_ids(running.port)[:3]
    finally:
        running.stop(grace=1)


def test_a_corrupt_embedding_cache_is_set_aside_and_a_corrupt_store_says_how_to_restore(
    sample_index: Path, model: Any, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    (index_dir / "embeddings.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (index_dir / f"store.sqlite{suffix}").unlink(missing_ok=True)
    (index_dir / "store.sqlite").write_bytes(b"garbage" * 1000)

    running = start(index_dir, model)
    try:
        wait_for(lambda: health(running.port) == "SERVING")
        assert list(index_dir.glob("embeddings.sqlite.corrupt-*"))
        assert "german-fm-tripoli-visit" in related_ids(running.port)[:3]  # reads go on
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = RecommenderStub(channel)
            request = pb.UpsertRequest(articles=[pb.Article(id="new", title="A story")])
            with pytest.raises(grpc.RpcError) as error:
                stub.Upsert(request, metadata=[("authorization", f"Bearer {TOKEN}")], timeout=30)
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "store.sqlite" in error.value.details() and " cp " in error.value.details()
    finally:
        running.stop(grace=1)

    # the index command says the same and exits 7
    done = subprocess.run(
        [sys.executable, "-m", "recommender", "index", str(SAMPLE), "--index-dir",
         str(index_dir), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 7, done.stderr
    assert "unreadable" in done.stderr and "Traceback" not in done.stderr
    # following the advice restores a working index
    command = done.stderr.split("snapshot (writes since")[1].split("): ", 1)[1].strip()
    subprocess.run(command, shell=True, check=True)
    config = IndexConfig(index_dir=index_dir, progress=False)
    summary = index_sources(config, [str(SAMPLE)], Embedder(model=model))
    assert summary.articles == 91
