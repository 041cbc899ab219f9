"""1,100 slow and idle HTTP connections against a server limited to 1,024 file descriptors
(issue 25): other clients' HTTP page views and gRPC calls keep answering, the server does not
spin, its log stays bounded, and the slow connections are closed at their deadlines. A real
``recommender serve`` process; the attack comes from 127.0.0.2-127.0.0.30 (Linux routes all of
127/8 to the loopback), the other clients from 127.0.0.1."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import listening_lines, listening_port

from recommender.client import RecommenderClient

pytestmark = [pytest.mark.slow, pytest.mark.soak]
SEED = "libya-security-memoranda"
ATTACK = 1_100
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 31)]  # 29 addresses, 38 connections each
HOLD_S = 15.0  # past the head deadline (10 s) and the body's (10 s + 1 s per 100 kB)


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def slow_connection(port: int, n: int) -> socket.socket | None:
    """One hostile connection of four kinds: nothing sent, a head never finished, a chunked
    body never ended, a Content-Length that lies."""
    try:
        source = (ATTACKERS[n % len(ATTACKERS)], 0)
        sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=source)
        kind = n % 4
        if kind == 1:
            sock.sendall(b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elif kind == 2:
            sock.sendall(b"POST /v1/related HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")  # fmt: skip
        elif kind == 3:
            sock.sendall(b"POST /v1/related HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 100000\r\n\r\n{")  # fmt: skip
        return sock
    except OSError:
        return None  # refused or reset at once: that is the server defending itself


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_slow_connections_cannot_starve_other_clients(sample_index, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(sample_index, index_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", "127.0.0.1:0", "--http-port", "0", "--metrics-port", "-1",
         "--processes", "1"],
        stderr=subprocess.PIPE, text=True, preexec_fn=limit_descriptors,
    )  # fmt: skip
    held: list[socket.socket] = []
    try:
        line = listening_lines(process)[0]
        port = listening_port(line)
        http = f"http://127.0.0.1:{int(line.split('HTTP/JSON on :')[1].split()[0].rstrip(','))}"
        with RecommenderClient(f"127.0.0.1:{port}") as client:
            client.wait_until_serving(180)
        baseline = open_descriptors(process.pid)
        log_before = len(process.log_lines)

        latencies: dict[str, list[float]] = {"http": [], "grpc": []}
        failures: list[str] = []
        stop = threading.Event()

        def page_views() -> None:
            path = f"{http}/v1/articles/{SEED}/related?k=5"
            with RecommenderClient(f"127.0.0.1:{port}", own_connection=True) as grpc_client:
                while not stop.is_set():
                    for kind in ("http", "grpc"):
                        started = time.perf_counter()
                        try:
                            if kind == "http":  # a new connection each time, as browsers do
                                with urllib.request.urlopen(path, timeout=10) as answer:
                                    assert answer.status == 200
                            else:
                                assert grpc_client.related(article_id=SEED, k=5).results
                            latencies[kind].append(time.perf_counter() - started)
                        except Exception as exc:
                            failures.append(f"{kind}: {type(exc).__name__}: {exc}"[:200])
                    time.sleep(0.05)

        started_cpu, started = cpu_seconds(process.pid), time.monotonic()
        views = threading.Thread(target=page_views)
        views.start()
        http_port = _http_port(http)
        held = [s for s in (slow_connection(http_port, n) for n in range(ATTACK)) if s]
        peak = open_descriptors(process.pid)
        time.sleep(HOLD_S)
        stop.set()
        views.join(timeout=60)
        busy = (cpu_seconds(process.pid) - started_cpu) / (time.monotonic() - started)
        after = open_descriptors(process.pid)
        log_lines = len(process.log_lines) - log_before

        p99 = {k: sorted(v)[int(0.99 * (len(v) - 1))] * 1000 for k, v in latencies.items() if v}
        print(f"{len(held)} of {ATTACK} slow connections opened; descriptors {baseline} -> "
              f"peak {peak} -> {after} after {HOLD_S:.0f} s; server CPU {busy:.0%} of a core; "
              f"{log_lines} log lines; other clients: {len(latencies['http'])} HTTP, "
              f"{len(latencies['grpc'])} gRPC calls, p99 {p99} ms")  # fmt: skip
        assert not failures, failures[:5]
        assert len(latencies["http"]) > 20 and len(latencies["grpc"]) > 20
        assert peak < 1024 - 64, "the slow connections nearly used every descriptor"
        assert after < baseline + 64, "slow connections were still open past their deadline"
        assert busy < 0.9, "the server spun while the connections were held"
        assert log_lines < 50, "the log grew with the attack"
        assert process.poll() is None
    finally:
        for sock in held:
            sock.close()
        process.terminate()
        process.wait(timeout=60)


def _http_port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])
