"""``serve --processes 2``: two real server processes on one port, a write accepted by either
reaches both, a new snapshot is picked up by both, and SIGTERM stops them all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from conftest import ROOT, listening_lines, listening_port

from recommender.client import wait_until_serving
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow
CONNECTIONS = 16  # the kernel spreads connections: 16 reach both processes but once in 2^15
# a follow-up in the seed's language: a story in another language that the model judges the
# same story as the seed goes to "other languages", one per language, not to the list
NEW = {
    "id": "malta-libya-deal",
    "title": "ليبيا ومالطا توقعان اتفاقا جديدا للتعاون في مكافحة الهجرة",
    "lang": "ar",
    "published_at": "2020-08-25",
}


def stubs(port):
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]
    return channels, [pb_grpc.RecommenderStub(c) for c in channels]


def requests_served(metrics_port):
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
    return sum(
        float(line.split()[-1])
        for line in body.splitlines()
        if line.startswith("recommender_requests_total{")
    )


def test_two_processes_share_a_port_and_each_others_writes(sample_index, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", "127.0.0.1:0", "--metrics-port", "0", "--processes", "2"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    channels = []
    try:
        lines = listening_lines(process, 2)
        assert {"(process 1 of 2)", "(process 2 of 2)"} == {
            line[line.index("(") : line.index(")") + 1] for line in lines
        }
        ports = {listening_port(line) for line in lines}
        assert len(ports) == 1, "both processes listen on one port"
        port = ports.pop()
        metrics = [int(line.split("metrics on :")[1].split("/")[0]) for line in lines]
        channels, clients = stubs(port)
        for channel in channels:
            wait_until_serving(channel, 120)
        seed = pb.RelatedRequest(article_id="libya-security-memoranda", k=5)
        answers = {tuple(r.id for r in c.Related(seed, timeout=30).results) for c in clients}
        assert len(answers) == 1, "every process answers the same"
        assert all(requests_served(m) > 0 for m in metrics), "both processes took connections"

        # a write to one connection reaches every process, lists included
        written = time.monotonic()
        clients[0].Upsert(pb.UpsertRequest(articles=[pb.Article(**NEW)]), timeout=60)
        acknowledged = time.monotonic() - written
        delays = []
        for client in clients:
            while True:
                try:
                    client.GetArticle(pb.GetArticleRequest(id=NEW["id"]), timeout=10)
                    break
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND
                    assert time.monotonic() - written < 30, "the write did not reach a process"
                    time.sleep(0.02)
            delays.append(time.monotonic() - written)
        print(
            f"upsert acknowledged in {acknowledged:.3f} s; on every process in {max(delays):.3f} s"
        )
        # the new story is in the seed's stored list on every process once recomputed
        deadline = time.monotonic() + 60
        query = pb.RelatedRequest(article_id="libya-security-memoranda", k=30)
        for client in clients:
            while NEW["id"] not in {r.id for r in client.Related(query, timeout=30).results}:
                assert time.monotonic() < deadline, "the seed's list never held the new story"
                time.sleep(0.05)

        # a delete through another connection: gone everywhere
        clients[-1].Delete(pb.DeleteRequest(ids=[NEW["id"]]), timeout=30)
        deadline = time.monotonic() + 30
        for client in clients:
            while NEW["id"] in {r.id for r in client.Related(query, timeout=30).results}:
                assert time.monotonic() < deadline, "a process still lists the deleted story"
                time.sleep(0.02)

        # a new snapshot is picked up by every process
        before = clients[0].Stats(pb.StatsRequest(), timeout=10).snapshot
        source = tmp_path / "more.jsonl"
        source.write_text(json.dumps({**NEW, "id": "batch-indexed"}) + "\n", encoding="utf-8")
        subprocess.run(
            [sys.executable, "-m", "recommender", "index", str(ROOT / "data" / "articles.jsonl"),
             str(source), "--index-dir", str(index_dir), "--quiet"],
            check=True, capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        for client in clients:
            while client.Stats(pb.StatsRequest(), timeout=10).snapshot == before:
                assert time.monotonic() < deadline, "a process kept the old snapshot"
                time.sleep(0.2)
            client.GetArticle(pb.GetArticleRequest(id="batch-indexed"), timeout=10)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        time.sleep(1.0)
        for m in metrics:  # the children are gone with their metrics endpoints
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{m}/metrics", timeout=2)
    finally:
        for channel in channels:
            channel.close()
        if process.poll() is None:
            process.kill()


def test_a_restarted_process_takes_no_connection_before_it_can_answer(sample_index, tmp_path):
    """SIGKILL one of two processes: while the parent restarts it, new connections (which the
    kernel spreads over every listening process) are all answered (issue 25: the restarted
    process listened 5-7 s before its index loaded, and its share got UNAVAILABLE)."""
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", "127.0.0.1:0", "--metrics-port", "-1", "--processes", "2"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = listening_port(listening_lines(process, 2)[0])
        channels, _ = stubs(port)
        for channel in channels:
            wait_until_serving(channel, 120)
            channel.close()
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        servers = [int(pid) for pid in children if "spawn_main" in _command(int(pid))]
        assert len(servers) == 2, children
        os.kill(servers[0], signal.SIGKILL)
        # the connections the kernel queued on the killed process as it died are reset: that
        # is the kill; what is measured here starts once it is gone
        while Path(f"/proc/{servers[0]}/cmdline").is_file() and _command(servers[0]):
            time.sleep(0.01)
        killed = time.monotonic()
        seed = pb.RelatedRequest(article_id="libya-security-memoranda", k=5)
        answered, refused = 0, []
        restarted = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            channel, (client,) = _fresh(port)  # a new connection: the kernel picks a process
            try:
                assert client.Related(seed, timeout=30).results
                answered += 1
            except grpc.RpcError as error:
                if restarted:  # from the restart on; before it, the kill's own resets
                    refused.append(f"{error.code().name} at {time.monotonic() - killed:.2f} s")
            finally:
                channel.close()
            if (
                restarted is None
                and len(process.log_lines)
                and any("restarting it" in line for line in process.log_lines)
            ):
                restarted = time.monotonic()
            listening = [t for t in (_listened(process),) if t]
            if listening and time.monotonic() - listening[0] > 3:
                break  # the restarted process has listened for 3 s: it had its share
        assert restarted, "the parent did not restart the killed process"
        assert not refused, (
            f"{len(refused)} of {answered + len(refused)} calls refused: {refused[:5]}"
        )
        assert sum("listening on" in line for line in process.log_lines) == 3
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


_LISTENED: dict[int, float] = {}


def _listened(process) -> float | None:
    """When the restarted process's "listening on" line (the third) was first seen."""
    if sum("listening on" in line for line in process.log_lines) >= 3:
        _LISTENED.setdefault(process.pid, time.monotonic())
    return _LISTENED.get(process.pid)


def _fresh(port):
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
    )
    return channel, [pb_grpc.RecommenderStub(channel)]


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
