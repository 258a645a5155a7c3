"""Windowing: every token of a long article reaches the model, and batches map tokens back to sentences."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from naba.models.encoding import WindowConfig, collate, encode_article
from naba.models.preprocessing import PreprocessConfig
from naba.models.results import Article
from naba.models.rules import rule_features

LONG = " ".join(f"الجملة رقم {i} عن العمليات المشتركة في المحافظة." for i in range(60))


@pytest.fixture(scope="module")
def tokenizer(encoder_dir):
    return AutoTokenizer.from_pretrained(encoder_dir)


def test_tokenizer_has_the_trained_vocabulary(tokenizer) -> None:
    assert len(tokenizer) == 500
    assert tokenizer.cls_token_id is not None and tokenizer.pad_token_id is not None


def test_long_article_is_cut_into_overlapping_windows_that_cover_every_sentence(tokenizer) -> None:
    window = WindowConfig(max_length=64, overlap=16)
    enc = encode_article(Article(LONG, title="عنوان"), tokenizer, PreprocessConfig(), window)
    assert len(enc.sentences) == 60
    assert len(enc.windows) > 5
    assert all(len(w) <= 64 for w in enc.windows)
    assert all(w[0] == tokenizer.cls_token_id and w[-1] == tokenizer.sep_token_id for w in enc.windows)
    covered = {s for segs in enc.window_segments for s in segs if s >= 0}
    assert covered == set(range(enc.n_segments))
    # Consecutive windows share exactly `overlap` tokens.
    assert enc.window_segments[0][-17:-1] == enc.window_segments[1][1:17]


def test_max_windows_truncates_only_when_asked(tokenizer) -> None:
    window = WindowConfig(max_length=64, overlap=16)
    enc = encode_article(Article(LONG), tokenizer, PreprocessConfig(), window, max_windows=2)
    assert len(enc.windows) == 2


def test_window_config_validates() -> None:
    with pytest.raises(ValueError, match="overlap"):
        WindowConfig(max_length=64, overlap=40)


def test_collate_maps_tokens_to_flat_sentence_rows(tokenizer) -> None:
    window = WindowConfig(max_length=64, overlap=16)
    short = encode_article(
        Article("جملة أولى. جملة ثانية.", title="عنوان"), tokenizer, PreprocessConfig(), window
    )
    long = encode_article(Article(LONG), tokenizer, PreprocessConfig(), window)
    batch = collate([short, long], tokenizer.pad_token_id, max_positions=8)
    n_seg = max(short.n_segments, long.n_segments)
    assert batch["segment_mask"].shape == (2, n_seg)
    assert batch["input_ids"].shape[0] == len(short.windows) + len(long.windows)
    # The short article's title is not a body sentence; its two sentences are.
    assert batch["body_mask"][0].tolist()[:3] == [False, True, True]
    assert batch["segment_mask"][0].sum() == 3
    # Rows of the second article point into its own block of the flat table.
    second = batch["token_segment"][len(short.windows) :]
    assert second[second >= 0].min() >= n_seg
    assert batch["position"][1, -1] == 7  # positions clip at max_positions - 1
    assert (batch["attention_mask"].sum(1) > 0).all()


def test_rule_features_are_encoded_only_when_asked_and_stacked_by_collate(tokenizer) -> None:
    window = WindowConfig(max_length=64, overlap=16)
    attack = Article("وفجر انتحاري نفسه وسط السوق. وقالت الشرطة إن التحقيقات جارية.", title="هجوم")
    plain = encode_article(attack, tokenizer, PreprocessConfig(), window)
    assert plain.rule_features is None and "rule_features" not in collate([plain], 0, 8)

    names = ["jo_exercise", "at_suicide", "at_attack_word"]
    asked = encode_article(attack, tokenizer, PreprocessConfig(), window, rule_features=names)
    assert asked.rule_features == rule_features(attack.text, attack.title, names) == [0.0, 1.0, 1.0]
    assert asked.windows == plain.windows
    # Features come from the whole article, also when training keeps only its first window.
    long = Article(LONG + " وفجر انتحاري نفسه وسط السوق.")
    first = encode_article(long, tokenizer, PreprocessConfig(), window, max_windows=1, rule_features=names)
    assert first.rule_features == [0.0, 1.0, 0.0]

    batch = collate([asked, first], tokenizer.pad_token_id, max_positions=8)
    assert batch["rule_features"].tolist() == [[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]]
    assert batch["rule_features"].dtype == torch.float
    with pytest.raises(ValueError, match="rule features"):
        collate([asked, plain], tokenizer.pad_token_id, max_positions=8)
