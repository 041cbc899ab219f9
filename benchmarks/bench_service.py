"""The gRPC service under concurrent load, against the ceiling of Python gRPC on this machine.

Starts ``recommender serve`` on an index (the sample corpus, and ANT when ``var/ant`` holds
it) with ``--server-processes`` processes on one port (default: one per core), drives
``Related`` (k=10, default ranking) with ``concurrency`` requests in flight for a fixed
duration, and reports throughput and p50 / p95 / p99 latency, from two load generators:

- ``native``: a C client over libnghttp2 (``loadgen/grpc_load.c``, built into ``var/`` on
  first use), a few microseconds of CPU per call, so that on a machine of two cores the
  server, not the client, is what is measured;
- ``python``: asyncio gRPC clients in ``--processes`` processes, what a Python backend
  calling the service sees (each call costs the client about as much CPU as the server).

With SO_REUSEPORT the kernel spreads connections, not requests, over the server's processes:
the C client opens 16 connections (fewer when fewer requests are in flight), the Python one 4
per process. In the same run, the same load against a
trivial gRPC server with as many processes that answers every ``Related`` with a constant
10-result response (a real answer of median size, so both send as many bytes): what Python
gRPC itself costs here. Writes benchmarks/results/service.json
and service.png.

Targets (ids drawn uniformly from all articles, no warm-up that favours some):

- ``ids``: ``Related`` by article id as a page view asks it: the stored list's answer;
- ``ids, live ranking``: the same with the server's stored lists and result cache off
  (``--live-ranking --result-cache 0``): every request ranks from scratch;
- ``raw text``: ``Related`` for an article's title and lead as raw text (embedded and ranked
  per request).

    .venv/bin/python benchmarks/bench_service.py [--duration 10] [--concurrency 1 4 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
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


def run_trivial_server(port: int, answer: bytes) -> None:
    """A Recommender whose Related returns a constant response (no engine), on ``port``
    beside its other processes (SO_REUSEPORT, as ``recommender serve --processes``).

    The constant is a real answer of typical size (``typical_answer``), so that both servers
    send the same number of bytes per request.
    """
    import grpc

    from recommender.v1 import recommender_pb2 as pb
    from recommender.v1 import recommender_pb2_grpc as pb_grpc

    constant = pb.RelatedResponse.FromString(answer)

    class Trivial(pb_grpc.RecommenderServicer):  # type: ignore[misc]
        def Related(self, request: Any, context: Any) -> Any:
            return constant

    from recommender.config import DEFAULT_SERVER_WORKERS

    # the same request threads as `recommender serve` by default
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=DEFAULT_SERVER_WORKERS),
        options=[("grpc.so_reuseport", 1)],
    )
    pb_grpc.add_RecommenderServicer_to_server(Trivial(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def typical_answer(index_dir: Path) -> bytes:
    """The encoded k=10 answer of median size among 500 articles of the index."""
    from recommender.engine import Engine
    from recommender.ranking import Filters, RankingOptions

    engine = Engine(index_dir).load()
    try:
        ids = random.Random(0).sample(list(engine.space.ids), min(500, len(engine.space)))
        answers = sorted(
            (engine.related_encoded(i, 10, Filters(), RankingOptions()) or b"" for i in ids),
            key=len,
        )
        return answers[len(answers) // 2]
    finally:
        engine.close()


def start_trivial_servers(processes: int, answer: bytes) -> tuple[list[Any], str]:
    """``processes`` trivial servers on one free port; returns them and the address."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        context = multiprocessing.get_context("spawn")
        servers = [
            context.Process(target=run_trivial_server, args=(port, answer), daemon=True)
            for _ in range(processes)
        ]
        for server in servers:
            server.start()
        address = f"127.0.0.1:{port}"
        wait_serving(address, health=False)
    return servers, address


# -- load generation ------------------------------------------------------------------------


CHANNELS_PER_CLIENT = 4  # connections per client process: the kernel spreads connections


