"""The commands that run jobs and servers: ``index``, ``serve``, ``publish``.

Thin adapters: flags become frozen configuration (``config``), then the batch job
(``indexing``), the server (``service.server``) or the upload (``remote``) runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recommender.cli.args import MODEL_HELP, add_defaulted, default_of
from recommender.config import LIST_DEPTH, IndexConfig, ServerConfig
from recommender.errors import InvalidInputError, disk_full_refused


def add_job_commands(commands: Any) -> None:
    """Add ``index``, ``serve`` and ``publish`` to the ``recommender`` subcommands."""
    index = commands.add_parser(
        "index",
        help="index articles (JSONL, JSONL.gz, CSV, RSS/Atom, HTML pages, URLs, - for stdin)",
        description=(
            "Read articles, embed the new and changed ones, update the store and publish a "
            "new snapshot atomically. Exits 2 when more records were rejected than allowed."
        ),
    )
    index.add_argument(
        "sources", nargs="+", metavar="SOURCE",
        help="article files (.jsonl[.gz], .csv, .rss, .atom, .xml, .html), http(s) URLs, or -",
    )  # fmt: skip
    index.add_argument(
        "--index-dir", required=True,
        help="index directory, or an fsspec URL to publish to (file://, s3://, ...)",
    )  # fmt: skip
    index.add_argument(
        "--work-dir", metavar="DIR",
        help="with a URL: the local directory of the working store and builds "
        "(default: ~/.cache/recommender/work/<digest of the URL>)",
    )  # fmt: skip
    index.add_argument("--model", help=f"{MODEL_HELP}; default: the index's model, else USE")
    from recommender.index import HNSW_THRESHOLD

    index.add_argument(
        "--index-type",
        default=default_of(IndexConfig, "index_type"),
        help=f"auto (Flat, HNSW from {HNSW_THRESHOLD:,} articles) or a FAISS factory string",
    )
    add_defaulted(index, "--batch-size", IndexConfig, "batch_size", "articles per commit")
    add_defaulted(index, "--keep", IndexConfig, "keep_snapshots", "snapshots to keep")
    add_defaulted(index, "--max-rejects", IndexConfig, "max_rejects", "rejected records allowed")
    add_defaulted(
        index, "--list-depth", IndexConfig, "list_depth",
        f"related stories stored per article, 0 to {LIST_DEPTH} (0: rank every request live)",
    )  # fmt: skip
    index.add_argument(
        "--sync", action="store_true", help="sources are the whole archive: delete the rest"
    )
    index.add_argument(
        "--rebuild-lists", action="store_true",
        help="build the snapshot from scratch: refit the lexical model and compute every list "
        "(by default a snapshot is built on the serving one and recomputes only the lists "
        "the changes touch)",
    )  # fmt: skip
    index.add_argument(
        "--engine", choices=("local", "ray"), default=default_of(IndexConfig, "engine"),
        help="where texts are embedded: here, or on Ray (pip install \"recommender[ray]\"); "
        "the store, cache and snapshot are written here either way",
    )  # fmt: skip
    index.add_argument(
        "--ray-address", metavar="ADDR",
        help="a Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray instance",
    )  # fmt: skip
    add_defaulted(index, "--ray-workers", IndexConfig, "ray_workers",
                  "embedding actors on Ray (0: one per GPU, else one per CPU)")  # fmt: skip
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    index.set_defaults(handler=_cmd_index)

    serve = commands.add_parser(
        "serve",
        help="serve an index over gRPC (recommender.v1.Recommender) and HTTP/JSON",
        description=(
            "Serve related stories over gRPC with health checking, reflection, Prometheus "
            "metrics, real-time Upsert/Delete and hot reload of new snapshots."
        ),
    )
    serve.add_argument(
        "--index-dir", required=True,
        help="index directory, or an fsspec URL a writer publishes to (read-only replica)",
    )  # fmt: skip
    serve.add_argument(
        "--mirror-dir", metavar="DIR",
        help="with a URL: where its snapshots are mirrored (default: "
        "~/.cache/recommender/mirror/<digest of the URL>)",
    )  # fmt: skip
    add_defaulted(serve, "--address", ServerConfig, "address", "HOST:PORT to listen on")
    add_defaulted(serve, "--metrics-port", ServerConfig, "metrics_port", "-1 to disable")
    serve.add_argument("--auth-token-file", help="require this bearer token for writes")
    serve.add_argument("--auth-reads", action="store_true", help="require the token for reads")
    add_defaulted(serve, "--write-rate", ServerConfig, "write_rate",
                  "Upsert/Delete calls per second per client address (0: no limit)")  # fmt: skip
    add_defaulted(serve, "--write-burst", ServerConfig, "write_burst",
                  "calls a client may make at once before --write-rate applies")  # fmt: skip
    add_defaulted(serve, "--event-rate", ServerConfig, "event_rate",
                  "RecordEvents calls per second per client address (0: no limit)")  # fmt: skip
    add_defaulted(serve, "--event-burst", ServerConfig, "event_burst",
                  "event calls a client may make at once before --event-rate applies")  # fmt: skip
    serve.add_argument(
        "--http-port", type=int, metavar="PORT",
        help="also answer HTTP/JSON on this port (GET /v1/articles/{id}/related, ...; 0: a "
        "free port); the same engine, token and answers as gRPC",
    )  # fmt: skip
    serve.add_argument(
        "--cors-origin", action="append", metavar="ORIGIN",
        help="let pages from ORIGIN (e.g. https://www.example.org, or *) call the HTTP API "
        "from the browser; repeat for several (default: no cross-origin calls)",
    )  # fmt: skip
    serve.add_argument(
        "--allow-anonymous-writes", action="store_true",
        help="accept Upsert/Delete over HTTP without --auth-token-file (refused otherwise: "
        "any page open in a browser on the machine could write)",
    )  # fmt: skip
    serve.add_argument(
        "--allowed-host", action="append", metavar="HOST",
        help="answer HTTP only for this Host header (e.g. api.example.org; repeat for "
        "several); others get 421 (default: any Host)",
    )  # fmt: skip
    serve.add_argument(
        "--trusted-proxy", action="append", metavar="ADDRESS",
        help="believe X-Forwarded-For from this proxy address or network (repeat for "
        "several); default: nobody's, the client is the connection's address",
    )  # fmt: skip
    serve.add_argument("--tls-cert", help="PEM certificate chain")
    serve.add_argument("--tls-key", help="PEM private key")
    serve.add_argument(
        "--live-ranking", action="store_true",
        help="rank every request live, stored lists unused (for comparisons)",
    )  # fmt: skip
    serve.add_argument(
        "--rerank-lists", action="store_true",
        help="re-order each stored list by the click ranker (train-ranker) at lookup: page "
        "views then skip the pre-encoded answers (docs/quality.md, 'Clicks')",
    )  # fmt: skip
    add_defaulted(
        serve, "--processes", ServerConfig, "processes",
        "server processes on the port, 0: one per core",
    )  # fmt: skip
    add_defaulted(
        serve, "--workers", ServerConfig, "workers",
        "request threads: more than the cores only contend for the GIL; raise it when slow "
        "text queries should not make others wait",
    )  # fmt: skip
    add_defaulted(
        serve, "--result-cache", ServerConfig, "result_cache",
        "answers to article-id queries kept until the index changes (0: off)", metavar="N",
    )  # fmt: skip
    serve.set_defaults(handler=_cmd_serve)

    publish = commands.add_parser(
        "publish",
        help="upload an index's snapshot to shared storage for read-only replicas",
        description=(
            "Publish the snapshot of an index directory (building one first when its working "
            "store changed since the last, e.g. by a server's live writes) to an fsspec URL: "
            "files first, CURRENT last. Replicas serving the URL pick it up."
        ),
    )
    publish.add_argument("--index-dir", required=True, help="the writer's index directory")
    publish.add_argument("--to", required=True, metavar="URL", help="file://, s3://, gs://, ...")
    publish.add_argument("--quiet", action="store_true", help="no progress bar")
    publish.set_defaults(handler=_cmd_publish)


def _cmd_index(args: argparse.Namespace) -> int:
    from recommender.batch.indexing import index_sources
    from recommender.storage import remote

    url = args.index_dir if remote.is_url(args.index_dir) else None
    local = Path(args.index_dir)
    if url is not None:
        remote.check_url(url)  # a missing backend fails before any work
        local = Path(args.work_dir or remote.local_dir_for(url, "work"))
    config = IndexConfig(
        index_dir=local,
        model_name=args.model,
        index_type=args.index_type,
        batch_size=args.batch_size,
        keep_snapshots=args.keep,
        max_rejects=args.max_rejects,
        sync=args.sync,
        rebuild_lists=args.rebuild_lists,
        progress=not args.quiet,
        list_depth=args.list_depth,
        engine=args.engine,
        ray_address=args.ray_address,
        ray_workers=args.ray_workers,
    )
    if args.ray_address and args.engine != "ray":
        raise InvalidInputError("--ray-address needs --engine ray", field="ray_address")
    if not 0 <= args.list_depth <= LIST_DEPTH:
        raise InvalidInputError(f"must be between 0 and {LIST_DEPTH}", field="list_depth")
    with disk_full_refused(str(local)):  # the serving snapshot stays as it was
        summary = index_sources(config, args.sources)
    if url is not None:  # the work directory's snapshot, uploaded: files first, CURRENT last
        summary.published_to = f"{url} ({remote.publish(local, url)})"
    for line in summary.notes(shown=20):
        print(line, file=sys.stderr)
    print(json.dumps(summary.to_dict(), ensure_ascii=False))
    if summary.rejected > config.max_rejects:
        print(
            f"recommender index: {summary.rejected} records rejected (allowed: "
            f"{config.max_rejects}); see {summary.rejects_file}",
            file=sys.stderr,
        )
        return InvalidInputError.exit_code
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from recommender.batch.indexing import index_sources
    from recommender.storage import remote

    if remote.is_url(args.to):
        remote.check_url(args.to)
    elif not Path(args.to).is_absolute():
        raise InvalidInputError("give a URL or an absolute path", field="to")
    root = Path(args.index_dir)
    if not (root / "CURRENT").is_file():
        raise InvalidInputError(f"{root} holds no index", field="index_dir")
    # no sources: a snapshot of the working store when it changed since the last one
    summary = index_sources(IndexConfig(index_dir=root, progress=not args.quiet), [])
    name = remote.publish(root, args.to)
    print(json.dumps({"snapshot": name, "built": summary.snapshot_built, "published_to": args.to}))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from recommender.service.run import serve
    from recommender.storage import remote

    token = None
    if args.auth_token_file:
        token = Path(args.auth_token_file).read_text(encoding="utf-8").strip()
        if not token:
            raise InvalidInputError(f"{args.auth_token_file} is empty", field="auth_token_file")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise InvalidInputError("give both --tls-cert and --tls-key", field="tls_cert")
    index_url = None
    index_dir = Path(args.index_dir)
    if remote.is_url(args.index_dir):
        index_url = args.index_dir
        remote.check_url(index_url)
        index_dir = Path(args.mirror_dir or remote.local_dir_for(index_url, "mirror"))
    config = ServerConfig(
        index_dir=index_dir,
        index_url=index_url,
        address=args.address,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        auth_token=token,
        auth_reads=args.auth_reads,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        workers=args.workers,
        result_cache=args.result_cache,
        processes=args.processes,
        use_lists=not args.live_ranking,
        rerank_lists=args.rerank_lists,
        write_rate=args.write_rate,
        write_burst=args.write_burst,
        event_rate=args.event_rate,
        event_burst=args.event_burst,
        http_port=args.http_port,
        cors_origins=tuple(args.cors_origin or ()),
        allow_anonymous_writes=args.allow_anonymous_writes,
        allowed_hosts=tuple(args.allowed_host or ()),
        trusted_proxies=tuple(args.trusted_proxy or ()),
    )
    if args.cors_origin and args.http_port is None:
        raise InvalidInputError("--cors-origin needs --http-port", field="cors_origin")
    if args.write_rate < 0 or args.write_burst < 1:
        raise InvalidInputError("--write-rate >= 0 and --write-burst >= 1", field="write_rate")
    if args.event_rate < 0 or args.event_burst < 1:
        raise InvalidInputError("--event-rate >= 0 and --event-burst >= 1", field="event_rate")
    return serve(config)
