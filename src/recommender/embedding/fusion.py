"""A fusion of models (``"a+b"``) as one sentence-transformers model.

``load_model("use-multilingual-v3+multilingual-e5-small")`` returns a ``SentenceTransformer``
whose only module holds the parts' own models: ``encode`` gives each text's fused vector (the
parts' unit vectors scaled by ``sqrt(weight)`` and concatenated, see ``profiles``), so a
fusion is used like any model. ``Embedder`` takes the parts out of it to embed and cache
each part on its own (a change of weights then re-embeds nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers.base.modules import InputModule

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Fusion(InputModule):
    """The parts' models and weights; texts in, fused unit vectors out."""

    def __init__(
        self, name: str, parts: Sequence[tuple[str, SentenceTransformer]], weights: Sequence[float]
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.name = name
        self.part_names = [part for part, _ in parts]
        self.models = torch.nn.ModuleList([model for _, model in parts])
        self.weights = tuple(weights)

    def get_embedding_dimension(self) -> int:
        """The sum of the parts' dimensions."""
        models: list[Any] = list(self.models)
        return sum(int(m.get_embedding_dimension() or 0) for m in models)

    def preprocess(
        self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """The texts themselves: each part tokenises them its own way (and adds its prompt)."""
        return {"texts": list(inputs)}

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Each part's unit vectors, scaled by ``sqrt(weight)``, side by side."""
        texts = features["texts"]
        pieces = []
        models: list[Any] = list(self.models)
        for model, weight in zip(models, self.weights, strict=True):
            vectors = np.asarray(model.encode(texts, batch_size=max(1, len(texts))), np.float32)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            np.divide(vectors, norms, out=vectors, where=norms > 0)
            pieces.append(np.sqrt(weight) * vectors)
        features["sentence_embedding"] = torch.from_numpy(np.hstack(pieces).astype(np.float32))
        return features

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        """Not saved: a fusion is rebuilt from its parts' names."""
        raise NotImplementedError("a fusion is loaded by its name; save its parts instead")
