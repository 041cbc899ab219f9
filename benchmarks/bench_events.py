"""Reader events at a million: ingest, signals, Recommend with the ranker, page views under
arriving events (issue 26). Writes benchmarks/results/events.json.

1. **Ingest.** ``--events`` synthetic events (45 % impressions of 10 stories, 15 % clicks,
   40 % reads; ``--readers`` readers, ``--articles`` story ids, an hour's spread of times a
   second) appended to a fresh log in one process, in calls of 500 (an importer or a batching
   proxy); and ``--single`` one-event calls from 16 threads (browsers, group-committed).
   Events per second, the log's bytes per event.
2. **Signals.** The same events applied by ``Signals`` (the live path) and recomputed from the
   log (``Signals.replay``): microseconds per event, Python memory held (tracemalloc), and
   whether both hold the same values.
3. **Recommend with the ranker** on the sample index (a ranker fit on simulated readers, the
   million events' signals): p50 / p99 of ``Recommend`` by history with and without it, same
   run.
4. **Page views under events.** A real server (gRPC + HTTP) on the sample index; page views
   over HTTP (``GET /v1/articles/{id}/related?k=5``, one connection after another) p50 / p99,
   alone, then while another thread posts events at ``--event-rate`` per second; then the
   same under ``serve --rerank-lists`` (each stored list re-ordered by the ranker at lookup).

    .venv/bin/python benchmarks/bench_events.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402

SAMPLE = ROOT / "data" / "articles.jsonl"


def synthetic(n: int, readers: int, articles: int, seed: int = 0) -> list[Any]:
    from recommender.events.records import Event

    rng = random.Random(seed)
    start = time.time() - n / 300.0  # ~300 events a second, ending now (inside retention)
    ids = [f"story-{i}" for i in range(articles)]
    out = []
    for step in range(n):
        at, reader = start + step / 300.0, f"reader-{rng.randrange(readers)}"
        roll = rng.random()
        if roll < 0.45:
            shown = tuple(rng.sample(ids, 10))
            out.append(Event("impression", reader, at, rng.choice(ids), ids=shown))
        elif roll < 0.60:
            out.append(Event("click", reader, at, rng.choice(ids), rng.choice(ids),
                             position=rng.randrange(10)))  # fmt: skip
        else:
            out.append(Event("read", reader, at, target=rng.choice(ids)))
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(1000 * statistics.median(ordered), 3),
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 3),
            "n": len(ordered)}  # fmt: skip


def bench_ingest(events: list[Any], single: int, work: Path) -> dict[str, Any]:
    from recommender.events.log import EventLog

    log = EventLog(work / "ingest")
    started = time.perf_counter()
    for first in range(0, len(events), 500):
        log.append(events[first : first + 500])
    batched = time.perf_counter() - started
    with sqlite3.connect(work / "ingest" / "events.sqlite") as db:  # the WAL folded in
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (work / "ingest" / "events.sqlite").stat().st_size
    threads_log = EventLog(work / "single")
    chunks = [events[n::16][: single // 16] for n in range(16)]

    def one(chunk: list[Any]) -> None:
        for event in chunk:
            threads_log.append([event])

    started = time.perf_counter()
    workers = [threading.Thread(target=one, args=(chunk,)) for chunk in chunks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    one_by_one = time.perf_counter() - started
    done = sum(len(c) for c in chunks)
    return {"events": len(events), "batched_events_per_s": round(len(events) / batched),
            "batched_seconds": round(batched, 1), "bytes_per_event": round(size / len(events), 1),
            "single_event_calls": done, "single_events_per_s_16_threads":
            round(done / one_by_one)}, log  # fmt: skip


def bench_signals(log: Any) -> dict[str, Any]:
    from recommender.events.signals import Signals

    stored = list(log.events())
    tracemalloc.start()
    live = Signals()
    started = time.perf_counter()
    for event in stored:
        live.apply(event)
    apply_s = time.perf_counter() - started
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    started = time.perf_counter()
    replayed = Signals.replay(log.events())
    replay_s = time.perf_counter() - started
    now = time.time()
    return {"apply_us_per_event": round(1e6 * apply_s / len(stored), 2),
            "replay_from_log_seconds": round(replay_s, 1),
            "memory_mb": round(held / 2**20, 1),
            "articles": len(live.shown), "readers": len(live.histories),
            "live_equals_replay": live.state(now) == replayed.state(now)}, live  # fmt: skip


def bench_recommend(signals: Any, work: Path, repeats: int) -> dict[str, Any]:
    from recommender.batch.indexing import index_sources
    from recommender.config import IndexConfig
    from recommender.engine import Engine
    from recommender.evaluation.simulator import Simulation, simulate
    from recommender.events.imports import import_events
    from recommender.events.training import replay, train

    index_dir = work / "sample"
    index_sources(IndexConfig(index_dir=index_dir, progress=False), [str(SAMPLE)])
    engine = Engine(index_dir, writable=True).load()
    articles = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    _, behaviors = simulate(articles, Simulation())
    (work / "behaviors.tsv").write_text(behaviors, encoding="utf-8")
    engine.events.log.set_retention(0)
    import_events(engine.events.log, work / "behaviors.tsv")
    ranker = train(replay(engine.space, engine.events.log.events(), engine.default_options))
    ids = [a["id"] for a in articles]
    rng = random.Random(1)
    histories = [rng.sample(ids, 3) for _ in range(repeats)]

    def timed() -> list[float]:
        out = []
        for history in histories:
            started = time.perf_counter()
            engine.recommend(history, k=10)
            out.append(time.perf_counter() - started)
        return out

    without = timed()
    ranker.save(index_dir)
    engine.events._signals = signals  # the million events' signals, as a busy site has them
    engine.events._generation = engine.events.log.generation
    engine.events._signals.last_seq = 10**12  # (their log is elsewhere: nothing to catch up)
    engine.events._ranker_checked = -1e9
    with_ranker = timed()
    engine.close()
    return {"without_ranker": percentiles(without), "with_ranker": percentiles(with_ranker),
            "p50_ratio": round(statistics.median(with_ranker) / statistics.median(without),
                               2)}  # fmt: skip


def post_event(base: str, ids: list[str], rng: random.Random) -> None:
    event = {"kind": "click", "reader": f"r{rng.randrange(1000)}", "source": rng.choice(ids),
             "target": rng.choice(ids), "position": 1}  # fmt: skip
    body = json.dumps({"events": [event]}).encode()
    request = urllib.request.Request(f"{base}/v1/events", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(index_dir: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """A ``recommender serve`` process on free ports, once it says SERVING."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
         "--address", f"127.0.0.1:{free_port()}", "--http-port", str(port),
         "--metrics-port", "-1", "--processes", "1", "--event-rate", "0", *flags],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
                if json.loads(answer.read())["status"] == "SERVING":
                    return server, base
        except OSError:
            assert time.monotonic() < deadline, "the server never served"
            time.sleep(0.3)


