"""multilingual-e5-small on ONNX Runtime: the variant per CPU, parity of int8 with fp32 on the
multilingual parity set and on the story-level pairs, and identities that keep caches apart."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import kept_array
from multilingual_texts import build

from recommender.embedding import e5_onnx
from recommender.embedding.e5_onnx import cpu_variant

E5 = "multilingual-e5-small"


def test_the_variant_follows_the_cpu():
    # x86: 7-bit weights. AVX2 alone saturates 16-bit sums of u8 x s8 with 8-bit weights; with
    # VNNI 8-bit weights left texts under cosine 0.99 to fp32, 7-bit ones did not, same speed
    assert cpu_variant({"avx2", "avx512_vnni", "amx_int8"}, "x86_64") == "int8-reduced"
    assert cpu_variant({"avx2", "avx_vnni"}, "x86_64") == "int8-reduced"
    assert cpu_variant({"avx2", "fma"}, "x86_64") == "int8-reduced"
    assert cpu_variant({"sse4_2"}, "x86_64") == "fp32"
    assert cpu_variant(set(), "aarch64") == "int8"


@pytest.fixture(scope="module")
def variants():
    from recommender.embedding.e5_onnx import load_onnx_e5

    chosen = cpu_variant()
    if chosen == "fp32":
        pytest.skip("this CPU runs e5 in fp32: there is no int8 variant to compare")
    return load_onnx_e5("fp32"), load_onnx_e5(chosen)


@pytest.mark.slow
def test_int8_and_fp32_agree_on_every_text_of_the_parity_set(variants):
    fp32, int8 = variants
    pairs = build()
    texts = [text for _, text in pairs]
    key = f"{fp32[0].fingerprint}:{hashlib.sha256(json.dumps(texts).encode()).hexdigest()}"
    reference = kept_array("e5-onnx-fp32-parity", key, lambda: fp32.encode(texts))
    ours = int8.encode(texts, batch_size=16)
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    cosines = (ours * reference).sum(axis=1)
    worst = int(np.argmin(cosines))
    print(f"int8 vs fp32 on {len(texts)} texts: min {cosines.min():.5f} mean {cosines.mean():.5f}")
    assert cosines.min() >= 0.99, f"text {worst} {pairs[worst]!r:.80}: cosine {cosines[worst]}"


@pytest.mark.slow
def test_int8_ranks_the_story_pairs_as_fp32_does(variants, eval_dir):
    """Story-level Spearman (the product's question) within 0.005 of fp32."""
    from recommender.embedding import Embedder
    from recommender.embedding.profiles import default_options
    from recommender.evaluation import eval_pairs

    fp32, int8 = variants
    pairs = eval_dir / "story-pairs.jsonl"
    options = default_options(E5)

    class Kept(Embedder):
        """Vectors kept across sessions under the model's identity (the graph's digest, the
        variant, the cut) and the digest of the code that runs it: any change to either
        embeds again, as the engine's own embedding cache would (1,458 long texts: minutes)."""

        def embed(self, texts, show_progress_bar=False):
            code = hashlib.sha256(Path(e5_onnx.__file__).read_bytes()).hexdigest()
            key = f"{self.identity}:{code}:{hashlib.sha256(json.dumps(texts).encode()).hexdigest()}"
            return kept_array("e5-onnx-story", key, lambda: super(Kept, self).embed(texts))

    reference = eval_pairs(pairs, Kept(E5, model=fp32), options)
    ours = eval_pairs(pairs, Kept(E5, model=int8), options)
    print(f"story pairs: fp32 {reference['spearman']}, int8 {ours['spearman']}")
    assert ours["n"] == reference["n"] >= 700
    assert abs(ours["spearman"] - reference["spearman"]) <= 0.005


@pytest.mark.slow
def test_each_variant_has_its_own_identity(variants):
    from recommender.embedding import Embedder

    fp32, int8 = variants
    identities = {Embedder(E5, model=fp32).identity, Embedder(E5, model=int8).identity}
    assert len(identities) == 2
    assert all(i.startswith(f"{E5}@") and i.endswith(f"-t{e5_onnx.MAX_TOKENS}") for i in identities)


LIBYA_AR = "ليبيا توقع مذكرات تفاهم أمنية وعسكرية مع تركيا وقطر ومالطا"
TRIPOLI_AR = "زيارة وزير الخارجية الألماني إلى طرابلس: ماذا تعني؟"
WUHAN_AR = "في ووهان حيث بدأ كورونا، الحياة تعود إلى طبيعتها"


@pytest.fixture(scope="module")
def e5_default():
    """The e5 of the default fusion, as loaded by name."""
    from recommender.embedding import load_model

    return load_model(E5)


def test_the_default_fuses_use_with_e5_on_onnx_runtime(model):
    from recommender.embedding import DEFAULT_MODEL

    assert f"use-multilingual-v3+{E5}" == DEFAULT_MODEL
    fusion = model[0]
    assert [type(m[0]).__name__ for m in fusion.models] == ["UniversalSentenceEncoder", "OnnxE5"]
    assert fusion.models[1][0].fingerprint.split("-onnx")[1].split("-")[1] in ("int8", "fp32")
    vectors = model.encode([LIBYA_AR, "Hello", "Guten Tag"])
    assert vectors.shape == (3, 896) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_e5_gives_384_unit_vectors_and_the_reference_case(e5_default):
    model = e5_default
    vectors = model.encode([LIBYA_AR, "Hello", "Guten Tag"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query, tripoli, wuhan = model.encode([LIBYA_AR, TRIPOLI_AR, WUHAN_AR])
    assert float(query @ tripoli) > float(query @ wuhan)


def test_a_text_gets_the_same_vector_alone_and_inside_a_padded_batch(e5_default):
    model = e5_default
    texts = [LIBYA_AR, "short", TRIPOLI_AR * 5, "Libya signs security memoranda with Turkey"]
    alone = np.stack([model.encode([t])[0] for t in texts])
    for batch_size in (2, 4):
        batched = model.encode(texts, batch_size=batch_size)
        assert ((alone * batched).sum(axis=1) > 0.9999).all()


def test_nothing_readable_embeds_to_zero_and_non_strings_are_refused(e5_default):
    model = e5_default
    vectors = model.encode(["", "   \n\t", "\u2009\u200e\u2028", "news"])
    assert not vectors[:3].any() and abs(np.linalg.norm(vectors[3]) - 1) < 1e-5
    with pytest.raises(TypeError, match="input 1 is int"):
        model[0].preprocess(["fine", 7])
