"""The protobuf boundary, both ways: what the server sends is what the client and CLI read.

Round trips through the conversions module and the JSON form; no model, no server.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from recommender.engine import RelatedItem, RelatedResponse
from recommender.ingest.records import Article
from recommender.ranking import Filters, RankingOptions, Relation
from recommender.service import convert


def item(relation: Relation = Relation.FOLLOW_UP, published: datetime | None = None) -> RelatedItem:
    article = Article(
        id="tripoli-visit",
        title="زيارة وزير الخارجية الألماني إلى طرابلس",
        url="https://example.org/tripoli",
        lang="ar",
        published_at=published,
        source="sample-wire",
        section="politics",
    )
    return RelatedItem(
        id=article.id,
        score=0.723456789,
        article=article,
        dense_score=0.8123456,
        lexical_score=0.3,
        key_terms=("طرابلس", "ليبيا"),
        relation=relation,
        folded=2,
    )


@pytest.mark.parametrize("relation", list(Relation))
def test_an_item_survives_the_wire_and_prints_the_same(relation):
    original = item(relation, datetime(2020, 1, 20, 9, 30, tzinfo=UTC))
    back = convert.item_from_pb(convert.item_to_pb(original))
    assert back.to_dict() == original.to_dict()
    assert back.relation is relation
    assert RelatedItem.from_dict(original.to_dict()).to_dict() == original.to_dict()


def test_a_response_survives_the_wire_with_both_groups():
    response = RelatedResponse([item(), item(Relation.UNKNOWN)], [item(Relation.BACKGROUND)])
    message = convert.response_to_pb(response, "snap-1")
    assert message.snapshot == "snap-1"
    back = convert.response_from_pb(message)
    assert back.to_dict() == response.to_dict()
    assert RelatedResponse.from_dict(response.to_dict()).to_dict() == response.to_dict()


def test_filters_round_trip_with_dates():
    filters = Filters(
        langs=("ar", "en"),
        sections=("politics",),
        sources=("wire",),
        published_after=datetime(2020, 1, 1, tzinfo=UTC),
        published_before=datetime(2020, 12, 31, 23, 59, tzinfo=UTC),
        exclude_ids=("a", "b"),
    )
    assert convert.filters_from_pb(convert.filters_to_pb(filters)) == filters
    assert convert.filters_from_pb(convert.filters_to_pb(Filters())) == Filters()


@pytest.mark.parametrize(
    "options",
    [
        RankingOptions(),
        RankingOptions(dense_weight=0.6),  # the default given explicitly
        RankingOptions(dense_weight=0.35, recency_half_life_days=7.5, dedup_threshold=0.85),
        RankingOptions(recency_half_life_days=None, dedup_threshold=None),
        RankingOptions(mmr_lambda=0.7, max_per_source=3, other_languages=False),
    ],
)
def test_options_round_trip_and_only_changes_travel(options):
    message = convert.options_to_pb(options)
    assert convert.options_from_pb(message) == options
    if options == RankingOptions():
        assert message.ListFields() == []  # the server applies its own defaults


def test_an_article_round_trips_with_its_metadata():
    article = Article(
        id="x",
        title="T",
        lead="L",
        body="B",
        lang="en",
        published_at=datetime(2020, 5, 1, tzinfo=UTC),
        url="https://news.example.org/x",
        source="s",
        section="c",
        tags=("a", "b"),
        metadata={"author": "N"},
    )
    assert convert.article_from_pb(convert.article_to_pb(article), 0) == article
