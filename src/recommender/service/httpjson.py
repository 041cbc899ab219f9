"""The JSON side of the HTTP API: request messages from a URL's query string or a JSON body
(``google.api.http`` conventions, shorthands for the filters a page asks for most), and
response messages written as JSON with the proto's field names (``httpapi`` routes)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from recommender.errors import InvalidInputError
from recommender.v1 import recommender_pb2 as pb

# Results when a request gives no ``k`` (gRPC requires it; a URL typed by hand should not)
DEFAULT_K = 10
# GET /v1/articles/{id}/related: short names for the filters a page asks for most
SHORTHANDS = {
    "lang": "filters.langs",
    "section": "filters.sections",
    "source": "filters.sources",
    "exclude_id": "filters.exclude_ids",
    "id": "filters.ids",
    "published_after": "filters.published_after",
    "published_before": "filters.published_before",
}


def message_json(message: Message) -> dict[str, Any]:
    """A message as the HTTP API writes it: proto field names, every field present."""
    data: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return data


_RELATION_NAMES = {value.number: value.name for value in pb.Relation.DESCRIPTOR.values}


def related_json(message: pb.RelatedResponse) -> dict[str, Any]:
    """``message_json`` of a RelatedResponse, four times faster: the page-view path. Floats
    are written as ``json_format`` writes them, the shortest decimal that reads back as the same
    float32 (numpy's float32 ``str``). Measured on every stored answer of ANT at k=10 and 30
    (63,232): identical output, 107 us against 446 us per answer."""
    items = [*message.results, *message.other_languages]
    scores = np.array(
        [value for m in items for value in (m.score, m.dense_score, m.lexical_score)],
        dtype=np.float32,
    )
    if not np.isfinite(scores).all():  # json_format writes "NaN" / "Infinity": let it
        return message_json(message)
    shortest = iter([float(str(value)) for value in scores])

    def item(m: pb.RelatedItem) -> dict[str, Any]:
        return {
            "id": m.id, "title": m.title, "url": m.url, "score": next(shortest),
            "lang": m.lang, "published_at": m.published_at, "source": m.source,
            "section": m.section, "dense_score": next(shortest),
            "lexical_score": next(shortest), "key_terms": list(m.key_terms),
            "relation": _RELATION_NAMES[m.relation], "folded": m.folded,
        }  # fmt: skip

    return {
        "results": [item(m) for m in message.results],
        "other_languages": [item(m) for m in message.other_languages],
        "snapshot": message.snapshot,
    }


def related_from_query(article_id: str, params: list[tuple[str, str]]) -> pb.RelatedRequest:
    """The RelatedRequest of ``GET /v1/articles/{id}/related?...``; a bad parameter names
    itself."""
    request = pb.RelatedRequest(article_id=article_id, k=DEFAULT_K)
    for name, value in params:
        _set_path(request, SHORTHANDS.get(name, name), value, name)
    return request


def _set_path(message: Message, path: str, value: str, name: str) -> None:
    parts = path.split(".")
    target = message
    for part in parts[:-1]:
        field = target.DESCRIPTOR.fields_by_name.get(part)
        if field is None or field.type != FieldDescriptor.TYPE_MESSAGE or _repeated(field):
            raise InvalidInputError("unknown query parameter", field=name)
        target = getattr(target, part)
    field = target.DESCRIPTOR.fields_by_name.get(parts[-1])
    if field is None or field.type == FieldDescriptor.TYPE_MESSAGE or field.name == "article_id":
        raise InvalidInputError("unknown query parameter", field=name)
    parsed = _scalar(field, value, name)
    if _repeated(field):
        getattr(target, field.name).append(parsed)
    else:
        setattr(target, field.name, parsed)


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _scalar(field: FieldDescriptor, value: str, name: str) -> Any:
    kind = field.type
    try:
        if kind == FieldDescriptor.TYPE_BOOL:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
            number = int(value)
            if not -(2**31) <= number < 2**31:
                raise ValueError
            return number
        if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return float(value)
    except ValueError:
        expected = {FieldDescriptor.TYPE_BOOL: "true or false"}.get(kind, "a number")
        raise InvalidInputError(f"{value[:60]!r} is not {expected}", field=name) from None
    return value


def body_message(raw: bytes, message_type: type[Message]) -> Message:
    """The request message of a JSON body (``k`` defaults to ``DEFAULT_K`` where it exists)."""
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"not JSON: {str(exc)[:200]}", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInputError("must be a JSON object", field="body")
    if "k" in message_type.DESCRIPTOR.fields_by_name and data.get("k") is None:
        data["k"] = DEFAULT_K  # absent or null (JSON's "no value") alike
    try:
        return json_format.ParseDict(data, message_type())
    except json_format.ParseError as exc:
        raise InvalidInputError(str(exc)[:300], field="body") from None
