"""Build a BERT encoder from nothing: a WordPiece vocabulary trained on Arabic text and random weights.

No model hub is reachable from every machine Naba runs on. This module makes a base encoder that
`naba train --base-model DIR` loads with `from_pretrained` exactly as it would load AraBERT; tests use it with a
tiny configuration, and `naba build-starter` with a small one. Random weights know no Arabic: a starter model
built on them is a working pipeline, not a good tagger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from models.preprocessing import PreprocessConfig, normalize

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class EncoderSize:
    """Architecture of a from-scratch BERT."""

    vocab_size: int = 16_000
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512


def train_wordpiece(
    texts: Iterable[str], vocab_size: int, preprocess: PreprocessConfig | None = None
) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece tokenizer on `texts`, normalised as the model will see them."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2)
    preprocess = preprocess or PreprocessConfig()
    tokenizer.train_from_iterator((normalize(t, preprocess) for t in texts), trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def build_encoder(texts: Iterable[str], output_dir: str | Path, size: EncoderSize, seed: int = 0) -> Path:
    """Train a tokenizer on `texts`, create a randomly initialised BERT of `size`, save both to `output_dir`."""
    tokenizer = train_wordpiece(texts, size.vocab_size)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        intermediate_size=size.intermediate_size,
        max_position_embeddings=size.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.model_max_length = size.max_position_embeddings
    tokenizer.save_pretrained(output_dir)
    logger.info("built a random-weight encoder (%d tokens, %s) in %s", len(tokenizer), size, output_dir)
    return output_dir
