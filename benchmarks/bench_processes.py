"""How long a write takes to reach every process of ``serve --processes N``.

Starts ``recommender serve --processes N`` on a copy of an index (the sample corpus by
default), opens ``--connections`` connections (the kernel spreads them over the processes),
then ``--writes`` times, at random moments: upserts one new article through one connection
and polls
``GetArticle`` on every connection until all answer it, then deletes it through another and
polls until none does. Reports p50 / p99 / max of: the upsert's acknowledgement, the time
until every process has the article, and the same for the delete. Writes
benchmarks/results/processes.json.

    .venv/bin/python benchmarks/bench_processes.py [--processes 2] [--writes 50]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_service import sample_index  # noqa: E402
from machine import machine_info  # noqa: E402


def summary(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--index-dir", type=Path, help="index to copy (default: data/)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "processes.json"
    )
    args = parser.parse_args()

    import grpc

    from recommender.client import wait_until_serving
    from recommender.v1 import recommender_pb2 as pb
    from recommender.v1 import recommender_pb2_grpc as pb_grpc

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        if args.index_dir is not None:
            shutil.copytree(args.index_dir, index_dir)
        else:
            shutil.move(str(sample_index(Path(tmp))), index_dir)
        process = subprocess.Popen(
            [sys.executable, "-m", "recommender", "serve", "--index-dir", str(index_dir),
             "--address", "127.0.0.1:0", "--metrics-port", "-1",
             "--processes", str(args.processes)],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        channels = []
        try:
            line = ""
            while "listening on 127.0.0.1:" not in line:  # its processes log JSON lines too
                line = process.stderr.readline()
                if not line:
                    raise RuntimeError("the server exited before listening")
            # keep reading its log, so that it never blocks on a full pipe
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            port = int(line.split("listening on 127.0.0.1:")[1].split()[0])
            options = [("grpc.use_local_subchannel_pool", 1)]
            channels = [
                grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
                for _ in range(args.connections)
            ]
            for channel in channels:
                wait_until_serving(channel, 300)
            stubs = [pb_grpc.RecommenderStub(c) for c in channels]  # type: ignore[no-untyped-call]

            def everywhere(article_id: str, present: bool, started: float) -> float:
                for stub in stubs:
                    while True:
                        try:
                            stub.GetArticle(pb.GetArticleRequest(id=article_id), timeout=10)
                            found = True
                        except grpc.RpcError as error:
                            if error.code() != grpc.StatusCode.NOT_FOUND:
                                raise
                            found = False
                        if found == present:
                            break
                        time.sleep(0.005)
                return time.perf_counter() - started

            acks, arrived, deleted_acks, gone = [], [], [], []
            rng = random.Random(0)
            for i in range(args.writes):
                # writes arrive at random moments of the other processes' polling cycle (right
                # after the previous write arrived everywhere, they would all wait a full one)
                time.sleep(rng.uniform(0.0, 0.25))
                article = pb.Article(id=f"cross-{i}", title=f"Cross-process write number {i}",
                                     lang="en", published_at="2020-06-01")  # fmt: skip
                started = time.perf_counter()
                stubs[i % len(stubs)].Upsert(pb.UpsertRequest(articles=[article]), timeout=60)
                acks.append(time.perf_counter() - started)
                arrived.append(everywhere(article.id, True, started))
                started = time.perf_counter()
                stubs[(i + 1) % len(stubs)].Delete(pb.DeleteRequest(ids=[article.id]), timeout=60)
                deleted_acks.append(time.perf_counter() - started)
                gone.append(everywhere(article.id, False, started))
        finally:
            for channel in channels:
                channel.close()
            process.terminate()
            process.wait(timeout=60)

    payload: dict[str, Any] = {
        "machine": machine_info(
            processes=args.processes,
            connections=args.connections,
            index=str(args.index_dir or "data/ (91)"),
        ),
        "writes": args.writes,
        "upsert_acknowledged": summary(acks),
        "upsert_on_every_process": summary(arrived),
        "delete_acknowledged": summary(deleted_acks),
        "delete_on_every_process": summary(gone),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
