"""Results as readers and callers see them: each related story with why it is related.

``build_response`` turns ranked positions of a candidate pool into ``RelatedItem``s: the
article (without its body), the final, dense and lexical scores, the key terms it shares with
the query (rarest first), its relation in time, and how many near-duplicates were folded in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.ingest.records import Article, parse_datetime
from recommender.ranking import RankedList, Relation, time_relation
from recommender.requests.candidates import Candidates
from recommender.requests.queries import Query
from recommender.rowspace.space import RowSpace


@dataclass(frozen=True)
class RelatedItem:
    """One related story, with why it is related.

    ``article`` holds every field but the body (a list of links does not need it, and cached
    answers stay small); ``Engine.get_article`` returns the whole article.
    """

    id: str
    score: float
    article: Article
    dense_score: float = 0.0
    lexical_score: float = 0.0
    key_terms: tuple[str, ...] = ()
    relation: Relation = Relation.UNKNOWN
    folded: int = 0  # near-duplicates of this story left out of the list

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: id, title, score, the article's metadata and the explanation."""
        a = self.article
        return {
            "id": self.id,
            "title": a.title,
            "score": _rounded(self.score),
            "url": a.url,
            "lang": a.lang,
            "published_at": a.published_at.isoformat() if a.published_at else None,
            "source": a.source,
            "section": a.section,
            "dense_score": _rounded(self.dense_score),
            "lexical_score": _rounded(self.lexical_score),
            "key_terms": list(self.key_terms),
            "relation": self.relation.value,
            "folded": self.folded,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RelatedItem:
        """The inverse of ``to_dict`` (the article's other fields stay empty)."""
        published = data.get("published_at")
        article = Article(
            id=data["id"],
            title=data.get("title", ""),
            url=data.get("url", ""),
            lang=data.get("lang", ""),
            published_at=parse_datetime(published) if published else None,
            source=data.get("source", ""),
            section=data.get("section", ""),
        )
        return cls(
            id=data["id"],
            score=float(data.get("score", 0.0)),
            article=article,
            dense_score=float(data.get("dense_score", 0.0)),
            lexical_score=float(data.get("lexical_score", 0.0)),
            key_terms=tuple(data.get("key_terms", ())),
            relation=Relation(data.get("relation", "")),
            folded=int(data.get("folded", 0)),
        )


@dataclass(frozen=True)
class RelatedResponse:
    """The ranked list, and the query's own story in other languages."""

    results: list[RelatedItem]
    other_languages: list[RelatedItem] = field(default_factory=list)

    def __iter__(self) -> Any:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "results": [r.to_dict() for r in self.results],
            "other_languages": [r.to_dict() for r in self.other_languages],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RelatedResponse:
        """The inverse of ``to_dict``."""
        return cls(
            [RelatedItem.from_dict(r) for r in data.get("results", ())],
            [RelatedItem.from_dict(r) for r in data.get("other_languages", ())],
        )


def build_response(
    space: RowSpace, query: Query, found: Candidates, ranked: RankedList
) -> RelatedResponse:
    """The ranked positions of ``found`` as explained results (one store read for all)."""
    keys, pool = found.keys, found.pool
    wanted = [keys[i] for i in [*ranked.main, *ranked.other_languages]]
    if query.text_key is not None:
        wanted.append(query.text_key)  # the query article's words come with the results
    # body-less reads: key terms come from the snapshot's word table, and articles written
    # since the snapshot (whose words are read from their text) come whole from the overlay
    articles = space.articles(wanted, body=False)
    query_article = articles.get(query.text_key) if query.text_key is not None else None
    if query.text_key is not None and query_article is not None:
        query_words = space.words(query.text_key, query_article)
    else:
        query_words = space.lexical_model.words_of(query.text)
    key_terms = space.lexical_model.key_terms_against(query_words)

    def item(position: int) -> RelatedItem | None:
        article = articles.get(keys[position])
        if article is None:
            return None
        words = space.words(keys[position], article)
        return RelatedItem(
            id=article.id,
            score=float(ranked.scores[position]),
            article=dataclasses.replace(article, body=""),
            dense_score=float(pool.dense[position]),
            lexical_score=float(pool.lexical[position]),
            key_terms=tuple(key_terms.of(words)),
            relation=time_relation(float(pool.published_ts[position]), query.reference_ts),
            folded=ranked.folded.get(position, 0),
        )

    results = [r for r in map(item, ranked.main) if r is not None]
    other = [r for r in map(item, ranked.other_languages) if r is not None]
    return RelatedResponse(results, other)


def _rounded(score: float) -> float:
    # scores travel as float32 over gRPC: round at that precision, so a local and a remote
    # answer print the same
    return round(float(np.float32(score)), 6)
