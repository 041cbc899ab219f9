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


def _cmd_signals(args: argparse.Namespace) -> int:
    """The signals as serving has them now: the site's CTR, the stories with the most decayed
    clicks (with impressions and smoothed CTR), and with ``--article`` what its readers read
    next. Ids are named from the serving snapshot (int ids where it lacks them)."""
    import time

    from recommender.engine import Engine
    from recommender.events.live import ReaderEvents
    from recommender.storage.schema import int_id

    engine = Engine(args.index_dir).load()
    events = ReaderEvents(args.index_dir)
    try:
        space, now = engine.space, time.time()

        def name(key: int) -> str | int:
            row = int(space.rows_of([key])[0])
            return str(space.ids[row]) if row >= 0 else key

        with events.signals() as signals:
            top = sorted(signals.clicked, key=lambda key: -signals.clicks(key, now))[: args.k]
            report: dict[str, Any] = {
                "events": events.counts(),
                "mean_ctr": round(signals.mean_ctr, 6),
                "most_clicked": [
                    {
                        "id": name(key),
                        "clicks": round(signals.clicks(key, now), 3),
                        "impressions": round(signals.impressions(key, now), 3),
                        "ctr": round(signals.ctr(key, now), 6),
                    }
                    for key in top
                ],
            }
            if args.article:
                pairs = signals.co_read_top_of(int_id(args.article), args.k, now)
                report["read_next"] = [{"id": name(b), "readers": round(w, 3)} for b, w in pairs]
    finally:
        events.close()
        engine.close()
    print(json.dumps(report, ensure_ascii=False))
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
    signals = actions.add_parser(
        "signals", help="what the events say now: site CTR, most clicked, read next"
    )
    signals.add_argument("--article", help="also the stories its readers went on to read")
    signals.add_argument("-k", type=int, default=10, help="stories per list (default 10)")
    signals.set_defaults(handler=_cmd_signals)
    retention = actions.add_parser("retention", help="set how many days events are kept")
    retention.add_argument("days", type=float, help="days (0: for ever)")
    retention.set_defaults(handler=_cmd_retention)
    for parser in (loader, stats, signals, retention):
        parser.add_argument("--index-dir", required=True, help="index directory")

    forget = commands.add_parser(
        "forget",
        help="delete every event of one reader (GDPR erasure)",
        description="Delete every stored event of one reader key, at once.",
    )
    forget.add_argument("--reader", required=True, help="the site's reader key")
    forget.add_argument("--index-dir", required=True, help="index directory")
    forget.set_defaults(handler=_cmd_forget)


def eval_clicks(args: argparse.Namespace) -> dict[str, Any]:
    """``eval clicks BEHAVIORS NEWS``: index the news (``--index-dir``, else a temporary
    directory), replay the log (kept apart from any index's own events) and score it."""
    import tempfile
    from pathlib import Path

    from recommender.batch.indexing import index_sources
    from recommender.cli.args import options_from_args
    from recommender.config import IndexConfig
    from recommender.engine import Engine
    from recommender.evaluation.clicks import evaluate_clicks
    from recommender.evaluation.simulator import news_records
    from recommender.events.imports import import_events
    from recommender.events.log import EventLog
    from recommender.events.records import parse_time

    if not args.news:
        raise InvalidInputError("give the news.tsv beside behaviors.tsv", field="news")
    with tempfile.TemporaryDirectory(prefix="eval-clicks-") as scratch:
        work = Path(scratch)
        records = news_records(Path(args.news).read_text(encoding="utf-8"))
        articles = work / "news.jsonl"
        articles.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        index_dir = Path(args.index_dir) if args.index_dir else work / "index"
        config = IndexConfig(index_dir=index_dir, model_name=args.model, progress=False,
                             list_depth=0, max_rejects=len(records))  # fmt: skip
        summary = index_sources(config, [str(articles)])
        log = EventLog(work / "events")
        log.set_retention(0)
        stored, rejections = import_events(log, args.file, "mind")
        for rejection in rejections[:SHOWN_REJECTS]:
            print(f"rejected: {rejection}", file=sys.stderr)
        engine = Engine(index_dir).load()
        try:
            options = options_from_args(args, engine.default_options)
            until = parse_time(args.train_until or "", "train_until")
            result = evaluate_clicks(engine.space, log.events(), options, until)
        finally:
            engine.close()
            log.close()
    result.update(news=summary.articles, events=stored, rejected_lines=len(rejections))
    return result


def _cmd_train_ranker(args: argparse.Namespace) -> int:
    from recommender.engine import Engine
    from recommender.evaluation.clicks import score_clicks
    from recommender.events.records import parse_time
    from recommender.events.training import replay, train

    engine = Engine(args.index_dir).load()
    log = _open(args)
    try:
        since = parse_time(args.since or "", "since") or 0.0
        shown = list(replay(engine.space, log.events(since=since), engine.default_options))
        # held out first (the last fifth of the impressions), then fit on everything
        validation = score_clicks(shown)
        ranker = train(shown, {"validation": validation["methods"]})
        path = ranker.save(args.index_dir)
    finally:
        log.close()
        engine.close()
    print(json.dumps({"saved": str(path), "examples": ranker.examples,
                      "validation": validation["methods"]}))  # fmt: skip
    return 0


def add_ranker_command(commands: Any) -> None:
    """``train-ranker``."""
    trainer = commands.add_parser(
        "train-ranker",
        help="fit the click ranker on the index's events; serving picks it up",
        description="Replay the index's events, fit a ranker of (context, story) pairs on "
        "its impressions (clicked vs shown, position as a feature), report it on the last "
        "fifth held out, fit on all and save it beside the index (rankers/). Recommend "
        "uses the newest one within seconds.",
    )  # fmt: skip
    trainer.add_argument("--index-dir", required=True, help="index directory")
    trainer.add_argument("--since", help="ISO 8601: only events at or after")
    trainer.set_defaults(handler=_cmd_train_ranker)
