"""The gRPC service under concurrent load, against the ceiling of Python gRPC on this machine.

Starts ``recommender serve`` on an index (the sample corpus, and ANT when ``var/ant`` holds
it), drives ``Related`` by article id (k=10, default ranking) from several client processes
(asyncio gRPC clients, ``concurrency`` requests in flight in all) for a fixed duration, and
reports throughput and p50 / p95 / p99 latency. In the same run, the same load against a
trivial gRPC server that answers every ``Related`` with a constant 10-result response: what
Python gRPC itself costs here. Writes benchmarks/results/service.json and service.png.

Two kinds of traffic on ANT:

- ``uncached``: the server's result cache off (``--result-cache 0``), ids drawn uniformly
  from all articles: every request ranks from scratch (the worst case);
- ``news traffic``: the server as it ships (result cache on, emptied at start), ids drawn
  with Zipf popularity (rank r asked with weight 1/r^s, s=1 by default, ranks shuffled over
  all articles), as page views of a news site concentrate on few stories. The cache's hit
  rate is read from the server's /metrics and reported.

    .venv/bin/python benchmarks/bench_service.py [--duration 10] [--concurrency 1 4 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
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

    from recommender.config import DEFAULT_SERVER_WORKERS

    # the same request threads as `recommender serve` by default
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=DEFAULT_SERVER_WORKERS))
    pb_grpc.add_RecommenderServicer_to_server(Trivial(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    Path(port_file).write_text(str(port))
    server.wait_for_termination()


# -- load generation ------------------------------------------------------------------------


def client_process(
    address: str,
    ids: list[str],
    weights: list[float] | None,
    in_flight: int,
    duration: float,
    out: Any,
) -> None:
    """``in_flight`` concurrent Related calls for ``duration`` seconds; sends latencies (s).

    Ids are drawn with ``weights`` (uniformly when None).
    """
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
            cumulative = list(itertools.accumulate(weights)) if weights else None

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < end:
                    if cumulative is None:
                        article_id = rng.choice(ids)
                    else:
                        article_id = rng.choices(ids, cum_weights=cumulative)[0]
                    request = pb.RelatedRequest(article_id=article_id, k=10)
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
    address: str,
    ids: list[str],
    weights: list[float] | None,
    concurrency: int,
    duration: float,
    processes: int,
) -> dict[str, Any]:
    processes = max(1, min(processes, concurrency))
    shares = [
        concurrency // processes + (1 if i < concurrency % processes else 0)
        for i in range(processes)
    ]
    queue: Any = multiprocessing.get_context("spawn").Queue()
    workers = [
        multiprocessing.get_context("spawn").Process(
            target=client_process, args=(address, ids, weights, share, duration, queue)
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


def start_engine_server(
    index_dir: Path, result_cache: int, log: Path, timeout: float = 180.0
) -> tuple[subprocess.Popen[bytes], str, str]:
    """``recommender serve`` on a free port; returns the process, its address and metrics URL.

    The server's log goes to ``log``; if it does not come up, it is stopped and the error
    quotes the end of its log (a stale or corrupted index says so there).
    """
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
             "--address", "127.0.0.1:0", "--metrics-port", "0",
             "--result-cache", str(result_cache)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        line = ""
        while not line:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("it did not report its port")
            time.sleep(0.1)
            text = log.read_text(encoding="utf-8", errors="replace")
            line = next((x for x in text.splitlines() if "listening on 127.0.0.1:" in x), "")
        port = line.split("listening on 127.0.0.1:")[1].split(",")[0].split()[0]
        metrics_port = line.split("metrics on :")[1].split("/")[0]
        address = f"127.0.0.1:{port}"
        wait_serving(address, timeout=max(1.0, deadline - time.monotonic()))
    except (RuntimeError, TimeoutError) as error:
        process.kill()
        process.wait()
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(
            f"the server on {index_dir} did not start ({error}); its log ({log}) ends:\n"
            + "\n".join(tail)
        ) from None
    return process, address, f"http://127.0.0.1:{metrics_port}/metrics"


def cache_counts(metrics_url: str) -> tuple[float, float]:
    """The server's result-cache hits and misses so far."""
    body = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    values = {}
    for line in body.splitlines():
        for name in ("hits", "misses"):
            if line.startswith(f"recommender_result_cache_{name}_total "):
                values[name] = float(line.split()[1])
    return values.get("hits", 0.0), values.get("misses", 0.0)


