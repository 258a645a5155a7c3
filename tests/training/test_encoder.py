"""From-scratch encoders: both tokenisers train the vocabulary asked for and fine-tune end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModel, AutoTokenizer

from naba.models.predictor import Predictor
from naba.models.results import Article
from naba.training.encoder import EncoderSize, build_encoder
from tests.conftest import NEGATIVES, TRAIN_ARGS, naba_train, seed_records

TEXTS = [r["text"] for r in seed_records()] + NEGATIVES
TINY = EncoderSize(vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                   max_position_embeddings=64)  # fmt: skip


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece"])
def test_tokenizer_has_the_vocabulary_and_special_tokens_asked_for(kind: str, tmp_path: Path) -> None:
    out = build_encoder(TEXTS, tmp_path / kind, TINY, tokenizer_kind=kind)  # type: ignore[arg-type]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == 300
    ids = tokenizer("وقال المتحدث باسم القوات المشتركة")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in ids[1:-1]
    assert {tokenizer.pad_token, tokenizer.mask_token} == {"[PAD]", "[MASK]"}
    assert AutoModel.from_pretrained(out).config.vocab_size == 300


def test_sentencepiece_encoder_fine_tunes_and_serves(train_file: Path, tmp_path: Path) -> None:
    encoder = build_encoder(TEXTS, tmp_path / "enc", TINY, tokenizer_kind="sentencepiece")
    args = ["--train", str(train_file), "--base-model", str(encoder), "--output", str(tmp_path / "model")]
    out = naba_train([*args, *TRAIN_ARGS[:4], "--max_steps", "2"])
    long = Article(" ".join(f"الجملة رقم {i} عن العمليات المشتركة." for i in range(40)))
    analysis = Predictor.from_dir(out, device="cpu").analyze([long])[0]
    assert len(analysis.sentences) == 40 and set(analysis.scores) == {
        "attack",
        "coordination_centre",
        "joint_operation",
    }
