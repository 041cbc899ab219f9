"""The JSON form of a stored list: each item's JSON written ahead in pieces, as its protobuf is.

The HTTP API writes a ``RelatedResponse`` as ``json.dumps`` of the message with the proto's
field names in field order (``service.httpjson.related_json``). A page view answered from a
stored list joins pieces written when the list was computed, so no Python object is built per
item at request time, and the bytes equal that writer's output (tested on every answer).

A story's fields (id, title, url, then language, date, source, section) are the same in every
list holding it and are stored once per story; the item's own fields (score, then dense and
lexical score, key terms, relation, folded) once per list slot. Field order puts the score
between the story's url and its language, so an item is four pieces::

    {"id": "...", "title": "...", "url": "...", "score":      card head    (per story)
     0.8421                                                     spec score   (per item)
    , "lang": "ar", ..., "section": "...", "dense_score":      card middle  (per story)
     0.77, "lexical_score": 0.1, "key_terms": [...], ... }     spec rest    (per item)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from json.encoder import encode_basestring  # what json.dumps(..., ensure_ascii=False) calls

import numpy as np

from recommender.v1 import recommender_pb2 as pb

_RELATION_NAMES = {value.number: value.name for value in pb.Relation.DESCRIPTOR.values}
RESULTS_OPEN = b'{"results": ['
OTHER_OPEN = b'], "other_languages": ['
SEPARATOR = b", "


def _text(value: str) -> bytes:
    """A string as ``json.dumps(value, ensure_ascii=False)`` writes it (its own function: a
    list has 13 fields per item, ~30 items)."""
    return encode_basestring(value).encode("utf-8")


def _texts(values: Iterable[str]) -> bytes:
    return b"[" + b", ".join(_text(value) for value in values) + b"]"


def _float(value: float) -> bytes:
    """A float32 field as ``json_format`` writes it: the shortest decimal that reads back as
    the same float32; non-finite values as the strings protobuf's JSON mapping uses."""
    if math.isnan(value):
        return b'"NaN"'
    if math.isinf(value):
        return b'"Infinity"' if value > 0 else b'"-Infinity"'
    return repr(float(str(np.float32(value)))).encode()  # as json.dumps writes a float


def card_pieces(message: pb.RelatedItem) -> tuple[bytes, bytes]:
    """(head, middle) of a story's item JSON: its fields before and after the score."""
    head = b"".join((
        b'{"id": ', _text(message.id), b', "title": ', _text(message.title),
        b', "url": ', _text(message.url), b', "score": ',
    ))  # fmt: skip
    middle = b"".join((
        b', "lang": ', _text(message.lang), b', "published_at": ', _text(message.published_at),
        b', "source": ', _text(message.source), b', "section": ', _text(message.section),
        b', "dense_score": ',
    ))  # fmt: skip
    return head, middle


def spec_pieces(message: pb.RelatedItem) -> tuple[bytes, bytes]:
    """(score, rest) of an item's JSON: the fields that say why it is related here."""
    rest = b"".join((
        _float(message.dense_score), b', "lexical_score": ', _float(message.lexical_score),
        b', "key_terms": ', _texts(message.key_terms),
        b', "relation": ', _text(_RELATION_NAMES[message.relation]),
        b', "folded": ', str(int(message.folded)).encode(), b"}",
    ))  # fmt: skip
    return _float(message.score), rest


def snapshot_tail(name: str) -> bytes:
    """What closes every answer from a snapshot: the other-language group and its name."""
    return b'], "snapshot": ' + _text(name) + b"}"


def answer(
    results: Iterable[tuple[bytes, bytes, bytes, bytes]],
    other: Iterable[tuple[bytes, bytes, bytes, bytes]],
    tail: bytes,
) -> bytes:
    """A whole answer from its items' (head, score, middle, rest) pieces."""
    return b"".join((
        RESULTS_OPEN, SEPARATOR.join(b"".join(item) for item in results),
        OTHER_OPEN, SEPARATOR.join(b"".join(item) for item in other), tail,
    ))  # fmt: skip
