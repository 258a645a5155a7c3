"""`naba weak-label`: weak supervision from the annotation guide, for the unlabelled corpus.

Three steps, each a plain function of its input:

1. **Labelling functions** (`naba.models.rules.LABELLING_FUNCTIONS`, shared with the model's rule features):
   named regular expressions written from LABELS.md, matched on each *sentence* of an article after full
   folding. A function votes for its label (+1) or against it (-1), or abstains, after the guide's exclusions
   (`masks`) and more specific functions (`yields_to`) have had their say (see `naba.models.rules`). A positive vote
   names its sentence, which can become the evidence quote.
2. **Label model** (`LabelModel`): a naive-Bayes weighted vote, as in Snorkel. An article's vote from a
   function is its vote in any sentence; one implicit function per label, `<label>:no_positive`, votes
   against the label when none of its positive functions fired. Each function j has an accuracy a_j, the
   share of its votes that are right, estimated on labelled training articles with its hand-set `prior` as
   pseudo-counts: a_j = (right_j + m * prior_j) / (votes_j + m). A vote's weight is the log-likelihood ratio
   it carries beyond the label's base rate b (the training share of articles with the label):
   w_j = logit(q_j) - logit(b), with q_j = a_j for a positive vote and 1 - a_j for a negative one, clamped
   so that no function argues against its own direction. Then logit P(label) = logit(b) + sum_j w_j over the
   functions that voted: one vote alone gives P = q_j, agreeing votes add up, conflicting votes cancel. A
   label is decided when max(P, 1 - P) reaches the confidence threshold; otherwise the model abstains on it.
   Without labelled data every function keeps its prior and b = 1/2: a plain accuracy-weighted vote.
3. **Output** (`weak_label`): every corpus article whose three labels are all decided becomes one record in
   the labelled format `naba train` reads, with the verbatim evidence sentence of each positive label (the
   body sentence whose positive votes weigh most) and, in a `weak` field that `naba.models.records` ignores, the
   confidence of each decision. Articles of the labelled files (training, dev, hold-out) are never emitted,
   so no dev article leaks into training and no training article appears twice.

`evaluate` measures it on labelled data: each function's coverage and precision, and the combined labeller's
coverage, precision, recall and F1 per label, on the articles it decides and overall.

    naba weak-label --corpus ant_multisource.jsonl.gz ant_jawhara.jsonl.gz --output weak.jsonl
    naba weak-label --evaluate ../shared/data/labelled/dev.jsonl          # measure only
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy.special import expit
from tqdm import tqdm

from naba.models.errors import DataError
from naba.models.records import Record, iter_rows
from naba.models.rules import (
    FUNCTIONS_BY_NAME,
    LABELLING_FUNCTIONS,
    LABELS,
    NEGATIVE,
    POSITIVE,
    SentenceVotes,
    article_votes,
    fired_functions,
    no_positive_name,
)
from naba.training.metrics import classification_report

logger = logging.getLogger(__name__)

DEFAULT_MIN_CONFIDENCE = 0.9
PRIOR_STRENGTH = 2.0  # m: pseudo-votes behind each function's hand-set prior accuracy
NO_POSITIVE_PRIOR = 0.85  # prior accuracy of each label's implicit "no positive function fired" vote
# Corpus rows carry a `corpus` field, but `naba.models.records.Record` does not keep it, so corpora are told apart
# by their id prefixes (see ../shared/data/README.md).
CORPUS_ID_PREFIXES = {
    "saudinewsnet": ("SNN-",),
    "ant_jawhara": ("JA-",),
    "ant_multisource": ("AL-", "BB-", "CN-", "FR-", "SK-"),
}


@dataclass(frozen=True)
class Decision:
    """The label model's call on one label of one article.

    Attributes:
        value: True (positive), False (negative) or None (abstain).
        probability: P(label) under the model.
        evidence: the body span of the evidence sentence of a positive decision.
    """

    value: bool | None
    probability: float
    evidence: tuple[int, int] | None = None

    @property
    def confidence(self) -> float:
        """How sure the model is of its decision (or would be, for an abstention)."""
        return max(self.probability, 1.0 - self.probability)


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1.0 - 1e-3)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class LabelModel:
    """Naive-Bayes weighted vote over labelling functions; see the module docstring.

    Attributes:
        accuracies: function name (including `<label>:no_positive`) -> estimated accuracy of its votes.
        base_rates: label -> share of articles with it (1/2 without labelled data).
        min_confidence: a label is decided when max(P, 1 - P) >= this, else the model abstains on it.
    """

    accuracies: dict[str, float]
    base_rates: dict[str, float]
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def __post_init__(self) -> None:
        if not 0.5 <= self.min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in [0.5, 1), got {self.min_confidence}")

    @classmethod
    def from_priors(cls, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> LabelModel:
        """Every function at its hand-set prior accuracy and even base rates: a plain weighted vote."""
        return cls(_prior_accuracies(), dict.fromkeys(LABELS, 0.5), min_confidence)

    @classmethod
    def fit(
        cls,
        records: Iterable[Record],
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        prior_strength: float = PRIOR_STRENGTH,
    ) -> LabelModel:
        """Estimate each function's accuracy and each label's base rate on labelled records.

        Raises:
            DataError: when no record carries labels.
        """
        right, votes, positives = Counter[str](), Counter[str](), Counter[str]()
        n = 0
        for record in records:
            if record.labels is None:
                continue
            n += 1
            sentences = article_votes(record)
            for label in LABELS:
                truth = POSITIVE if label in record.labels else NEGATIVE
                positives[label] += truth == POSITIVE
                for name, vote in fired_functions(sentences, label).items():
                    votes[name] += 1
                    right[name] += vote == truth
        if not n:
            raise DataError("no labelled records to fit the label model on")
        accuracies = {
            name: (right[name] + prior_strength * prior) / (votes[name] + prior_strength)
            for name, prior in _prior_accuracies().items()
        }
        base_rates = {label: (positives[label] + 0.5) / (n + 1.0) for label in LABELS}
        return cls(accuracies, base_rates, min_confidence)

    def weight(self, name: str) -> float:
        """The log-likelihood ratio of one vote of the function, signed: > 0 argues for its label."""
        label = name.split(":")[0] if name not in FUNCTIONS_BY_NAME else FUNCTIONS_BY_NAME[name].label
        vote = NEGATIVE if name not in FUNCTIONS_BY_NAME else FUNCTIONS_BY_NAME[name].vote
        accuracy = self.accuracies[name]
        p_label = accuracy if vote == POSITIVE else 1.0 - accuracy
        llr = _logit(p_label) - _logit(self.base_rates[label])
        return max(llr, 0.0) if vote == POSITIVE else min(llr, 0.0)

    def probability(self, sentences: Sequence[SentenceVotes], label: str) -> float:
        """P(label) for one article."""
        score = _logit(self.base_rates[label]) + sum(map(self.weight, fired_functions(sentences, label)))
        return float(expit(score))  # never overflows, where 1 / (1 + exp(-score)) would below -709

    def decide(self, sentences: Sequence[SentenceVotes]) -> dict[str, Decision]:
        """Each label's decision for one article from its sentence votes."""
        decisions = {}
        for label in LABELS:
            probability = self.probability(sentences, label)
            value: bool | None = None
            if probability >= self.min_confidence:
                value = True
            elif 1.0 - probability >= self.min_confidence:
                value = False
            evidence = self._evidence(sentences, label) if value else None
            decisions[label] = Decision(value, probability, evidence)
        return decisions

    def _evidence(self, sentences: Sequence[SentenceVotes], label: str) -> tuple[int, int] | None:
        """The body sentence whose positive votes weigh most; the first one on a tie."""
        best, best_weight = None, -1.0
        for s in sentences:
            positive = [lf.name for lf in s.votes[label] if lf.vote == POSITIVE]
            total = sum(map(self.weight, positive))
            if s.span is not None and positive and total > best_weight:
                best, best_weight = s.span, total
        return best


