"""All conversion between protobuf messages and the engine's domain objects lives here."""

from __future__ import annotations

import json
from typing import Any

from recommender.articles import Article, article_from_record, parse_date_field
from recommender.engine import RelatedItem, RelatedResponse
from recommender.errors import InvalidInputError
from recommender.ranking import Filters, RankingOptions
from recommender.v1 import recommender_pb2 as pb

_RELATIONS = {
    "follow_up": pb.FOLLOW_UP,
    "background": pb.BACKGROUND,
    "same_time": pb.SAME_TIME,
    "": pb.RELATION_UNSPECIFIED,
}


def filters_from_pb(message: pb.Filters) -> Filters:
    """Domain filters from the request message (dates parsed, naming the field if bad)."""
    return Filters(
        langs=tuple(message.langs),
        sections=tuple(message.sections),
        sources=tuple(message.sources),
        published_after=parse_date_field(message.published_after, "filters.published_after"),
        published_before=parse_date_field(message.published_before, "filters.published_before"),
        exclude_ids=tuple(message.exclude_ids),
    )


def options_from_pb(message: pb.RankingOptions) -> RankingOptions:
    """Domain options: unset fields keep the measured defaults."""

    def given(name: str) -> Any:
        return getattr(message, name) if message.HasField(name) else None

    return RankingOptions.from_overrides(
        dense_weight=given("dense_weight"),
        recency_half_life_days=given("recency_half_life_days"),
        no_recency=bool(given("no_recency")),
        dedup_threshold=given("dedup_threshold"),
        no_dedup=bool(given("no_dedup")),
        mmr_lambda=given("mmr_lambda"),
        max_per_source=given("max_per_source"),
        no_other_languages=bool(given("no_other_languages")),
    )


def item_to_pb(item: RelatedItem) -> pb.RelatedItem:
    """One result."""
    a = item.article
    return pb.RelatedItem(
        id=item.id,
        title=a.title,
        url=a.url,
        score=item.score,
        lang=a.lang,
        published_at=a.published_at.isoformat() if a.published_at else "",
        source=a.source,
        section=a.section,
        dense_score=item.dense_score,
        lexical_score=item.lexical_score,
        key_terms=list(item.key_terms),
        relation=_RELATIONS.get(item.relation, pb.RELATION_UNSPECIFIED),
        folded=item.folded,
    )


def response_to_pb(response: RelatedResponse, snapshot: str) -> pb.RelatedResponse:
    """The whole response."""
    return pb.RelatedResponse(
        results=[item_to_pb(r) for r in response.results],
        other_languages=[item_to_pb(r) for r in response.other_languages],
        snapshot=snapshot,
    )


def article_to_pb(article: Article) -> pb.Article:
    """A stored article."""
    return pb.Article(
        id=article.id,
        title=article.title,
        lead=article.lead,
        body=article.body,
        lang=article.lang,
        published_at=article.published_at.isoformat() if article.published_at else "",
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
        if not isinstance(metadata, dict):
            raise InvalidInputError(
                "must be a JSON object", field=f"articles[{position}].metadata_json"
            )
        record = {**metadata, **record}
    try:
        return article_from_record(record)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc), field=f"articles[{position}].{exc.field}") from None
