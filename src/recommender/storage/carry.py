"""What a new snapshot carries over from the serving one, so a build costs what changed.

A batch run that edits 1 % of an archive used to refit the lexical model and recompute every
stored list: the cost of the archive, not of the change. When the serving snapshot was built
the same way (model, text recipe, index type, list depth, format) a new snapshot is built *on*
it instead (``Carried``): the articles whose content is unchanged (same content hash) keep
their lexical row and key-term words, the lexical model (n-gram and word idf) is kept, and the
lists builder recomputes only the lists the changes can touch (``lists.build``).

The idf is corpus statistics: kept while the archive grows or shrinks by less than
``LEXICAL_DRIFT`` of the size it was fit on, then refit (with every list recomputed), as is
everything on ``index --rebuild-lists``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.index.lexical import LexicalModel
from recommender.index.words import ArticleWords, WordTable
from recommender.ingest.text import TextRecipe
from recommender.storage.store import ArticleStore

LEXICAL_DRIFT = 0.25  # refit idf once the archive differs this much from the size fit on


@dataclass(frozen=True)
class Carried:
    """The serving snapshot a new one is built on, and what changed between them."""

    path: Path
    upserted: frozenset[int]  # int ids new or changed (content hash) since ``path``
    deleted: frozenset[int]  # int ids in ``path`` that are gone
    lexical: LexicalModel

    @property
    def name(self) -> str:
        """The snapshot's name."""
        return self.path.name


def carried_from(
    previous: Path | None,
    new_store: Path,
    *,
    manifest: dict[str, Any],
    index_spec: str,
    count: int,
) -> tuple[Carried | None, str]:
    """The snapshot in ``previous`` as the base of the one whose store copy is ``new_store``
    (and whose manifest fields and FAISS spec are given), or None and why not."""
    if previous is None or not previous.is_dir():
        return None, "no snapshot to build on"
    try:
        old = json.loads((previous / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"its manifest cannot be read: {exc}"
    for field in ("format_version", "model", "text_recipe", "list_depth"):
        if old.get(field) != manifest.get(field):
            return None, f"its {field} differs"
    if old.get("index_type") != index_spec:
        return None, "its index type differs"
    try:
        lexical = LexicalModel.load_idf(previous)
    except (OSError, ValueError, KeyError) as exc:
        return None, f"its lexical model cannot be read: {exc}"
    if abs(count - lexical.n_documents) > LEXICAL_DRIFT * lexical.n_documents:
        return None, (
            f"the archive has {count:,} articles, the lexical model was fit on "
            f"{lexical.n_documents:,}: refit"
        )
    before, after = _content_hashes(previous / "store.sqlite"), _content_hashes(new_store)
    upserted = frozenset(k for k, h in after.items() if before.get(k) != h)
    deleted = frozenset(before.keys() - after.keys())
    return Carried(previous, upserted, deleted, lexical), ""


def _content_hashes(path: Path) -> dict[int, str]:
    """Every article's content hash in a store copy, by int id."""
    store = ArticleStore(path, read_only=True)
    try:
        return store.content_hashes_by_key()
    finally:
        store.close()


def carried_lexical(
    base: Carried, store: ArticleStore, ids: np.ndarray, recipe: TextRecipe
) -> tuple[LexicalModel, sp.csr_matrix, WordTable]:
    """The lexical model, matrix and word table of a snapshot with rows ``ids`` built on
    ``base``: unchanged articles' rows copied, the others' computed with the base's idf
    (exactly what a fit of that model gives them)."""
    _, old_matrix = LexicalModel.load(base.path)
    old_words = WordTable.load(base.path)
    labels = np.load(base.path / "labels.npy")
    old_row = {int(key): row for row, key in enumerate(labels.tolist())}
    keys = ids.tolist()
    fresh = [key for key in keys if key in base.upserted or key not in old_row]
    stored = store.get_many(fresh)
    texts = [
        recipe.text(stored[key].article.title, stored[key].article.lead, stored[key].article.body)
        for key in fresh
    ]
    fresh_row = {key: len(labels) + i for i, key in enumerate(fresh)}
    stacked = sp.vstack([old_matrix, base.lexical.transform(texts)]) if texts else old_matrix
    stacked = stacked.tocsr()
    matrix = stacked[[fresh_row[k] if k in fresh_row else old_row[k] for k in keys]]
    fresh_words = dict(zip(fresh, (ArticleWords.of(t) for t in texts), strict=True))
    words = WordTable.build(
        [fresh_words[k] if k in fresh_words else old_words.row(old_row[k]) for k in keys]
    )
    return base.lexical, matrix.tocsr(), words