def client_process(
    address: str,
    requests: list[Any],
    in_flight: int,
    duration: float,
    out: Any,
) -> None:
    """``in_flight`` concurrent Related calls for ``duration`` seconds; sends latencies (s).

    Requests are drawn uniformly from ``requests`` (``RelatedRequest`` keyword dicts), over
    ``CHANNELS_PER_CLIENT`` connections (with SO_REUSEPORT the kernel spreads connections,
    not requests, over the server's processes).
    """
    import grpc

    from recommender.v1 import recommender_pb2 as pb
    from recommender.v1 import recommender_pb2_grpc as pb_grpc

    async def main() -> list[float]:
        # a local subchannel pool each: separate connections, not one shared
        channels = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(CHANNELS_PER_CLIENT)
        ]
        try:
            stubs = [pb_grpc.RecommenderStub(channel) for channel in channels]
            for stub in stubs:  # connect (the request is not measured)
                await stub.Related(pb.RelatedRequest(**requests[0]), timeout=60)
            latencies: list[float] = []
            errors = 0
            end = time.perf_counter() + duration
            rng = random.Random(os.getpid())

            async def worker(stub: Any) -> None:
                nonlocal errors
                while time.perf_counter() < end:
                    request = pb.RelatedRequest(**rng.choice(requests))
                    started = time.perf_counter()
                    try:
                        await stub.Related(request, timeout=10)
                        latencies.append(time.perf_counter() - started)
                    except grpc.aio.AioRpcError:
                        errors += 1

            await asyncio.gather(*(worker(stubs[i % len(stubs)]) for i in range(in_flight)))
            latencies.append(-float(errors))  # the last entry carries the error count
            return latencies
        finally:
            for channel in channels:
                await channel.close()

    out.put(asyncio.run(main()))


def latency_figures(ms: np.ndarray, errors: int, duration: float) -> dict[str, Any]:
    """Requests, errors, throughput and p50 / p95 / p99 of the latencies ``ms`` of one run."""
    percentile = {q: round(float(np.percentile(ms, q)), 3) if len(ms) else None
                  for q in (50, 95, 99)}  # fmt: skip
    return {
        "requests": len(ms),
        "errors": errors,
        "throughput_rps": round(len(ms) / duration, 1),
        "p50_ms": percentile[50],
        "p95_ms": percentile[95],
        "p99_ms": percentile[99],
    }


def drive(
    address: str,
    requests: list[dict[str, Any]],
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
            target=client_process, args=(address, requests, share, duration, queue)
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
        "client": "python",
        "client_processes": processes,
        **latency_figures(ms, errors, duration),
    }


LOADGEN_SOURCE = ROOT / "benchmarks" / "loadgen" / "grpc_load.c"
LOADGEN = ROOT / "var" / "grpc_load"  # built by `make bench-service` (needs libnghttp2-dev)
RELATED_PATH = "/recommender.v1.Recommender/Related"
# The C client's connections (at most one per request in flight): the kernel spreads
# connections over the server's processes at random, and 16 spread more evenly than 8
NATIVE_CONNECTIONS = 16


def native_loadgen() -> Path | None:
    """The C load generator, compiled if its binary is missing or older than its source;
    None when it cannot be built here (no compiler or no libnghttp2 headers)."""
    if LOADGEN.exists() and LOADGEN.stat().st_mtime >= LOADGEN_SOURCE.stat().st_mtime:
        return LOADGEN
    LOADGEN.parent.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        ["cc", "-O2", "-o", str(LOADGEN), str(LOADGEN_SOURCE), "-lnghttp2"],
        capture_output=True, text=True,
    )  # fmt: skip
    if built.returncode != 0:
        print(f"the C load generator did not build: {built.stderr.strip()[:300]}", file=sys.stderr)
        return None
    return LOADGEN


