"""Command-line options shared by several commands: filters and ranking options.

Their defaults come from the dataclasses that own them (``config``, ``ranking``), so the
help text and the code cannot disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from recommender.ranking import Filters, RankingOptions


def default_of(cls: Any, name: str) -> Any:
    """The default of a dataclass field."""
    for field in dataclasses.fields(cls):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
    raise KeyError(f"{cls.__name__} has no default for {name!r}")


def add_defaulted(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    cls: Any,
    name: str,
    help: str,
    **kwargs: Any,
) -> None:
    """An option whose default (and type) is the default of a configuration field."""
    default = default_of(cls, name)
    parser.add_argument(
        flag, type=type(default), default=default, help=f"{help} (default %(default)s)", **kwargs
    )


def add_ranking_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ranking options (defaults measured, see docs/quality.md)")
    group.add_argument(
        "--dense-weight", type=float,
        help="1: dense only, 0: lexical only "
        f"(default {default_of(RankingOptions, 'dense_weight')})",
    )  # fmt: skip
    group.add_argument(
        "--recency-half-life",
        type=float,
        metavar="DAYS",
        help=f"recency decay (default {default_of(RankingOptions, 'recency_half_life_days'):g})",
    )
    group.add_argument("--no-recency", action="store_true", help="no recency decay (archives)")
    group.add_argument("--dedup-threshold", type=float, help="cosine that folds duplicates")
    group.add_argument("--no-dedup", action="store_true", help="do not fold near-duplicates")
    group.add_argument("--mmr-lambda", type=float, help="diversity: 1 = none, lower = more")
    group.add_argument("--max-per-source", type=int, help="at most N stories per source")
    group.add_argument(
        "--no-other-languages",
        action="store_true",
        help="keep the query's story in other languages in the main list",
    )


def _option_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ranking options given on the command line (None or False where not given), named
    as ``RankingOptions.from_overrides`` and the gRPC ``RankingOptions`` message name them."""
    return {
        "dense_weight": args.dense_weight,
        "recency_half_life_days": args.recency_half_life,
        "no_recency": args.no_recency,
        "dedup_threshold": args.dedup_threshold,
        "no_dedup": args.no_dedup,
        "mmr_lambda": args.mmr_lambda,
        "max_per_source": args.max_per_source,
        "no_other_languages": args.no_other_languages,
    }


MODEL_HELP = (
    "use-multilingual-v3 (default), multilingual-e5-small, their fusion "
    "use-multilingual-v3+multilingual-e5-small, a sentence-transformers folder or a Hugging "
    "Face id"
)


def options_from_args(
    args: argparse.Namespace, base: RankingOptions | None = None
) -> RankingOptions:
    """The ranking options of the command line (``base``, the model's defaults, where none
    given)."""
    return RankingOptions.from_overrides(base=base, **_option_overrides(args))


def add_filter_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument("--lang", action="append", default=[], help="only this language")
    group.add_argument("--section", action="append", default=[], help="only this section")
    group.add_argument("--source", action="append", default=[], help="only this source")
    group.add_argument("--after", help="published at or after (ISO 8601)")
    group.add_argument("--before", help="published at or before (ISO 8601)")
    group.add_argument("--exclude", action="append", default=[], help="never this id")
    group.add_argument("--candidate", action="append", default=[], metavar="ID",
                       help="rank only these ids, every one (a candidate set)")  # fmt: skip


def filters_from_args(args: argparse.Namespace) -> Filters:
    """The filters of the command line (a bad date names its flag)."""
    return Filters.parse(
        langs=args.lang,
        sections=args.section,
        sources=args.source,
        after=args.after,
        before=args.before,
        exclude_ids=args.exclude,
        ids=args.candidate,
        date_fields=("after", "before"),
    )
