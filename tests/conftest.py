"""Shared fixtures: the real default model is loaded once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EVAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def model() -> SentenceTransformer:
    from recommender.embedding import load_model

    return load_model()


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not EVAL_DIR.is_dir():
        pytest.skip(f"shared evaluation corpora not found at {EVAL_DIR}")
    return EVAL_DIR
