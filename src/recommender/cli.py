"""Command-line interface: argument parsing and error reporting only; the work is in the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from recommender import __version__
from recommender.errors import InvalidInputError, RecommenderError


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
    from recommender.config import IndexConfig
    from recommender.indexing import index_sources

    config = IndexConfig(
        index_dir=Path(args.index_dir),
        model_name=args.model,
        index_type=args.index_type,
        batch_size=args.batch_size,
        keep_snapshots=args.keep,
        max_rejects=args.max_rejects,
        sync=args.sync,
        progress=not args.quiet,
    )
    summary = index_sources(config, args.sources)
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


def _cmd_related(args: argparse.Namespace) -> int:
    from recommender.engine import Engine

    engine = Engine(args.index_dir).load()
    try:
        results = engine.related(article_id=args.id, text=args.text, k=args.k)
    finally:
        engine.close()
    if args.json:
        print(json.dumps({"results": [r.to_dict() for r in results]}, ensure_ascii=False))
    else:
        for rank, item in enumerate(results, start=1):
            a = item.article
            print(f"{rank:>3}. {item.score:.3f}  {item.id}  [{a.lang}]  {a.title}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from recommender.engine import Engine

    engine = Engine(args.index_dir).load()
    try:
        print(json.dumps(engine.stats(), ensure_ascii=False, indent=2))
    finally:
        engine.close()
    return 0


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
    index.add_argument("--index-dir", required=True, help="index directory")
    index.add_argument("--model", help="model name or path (default: the index's, else USE)")
    index.add_argument(
        "--index-type", default="auto", help="auto (Flat, HNSW above 50k) or a FAISS factory string"
    )
    index.add_argument("--batch-size", type=int, default=256, help="articles per commit")
    index.add_argument("--keep", type=int, default=3, help="snapshots to keep")
    index.add_argument("--max-rejects", type=int, default=0, help="rejected records allowed")
    index.add_argument(
        "--sync", action="store_true", help="sources are the whole archive: delete the rest"
    )
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    index.set_defaults(handler=_cmd_index)

    related = commands.add_parser(
        "related",
        help="related stories for an article id or raw text",
        description="Print the stories most related to an indexed article or to raw text.",
    )
    related.add_argument("--index-dir", required=True, help="index directory")
    query = related.add_mutually_exclusive_group(required=True)
    query.add_argument("--id", help="id of an indexed article")
    query.add_argument("--text", help="raw text (an article not indexed)")
    related.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    related.add_argument("--json", action="store_true", help='print {"results": [...]}')
    related.set_defaults(handler=_cmd_related)

    inspect = commands.add_parser(
        "inspect",
        help="show the serving snapshot's manifest and counts",
        description="Print the manifest and counts by language, source and section as JSON.",
    )
    inspect.add_argument("--index-dir", required=True, help="index directory")
    inspect.set_defaults(handler=_cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see ``recommender.errors``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except RecommenderError as exc:
        print(f"recommender {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"recommender {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
