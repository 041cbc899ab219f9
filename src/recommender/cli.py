"""Command-line interface: argument parsing and error reporting only; the work is in the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from recommender import __version__
from recommender.cli_args import (
    add_defaulted,
    add_filter_args,
    add_ranking_args,
    default_of,
    filters_from_args,
    options_from_args,
)
from recommender.config import LIST_DEPTH, IndexConfig, ServerConfig
from recommender.errors import InvalidInputError, RecommenderError

if TYPE_CHECKING:
    from recommender.engine import RelatedResponse


def _cmd_embed(args: argparse.Namespace) -> int:
    from recommender.embedding import Embedder, EmbeddingCache
    from recommender.text import DEFAULT_RECIPE

    texts: list[str] = list(args.text or [])
    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            texts.extend(line.rstrip("\n") for line in handle)
    if not texts:
        raise InvalidInputError("nothing to embed: give --text or --file", field="text")
    cache = EmbeddingCache(args.cache) if args.cache else None
    embedder = Embedder(args.model, cache=cache)
    prepared = [DEFAULT_RECIPE.text(t) if not args.raw else t for t in texts]
    vectors = embedder.embed(prepared)
    for text, vector in zip(texts, vectors, strict=True):
        values = vector.tolist()
        if args.max_values is not None:
            values = values[: args.max_values]
        record = {"text": text, "model": embedder.identity, "dimension": embedder.dimension}
        record["vector"] = [round(v, 6) for v in values]
        print(json.dumps(record, ensure_ascii=False))
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from recommender import remote
    from recommender.indexing import index_sources

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
    summary = index_sources(config, args.sources)
    if url is not None:  # the work directory's snapshot, uploaded: files first, CURRENT last
        summary.published_to = f"{url} ({remote.publish(local, url)})"
    for duplicate in summary.duplicate_notes[:20]:
        print(f"duplicate: {duplicate}", file=sys.stderr)
    if summary.duplicates > 20:
        print(f"... and {summary.duplicates - 20} more duplicate ids", file=sys.stderr)
    for rejection in summary.rejections[:20]:
        print(f"rejected: {rejection}", file=sys.stderr)
    if summary.rejected > 20:
        print(f"... and {summary.rejected - 20} more in {summary.rejects_file}", file=sys.stderr)
    print(json.dumps(summary.to_dict(), ensure_ascii=False))
    if summary.rejected > config.max_rejects:
        print(
            f"recommender index: {summary.rejected} records rejected (allowed: "
            f"{config.max_rejects}); see {summary.rejects_file}",
            file=sys.stderr,
        )
        return InvalidInputError.exit_code
    return 0


def _related_remote(args: argparse.Namespace) -> RelatedResponse:
    from recommender.client import RecommenderClient
    from recommender.service import convert

    token = Path(args.token_file).read_text(encoding="utf-8").strip() if args.token_file else None
    with RecommenderClient(args.server, token=token) as client:
        message = client.related(
            article_id=args.id,
            text=args.text,
            positive_ids=args.positive or (),
            negative_ids=args.negative or (),
            k=args.k,
            filters=convert.filters_to_pb(filters_from_args(args)),
            # only the options given travel: the server's defaults apply to the rest
            options=convert.options_to_pb(options_from_args(args)),
            published_at=args.published_at or "",
        )
    return convert.response_from_pb(message)


def _print_related(results: RelatedResponse, as_json: bool) -> None:
    if as_json:
        print(json.dumps(results.to_dict(), ensure_ascii=False))
        return
    for rank, item in enumerate(results.results, start=1):
        a = item.article
        terms = ", ".join(item.key_terms)
        print(f"{rank:>3}. {item.score:.3f}  {item.id}  [{a.lang}] {item.relation}  {a.title}")
        if terms:
            print(f"        shared: {terms}")
    if results.other_languages:
        print("  same story in other languages:")
        for item in results.other_languages:
            print(f"       {item.dense_score:.3f}  {item.id}  [{item.article.lang}]")


def _cmd_related(args: argparse.Namespace) -> int:
    from recommender.articles import parse_date_field
    from recommender.engine import Engine

    if args.server:
        _print_related(_related_remote(args), args.json)
        return 0
    if not args.index_dir:
        raise InvalidInputError("give --index-dir or --server", field="index_dir")
    engine = Engine(args.index_dir).load()
    try:
        results = engine.related(
            article_id=args.id,
            text=args.text,
            positive_ids=tuple(args.positive or ()),
            negative_ids=tuple(args.negative or ()),
            k=args.k,
            filters=filters_from_args(args),
            options=options_from_args(args),
            published_at=parse_date_field(args.published_at, "published_at"),
        )
    finally:
        engine.close()
    _print_related(results, args.json)
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from recommender.engine import Engine

    engine = Engine(args.index_dir).load()
    try:
        results = engine.recommend(
            args.history,
            k=args.k,
            filters=filters_from_args(args),
            options=options_from_args(args),
        )
    finally:
        engine.close()
    print(json.dumps(results.to_dict(), ensure_ascii=False))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from recommender import evaluation
    from recommender.embedding import Embedder, EmbeddingCache

    cache = EmbeddingCache(Path(args.cache).expanduser())
    embedder = Embedder(args.model, cache=cache)
    options = options_from_args(args)
    if args.kind == "pairs":
        result = evaluation.eval_pairs(args.file, embedder, options)
    elif args.kind == "clusters":
        result = evaluation.eval_clusters(
            args.file, embedder, label=args.label, k=args.k, options=options
        )
    else:
        result = evaluation.eval_parallel(args.file, embedder, options)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from recommender.engine import Engine

    engine = Engine(args.index_dir).load()
    try:
        print(json.dumps(engine.stats().to_dict(), ensure_ascii=False, indent=2))
    finally:
        engine.close()
    return 0


def _cmd_precompute(args: argparse.Namespace) -> int:
    from recommender.articles import parse_date_field
    from recommender.engine import Engine
    from recommender.precompute import export

    since = parse_date_field(args.since, "since")
    if not 1 <= args.k <= LIST_DEPTH:
        raise InvalidInputError(f"must be between 1 and {LIST_DEPTH}", field="k")
    # writable: the working store's changes since the snapshot are part of the lists
    engine = Engine(args.index_dir, writable=True).load()
    try:
        if not engine.wait_for_lists(timeout=3600):
            raise RecommenderError("the lists changed since the snapshot were not recomputed")
        count = export(engine, Path(args.out), args.k, since)
    finally:
        engine.close()
    print(json.dumps({"written": count, "out": args.out}))
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from recommender import remote
    from recommender.indexing import index_sources

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
    from recommender import remote
    from recommender.service.server import serve

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
        write_rate=args.write_rate,
        write_burst=args.write_burst,
        http_port=args.http_port,
        cors_origins=tuple(args.cors_origin or ()),
    )
    if args.cors_origin and args.http_port is None:
        raise InvalidInputError("--cors-origin needs --http-port", field="cors_origin")
    if args.write_rate < 0 or args.write_burst < 1:
        raise InvalidInputError("--write-rate >= 0 and --write-burst >= 1", field="write_rate")
    return serve(config)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``recommender`` command."""
    parser = argparse.ArgumentParser(
        prog="recommender",
        description="Related stories and reader recommendations for news sites.",
    )
    parser.add_argument("--version", action="version", version=f"recommender {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    embed = commands.add_parser(
        "embed",
        help="print the embedding of texts as JSON lines",
        description="Embed texts (cleaned as article text unless --raw) and print JSON lines.",
    )
    embed.add_argument("--text", action="append", help="a text to embed (repeatable)")
    embed.add_argument("--file", help="a UTF-8 file with one text per line")
    embed.add_argument("--model", help="model name or path (default: use-multilingual-v3)")
    embed.add_argument("--cache", help="SQLite embedding cache file to read and fill")
    embed.add_argument("--raw", action="store_true", help="embed texts exactly as given")
    embed.add_argument("--max-values", type=int, help="print only the first N vector values")
    embed.set_defaults(handler=_cmd_embed)

    index = commands.add_parser(
        "index",
        help="index articles (JSONL, JSONL.gz, CSV, - for stdin) into a new snapshot",
        description=(
            "Read articles, embed the new and changed ones, update the store and publish a "
            "new snapshot atomically. Exits 2 when more records were rejected than allowed."
        ),
    )
    index.add_argument("sources", nargs="+", metavar="SOURCE", help="article files, or -")
    index.add_argument(
        "--index-dir", required=True,
        help="index directory, or an fsspec URL to publish to (file://, s3://, ...)",
    )  # fmt: skip
    index.add_argument(
        "--work-dir", metavar="DIR",
        help="with a URL: the local directory of the working store and builds "
        "(default: ~/.cache/recommender/work/<digest of the URL>)",
    )  # fmt: skip
    index.add_argument("--model", help="model name or path (default: the index's, else USE)")
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

    related = commands.add_parser(
        "related",
        help="related stories for an article id or raw text",
        description="Print the stories most related to an indexed article or to raw text.",
    )
    related.add_argument("--index-dir", help="index directory (or --server)")
    related.add_argument("--server", metavar="HOST:PORT", help="ask a running gRPC service")
    related.add_argument("--token-file", help="bearer token for --server with --auth-reads")
    query = related.add_mutually_exclusive_group(required=True)
    query.add_argument("--id", help="id of an indexed article")
    query.add_argument("--text", help="raw text (an article not indexed)")
    query.add_argument("--positive", nargs="+", metavar="ID", help="example ids to resemble")
    related.add_argument("--negative", nargs="+", metavar="ID", help="example ids to move from")
    related.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    related.add_argument("--published-at", help="date of --text (recency counts from it)")
    related.add_argument("--json", action="store_true", help='print {"results": [...]}')
    add_filter_args(related)
    add_ranking_args(related)
    related.set_defaults(handler=_cmd_related)

    recommend = commands.add_parser(
        "recommend",
        help="stories for a reader from the ids they read",
        description="Print JSON recommendations from a reading history (oldest id first).",
    )
    recommend.add_argument("--index-dir", required=True, help="index directory")
    recommend.add_argument("history", nargs="+", metavar="ID", help="ids read, oldest first")
    recommend.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    add_filter_args(recommend)
    add_ranking_args(recommend)
    recommend.set_defaults(handler=_cmd_recommend)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate relevance on labelled data (pairs, clusters, parallel)",
        description=(
            "pairs: correlation with human scores; clusters: same-label precision@k, "
            "coverage, diversity; parallel: cross-lingual top-1 and MRR."
        ),
    )
    evaluate.add_argument("kind", choices=("pairs", "clusters", "parallel"))
    evaluate.add_argument("file", help="JSONL (or .jsonl.gz) file")
    evaluate.add_argument("--label", default="section", help="label field for clusters")
    evaluate.add_argument("-k", type=int, default=10, help="list length for clusters")
    evaluate.add_argument("--json", action="store_true", help="one JSON object")
    evaluate.add_argument("--model", help="model name or path (default: use-multilingual-v3)")
    evaluate.add_argument(
        "--cache",
        default=str(Path("~/.cache/recommender/embeddings.sqlite")),
        help="embedding cache file",
    )
    add_ranking_args(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)

    serve = commands.add_parser(
        "serve",
        help="serve an index over gRPC (recommender.v1.Recommender)",
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
    serve.add_argument("--tls-cert", help="PEM certificate chain")
    serve.add_argument("--tls-key", help="PEM private key")
    serve.add_argument(
        "--live-ranking", action="store_true",
        help="rank every request live, stored lists unused (for comparisons)",
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

    precompute = commands.add_parser(
        "precompute",
        help="write every article's related list as JSON lines (static sites)",
        description=(
            "Write each article's default related list, as Related by id returns it, one JSON "
            "line per article (gzip when OUT ends in .gz); with --since only the lists that "
            "changed at or after that time."
        ),
    )
    precompute.add_argument("--index-dir", required=True, help="index directory")
    precompute.add_argument("--out", required=True, help="output file (.jsonl or .jsonl.gz)")
    precompute.add_argument("--since", help="ISO 8601 time: only lists changed since")
    precompute.add_argument("-k", type=int, default=10, help="results per article (default 10)")
    precompute.set_defaults(handler=_cmd_precompute)

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

    inspect = commands.add_parser(
        "inspect",
        help="show the serving snapshot's manifest and counts",
        description="Print the manifest and counts by language, source and section as JSON.",
    )
    inspect.add_argument("--index-dir", required=True, help="index directory")
    inspect.set_defaults(handler=_cmd_inspect)
    return parser


def _check_utf8(args: argparse.Namespace) -> None:
    """Arguments that are not UTF-8 (Python keeps their bytes as lone surrogates) are named
    here, not met as an encoding traceback deep inside."""
    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise InvalidInputError(
                        f"is not valid UTF-8 (byte {exc.start + 1})", field=f"--{name}"
                    ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see ``recommender.errors``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_utf8(args)
        return int(args.handler(args))
    except RecommenderError as exc:
        where = f"{exc.field}: " if isinstance(exc, InvalidInputError) and exc.field else ""
        print(f"recommender {args.command}: error: {where}{exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"recommender {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