def drive_native(
    loadgen: Path,
    address: str,
    requests: list[dict[str, Any]],
    concurrency: int,
    duration: float,
    connections: int,
) -> dict[str, Any]:
    """The same load from the C client (``loadgen/grpc_load.c``): requests drawn uniformly
    (written in random order), ``concurrency`` in flight over ``connections`` connections,
    after a one-second warm-up of random requests."""
    from recommender.v1 import recommender_pb2 as pb

    rng = random.Random(concurrency)
    host, port = address.rsplit(":", 1)
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "bodies.bin"
        with bodies.open("wb") as out:
            for _ in range(min(200_000, max(1000, int(20_000 * duration)))):
                message = pb.RelatedRequest(**rng.choice(requests)).SerializeToString()
                out.write(len(message).to_bytes(4, "little") + message)
        timings = Path(tmp) / "latencies.f64"
        connections = max(1, min(connections, concurrency))
        ran = subprocess.run(
            [str(loadgen), host, port, RELATED_PATH, str(bodies), str(connections),
             str(concurrency), "1", str(duration), str(timings)],
            capture_output=True, text=True, timeout=duration + 120,
        )  # fmt: skip
        if ran.returncode != 0:
            raise RuntimeError(f"the load generator failed: {ran.stderr.strip()[:500]}")
        counts = json.loads(ran.stdout)
        ms = np.fromfile(timings, dtype=np.float64) * 1000
    return {
        "concurrency": concurrency,
        "client": "native",
        "connections": connections,
        **latency_figures(ms, counts["errors"], duration),
    }


# -- servers --------------------------------------------------------------------------------


def start_engine_server(
    index_dir: Path, extra: list[str], log: Path, timeout: float = 240.0
) -> tuple[subprocess.Popen[bytes], str, str]:
    """``recommender serve`` on a free port; returns the process, its address and metrics URL.

    The server's log goes to ``log``; if it does not come up, it is stopped and the error
    quotes the end of its log (a stale or corrupted index says so there).
    """
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
             "--address", "127.0.0.1:0", "--metrics-port", "0", *extra],
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


def wait_serving(address: str, timeout: float = 240.0, health: bool = True) -> None:
    """Until the server at ``address`` says SERVING (or, ``health=False``, accepts calls).

    With several processes a health check reaches one of them: ask over several fresh
    connections, so that (very likely) every process was asked.
    """
    import grpc

    from recommender.client import wait_until_serving

    for _ in range(8):
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(address, options=options) as channel:
            if health:
                wait_until_serving(channel, timeout)
            else:
                grpc.channel_ready_future(channel).result(timeout=timeout)


def sample_index(tmp: Path) -> Path:
    index_dir = tmp / "sample"
    subprocess.run(
        [sys.executable, "-m", "recommender", "index", str(ROOT / "data" / "articles.jsonl"),
         "--index-dir", str(index_dir), "--quiet"],
        check=True, capture_output=True,
    )  # fmt: skip
    return index_dir


def id_requests(index_dir: Path) -> list[dict[str, Any]]:
    """A ``Related`` request by id for every article of the index."""
    from recommender.storage.snapshot import load_snapshot

    snapshot = load_snapshot(index_dir)
    ids = [row[1] for row in snapshot.store.facets()]
    snapshot.close()
    return [{"article_id": i, "k": 10} for i in ids]


