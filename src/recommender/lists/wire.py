"""The wire form of a related list: ``RelatedItem`` and ``RelatedResponse`` as protobuf
messages, both ways. Stored lists keep their items already encoded (``stored``), and the
service and the client convert with the same functions (``service.convert`` re-exports them),
so a stored answer and a live one are the same bytes.
"""

from __future__ import annotations

from datetime import datetime

from recommender.ingest.records import Article, parse_date_field
from recommender.ranking import Relation
from recommender.requests.explain import RelatedItem, RelatedResponse
from recommender.v1 import recommender_pb2 as pb

_RELATIONS = {
    Relation.FOLLOW_UP: pb.FOLLOW_UP,
    Relation.BACKGROUND: pb.BACKGROUND,
    Relation.SAME_TIME: pb.SAME_TIME,
    Relation.UNKNOWN: pb.RELATION_UNSPECIFIED,
}
_RELATIONS_BACK = {value: key for key, value in _RELATIONS.items()}


def item_to_pb(item: RelatedItem) -> pb.RelatedItem:
    """One result."""
    a = item.article
    return pb.RelatedItem(
        id=item.id,
        title=a.title,
        url=a.url,
        score=item.score,
        lang=a.lang,
        published_at=iso(a.published_at),
        source=a.source,
        section=a.section,
        dense_score=item.dense_score,
        lexical_score=item.lexical_score,
        key_terms=list(item.key_terms),
        relation=_RELATIONS[item.relation],
        folded=item.folded,
    )


def item_from_pb(message: pb.RelatedItem) -> RelatedItem:
    """One result as the engine returns it (the article holds the fields the message has)."""
    article = Article(
        id=message.id,
        title=message.title,
        url=message.url,
        lang=message.lang,
        published_at=parse_date_field(message.published_at, "published_at"),
        source=message.source,
        section=message.section,
    )
    return RelatedItem(
        id=message.id,
        score=message.score,
        article=article,
        dense_score=message.dense_score,
        lexical_score=message.lexical_score,
        key_terms=tuple(message.key_terms),
        relation=_RELATIONS_BACK.get(message.relation, Relation.UNKNOWN),
        folded=message.folded,
    )


def response_to_pb(response: RelatedResponse, snapshot: str) -> pb.RelatedResponse:
    """The whole response."""
    return pb.RelatedResponse(
        results=[item_to_pb(r) for r in response.results],
        other_languages=[item_to_pb(r) for r in response.other_languages],
        snapshot=snapshot,
    )


def response_from_pb(message: pb.RelatedResponse) -> RelatedResponse:
    """The whole response as the engine returns it."""
    return RelatedResponse(
        [item_from_pb(r) for r in message.results],
        [item_from_pb(r) for r in message.other_languages],
    )


def iso(value: datetime | None) -> str:
    """A date as the wire carries it (empty: unknown)."""
    return value.isoformat() if value is not None else ""


def varint(value: int) -> bytes:
    """A protobuf varint (the length of a length-delimited field)."""
    if value < 0x80:  # items are a few hundred bytes: one or two bytes
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]
# the varint of every item size below 16 KiB (an item is a few hundred bytes), computed once
SMALL_VARINTS = [*_ONE_BYTE, *(bytes(((i & 0x7F) | 0x80, i >> 7)) for i in range(0x80, 0x4000))]
