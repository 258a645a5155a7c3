"""The model card: a README.md generated from the artifact's config, never written by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from naba.models.artifacts import NabaConfig


def _metrics_table(metrics: dict[str, Any]) -> str:
    """Markdown tables of the per-label scores, the averages and ROUGE, from a `naba evaluate` report."""
    lines = []
    per_label = metrics.get("per_label") or {}
    if per_label:
        lines += ["| label | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
        for label, m in per_label.items():
            lines.append(
                f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
            )
        lines.append("")
        lines.append(f"micro-F1 {metrics.get('micro_f1', 0):.3f} · macro-F1 {metrics.get('macro_f1', 0):.3f}")
        if "ece" in metrics:
            lines.append(f"· expected calibration error {metrics['ece']['mean']:.3f} (mean over labels)")
        hit = metrics.get("evidence_hit_rate_all")
        if hit is not None:
            pairs = metrics.get("evidence_pairs_all", 0)
            lines.append(
                f"· evidence hit rate {hit:.3f} (returned sentences hold the annotators' quote; {pairs} pairs)"
            )
    rouge = metrics.get("rouge") or {}
    if rouge:
        lines += ["", "| ROUGE-1 | ROUGE-2 | ROUGE-L |", "| --- | --- | --- |"]
        lines.append(f"| {rouge['rouge1']:.3f} | {rouge['rouge2']:.3f} | {rouge['rougeL']:.3f} |")
    return "\n".join(lines) or "No evaluation was run."


def _decisions(config: NabaConfig) -> str:
    """Bullets on how scores are calibrated and which thresholds each operating point applies."""

    def row(thresholds: list[float]) -> str:
        return ", ".join(f"`{lbl}` {t:.2f}" for lbl, t in zip(config.labels, thresholds, strict=True))

    if config.calibration:
        params = ", ".join(
            f"`{lbl}` {p['scale']:.3f}/{p['bias']:+.3f}" for lbl, p in config.calibration.items()
        )
        calibration = (
            f"- Scores are calibrated on {config.tuned_on or 'the dev set'} with per-label Platt scaling, "
            f"`sigmoid(scale × logit + bias)` (scale/bias: {params}); the thresholds below, and the lexical "
            "weights if any, were tuned on the same scores."
        )
    else:
        calibration = "- Scores are not calibrated (plain sigmoid of the model's logits)."
    points = [f"  - `balanced` (F1-optimal, the default): {row(config.thresholds)}"]
    for point, beta in (("precision", "F0.5"), ("recall", "F2")):
        if point in config.operating_points:
            points.append(f"  - `{point}` ({beta}-optimal): {row(config.operating_points[point])}")
        else:
            points.append(f"  - `{point}`: not tuned; the balanced thresholds apply")
    return "\n".join([calibration, "- Operating points (per-label thresholds, chosen per request):", *points])


def _rules_line(config: NabaConfig) -> str:
    """Whether the tags also read the annotation guide's rules, and which ones."""
    names = config.heads.rule_features if config.heads else ()
    if not names:
        return "- Rule features: none; tags come from the text alone."
    version = config.heads.rules_version if config.heads else None
    return (
        f"- Rule features: reads {len(names)} labelling functions of the annotation guide (rules version "
        f"{version}), one 0/1 input each (did it fire in the article), weighted into the tag scores."
    )


def _lexical_line(config: NabaConfig) -> str:
    """Whether a lexical head's n-gram logits add to the network's (`naba.models.lexical`)."""
    if not config.lexical_weights:
        return "- Lexical head: none."
    weights = ", ".join(
        f"`{lbl}` {w:g}" for lbl, w in zip(config.labels, config.lexical_weights, strict=True)
    )
    return (
        "- Lexical head: TF-IDF over word 1-2-grams plus the guide's rule features, one "
        "logistic regression per label fitted on the labelled training articles; its logits add to the "
        f"network's, weighted per label as tuned with the calibration ({weights})."
    )


def _cross_validation(metrics: dict[str, Any]) -> str:
    """The cross-validated tagging figures (`naba.training.cross_validation.cross_validated_metrics`), if any."""
    cv = metrics.get("cross_validation")
    if not cv:
        return ""
    lines = [
        "",
        f"## Cross-validation ({cv['folds']} folds, {cv['articles']} labelled training articles)",
        "",
        "Each article scored by the fold model that did not train on it, at the tuned balanced thresholds.",
        "",
        "| label | F1 (pooled) | F1 per fold, mean ± std | precision | recall | support |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, m in cv["pooled"]["per_label"].items():
        spread = f"{cv['f1_mean_per_label'][label]:.3f} ± {cv['f1_std_per_label'][label]:.3f}"
        lines.append(
            f"| {label} | {m['f1']:.3f} | {spread} | {m['precision']:.3f} | {m['recall']:.3f} | {m['support']} |"
        )
    lines += [
        "",
        f"macro-F1 {cv['pooled']['macro_f1']:.3f} pooled; per fold {cv['macro_f1_mean']:.3f} ± "
        f"{cv['macro_f1_std']:.3f} ({', '.join(f'{m:.3f}' for m in cv['macro_f1_per_fold'])})",
    ]
    return "\n".join(lines)


def render_card(config: NabaConfig) -> str:
    """Fill the card from `config`: what the model is, how it was made, how well it does, where it fails."""
    metrics = config.metrics or {}
    # The description opens the card; repeating it among the training settings would print it twice.
    settings = {k: v for k, v in config.training.items() if k != "description"}
    training = "\n".join(f"- `{k}`: {v}" for k, v in sorted(settings.items())) or "- not recorded"
    return f"""# {config.name} {config.version}

{config.description or "A Naba model: topic tags with evidence sentences and an extractive summary for Arabic news."}

- Labels: {", ".join(f"`{lbl}`" for lbl in config.labels)} (multi-label)
{_decisions(config)}
{_rules_line(config)}
{_lexical_line(config)}
- Base encoder: `{config.base_model}`
- Windows: {config.window.max_length} tokens, {config.window.overlap} overlapping; every sentence is scored.
- Preprocessing: `{config.preprocessing.to_dict()}`
- Training data hash (sha256): `{config.data_hash}`
- Created {config.created} with {", ".join(f"{k} {v}" for k, v in config.versions.items())}

## Evaluation

Evaluated on: {metrics.get("data", "not recorded")}

{_metrics_table(metrics)}
{_cross_validation(metrics)}

## Training

{training}

## Intended use and limits

Tags Arabic news articles with the topics of the annotation guide (LABELS.md) and quotes the sentences behind
each tag; summaries are sentences taken from the article, never generated text. Scores are model estimates:
check the evidence before acting on a tag. Accuracy on text unlike the training news (social media, dialects,
other domains) is unknown.
"""
