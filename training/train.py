"""`naba train`: fine-tune an encoder into a Naba artifact that tags, points at evidence and summarises.

`train_model` reads top to bottom like HF's `run_classification.py`, its arguments (`ModelArguments`,
`DataArguments`, `TrainingArguments`) parsed by `naba.cli.train`: seed → data → label set → model →
`datasets.map` → `Trainer` → calibration and thresholds tuned on dev → evaluation → artifact. Records with
`labels` train the tagging head, records with a `summary` train the summary head on oracle sentences; a file
may hold either or both. Training articles that are also dev articles are dropped. With `--init-from` it
continues from an existing artifact: the label set may grow, and shrinks only with `--labels`. With
`--rule-features` the model also reads the annotation guide's rules (`naba.models.rules`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import torch
from transformers import AutoModel, AutoTokenizer, Trainer, TrainingArguments, set_seed

from naba.models.artifacts import NabaConfig, load_artifact, save_artifact, work_directory
from naba.models.encoding import WindowConfig
from naba.models.errors import ArtifactError, DataError
from naba.models.lexical import LexicalHead
from naba.models.modeling import HeadConfig, NabaModel
from naba.models.predictor import Predictor, Scores, resolve_device
from naba.models.preprocessing import PreprocessConfig, text_key
from naba.models.records import Record, data_hash, label_set, read_records
from naba.models.rules import FUNCTIONS_BY_NAME, RULES_VERSION, rule_feature_names
from naba.training.cross_validation import OutOfFold, cross_validated_metrics, fold_indices
from naba.training.evaluate import evaluate
from naba.training.examples import TrainingCollator, encode_records
from naba.training.lexical import fit_lexical_head
from naba.training.summary_head import fit_summary_head
from naba.training.tuning import OPERATING_POINT_BETAS, dev_scores, truth_matrix, tune_on_dev, tune_on_scores
from naba.training.weak import LabelModel

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "aubmindlab/bert-base-arabertv02"
# Trainer settings that differ from transformers' defaults: `naba train`'s defaults, each of which can still be
# given on its command line (`naba.cli.train`), and `training_arguments`'.
TRAINER_DEFAULTS: dict[str, Any] = {
    "report_to": "none", "save_strategy": "no", "logging_steps": 20, "num_train_epochs": 3.0,
    "per_device_train_batch_size": 8, "learning_rate": 5e-5, "warmup_steps": 0.1,
    "remove_unused_columns": False, "disable_tqdm": False,
}  # fmt: skip


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
        default=None,
        metadata={
            "help": "Fix the label set; unknown labels in the data are then errors. With --init-from, the only "
            "way to drop a label, or to keep one the labelled training data has no example of."
        },
    )
    max_length: int = field(default=512, metadata={"help": "Tokens per encoder window."})
    window_overlap: int = field(default=128, metadata={"help": "Tokens shared by consecutive windows."})
    max_train_windows: int = field(default=4, metadata={"help": "Windows per article kept while training."})
    # None: not given, so 1.0 for a new model and the previous one's with --init-from (see `loss_weights`).
    summary_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the summary loss (default 1.0; with --init-from, the artifact's)."},
    )
    evidence_weight: float | None = field(
        default=None,
        metadata={
            "help": "Weight of the sentence-level loss on quoted evidence, 0: off (default 1.0; with "
            "--init-from, the artifact's)."
        },
    )
    rule_features: bool = field(
        default=False,
        metadata={
            "help": "Also read one 0/1 feature per labelling function of the annotation guide (models/rules.py): "
            "did it fire in the article. With --init-from, a model that reads them keeps them without this flag; "
            "with it, it reads every current function (learnt weights kept, new ones start at zero)."
        },
    )
    lexical: bool = field(
        default=False,
        metadata={
            "help": "Also fit a lexical head (models/lexical.py): TF-IDF word n-grams and the guide's rules, one "
            "logistic regression per label on the labelled training articles, its logits added to the network's. With "
            "--init-from, a model that has one gets a new one fitted without this flag."
        },
    )
    summary_training: str = field(
        default="joint",
        metadata={
            "help": "joint: summary pairs train the summary head with the tags, through the encoder. frozen: the "
            "encoder learns the tags alone, then the summary head is fitted on its frozen sentence vectors "
            "(training.summary_head): cheaper, and tag scores no longer depend on the summary pairs, so --cv "
            "folds leave them out.",
            "choices": ["joint", "frozen"],
        },
    )
    weights_dtype: str = field(
        default="float32",
        metadata={
            "help": "Weights on disk: float32, or float16 for half the size.",
            "choices": ["float32", "float16"],
        },
    )
    export: str = field(
        default="none",
        metadata={
            "help": "Also export the encoder for ONNX Runtime (`naba export`): int8 is what the service's default "
            "backend serves on CPU, so a retrained model is served at full speed from its first reload.",
            "choices": ["none", "fp32", "int8"],
        },
    )
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
    cv: int = field(
        default=0,
        metadata={
            "help": "Tune calibration, thresholds and lexical weights on out-of-fold scores of K-fold "
            "cross-validation over the labelled training articles (K more trainings), not on dev; dev, if given, "
            "is then only a report. 0: tune on dev."
        },
    )

    def __post_init__(self) -> None:
        if self.cv == 1 or self.cv < 0:
            raise ValueError(f"--cv takes 0 (tune on dev) or a number of folds of at least 2, got {self.cv}")


def training_arguments(**overrides: Any) -> TrainingArguments:
    """`TrainingArguments` with `TRAINER_DEFAULTS` and `overrides`: what `naba train` parses when given only the
    `overrides`."""
    return TrainingArguments(**{**TRAINER_DEFAULTS, **overrides})


def check_output(data_args: DataArguments, model_args: ModelArguments) -> Path:
    """Fail before training, not after: the output must be new and never the artifact we start from."""
    output = Path(data_args.output).resolve()
    if output.exists():
        raise ArtifactError(f"{output} already exists; training writes a new artifact, never over an old one")
    if model_args.init_from and Path(model_args.init_from).resolve() == output:
        raise ArtifactError("--output must differ from --init-from: the served artifact is never written")
    return output


def choose_labels(records: list[Record], fixed: list[str] | None, previous: list[str] | None) -> list[str]:
    """The label set: fixed by the user, else the previous model's labels plus new ones, else the data's.

    Raises:
        DataError: when retraining (`previous`) on labelled records none of which has one of the previous
            labels. Trained on negatives only, the model would learn never to predict it, and its dev F1
            would quietly drop to 0: the user says with `--labels` whether to keep it that way or drop it.
        ArtifactError: when there is no label at all.
    """
    found = label_set(records)
    labelled = any(r.labels is not None for r in records)
    if fixed:
        if labelled and (unseen := [lbl for lbl in fixed if lbl not in found]):
            logger.warning("no training article has %s: trained as a negative only", ", ".join(unseen))
        return list(fixed)
    if previous:
        labels = list(previous) + [lbl for lbl in found if lbl not in previous]
        missing = [lbl for lbl in previous if lbl not in found]
        if labelled and missing:
            kept = [lbl for lbl in labels if lbl not in missing]
            them = "them" if len(missing) > 1 else "it"
            raise DataError(
                f"the labelled training data has no article with {', '.join(missing)}, which the --init-from "
                f"model tags: trained on negatives only, the model would learn never to predict {them}. "
                f"Say which you want: --labels {' '.join(kept)} drops {them}; --labels {' '.join(labels)} "
                f"keeps {them} anyway"
            )
        return labels
    if not found:
        raise ArtifactError("the training data has no labels; give --labels or labelled articles")
    return found


class LossWeights(TypedDict, total=False):
    """`HeadConfig`'s loss-weight fields, each present only when given."""

    summary_weight: float
    evidence_weight: float


