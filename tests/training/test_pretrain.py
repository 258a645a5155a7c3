"""`naba pretrain`: masked-LM pretraining on a tiny corpus, held-out metrics, resume, continued pretraining."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, EvalPrediction

from naba.models.errors import ArtifactError, DataError
from naba.models.preprocessing import PreprocessConfig
from naba.training import pretrain
from naba.training.pretrain import METRICS_FILE, PretrainArguments, masked_accuracy, pack, split_corpus
from tests.conftest import NEGATIVES, naba_pretrain, seed_records, write_jsonl

TINY = ["--vocab-size", "200", "--hidden-size", "32", "--num-layers", "1", "--num-heads", "2",
        "--max-position-embeddings", "64", "--block-size", "32", "--heldout-fraction", "0.2",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8", "--logging_steps", "1",
        "--eval_steps", "2", "--save_steps", "2", "--disable_tqdm", "true", "--seed", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [{"id": r["id"], "text": r["text"], "outlet": "seed"} for r in seed_records()]
    rows += [{"id": f"n{i}", "text": t} for i, t in enumerate(NEGATIVES)]
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", rows)


@pytest.fixture(scope="module")
def encoder(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("pretrained") / "enc"
    return naba_pretrain(["--corpus", str(corpus), "--output", str(output), "--max_steps", "4", *TINY])


def test_pretraining_writes_an_encoder_that_fine_tuning_loads(encoder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    assert len(tokenizer) == 200  # the trained vocabulary, not a 5-token stub
    assert tokenizer.mask_token == "[MASK]"
    base = AutoModel.from_pretrained(encoder)  # what `naba train --base-model` does
    saved = load_file(str(encoder / "model.safetensors"))
    key = next(k for k in saved if k.endswith("word_embeddings.weight"))
    assert torch.equal(base.embeddings.word_embeddings.weight, saved[key])
    assert not (encoder.parent / "enc.checkpoints").exists()  # a finished run cleans up after itself
    config = json.loads((encoder / "config.json").read_text("utf-8"))
    assert config["architectures"] == ["BertForMaskedLM"]  # not the masked-positions training class


def test_pretraining_reports_held_out_loss_and_masked_accuracy(encoder: Path) -> None:
    metrics = json.loads((encoder / METRICS_FILE).read_text("utf-8"))
    assert metrics["steps"] == 4
    assert metrics["heldout_loss"] > 0 and 0.0 <= metrics["heldout_masked_accuracy"] <= 1.0
    assert metrics["initial_heldout_loss"] is not None
    assert metrics["train_tokens"] == 4 * 4 * 32
    assert any("loss" in entry for entry in metrics["log_history"])  # the loss curve for the recipe


def test_held_out_articles_are_never_trained_on_and_the_split_is_reproducible(
    corpus: Path, tmp_path: Path
) -> None:
    data = pretrain.load_corpus([str(corpus)], "text", tmp_path / "cache")
    args = PretrainArguments(corpus=[str(corpus)], output="x", heldout_fraction=0.3)
    first, second = split_corpus(data, args, seed=1), split_corpus(data, args, seed=1)
    assert set(first["train"]["text"]).isdisjoint(first["heldout"]["text"])
    assert len(first["train"]) + len(first["heldout"]) == len(data) == 11
    assert first["heldout"]["text"] == second["heldout"]["text"]


def test_packing_makes_full_blocks_framed_by_cls_and_sep(encoder: Path, corpus: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    data = pretrain.load_corpus([str(corpus)], "text", tmp_path / "cache")
    blocks = pack(data, tokenizer, 32, PreprocessConfig())["input_ids"]
    assert blocks and all(len(b) <= 32 for b in blocks) and len(blocks[0]) == 32
    assert all(b[0] == tokenizer.cls_token_id and b[-1] == tokenizer.sep_token_id for b in blocks)


def test_a_crashed_run_resumes_from_its_checkpoint(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    output = tmp_path / "enc"
    args = ["--corpus", str(corpus), "--output", str(output), *TINY]

    def crash(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(pretrain, "save_encoder", crash)
        with pytest.raises(KeyboardInterrupt):
            naba_pretrain([*args, "--max_steps", "2"])  # dies after its checkpoint at step 2
    checkpoints = tmp_path / "enc.checkpoints"
    assert (checkpoints / "checkpoint-2").is_dir() and not output.exists()
    vocab = (checkpoints / pretrain.TOKENIZER_DIR / "tokenizer.json").read_text("utf-8")

    with pytest.raises(ArtifactError, match="--resume"):
        naba_pretrain([*args, "--max_steps", "4"])  # never silently starts over on top of an earlier run
    naba_pretrain([*args, "--max_steps", "4", "--resume", "true"])
    metrics = json.loads((output / METRICS_FILE).read_text("utf-8"))
    assert metrics["steps"] == 4 and metrics["initial_heldout_loss"] is None  # resumed, not restarted
    assert (output / "tokenizer.json").read_text("utf-8") == vocab


def test_continued_pretraining_keeps_the_vocabulary_and_moves_the_weights(
    encoder: Path, corpus: Path, tmp_path: Path
) -> None:
    output = tmp_path / "adapted"
    naba_pretrain(["--corpus", str(corpus), "--output", str(output), "--init-from", str(encoder),
                   "--max_steps", "2", "--learning_rate", "1e-2", *TINY])  # fmt: skip
    assert (output / "tokenizer.json").read_text("utf-8") == (encoder / "tokenizer.json").read_text("utf-8")
    before, after = AutoModel.from_pretrained(encoder), AutoModel.from_pretrained(output)
    assert not torch.equal(before.embeddings.word_embeddings.weight, after.embeddings.word_embeddings.weight)


def test_cooccurrence_init_starts_from_corpus_vectors(corpus: Path, tmp_path: Path) -> None:
    outputs = {}
    for init in ("random", "cooccurrence"):
        outputs[init] = naba_pretrain(["--corpus", str(corpus), "--output", str(tmp_path / init),
                                       "--embedding-init", init, "--max_steps", "1", "--learning_rate", "1e-9",
                                       *TINY])  # fmt: skip
    random, informed = (
        AutoModel.from_pretrained(outputs[k]).embeddings.word_embeddings.weight for k in outputs
    )
    tokenizer = AutoTokenizer.from_pretrained(outputs["random"])
    word = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("القوات")[0])
    assert not torch.allclose(random[word], informed[word])  # a corpus token was overwritten
    assert torch.equal(
        random[tokenizer.pad_token_id], informed[tokenizer.pad_token_id]
    )  # specials keep theirs
    # …and starts at the scale of a random row
    assert informed[word].norm().item() == pytest.approx(random[word].norm().item(), rel=0.5)


def test_bad_input_fails_before_training(corpus: Path, encoder: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="already exists"):
        naba_pretrain(["--corpus", str(corpus), "--output", str(encoder), *TINY])
    no_text = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "body": "نص"}, {"id": "b", "body": "نص"}])
    with pytest.raises(DataError, match="no 'text' field"):
        naba_pretrain(["--corpus", str(no_text), "--output", str(tmp_path / "o"), *TINY])
    with pytest.raises(ValueError, match="heldout"):
        PretrainArguments(corpus=[str(corpus)], output="o", heldout_fraction=1.5)


def test_masked_accuracy_counts_only_masked_tokens() -> None:
    labels = np.array([[-100, 5, 7, -100], [3, -100, -100, -100]])
    predicted = np.array([[9, 5, 1, 9], [3, 9, 9, 9]])
    assert masked_accuracy(EvalPrediction(predictions=predicted, label_ids=labels)) == {
        "masked_accuracy": pytest.approx(2 / 3)
    }
