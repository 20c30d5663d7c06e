"""The artifact directory and its model card."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from model import ArtifactError, ModelCard, read_card
from model.artifact import CARD_FILE, version_of, write_card
from model.scorer import DEFAULT_ARTIFACT


def test_a_card_round_trips_through_json(tmp_path: Path) -> None:
    card = ModelCard(
        architecture="transformer",
        labels=["negative", "neutral", "positive"],
        max_length=128,
        base_model="minilm",
        temperature=1.7,
        variants={"fp32": "model.safetensors"},
        metrics={"test": {"accuracy": 0.9}},
        data_sources=[{"name": "x", "sha256": "ab"}],
    )
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    written = write_card(tmp_path, card)
    assert read_card(tmp_path) == written
    assert written.version.startswith("reviewscore-sentiment-transformer-")


def test_the_version_changes_with_the_weights_and_the_temperature(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    card = ModelCard(architecture="transformer", labels=["negative", "positive"], max_length=64)
    first = write_card(tmp_path, card).version
    assert write_card(tmp_path, card).version == first
    card.temperature = 2.0
    second = write_card(tmp_path, card).version
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert len({first, second, write_card(tmp_path, card).version}) == 3


@pytest.mark.parametrize("folder", ["eval", "curves", "runs"])
def test_the_version_follows_the_weights_whatever_the_artifacts_folder_is_called(tmp_path: Path, folder: str) -> None:
    """Report folders inside an artifact are skipped; an artifact in a folder of that name had all
    of its files skipped, and kept its version through new weights."""
    artifact = tmp_path / folder
    (artifact / "eval").mkdir(parents=True)
    (artifact / "model.safetensors").write_bytes(b"weights of run A")
    card = ModelCard(architecture="transformer", labels=["negative", "positive"], max_length=64)
    before = version_of(artifact, card)
    (artifact / "eval" / "model.safetensors").write_bytes(b"a copy in a report folder")
    assert version_of(artifact, card) == before
    (artifact / "model.safetensors").write_bytes(b"weights of run B")
    assert version_of(artifact, card) != before


def test_files_the_loaders_never_read_do_not_change_the_version(tmp_path: Path) -> None:
    """`reviewscore eval MODEL FILE --output MODEL` writes its report next to the weights: the
    version changed with it, and load_scorer warned that the files no longer matched the card."""
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "tokenizer.json").write_text("{}")
    card = ModelCard(architecture="transformer", labels=["negative", "positive"], max_length=64)
    before = write_card(tmp_path, card).version
    (tmp_path / "test.json").write_text('{"accuracy": 0.9}')
    (tmp_path / "test_confusion.png").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("trained on Tuesday")
    assert version_of(tmp_path, card) == before
    (tmp_path / "tokenizer.json").write_text('{"changed": true}')
    assert version_of(tmp_path, card) != before


def test_the_tiny_artifact_describes_itself(tiny_model_dir: Path) -> None:
    card = read_card(tiny_model_dir)
    assert card.labels == ["negative", "neutral", "positive"]
    assert card.variants == {"fp32": "model.safetensors"}
    assert 0.05 <= card.temperature <= 20
    assert {"temperature", "ece_before", "ece_after"} <= set(card.calibration)
    assert card.metrics["generated_held_out"]["accuracy"] >= 0.9
    assert card.data_sources[0]["sha256"]
    assert (tiny_model_dir / "training_metrics.json").is_file()
    assert (tiny_model_dir / "training_curves.png").stat().st_size > 1000
    assert card.reproduce


def test_a_card_missing_required_fields_is_rejected(tmp_path: Path, tiny_model_dir: Path) -> None:
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    data = json.loads((tmp_path / "m" / CARD_FILE).read_text())
    del data["labels"]
    (tmp_path / "m" / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="labels"):
        read_card(tmp_path / "m")


def test_loading_an_artifact_edited_after_its_card_was_written_warns(
    tmp_path: Path, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The version names the weights that scored a row; a hand-edited card would make it lie."""
    from core.config import ModelSettings
    from model import load_scorer

    edited = tmp_path / "edited"
    shutil.copytree(tiny_model_dir, edited)
    card = json.loads((edited / CARD_FILE).read_text(encoding="utf-8"))
    card["temperature"] = 3.0
    (edited / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")

    with caplog.at_level("WARNING", logger="model.scorer"):
        load_scorer(tiny_model_dir, ModelSettings(device="cpu"))
        assert "changed after the card was written" not in caplog.text
        load_scorer(edited, ModelSettings(device="cpu"))
    assert f"the card says version {card['version']} but the files give" in caplog.text


def test_a_weights_file_missing_or_broken_is_an_artifact_error_not_a_runtime_traceback(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """The worker and rescore turn an ArtifactError into one line and exit 2; onnxruntime's
    NoSuchFile or InvalidProtobuf came out as a traceback."""
    from core.config import ModelSettings
    from model import load_scorer

    missing = tmp_path / "missing"
    shutil.copytree(tiny_model_dir, missing)
    (missing / "model.safetensors").unlink()
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    card = json.loads((broken / CARD_FILE).read_text(encoding="utf-8"))
    card["variants"]["onnx-int8"] = "model.int8.onnx"
    (broken / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    (broken / "model.int8.onnx").write_bytes(b"half a file")

    with pytest.raises(ArtifactError, match=r"model\.safetensors for the fp32 variant, but the file is missing"):
        load_scorer(missing, ModelSettings(device="cpu", variant="fp32"))
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load it"):
        load_scorer(broken, ModelSettings(device="cpu", variant="int8"))


def test_a_card_whose_labels_the_weights_do_not_have_is_an_artifact_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    from core.config import ModelSettings
    from model import load_scorer

    edited = tmp_path / "edited"
    shutil.copytree(tiny_model_dir, edited)
    card = json.loads((edited / CARD_FILE).read_text(encoding="utf-8"))
    card["labels"] = ["negative", "positive"]
    (edited / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")

    with pytest.raises(ArtifactError, match="the card lists 2 labels"):
        load_scorer(edited, ModelSettings(device="cpu"))


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ({"max_length": "64"}, "max_length '64' is not a positive integer"),
        ({"temperature": None}, "temperature None is not a positive number"),
        ({"temperature": 0}, "temperature 0 is not a positive number"),
        ({"labels": ["negative", "positive", "positive"]}, "are not two or more different names"),
        ({"architecture": "lstm"}, "architecture 'lstm' is not one of transformer, charcnn"),
    ],
)
def test_a_hand_edited_card_with_a_field_of_the_wrong_kind_is_an_artifact_error(
    tmp_path: Path, tiny_model_dir: Path, edit: dict[str, object], said: str
) -> None:
    """These failed deep in a loader with a TypeError, or loaded and named every score wrongly."""
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    data = json.loads((tmp_path / "m" / CARD_FILE).read_text())
    (tmp_path / "m" / CARD_FILE).write_text(json.dumps(data | edit))

    with pytest.raises(ArtifactError, match=re.escape(said)):
        read_card(tmp_path / "m")


def test_a_card_saved_with_a_byte_order_mark_reads(tmp_path: Path, tiny_model_dir: Path) -> None:
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    card = tmp_path / "m" / CARD_FILE
    card.write_text(card.read_text(encoding="utf-8"), encoding="utf-8-sig")

    assert read_card(tmp_path / "m").labels == read_card(tiny_model_dir).labels


def test_labels_in_another_order_than_the_weights_or_no_tokenizer_are_artifact_errors(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Both loaded: every score under another label's name, or every word [UNK] and one score for all."""
    from core.config import ModelSettings
    from model import load_scorer

    reordered = tmp_path / "reordered"
    shutil.copytree(tiny_model_dir, reordered)
    card = json.loads((reordered / CARD_FILE).read_text(encoding="utf-8"))
    card["labels"] = list(reversed(card["labels"]))
    (reordered / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    untokenized = tmp_path / "untokenized"
    shutil.copytree(tiny_model_dir, untokenized)
    (untokenized / "tokenizer.json").unlink()
    for name in ("vocab.txt", "vocab.json"):
        (untokenized / name).unlink(missing_ok=True)

    with pytest.raises(ArtifactError, match=r"config\.json's id2label"):
        load_scorer(reordered, ModelSettings(device="cpu"))
    (reordered / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"config\.json: invalid JSON"):
        load_scorer(reordered, ModelSettings(device="cpu"))
    with pytest.raises(ArtifactError, match="no tokenizer"):
        load_scorer(untokenized, ModelSettings(device="cpu", variant="fp32"))
    shipped = tmp_path / "shipped"  # the onnx-int8 variant reads tokenizer.json itself: a bare Exception
    shutil.copytree(DEFAULT_ARTIFACT, shipped, ignore=shutil.ignore_patterns("tokenizer.json"))
    with pytest.raises(ArtifactError, match=r"no tokenizer \(tokenizer\.json\) for the onnx-int8 variant"):
        load_scorer(shipped, ModelSettings(device="cpu", variant="int8"))


def _broken_copy(source: Path, into: Path, breaking: str) -> Path:
    copy = into / "artifact"
    shutil.copytree(source, copy)
    if breaking == "truncated weights":
        weights = copy / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif breaking == "no config.json":
        (copy / "config.json").unlink()
    elif breaking == "broken tokenizer config":
        (copy / "tokenizer_config.json").write_text('{"model_max_length": ')
    elif breaking == "variants null":
        card = json.loads((copy / CARD_FILE).read_text())
        (copy / CARD_FILE).write_text(json.dumps({**card, "variants": None}))
    return copy


@pytest.mark.parametrize(
    "breaking", ["truncated weights", "no config.json", "broken tokenizer config", "variants null"]
)
def test_an_artifact_with_a_broken_file_is_an_artifact_error_naming_it(
    tiny_model_dir: Path, tmp_path: Path, breaking: str
) -> None:
    """An interrupted copy or a hand edit gave a library's traceback (SafetensorError, a bare
    Exception from the tokenizer) that named neither the artifact nor the file, and the worker's
    one-line error for a bad model did not catch it."""
    from core.config import ModelSettings
    from model.scorer import load_scorer

    broken = _broken_copy(tiny_model_dir, tmp_path, breaking)
    with pytest.raises(ArtifactError, match=re.escape(str(broken))):
        load_scorer(broken, ModelSettings(device="cpu", variant="fp32"))
