"""The summary head fitted alone, on the sentence vectors of a frozen encoder.

Trained jointly (`naba train` by default), summary pairs pull the encoder too, so the tag scores depend on
them and cross-validation must carry them into every fold. Fitted alone, the summary head (an MLP and the
sentence-position embedding) learns from vectors computed once with the encoder frozen: the encoder, tag
heads, lexical head and every tuned decision stay exactly as they were, and it costs one forward pass per
article. `naba train --summary-training frozen` fits it after the tagging training; `naba fit-summary`
fits it on an existing artifact, writing a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from naba.models.artifacts import load_artifact, save_artifact
from naba.models.encoding import WindowConfig
from naba.models.errors import ArtifactError, DataError
from naba.models.lexical import LexicalHead
from naba.models.modeling import NabaModel
from naba.models.preprocessing import PreprocessConfig
from naba.models.records import Record, read_records
from naba.training.examples import TrainingCollator, encode_records

logger = logging.getLogger(__name__)


def fit_summary_head(
    model: NabaModel,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record],
    labels: list[str],
    preprocess: PreprocessConfig,
    window: WindowConfig,
    *,
    epochs: int = 10,
    learning_rate: float = 1e-3,
    batch_size: int = 16,
    max_windows: int = 2,
    oracle_sentences: int = 3,
    seed: int = 0,
) -> float:
    """Fit `model`'s summary head and position embedding, in place, on the records with a reference summary
    (BCE on their oracle sentences, as in joint training); nothing else changes. Returns the last epoch's
    mean loss.

    Raises:
        DataError: no record has a summary.
    """
    pairs = [r for r in records if r.summary]
    if not pairs:
        raise DataError("no training article has a 'summary': the summary head has nothing to learn from")
    examples = encode_records(pairs, labels, tokenizer, preprocess, window, max_windows, oracle_sentences)
    collator = TrainingCollator(tokenizer.pad_token_id, model.heads.max_positions)
    device = next(model.parameters()).device
    model.eval()
    cached = []  # per batch: sentence vectors (B, S, H), positions, body mask, oracle rows and targets
    with torch.no_grad():
        for start in tqdm(range(0, len(examples), batch_size), desc="summary head: encoding", mininterval=5):
            rows = list(examples.select(range(start, min(start + batch_size, len(examples)))))
            batch = {k: v.to(device) for k, v in collator(rows).items()}
            n_batch, n_seg = batch["segment_mask"].shape
            vectors = model.sentence_vectors(
                batch["input_ids"], batch["attention_mask"], batch["token_segment"], n_batch * n_seg
            ).view(n_batch, n_seg, -1)
            oracle = batch["body_mask"] & batch["summary_mask"].unsqueeze(-1)
            cached.append((vectors, batch["position"], batch["body_mask"], oracle, batch["summary_labels"]))

    params = [*model.summary_head.parameters(), *model.position.parameters()]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    model.dropout.train()  # dropout on the frozen vectors, as in joint training; the encoder stays in eval
    loss_sum = 0.0
    for _ in range(epochs):
        loss_sum = 0.0
        for j in torch.randperm(len(cached), generator=generator).tolist():
            vectors, position, body_mask, rows, targets = cached[j]
            logits = model.summary_logits(model.dropout(vectors), position, body_mask)
            loss = F.binary_cross_entropy_with_logits(logits[rows], targets[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
    model.eval()
    logger.info(
        "summary head fitted on %d articles, %d epochs: loss %.4f", len(pairs), epochs, loss_sum / len(cached)
    )
    return loss_sum / len(cached)


def fit_summary(
    model_dir: Path,
    train: Sequence[str],
    output: Path,
    *,
    epochs: int = 10,
    learning_rate: float = 1e-3,
    version: str | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """`naba fit-summary`: a copy of the artifact `model_dir` at `output` (new) whose summary head is fitted on
    the summary pairs of `train` (`fit_summary_head`), with `version` (default: the old one). Returns `output`.

    Raises:
        ArtifactError: `output` exists.
        DataError: no record of `train` has a summary.
    """
    if output.exists():
        raise ArtifactError(f"{output} already exists; fit-summary writes a new artifact, never over one")
    model, tokenizer, config = load_artifact(model_dir)
    lexical = LexicalHead.load(model_dir, config.labels) if config.lexical_weights else None
    records = read_records(train, known_labels=config.labels)
    loss = fit_summary_head(
        model, tokenizer, records, config.labels, config.preprocessing, config.window,
        epochs=epochs, learning_rate=learning_rate,
    )  # fmt: skip
    config = replace(config, version=version or config.version)
    config.training = {
        **config.training,
        "summary_head": {
            "fitted_on": list(train), "articles": sum(bool(r.summary) for r in records), "epochs": epochs,
            "learning_rate": learning_rate, "loss": round(loss, 4), "frozen": "encoder and tag heads",
        },
    }  # fmt: skip
    return save_artifact(model, tokenizer, config, output, weights_dtype, lexical)
