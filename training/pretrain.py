"""`naba pretrain`: masked-language-model pretraining of a BERT encoder on raw Arabic text.

From scratch it trains a WordPiece vocabulary (`tokenizers`) and a randomly initialised BERT; with
`--init-from NAME_OR_PATH` it continues pretraining an existing encoder (domain adaptation to a user's archive)
with that encoder's own vocabulary. `pretrain_encoder` reads like HF's `run_mlm.py`, its arguments
(`PretrainArguments`, `TrainingArguments`) parsed by `naba.cli.pretrain`: seed → corpus (`datasets`) →
held-out split → tokenizer → tokenise and pack into blocks (`datasets.map`) → `Trainer` with
`DataCollatorForLanguageModeling` → held-out MLM loss and masked-token accuracy → encoder directory. A BERT
scores the vocabulary at masked positions only (`naba.training.masked_lm`): 2.6x less time per step on CPU.

Text is normalised exactly as the predictor normalises articles, so the encoder sees what it will be served.
Checkpoints go to `<output>.checkpoints/`; `--resume` continues from the last one after a crash, with the same
vocabulary and held-out split. The finished encoder is written to a temporary sibling and renamed into place,
so a killed run never leaves a half-written encoder at `--output`. bf16 (`--bf16`) and multi-GPU (`torchrun`)
come from `TrainingArguments` and `accelerate`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from naba.models.artifacts import atomic_directory
from naba.models.errors import ArtifactError, DataError
from naba.models.preprocessing import PreprocessConfig, normalize
from naba.training.embeddings import cooccurrence_vectors
from naba.training.encoder import TRAINERS, EncoderSize, TokenizerKind, bert_config
from naba.training.masked_lm import MaskedPositionsBertForMaskedLM, predicted_ids

logger = logging.getLogger(__name__)

METRICS_FILE = "pretrain_metrics.json"
TOKENIZER_DIR = "tokenizer"  # inside the checkpoint directory: the vocabulary a resumed run must reuse
# Trainer settings that differ from transformers' defaults: `naba pretrain`'s defaults, each of which can still be
# given on its command line (`naba.cli.pretrain`).
TRAINER_DEFAULTS: dict[str, Any] = {
    "report_to": "none", "logging_steps": 50, "save_strategy": "steps", "save_steps": 500,
    "save_total_limit": 2, "eval_strategy": "steps", "eval_steps": 500,
    "per_device_train_batch_size": 32, "per_device_eval_batch_size": 64, "learning_rate": 5e-4,
    "warmup_steps": 0.06, "weight_decay": 0.01, "num_train_epochs": 1.0, "disable_tqdm": False,
}  # fmt: skip


@dataclass
class PretrainArguments:
    """What to pretrain on, which encoder to start from, and where the result goes."""

    corpus: list[str] = field(metadata={"help": "JSONL / JSONL.GZ files with a `text` field."})
    output: str = field(metadata={"help": "Encoder directory to create; must not exist."})
    init_from: str | None = field(
        default=None,
        metadata={"help": "Continue pretraining this encoder (hub name or path) instead of starting afresh."},
    )
    resume: bool = field(default=False, metadata={"help": "Resume from the last checkpoint of this output."})
    text_field: str = field(default="text", metadata={"help": "Name of the text field in the corpus files."})
    max_articles: int | None = field(default=None, metadata={"help": "Use only this many articles."})
    heldout_fraction: float = field(default=0.01, metadata={"help": "Share of articles held out for eval."})
    max_heldout_articles: int = field(default=500, metadata={"help": "Most held-out articles."})
    block_size: int = field(default=256, metadata={"help": "Tokens per training sequence."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens masked."})
    embedding_init: Literal["random", "cooccurrence"] = field(
        default="random",
        metadata={
            "help": "From scratch: start token embeddings from corpus co-occurrence vectors (PPMI + SVD)."
        },
    )
    max_minutes: float | None = field(
        default=None,
        metadata={"help": "Stop training after this many minutes (then evaluate and save), e.g. on a CPU."},
    )
    tokenizer: TokenizerKind = field(
        default="wordpiece", metadata={"help": "Vocabulary to train from scratch."}
    )
    vocab_size: int = field(default=EncoderSize.vocab_size)
    hidden_size: int = field(default=EncoderSize.hidden_size)
    num_layers: int = field(default=EncoderSize.num_layers)
    num_heads: int = field(default=EncoderSize.num_heads)
    max_position_embeddings: int = field(default=EncoderSize.max_position_embeddings)

    def __post_init__(self) -> None:
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"--heldout-fraction must be between 0 and 1, got {self.heldout_fraction}")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"--mlm-probability must be between 0 and 1, got {self.mlm_probability}")
        if self.block_size < 8:
            raise ValueError(f"--block-size must be at least 8 tokens, got {self.block_size}")

    @property
    def size(self) -> EncoderSize:
        return EncoderSize.bert_shaped(
            self.vocab_size, self.hidden_size, self.num_layers, self.num_heads, self.max_position_embeddings
        )


def load_corpus(files: list[str], text_field: str, cache_dir: Path) -> datasets.Dataset:
    """One `text` column from every file; files may differ in their other fields."""
    parts = []
    for file in files:
        if not Path(file).is_file():
            raise DataError("no such file", file)
        part = datasets.load_dataset("json", data_files=file, split="train", cache_dir=str(cache_dir))
        if text_field not in part.column_names:
            raise DataError(f"no {text_field!r} field (fields: {', '.join(part.column_names)})", file)
        part = part.select_columns([text_field])
        parts.append(part.rename_column(text_field, "text") if text_field != "text" else part)
    corpus = datasets.concatenate_datasets(parts).filter(
        lambda row: bool(row["text"] and row["text"].strip())
    )
    if len(corpus) < 2:
        raise DataError(
            "the corpus needs at least two non-empty articles (one is held out)", ", ".join(files)
        )
    return corpus


def split_corpus(corpus: datasets.Dataset, args: PretrainArguments, seed: int) -> datasets.DatasetDict:
    """Shuffle once (seeded) and hold out whole articles, so no held-out sentence is ever trained on."""
    corpus = corpus.shuffle(seed=seed)
    if args.max_articles:
        corpus = corpus.select(range(min(args.max_articles, len(corpus))))
    n_heldout = max(1, min(args.max_heldout_articles, round(len(corpus) * args.heldout_fraction)))
    return datasets.DatasetDict(
        train=corpus.select(range(n_heldout, len(corpus))), heldout=corpus.select(range(n_heldout))
    )


def pack(
    split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, block_size: int, preprocess: PreprocessConfig
) -> datasets.Dataset:
    """Normalise, tokenise and cut the concatenated articles into [CLS] … [SEP] blocks of `block_size`.

    Packing wastes no compute on padding; a block may span two articles, as in BERT's own pretraining.
    """
    body = block_size - 2
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id

    def tokenise_and_pack(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        texts = [normalize(t, preprocess) for t in batch["text"]]
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        stream = [token for article in ids for token in (*article, sep_id)]
        blocks = [stream[i : i + body] for i in range(0, len(stream), body)]
        blocks = [b for b in blocks if len(b) >= body // 2]  # drop a short tail rather than pad it
        return {"input_ids": [[cls_id, *b, sep_id] for b in blocks]}

    return split.map(
        tokenise_and_pack, batched=True, batch_size=256, remove_columns=split.column_names, desc="packing"
    )


def masked_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """Share of masked tokens the model restores exactly (labels are -100 everywhere else)."""
    predicted, labels = np.asarray(prediction.predictions), np.asarray(prediction.label_ids)
    masked = labels != -100
    return {"masked_accuracy": float((predicted[masked] == labels[masked]).mean()) if masked.any() else 0.0}


class TimeBudget(TrainerCallback):
    """Ends training once `minutes` have passed, so a CPU run uses the time it has and still saves an encoder."""

    def __init__(self, minutes: float) -> None:
        self.deadline = time.monotonic() + 60.0 * minutes

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= self.deadline:
            logger.info("time budget reached at step %d: stopping", state.global_step)
            control.should_training_stop = True
        return control


def init_embeddings(model: Any, blocks: list[list[int]], special_ids: list[int], seed: int) -> None:
    """Overwrite the token embeddings of tokens seen in `blocks` with co-occurrence vectors, scaled to the
    norm a randomly initialised row has, so the rest of the network sees inputs of the size it expects."""
    embeddings = model.get_input_embeddings().weight
    vectors, seen = cooccurrence_vectors(
        blocks, embeddings.shape[0], embeddings.shape[1], skip=special_ids, seed=seed
    )
    scale = embeddings.detach()[torch.from_numpy(seen)].norm(dim=1).mean()
    with torch.no_grad():
        rows = torch.from_numpy(np.flatnonzero(seen))
        embeddings[rows] = torch.from_numpy(vectors[seen]).to(embeddings.dtype) * scale


def build_model(
    args: PretrainArguments, train_split: datasets.Dataset, checkpoints: Path, resuming: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The encoder to pretrain and its tokenizer: an existing encoder, or a new vocabulary and random BERT.

    A new vocabulary is saved in the checkpoint directory at once, so a resumed run tokenises identically.
    """
    if args.init_from:
        tokenizer = AutoTokenizer.from_pretrained(args.init_from, trust_remote_code=False)
        config = AutoConfig.from_pretrained(args.init_from, trust_remote_code=False)
        loader = MaskedPositionsBertForMaskedLM if config.model_type == "bert" else AutoModelForMaskedLM
        return loader.from_pretrained(args.init_from, trust_remote_code=False), tokenizer
    saved = checkpoints / TOKENIZER_DIR
    if resuming and saved.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(saved)
        # Written by an earlier run (the branch below) as a `tokenizer.json`: always a fast tokenizer.
        assert isinstance(tokenizer, PreTrainedTokenizerFast)
    else:
        preprocess = PreprocessConfig()
        texts = (normalize(t, preprocess) for t in train_split["text"])
        tokenizer = TRAINERS[args.tokenizer](texts, args.vocab_size)
        tokenizer.model_max_length = args.max_position_embeddings
        tokenizer.save_pretrained(saved)
    return MaskedPositionsBertForMaskedLM(bert_config(tokenizer, args.size)), tokenizer


