"""`naba evaluate --report DIR`: what an analyst needs to judge a model, as files they can open.

- `metrics.json`: everything `naba evaluate` measured.
- `labels.md`: the per-label table, with calibration and evidence hit rates.
- `pr_<label>.png`: the precision-recall curve of each label, with the model's operating point marked (file
  names: `plot_names`).
- `reliability.png`: predicted probability against observed frequency per label, and the bin counts.
- `errors.md`: per label, the confident false positives and the missed false negatives, with their evidence.

Plots use matplotlib's Agg canvas directly (no pyplot, no global state), imported only here, so the service
never loads matplotlib.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from naba.training.evaluate import ECE_BINS, Scored, label_arrays
from naba.training.metrics import precision_recall_curve, reliability_bins

if TYPE_CHECKING:
    from naba.models.predictor import Predictor
    from naba.models.records import Record

N_ERRORS = 10  # false positives and false negatives shown per label
EXCERPT_CHARS = 400
MAX_NAME_CHARS = 80  # of a label in a file name: 160 bytes of Arabic in UTF-8, well under 255 with the rest
_UNSAFE = re.compile(r"[^\w.-]")  # \w is Unicode: letters and digits of every script are kept


def write_report(
    directory: str | Path,
    predictor: Predictor,
    records: list[Record],
    scored: list[Scored],
    metrics: dict[str, Any],
) -> list[Path]:
    """Write the report files into `directory` (created if missing; files already there are overwritten).

    Args:
        records, scored: the evaluated articles and their `score_records` results, in the same order.
        metrics: what `compute_metrics` returned for them.

    Returns:
        The paths written. Without labelled articles there are no plots and no errors.md.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "metrics.json", out / "labels.md"]
    written[0].write_text(json.dumps(metrics, ensure_ascii=False, indent=2), "utf-8")
    written[1].write_text(labels_markdown(metrics, predictor.thresholds), "utf-8")
    labels = predictor.labels
    rows, probs, truth = label_arrays(labels, records, scored)
    if not rows:
        return written
    names = plot_names(labels)
    for j, label in enumerate(labels):
        path = out / names[label]
        _plot_pr(path, label, probs[:, j], truth[:, j], predictor.thresholds[label])
        written.append(path)
    written.append(out / "reliability.png")
    _plot_reliability(written[-1], labels, probs, truth, ECE_BINS)
    written.append(out / "errors.md")
    labelled = [(records[i], scored[i]) for i in rows]
    written[-1].write_text(errors_markdown(predictor, labelled, probs, truth), "utf-8")
    return written


