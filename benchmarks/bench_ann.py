"""The nearest-neighbour core against its peers and against this machine's memory bandwidth.

Data: ``--n`` unit vectors of dimension ``--dim`` (512, the default model's), drawn like
sentence embeddings: a shared mean direction, 300 topics and 5,000 sub-topics, per-item
noise, all with a variance decaying as a power law over dimensions (real embeddings have such
a spectrum), normalised; queries are held-out points of the same distribution. Also the real
embeddings of an index directory when present (``--real-index var/ant``: the ANT corpus).

Per configuration: recall@10 against exact search, single-query latency p50/p99 (one query at
a time, as a website request makes it), batch throughput (all queries at once), build time and
memory. Also: filtered search through the engine's filtering path, exact search as a fraction
of the memory-bandwidth bound, and 1 vs 2 threads. Writes JSON (one row per configuration,
with the machine) and a recall-vs-latency plot under benchmarks/results/.

    .venv/bin/python benchmarks/bench_ann.py --quick        # N=100k, < 5 minutes
    .venv/bin/python benchmarks/bench_ann.py                # N=100k and 1M (long)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import faiss  # noqa: E402
from machine import machine_info  # noqa: E402

from recommender.evaluation.recall import recall_at_k  # noqa: E402
from recommender.index import VectorIndex  # noqa: E402
from recommender.index import factory as engine_index  # noqa: E402
from recommender.runtime import SERVING_THREADS  # noqa: E402

K = 10


def make_data(n: int, dim: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors shaped like sentence embeddings (see the module docstring).

    A shared mean direction (embeddings are anisotropic), 300 topics, 5,000 sub-topics around
    them and per-item noise, all with a power-law spectrum over dimensions. Measured shape:
    median cosine of a random pair 0.14, of a query's nearest neighbour 0.68 and of its 10th
    0.58, close to USE on news (ANT: top-1 ~0.7, random ~0.1-0.2).
    """
    rng = np.random.default_rng(seed)
    scales = ((1.0 + np.arange(dim)) ** -0.5).astype(np.float32)
    unit_noise = scales / np.sqrt((scales**2).sum())
    mean = rng.standard_normal(dim).astype(np.float32) * scales
    mean *= 0.5 / np.linalg.norm(mean)
    topics = rng.standard_normal((300, dim)).astype(np.float32) * scales
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    subtopics = topics[rng.integers(0, len(topics), 5000)] * 0.7
    subtopics += rng.standard_normal((5000, dim)).astype(np.float32) * unit_noise * 0.6
    total = n + n_queries
    out = np.empty((total, dim), dtype=np.float32)
    for start in range(0, total, 100_000):
        stop = min(total, start + 100_000)
        assign = rng.integers(0, len(subtopics), stop - start)
        noise = rng.standard_normal((stop - start, dim)).astype(np.float32) * unit_noise * 0.9
        block = mean + subtopics[assign] + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return out[:n], out[n:]


