"""Labelled articles and summary pairs as training examples: encoder windows with tagging, evidence and oracle
summary targets (`encode_records`), batched for the model by `TrainingCollator`.

`naba train` and `naba fit-summary` both build their examples here, through `naba.models.encoding` as the
predictor does, so training and inference read an article the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from naba.models.encoding import EncodedArticle, WindowConfig, collate, encode_article
from naba.models.preprocessing import PreprocessConfig
from naba.models.records import Record, to_dataset
from naba.models.results import Article
from naba.training.evaluate import evidence_hit
from naba.training.rouge import oracle_indices

if TYPE_CHECKING:
    import datasets


class TrainingCollator:
    """Turns rows of the encoded dataset into model inputs plus tagging and summary targets."""

    def __init__(self, pad_token_id: int, max_positions: int) -> None:
        self.pad_token_id = pad_token_id
        self.max_positions = max_positions

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encoded = [
            EncodedArticle(
                [""] * r["n_sentences"],
                r["n_title"],
                r["windows"],
                r["window_segments"],
                r.get("rule_features"),
            )
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
        batch["evidence_labels"], batch["evidence_mask"] = self.evidence_targets(
            rows, batch["body_mask"].shape
        )
        return batch

    @staticmethod
    def evidence_targets(rows: list[dict[str, Any]], shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence-level targets `(B, S, K)` and their mask, for labelled articles only.

        A label the article lacks: every encoded body sentence is a negative for it. A label it has: the
        sentences holding the annotators' quote are positives; its other sentences get no target, since an
        article may support a label in more places than the one quoted.
        """
        n_labels = len(rows[0]["label_targets"]) if rows else 0
        targets = torch.zeros((*shape, n_labels))
        mask = torch.zeros((*shape, n_labels), dtype=torch.bool)
        for b, r in enumerate(rows):
            if not r["has_labels"]:
                continue
            body = slice(r["n_title"], r["n_title"] + r["n_encoded"])
            for k, target in enumerate(r["label_targets"]):
                if target == 0.0:
                    mask[b, body, k] = True
                for i in r["evidence"][k]:
                    targets[b, r["n_title"] + i, k] = 1.0
                    mask[b, r["n_title"] + i, k] = True
        return targets, mask


def evidence_sentences(text: str, sentences: list[str], quote: str) -> list[int]:
    """Indices of the sentences that hold part of `quote`, by the rule `naba evaluate` scores evidence with."""
    return [i for i, sentence in enumerate(sentences) if evidence_hit(text, quote, [sentence])]


def encode_records(
    records: list[Record],
    labels: list[str],
    tokenizer: Any,
    preprocess: PreprocessConfig,
    window: WindowConfig,
    max_windows: int,
    oracle_sentences: int,
    rule_features: Sequence[str] = (),
) -> datasets.Dataset:
    """`datasets.map` the records into windows (the first `max_windows` of each), label targets and oracle
    summary sentences (at most `oracle_sentences`); with `rule_features` (the model's `heads.rule_features`),
    also those features, in that order."""

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        art = encode_article(
            Article(row["text"], row["title"] or None),
            tokenizer,
            preprocess,
            window,
            max_windows,
            rule_features,
        )
        oracle = oracle_indices(art.sentences, row["summary"], oracle_sentences) if row["summary"] else []
        n_encoded = len({s for segs in art.window_segments for s in segs if s >= art.n_title})
        quotes = dict(zip(row["evidence_labels"], row["evidence_quotes"], strict=True))
        evidence = [
            evidence_sentences(row["text"], art.sentences[:n_encoded], quotes[lbl])
            if lbl in quotes and lbl in row["labels"]
            else []
            for lbl in labels
        ]
        features = {"rule_features": art.rule_features} if rule_features else {}
        return {
            **features,
            "windows": art.windows,
            "window_segments": art.window_segments,
            "n_title": art.n_title,
            "n_sentences": len(art.sentences),
            "oracle": [i for i in oracle if i < n_encoded],
            "n_encoded": n_encoded,
            "evidence": evidence,
            "label_targets": [float(lbl in row["labels"]) for lbl in labels],
        }

    dataset = to_dataset(records)
    columns = ["id", "title", "text", "summary", "evidence_labels", "evidence_quotes"]
    return dataset.map(encode, remove_columns=columns, desc="encoding articles")
