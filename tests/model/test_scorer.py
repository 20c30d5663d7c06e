"""The Scorer contract, checked on a real (tiny) trained artifact."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.config import ModelSettings
from model import BatchedScorer, ModelCard, Scorer, load_scorer, read_card
from model.base import LABELS_3

REVIEWS = [
    "I love this dress, it is perfect and excellent!",
    "Terrible fabric, broken after a day. Refund please 😡",
    "It was okay, average shipping.",
    "Great 😀",
    "the worst product and awful service",
]


def test_the_tiny_scorer_satisfies_the_scorer_protocol(tiny_scorer: BatchedScorer, tiny_model_dir: Path) -> None:
    assert isinstance(tiny_scorer, Scorer)
    assert tiny_scorer.model_version == read_card(tiny_model_dir).version


def test_scores_are_in_range_and_consistent(tiny_scorer: BatchedScorer) -> None:
    for score in tiny_scorer.predict(REVIEWS):
        assert score.label in LABELS_3
        assert 0.0 <= score.sentiment_score <= 1.0
        assert 0.0 <= score.confidence <= 1.0
        assert score.suggested_rating in {1, 2, 3, 4, 5}
        assert score.model_version == tiny_scorer.model_version


def test_the_tiny_model_has_learned_the_generated_sentiment(tiny_scorer: BatchedScorer) -> None:
    positive, negative = tiny_scorer.predict(["love it, excellent and perfect", "awful, terrible, broken"])
    assert positive.label == "positive"
    assert negative.label == "negative"
    assert positive.sentiment_score > 0.7 > 0.3 > negative.sentiment_score


def test_results_come_back_in_input_order_whatever_the_lengths(tiny_scorer: BatchedScorer) -> None:
    long_first = ["great " * 40, "awful", "okay fine " * 10, "love"]
    one_by_one = [tiny_scorer.predict([text])[0] for text in long_first]
    batched = tiny_scorer.predict(long_first)
    tolerance = 1e-4 if tiny_scorer.variant == "fp32" else 2e-2  # bf16 where the machine picks it
    for single, together in zip(one_by_one, batched, strict=True):
        assert single.label == together.label
        assert math.isclose(single.sentiment_score, together.sentiment_score, abs_tol=tolerance)
        assert math.isclose(single.confidence, together.confidence, abs_tol=tolerance)


def test_empty_input_gives_an_empty_result(tiny_scorer: BatchedScorer) -> None:
    assert tiny_scorer.predict([]) == []
    assert tiny_scorer.count_tokens([]) == []


def test_very_long_text_is_truncated_not_a_crash(tiny_scorer: BatchedScorer) -> None:
    text = "this dress was great and the shipping was fine. " * 2000
    (score,) = tiny_scorer.predict([text])
    assert 0.0 <= score.sentiment_score <= 1.0
    assert tiny_scorer.count_tokens([text]) == [tiny_scorer.max_length]


def test_unicode_emoji_and_blank_text_are_scored(tiny_scorer: BatchedScorer) -> None:
    texts = ["😀😀😀", "Très bien, j'adore ❤️", "中文评论", "   ", "\x00\t\n", "half an emoji \ud83d cut"]
    scores = tiny_scorer.predict(texts)
    assert len(scores) == len(texts)
    assert all(0.0 <= s.sentiment_score <= 1.0 for s in scores)
    # A lone surrogate (JSON allows "\ud83d") is dropped, not a tokenizer error failing the call.
    assert tiny_scorer.predict(["half an emoji \ud83d cut"]) == tiny_scorer.predict(["half an emoji cut"])


def test_one_string_is_refused_rather_than_scored_character_by_character(tiny_scorer: BatchedScorer) -> None:
    with pytest.raises(TypeError, match=r"predict\(\[text\]\)"):
        tiny_scorer.predict("good")


def test_scoring_is_deterministic(tiny_scorer: BatchedScorer) -> None:
    assert tiny_scorer.predict(REVIEWS) == tiny_scorer.predict(REVIEWS)


def test_count_tokens_matches_what_the_forward_pass_sees(tiny_scorer: BatchedScorer) -> None:
    counts = tiny_scorer.count_tokens(["love", "love it great"])
    assert counts[0] < counts[1]
    assert counts == [len(ids) for ids in tiny_scorer.encode(["love", "love it great"])]


def test_small_sub_batches_give_the_same_scores(tiny_model_dir: Path) -> None:
    big = load_scorer(tiny_model_dir, ModelSettings(device="cpu", variant="fp32"))
    small = load_scorer(tiny_model_dir, ModelSettings(device="cpu", variant="fp32", max_batch_size=1))
    for a, b in zip(big.predict(REVIEWS * 3), small.predict(REVIEWS * 3), strict=True):
        assert a.label == b.label
        assert math.isclose(a.sentiment_score, b.sentiment_score, abs_tol=1e-4)


def test_a_second_tiny_model_has_another_version(tiny_model_dir: Path, tiny_model_dir_v2: Path) -> None:
    assert read_card(tiny_model_dir).version != read_card(tiny_model_dir_v2).version
    assert load_scorer(tiny_model_dir_v2).model_version == read_card(tiny_model_dir_v2).version


def test_load_scorer_reads_the_path_from_settings(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import clear_settings_cache

    monkeypatch.setenv("MODEL_PATH", str(tiny_model_dir))
    clear_settings_cache()
    assert load_scorer().model_version == read_card(tiny_model_dir).version


def test_asking_for_a_missing_variant_says_which_exist(tiny_model_dir: Path) -> None:
    from model import ArtifactError

    with pytest.raises(ArtifactError, match="onnx-int8"):
        load_scorer(tiny_model_dir, ModelSettings(variant="onnx-int8"))


def test_scorer_load_is_load_scorer(tiny_model_dir: Path) -> None:
    assert BatchedScorer.load(tiny_model_dir).model_version == read_card(tiny_model_dir).version


def test_a_directory_without_a_card_is_rejected(tmp_path: Path) -> None:
    from model import ArtifactError

    with pytest.raises(ArtifactError, match=r"model_card\.json"):
        load_scorer(tmp_path)


def test_raw_producer_text_scores_as_the_clean_text_training_saw(tiny_scorer: BatchedScorer) -> None:
    raw = ["I don&#39;t love it &amp; won&#39;t buy again", "great\u200b value\x07 &lt;3"]
    clean = ["I don't love it & won't buy again", "great value <3"]
    assert tiny_scorer.predict(raw) == tiny_scorer.predict(clean)
    assert tiny_scorer.count_tokens(raw) == tiny_scorer.count_tokens(clean)


def test_texts_may_come_as_an_array(tiny_scorer: BatchedScorer) -> None:
    import numpy as np

    texts = np.array(["love it great", "awful broken"])
    assert tiny_scorer.predict(texts) == tiny_scorer.predict(list(texts))  # type: ignore[arg-type]
    assert tiny_scorer.predict(np.array([], dtype=str)) == []  # type: ignore[arg-type]


def test_a_gpu_with_an_int8_only_artifact_scores_on_cpu_with_a_warning_instead_of_failing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from model import scorer

    int8_only = ModelCard(architecture="transformer", labels=list(LABELS_3), max_length=128)
    int8_only.variants = {"onnx-int8": "model.int8.onnx"}
    monkeypatch.setattr(scorer, "cuda_available", lambda: True)
    assert scorer.resolve_variant(int8_only, "auto", "auto") == ("cpu", "onnx-int8")
    assert scorer.resolve_variant(int8_only, "cuda", "auto") == ("cpu", "onnx-int8")  # the GPU image, default model
    assert "scoring on CPU; point MODEL_PATH at an artifact with" in caplog.text


def test_the_gpu_int8_and_fp8_variants_say_they_need_torchao(monkeypatch: pytest.MonkeyPatch) -> None:
    from model import ArtifactError, scorer

    card = ModelCard(architecture="transformer", labels=list(LABELS_3), max_length=128)
    card.variants = {"fp32": "model.safetensors"}
    monkeypatch.setattr(scorer, "torchao_available", lambda: False)
    monkeypatch.setattr(scorer, "cuda_available", lambda: True)
    for variant in ("cuda-int8", "cuda-fp8"):
        with pytest.raises(ArtifactError, match="torchao"):
            scorer.resolve_variant(card, "cuda", variant)


def test_cuda_asked_for_where_torch_sees_none_is_an_error_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not torch's "Torch not compiled with CUDA enabled" from deep inside loading."""
    from model import ArtifactError, scorer

    card = ModelCard(architecture="transformer", labels=list(LABELS_3), max_length=128)
    card.variants = {"fp32": "model.safetensors", "onnx-int8": "model.int8.onnx"}
    monkeypatch.setattr(scorer, "cuda_available", lambda: False)
    for variant in ("auto", "bf16", "fp32", "cuda-int8"):
        with pytest.raises(ArtifactError, match="torch sees no CUDA device"):
            scorer.resolve_variant(card, "cuda", variant)
    assert scorer.resolve_variant(card, "cuda", "int8") == ("cpu", "onnx-int8")  # int8 is a CPU variant anyway


def test_the_row_pool_falls_back_to_the_cpu_count_where_the_os_has_no_affinity_mask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from model.onnx_runtime import usable_cpus

    assert usable_cpus() >= 1
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert usable_cpus() == 6


def test_predict_refuses_what_is_not_text_instead_of_scoring_its_repr(tiny_scorer: BatchedScorer) -> None:
    """None and NaN were scored as the words "None" and "nan", with confidence."""
    with pytest.raises(TypeError, match="item 1 is NoneType None"):
        tiny_scorer.predict(["fine", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="item 0 is float nan"):
        tiny_scorer.predict([float("nan")])  # type: ignore[list-item]