def page_views(base: str, ids: list[str], seconds: float) -> list[float]:
    """Latencies of page views (a new connection each) for ``seconds``."""
    out: list[float] = []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        started = time.perf_counter()
        url = f"{base}/v1/articles/{ids[len(out) % len(ids)]}/related?k=5"
        with urllib.request.urlopen(url, timeout=10) as answer:
            answer.read()
        out.append(time.perf_counter() - started)
    return out


def while_posting(base: str, ids: list[str], seconds: float, rate: float) -> tuple[list, float]:
    """Page views while another thread posts events at ``rate`` a second; (latencies, rate
    reached)."""
    stop, sent = threading.Event(), [0]

    def post_events() -> None:
        rng, next_at = random.Random(2), time.perf_counter()
        while not stop.is_set():
            post_event(base, ids, rng)
            sent[0] += 1
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.perf_counter()))

    poster = threading.Thread(target=post_events)
    poster.start()
    started = time.perf_counter()
    during = page_views(base, ids, seconds)
    elapsed = time.perf_counter() - started
    stop.set()
    poster.join()
    return during, sent[0] / elapsed


def bench_page_views(work: Path, seconds: float, rate: float) -> dict[str, Any]:
    """Stored lists as they are, alone and under events; then re-ordered by the ranker at
    lookup (``serve --rerank-lists``, the ranker ``bench_recommend`` saved) under events."""
    ids = [json.loads(line)["id"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    result: dict[str, Any] = {}
    for label, flags in (("stored", ()), ("reordered", ("--rerank-lists",))):
        server, base = start_server(work / "sample", *flags)
        try:
            post_event(base, ids, random.Random(3))  # the event log opened, the model warm
            page_views(base, ids, 2.0)
            if label == "stored":
                result["alone"] = percentiles(page_views(base, ids, seconds))
            during, reached = while_posting(base, ids, seconds, rate)
            result[f"{label}_with_events"] = percentiles(during)
            result["events_per_s_arriving"] = round(reached, 1)
        finally:
            server.terminate()
            server.wait(timeout=60)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--single", type=int, default=20_000)
    parser.add_argument("--recommends", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0, help="of page views, each phase")
    parser.add_argument("--event-rate", type=float, default=100.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "events.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    try:
        events = synthetic(args.events, args.readers, args.articles)
        ingest, log = bench_ingest(events, args.single, work)
        print(json.dumps(ingest), flush=True)
        signals_result, signals = bench_signals(log)
        print(json.dumps(signals_result), flush=True)
        recommend = bench_recommend(signals, work, args.recommends)
        print(json.dumps(recommend), flush=True)
        pages = bench_page_views(work, args.seconds, args.event_rate)
        print(json.dumps(pages), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"machine": machine_info(), "ingest": ingest, "signals": signals_result,
              "recommend": recommend, "page_views": pages,
              "settings": vars(args)}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
