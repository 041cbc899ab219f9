from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Relation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELATION_UNSPECIFIED: _ClassVar[Relation]
    FOLLOW_UP: _ClassVar[Relation]
    BACKGROUND: _ClassVar[Relation]
    SAME_TIME: _ClassVar[Relation]
RELATION_UNSPECIFIED: Relation
FOLLOW_UP: Relation
BACKGROUND: Relation
SAME_TIME: Relation

class Filters(_message.Message):
    __slots__ = ("langs", "sections", "sources", "published_after", "published_before", "exclude_ids", "ids")
    LANGS_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AFTER_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    langs: _containers.RepeatedScalarFieldContainer[str]
    sections: _containers.RepeatedScalarFieldContainer[str]
    sources: _containers.RepeatedScalarFieldContainer[str]
    published_after: str
    published_before: str
    exclude_ids: _containers.RepeatedScalarFieldContainer[str]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, langs: _Optional[_Iterable[str]] = ..., sections: _Optional[_Iterable[str]] = ..., sources: _Optional[_Iterable[str]] = ..., published_after: _Optional[str] = ..., published_before: _Optional[str] = ..., exclude_ids: _Optional[_Iterable[str]] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RankingOptions(_message.Message):
    __slots__ = ("dense_weight", "recency_half_life_days", "dedup_threshold", "no_dedup", "mmr_lambda", "max_per_source", "no_other_languages", "no_recency")
    DENSE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    RECENCY_HALF_LIFE_DAYS_FIELD_NUMBER: _ClassVar[int]
    DEDUP_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NO_DEDUP_FIELD_NUMBER: _ClassVar[int]
    MMR_LAMBDA_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    NO_OTHER_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    NO_RECENCY_FIELD_NUMBER: _ClassVar[int]
    dense_weight: float
    recency_half_life_days: float
    dedup_threshold: float
    no_dedup: bool
    mmr_lambda: float
    max_per_source: int
    no_other_languages: bool
    no_recency: bool
    def __init__(self, dense_weight: _Optional[float] = ..., recency_half_life_days: _Optional[float] = ..., dedup_threshold: _Optional[float] = ..., no_dedup: _Optional[bool] = ..., mmr_lambda: _Optional[float] = ..., max_per_source: _Optional[int] = ..., no_other_languages: _Optional[bool] = ..., no_recency: _Optional[bool] = ...) -> None: ...

class Examples(_message.Message):
    __slots__ = ("positive_ids", "negative_ids")
    POSITIVE_IDS_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_IDS_FIELD_NUMBER: _ClassVar[int]
    positive_ids: _containers.RepeatedScalarFieldContainer[str]
    negative_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, positive_ids: _Optional[_Iterable[str]] = ..., negative_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RelatedRequest(_message.Message):
    __slots__ = ("article_id", "text", "examples", "k", "filters", "options", "lang", "published_at")
    ARTICLE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    article_id: str
    text: str
    examples: Examples
    k: int
    filters: Filters
    options: RankingOptions
    lang: str
    published_at: str
    def __init__(self, article_id: _Optional[str] = ..., text: _Optional[str] = ..., examples: _Optional[_Union[Examples, _Mapping]] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., options: _Optional[_Union[RankingOptions, _Mapping]] = ..., lang: _Optional[str] = ..., published_at: _Optional[str] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("history_ids", "k", "filters", "options", "reader")
    HISTORY_IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    READER_FIELD_NUMBER: _ClassVar[int]
    history_ids: _containers.RepeatedScalarFieldContainer[str]
    k: int
    filters: Filters
    options: RankingOptions
    reader: str
    def __init__(self, history_ids: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., options: _Optional[_Union[RankingOptions, _Mapping]] = ..., reader: _Optional[str] = ...) -> None: ...

class RelatedItem(_message.Message):
    __slots__ = ("id", "title", "url", "score", "lang", "published_at", "source", "section", "dense_score", "lexical_score", "key_terms", "relation", "folded")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    DENSE_SCORE_FIELD_NUMBER: _ClassVar[int]
    LEXICAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    KEY_TERMS_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    FOLDED_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    url: str
    score: float
    lang: str
    published_at: str
    source: str
    section: str
    dense_score: float
    lexical_score: float
    key_terms: _containers.RepeatedScalarFieldContainer[str]
    relation: Relation
    folded: int
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., url: _Optional[str] = ..., score: _Optional[float] = ..., lang: _Optional[str] = ..., published_at: _Optional[str] = ..., source: _Optional[str] = ..., section: _Optional[str] = ..., dense_score: _Optional[float] = ..., lexical_score: _Optional[float] = ..., key_terms: _Optional[_Iterable[str]] = ..., relation: _Optional[_Union[Relation, str]] = ..., folded: _Optional[int] = ...) -> None: ...

