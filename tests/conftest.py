"""Shared fixtures: the real default model is loaded once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EVAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
# Fixtures that load the real model: a test using one is slow (make unit-fast leaves it out)
_MODEL_FIXTURES = {"model", "sample_index"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def model() -> SentenceTransformer:
    from recommender.embedding import load_model

    return load_model()


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not EVAL_DIR.is_dir():
        pytest.skip(f"shared evaluation corpora not found at {EVAL_DIR}")
    return EVAL_DIR


ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "articles.jsonl"


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, model) -> Path:
    """The sample corpus indexed once with the real model (do not modify it in a test)."""
    from recommender.config import IndexConfig
    from recommender.embedding import Embedder
    from recommender.indexing import index_sources

    index_dir = tmp_path_factory.mktemp("sample-index")
    summary = index_sources(
        IndexConfig(index_dir=index_dir, progress=False), [str(SAMPLE)], Embedder(model=model)
    )
    assert summary.rejected == 0 and summary.snapshot_built
    return index_dir