def real_data(index_dir: Path, n_queries: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The vectors of a built index (e.g. ANT), split into corpus and held-out queries."""
    from recommender.storage.snapshot import load_snapshot

    try:
        snapshot = load_snapshot(index_dir)
    except Exception as exc:  # absent or unreadable: the run goes on without it
        print(f"no real embeddings: {exc}", file=sys.stderr)
        return None
    _, vectors = snapshot.store.vectors(snapshot.manifest.model)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(vectors))
    return vectors[order[n_queries:]], vectors[order[:n_queries]]


def memory_bandwidth_gbs(size_mb: int = 1024, repeats: int = 5) -> float:
    """Read bandwidth in GB/s: the best of several sums over a buffer far larger than cache."""
    buffer = np.ones(size_mb * 1024 * 1024 // 4, dtype=np.float32)
    buffer.sum()
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        buffer.sum()
        best = max(best, buffer.nbytes / (time.perf_counter() - started) / 1e9)
    return best


def latency(
    search: Callable[[np.ndarray], Any], queries: np.ndarray, limit: int
) -> tuple[float, float]:
    """p50 and p99 in ms of one query at a time."""
    for q in queries[:10]:
        search(q[None, :])
    times = []
    for q in queries[:limit]:
        started = time.perf_counter()
        search(q[None, :])
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def throughput(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> float:
    started = time.perf_counter()
    search(queries)
    return len(queries) / (time.perf_counter() - started)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return recall_at_k(found, truth, K)


def faiss_bytes(index: Any) -> int:
    return int(faiss.serialize_index(index).nbytes)


class Runner:
    """Collects rows for one dataset."""

    def __init__(self, name: str, data: np.ndarray, queries: np.ndarray, args: Any) -> None:
        self.name, self.data, self.queries, self.args = name, data, queries, args
        self.rows: list[dict[str, Any]] = []
        exact = faiss.IndexFlatIP(data.shape[1])
        exact.add(data)
        self.truth = exact.search(queries, K)[1]
        self.exact = exact
        self.engine_hnsw: tuple[Any, float] | None = None  # (index, build_s) for filtered()

    def measure(
        self,
        library: str,
        index_name: str,
        params: dict[str, Any],
        search: Callable[[np.ndarray], np.ndarray],
        build_s: float,
        memory: int,
        default: bool = False,
        threads: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        set_threads = threads or faiss.omp_set_num_threads
        found = search(self.queries)
        # one query at a time with one thread, as the engine serves (SERVING_THREADS); the
        # batch with all threads
        set_threads(SERVING_THREADS)
        p50, p99 = latency(search, self.queries, self.args.latency_queries)
        set_threads(self.args.threads)
        row = {
            "dataset": self.name,
            "n": len(self.data),
            "dim": self.data.shape[1],
            "library": library,
            "index": index_name,
            "params": params,
            "engine_default": default,
            "recall_at_10": round(recall(found, self.truth), 4),
            "p50_ms": round(p50, 4),
            "p99_ms": round(p99, 4),
            "qps_batch": round(throughput(search, self.queries), 1),
            "build_s": round(build_s, 3),
            "memory_bytes": int(memory),
            "threads": {"single_query": SERVING_THREADS, "batch": self.args.threads},
        }
        print(json.dumps({k: row[k] for k in ("dataset", "library", "index", "params",
                                              "recall_at_10", "p50_ms", "p99_ms", "qps_batch",
                                              "build_s")}), flush=True)  # fmt: skip
        self.rows.append(row)
        return row

    # -- FAISS -----------------------------------------------------------------------------

    def faiss_flat(self) -> None:
        index = self.exact
        started = time.perf_counter()
        rebuilt = faiss.IndexFlatIP(self.data.shape[1])
        rebuilt.add(self.data)
        build = time.perf_counter() - started
        auto_is_flat = engine_index.resolve_spec("auto", len(self.data)) == "Flat"
        self.measure("faiss", "Flat", {}, lambda q: index.search(q, K)[1], build,
                     self.data.nbytes, default=auto_is_flat)  # fmt: skip

    def faiss_hnsw(self, m_values: list[int], ef_values: list[int]) -> None:
        auto = engine_index.resolve_spec("auto", len(self.data))
        for m in m_values:
            index = faiss.IndexHNSWFlat(self.data.shape[1], m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = engine_index.HNSW_EF_CONSTRUCTION
            started = time.perf_counter()
            index.add(self.data)
            build = time.perf_counter() - started
            memory = faiss_bytes(index)
            if m == engine_index.HNSW_M:
                self.engine_hnsw = (index, build)
            for ef in ef_values:
                index.hnsw.efSearch = ef
                default = auto == f"HNSW{m},Flat" and ef == engine_index.HNSW_EF_SEARCH
                params = {
                    "M": m,
                    "efSearch": ef,
                    "efConstruction": engine_index.HNSW_EF_CONSTRUCTION,
                }
                self.measure(
                    "faiss", f"HNSW{m},Flat", params,
                    lambda q, i=index: i.search(q, K)[1], build, memory, default,
                )  # fmt: skip

    def faiss_ivf(self, spec: str, nprobes: list[int]) -> None:
        index = faiss.index_factory(self.data.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
        started = time.perf_counter()
        train = self.data[np.random.default_rng(2).permutation(len(self.data))[:100_000]]
        index.train(train)
        index.add(self.data)
        build = time.perf_counter() - started
        memory = faiss_bytes(index)
        ivf = faiss.extract_index_ivf(index)
        for nprobe in nprobes:
            ivf.nprobe = nprobe
            self.measure("faiss", spec, {"nprobe": nprobe},
                         lambda q, i=index: i.search(q, K)[1], build, memory)  # fmt: skip

    # -- peers -----------------------------------------------------------------------------

    def hnswlib(self, m: int, ef_values: list[int]) -> None:
        try:
            import hnswlib
        except ImportError:
            print("hnswlib not installed: skipped", file=sys.stderr)
            return
        index = hnswlib.Index(space="ip", dim=self.data.shape[1])
        index.init_index(
            max_elements=len(self.data), M=m, ef_construction=engine_index.HNSW_EF_CONSTRUCTION
        )
        index.set_num_threads(faiss.omp_get_max_threads())
        started = time.perf_counter()
        index.add_items(self.data, np.arange(len(self.data)))
        build = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "h.bin")
            index.save_index(path)
            memory = os.path.getsize(path)
        for ef in ef_values:
            index.set_ef(ef)
            self.measure("hnswlib", f"HNSW M={m}", {"M": m, "ef": ef},
                         lambda q, i=index: i.knn_query(q, k=K)[0], build, memory,
                         threads=index.set_num_threads)  # fmt: skip

    def usearch(self, connectivity: int, ef_values: list[int]) -> None:
        try:
            from usearch.index import Index
        except ImportError:
            print("usearch not installed: skipped", file=sys.stderr)
            return
        index = Index(ndim=self.data.shape[1], metric="ip", dtype="f32",
                      connectivity=connectivity,
                      expansion_add=engine_index.HNSW_EF_CONSTRUCTION)  # fmt: skip
        threads = [faiss.omp_get_max_threads()]
        started = time.perf_counter()
        index.add(np.arange(len(self.data)), self.data, threads=threads[0])
        build = time.perf_counter() - started
        memory = int(index.memory_usage)
        for ef in ef_values:
            index.expansion_search = ef

            def search(q: np.ndarray, i: Any = index) -> np.ndarray:
                result = i.search(q, K, threads=threads[0])
                keys = np.asarray(result.keys)
                return keys if keys.ndim == 2 else keys[None, :]

            def set_threads(n: int) -> None:
                threads[0] = n

            self.measure("usearch", f"HNSW connectivity={connectivity}",
                         {"connectivity": connectivity, "expansion_search": ef},
                         search, build, memory, threads=set_threads)  # fmt: skip

    def sklearn_brute(self) -> None:
        from sklearn.neighbors import NearestNeighbors

        started = time.perf_counter()
        model = NearestNeighbors(n_neighbors=K, algorithm="brute", metric="cosine").fit(self.data)
        build = time.perf_counter() - started
        self.measure("scikit-learn", "NearestNeighbors brute (cosine)", {},
                     lambda q: model.kneighbors(q, return_distance=False), build,
                     self.data.nbytes)  # fmt: skip

    # -- engine paths ----------------------------------------------------------------------

    def filtered(self, spec: str) -> None:
        """The engine's filtering path (VectorIndex.search with allowed ids)."""
        ids = np.arange(len(self.data), dtype=np.int64)
        if spec == f"HNSW{engine_index.HNSW_M},Flat" and self.engine_hnsw is not None:
            # the HNSW graph built above, with the engine's settings (saves a second build)
            graph, build = self.engine_hnsw
            graph.hnsw.efSearch = engine_index.HNSW_EF_SEARCH
            index = VectorIndex(graph, ids, spec, self.data.shape[1])
        else:
            started = time.perf_counter()
            index = VectorIndex.build(ids, self.data, spec)
            build = time.perf_counter() - started
        rng = np.random.default_rng(3)
        for share in (0.5, 0.05, 0.005):
            allowed = np.sort(rng.choice(ids, max(K, int(len(ids) * share)), replace=False))
            exact = faiss.IndexFlatIP(self.data.shape[1])
            exact.add(self.data[allowed])
            truth = allowed[exact.search(self.queries, K)[1]]

            mask = np.zeros(len(ids), dtype=bool)
            mask[allowed] = True  # the engine passes its filter as a mask over positions

            def search(q: np.ndarray, m: np.ndarray = mask) -> np.ndarray:
                return index.search(q, K, main_mask=m).ids

            found = np.vstack([search(q[None, :]) for q in self.queries[:200]])
            faiss.omp_set_num_threads(SERVING_THREADS)
            p50, p99 = latency(search, self.queries, self.args.latency_queries)
            faiss.omp_set_num_threads(self.args.threads)
            row = {
                "dataset": self.name, "n": len(self.data), "dim": self.data.shape[1],
                "library": "recommender (faiss)", "index": f"{index.spec} filtered",
                "params": {"allowed_share": share}, "engine_default": True,
                "recall_at_10": round(recall(found, truth[:200]), 4),
                "p50_ms": round(p50, 4), "p99_ms": round(p99, 4), "qps_batch": None,
                "build_s": round(build, 3), "memory_bytes": None,
                "threads": {"single_query": SERVING_THREADS},
            }  # fmt: skip
            print(json.dumps({k: row[k] for k in ("index", "params", "recall_at_10", "p50_ms")}))
            self.rows.append(row)

    def bandwidth_and_threads(self, bandwidth: float) -> dict[str, Any]:
        bound_ms = len(self.data) * self.data.shape[1] * 4 / (bandwidth * 1e9) * 1000
        out: dict[str, Any] = {"bandwidth_gbs": round(bandwidth, 2), "bound_ms": round(bound_ms, 4)}
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            p50, _ = latency(lambda q: self.exact.search(q, K), self.queries, 200)
            out[f"flat_p50_ms_{threads}_threads"] = round(p50, 4)
            out[f"flat_fraction_of_bound_{threads}_threads"] = round(bound_ms / p50, 3)
        faiss.omp_set_num_threads(self.args.threads)
        return out


def crossover(dim: int, sizes: list[int], args: Any) -> list[dict[str, Any]]:
    """Exact vs HNSW single-query latency by corpus size: where ``auto`` should switch."""
    rows = []
    for n in sizes:
        data, queries = make_data(n, dim, 300, seed=5)
        flat = faiss.IndexFlatIP(dim)
        flat.add(data)
        truth = flat.search(queries, K)[1]
        hnsw = faiss.IndexHNSWFlat(dim, engine_index.HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = engine_index.HNSW_EF_CONSTRUCTION
        hnsw.add(data)
        hnsw.hnsw.efSearch = engine_index.HNSW_EF_SEARCH
        flat_p50, _ = latency(lambda q, i=flat: i.search(q, K), queries, 300)
        hnsw_p50, _ = latency(lambda q, i=hnsw: i.search(q, K), queries, 300)
        row = {
            "n": n,
            "flat_p50_ms": round(flat_p50, 4),
            "hnsw_p50_ms": round(hnsw_p50, 4),
            "hnsw_recall_at_10": round(recall(hnsw.search(queries, K)[1], truth), 4),
            "hnsw_params": {"M": engine_index.HNSW_M, "efSearch": engine_index.HNSW_EF_SEARCH},
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    datasets = sorted({(r["dataset"], r["n"]) for r in rows}, key=lambda x: x[1])
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 5), squeeze=False)
    for ax, (dataset, n) in zip(axes[0], datasets, strict=True):
        subset = [r for r in rows if r["dataset"] == dataset and "filtered" not in r["index"]]
        for label in sorted({f"{r['library']} {r['index']}" for r in subset}):
            points = sorted(
                ((r["recall_at_10"], r["p50_ms"]) for r in subset
                 if f"{r['library']} {r['index']}" == label),
            )  # fmt: skip
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("single-query p50 (ms, log)")
        ax.set_title(f"{dataset}, N={n:,}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=100k, fewer sweeps (< 5 min)")
    parser.add_argument("--n", type=int, nargs="*", help="corpus sizes (default 100k 1M)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--real-index", type=Path, default=ROOT / "var" / "ant")
    parser.add_argument(
        "--libraries", nargs="*", default=["faiss", "hnswlib", "usearch", "sklearn"],
        help="peers to run besides FAISS",
    )  # fmt: skip
    parser.add_argument(
        "--only-filtered", action="store_true",
        help="only the engine's filtered path (and exact search for reference)",
    )  # fmt: skip
    parser.add_argument(
        "--crossover-sizes", type=int, nargs="*", default=[5_000, 10_000, 20_000, 50_000],
        help="corpus sizes of the Flat-vs-HNSW comparison",
    )  # fmt: skip
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    sizes = args.n or ([100_000] if args.quick else [100_000, 1_000_000])
    efs = [16, 32, 64, 128] if args.quick else [16, 32, 64, 128, 256, 512]
    nprobes = [4, 16, 64] if args.quick else [1, 4, 16, 64, 128]
    bandwidth = memory_bandwidth_gbs()
    print(f"memory bandwidth {bandwidth:.1f} GB/s", flush=True)

    rows: list[dict[str, Any]] = []
    physical: dict[str, Any] = {}
    datasets: list[tuple[str, np.ndarray, np.ndarray]] = []
    for n in sizes:
        data, queries = make_data(n, args.dim, args.queries)
        datasets.append(("synthetic", data, queries))
    if args.real_index.is_dir():
        real = real_data(args.real_index, args.queries)
        if real is not None:
            datasets.append(("ANT embeddings", *real))
    for name, data, queries in datasets:
        runner = Runner(name, data, queries, args)
        runner.faiss_flat()
        if args.only_filtered:
            runner.filtered(engine_index.resolve_spec("auto", len(data)))
            rows += runner.rows
            continue
        # At 1M every graph takes 4-10 minutes to build on 2 cores: the M sweep and the
        # compressed IVFs run at 100k and on ANT, 1M keeps the default M against its peers
        # so that `make bench` fits in 45 minutes.
        large = len(data) > 200_000
        runner.faiss_hnsw([32] if args.quick or large else [16, 32, 48], efs)
        runner.faiss_ivf(f"IVF{int(4 * np.sqrt(len(data)))},Flat", nprobes)
        if not args.quick and not large:
            runner.faiss_ivf(f"IVF{int(4 * np.sqrt(len(data)))},SQ8", nprobes)
            runner.faiss_ivf(f"IVF{int(4 * np.sqrt(len(data)))},PQ64", nprobes)
        if "hnswlib" in args.libraries:
            runner.hnswlib(32, efs)
        if "usearch" in args.libraries:
            runner.usearch(32, efs)
        if "sklearn" in args.libraries:
            runner.sklearn_brute()
        runner.filtered(engine_index.resolve_spec("auto", len(data)))
        physical[f"{name} N={len(data)}"] = runner.bandwidth_and_threads(bandwidth)
        print(json.dumps(physical[f"{name} N={len(data)}"]), flush=True)
        rows += runner.rows

    switch: list[dict[str, Any]] = []
    if not args.only_filtered:
        faiss.omp_set_num_threads(SERVING_THREADS)
        switch = crossover(args.dim, args.crossover_sizes, args)
        faiss.omp_set_num_threads(args.threads)

    stem = "ann-filtered" if args.only_filtered else "ann-quick" if args.quick else "ann"
    out = args.out or ROOT / "benchmarks" / "results" / f"{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": machine_info(threads=args.threads, memory_bandwidth_gbs=round(bandwidth, 2)),
        "data": "clustered unit vectors, power-law spectrum (see bench_ann.py docstring)",
        "physical_limit": physical,
        "flat_vs_hnsw_by_size": switch,
        "rows": rows,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