def _prior_accuracies() -> dict[str, float]:
    priors = {lf.name: lf.prior for lf in LABELLING_FUNCTIONS}
    priors.update({no_positive_name(label): NO_POSITIVE_PRIOR for label in LABELS})
    return priors


# --- labelling a corpus ---------------------------------------------------------------------------------------


def weak_record(record: Record, decisions: dict[str, Decision]) -> dict[str, Any] | None:
    """The labelled-format row for an article whose labels (the keys of `decisions`, in their order) are all
    decided, else None."""
    if any(d.value is None for d in decisions.values()):
        return None
    labels = [label for label, decision in decisions.items() if decision.value]
    evidence = {}
    for label in labels:
        span = decisions[label].evidence
        if span is not None:
            evidence[label] = record.text[span[0] : span[1]]
    row: dict[str, Any] = {"id": record.id}
    if record.title:
        row["title"] = record.title
    row.update(
        text=record.text,
        labels=labels,
        evidence=evidence,
        weak={label: round(decision.confidence, 4) for label, decision in decisions.items()},
    )
    return row


def excluded_by_corpus(record_id: str, corpora: Sequence[str]) -> bool:
    """Whether the id belongs to one of `corpora`, told by its id prefix (`CORPUS_ID_PREFIXES`)."""
    return any(record_id.startswith(CORPUS_ID_PREFIXES[name]) for name in corpora)


