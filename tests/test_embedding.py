"""USE (one flag away from the default) through sentence-transformers: shape, norms, batching,
save/load, errors. The default model's own tests are in test_e5_onnx.py."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from recommender.embedding import load_model
from recommender.errors import ModelError

LIBYA_AR = "ليبيا توقع مذكرات تفاهم أمنية وعسكرية مع تركيا وقطر ومالطا"
TRIPOLI_AR = "زيارة وزير الخارجية الألماني إلى طرابلس: ماذا تعني؟"
WUHAN_AR = "في ووهان حيث بدأ كورونا، الحياة تعود إلى طبيعتها"


def test_use_is_a_sentence_transformer_with_512_unit_vectors(use_model):
    assert isinstance(use_model, SentenceTransformer)
    vectors = use_model.encode(["مرحبا", "Hello", "Guten Tag"])
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert use_model.get_embedding_dimension() == 512


def test_reference_case_tripoli_visit_is_closer_than_wuhan(use_model):
    query, tripoli, wuhan = use_model.encode([LIBYA_AR, TRIPOLI_AR, WUHAN_AR])
    assert query @ tripoli > query @ wuhan + 0.1


def test_same_story_is_found_across_languages(use_model):
    english = use_model.encode(
        [
            "Libya signs security and military memoranda with Turkey, Qatar and Malta",
            "In Wuhan, where corona began, life returns to normal",
            "Oil prices rose after OPEC agreed to cut production",
        ]
    )
    arabic = use_model.encode([LIBYA_AR])[0]
    assert int(np.argmax(english @ arabic)) == 0


def test_a_text_gets_the_same_vector_alone_and_inside_any_batch(use_model):
    texts = ["a", LIBYA_AR, "x " * 300, "Die Bundesregierung", WUHAN_AR, "😀"]
    alone = np.stack([use_model.encode([t])[0] for t in texts])
    for batch_size in (1, 2, 3, 64):
        batched = use_model.encode(texts, batch_size=batch_size)
        np.testing.assert_allclose(batched, alone, atol=2e-6)


def test_empty_and_whitespace_text_embed_to_zero(use_model):
    vectors = use_model.encode(["", "   \n\t", "\u2009\u200e\u2028", "news"])
    assert not vectors[:3].any()
    assert np.linalg.norm(vectors[3]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("bad", [42, None, b"bytes"])
def test_non_string_input_raises_a_clear_type_error(use_model, bad):
    with pytest.raises(TypeError, match="embeds strings; input 1 is"):
        use_model[0].preprocess(["fine", bad])


def test_save_then_load_gives_the_same_vectors(use_model, tmp_path):
    texts = [LIBYA_AR, "Libya signs security memoranda", "北京"]
    before = use_model.encode(texts)
    use_model.save(str(tmp_path / "use"))
    reloaded = load_model(str(tmp_path / "use"))
    assert isinstance(reloaded, SentenceTransformer)
    np.testing.assert_array_equal(reloaded.encode(texts), before)
    # the saved directory is self-contained: weights and tokenizer are inside it
    assert (tmp_path / "use" / "sp.model").is_file()
    assert (tmp_path / "use" / "model.safetensors").is_file()


def test_a_directory_that_is_no_model_gives_a_model_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot load embedding model"):
        load_model(str(tmp_path / "empty"))


def test_model_runs_through_sentence_transformers_batching_and_device(use_model):
    vectors = use_model.encode([LIBYA_AR] * 5, batch_size=2, device="cpu", show_progress_bar=False)
    assert vectors.shape == (5, 512)
    np.testing.assert_allclose(vectors[0], vectors[4], atol=1e-6)
