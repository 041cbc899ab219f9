"""Command-line interface: argument parsing and error reporting only; the work is in the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

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