def pretrain_encoder(args: PretrainArguments, training_args: TrainingArguments) -> Path:
    """Pretrain (or, with `--resume`, go on pretraining) an encoder and write it to `args.output`: `naba
    pretrain`. Returns the encoder's directory.

    Raises:
        ArtifactError: the output exists, or checkpoints of an earlier run do and `resume` is not set.
        DataError: a corpus file is missing or has no text field, or holds too little text.
    """
    output = Path(args.output).resolve()
    if output.exists():
        raise ArtifactError(
            f"{output} already exists; pretraining writes a new encoder, never over an old one"
        )
    checkpoints = output.with_name(f"{output.name}.checkpoints")
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if (last or (checkpoints / TOKENIZER_DIR).exists()) and not args.resume:
        raise ArtifactError(f"{checkpoints} holds an earlier run: pass --resume to continue it, or delete it")
    training_args.output_dir = str(checkpoints)
    set_seed(training_args.seed)
    logger.info("pretrain arguments %s", args)

    # Corpus: the split depends only on the data and the seed, so a resumed run holds out the same articles.
    checkpoints.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(args.corpus, args.text_field, checkpoints / "datasets")
    splits = split_corpus(corpus, args, training_args.seed)
    model, tokenizer = build_model(args, splits["train"], checkpoints, resuming=args.resume)
    max_positions = model.config.max_position_embeddings
    if args.block_size > max_positions:
        raise ArtifactError(f"--block-size {args.block_size} exceeds the encoder's {max_positions} positions")
    preprocess = PreprocessConfig()
    train_set = pack(splits["train"], tokenizer, args.block_size, preprocess)
    heldout_set = pack(splits["heldout"], tokenizer, args.block_size, preprocess)
    if len(train_set) == 0 or len(heldout_set) == 0:
        raise DataError(
            f"too little text for blocks of {args.block_size} tokens "
            f"({len(train_set)} training, {len(heldout_set)} held-out blocks)",
            ", ".join(args.corpus),
        )
    if args.embedding_init == "cooccurrence" and not args.init_from and last is None:
        init_embeddings(model, train_set["input_ids"], tokenizer.all_special_ids, training_args.seed)
    logger.info(
        "%d articles → %d training blocks, %d held-out articles → %d blocks of %d tokens",
        len(splits["train"]), len(train_set), len(splits["heldout"]), len(heldout_set), args.block_size,
    )  # fmt: skip

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=heldout_set,
        data_collator=DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=args.mlm_probability, seed=training_args.seed
        ),
        compute_metrics=masked_accuracy,
        preprocess_logits_for_metrics=predicted_ids,
        callbacks=[TimeBudget(args.max_minutes)] if args.max_minutes else None,
    )
    before = trainer.evaluate() if last is None else None
    started = time.monotonic()
    train_result = trainer.train(resume_from_checkpoint=last)
    after = trainer.evaluate()
    metrics = {
        "heldout_loss": round(after["eval_loss"], 4),
        "heldout_perplexity": round(math.exp(min(after["eval_loss"], 50.0)), 2),
        "heldout_masked_accuracy": round(after["eval_masked_accuracy"], 4),
        "initial_heldout_loss": round(before["eval_loss"], 4) if before else None,
        "initial_heldout_masked_accuracy": round(before["eval_masked_accuracy"], 4) if before else None,
        "train_loss": round(train_result.training_loss, 4),
        "steps": trainer.state.global_step,
        "train_tokens": trainer.state.global_step
        * training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * max(1, training_args.world_size)
        * args.block_size,
        "train_articles": len(splits["train"]),
        "heldout_articles": len(splits["heldout"]),
        "seconds_this_run": round(time.monotonic() - started, 1),
        "device": str(training_args.device),
        "arguments": {k: v for k, v in asdict(args).items() if v is not None},
        "trainer": {
            "learning_rate": training_args.learning_rate,
            "batch_size": training_args.per_device_train_batch_size,
            "epochs": training_args.num_train_epochs,
            "max_steps": training_args.max_steps,
            "seed": training_args.seed,
            "bf16": training_args.bf16,
        },
        "log_history": trainer.state.log_history,
    }
    logger.info(
        "held-out MLM loss %.3f (was %s), masked-token accuracy %.3f",
        metrics["heldout_loss"], metrics["initial_heldout_loss"], metrics["heldout_masked_accuracy"],
    )  # fmt: skip
    if trainer.is_world_process_zero():
        assert isinstance(trainer.model, PreTrainedModel)  # the model passed in above, unwrapped
        save_encoder(trainer.model, tokenizer, metrics, output)
        shutil.rmtree(checkpoints, ignore_errors=True)
    return output


def save_encoder(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, metrics: dict[str, Any], output: Path
) -> Path:
    """Write the encoder (with its MLM head, for further pretraining) beside `output`, then rename it in."""
    with atomic_directory(output) as tmp:
        model.save_pretrained(tmp)  # safetensors
        tokenizer.save_pretrained(tmp)
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, ensure_ascii=False, indent=2), "utf-8")
    logger.info("saved the pretrained encoder to %s", output)
    return output
