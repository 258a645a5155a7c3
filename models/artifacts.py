"""Model artifacts: a self-describing directory, written atomically and loaded with one call.

Layout::

    config.json          the encoder's HF config (architecture only)
    model.safetensors    encoder and head weights; pickled weights are never read
    tokenizer.json ...   the tokenizer, as saved by transformers
    naba_config.json     labels, thresholds and operating points, calibration, windows, heads, preprocessing,
                         versions, data hash, metrics
    metrics.json         the evaluation the model shipped with
    README.md            the model card
    lexical.json ...     the lexical head's vocabularies and weights (`naba.models.lexical`), when it has one
    checksums.json       sha256 of every file above, checked on load
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from naba.models.card import render_card
from naba.models.encoding import WindowConfig
from naba.models.errors import ArtifactError
from naba.models.lexical import LexicalHead
from naba.models.modeling import HeadConfig, NabaModel
from naba.models.preprocessing import PreprocessConfig
from naba.models.results import OPERATING_POINTS
from naba.models.rules import RULES_VERSION, unknown_rule_features

logger = logging.getLogger(__name__)

NABA_CONFIG = "naba_config.json"
WEIGHTS = "model.safetensors"
CHECKSUMS = "checksums.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def naba_version() -> str:
    from naba import __version__

    return __version__


@dataclass
class NabaConfig:
    """Everything besides weights that the predictor needs, and what a reader of the model needs to know."""

    labels: list[str]
    thresholds: list[float]  # per label, the F1-optimal ("balanced") decision threshold
    base_model: str
    # Per-label Platt scaling of the article logits, `{label: {"scale": a, "bias": b}}` fitted on dev:
    # scores are `sigmoid(a * logit + b)`. A label missing here (every label of an artifact written before
    # calibration existed) keeps its raw sigmoid score.
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)
    # Threshold sets besides `thresholds`: "precision" (max F0.5 on dev) and "recall" (max F2). An artifact
    # written before operating points lacks them; the predictor then uses `thresholds` and logs a warning.
    operating_points: dict[str, list[float]] = field(default_factory=dict)
    window: WindowConfig = field(default_factory=WindowConfig)
    heads: HeadConfig | None = None
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    name: str = "naba"
    version: str = "0"
    description: str = ""
    summary_sentences: int = 3  # default summary length when a request does not say
    summary_max_chars: int = 1200  # length budget of a summary
    # Fill a summary past its best sentence with the article's lead, in order, not with the head's next best
    # (`Predictor._summary`): the head is trained on one-sentence references.
    summary_lead_fill: bool = True
    evidence_sentences: int = 2  # most evidence sentences per label
    # Rank the sentences where the guide's rules for a label fire (`naba.models.rules.positive_votes`) before the
    # rest, each group by the evidence head's score. Off: the evidence head's ranking alone.
    evidence_rules: bool = True
    # Per label, how much the lexical head's logit (`naba.models.lexical`) adds to the network's article logit, tuned
    # on dev with the calibration (`naba.training.tuning`). Empty: the artifact has no lexical head.
    lexical_weights: list[float] = field(default_factory=list)
    # What the calibration, thresholds and lexical weights were fitted on, for the card: the dev set, or the
    # out-of-fold scores of a cross-validation (`naba train --cv`). Empty: not recorded.
    tuned_on: str = ""
    data_hash: str | None = None
    metrics: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.thresholds) != len(self.labels):
            raise ArtifactError(f"{len(self.labels)} labels but {len(self.thresholds)} thresholds")
        if len(set(self.labels)) != len(self.labels):
            raise ArtifactError(f"duplicate label names: {self.labels}")
        if unknown := sorted(set(self.calibration) - set(self.labels)):
            raise ArtifactError(f"calibration for unknown labels: {unknown}")
        for label, params in self.calibration.items():
            if set(params) != {"scale", "bias"} or not params["scale"] > 0:
                raise ArtifactError(
                    f"calibration of {label!r} must be {{'scale': > 0, 'bias': ...}}: {params}"
                )
        if self.lexical_weights and (
            len(self.lexical_weights) != len(self.labels) or min(self.lexical_weights) < 0
        ):
            raise ArtifactError(f"lexical_weights must be one weight >= 0 per label: {self.lexical_weights}")
        for point, thresholds in self.operating_points.items():
            if point not in OPERATING_POINTS or point == "balanced":
                raise ArtifactError(f"unknown operating point {point!r}; 'balanced' is `thresholds`")
            if len(thresholds) != len(self.labels):
                raise ArtifactError(f"{len(self.labels)} labels but {len(thresholds)} {point} thresholds")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["heads"] and not data["heads"]["rule_features"]:
            # Without rule features the keys are left out, so the config says only what the model uses.
            del data["heads"]["rule_features"], data["heads"]["rules_version"]
        if not data["lexical_weights"]:
            del data["lexical_weights"]  # likewise
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NabaConfig:
        data = dict(data)
        data["window"] = WindowConfig(**data.get("window", {}))
        data["preprocessing"] = PreprocessConfig.from_dict(data.get("preprocessing", {}))
        try:
            data["heads"] = HeadConfig(**data["heads"]) if data.get("heads") else None
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{NABA_CONFIG} does not match this version of Naba: {exc}") from exc


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks so large weights never sit in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def save_artifact(
    model: NabaModel,
    tokenizer: PreTrainedTokenizerBase,
    config: NabaConfig,
    output_dir: str | Path,
    weights_dtype: str = "float32",
    lexical: LexicalHead | None = None,
) -> Path:
    """Write the artifact into a temporary sibling directory, then rename it into place.

    A run that dies half-way leaves no directory at `output_dir`; an existing `output_dir` is never touched.
    `weights_dtype="float16"` halves the file (a model shipped in a repository); loading casts the weights to
    whatever the predictor runs in, so fp16 storage costs only fp16 rounding of the fp32 weights. A `lexical`
    head is written beside the weights; `config.lexical_weights` must then hold its weights.

    Raises:
        ArtifactError: `output_dir` already exists.
        KeyError: an unknown `weights_dtype`.
    """
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise ArtifactError(f"{output_dir} already exists; choose a new output directory")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    if bool(config.lexical_weights) != (lexical is not None):
        raise ArtifactError("a lexical head needs config.lexical_weights, and lexical_weights a lexical head")
    config.heads = model.heads
    config.versions = {
        "naba": naba_version(),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    with atomic_directory(output_dir) as tmp:
        model.encoder.config.save_pretrained(tmp)
        # The asked dtype on disk whatever the model ran in (a GPU predictor runs bf16): loading casts.
        dtype = WEIGHT_DTYPES[weights_dtype]
        state = {
            k: (v.to(dtype) if v.is_floating_point() else v).detach().contiguous().cpu()
            for k, v in model.state_dict().items()
        }
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        if lexical is not None:
            lexical.save(tmp)
        (tmp / NABA_CONFIG).write_text(json.dumps(config.to_dict(), ensure_ascii=False, indent=2), "utf-8")
        (tmp / "metrics.json").write_text(json.dumps(config.metrics or {}, indent=2), "utf-8")
        (tmp / "README.md").write_text(render_card(config), "utf-8")
        write_checksums(tmp)
    logger.info("saved model artifact to %s", output_dir)
    return output_dir


def update_metrics(path: str | Path, metrics: dict[str, Any], decisions: NabaConfig | None = None) -> Path:
    """Replace an artifact's metrics and the card rendered from them; weights, tokenizer and any ONNX export
    are kept byte for byte, and so are its decisions unless `decisions` is given.

    For a model whose numbers changed without retraining: because Naba's predictor did (`naba evaluate
    --update-card`), or because its decisions were re-tuned on other labelled data (`--retune`). The new
    directory is written beside the old one and renamed into place.

    Args:
        decisions: a config whose calibration, thresholds and operating points replace the artifact's (the
            predictor's config after `naba.training.tuning.tune_on_dev`); it must have the artifact's labels.

    Raises:
        ArtifactError: `path` is not an intact artifact, or `decisions` has other labels.
    """
    path = Path(path)
    config = read_config(path)
    verify_checksums(path)
    config.metrics = metrics
    if decisions is not None:
        if decisions.labels != config.labels:
            raise ArtifactError(f"decisions for labels {decisions.labels}; {path} has {config.labels}")
        config.calibration = dict(decisions.calibration)
        config.thresholds = list(decisions.thresholds)
        config.operating_points = {point: list(t) for point, t in decisions.operating_points.items()}
        config.lexical_weights = list(decisions.lexical_weights)
        config.tuned_on = decisions.tuned_on
    with atomic_directory(path, replace=True) as tmp:
        for item in path.iterdir():
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            elif item.name not in (NABA_CONFIG, "metrics.json", "README.md", CHECKSUMS):
                shutil.copy2(item, tmp / item.name)
        (tmp / NABA_CONFIG).write_text(json.dumps(config.to_dict(), ensure_ascii=False, indent=2), "utf-8")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2), "utf-8")
        (tmp / "README.md").write_text(render_card(config), "utf-8")
        write_checksums(tmp)
    logger.info("updated the metrics and card of %s", path)
    return path


@contextmanager
def atomic_directory(target: Path, replace: bool = False) -> Iterator[Path]:
    """A private temporary sibling of `target` to write a directory into.

    When the block ends cleanly, its files become world-readable and it is renamed to `target`, so readers
    only ever see a complete directory; with `replace`, an existing `target` is moved aside first (a directory
    rename cannot overwrite). When the block fails, the temporary directory is removed and `target` is
    untouched. Artifacts, their ONNX exports and pretrained encoders are all written this way.
    """
    with work_directory(target, "tmp", keep=True) as tmp:
        yield tmp
        for file in tmp.iterdir():
            file.chmod(0o755 if file.is_dir() else 0o644)
        tmp.chmod(0o755)  # mkdtemp makes it private; what is written here is meant to be shared
        if replace:
            _replace(tmp, target)
        else:
            os.rename(tmp, target)


@contextmanager
def work_directory(target: Path, kind: str, keep: bool = False) -> Iterator[Path]:
    """A private hidden sibling of `target` for scratch work, removed when the block ends (unless `keep`, after
    a clean end: the caller has moved it) and cleared away by the next run if this process is killed.

    SIGKILL runs no cleanup, so the name carries this host and process id, `.NAME.KIND.HOST.PID.xxxx`, and
    each new one first removes the siblings of its kind whose process is gone on this host. Another host's or
    a live process's directory is never touched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace(".", "-")
    prefix = f".{target.name}.{kind}.{host}."
    for stale in target.parent.glob(f"{glob.escape(prefix)}*"):
        pid = stale.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            logger.info("removing %s, left by a run that was killed", stale)
            shutil.rmtree(stale, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", dir=target.parent))
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    if not keep:
        shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _replace(new: Path, target: Path) -> None:
    """Rename `new` to `target`, moving an existing `target` aside first (a directory rename cannot overwrite)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.rename(target, old)
    os.rename(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_config(path: str | Path) -> NabaConfig:
    """Read and check `naba_config.json` without loading weights."""
    path = Path(path)
    if not (path / NABA_CONFIG).is_file():
        raise ArtifactError(f"{path} is not a Naba model: {NABA_CONFIG} is missing")
    try:
        return NabaConfig.from_dict(json.loads((path / NABA_CONFIG).read_text("utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path / NABA_CONFIG} is not valid JSON: {exc}") from exc


def write_checksums(path: Path) -> None:
    """Record the sha256 of every file in `path` in its `checksums.json`, for `verify_checksums`."""
    sums = {p.name: sha256_file(p) for p in sorted(path.iterdir()) if p.is_file() and p.name != CHECKSUMS}
    (path / CHECKSUMS).write_text(json.dumps(sums, indent=2), "utf-8")


def read_checksums(path: Path) -> dict[str, str]:
    """The `checksums.json` of an artifact or of its ONNX export: file name -> sha256.

    Raises:
        OSError: it is missing or cannot be read. ValueError: it is not JSON.
    """
    return json.loads((path / CHECKSUMS).read_text("utf-8"))


def verify_checksums(path: Path) -> None:
    """Refuse an artifact whose files differ from what training wrote (a torn copy, a swapped file)."""
    if not (path / CHECKSUMS).is_file():
        raise ArtifactError(f"{path} has no {CHECKSUMS}; it was not written by save_artifact")
    expected = read_checksums(path)
    for name, digest in expected.items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{path} is incomplete: {name} is missing")
        if sha256_file(file) != digest:
            raise ArtifactError(f"{file} does not match its checksum; the artifact is corrupt")


def check_rule_features(heads: HeadConfig, path: Path) -> None:
    """Refuse a model that reads rule features this version of `naba.models.rules` cannot compute; warn when they
    were computed by another version of the rules (a function may now match other sentences)."""
    if unknown := unknown_rule_features(heads.rule_features):
        raise ArtifactError(
            f"{path} reads rule features that this version of Naba does not have: {unknown} (the model was "
            f"trained with rules version {heads.rules_version}, this Naba has {RULES_VERSION}); retrain it, "
            "or serve it with the Naba version it was trained with"
        )
    if heads.rule_features and heads.rules_version != RULES_VERSION:
        logger.warning(
            "%s was trained with rules version %s, this Naba has %s: its rule features may read differently",
            path,
            heads.rules_version,
            RULES_VERSION,
        )


def load_artifact(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[NabaModel, PreTrainedTokenizerBase, NabaConfig]:
    """Load an artifact for inference: weights from safetensors only, no remote code, checksums verified."""
    path = Path(path)
    if not path.is_dir():
        if path.exists():
            raise ArtifactError(f"{path} is not a directory: give the model's artifact directory")
        raise ArtifactError(f"model directory {path} does not exist")
    if not (path / WEIGHTS).is_file():
        pickled = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
        reason = (
            f"only pickled weights ({', '.join(pickled)}), which Naba refuses to load" if pickled else "none"
        )
        raise ArtifactError(f"{path} has no {WEIGHTS}: {reason}")
    config = read_config(path)
    verify_checksums(path)
    saved = config.versions.get("naba")
    if saved and saved != naba_version():
        logger.warning("artifact written by naba %s, running naba %s", saved, naba_version())
    if config.heads is None:
        raise ArtifactError(f"{path / NABA_CONFIG} has no head configuration")
    check_rule_features(config.heads, path)
    encoder_config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    model = NabaModel(AutoModel.from_config(encoder_config, trust_remote_code=False), config.heads)
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)), strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"weights in {path / WEIGHTS} do not fit the model: {exc}") from exc
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    return model.to(device).eval(), tokenizer, config
