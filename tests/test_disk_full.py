"""A disk that fills up under a running server and under ``index`` (issue 25): writes are
refused with RESOURCE_EXHAUSTED naming the disk, reads go on, a restart on the still-full disk
serves, and ``index`` exits 8 with the previous snapshot serving. A real file system (a small
tmpfs), real processes. Skipped where tmpfs cannot be mounted (not root, or no permission)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import SAMPLE, listening_lines, listening_port

from recommender.client import RecommenderClient
from recommender.storage.snapshot import current_name

pytestmark = pytest.mark.slow
SEED = "libya-security-memoranda"
TOKEN = "full-disk"


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill: {done.stderr.strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the filler (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def start(index_dir: Path, token_file: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", "127.0.0.1:0", "--metrics-port", "-1", "--processes", "1",
         "--auth-token-file", str(token_file)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    address = f"127.0.0.1:{listening_port(listening_lines(process)[0])}"
    with RecommenderClient(address) as client:
        client.wait_until_serving(180)
    return process, address


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=60)


def test_a_full_disk_refuses_writes_and_keeps_serving_reads(sample_index, small_disk, tmp_path):
    index_dir = small_disk / "index"
    shutil.copytree(sample_index, index_dir)
    (index_dir / "changes.seq").unlink(missing_ok=True)  # created by the server, on this disk
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    process, address = start(index_dir, token_file)
    try:
        filler = fill(small_disk)
        with RecommenderClient(address, token=TOKEN) as client:
            before = [r.id for r in client.related(article_id=SEED, k=5).results]
            for n in range(5):  # a new story each: SQLite must grow to take it
                big = {"id": f"full-{n}", "title": "Storm closes ports", "body": "x " * 200_000}
                with pytest.raises(grpc.RpcError) as refused:
                    client.upsert([big])
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "disk is full" in refused.value.details()
            with pytest.raises(grpc.RpcError) as refused:
                client.delete([SEED])
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert [r.id for r in client.related(article_id=SEED, k=5).results] == before
            assert client.get_article(SEED).id == SEED
        assert process.poll() is None, "the server died on the full disk"
    finally:
        stop(process)
    log = "".join(process.log_lines)
    assert "Traceback" not in log, log[-3000:]

    # a restart on the still-full disk serves (it died with SIGBUS at every restart before)
    (index_dir / "changes.seq").unlink(missing_ok=True)
    process, address = start(index_dir, token_file)
    try:
        with RecommenderClient(address, token=TOKEN) as client:
            assert [r.id for r in client.related(article_id=SEED, k=5).results] == before
            filler.unlink()  # space again: writes land
            assert client.upsert([{"id": "after", "title": "Ports reopen"}]).added == 1
    finally:
        stop(process)


def test_index_on_a_full_disk_exits_8_and_the_snapshot_keeps_serving(sample_index, small_disk):
    index_dir = small_disk / "index"
    shutil.copytree(sample_index, index_dir)
    serving = current_name(index_dir)
    source = small_disk.parent / "more.jsonl"
    source.write_text("".join(
        f'{{"id": "more-{n}", "title": "Story {n}", "body": "{"word " * 3000}"}}\n'
        for n in range(400)
    ))  # fmt: skip
    fill(small_disk)
    run = subprocess.run(
        [sys.executable, "-m", "recommender", "index", str(SAMPLE), str(source),
         "--index-dir", str(index_dir), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 8, run.stderr[-2000:]
    assert "disk is full" in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert current_name(index_dir) == serving
