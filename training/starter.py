"""`naba build-starter`: the model `make serve` builds when there is none and no pretrained encoder offline.

It trains a small WordPiece vocabulary and a small random-weight BERT, then fine-tunes it with `naba train` on
the labelled data and BBC summary pairs under `NABA_DATA_DIR` when present, else on the five seed articles.
Without a pretrained encoder this model is weak (see its card); it exists so that the whole service works
end to end on a fresh, offline machine.
"""

from __future__ import annotations

import logging
import tempfile
from importlib.resources import files
from pathlib import Path

from naba.models.errors import DataError
from naba.models.records import read_records
from naba.training.encoder import EncoderSize, build_encoder
from naba.training.train import DataArguments, ModelArguments, train_model, training_arguments

logger = logging.getLogger(__name__)

SEEDS = Path(str(files("naba.seeds") / "seeds.jsonl"))  # package data, in the wheel too
STARTER_SIZE = EncoderSize(
    vocab_size=8_000,
    hidden_size=128,
    num_layers=2,
    num_heads=2,
    intermediate_size=512,
    max_position_embeddings=256,
)
DESCRIPTION = (
    "**Starter model.** Its encoder was trained from random weights on {what} (no pretrained Arabic encoder was "
    "available offline), so its tags are far less accurate than a fine-tuned AraBERT. It exists so the service "
    "works end to end; replace it with a model fine-tuned from a pretrained encoder."
)


def find_data(data_dir: Path, seeds: Path = SEEDS) -> tuple[list[str], list[str], str]:
    """Training and dev files under `data_dir` when they exist, else the seed articles."""
    labelled, summaries = data_dir / "labelled", data_dir / "summaries"
    train_files = [labelled / "train.jsonl", summaries / "bbc_train.jsonl"]
    dev_files = [labelled / "dev.jsonl", summaries / "bbc_dev.jsonl"]
    if all(p.is_file() for p in train_files + dev_files):
        return (
            [str(p) for p in train_files],
            [str(p) for p in dev_files],
            f"the labelled and BBC data in {data_dir}",
        )
    logger.warning("no data under %s: building the starter model from the five seed articles", data_dir)
    return [str(seeds)], [], "the five seed articles"


def build_starter(
    output: str | Path,
    data_dir: Path,
    *,
    seeds: Path = SEEDS,
    epochs: float = 4.0,
    max_summary_articles: int = 1500,
) -> Path:
    """`naba build-starter`: a small encoder built from the training texts (`find_data`), fine-tuned into the
    artifact `output` as `naba train` does. Returns the artifact's directory.

    Raises:
        DataError: the training files hold no text.
    """
    train_files, dev_files, what = find_data(data_dir, seeds)
    texts = [r.text for r in read_records(train_files)]
    if not texts:
        raise DataError("no training text found", path=", ".join(train_files))
    with tempfile.TemporaryDirectory() as tmp:
        encoder_dir = build_encoder(texts, Path(tmp) / "encoder", STARTER_SIZE)
        model_args = ModelArguments(
            base_model=str(encoder_dir), name="naba-starter", description=DESCRIPTION.format(what=what),
            max_length=256, window_overlap=64, max_train_windows=2,
        )  # fmt: skip
        data_args = DataArguments(
            train=train_files, output=str(output), dev=dev_files or None,
            max_train_samples=max_summary_articles + 400,
        )  # fmt: skip
        training_args = training_arguments(
            num_train_epochs=epochs, learning_rate=1e-3, per_device_train_batch_size=16
        )
        return train_model(model_args, data_args, training_args)
