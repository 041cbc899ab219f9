"""Bad input costs only itself: per-record rejections naming file, line and field, and runs
that refuse to destroy an index (issue 14, part 1)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.batch.indexing import index_sources
from recommender.config import IndexConfig
from recommender.embedding import Embedder
from recommender.errors import InvalidInputError
from recommender.index.factory import check_spec
from recommender.ingest.readers import read_articles, read_many
from recommender.ingest.records import MAX_ARTICLE_BYTES, Article, Deletion, Duplicate, Rejection
from recommender.storage.snapshot import current_name
from recommender.storage.store import ArticleStore


def good(article_id: str, title: str = "Libya signs security memoranda") -> bytes:
    record = {"id": article_id, "title": title, "lang": "en"}
    return json.dumps(record).encode() + b"\n"


HOSTILE_LINES = {
    2: b'{"id": "bad-utf8", "title": "caf\xe9 \xff"}\n',
    3: b'{"id": "deep", "title": "x", "extra": ' + b"[" * 10_000 + b"]" * 10_000 + b"}\n",
    4: b'{"id": "big-int", "title": "x", "n": ' + b"9" * 5_000 + b"}\n",
    5: b'{"id": "surrogate", "title": "x \\ud800 y"}\n',
    7: json.dumps({"id": "huge", "title": "x", "body": "y" * (MAX_ARTICLE_BYTES + 10)}).encode()
    + b"\n",
    8: b'{"id": "no-text"}\n',
    9: b"[1, 2, 3]\n",
}


def hostile_file(path: Path) -> Path:
    lines = {1: good("a"), 6: good("b"), 10: good("c")} | HOSTILE_LINES
    path.write_bytes(b"".join(lines[i] for i in sorted(lines)))
    return path


def test_each_hostile_line_is_rejected_alone_and_its_neighbours_land(tmp_path: Path) -> None:
    results = list(read_articles(hostile_file(tmp_path / "mixed.jsonl"), detect_language=False))
    assert [r.id for r in results if isinstance(r, Article)] == ["a", "b", "c"]
    rejections = {r.line: r for r in results if isinstance(r, Rejection)}
    assert sorted(rejections) == sorted(HOSTILE_LINES)
    assert all(r.file.endswith("mixed.jsonl") for r in rejections.values())
    assert rejections[2].field == "encoding" and "not UTF-8" in rejections[2].reason
    assert "nested too deeply" in rejections[3].reason
    assert rejections[4].field == "json" and "digits" in rejections[4].reason
    assert rejections[5].field == "title" and "surrogate" in rejections[5].reason
    assert rejections[7].field == "body" and "over the limit" in rejections[7].reason
    assert rejections[9].field == "record"
    # the rejects file can hold every rejection (no lone surrogates, no 2 MB records)
    for rejection in rejections.values():
        json.dumps(rejection.to_dict(), ensure_ascii=False).encode("utf-8")


def test_csv_with_a_bom_a_large_field_and_undecodable_bytes(tmp_path: Path) -> None:
    body = "word " * 40_000  # 200,000 characters: over the csv module's default field limit
    source = tmp_path / "feed.csv"
    source.write_bytes(
        b"\xef\xbb\xbfid,title,body\n"
        + f"a,First story,{body}\n".encode()
        + b"b,Caf\xe9 story,short\n"
        + b"c,Third story,short\n"
    )
    results = list(read_articles(source, detect_language=False))
    assert [r.id for r in results if isinstance(r, Article)] == ["a", "c"]
    (rejection,) = [r for r in results if isinstance(r, Rejection)]
    assert (rejection.line, rejection.field) == (3, "title")


def test_gzip_and_a_bom_in_jsonl(tmp_path: Path) -> None:
    source = tmp_path / "feed.jsonl.gz"
    with gzip.open(source, "wb") as handle:
        handle.write(b"\xef\xbb\xbf" + good("a") + good("b"))
    assert [r.id for r in read_articles(source, detect_language=False)] == ["a", "b"]


def test_an_id_read_twice_is_reported_with_both_places(tmp_path: Path) -> None:
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    first.write_bytes(good("a") + good("b"))
    second.write_bytes(good("c") + good("a", "Libya signs again"))
    results = list(read_many([first, second], detect_language=False))
    (duplicate,) = [r for r in results if isinstance(r, Duplicate)]
    assert (duplicate.id, duplicate.file, duplicate.line) == ("a", str(second), 2)
    assert (duplicate.first_file, duplicate.first_line) == (str(first), 1)
    assert "one.jsonl:1" in str(duplicate) and "later record wins" in str(duplicate)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_any_bytes_give_one_result_per_line_and_never_raise(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.jsonl"
    cleaned = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    path.write_bytes(b"".join(line + b"\n" for line in [good("anchor"), *cleaned]))
    results = list(read_articles(path, detect_language=False))
    non_empty = 1 + sum(bool(line.strip()) for line in cleaned)
    assert len(results) == non_empty
    assert isinstance(results[0], Article)
    assert all(isinstance(r, Article | Rejection | Deletion) for r in results)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    record=st.dictionaries(
        st.sampled_from(["id", "title", "lead", "body", "lang", "published_at", "tags", "url"])
        | st.text(max_size=10),
        json_values,
        max_size=8,
    )
)
def test_any_json_record_is_an_article_or_a_rejection_naming_a_field(
    tmp_path_factory: pytest.TempPathFactory, record: dict[str, object]
) -> None:
    path = tmp_path_factory.mktemp("records") / "records.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    (result,) = list(read_articles(path, detect_language=False))
    if isinstance(result, Rejection):
        assert result.line == 1 and result.field and result.reason
    else:
        assert isinstance(result, Article | Deletion)


def index(tmp_path: Path, sources: list[Path], **options: object) -> object:
    config = IndexConfig(index_dir=tmp_path / "index", progress=False, list_depth=0, **options)
    return index_sources(config, [str(s) for s in sources])


def test_an_all_rejected_source_says_so_and_keeps_the_serving_snapshot(
    tmp_path: Path, model: object
) -> None:
    model_embedder = Embedder(model=model)
    good_source = tmp_path / "good.jsonl"
    good_source.write_bytes(good("a") + good("b"))
    config = IndexConfig(index_dir=tmp_path / "index", progress=False, list_depth=0)
    index_sources(config, [str(good_source)], embedder=model_embedder)
    serving = current_name(tmp_path / "index")
    fresh = IndexConfig(index_dir=tmp_path / "fresh", progress=False, list_depth=0)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "x"}\n\xff\xfe\n')
    with pytest.raises(InvalidInputError, match="no article to index: 2 records read, 2 rejected"):
        index_sources(fresh, [str(bad)], embedder=model_embedder)
    assert current_name(tmp_path / "fresh") is None
    # --sync from an all-rejected or empty source deletes nothing
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    synced = IndexConfig(index_dir=tmp_path / "index", progress=False, list_depth=0, sync=True)
    for source in (empty, bad):
        with pytest.raises(InvalidInputError, match=r"--sync refused.*delete 2 of 2"):
            index_sources(synced, [str(source)], embedder=model_embedder)
    store = ArticleStore(tmp_path / "index" / "store.sqlite")
    try:
        assert len(store) == 2
    finally:
        store.close()
    assert current_name(tmp_path / "index") == serving


def test_a_missing_source_or_a_bad_index_type_stops_before_any_work(tmp_path: Path) -> None:
    present = tmp_path / "present.jsonl"
    present.write_bytes(good("a"))
    with pytest.raises(InvalidInputError, match=r"no such file: .*absent\.jsonl"):
        index(tmp_path, [present, tmp_path / "absent.jsonl"])
    for spec in ("HNSW0", "HNSW1,Flat", "IVF0,Flat", "IDMap,Flat", "Flat; rm -rf /", ""):
        with pytest.raises(InvalidInputError) as error:
            index(tmp_path, [present], index_type=spec)
        assert error.value.field == "index_type"
    assert not (tmp_path / "index" / "store.sqlite").exists()
    for spec in ("auto", "Flat", "HNSW32,Flat", "IVF1024,PQ64", "OPQ16_64,IVF256,PQ16"):
        check_spec(spec)