def text_requests(index_dir: Path, n: int = 1000) -> list[dict[str, Any]]:
    """``Related`` for raw text: the title and lead of ``n`` articles of the index."""
    from recommender.storage.snapshot import load_snapshot

    snapshot = load_snapshot(index_dir)
    ids = [row[1] for row in snapshot.store.facets()]
    chosen = random.Random(0).sample(ids, min(n, len(ids)))
    texts = []
    for article_id in chosen:
        stored = snapshot.store.get(article_id)
        if stored is not None:
            a = stored.article
            texts.append(f"{a.title}\n{a.lead}".strip())
    snapshot.close()
    return [{"text": t, "k": 10} for t in texts if t]


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    clients = sorted({r["client"] for r in rows})
    fig, axes = plt.subplots(len(clients), 2, figsize=(12, 4.5 * len(clients)), squeeze=False)
    for (left, right), client in zip(axes, clients, strict=True):
        for target in sorted({r["target"] for r in rows}):
            subset = sorted((r for r in rows if r["target"] == target and r["client"] == client),
                            key=lambda r: r["concurrency"])  # fmt: skip
            xs = [r["concurrency"] for r in subset]
            (line,) = left.plot(xs, [r["p99_ms"] for r in subset], marker="o",
                                label=f"{target} p99")  # fmt: skip
            color = line.get_color()  # one colour per target in both panels
            left.plot(xs, [r["p50_ms"] for r in subset], marker=".", linestyle="--",
                      color=color, label=f"{target} p50")  # fmt: skip
            right.plot(xs, [r["throughput_rps"] for r in subset], marker="o", color=color,
                       label=target)  # fmt: skip
        left.axhline(5.0, color="grey", linestyle=":", label="target: p99 5 ms at 16")
        for ax, label in ((left, "latency (ms)"), (right, "requests / s")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent requests")
            ax.set_ylabel(label)
            ax.set_title(f"{client} client", fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        left.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--processes", type=int, default=2, help="client processes at most")
    parser.add_argument(
        "--clients", nargs="*", choices=["native", "python"], default=["native", "python"],
        help="load generators: the C one (loadgen/grpc_load.c, built on first use; skipped "
        "when it cannot be built) and the Python asyncio one",
    )  # fmt: skip
    parser.add_argument(
        "--server-processes", type=int, default=os.cpu_count() or 1,
        help="processes of each server, the trivial one included (default: one per core)",
    )  # fmt: skip
    parser.add_argument("--ant-index", type=Path, default=ROOT / "var" / "ant")
    parser.add_argument("--only", nargs="*", default=[],
                        help="run only the targets whose names contain one of these")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "service.json"
    )
    args = parser.parse_args()

    loadgen = native_loadgen() if "native" in args.clients else None
    clients = [c for c in args.clients if c == "python" or loadgen is not None]
    if not clients:
        print("no load generator to run (the C one did not build)", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    server_processes = ["--processes", str(args.server_processes)]
    live = ["--live-ranking", "--result-cache", "0"]
    with tempfile.TemporaryDirectory() as tmp:
        sample = sample_index(Path(tmp))
        has_ant = (args.ant_index / "CURRENT").is_file()
        answer = typical_answer(args.ant_index if has_ant else sample)
        trivial, trivial_address = start_trivial_servers(args.server_processes, answer)
        # (name, index or None for the trivial server, server flags, requests)
        targets: list[tuple[str, Path | None, list[str], list[dict[str, Any]]]] = [
            ("trivial server", None, [], [{"article_id": "x", "k": 10}]),
            ("sample corpus (91), ids", sample, [], id_requests(sample)),
        ]
        if has_ant:
            ant = args.ant_index
            ant_ids = id_requests(ant)
            targets += [
                ("ANT + sample (31.6k), ids", ant, [], ant_ids),
                ("ANT + sample (31.6k), ids, live ranking", ant, live, ant_ids),
                ("ANT + sample (31.6k), raw text", ant, [], text_requests(ant)),
            ]
        wanted = [t for t in targets if t[0] == "trivial server"
                  or not args.only or any(o in t[0] for o in args.only)]  # fmt: skip
        for name, index_dir, flags, requests in wanted:
            process = None
            if index_dir is None:
                address = trivial_address
            else:
                log = Path(tmp) / f"server-{len(rows)}.log"
                process, address, _ = start_engine_server(
                    index_dir, [*server_processes, *flags], log
                )
            try:
                for concurrency in args.concurrency:
                    for client in clients:
                        if client == "native" and loadgen is not None:
                            measured = drive_native(
                                loadgen, address, requests, concurrency, args.duration,
                                NATIVE_CONNECTIONS,
                            )  # fmt: skip
                        else:
                            measured = drive(address, requests, concurrency, args.duration,
                                             args.processes)  # fmt: skip
                        row: dict[str, Any] = {
                            "target": name,
                            "server_processes": args.server_processes,
                            **measured,
                        }
                        print(json.dumps(row, ensure_ascii=False), flush=True)
                        rows.append(row)
            finally:
                if process is not None:
                    process.terminate()
                    process.wait(timeout=60)
        for server in trivial:
            server.terminate()

    ratios = {}
    for row in rows:
        if row["target"] == "trivial server":
            continue
        base = next(r for r in rows if r["target"] == "trivial server"
                    and r["concurrency"] == row["concurrency"]
                    and r["client"] == row["client"])  # fmt: skip
        ratios[f"{row['target']} @ {row['concurrency']}, {row['client']} client"] = round(
            row["throughput_rps"] / base["throughput_rps"], 3
        )
    payload = {
        "machine": machine_info(
            duration_s=args.duration,
            server_processes=args.server_processes,
            answer_bytes=len(answer),
        ),
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
