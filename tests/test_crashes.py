"""Crashes (issue 14, part 3): ``recommender index`` and ``recommender serve`` SIGKILLed at
random moments, as real processes, ``KILL_RUNS`` times each. The previous snapshot keeps
serving, the next reindex completes with the right count, and every acknowledged upsert is
there after a restart."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import SAMPLE, listening_lines, listening_port

from recommender.client import RecommenderClient, wait_until_serving
from recommender.storage.snapshot import _BUILDING_PREFIX, SNAPSHOTS_DIR, load_snapshot
from recommender.storage.store import ArticleStore

KILL_RUNS = int(os.environ.get("RECOMMENDER_KILL_RUNS", "20"))
TOKEN = "crash-token"

pytestmark = pytest.mark.soak


def extra_source(path: Path, count: int) -> Path:
    """``count`` new stories (the sample corpus is read beside it)."""
    with path.open("w", encoding="utf-8") as handle:
        for n in range(count):
            record = {"id": f"extra-{n}", "title": f"Storm {n} closes ports along the coast",
                      "published_at": "2020-02-01"}  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    return path


def index_command(index_dir: Path, extra: Path) -> list[str]:
    return [sys.executable, "-m", "recommender", "index", str(SAMPLE), str(extra),
            "--index-dir", str(index_dir), "--quiet"]  # fmt: skip


def served_count(index_dir: Path) -> int:
    snapshot = load_snapshot(index_dir)  # verifies every checksum
    try:
        return len(snapshot.index)
    finally:
        snapshot.close()


def test_index_killed_at_random_points_never_breaks_the_serving_snapshot(
    sample_index: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    rng = random.Random(14)
    published = {served_count(index_dir)}  # counts some complete run has published
    started = time.monotonic()
    subprocess.run(index_command(index_dir, extra_source(tmp_path / "e0.jsonl", 1)), check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    full_run = time.monotonic() - started
    published.add(served_count(index_dir))
    kills = 0
    last = served_count(index_dir)
    for run in range(KILL_RUNS):
        extra = extra_source(tmp_path / f"e{run + 2}.jsonl", run + 2)  # a new count each run
        process = subprocess.Popen(index_command(index_dir, extra), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.2, full_run * 1.1))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        # a run killed after it published (while exiting) has published too
        published.add(91 + run + 2)
        served = served_count(index_dir)  # a complete snapshot: every checksum verified
        assert served in published and served >= last
        last = served
    assert kills >= KILL_RUNS // 2, f"only {kills} runs were killed before they finished"
    final = extra_source(tmp_path / "final.jsonl", 7)
    done = subprocess.run(index_command(index_dir, final), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # every article of the working store (the sample corpus, and extra stories of this and
    # of earlier runs that got as far as writing them), no more, no fewer
    store = ArticleStore(index_dir / "store.sqlite")
    try:
        in_store = len(store)
    finally:
        store.close()
    assert served_count(index_dir) == in_store >= 91 + 7
    assert not list((index_dir / SNAPSHOTS_DIR).glob(f"{_BUILDING_PREFIX}*"))
    print(f"index: {KILL_RUNS} runs, {kills} SIGKILLed mid-run, full run {full_run:.1f} s")


def start_server(index_dir: Path, token_file: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", "127.0.0.1:0", "--metrics-port", "-1", "--processes", "1",
         "--auth-token-file", str(token_file), "--write-rate", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    line = listening_lines(process)[0]
    port = listening_port(line)
    address = f"127.0.0.1:{port}"
    with grpc.insecure_channel(address) as channel:
        wait_until_serving(channel, 180)
    return process, address


def test_server_killed_while_clients_upsert_loses_no_acknowledged_write(
    sample_index: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    rng = random.Random(41)
    acknowledged: list[str] = []
    attempted = 0
    for run in range(KILL_RUNS + 1):
        process, address = start_server(index_dir, token_file)
        try:
            with RecommenderClient(address) as reader:  # every write acknowledged so far
                missing = [i for i in acknowledged if not _exists(reader, i)]
            assert not missing, f"run {run}: {len(missing)} acknowledged upserts lost"
            if run == KILL_RUNS:
                break
            stop = threading.Event()

            def write(run: int = run, address: str = address, stop: Any = stop) -> None:
                nonlocal attempted
                with RecommenderClient(address, token=TOKEN) as writer:
                    n = 0
                    while not stop.is_set():
                        article_id = f"kill-{run}-{n}"
                        n += 1
                        attempted += 1
                        try:
                            writer.upsert([{"id": article_id, "title": f"Report {article_id}"}])
                        except grpc.RpcError:
                            return  # the server died mid-call: not acknowledged
                        acknowledged.append(article_id)

            writers = [threading.Thread(target=write) for _ in range(2)]
            for thread in writers:
                thread.start()
            time.sleep(rng.uniform(0.5, 2.5))
            os.killpg(process.pid, signal.SIGKILL)
            stop.set()
            for thread in writers:
                thread.join(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    assert len(acknowledged) > KILL_RUNS  # writes really happened between the kills
    print(f"serve: {KILL_RUNS} SIGKILLs, {len(acknowledged)} of {attempted} upserts "
          "acknowledged, 0 lost")  # fmt: skip


def _exists(reader: Any, article_id: str) -> bool:
    try:
        return bool(reader.get_article(article_id).id == article_id)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
