"""Reading and validating articles: every bad record is named by file, line and field."""

from __future__ import annotations

import gzip
import json

import pytest

from recommender.errors import InvalidInputError
from recommender.ingest.readers import read_articles
from recommender.ingest.records import Article, Deletion, Rejection, parse_datetime


def _write_jsonl(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_valid_records_land_and_bad_ones_are_rejected_with_line_and_field(tmp_path):
    source = _write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"id": "ok-1", "title": "Libya signs memoranda", "lang": "en"},
            {"title": "no id"},
            "{not json",
            {"id": "bad-date", "title": "x", "published_at": "yesterday"},
            {"id": "bad-tags", "title": "x", "tags": "politics"},
            {"id": "no-text", "title": "", "body": "<p> </p>"},
            {"id": "bad-lang", "title": "x", "lang": "english"},
            {"id": "ok-2", "body": "نص عربي عن ليبيا", "published_at": "2020-08-18", "extra": 1},
        ],
    )
    results = list(read_articles(source, detect_language=True))
    articles = [r for r in results if isinstance(r, Article)]
    rejections = {r.line: r for r in results if isinstance(r, Rejection)}
    assert [a.id for a in articles] == ["ok-1", "ok-2"]
    assert {line: r.field for line, r in rejections.items()} == {
        2: "id",
        3: "json",
        4: "published_at",
        5: "tags",
        6: "body",
        7: "lang",
    }
    assert str(rejections[4]).startswith(f"{source}:4: field 'published_at'")
    assert articles[1].lang == "ar"  # detected, offline
    assert articles[1].metadata == {"extra": 1}
    assert articles[1].published_at.isoformat() == "2020-08-18T00:00:00+00:00"


def test_gzip_csv_and_deletions(tmp_path):
    gz = tmp_path / "a.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "g", "title": "Gzip title", "lang": "en"}) + "\n")
        handle.write(json.dumps({"id": "old", "deleted": True}) + "\n")
    got = list(read_articles(gz))
    assert isinstance(got[0], Article) and got[0].id == "g"
    assert got[1] == Deletion("old", str(gz), 2)

    csv_path = tmp_path / "a.csv"
    csv_path.write_text(
        "id,title,lang,tags,published_at\n"
        "c1,Hello world,en,a|b,2020-01-02T03:04:05+02:00\n"
        ",Missing id,en,,\n",
        encoding="utf-8",
    )
    rows = list(read_articles(csv_path))
    assert rows[0].tags == ("a", "b")
    assert isinstance(rows[1], Rejection) and rows[1].line == 3 and rows[1].field == "id"


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        list(read_articles(tmp_path / "nope.jsonl"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-08-18", "2020-08-18T00:00:00+00:00"),
        ("2020-08-18T10:30:00", "2020-08-18T10:30:00+00:00"),
        ("2020-08-18T10:30:00Z", "2020-08-18T10:30:00+00:00"),
        ("2020-08-18T10:30:00+02:00", "2020-08-18T10:30:00+02:00"),
    ],
)
def test_dates_with_or_without_time_and_offset(text, expected):
    assert parse_datetime(text).isoformat() == expected


def test_content_hash_changes_with_any_field():
    a = Article(id="x", title="t")
    assert a.content_hash() == Article(id="x", title="t").content_hash()
    assert a.content_hash() != Article(id="x", title="t", url="u").content_hash()