def wait_serving(address: str, timeout: float = 180.0) -> None:
    import grpc

    from recommender.client import wait_until_serving

    with grpc.insecure_channel(address) as channel:
        wait_until_serving(channel, timeout)


def sample_index(tmp: Path) -> Path:
    index_dir = tmp / "sample"
    subprocess.run(
        [sys.executable, "-m", "recommender", "index", str(ROOT / "data" / "articles.jsonl"),
         "--index-dir", str(index_dir), "--quiet"],
        check=True, capture_output=True,
    )  # fmt: skip
    return index_dir


def article_ids(index_dir: Path) -> list[str]:
    """Every article id of the index, shuffled (the order is the popularity rank for Zipf)."""
    from recommender.snapshot import load_snapshot

    snapshot = load_snapshot(index_dir)
    ids = [row[1] for row in snapshot.store.facets()]
    snapshot.close()
    random.Random(0).shuffle(ids)
    return ids


def zipf_weights(n: int, exponent: float) -> list[float]:
    return [1.0 / (rank**exponent) for rank in range(1, n + 1)]


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
        (line,) = left.plot(xs, [r["p99_ms"] for r in subset], marker="o", label=f"{target} p99")
        color = line.get_color()  # one colour per target in both panels
        left.plot(xs, [r["p50_ms"] for r in subset], marker=".", linestyle="--", color=color,
                  label=f"{target} p50")  # fmt: skip
        right.plot(xs, [r["throughput_rps"] for r in subset], marker="o", color=color,
                   label=target)  # fmt: skip
    left.axhline(10.0, color="grey", linestyle=":", label="target: p99 10 ms at 16")
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
        "--zipf", type=float, default=1.0, help="popularity exponent of the news-traffic run"
    )
    parser.add_argument(
        "--result-cache", type=int, default=8192, help="cache size of the news-traffic run"
    )
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="seconds of traffic before a cached run"
    )
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
        # (name, index, server's result cache size, Zipf exponent or None for uniform ids)
        targets: list[tuple[str, Path | None, int, float | None]] = [
            ("trivial server", None, 0, None),
            ("sample corpus (91), uncached", sample_index(Path(tmp)), 0, None),
        ]
        if (args.ant_index / "CURRENT").is_file():
            targets.append(("ANT + sample (31.6k), uncached", args.ant_index, 0, None))
            targets.append((
                f"ANT + sample (31.6k), news traffic (Zipf {args.zipf:g}, cache "
                f"{args.result_cache})", args.ant_index, args.result_cache, args.zipf,
            ))  # fmt: skip
        for name, index_dir, cache_size, zipf in targets:
            process = metrics_url = None
            weights = None
            if index_dir is None:
                address, ids = trivial_address, ["x"]
            else:
                log = Path(tmp) / f"server-{len(rows)}.log"
                process, address, metrics_url = start_engine_server(index_dir, cache_size, log)
                ids = article_ids(index_dir)
                weights = zipf_weights(len(ids), zipf) if zipf is not None else None
            try:
                if cache_size and metrics_url:
                    # a site's cache has seen its traffic for a while: measure the steady state
                    warm = drive(address, ids, weights, 16, args.warmup, args.processes)
                    hits, misses = cache_counts(metrics_url)
                    print(f"warm-up {args.warmup:.0f} s: {warm['requests']} requests, "
                          f"hit rate {hits / max(1.0, hits + misses):.3f}", flush=True)  # fmt: skip
                for concurrency in args.concurrency:
                    before = cache_counts(metrics_url) if metrics_url else (0.0, 0.0)
                    measured = drive(address, ids, weights, concurrency, args.duration,
                                     args.processes)  # fmt: skip
                    row: dict[str, Any] = {"target": name, "result_cache": cache_size, **measured}
                    if metrics_url and cache_size:
                        hits, misses = (
                            a - b for a, b in zip(cache_counts(metrics_url), before, strict=True)
                        )
                        row["cache_hit_rate"] = round(hits / max(1.0, hits + misses), 3)
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
        "machine": machine_info(duration_s=args.duration, warmup_s=args.warmup),
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