def plot_names(labels: list[str]) -> dict[str, str]:
    """Each label's PR plot file name, `pr_<label>.png`: one file per label, readable in any script.

    Letters and digits of every script stay (an Arabic label names its file); any other character becomes
    `_`, and then a short hash of the label is appended, as it is to names that would only differ in case
    (one file on case-insensitive file systems), so no two labels share a file.
    """

    def tag(label: str) -> str:
        return hashlib.sha256(label.encode("utf-8")).hexdigest()[:8]

    safe = {label: _UNSAFE.sub("_", label)[:MAX_NAME_CHARS] for label in labels}
    named = {label: name if name == label else f"{name}-{tag(label)}" for label, name in safe.items()}
    folded = Counter(name.casefold() for name in named.values())
    return {
        label: f"pr_{name if folded[name.casefold()] == 1 else f'{name}-{tag(label)}'}.png"
        for label, name in named.items()
    }


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def labels_markdown(metrics: dict[str, Any], thresholds: dict[str, float]) -> str:
    """The per-label table as markdown: classification at the model's thresholds, ECE and evidence."""
    lines = [f"# Per-label results: {metrics.get('data', 'evaluation data')}", ""]
    per_label = metrics.get("per_label") or {}
    if not per_label:
        return "\n".join([*lines, "No labelled articles were evaluated.", ""])
    ece = metrics.get("ece", {}).get("per_label", {})
    evidence = metrics.get("evidence_per_label", {})
    lines += [
        "| label | threshold | precision | recall | F1 | support | ECE | evidence hit rate (pairs) "
        "| evidence hit rate, all gold (pairs) | quotes not found |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, m in per_label.items():
        ev = evidence.get(label)
        hits = f"{_rate(ev['hit_rate'])} ({ev['pairs']})" if ev else "n/a"
        hits_all = f"{_rate(ev['hit_rate_all'])} ({ev['pairs_all']})" if ev else "n/a"
        lines.append(
            f"| {label} | {thresholds.get(label, float('nan')):.3f} | {m['precision']:.3f} | {m['recall']:.3f} "
            f"| {m['f1']:.3f} | {m['support']} | {_rate(ece.get(label))} | {hits} | {hits_all} "
            f"| {ev['quotes_not_found'] if ev else 'n/a'} |"
        )
    lines += [
        "",
        f"- micro-F1 {metrics['micro_f1']:.3f} (precision {metrics['micro_precision']:.3f}, recall "
        f"{metrics['micro_recall']:.3f}); macro-F1 {metrics['macro_f1']:.3f}; {metrics['n_labelled']} articles",
    ]
    if "ece" in metrics:
        lines.append(
            f"- ECE (expected calibration error, {metrics['ece']['n_bins']} equal-width bins): mean over labels "
            f"{metrics['ece']['mean']:.3f}. 0 means a score of 0.8 comes true 80% of the time; see reliability.png."
        )
    if "evidence_hit_rate" in metrics:
        lines += [
            f"- Evidence hit rate: {_rate(metrics['evidence_hit_rate'])} over {metrics['evidence_pairs']} gold "
            "labels the model predicted: an evidence sentence it returned overlaps the annotator's quote.",
            f"- Evidence hit rate, all gold labels: {_rate(metrics['evidence_hit_rate_all'])} over "
            f"{metrics['evidence_pairs_all']}, with the evidence the model gives for the gold label even when "
            "it did not predict it.",
            f"- Quotes not found in the article body (left out of both): {metrics['evidence_quotes_not_found']}.",
        ]
    return "\n".join([*lines, ""])


def _new_figure(**kwargs: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def _plot_pr(path: Path, label: str, probs: np.ndarray, truth: np.ndarray, threshold: float) -> None:
    """Precision against recall over all thresholds, with the point the model's threshold picks."""
    precision, recall, _ = precision_recall_curve(probs, truth)
    predicted = probs >= threshold
    tp = int((predicted & (truth == 1)).sum())
    op_precision = tp / predicted.sum() if predicted.any() else 0.0
    op_recall = tp / truth.sum() if truth.any() else 0.0
    figure = _new_figure(figsize=(5.5, 4.5))
    ax = figure.add_subplot()
    ax.plot(recall, precision, drawstyle="steps-post", label="all thresholds")
    ax.axhline(truth.mean(), linestyle=":", color="grey", label=f"share of positives {truth.mean():.2f}")
    ax.plot(
        [op_recall],
        [op_precision],
        "o",
        color="crimson",
        label=f"threshold {threshold:.3f}: P {op_precision:.2f}, R {op_recall:.2f}",
    )
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.set_title(f"{label}: precision-recall ({int(truth.sum())} positives of {len(truth)})")
    ax.legend(loc="lower left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _plot_reliability(
    path: Path, labels: list[str], probs: np.ndarray, truth: np.ndarray, n_bins: int
) -> None:
    """Top: observed frequency against mean predicted probability per bin; bottom: articles per bin."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    figure = _new_figure(figsize=(6.5, 6.5))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    width = 1.0 / n_bins / (len(labels) + 1)
    for j, label in enumerate(labels):
        bins = reliability_bins(probs[:, j], truth[:, j], n_bins)
        used = bins.count > 0
        top.plot(bins.mean_prob[used], bins.frequency[used], marker="o", label=label)
        left = bins.edges[:-1] + width * (j + 0.5)
        bottom.bar(left, bins.count, width=width, align="edge", label=label)
    top.set(ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1))
    top.set_title("Reliability: predicted probability against observed frequency")
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="predicted probability", ylabel="articles per bin", yscale="log")
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    bottom.yaxis.set_minor_formatter(NullFormatter())
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS] + " …"


def errors_markdown(
    predictor: Predictor, labelled: list[tuple[Record, Scored]], probs: np.ndarray, truth: np.ndarray
) -> str:
    """Per label, the false positives with the highest probability and the false negatives with the lowest.

    Each comes with its id, probability, title, the start of its text and the evidence: for a false
    positive the sentences the model returned, for a false negative the gold quote and the sentences the
    model would have returned had the label passed its threshold (`Predictor.evidence_indices`).
    """
    lines = [
        "# Worst errors per label",
        "",
        f"Up to {N_ERRORS} false positives (highest probability first) and {N_ERRORS} false negatives (lowest "
        "probability first) per label, at the model's thresholds.",
    ]
    for j, label in enumerate(predictor.labels):
        threshold = predictor.thresholds[label]
        predicted = probs[:, j] >= threshold
        false_pos = np.flatnonzero(predicted & (truth[:, j] == 0))
        false_neg = np.flatnonzero(~predicted & (truth[:, j] == 1))
        lines += ["", f"## {label} (threshold {threshold:.4f})", ""]
        lines += [f"### False positives: {len(false_pos)}, the most confident first", ""]
        for i in false_pos[np.argsort(-probs[false_pos, j], kind="stable")][:N_ERRORS]:
            record, item = labelled[i]
            returned: list[str] = next((r.evidence for r in item.analysis.labels if r.label == label), [])
            lines += _error_entry(record, float(probs[i, j]), returned, "evidence returned")
        if not len(false_pos):
            lines += ["None.", ""]
        lines += [f"### False negatives: {len(false_neg)}, the lowest probability first", ""]
        for i in false_neg[np.argsort(probs[false_neg, j], kind="stable")][:N_ERRORS]:
            record, item = labelled[i]
            sentences = item.analysis.sentences
            would = [sentences[s] for s in predictor.evidence_indices(sentences, item.scores, j)]
            gold = (record.evidence or {}).get(label)
            lines += _error_entry(record, float(probs[i, j]), would, "evidence had it been tagged", gold)
        if not len(false_neg):
            lines += ["None.", ""]
    return "\n".join([*lines, ""])


def _error_entry(
    record: Record, prob: float, evidence: list[str], kind: str, gold: str | None = None
) -> list[str]:
    lines = [
        f"- **{record.id}** · p = {prob:.4f} · {record.title or '(no title)'}",
        f"  > {_excerpt(record.text)}",
    ]
    if gold:
        lines.append(f"  - gold quote: «{' '.join(gold.split())}»")
    lines += [f"  - {kind}: «{' '.join(s.split())}»" for s in evidence] or [f"  - {kind}: none"]
    return [*lines, ""]