@dataclass
class WeakLabelReport:
    """What one `weak_label` run read and wrote."""

    read: int = 0
    bad_rows: int = 0
    excluded_corpus: int = 0
    excluded_labelled: int = 0
    emitted: int = 0
    abstained: int = 0
    over_cap: int = 0  # decided articles with no label beyond `max_unlabelled`
    positives: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def __str__(self) -> str:
        per_label = ", ".join(f"{label} {n}" for label, n in self.positives.items() if label != "none")
        return (
            f"read {self.read} articles in {self.seconds:.0f} s ({self.bad_rows} bad rows skipped, "
            f"{self.excluded_corpus} in excluded corpora, {self.excluded_labelled} already labelled); "
            f"emitted {self.emitted} ({per_label}; {self.positives['none']} with no label), "
            f"skipped {self.abstained} uncertain"
            + (f" and {self.over_cap} with no label over the cap" if self.over_cap else "")
        )


# Decides every label of a batch of articles; `label_corpus`'s one point of variation.
Decide = Callable[[list[Record]], list[dict[str, Decision]]]


def weak_label(
    corpus: Sequence[str | Path],
    output: str | Path,
    model: LabelModel,
    *,
    exclude_corpora: Sequence[str] = (),
    exclude_texts: Iterable[Record] = (),
    max_articles: int | None = None,
    progress: bool = True,
) -> WeakLabelReport:
    """Label corpus files with the guide's rules and `model` (`LabelModel.fit` on the labelled training set);
    write the articles it decides fully to `output` (JSONL). Arguments as `label_corpus`."""
    return label_corpus(
        corpus,
        output,
        lambda records: [model.decide(article_votes(record)) for record in records],
        exclude_corpora=exclude_corpora,
        exclude_texts=exclude_texts,
        max_articles=max_articles,
        progress=progress,
    )


