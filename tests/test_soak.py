"""A soak (issue 14, part 4): readers, writers and a snapshot published mid-way against a real
server on a real port, for ``SOAK_SECONDS``; no errors, and no answer that started after a
``Delete`` was acknowledged holds the deleted article."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import SAMPLE, listening_lines, listening_port

from recommender.batch.indexing import index_sources
from recommender.client import RecommenderClient, wait_until_serving
from recommender.config import IndexConfig, ServerConfig
from recommender.embedding import Embedder
from recommender.engine import Engine
from recommender.service.server import create_server

SOAK_SECONDS = float(os.environ.get("RECOMMENDER_SOAK_SECONDS", "60"))
TOKEN = "soak-token"
READERS = 3

pytestmark = pytest.mark.soak


def test_soak_readers_writers_and_a_snapshot_mid_way(
    sample_index: Path, model: Any, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    config = ServerConfig(
        index_dir=index_dir, address="127.0.0.1:0", metrics_port=None, auth_token=TOKEN,
        watch_interval=0.5, write_rate=0,
    )  # fmt: skip
    engine = Engine(index_dir, embedder=Embedder(model=model), writable=True)
    running = create_server(config, engine)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            wait_until_serving(channel, 180)
        published = soak(f"127.0.0.1:{running.port}", index_dir, model, "1 process")
        assert running.engine.snapshot.manifest.name == published
    finally:
        running.stop(grace=2)


def test_soak_against_several_server_processes(
    sample_index: Path, model: Any, tmp_path: Path
) -> None:
    """The same soak against ``serve --processes 2``: a Delete acknowledged by one process
    is never in an answer of the other that started after it (``changecounter``)."""
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", "127.0.0.1:0", "--metrics-port", "-1", "--processes", "2",
         "--auth-token-file", str(token_file), "--write-rate", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = listening_lines(process, count=2)
        port = listening_port(lines[0])
        address = f"127.0.0.1:{port}"
        for _ in range(8):  # several connections: both processes are asked
            with grpc.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1)]
            ) as c:
                wait_until_serving(c, 180)
        soak(address, index_dir, model, "2 processes")
    finally:
        process.terminate()
        process.wait(timeout=60)


def soak(address: str, index_dir: Path, model: Any, label: str) -> str | None:
    """Readers (each with its own connection), a writer, and a reindex half-way; returns the
    snapshot the reindex published."""
    seeds = [
        line.split('"id": "')[1].split('"')[0]
        for line in SAMPLE.read_text(encoding="utf-8").splitlines()
        if '"id": "' in line
    ]
    errors: list[str] = []
    latencies: list[float] = []
    deleted_at: dict[str, float] = {}  # id -> when its Delete was acknowledged
    violations: list[str] = []
    stop = threading.Event()
    counts = {"related": 0, "upsert": 0, "delete": 0}
    lock = threading.Lock()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        with RecommenderClient(address, own_connection=True) as client:
            while not stop.is_set():
                started = time.monotonic()
                query = rng.choice(seeds)
                try:
                    if rng.random() < 0.8:
                        response = client.related(article_id=query, k=10)
                    else:
                        response = client.related(text=f"story {rng.randrange(1000)} Libya", k=10)
                except Exception as exc:  # every error is a failure of the soak
                    errors.append(f"related: {exc}")
                    continue
                took = time.monotonic() - started
                with lock:
                    latencies.append(took)
                    counts["related"] += 1
                for item in [*response.results, *response.other_languages]:
                    gone = deleted_at.get(item.id)
                    if gone is not None and gone < started:
                        violations.append(
                            f"{item.id} deleted at {gone:.3f}, returned at {started:.3f}"
                        )

    def writer() -> None:
        rng = random.Random(7)
        written: list[str] = []
        with RecommenderClient(address, token=TOKEN, own_connection=True) as client:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    if written and rng.random() < 0.3:
                        victim = written.pop(rng.randrange(len(written)))
                        client.delete([victim])
                        deleted_at[victim] = time.monotonic()
                        counts["delete"] += 1
                    else:
                        article_id = f"soak-{n}"
                        client.upsert([{
                            "id": article_id, "title": f"Libya talks, round {n}",
                            "lead": "Delegations met in Tripoli.", "published_at": "2020-01-10",
                        }])  # fmt: skip
                        written.append(article_id)
                        counts["upsert"] += 1
                except Exception as exc:
                    errors.append(f"write: {exc}")
                time.sleep(0.02)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
    threads.append(threading.Thread(target=writer))
    published = None
    try:
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(SOAK_SECONDS / 2)
        # a batch reindex publishes a new snapshot while the soak goes on
        summary = index_sources(
            IndexConfig(index_dir=index_dir, progress=False), [str(SAMPLE)], Embedder(model=model)
        )
        published = summary.snapshot
        time.sleep(max(0.0, SOAK_SECONDS - (time.monotonic() - started)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    ms = np.array(latencies) * 1000
    print(
        f"soak {SOAK_SECONDS:.0f} s, {label}: {counts}, errors {len(errors)}, "
        f"related p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms"
    )
    assert not errors, errors[:5]
    assert not violations, violations[:5]
    assert counts["related"] > 100 and counts["upsert"] > 10 and counts["delete"] > 3
    return published
