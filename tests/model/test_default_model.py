"""The model shipped in git loads on a fresh machine and scores real reviews sensibly."""

from __future__ import annotations

from model import DEFAULT_ARTIFACT, load_scorer, read_card


def test_the_default_artifact_is_small_and_describes_itself() -> None:
    card = read_card(DEFAULT_ARTIFACT)
    assert card.labels == ["negative", "neutral", "positive"]
    assert card.variants == {"onnx-int8": "model.int8.onnx"}
    size = sum(f.stat().st_size for f in DEFAULT_ARTIFACT.iterdir())
    assert size < 50e6
    assert {"rt_polarity_test", "womens_clothing_test", "trustpilot_seed"} <= set(card.metrics)
    assert "reviewscore train --config model/configs/default.yaml" in card.reproduce


def test_the_default_scorer_tells_praise_from_complaints() -> None:
    scorer = load_scorer()
    assert scorer.variant == "onnx-int8"
    praise, complaint = scorer.predict(
        [
            "Absolutely love this dress, the fit is perfect and the fabric is gorgeous!",
            "Terrible quality. It ripped the first time I wore it and customer service never answered.",
        ]
    )
    assert praise.label == "positive"
    assert praise.sentiment_score > 0.7
    assert complaint.label == "negative"
    assert complaint.sentiment_score < 0.3
    assert praise.model_version == read_card(DEFAULT_ARTIFACT).version


def test_a_reviews_int8_score_does_not_depend_on_the_reviews_batched_with_it() -> None:
    # Dynamic int8 scales activations per tensor: batched, neighbours and padding moved scores.
    scorer = load_scorer()
    review = "The zip broke after two washes, but the colour is nice and it fits well."
    neighbours = ["Love it!", "word " * 120, "Runs small; returned it for a larger size, which fits."]
    alone = scorer.predict([review])[0]
    for batch in ([review, *neighbours], [*neighbours, review], [review] * 3):
        together = scorer.predict(batch)[batch.index(review)]
        assert together == alone


def test_the_light_tokenizer_gives_the_same_ids_as_transformers() -> None:
    from transformers import AutoTokenizer

    from model.tokenization import FastTokenizer

    texts = ["Great service!", "Très bien 👍", "x" * 5, "word " * 2000, "", "   ", "Don't — ñ"]
    reference = AutoTokenizer.from_pretrained(str(DEFAULT_ARTIFACT), local_files_only=True)
    light = FastTokenizer(DEFAULT_ARTIFACT)
    for max_length in (8, 128, 256):
        assert light.encode(texts, max_length) == reference(texts, truncation=True, max_length=max_length)["input_ids"]


def test_loading_the_cpu_default_does_not_import_torch_or_transformers() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from model import load_scorer; load_scorer();"
        " print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
