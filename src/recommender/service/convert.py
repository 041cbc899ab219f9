"""Every conversion between protobuf messages and the engine's domain objects, both ways.

The server reads requests with the ``*_from_pb`` functions and answers with ``*_to_pb``; the
client and the CLI build requests with ``*_to_pb`` and read answers with ``*_from_pb``. The
domain objects' ``to_dict`` is the JSON form, so a local and a remote answer print the same.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from recommender.errors import InvalidInputError
from recommender.events.records import Event, event_from_fields, parse_time
from recommender.ingest.records import Article, article_from_record
from recommender.lists.wire import iso as _iso
from recommender.lists.wire import item_from_pb as item_from_pb
from recommender.lists.wire import item_to_pb as item_to_pb
from recommender.lists.wire import response_from_pb as response_from_pb
from recommender.lists.wire import response_to_pb as response_to_pb
from recommender.ranking import Filters, RankingOptions
from recommender.v1 import recommender_pb2 as pb

if TYPE_CHECKING:
    from recommender.engine import EngineStats

_DEFAULT_OPTIONS = RankingOptions()


def filters_from_pb(message: pb.Filters) -> Filters:
    """Domain filters from the request message (dates parsed, naming the field if bad)."""
    return Filters.parse(
        langs=message.langs,
        sections=message.sections,
        sources=message.sources,
        after=message.published_after,
        before=message.published_before,
        exclude_ids=message.exclude_ids,
        ids=message.ids,
    )


def filters_to_pb(filters: Filters) -> pb.Filters:
    """The request message of domain filters."""
    return pb.Filters(
        langs=filters.langs,
        sections=filters.sections,
        sources=filters.sources,
        published_after=_iso(filters.published_after),
        published_before=_iso(filters.published_before),
        exclude_ids=filters.exclude_ids,
        ids=filters.ids,
    )


def options_from_pb(
    message: pb.RankingOptions, base: RankingOptions | None = None
) -> RankingOptions:
    """Domain options: unset fields keep the measured defaults (``base``: the index model's)."""

    def given(name: str) -> Any:
        if not message.HasField(name):
            return None
        value = getattr(message, name)
        # float fields travel as float32: 0.6 arrives as 0.60000002, read it back as 0.6
        return round(value, 6) if isinstance(value, float) else value

    return RankingOptions.from_overrides(
        base=base,
        dense_weight=given("dense_weight"),
        recency_half_life_days=given("recency_half_life_days"),
        no_recency=bool(given("no_recency")),
        dedup_threshold=given("dedup_threshold"),
        no_dedup=bool(given("no_dedup")),
        mmr_lambda=given("mmr_lambda"),
        max_per_source=given("max_per_source"),
        no_other_languages=bool(given("no_other_languages")),
    )


def options_to_pb(options: RankingOptions) -> pb.RankingOptions:
    """The request message of domain options: only what differs from the defaults is set,
    so a server applies its own defaults to the rest."""
    message = pb.RankingOptions()
    default = _DEFAULT_OPTIONS
    if options.dense_weight != default.dense_weight:
        message.dense_weight = options.dense_weight
    if options.recency_half_life_days is None:
        message.no_recency = True
    elif options.recency_half_life_days != default.recency_half_life_days:
        message.recency_half_life_days = options.recency_half_life_days
    if options.dedup_threshold is None:
        message.no_dedup = True
    elif options.dedup_threshold != default.dedup_threshold:
        message.dedup_threshold = options.dedup_threshold
    if options.mmr_lambda is not None:
        message.mmr_lambda = options.mmr_lambda
    if options.max_per_source is not None:
        message.max_per_source = options.max_per_source
    if not options.other_languages:
        message.no_other_languages = True
    return message


def stats_to_pb(stats: EngineStats) -> pb.StatsResponse:
    """The serving snapshot and counts."""
    manifest = stats.manifest
    return pb.StatsResponse(
        snapshot=manifest.name,
        model=manifest.model,
        dimension=manifest.dimension,
        index_type=manifest.index_type,
        articles=stats.articles,
        built_at=manifest.built_at,
        by_lang=stats.by_lang,
        by_section=stats.by_section,
        by_source=stats.by_source,
        list_depth=stats.lists["depth"],
        lists_pending=stats.lists["pending"],
        lists_recomputed=stats.lists["recomputed"],
        events=stats.events,
    )


def event_from_pb(message: pb.Event, where: str) -> Event:
    """A checked reader event; errors name ``where`` and the field."""
    return event_from_fields(
        message.kind,
        message.reader,
        parse_time(message.time, f"{where}.time"),
        message.source,
        message.target,
        list(message.ids),
        message.position if message.HasField("position") else None,
        where=where,
    )


def article_to_pb(article: Article) -> pb.Article:
    """A stored article."""
    return pb.Article(
        id=article.id,
        title=article.title,
        lead=article.lead,
        body=article.body,
        lang=article.lang,
        published_at=_iso(article.published_at),
        url=article.url,
        source=article.source,
        section=article.section,
        tags=list(article.tags),
        metadata_json=json.dumps(article.metadata, ensure_ascii=False) if article.metadata else "",
    )


def article_from_pb(message: pb.Article, position: int) -> Article:
    """Validate an incoming article; errors name ``articles[i].field``."""
    record: dict[str, Any] = {
        "id": message.id,
        "title": message.title,
        "lead": message.lead,
        "body": message.body,
        "lang": message.lang,
        "published_at": message.published_at,
        "url": message.url,
        "source": message.source,
        "section": message.section,
        "tags": list(message.tags),
    }
    if message.metadata_json:
        try:
            metadata = json.loads(message.metadata_json)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"not JSON: {exc.msg}", field=f"articles[{position}].metadata_json"
            ) from None
        except RecursionError:
            raise InvalidInputError(
                "JSON nested too deeply", field=f"articles[{position}].metadata_json"
            ) from None
        except ValueError as exc:  # e.g. an integer of thousands of digits
            raise InvalidInputError(
                f"not usable JSON: {str(exc)[:200]}", field=f"articles[{position}].metadata_json"
            ) from None
        if not isinstance(metadata, dict):
            raise InvalidInputError(
                "must be a JSON object", field=f"articles[{position}].metadata_json"
            )
        record = {**metadata, **record}
    try:
        return article_from_record(record)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc), field=f"articles[{position}].{exc.field}") from None