def loss_weights(model_args: ModelArguments) -> LossWeights:
    """The loss weights given on the command line, as `HeadConfig` fields; those not given are left out, so
    a new model gets `HeadConfig`'s defaults and a retrained one keeps its artifact's."""
    weights: LossWeights = {}
    if model_args.summary_weight is not None:
        weights["summary_weight"] = model_args.summary_weight
    if model_args.evidence_weight is not None:
        weights["evidence_weight"] = model_args.evidence_weight
    return weights


def drop_dev_overlap(train: list[Record], dev: list[Record]) -> list[Record]:
    """The training records that are not dev articles: neither a dev id nor a dev text (`text_key`).

    An article trained on flatters every dev metric and the thresholds and calibration tuned on dev, and
    overlap is easy to miss when files are combined (the BBC summary pairs hold labelled dev articles).
    Dropping it from training, with a warning naming how many, keeps such a command usable; the dev set
    stays whole, so metrics remain comparable between runs.
    """
    dev_ids = {r.id for r in dev}
    dev_texts = {text_key(r.text) for r in dev}
    kept: list[Record] = []
    dropped: list[Record] = []
    for record in train:
        (dropped if record.id in dev_ids or text_key(record.text) in dev_texts else kept).append(record)
    if dropped:
        listed = ", ".join(r.id for r in dropped[:10]) + (", ..." if len(dropped) > 10 else "")
        logger.warning(
            "dropped %d training article(s) that are also dev articles (same id or same text): %s",
            len(dropped),
            listed,
        )
    return kept