class RelatedResponse(_message.Message):
    __slots__ = ("results", "other_languages", "snapshot")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    OTHER_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RelatedItem]
    other_languages: _containers.RepeatedCompositeFieldContainer[RelatedItem]
    snapshot: str
    def __init__(self, results: _Optional[_Iterable[_Union[RelatedItem, _Mapping]]] = ..., other_languages: _Optional[_Iterable[_Union[RelatedItem, _Mapping]]] = ..., snapshot: _Optional[str] = ...) -> None: ...

class GetArticleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Article(_message.Message):
    __slots__ = ("id", "title", "lead", "body", "lang", "published_at", "url", "source", "section", "tags", "metadata_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LEAD_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    lead: str
    body: str
    lang: str
    published_at: str
    url: str
    source: str
    section: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata_json: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., lead: _Optional[str] = ..., body: _Optional[str] = ..., lang: _Optional[str] = ..., published_at: _Optional[str] = ..., url: _Optional[str] = ..., source: _Optional[str] = ..., section: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("articles",)
    ARTICLES_FIELD_NUMBER: _ClassVar[int]
    articles: _containers.RepeatedCompositeFieldContainer[Article]
    def __init__(self, articles: _Optional[_Iterable[_Union[Article, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("added", "updated", "unchanged")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    added: int
    updated: int
    unchanged: int
    def __init__(self, added: _Optional[int] = ..., updated: _Optional[int] = ..., unchanged: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("snapshot", "model", "dimension", "index_type", "articles", "built_at", "by_lang", "by_section", "by_source", "list_depth", "lists_pending", "lists_recomputed", "events")
    class ByLangEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class BySectionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class BySourceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class EventsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    ARTICLES_FIELD_NUMBER: _ClassVar[int]
    BUILT_AT_FIELD_NUMBER: _ClassVar[int]
    BY_LANG_FIELD_NUMBER: _ClassVar[int]
    BY_SECTION_FIELD_NUMBER: _ClassVar[int]
    BY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LIST_DEPTH_FIELD_NUMBER: _ClassVar[int]
    LISTS_PENDING_FIELD_NUMBER: _ClassVar[int]
    LISTS_RECOMPUTED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    snapshot: str
    model: str
    dimension: int
    index_type: str
    articles: int
    built_at: str
    by_lang: _containers.ScalarMap[str, int]
    by_section: _containers.ScalarMap[str, int]
    by_source: _containers.ScalarMap[str, int]
    list_depth: int
    lists_pending: int
    lists_recomputed: int
    events: _containers.ScalarMap[str, int]
    def __init__(self, snapshot: _Optional[str] = ..., model: _Optional[str] = ..., dimension: _Optional[int] = ..., index_type: _Optional[str] = ..., articles: _Optional[int] = ..., built_at: _Optional[str] = ..., by_lang: _Optional[_Mapping[str, int]] = ..., by_section: _Optional[_Mapping[str, int]] = ..., by_source: _Optional[_Mapping[str, int]] = ..., list_depth: _Optional[int] = ..., lists_pending: _Optional[int] = ..., lists_recomputed: _Optional[int] = ..., events: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("kind", "reader", "time", "source", "ids", "target", "position")
    KIND_FIELD_NUMBER: _ClassVar[int]
    READER_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    reader: str
    time: str
    source: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    target: str
    position: int
    def __init__(self, kind: _Optional[str] = ..., reader: _Optional[str] = ..., time: _Optional[str] = ..., source: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., target: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...
