"""Build a BERT encoder from nothing: a WordPiece vocabulary trained on Arabic text and random weights.

No model hub is reachable from every machine Naba runs on. This module makes a base encoder that
`naba train --base-model DIR` loads with `from_pretrained` exactly as it would load AraBERT; tests use it with a
tiny configuration, and `naba build-starter` with a small one. Random weights know no Arabic: a starter model
built on them is a working pipeline, not a good tagger.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sentencepiece as spm
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from naba.models.preprocessing import PreprocessConfig, normalize

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TokenizerKind = Literal["wordpiece", "sentencepiece"]


@dataclass(frozen=True)
class EncoderSize:
    """Architecture of a from-scratch BERT."""

    vocab_size: int = 16_000
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512

    @classmethod
    def bert_shaped(
        cls, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, max_position_embeddings: int
    ) -> EncoderSize:
        """A size whose feed-forward layer is 4 × hidden wide, as in BERT: what the command lines build."""
        return cls(vocab_size, hidden_size, num_layers, num_heads, 4 * hidden_size, max_position_embeddings)


def _bert_template(tokenizer: Tokenizer) -> processors.TemplateProcessing:
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )


def _wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """A transformers tokenizer over a `tokenizers` object: saved as `tokenizer.json`, loaded by AutoTokenizer."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


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
    tokenizer.post_processor = _bert_template(tokenizer)
    tokenizer.decoder = decoders.WordPiece()
    return _wrap(tokenizer)


def train_sentencepiece(
    texts: Iterable[str], vocab_size: int, preprocess: PreprocessConfig | None = None
) -> PreTrainedTokenizerFast:
    """Train a SentencePiece unigram vocabulary on `texts` and serve it as a fast tokenizer.

    SentencePiece learns subwords from raw text without a word pre-tokeniser, which suits Arabic's attached
    clitics (و، ب، ال). Its pieces and scores become a `tokenizers` Unigram model with the same special tokens as
    WordPiece, so the rest of Naba treats both alike.
    """
    preprocess = preprocess or PreprocessConfig()
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(normalize(t, preprocess) for t in texts),
        model_writer=proto,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=0.9999,
        hard_vocab_limit=False,  # a small corpus yields fewer pieces rather than an error
        pad_id=0, pad_piece="[PAD]", unk_id=1, unk_piece="[UNK]", bos_id=2, bos_piece="[CLS]",
        eos_id=3, eos_piece="[SEP]", user_defined_symbols=["[MASK]"],
        minloglevel=2,
    )  # fmt: skip
    processor = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=processor.unk_id(), byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Replace(" ", "▁")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    tokenizer.post_processor = _bert_template(tokenizer)
    return _wrap(tokenizer)


TRAINERS = {"wordpiece": train_wordpiece, "sentencepiece": train_sentencepiece}


def bert_config(tokenizer: PreTrainedTokenizerFast, size: EncoderSize) -> BertConfig:
    """The BERT architecture of `size` over `tokenizer`'s vocabulary."""
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        intermediate_size=size.intermediate_size,
        max_position_embeddings=size.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_encoder(
    texts: Iterable[str],
    output_dir: str | Path,
    size: EncoderSize,
    seed: int = 0,
    tokenizer_kind: TokenizerKind = "wordpiece",
) -> Path:
    """Train a tokenizer on `texts`, create a randomly initialised BERT of `size`, save both to `output_dir`."""
    tokenizer = TRAINERS[tokenizer_kind](texts, size.vocab_size)
    torch.manual_seed(seed)
    model = BertModel(bert_config(tokenizer, size))
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.model_max_length = size.max_position_embeddings
    tokenizer.save_pretrained(output_dir)
    logger.info("built a random-weight encoder (%d tokens, %s) in %s", len(tokenizer), size, output_dir)
    return output_dir
