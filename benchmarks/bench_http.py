"""The HTTP/JSON API under load, against a bare server of the same HTTP stack on this machine.

Starts ``recommender serve --http-port`` (``--server-processes`` processes, default 2) on an
index (the sample corpus, and ANT when ``var/ant`` holds it) and drives
``GET /v1/articles/{id}/related?k=10`` with ids drawn uniformly from all articles, with
``wrk`` (a C load generator, ``make bench-http`` installs it) holding ``concurrency``
connections busy for ``--duration`` seconds. In the same run, the same load against a trivial
server: uvicorn + Starlette (httptools, no access log, as ours), as many processes on one
port, answering every request with the same constant JSON (the answer of median size), so
both send as many bytes: what the HTTP stack itself costs here. Before the load, every answer
at k = 10 and 30 is compared with what the protobuf path writes (``related_json`` of the stored
protobuf answer): ``byte_identical`` in the results (``--no-check`` skips it). Writes
benchmarks/results/http.json and http.png.

    .venv/bin/python benchmarks/bench_http.py [--duration 10] [--concurrency 1 4 16 64]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_service import sample_index, start_engine_server, typical_answer  # noqa: E402
from machine import machine_info  # noqa: E402

WRK_SCRIPT = """
local ids = {%s}
math.randomseed(7)
request = function()
  return wrk.format("GET", "/v1/articles/" .. ids[math.random(#ids)] .. "/related?k=10")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "seconds": %%f, "errors": %%d, "non_2xx": %%d, ' ..
    '"p50_us": %%d, "p95_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def run_trivial_http(port: int, body: bytes) -> None:
    """A constant answer on ``port`` beside its other processes (SO_REUSEPORT)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def related(request: Any) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/v1/articles/{article_id:path}/related", related)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def start_trivial(processes: int, body: bytes) -> tuple[list[Any], int]:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
        context = multiprocessing.get_context("spawn")
        servers = [
            context.Process(target=run_trivial_http, args=(port, body), daemon=True)
            for _ in range(processes)
        ]
        for server in servers:
            server.start()
    wait_http(f"http://127.0.0.1:{port}/v1/articles/x/related", expect_json=False)
    return servers, port


def wait_http(url: str, timeout: float = 240.0, expect_json: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if not expect_json or json.load(response).get("status") == "SERVING":
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer")


def run_wrk(port: int, ids: list[str], connections: int, duration: float) -> dict[str, Any]:
    quoted = ",".join(json.dumps(urllib.parse.quote(i, safe="")) for i in ids)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % quoted)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
         "-s", script.name, f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"^RESULT (.*)$", out.stdout, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(found.group(1))
    return {
        "requests_per_s": round(raw["requests"] / raw["seconds"], 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["errors"] + raw["non_2xx"],
    }


def index_ids(index_dir: Path) -> list[str]:
    from recommender.storage.snapshot import load_snapshot

    snapshot = load_snapshot(index_dir)
    ids = [row[1] for row in snapshot.store.facets()]
    snapshot.close()
    return ids


def answer_json(index_dir: Path) -> bytes:
    from recommender.service.httpjson import message_json
    from recommender.v1 import recommender_pb2 as pb

    message = pb.RelatedResponse.FromString(typical_answer(index_dir))
    return json.dumps(message_json(message), ensure_ascii=False).encode("utf-8")


def check_identical(port: int, index_dir: Path, ids: list[str]) -> dict[str, int]:
    """Every page view at k = 10 and 30 over HTTP against what the HTTP API wrote before
    stored lists kept JSON pieces: the stored protobuf answer through ``related_json``."""
    import http.client

    from recommender.engine import DEFAULT_OPTIONS, NO_FILTERS, Engine
    from recommender.service.httpjson import related_json
    from recommender.v1 import recommender_pb2 as pb

    engine = Engine(index_dir).load()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    checked = identical = 0
    try:
        for article_id in ids:
            for k in (10, 30):
                encoded = engine.related_encoded(article_id, k, NO_FILTERS, DEFAULT_OPTIONS)
                assert encoded is not None, article_id
                before = json.dumps(
                    related_json(pb.RelatedResponse.FromString(encoded)), ensure_ascii=False
                ).encode("utf-8")
                quoted = urllib.parse.quote(article_id, safe="")
                connection.request("GET", f"/v1/articles/{quoted}/related?k={k}")
                checked += 1
                identical += connection.getresponse().read() == before
    finally:
        connection.close()
        engine.close()
    return {"answers_checked": checked, "answers_identical": identical}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({(r["index"], r["server"]) for r in rows}):
        line = [r for r in rows if (r["index"], r["server"]) == key]
        x = [r["concurrency"] for r in line]
        axes[0].plot(x, [r["requests_per_s"] for r in line], marker="o", label=" / ".join(key))
        axes[1].plot(x, [r["p99_ms"] for r in line], marker="o", label=" / ".join(key))
    for axis, title in zip(axes, ("requests/s", "p99 latency (ms)"), strict=True):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("connections")
        axis.set_title(title)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--server-processes", type=int, default=2)
    parser.add_argument("--ant-index", type=Path, default=ROOT / "var" / "ant")
    parser.add_argument(
        "--no-check", dest="check", action="store_false",
        help="skip comparing every answer at k = 10 and 30 with the protobuf path's JSON",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/http.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: make bench-http installs it (apt-get install wrk)")

    rows: list[dict[str, Any]] = []
    checks: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        indexes = {"sample": sample_index(Path(tmp))}
        if (args.ant_index / "CURRENT").is_file():
            indexes["ANT"] = args.ant_index
        for name, index_dir in indexes.items():
            ids, body = index_ids(index_dir), answer_json(index_dir)
            trivial, trivial_port = start_trivial(args.server_processes, body)
            log = Path(tmp) / f"serve-{name}.log"
            extra = ["--processes", str(args.server_processes), "--http-port", "0"]
            process, _, _ = start_engine_server(index_dir, extra, log)
            http_port = int(re.findall(r"HTTP/JSON on :(\d+)", log.read_text())[0])
            wait_http(f"http://127.0.0.1:{http_port}/healthz")
            try:
                if args.check:
                    checks[name] = check_identical(http_port, index_dir, ids)
                    print(name, json.dumps(checks[name]), flush=True)
                for connections in args.concurrency:
                    for server, port in (("trivial", trivial_port), ("recommender", http_port)):
                        figures = run_wrk(port, ids, connections, args.duration)
                        row = {"index": name, "articles": len(ids), "server": server,
                               "concurrency": connections, **figures}  # fmt: skip
                        rows.append(row)
                        print(json.dumps(row), flush=True)
            finally:
                process.terminate()
                process.wait(timeout=60)
                for server_process in trivial:
                    server_process.kill()
    for row in rows:
        if row["server"] == "recommender":
            key = (row["index"], row["concurrency"])
            peer = next(
                r for r in rows
                if r["server"] == "trivial" and (r["index"], r["concurrency"]) == key
            )  # fmt: skip
            row["share_of_trivial"] = round(row["requests_per_s"] / peer["requests_per_s"], 3)
    result = {
        "machine": machine_info(),
        "settings": {
            "duration_s": args.duration,
            "server_processes": args.server_processes,
            "answer_bytes": len(body),
            "load_generator": "wrk -t1",
        },
        "rows": rows,
        "byte_identical": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
