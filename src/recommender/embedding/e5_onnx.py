"""multilingual-e5-small on ONNX Runtime: fp32, or int8 where the CPU runs it well.

PyTorch runs e5 at a cost a news site cannot pay for its whole archive (cold indexing 7x
slower than USE). This module exports the sentence-transformers folder that ``embedding.e5``
builds to one ONNX graph (the transformer, mean pooling and L2 normalisation inside), once,
beside that folder, and quantises it with ONNX Runtime's dynamic int8 quantisation
(per-channel weights, the token table included). Both files are built under temporary names
and renamed into place, and their digests enter the model's identity, so vectors from
different runtimes never mix in an embedding cache or an index.

Measured choices (``docs/quality.md``, "e5 on ONNX Runtime"):

- the feed-forward output projections of the last two layers stay float: they carry the
  outliers int8 rounds worst (worst parity cosine 0.9951 with them float);
- texts are cut at 64 tokens (title, lead and the first lines: where a news article states
  its story): 3.2x the speed of 256 tokens, and in the default fusion (USE reads the whole
  text) story-level Spearman 0.7368 against 0.7389 at 256 and 0.7400 at 128; cold indexing
  with the fusion reaches the speed a site can pay only at this cut (``docs/quality.md``,
  "e5 on ONNX Runtime");
- on x86 the int8 weights use 7 bits (``reduce_range``). Without VNNI the AVX2 kernel
  multiplies u8 x s8 pairs into saturating 16-bit sums, which 8-bit weights can overflow; with
  VNNI (measured on an Intel Xeon with AVX-512 VNNI and AMX, 448 parity texts) 8-bit weights
  left a German text at cosine 0.9857 to fp32 and four texts under 0.99, 7-bit weights at worst
  0.9926, at the same speed (1.88 s and 1.93 s for the set). 8 bits stay for 64-bit ARM.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch
from sentence_transformers.base.modules import InputModule

from recommender.embedding.use import prompted_texts
from recommender.files import sha256_file

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

VARIANTS = ("int8", "int8-reduced", "fp32")
MAX_TOKENS = 64
EXPORT_VERSION = 1
# bumped when the way the graph is run changes the vectors (2: one text per run)
RUN_VERSION = 2
FP32_FILE = "model-fp32.onnx"
# the feed-forward output projections (``output.dense``) of these layers stay float
FLOAT_LAYERS = (4, 5)
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# a character worth reading: not white space, not an invisible format or control character
_READABLE = re.compile(r"[^\s\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff\x00-\x1f\x7f]")


def cpu_variant(flags: set[str] | None = None, machine: str | None = None) -> str:
    """The variant this CPU runs best: ``int8`` on 64-bit ARM, ``int8-reduced`` (7-bit
    weights) on x86 with AVX2 or VNNI, else ``fp32`` (see the module doc for why)."""
    machine = (machine or platform.machine()).lower()
    if machine in ("arm64", "aarch64"):
        return "int8"
    if flags is None:
        flags = _cpu_flags()
    if "avx2" in flags or any(flag in flags for flag in _VNNI_FLAGS):
        return "int8-reduced"
    return "fp32"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _export_fp32(model_dir: Path, target: Path) -> None:
    """The folder's BertModel with mean pooling and normalisation, as one ONNX graph."""
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False)
    bert.eval()  # type: ignore[no-untyped-call]

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    ids = torch.tensor([[0, 1000, 2000, 2], [0, 3000, 2, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    with torch.inference_mode():
        torch.onnx.export(
            Pooled(),
            (ids, mask),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def _float_nodes(fp32_path: Path) -> list[str]:
    """Names of the MatMul nodes that stay float (``FLOAT_LAYERS``' FFN output projections)."""
    import onnx

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    wanted = [f"layer.{n}/output/dense/MatMul" for n in FLOAT_LAYERS]
    return [node.name for node in graph.node if any(node.name.endswith(w) for w in wanted)]


def _quantise(fp32_path: Path, target: Path, *, reduce_range: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep_float = _float_nodes(fp32_path)
    if len(keep_float) != len(FLOAT_LAYERS):
        raise RuntimeError(f"{fp32_path}: expected {len(FLOAT_LAYERS)} float nodes: {keep_float}")
    quantize_dynamic(
        str(fp32_path),
        str(target),
        op_types_to_quantize=["MatMul", "Gather"],
        per_channel=True,
        reduce_range=reduce_range,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=keep_float,
    )


def _build_once(target: Path, write: Any) -> Path:
    """``write(path)`` into a temporary name beside ``target``, renamed into place."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging / target.name)
        os.replace(staging / target.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def onnx_file(model_dir: Path, variant: str) -> Path:
    """The ONNX file of a variant for the e5 folder ``model_dir``, built on first use."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown e5 variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    folder = model_dir / f"onnx-v{EXPORT_VERSION}"
    fp32 = _build_once(folder / FP32_FILE, lambda path: _export_fp32(model_dir, path))
    if variant == "fp32":
        return fp32
    reduced = variant == "int8-reduced"
    return _build_once(
        folder / f"model-{variant}.onnx",
        lambda path: _quantise(fp32, path, reduce_range=reduced),
    )


class OnnxE5(InputModule):
    """e5 on an ONNX Runtime session: tokenisation, graph, unit vectors out."""

    config_keys: list[str] = ["fingerprint", "max_tokens"]  # noqa: RUF012 - ST API
    save_in_root = True

    def __init__(
        self, onnx_path: str, tokenizer_path: str, fingerprint: str, max_tokens: int = MAX_TOKENS
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.onnx_path = onnx_path
        self.fingerprint = fingerprint
        self.max_tokens = max_tokens
        self.tokenizer_file = Tokenizer.from_file(tokenizer_path)
        self.tokenizer_file.enable_truncation(max_tokens)
        self.pad_id = self.tokenizer_file.token_to_id("<pad>") or 1
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # one inference at a time per process uses all cores; torch's setting is the site's
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

    def get_embedding_dimension(self) -> int:
        """384: e5-small's hidden size."""
        return 384

    def preprocess(
        self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """Token ids (cut at ``max_tokens``) and the attention mask, padded to the longest."""
        texts = prompted_texts(inputs, prompt, "multilingual-e5-small")
        # nothing readable embeds to zero, as under USE: e5's vector of a bare prompt sits
        # close to every short text, so an empty article would look related to all
        empty = [_READABLE.search(text) is None for text in inputs]
        encodings = self.tokenizer_file.encode_batch(texts)
        width = max((len(e.ids) for e in encodings), default=0)
        ids = np.full((len(texts), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "is_empty": torch.tensor(empty, dtype=torch.bool),
        }

    def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
        """Run the graph one text at a time, unpadded; its output is pooled and normalised.

        One text per run: int8 quantises activations with one scale per run, so in a batch a
        text's vector would depend on its neighbours (cosine 0.997 to itself alone); alone,
        a text gets the same vector in a live upsert and in any batch, and no padding is
        computed. Measured: ~8 % slower than batches of 16 sorted by length.
        """
        ids = features["input_ids"].numpy()
        lengths = features["attention_mask"].numpy().sum(axis=1)
        vectors = np.empty((len(ids), self.get_embedding_dimension()), dtype=np.float32)
        for row, length in enumerate(lengths):
            one = ids[row : row + 1, :length]
            feeds = {"input_ids": one, "attention_mask": np.ones_like(one)}
            (vectors[row : row + 1],) = self.session.run(["sentence_embedding"], feeds)
        out = torch.from_numpy(vectors)
        features["sentence_embedding"] = out.masked_fill(features["is_empty"].unsqueeze(1), 0.0)
        return features

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        """Not saved: the folder is rebuilt from the installed package (``load_onnx_e5``)."""
        raise NotImplementedError("save the e5 folder's sentence-transformers model instead")

    @classmethod
    def load(cls, model_name_or_path: str, *args: Any, **kwargs: Any) -> Self:
        raise NotImplementedError("load e5 with recommender.embedding.load_model")


def _digest(path: Path) -> str:
    """The file's sha256 prefix, kept beside it (hashing 470 MB on every load costs a second)."""
    kept = path.with_name(path.name + ".sha256")
    if kept.is_file() and kept.stat().st_mtime >= path.stat().st_mtime:
        return kept.read_text().strip()
    digest = sha256_file(str(path))[:12]
    kept.write_text(digest)
    return digest


def load_onnx_e5(
    variant: str | None = None, device: str | None = None, max_tokens: int = MAX_TOKENS
) -> SentenceTransformer:
    """A ``SentenceTransformer`` running e5 on ONNX Runtime (``variant``: the CPU's best)."""
    from sentence_transformers import SentenceTransformer

    from recommender.embedding import e5

    variant = variant or cpu_variant()
    model_dir = e5.build_model_dir()
    path = onnx_file(model_dir, variant)
    built = (model_dir / "fingerprint").read_text().strip()
    fingerprint = (
        f"{built}-onnx{EXPORT_VERSION}r{RUN_VERSION}-{variant}-{_digest(path)}-t{max_tokens}"
    )
    module = OnnxE5(str(path), str(model_dir / "tokenizer.json"), fingerprint, max_tokens)
    model = SentenceTransformer(modules=[module], device=device or "cpu")
    # set after construction: the constructor logs a notice for every load with a default
    model.prompts = dict(e5.PROMPTS)
    model.default_prompt_name = e5.DEFAULT_PROMPT
    return model
