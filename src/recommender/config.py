"""Typed, frozen settings. Read from flags and environment only at the edges (CLI, service).

Every default the CLI shows comes from these dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recommender.ingest.text import DEFAULT_RECIPE, TextRecipe
from recommender.ranking import PREFIX_DEPTH

LIST_DEPTH = PREFIX_DEPTH  # the most related stories a stored list can hold (``lists``)


@dataclass(frozen=True)
class IndexConfig:
    """How a batch job builds an index."""

    index_dir: Path
    model_name: str | None = None  # None: the default model, or the one the index was built with
    index_type: str = "auto"  # "auto", or any FAISS factory string ("Flat", "HNSW32,Flat", ...)
    recipe: TextRecipe = field(default_factory=lambda: DEFAULT_RECIPE)
    batch_size: int = 256  # articles per embed-and-commit step
    keep_snapshots: int = 3
    max_rejects: int = 0  # more rejected records than this makes the job fail
    sync: bool = False  # the sources are the whole archive: delete what they do not contain
    detect_language: bool = True
    progress: bool = True
    list_depth: int = LIST_DEPTH  # related results stored per article; 0: no stored lists
    # build the snapshot from scratch (lexical refit, every list) instead of on the serving one
    rebuild_lists: bool = False
    engine: str = "local"  # where texts are embedded: "local", or "ray" (``raybatch``)
    ray_address: str | None = None  # a Ray cluster (None: a local Ray instance)
    ray_workers: int = 0  # embedding actors on Ray (0: one per GPU, else one per CPU)


# Request threads of the gRPC server: Python work holds the GIL, so threads beyond what the
# process can run only contend. Measured on 2 cores (ANT, 16 concurrent uncached requests,
# benchmarks/README.md): 2 workers served 154 req/s at p99 129 ms, 4 workers 133 at 180 ms,
# 16 workers 114 at 271 ms.
DEFAULT_SERVER_WORKERS = 2

# Answers to article-id queries the server keeps until the index changes (about 12 KiB each,
# measured on ANT).
DEFAULT_RESULT_CACHE = 8192


@dataclass(frozen=True)
class ServerConfig:
    """How the service runs; read from flags at the edge (``recommender serve``)."""

    index_dir: Path
    address: str = "127.0.0.1:50051"
    metrics_port: int | None = 9464
    auth_token: str | None = None
    auth_reads: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    workers: int = DEFAULT_SERVER_WORKERS
    result_cache: int = DEFAULT_RESULT_CACHE  # article-id answers kept per index generation
    watch_interval: float = 2.0
    # server processes on the port (0: one per core); each applies the others' writes within
    # about follow_interval seconds (``service.processes``)
    processes: int = 0
    follow_interval: float = 0.2
    use_lists: bool = True  # False: rank every request live (for comparisons)
    rerank_lists: bool = False  # True: stored lists re-ordered by the click ranker at lookup
    grace_seconds: float = 5.0
    warm_model: bool = True
    # writes (Upsert, Delete calls) per second per client address, after a burst; 0: no limit
    write_rate: float = 20.0
    write_burst: int = 100
    # RecordEvents calls per second per client address, after a burst (readers behind one
    # NAT share an address; a browser sends a call per impression or click); 0: no limit
    event_rate: float = 50.0
    event_burst: int = 500
    # HTTP/JSON beside gRPC on this port (same host; 0: a free port; None: no HTTP)
    http_port: int | None = None
    # serve a published index from shared storage: mirror this fsspec URL into index_dir
    # (``remote``); such a server is read-only
    index_url: str | None = None
    read_only: bool = False
    cors_origins: tuple[str, ...] = ()  # origins whose pages may call the HTTP API; none: off
    allow_anonymous_writes: bool = False  # HTTP writes without auth_token (refused otherwise)
    allowed_hosts: tuple[str, ...] = ()  # Host headers the HTTP API answers; none: any
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-For is believed; none: nobody's
    listen_after_load: bool = False  # load before listening (a restarted ``processes`` child)
