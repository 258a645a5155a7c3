"""`naba train`: fine-tune an encoder into a Naba artifact that tags, points at evidence and summarises.

Reads top to bottom like HF's `run_classification.py`: parse → logging → seed → data → label set → model →
`datasets.map` → `Trainer` → thresholds tuned on dev → evaluation → artifact. Records with `labels` train the
tagging head, records with a `summary` train the summary head on oracle sentences; a file may hold either or
both. With `--init-from` it continues from an existing artifact, and the label set may grow.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer, HfArgumentParser, Trainer, TrainingArguments, set_seed

from models.artifacts import NabaConfig, load_artifact, save_artifact
from models.encoding import EncodedArticle, WindowConfig, collate, encode_article
from models.errors import ArtifactError
from models.modeling import HeadConfig, NabaModel
from models.predictor import Predictor, resolve_device
from models.preprocessing import PreprocessConfig
from models.results import Article
from training.data import Record, data_hash, label_set, read_records, to_dataset
from training.evaluate import evaluate, predict_records
from training.metrics import tune_thresholds
from training.rouge import oracle_indices

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "aubmindlab/bert-base-arabertv02"
# Trainer settings that differ from transformers' defaults; any of them can still be given on the command line.
TRAINER_DEFAULTS = [
    "--report_to", "none", "--save_strategy", "no", "--logging_steps", "20", "--num_train_epochs", "3",
    "--per_device_train_batch_size", "8", "--learning_rate", "5e-5", "--warmup_steps", "0.1",
    "--remove_unused_columns", "false", "--disable_tqdm", "false",
]  # fmt: skip


@dataclass
class ModelArguments:
    """Which encoder to start from and how the model reads articles."""

    base_model: str = field(
        default=DEFAULT_BASE_MODEL, metadata={"help": "Hub name or local path of a BERT-style encoder."}
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "Continue from this Naba artifact (retraining); overrides base_model."},
    )
    labels: list[str] | None = field(
        default=None, metadata={"help": "Fix the label set; unknown labels in the data are then errors."}
    )
    max_length: int = field(default=512, metadata={"help": "Tokens per encoder window."})
    window_overlap: int = field(default=128, metadata={"help": "Tokens shared by consecutive windows."})
    max_train_windows: int = field(default=4, metadata={"help": "Windows per article kept while training."})
    summary_weight: float = field(default=1.0, metadata={"help": "Weight of the summary loss."})
    name: str = field(default="naba", metadata={"help": "Model name reported by the service."})
    version: str | None = field(default=None, metadata={"help": "Model version (default: a UTC timestamp)."})
    description: str = field(default="", metadata={"help": "First paragraph of the model card."})


@dataclass
class DataArguments:
    """Where the data comes from and where the artifact goes."""

    train: list[str] = field(metadata={"help": "Training files (JSONL, JSONL.GZ or CSV)."})
    output: str = field(metadata={"help": "Artifact directory to create; must not exist."})
    dev: list[str] | None = field(default=None, metadata={"help": "Dev files: thresholds and evaluation."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many (smoke runs)."})
    oracle_sentences: int = field(
        default=3, metadata={"help": "Most oracle sentences per reference summary."}
    )
    eval_summary_sentences: int = field(default=1, metadata={"help": "Summary length for dev ROUGE."})


class TrainingCollator:
    """Turns rows of the encoded dataset into model inputs plus tagging and summary targets."""

    def __init__(self, pad_token_id: int, max_positions: int) -> None:
        self.pad_token_id = pad_token_id
        self.max_positions = max_positions

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encoded = [
            EncodedArticle([""] * r["n_sentences"], r["n_title"], r["windows"], r["window_segments"])
            for r in rows
        ]
        batch = collate(encoded, self.pad_token_id, self.max_positions)
        summary_labels = torch.zeros(batch["body_mask"].shape)
        for b, r in enumerate(rows):
            for i in r["oracle"]:
                summary_labels[b, r["n_title"] + i] = 1.0
        batch["labels"] = torch.tensor([r["label_targets"] for r in rows], dtype=torch.float)
        batch["label_mask"] = torch.tensor([r["has_labels"] for r in rows], dtype=torch.bool)
        batch["summary_labels"] = summary_labels
        batch["summary_mask"] = torch.tensor([bool(r["oracle"]) for r in rows], dtype=torch.bool)
        return batch


def parse_args(argv: list[str]) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments), prog="naba train")
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(argv[0])  # type: ignore[return-value]
    return parser.parse_args_into_dataclasses([*TRAINER_DEFAULTS, *argv])  # type: ignore[return-value]


def check_output(data_args: DataArguments, model_args: ModelArguments) -> Path:
    """Fail before training, not after: the output must be new and never the artifact we start from."""
    output = Path(data_args.output).resolve()
    if output.exists():
        raise ArtifactError(f"{output} already exists; training writes a new artifact, never over an old one")
    if model_args.init_from and Path(model_args.init_from).resolve() == output:
        raise ArtifactError("--output must differ from --init-from: the served artifact is never written")
    return output


def choose_labels(records: list[Record], fixed: list[str] | None, previous: list[str] | None) -> list[str]:
    """The label set: fixed by the user, else the previous model's labels plus new ones, else the data's."""
    if fixed:
        return list(fixed)
    found = label_set(records)
    if previous:
        return list(previous) + [lbl for lbl in found if lbl not in previous]
    if not found:
        raise ArtifactError("the training data has no labels; give --labels or labelled articles")
    return found


def encode_records(
    records: list[Record],
    labels: list[str],
    tokenizer: Any,
    preprocess: PreprocessConfig,
    window: WindowConfig,
    model_args: ModelArguments,
    data_args: DataArguments,
) -> Any:
    """`datasets.map` the records into windows, label targets and oracle summary sentences."""

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        art = encode_article(
            Article(row["text"], row["title"] or None),
            tokenizer,
            preprocess,
            window,
            model_args.max_train_windows,
        )
        oracle = (
            oracle_indices(art.sentences, row["summary"], data_args.oracle_sentences)
            if row["summary"]
            else []
        )
        n_encoded = len({s for segs in art.window_segments for s in segs if s >= art.n_title})
        return {
            "windows": art.windows,
            "window_segments": art.window_segments,
            "n_title": art.n_title,
            "n_sentences": len(art.sentences),
            "oracle": [i for i in oracle if i < n_encoded],
            "label_targets": [float(lbl in row["labels"]) for lbl in labels],
        }

    dataset = to_dataset(records)
    return dataset.map(encode, remove_columns=["id", "title", "text", "summary"], desc="encoding articles")


def main(argv: list[str] | None = None) -> Path:
    model_args, data_args, training_args = parse_args(sys.argv[1:] if argv is None else argv)
    output = check_output(data_args, model_args)
    set_seed(training_args.seed)
    logger.info("model arguments %s", model_args)
    logger.info("data arguments %s", data_args)

    # Data: validated up front, so a bad line fails here with its file and line, not mid-training.
    train_records = read_records(data_args.train, known_labels=model_args.labels)
    dev_records = read_records(data_args.dev, known_labels=model_args.labels) if data_args.dev else []
    if data_args.max_train_samples:
        train_records = train_records[: data_args.max_train_samples]

    # Model: a fresh head on a pretrained encoder, or the previous artifact with its head grown.
    if model_args.init_from:
        model, tokenizer, previous = load_artifact(model_args.init_from)
        labels = choose_labels(train_records, model_args.labels, previous.labels)
        model.grow_labels(previous.labels, labels)
        base_model, window, preprocess = previous.base_model, previous.window, previous.preprocessing
    else:
        tokenizer = AutoTokenizer.from_pretrained(model_args.base_model, trust_remote_code=False)
        encoder = AutoModel.from_pretrained(model_args.base_model, trust_remote_code=False)
        labels = choose_labels(train_records, model_args.labels, None)
        model = NabaModel(
            encoder, HeadConfig(num_labels=len(labels), summary_weight=model_args.summary_weight)
        )
        base_model, preprocess = model_args.base_model, PreprocessConfig()
        max_length = min(model_args.max_length, encoder.config.max_position_embeddings)
        window = WindowConfig(max_length, min(model_args.window_overlap, (max_length - 2) // 2))
    logger.info("labels: %s", labels)

    train_set = encode_records(train_records, labels, tokenizer, preprocess, window, model_args, data_args)
    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{output.name}.train.", dir=output.parent))
    training_args.output_dir = str(workdir)
    try:
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train_set,
            data_collator=TrainingCollator(tokenizer.pad_token_id, model.heads.max_positions),
        )
        train_result = trainer.train()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    config = NabaConfig(
        labels=labels,
        thresholds=[0.5] * len(labels),
        base_model=base_model,
        window=window,
        heads=model.heads,
        preprocessing=preprocess,
        name=model_args.name,
        version=model_args.version or datetime.now(UTC).strftime("%Y%m%d-%H%M%S"),
        description=model_args.description,
        data_hash=data_hash([*data_args.train, *(data_args.dev or [])]),
        training={
            **{k: v for k, v in asdict(model_args).items() if v is not None},
            "train_files": data_args.train,
            "dev_files": data_args.dev,
            "train_articles": len(train_records),
            "epochs": training_args.num_train_epochs,
            "learning_rate": training_args.learning_rate,
            "batch_size": training_args.per_device_train_batch_size,
            "seed": training_args.seed,
            "train_loss": round(train_result.training_loss, 4),
            "train_seconds": round(train_result.metrics.get("train_runtime", 0.0), 1),
        },
    )
    predictor = Predictor(model, tokenizer, config, resolve_device("auto"))
    if dev_records:
        tune_on_dev(predictor, dev_records)
        config.metrics = evaluate(predictor, dev_records, data_args.eval_summary_sentences)
        config.metrics["data"] = ", ".join(data_args.dev or [])
    return save_artifact(model, tokenizer, config, output)


def tune_on_dev(predictor: Predictor, records: list[Record]) -> None:
    """Set each label's threshold to the one that maximises its F1 on the labelled dev articles."""
    labelled = [r for r in records if r.labels is not None]
    if not labelled:
        return
    analyses = predict_records(predictor, labelled)
    labels = predictor.labels
    probs = np.array([[a.scores[lbl] for lbl in labels] for a in analyses])
    truth = np.array([[float(lbl in (r.labels or ())) for lbl in labels] for r in labelled])
    predictor.config.thresholds = [round(float(t), 4) for t in tune_thresholds(probs, truth)]
    logger.info("thresholds tuned on dev: %s", predictor.thresholds)
