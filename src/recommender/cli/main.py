"""Command-line interface: argument parsing and error reporting only; the work is in the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from recommender import __version__
from recommender.cli.args import (
    MODEL_HELP,
    add_filter_args,
    add_ranking_args,
    filters_from_args,
    options_from_args,
)
from recommender.cli.events import add_event_commands, add_ranker_command, eval_clicks
from recommender.cli.jobs import add_job_commands
from recommender.config import LIST_DEPTH
from recommender.errors import InvalidInputError, RecommenderError

if TYPE_CHECKING:
    from recommender.engine import RelatedResponse


def _cmd_embed(args: argparse.Namespace) -> int:
    from recommender.embedding import Embedder, EmbeddingCache
    from recommender.ingest.text import DEFAULT_RECIPE

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
    from recommender.engine import Engine
    from recommender.ingest.records import parse_date_field

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
            options=options_from_args(args, engine.default_options),
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
            options=options_from_args(args, engine.default_options),
        )
    finally:
        engine.close()
    print(json.dumps(results.to_dict(), ensure_ascii=False))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from recommender import evaluation
    from recommender.embedding import Embedder, EmbeddingCache
    from recommender.embedding.profiles import default_options

    if args.kind == "clicks":
        print(json.dumps(eval_clicks(args), ensure_ascii=False))
        return 0
    cache = EmbeddingCache(Path(args.cache).expanduser())
    embedder = Embedder(args.model, cache=cache)
    options = options_from_args(args, default_options(embedder.model_name))
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
    from recommender.cli.precompute import export
    from recommender.engine import Engine
    from recommender.ingest.records import parse_date_field

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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``recommender`` command."""
    parser = argparse.ArgumentParser(
        prog="recommender",
        description="Related stories and reader recommendations for news sites.",
    )
    parser.add_argument("--version", action="version", version=f"recommender {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_job_commands(commands)  # index, serve, publish (cli_jobs)
    add_event_commands(commands)  # events import|stats|retention, forget
    add_ranker_command(commands)  # train-ranker

    embed = commands.add_parser(
        "embed",
        help="print the embedding of texts as JSON lines",
        description="Embed texts (cleaned as article text unless --raw) and print JSON lines.",
    )
    embed.add_argument("--text", action="append", help="a text to embed (repeatable)")
    embed.add_argument("--file", help="a UTF-8 file with one text per line")
    embed.add_argument("--model", help=MODEL_HELP)
    embed.add_argument("--cache", help="SQLite embedding cache file to read and fill")
    embed.add_argument("--raw", action="store_true", help="embed texts exactly as given")
    embed.add_argument("--max-values", type=int, help="print only the first N vector values")
    embed.set_defaults(handler=_cmd_embed)

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
            "coverage, diversity; parallel: cross-lingual top-1 and MRR; clicks: a MIND "
            "click log (behaviors.tsv news.tsv) replayed, AUC, MRR, nDCG@5/10 of random, "
            "popularity, content and the fitted ranker."
        ),
    )
    evaluate.add_argument("kind", choices=("pairs", "clusters", "parallel", "clicks"))
    evaluate.add_argument("file", help="JSONL (or .jsonl.gz) file; clicks: behaviors.tsv")
    evaluate.add_argument("news", nargs="?", help="clicks: MIND's news.tsv")
    evaluate.add_argument("--train-until", help="clicks: ISO 8601; impressions before train")
    evaluate.add_argument("--index-dir", help="clicks: index the news here (default: a "
                          "temporary directory)")  # fmt: skip
    evaluate.add_argument("--label", default="section", help="label field for clusters")
    evaluate.add_argument("-k", type=int, default=10, help="list length for clusters")
    evaluate.add_argument("--json", action="store_true", help="one JSON object")
    evaluate.add_argument("--model", help=MODEL_HELP)
    evaluate.add_argument(
        "--cache",
        default=str(Path("~/.cache/recommender/embeddings.sqlite")),
        help="embedding cache file",
    )
    add_ranking_args(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)

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