def label_corpus(
    corpus: Sequence[str | Path],
    output: str | Path,
    decide: Decide,
    *,
    batch_size: int = 1,
    exclude_corpora: Sequence[str] = (),
    exclude_texts: Iterable[Record] = (),
    max_articles: int | None = None,
    max_unlabelled: int | None = None,
    progress: bool = True,
) -> WeakLabelReport:
    """Stream corpus files through `decide` and write each article whose labels are all decided as one record
    in the labelled format `naba train` reads (`weak_record`): what `naba weak-label` (the guide's rules) and
    `naba pseudo-label` (a trained model, `naba.training.pseudo`) share.

    Args:
        corpus: `.jsonl(.gz)`/`.csv(.gz)` files, streamed; rows without an id get `<file name>:<line>`.
        output: written to `<output>.tmp` and renamed when complete.
        decide: the decisions for a batch of articles, in order.
        batch_size: articles per `decide` call (a model scores a batch in one pass).
        exclude_corpora: corpus names (keys of `CORPUS_ID_PREFIXES`) whose articles are skipped.
        exclude_texts: labelled records never to emit, matched by id or by text.
        max_articles: stop after reading this many articles (smoke runs).
        max_unlabelled: write at most this many articles with no label (most of a news corpus): the rest
            are counted as skipped.
        progress: show a progress bar.
    """
    unknown = sorted(set(exclude_corpora) - set(CORPUS_ID_PREFIXES))
    if unknown:
        raise DataError(f"unknown corpus name(s) {unknown}; known: {sorted(CORPUS_ID_PREFIXES)}")
    held_ids, held_texts = set(), set()
    for record in exclude_texts:
        held_ids.add(record.id)
        held_texts.add(record.text)
    report = WeakLabelReport()
    start = time.perf_counter()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".tmp")

    def kept(records: Iterator[Record]) -> Iterator[Record]:
        for record in records:
            if excluded_by_corpus(record.id, exclude_corpora):
                report.excluded_corpus += 1
            elif record.id in held_ids or record.text in held_texts:
                report.excluded_labelled += 1
            else:
                yield record

    with (
        partial.open("w", encoding="utf-8") as out,
        tqdm(desc="labelling", unit=" articles", disable=not progress) as bar,
    ):
        records = kept(_stream(corpus, max_articles, report))
        while batch := list(itertools.islice(records, batch_size)):
            for record, decisions in zip(batch, decide(batch), strict=True):
                for label in decisions:  # every label gets a count, in label order, a zero included
                    report.positives.setdefault(label, 0)
                row = weak_record(record, decisions)
                if row is None:
                    report.abstained += 1
                elif (
                    not row["labels"]
                    and max_unlabelled is not None
                    and report.positives["none"] >= max_unlabelled
                ):
                    report.over_cap += 1
                else:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    report.emitted += 1
                    report.positives.update(row["labels"] or ["none"])
            bar.update(len(batch))
    partial.replace(output)
    report.seconds = time.perf_counter() - start
    return report


def _stream(paths: Sequence[str | Path], limit: int | None, report: WeakLabelReport) -> Iterator[Record]:
    for path in paths:
        for line, item in iter_rows(path, default_id_prefix=f"{Path(path).name}:"):
            if limit is not None and report.read >= limit:
                return
            if isinstance(item, DataError):
                report.bad_rows += 1
                if report.bad_rows <= 5:
                    logger.warning("skipping %s:%d: %s", path, line, item.message)
                continue
            report.read += 1
            yield item


# --- measuring on labelled data -------------------------------------------------------------------------------


