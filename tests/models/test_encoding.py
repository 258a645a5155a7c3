"""Windowing: every token of a long article reaches the model, and batches map tokens back to sentences."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from models.encoding import WindowConfig, collate, encode_article
from models.preprocessing import PreprocessConfig
from models.results import Article

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
