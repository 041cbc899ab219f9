"""The gRPC service under concurrent load, against the ceiling of Python gRPC on this machine.

Starts ``recommender serve`` on an index (the sample corpus, and ANT when ``var/ant`` holds
it), drives ``Related`` by article id (k=10, default ranking) from several client processes
(asyncio gRPC clients, ``concurrency`` requests in flight in all) for a fixed duration, and
reports throughput and p50 / p95 / p99 latency. In the same run, the same load against a
trivial gRPC server that answers every ``Related`` with a constant 10-result response: what
Python gRPC itself costs here. Writes benchmarks/results/service.json and service.png.

    .venv/bin/python benchmarks/bench_service.py [--duration 10] [--concurrency 1 4 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

# -- the trivial server ---------------------------------------------------------------------


def run_trivial_server(port_file: str) -> None:
    """A Recommender whose Related returns a constant response (no engine)."""
    import grpc

    from recommender.v1 import recommender_pb2 as pb
    from recommender.v1 import recommender_pb2_grpc as pb_grpc

    constant = pb.RelatedResponse(
        results=[
            pb.RelatedItem(id=f"story-{i}", title="A constant headline of typical length " * 2,
                           url=f"https://news.example.org/{i}", score=0.5, lang="ar",
                           published_at="2020-08-18T10:30:00+02:00", key_terms=["ليبيا", "طرابلس"])
            for i in range(10)
        ],
        snapshot="constant",
    )  # fmt: skip

    class Trivial(pb_grpc.RecommenderServicer):  # type: ignore[misc]
        def Related(self, request: Any, context: Any) -> Any:
            return constant

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    pb_grpc.add_RecommenderServicer_to_server(Trivial(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    Path(port_file).write_text(str(port))
    server.wait_for_termination()


# -- load generation ------------------------------------------------------------------------


def client_process(address: str, ids: list[str], in_flight: int, duration: float, out: Any) -> None:
    """``in_flight`` concurrent Related calls for ``duration`` seconds; sends latencies (s)."""
    import grpc

    from recommender.v1 import recommender_pb2 as pb
    from recommender.v1 import recommender_pb2_grpc as pb_grpc

    async def main() -> list[float]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.RecommenderStub(channel)
            await stub.Related(pb.RelatedRequest(article_id=ids[0], k=10), timeout=30)  # warm-up
            latencies: list[float] = []
            errors = 0
            end = time.perf_counter() + duration
            rng = random.Random(os.getpid())

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < end:
                    request = pb.RelatedRequest(article_id=rng.choice(ids), k=10)
                    started = time.perf_counter()
                    try:
                        await stub.Related(request, timeout=10)
                        latencies.append(time.perf_counter() - started)
                    except grpc.aio.AioRpcError:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(in_flight)))
            latencies.append(-float(errors))  # the last entry carries the error count
            return latencies

    out.put(asyncio.run(main()))


def drive(
    address: str, ids: list[str], concurrency: int, duration: float, processes: int
) -> dict[str, Any]:
    processes = max(1, min(processes, concurrency))
    shares = [
        concurrency // processes + (1 if i < concurrency % processes else 0)
        for i in range(processes)
    ]
    queue: Any = multiprocessing.get_context("spawn").Queue()
    workers = [
        multiprocessing.get_context("spawn").Process(
            target=client_process, args=(address, ids, share, duration, queue)
        )
        for share in shares
    ]
    for w in workers:
        w.start()
    latencies: list[float] = []
    errors = 0
    for _ in workers:
        part = queue.get(timeout=duration + 120)
        errors += int(-part[-1])
        latencies += part[:-1]
    for w in workers:
        w.join()
    ms = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "client_processes": processes,
        "requests": len(ms),
        "errors": errors,
        "throughput_rps": round(len(ms) / duration, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3) if len(ms) else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 3) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 3) if len(ms) else None,
    }


# -- servers --------------------------------------------------------------------------------


def start_engine_server(index_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", "127.0.0.1:0", "--metrics-port", "-1"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    line = process.stderr.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {line}")
    port = line.split("listening on 127.0.0.1:")[1].split(",")[0].split()[0]
    address = f"127.0.0.1:{port}"
    wait_serving(address)
    return process, address


def wait_serving(address: str, timeout: float = 180.0) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                channel.close()
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{address} never became SERVING")


def sample_index(tmp: Path) -> Path:
    index_dir = tmp / "sample"
    subprocess.run(
        [sys.executable, "-m", "recommender", "index", str(ROOT / "data" / "articles.jsonl"),
         "--index-dir", str(index_dir), "--quiet"],
        check=True, capture_output=True,
    )  # fmt: skip
    return index_dir


def article_ids(index_dir: Path, limit: int = 2000) -> list[str]:
    from recommender.snapshot import load_snapshot

    snapshot = load_snapshot(index_dir)
    ids = [row[1] for row in snapshot.store.facets()]
    snapshot.close()
    random.Random(0).shuffle(ids)
    return ids[:limit]


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for target in sorted({r["target"] for r in rows}):
        subset = sorted((r for r in rows if r["target"] == target), key=lambda r: r["concurrency"])
        xs = [r["concurrency"] for r in subset]
        left.plot(xs, [r["p99_ms"] for r in subset], marker="o", label=f"{target} p99")
        left.plot(
            xs, [r["p50_ms"] for r in subset], marker=".", linestyle="--", label=f"{target} p50"
        )
        right.plot(xs, [r["throughput_rps"] for r in subset], marker="o", label=target)
    for ax, label in ((left, "latency (ms)"), (right, "requests / s")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    left.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--processes", type=int, default=4, help="client processes at most")
    parser.add_argument("--ant-index", type=Path, default=ROOT / "var" / "ant")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "service.json"
    )
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        trivial = multiprocessing.get_context("spawn").Process(
            target=run_trivial_server, args=(str(port_file),), daemon=True
        )
        trivial.start()
        while not port_file.exists():
            time.sleep(0.05)
        trivial_address = f"127.0.0.1:{port_file.read_text()}"
        targets: list[tuple[str, Path | None]] = [("trivial server", None)]
        targets.append(("sample corpus (91)", sample_index(Path(tmp))))
        if (args.ant_index / "CURRENT").is_file():
            targets.append(("ANT + sample (31.6k)", args.ant_index))
        for name, index_dir in targets:
            process = None
            if index_dir is None:
                address, ids = trivial_address, ["x"]
            else:
                process, address = start_engine_server(index_dir)
                ids = article_ids(index_dir)
            try:
                for concurrency in args.concurrency:
                    row = {"target": name, **drive(address, ids, concurrency, args.duration,
                                                   args.processes)}  # fmt: skip
                    print(json.dumps(row, ensure_ascii=False), flush=True)
                    rows.append(row)
            finally:
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)
        trivial.terminate()

    ratios = {}
    for row in rows:
        if row["target"] == "trivial server":
            continue
        base = next(r for r in rows if r["target"] == "trivial server"
                    and r["concurrency"] == row["concurrency"])  # fmt: skip
        ratios[f"{row['target']} @ {row['concurrency']}"] = round(
            row["throughput_rps"] / base["throughput_rps"], 3
        )
    payload = {
        "machine": machine_info(duration_s=args.duration),
        "rows": rows,
        "throughput_ratio_to_trivial": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    plot(rows, args.out.with_suffix(".png"))
    print(json.dumps(ratios, ensure_ascii=False))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
