"""Turn an article into encoder windows that cover every token, and batch them for the model.

BERT reads at most `max_length` tokens; news articles are often longer. Each article becomes a list of
*segments* (the title, then every body sentence), tokenised and laid end to end, then cut into overlapping
windows of `max_length` tokens. Every token lands in at least one window, and each window position remembers
which segment its token came from, so the model can pool token states back into one vector per sentence.
Training and the predictor both go through `encode_article` and `collate`: they cannot disagree. That holds for
a model's rule features too (`naba.models.rules`): asked for by name, computed from the raw title and text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from naba.models.errors import EmptyInputError
from naba.models.preprocessing import PreprocessConfig, normalize, sentence_spans
from naba.models.results import Article
from naba.models.rules import rule_features as compute_rule_features


@dataclass(frozen=True)
class WindowConfig:
    """How articles are cut into encoder windows."""

    max_length: int = 512  # tokens per window, [CLS] and [SEP] included
    overlap: int = 128  # tokens shared by consecutive windows, so no sentence loses its context at a cut

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if not 0 <= self.overlap <= (self.max_length - 2) // 2:
            raise ValueError(f"overlap must be in [0, {(self.max_length - 2) // 2}], got {self.overlap}")


@dataclass(frozen=True)
class EncodedArticle:
    """An article ready for the model.

    Segments `0 .. n_title - 1` are the title, the rest are `sentences` in order.
    """

    sentences: list[str]  # original body sentences, as they appear in the article
    n_title: int
    windows: list[list[int]]  # token ids with [CLS] ... [SEP]
    window_segments: list[list[int]]  # segment index per window position; -1 for [CLS]/[SEP]
    rule_features: list[float] | None = None  # 0/1 per asked labelling function; None when not asked
    # The lexical head's logits (K,), added to the network's article logits; None for a model without one.
    # `Predictor.encode` sets them: they are read from the raw text, as the rule features are.
    lexical_logits: np.ndarray | None = None

    @property
    def n_segments(self) -> int:
        return self.n_title + len(self.sentences)

    @property
    def n_tokens(self) -> int:
        return sum(len(w) for w in self.windows)


def encode_article(
    article: Article,
    tokenizer: PreTrainedTokenizerBase,
    preprocess: PreprocessConfig,
    window: WindowConfig,
    max_windows: int | None = None,
    rule_features: Sequence[str] = (),
) -> EncodedArticle:
    """Split, normalise, tokenise and window one article.

    Args:
        max_windows: keep only the first windows (training uses this to bound cost; inference never does).
        rule_features: names of the labelling functions whose features the model reads (its
            `heads.rule_features`), computed on the whole article whatever `max_windows` keeps; empty: none.

    Raises:
        EmptyInputError: a text of whitespace only (there is no sentence to score).
        KeyError: a rule feature name this version of `naba.models.rules` does not know.
    """
    sentences = [article.text[a:b] for a, b in sentence_spans(article.text)]
    if not sentences:
        raise EmptyInputError("text is empty: send the article's text in 'text'")
    title = normalize(article.title or "", preprocess)
    segments = ([title] if title else []) + [normalize(s, preprocess) for s in sentences]
    n_title = len(segments) - len(sentences)
    token_lists = (
        tokenizer(segments, add_special_tokens=False, verbose=False)["input_ids"] if segments else []
    )

    flat_ids: list[int] = []
    flat_segments: list[int] = []
    for index, ids in enumerate(token_lists):
        ids = ids or [tokenizer.unk_token_id]  # a segment of symbols only still gets a vector
        flat_ids.extend(ids)
        flat_segments.extend([index] * len(ids))

    content = window.max_length - 2
    stride = content - window.overlap
    windows, window_segments = [], []
    start = 0
    while True:
        chunk = slice(start, start + content)
        windows.append([tokenizer.cls_token_id, *flat_ids[chunk], tokenizer.sep_token_id])
        window_segments.append([-1, *flat_segments[chunk], -1])
        if start + content >= len(flat_ids) or (max_windows and len(windows) >= max_windows):
            break
        start += stride
    features = compute_rule_features(article.text, article.title, rule_features) if rule_features else None
    return EncodedArticle(sentences, n_title, windows, window_segments, features)


def collate(
    articles: Sequence[EncodedArticle], pad_token_id: int, max_positions: int
) -> dict[str, torch.Tensor]:
    """Batch encoded articles into padded tensors.

    Windows of all articles are stacked into one encoder batch. `token_segment` maps every window position
    to a row of the flattened `(batch * max_segments)` sentence table, or -1 for special and padding tokens.

    Returns:
        input_ids, attention_mask: `(W, L)` windows of the whole batch.
        token_segment: `(W, L)` flat segment row per position, -1 where none.
        segment_mask: `(B, S)` True where a segment exists and was encoded.
        body_mask: `(B, S)` True for body sentences (candidates for evidence and summary).
        position: `(B, S)` a sentence's index in the article body, clipped to `max_positions - 1`.
        rule_features: `(B, F)` float, only when the articles were encoded with rule features.

    Raises:
        ValueError: some articles have rule features and others do not, or not as many.
    """
    n_batch = len(articles)
    n_seg = max(a.n_segments for a in articles)
    n_windows = sum(len(a.windows) for a in articles)
    seq_len = max(len(w) for a in articles for w in a.windows)

    input_ids = torch.full((n_windows, seq_len), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n_windows, seq_len), dtype=torch.long)
    token_segment = torch.full((n_windows, seq_len), -1, dtype=torch.long)
    segment_mask = torch.zeros((n_batch, n_seg), dtype=torch.bool)
    body_mask = torch.zeros((n_batch, n_seg), dtype=torch.bool)
    position = torch.zeros((n_batch, n_seg), dtype=torch.long)

    row = 0
    for b, art in enumerate(articles):
        for ids, segs in zip(art.windows, art.window_segments, strict=True):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            seg = torch.tensor(segs)
            token_segment[row, : len(segs)] = torch.where(seg >= 0, seg + b * n_seg, -1)
            segment_mask[b, seg[seg >= 0]] = True
            row += 1
        body_mask[b, art.n_title : art.n_segments] = True
        position[b, art.n_title : art.n_segments] = torch.arange(len(art.sentences)).clamp(
            max=max_positions - 1
        )
    body_mask &= segment_mask
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_segment": token_segment,
        "segment_mask": segment_mask,
        "body_mask": body_mask,
        "position": position,
    }
    features = [a.rule_features for a in articles]
    if any(f is not None for f in features):
        if any(f is None for f in features) or len({len(f) for f in features if f is not None}) != 1:
            raise ValueError("either every article of a batch has the same rule features, or none has")
        batch["rule_features"] = torch.tensor(features, dtype=torch.float)  # (B, F)
    return batch
