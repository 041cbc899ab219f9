"""``recommender events ...`` and ``recommender forget``: the reader event log from the shell
(the server takes events over gRPC and HTTP; these work beside it, SQLite sharing the file)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from recommender.errors import InvalidInputError

SHOWN_REJECTS = 20


def _open(args: argparse.Namespace) -> Any:
    from recommender.events.log import EventLog

    return EventLog(args.index_dir)


def _cmd_import(args: argparse.Namespace) -> int:
    from recommender.events.imports import import_events

    log = _open(args)
    try:
        if args.retention_days is not None:
            log.set_retention(args.retention_days)
        stored, rejections = import_events(log, args.file, args.format)
        log.prune()
        counts = log.counts()
    finally:
        log.close()
    for rejection in rejections[:SHOWN_REJECTS]:
        print(f"rejected: {rejection}", file=sys.stderr)
    if len(rejections) > SHOWN_REJECTS:
        print(f"... and {len(rejections) - SHOWN_REJECTS} more rejected", file=sys.stderr)
    print(json.dumps({"stored": stored, "rejected": len(rejections), "events": counts}))
    if len(rejections) > args.max_rejects:
        raise InvalidInputError(
            f"{len(rejections)} lines rejected (--max-rejects {args.max_rejects}); the "
            f"{stored} valid events were stored",
            field="file",
        )
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    log = _open(args)
    try:
        print(json.dumps({"events": log.counts(), "retention_days": log.retention_days}))
    finally:
        log.close()
    return 0


def _cmd_retention(args: argparse.Namespace) -> int:
    log = _open(args)
    try:
        log.set_retention(args.days)
        print(json.dumps({"retention_days": log.retention_days, "events": log.counts()}))
    finally:
        log.close()
    return 0


def _cmd_forget(args: argparse.Namespace) -> int:
    log = _open(args)
    try:
        print(json.dumps({"forgotten": log.forget(args.reader)}))
    finally:
        log.close()
    return 0


def add_event_commands(commands: Any) -> None:
    """``events import|stats|retention`` and ``forget`` on the CLI's subparsers."""
    events = commands.add_parser(
        "events",
        help="the reader event log: import logged events, counts, retention",
        description="Reader events (impressions, clicks, reads) stored beside the index.",
    )
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    loader = actions.add_parser(
        "import",
        help="load events from JSONL or MIND's behaviors.tsv",
        description="Append logged events: JSONL (one event object a line, as POST "
        "/v1/events takes them) or MIND's behaviors.tsv. Bad lines are reported with file, "
        "line and field; the valid ones are stored.",
    )  # fmt: skip
    loader.add_argument("file", help="events file")
    loader.add_argument("--format", choices=("auto", "jsonl", "mind"), default="auto")
    loader.add_argument("--retention-days", type=float,
                        help="keep events this many days from now on (0: for ever; default "
                        "30, or what was set before); old logs need 0 or a long one")  # fmt: skip
    loader.add_argument("--max-rejects", type=int, default=0,
                        help="fail when more lines than this are rejected")  # fmt: skip
    loader.set_defaults(handler=_cmd_import)
    stats = actions.add_parser("stats", help="events stored by kind, and the retention")
    stats.set_defaults(handler=_cmd_stats)
    retention = actions.add_parser("retention", help="set how many days events are kept")
    retention.add_argument("days", type=float, help="days (0: for ever)")
    retention.set_defaults(handler=_cmd_retention)
    for parser in (loader, stats, retention):
        parser.add_argument("--index-dir", required=True, help="index directory")

    forget = commands.add_parser(
        "forget",
        help="delete every event of one reader (GDPR erasure)",
        description="Delete every stored event of one reader key, at once.",
    )
    forget.add_argument("--reader", required=True, help="the site's reader key")
    forget.add_argument("--index-dir", required=True, help="index directory")
    forget.set_defaults(handler=_cmd_forget)