def evaluate(model: LabelModel, records: Sequence[Record]) -> dict[str, Any]:
    """How well the functions and the combined labeller agree with gold labels.

    Returns:
        {"articles", "min_confidence",
         "functions": {name: {"label", "vote", "coverage", "precision", "votes", "accuracy", "weight"}},
         "labels": {label: {"coverage", "decided": {precision, recall, f1, support}, "overall": {...}}},
         "overall_macro_f1", "emitted": {"articles", "coverage", "macro_f1", "per_label"},
         "evidence_hit_rate", "evidence_pairs"}: "decided" counts only the articles the model does not
        abstain on for that label; "overall" treats an abstention as negative, comparable with a classifier;
        "emitted" is the articles `weak_label` would write (all three labels decided).
    """
    import numpy as np

    from naba.training.evaluate import evidence_hit  # imported here: it pulls in the model code
    from naba.training.tuning import truth_matrix

    records = [r for r in records if r.labels is not None]
    if not records:
        raise DataError("no labelled records to evaluate on")
    names = [*FUNCTIONS_BY_NAME, *(no_positive_name(label) for label in LABELS)]
    votes, right = Counter[str](), Counter[str]()
    truth = truth_matrix(records, LABELS).astype(int)
    pred = np.zeros_like(truth)
    decided = np.zeros_like(truth, dtype=bool)
    hits: list[bool] = []
    for i, record in enumerate(records):
        sentences = article_votes(record)
        decisions = model.decide(sentences)
        for k, label in enumerate(LABELS):
            gold = bool(truth[i, k])
            for name, vote in fired_functions(sentences, label).items():
                votes[name] += 1
                right[name] += (vote == POSITIVE) == gold
            decision = decisions[label]
            decided[i, k] = decision.value is not None
            pred[i, k] = bool(decision.value)
            quote = (record.evidence or {}).get(label)
            if decision.value and gold and quote and decision.evidence:
                a, b = decision.evidence
                hit = evidence_hit(record.text, quote, [record.text[a:b]])
                if hit is not None:
                    hits.append(hit)
    n = len(records)
    functions = {
        name: {
            "label": name.split(":")[0] if ":" in name else FUNCTIONS_BY_NAME[name].label,
            "vote": "-" if ":" in name or FUNCTIONS_BY_NAME[name].vote == NEGATIVE else "+",
            "coverage": votes[name] / n,
            "precision": right[name] / votes[name] if votes[name] else 0.0,
            "votes": votes[name],
            "accuracy": model.accuracies[name],
            "weight": model.weight(name),
        }
        for name in names
    }
    overall = classification_report(truth, pred, list(LABELS))
    labels = {}
    for k, label in enumerate(LABELS):
        rows = decided[:, k]
        on_decided = classification_report(truth[rows, k : k + 1], pred[rows, k : k + 1], [label])
        labels[label] = {
            "coverage": float(rows.mean()),
            "decided": on_decided["per_label"][label],
            "overall": overall["per_label"][label],
        }
    emitted = decided.all(axis=1)
    emitted_report = classification_report(truth[emitted], pred[emitted], list(LABELS))
    return {
        "articles": n,
        "min_confidence": model.min_confidence,
        "functions": functions,
        "labels": labels,
        "overall_macro_f1": overall["macro_f1"],
        "emitted": {
            "articles": int(emitted.sum()),
            "coverage": float(emitted.mean()),
            "macro_f1": emitted_report["macro_f1"],
            "per_label": emitted_report["per_label"],
        },
        "evidence_hit_rate": sum(hits) / len(hits) if hits else None,
        "evidence_pairs": len(hits),
    }


def format_evaluation(metrics: dict[str, Any]) -> str:
    """Markdown tables of `evaluate`'s metrics, for the command's output."""
    lines = [
        f"## Labelling functions on {metrics['articles']} articles",
        "",
        "| function | label | vote | coverage | precision | fitted accuracy | weight |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in metrics["functions"].items():
        lines.append(
            f"| {name} | {f['label']} | {f['vote']} | {f['coverage']:.3f} | {f['precision']:.3f} "
            f"| {f['accuracy']:.3f} | {f['weight']:+.2f} |"
        )
    lines += [
        "",
        f"## Weak labeller (min confidence {metrics['min_confidence']})",
        "",
        "| label | coverage | P (decided) | R (decided) | F1 (decided) | P (overall) | R (overall) | F1 (overall) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, m in metrics["labels"].items():
        d, o = m["decided"], m["overall"]
        lines.append(
            f"| {label} | {m['coverage']:.3f} | {d['precision']:.3f} | {d['recall']:.3f} | {d['f1']:.3f} "
            f"| {o['precision']:.3f} | {o['recall']:.3f} | {o['f1']:.3f} |"
        )
    emitted = metrics["emitted"]
    hit = metrics["evidence_hit_rate"]
    lines += [
        "",
        f"macro-F1, abstain = negative: {metrics['overall_macro_f1']:.3f}",
        f"articles with all labels decided (would be emitted): {emitted['articles']} "
        f"({emitted['coverage']:.1%}), macro-F1 on them {emitted['macro_f1']:.3f}",
        "evidence sentence hits the gold quote: "
        + (f"{hit:.3f} of {metrics['evidence_pairs']} true positives" if hit is not None else "n/a"),
    ]
    return "\n".join(lines)