def same_files(train: Sequence[str], dev: Sequence[str]) -> bool:
    """True when the dev files are exactly the training files: tuning on the training data on purpose (smoke
    runs, tests), which `drop_dev_overlap` would otherwise empty."""
    return bool(dev) and {Path(p).resolve() for p in train} == {Path(p).resolve() for p in dev}


@dataclass
class Fitted:
    """A trained network, its tokenizer and how it reads articles, plus its lexical head when asked for."""

    model: NabaModel
    tokenizer: Any
    labels: list[str]
    base_model: str
    window: WindowConfig
    preprocess: PreprocessConfig
    lexical: LexicalHead | None
    train_loss: float
    train_seconds: float


def fit(
    records: list[Record],
    label_records: list[Record],
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    summaries: bool = True,
) -> Fitted:
    """Train one model on `records`: a fresh head on the base encoder, or the `--init-from` artifact with
    its head grown; then its lexical head. The label set is chosen from `label_records`, so that every fold of
    a cross-validation has the final model's labels. Seeded, so a fold and the final model start alike.

    With `--summary-training frozen` the encoder trains on the labelled records alone, then the summary head
    is fitted on the records with a summary (unless `summaries` is False: a fold model, scored on tags only).
    """
    set_seed(training_args.seed)
    frozen = model_args.summary_training == "frozen"
    pairs = [r for r in records if r.summary] if frozen else []
    if frozen:
        records = [replace(r, summary=None) for r in records if r.labels is not None]
    if model_args.init_from:
        model, tokenizer, previous = load_artifact(model_args.init_from)
        model_args.lexical = model_args.lexical or bool(previous.lexical_weights)
        labels = choose_labels(label_records, model_args.labels, previous.labels)
        model.grow_labels(previous.labels, labels)
        model.heads = replace(model.heads, **loss_weights(model_args))
        if model_args.rule_features or model.heads.rule_features:  # recomputed by this version's rules
            names = rule_feature_names() if model_args.rule_features else model.heads.rule_features
            model.set_rule_features(names, RULES_VERSION)
        base_model, window, preprocess = previous.base_model, previous.window, previous.preprocessing
    else:
        tokenizer = AutoTokenizer.from_pretrained(model_args.base_model, trust_remote_code=False)
        encoder = AutoModel.from_pretrained(model_args.base_model, trust_remote_code=False)
        labels = choose_labels(label_records, model_args.labels, None)
        model = NabaModel(
            encoder,
            HeadConfig(
                num_labels=len(labels),
                **loss_weights(model_args),
                rule_features=tuple(rule_feature_names()) if model_args.rule_features else (),
                rules_version=RULES_VERSION if model_args.rule_features else None,
            ),
        )
        base_model, preprocess = model_args.base_model, PreprocessConfig()
        max_length = min(model_args.max_length, encoder.config.max_position_embeddings)
        window = WindowConfig(max_length, min(model_args.window_overlap, (max_length - 2) // 2))
    logger.info("labels: %s", labels)
    rule_features = model.heads.rule_features
    if rule_features:
        logger.info(
            "rule features: %d labelling functions, rules version %s", len(rule_features), RULES_VERSION
        )
        if not model_args.init_from:
            rule_head_from_label_model(model, labels, records)

    train_set = encode_records(
        records, labels, tokenizer, preprocess, window, model_args.max_train_windows,
        data_args.oracle_sentences, rule_features,
    )  # fmt: skip
    with work_directory(Path(data_args.output).resolve(), "train") as workdir:
        training_args.output_dir = str(workdir)
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train_set,
            data_collator=TrainingCollator(tokenizer.pad_token_id, model.heads.max_positions),
        )
        result = trainer.train()
    if pairs and summaries:
        fit_summary_head(
            model, tokenizer, pairs, labels, preprocess, window,
            max_windows=model_args.max_train_windows, oracle_sentences=data_args.oracle_sentences,
            seed=training_args.seed,
        )  # fmt: skip
    lexical = fit_lexical_head(records, labels) if model_args.lexical else None
    return Fitted(
        model, tokenizer, labels, base_model, window, preprocess, lexical,
        result.training_loss, result.metrics.get("train_runtime", 0.0),
    )  # fmt: skip


def untuned_config(fitted: Fitted, model_args: ModelArguments) -> NabaConfig:
    """The artifact config of a fitted model before any decision is tuned: every threshold 0.5, no
    calibration, each lexical weight 1."""
    labels = fitted.labels
    return NabaConfig(
        labels=labels,
        thresholds=[0.5] * len(labels),
        operating_points={point: [0.5] * len(labels) for point in OPERATING_POINT_BETAS},
        base_model=fitted.base_model,
        window=fitted.window,
        heads=fitted.model.heads,
        preprocessing=fitted.preprocess,
        name=model_args.name,
        version=model_args.version or datetime.now(UTC).strftime("%Y%m%d-%H%M%S"),
        description=model_args.description,
        lexical_weights=[1.0] * len(labels) if fitted.lexical is not None else [],
    )


def predictor_for(fitted: Fitted, config: NabaConfig) -> Predictor:
    """A predictor over a fitted model, in fp32 whatever the device: metrics and tuned decisions then score
    the weights being saved, and the model is not cast in place before `save_artifact` writes it."""
    return Predictor(
        fitted.model,
        fitted.tokenizer,
        config,
        resolve_device("auto"),
        dtype="float32",
        lexical=fitted.lexical,
    )


def cross_validate(
    records: list[Record],
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
) -> OutOfFold:
    """Train one model per fold on the other folds (plus, trained jointly, every record without labels: the
    summary pairs), and score the fold's labelled articles with it. No model ever scores an article it trained
    on."""
    labelled = [r for r in records if r.labels is not None]
    # Jointly trained, summary pairs shape the encoder and so the tag scores: every fold trains on them.
    unlabelled = [r for r in records if r.labels is None] if model_args.summary_training == "joint" else []
    folds = fold_indices(labelled, data_args.cv, training_args.seed)
    scores: list[Scores | None] = [None] * len(labelled)
    for n, held in enumerate(folds, start=1):
        held_out = set(held)
        logger.info("cross-validation: fold %d of %d, %d articles held out", n, len(folds), len(held))
        part = [r for i, r in enumerate(labelled) if i not in held_out] + unlabelled
        fitted = fit(part, records, model_args, data_args, training_args, summaries=False)
        predictor = predictor_for(fitted, untuned_config(fitted, model_args))
        for i, score in zip(held, dev_scores(predictor, [labelled[i] for i in held]), strict=True):
            scores[i] = score
        del fitted, predictor
    return OutOfFold(labelled, [s for s in scores if s is not None], folds)


def train_model(
    model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments
) -> Path:
    """Train (with `data_args.cv`, cross-validate first), tune, evaluate and save a new artifact: `naba train`.
    Returns the artifact's directory.

    Raises:
        ArtifactError: the output exists or is the `--init-from` artifact (before anything is read), or the
            data has no labels.
        DataError: a bad record, with its file and line, before any training.
    """
    output = check_output(data_args, model_args)
    logger.info("model arguments %s", model_args)
    logger.info("data arguments %s", data_args)

    # Data: validated up front, so a bad line fails here with its file and line, not mid-training.
    train_records = read_records(data_args.train, known_labels=model_args.labels)
    dev_records = read_records(data_args.dev, known_labels=model_args.labels) if data_args.dev else []
    read = len(train_records)
    if same_files(data_args.train, data_args.dev or []):
        logger.warning("the dev files are the training files: dev metrics and thresholds are training ones")
    else:
        train_records = drop_dev_overlap(train_records, dev_records)
    dropped = read - len(train_records)
    if data_args.max_train_samples:
        train_records = train_records[: data_args.max_train_samples]

    oof = cross_validate(train_records, model_args, data_args, training_args) if data_args.cv else None
    fitted = fit(train_records, train_records, model_args, data_args, training_args)
    config = untuned_config(fitted, model_args)
    config.data_hash = data_hash([*data_args.train, *(data_args.dev or [])])
    config.training = {
        **{k: v for k, v in asdict(model_args).items() if v is not None},
        # What the loss used: given on the command line, or kept from the --init-from artifact.
        "summary_weight": fitted.model.heads.summary_weight,
        "evidence_weight": fitted.model.heads.evidence_weight,
        "train_files": data_args.train,
        "dev_files": data_args.dev,
        "train_articles": len(train_records),
        "dev_articles_dropped_from_train": dropped,
        "epochs": training_args.num_train_epochs,
        "learning_rate": training_args.learning_rate,
        "batch_size": training_args.per_device_train_batch_size,
        "seed": training_args.seed,
        "train_loss": round(fitted.train_loss, 4),
        "train_seconds": round(fitted.train_seconds, 1),
    }
    predictor = predictor_for(fitted, config)
    cv_metrics = None
    if oof is not None:
        truth = truth_matrix(oof.records, fitted.labels)
        logits = tune_on_scores(predictor, oof.scores, truth)
        config.tuned_on = (
            f"out-of-fold scores of {data_args.cv}-fold cross-validation over the {len(oof.records)} "
            "labelled training articles"
        )
        cv_metrics = cross_validated_metrics(
            predictor.probabilities(logits), truth, config.thresholds, oof.folds, fitted.labels
        )
    elif dev_records:
        tune_on_dev(predictor, dev_records)
        config.tuned_on = f"the dev set ({', '.join(data_args.dev or [])})"
    if dev_records:
        config.metrics = evaluate(predictor, dev_records, data_args.eval_summary_sentences)
        config.metrics["data"] = ", ".join(data_args.dev or [])
    if cv_metrics is not None:
        config.metrics = {**(config.metrics or {}), "cross_validation": cv_metrics}
    saved = save_artifact(
        fitted.model, fitted.tokenizer, config, output, model_args.weights_dtype, fitted.lexical
    )
    if model_args.export != "none":
        from naba.models.onnx_backend import export_onnx  # ONNX Runtime is only imported when used

        export_onnx(saved, quantize=model_args.export == "int8")
    return saved


def rule_head_from_label_model(model: NabaModel, labels: list[str], records: list[Record]) -> None:
    """Start the rule head at the weak label model's vote weights (`naba.training.weak.LabelModel`, fitted on the
    labelled training records): each rule adds its log-likelihood ratio to its own label's logit.

    A zero head would have to learn these at the optimiser's pace, about a learning rate per step, which the
    few hundred steps of a small labelled set never make up. Labels the rules do not know keep zero rows.
    """
    try:
        label_model = LabelModel.fit(records)
    except DataError:
        logger.warning("no labelled training records: the rule head starts at zero")
        return
    if model.rule_head is None:
        return
    with torch.no_grad():
        for i, name in enumerate(model.heads.rule_features):
            label = FUNCTIONS_BY_NAME[name].label
            if label in labels:
                model.rule_head.weight[labels.index(label), i] = label_model.weight(name)
    logger.info("rule head initialised from the weak label model fitted on the labelled training records")
