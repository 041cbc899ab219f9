"""The SQLite store: upsert replaces, delete removes everywhere, changes are counted."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.errors import InvalidInputError
from recommender.ingest.records import Article
from recommender.storage.schema import int_id
from recommender.storage.store import ArticleStore


def test_upsert_replace_delete_and_changes(tmp_path):
    store = ArticleStore(tmp_path / "s.sqlite")
    a, b = Article(id="a", title="A", lang="en"), Article(id="b", title="B", lang="ar")
    vectors = np.eye(2, 4, dtype=np.float32)
    outcome = store.upsert([a, b], "m", vectors, [b"ha", b"hb"])
    assert outcome.added == ["a", "b"] and len(store) == 2
    seq = store.seq

    again = store.upsert([Article(id="a", title="A2", lang="en"), b], "m", vectors, [b"x", b"hb"])
    assert again.updated == ["a"] and again.unchanged == ["b"]
    assert store.get("a").article.title == "A2"
    assert store.changes_since(seq) == ([int_id("a")], [])

    assert store.delete(["b", "missing"]) == ["b"]
    assert store.get("b") is None
    ids, _ = store.vectors("m")
    assert list(ids) == [int_id("a")]
    assert store.changes_since(seq)[1] == [int_id("b")]
    assert store.facet_counts("lang") == {"en": 1}


def test_writes_survive_reopening_and_int_ids_are_stable(tmp_path):
    path = tmp_path / "s.sqlite"
    store = ArticleStore(path)
    store.upsert([Article(id="x", title="T", tags=("a",), metadata={"k": 1})])
    store.close()
    reopened = ArticleStore(path)
    stored = reopened.get("x")
    assert stored.int_id == int_id("x") and stored.article.tags == ("a",)
    assert stored.article.metadata == {"k": 1}
    # the same integer on every machine and every rebuild (SHA-256 based, not Python's hash)
    assert int_id("x") == 3274422879871479876 and 0 <= int_id("x") < 2**63


def test_a_store_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    ArticleStore(path).close()
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(InvalidInputError, match="schema 99") as error:
        ArticleStore(path)
    assert error.value.field == "store"


def test_summaries_leave_the_body_out(tmp_path):
    store = ArticleStore(tmp_path / "s.sqlite")
    store.upsert([Article(id="x", title="T", body="long body")])
    assert store.get_many([int_id("x")])[int_id("x")].article.body == "long body"
    assert store.get_many([int_id("x")], body=False)[int_id("x")].article.body == ""
    assert store.get_many([int_id("x")], body=False)[int_id("x")].article.title == "T"


def test_backup_is_a_consistent_read_only_copy(tmp_path):
    store = ArticleStore(tmp_path / "s.sqlite")
    store.upsert([Article(id="x", title="T")])
    store.backup_to(tmp_path / "copy.sqlite")
    store.upsert([Article(id="y", title="U")])
    copy = ArticleStore(tmp_path / "copy.sqlite", read_only=True)
    assert len(copy) == 1 and copy.get("x") is not None
