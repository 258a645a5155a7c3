"""The one place that turns articles into results.

The service, `naba predict` and `naba evaluate` all call `Predictor.analyze`; none of them tokenises, runs the
model, calibrates scores, applies thresholds or decides a summary's length on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from naba.models.artifacts import NabaConfig, load_artifact
from naba.models.encoding import EncodedArticle, collate, encode_article
from naba.models.errors import NabaError
from naba.models.lexical import LexicalHead
from naba.models.modeling import NabaModel
from naba.models.results import (
    DEFAULT_OPTIONS,
    OPERATING_POINTS,
    Analysis,
    Article,
    LabelResult,
    ModelRef,
    OperatingPoint,
    ResultOptions,
    check_operating_point,
)
from naba.models.rules import positive_votes

if TYPE_CHECKING:
    from naba.models.onnx_backend import Export

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx"]
Quantize = Literal["int8"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
HALF_DTYPES = ("bfloat16", "float16")

WARM_UP_ARTICLE = Article(
    text="أعلنت القوات الأمنية بدء عملية مشتركة. وقال المتحدث إن العملية مستمرة.", title="عملية"
)


# Windows per forward pass: a CPU gains nothing from huge batches, a GPU needs them to be busy.
WINDOWS_PER_PASS = {"cpu": 32, "cuda": 256}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX). Without it torch emulates bf16, which
    is slower than fp32, so `bfloat16` on such a CPU only costs accuracy."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so looked up defensively
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def check_dtype(dtype: str, backend: str) -> None:
    """Refuse a dtype not in `DTYPES`, and half precision for any backend but torch: ONNX Runtime runs its own
    fp32 or int8 graph.

    Raises:
        NabaError: either case.
    """
    if dtype != "auto" and dtype not in DTYPES:
        raise NabaError(f"unknown dtype {dtype!r}; choose auto, {', '.join(DTYPES)}")
    if dtype in HALF_DTYPES and backend != "torch":
        raise NabaError(f"dtype {dtype!r} is for the torch backend; {backend} runs its own fp32/int8 graph")


def inference_dtype(device: torch.device, dtype: DType = "auto") -> torch.dtype:
    """The precision the torch backend runs in: `dtype` when named, else (`auto`) bf16 on GPUs that support it
    (half the memory traffic, tensor cores), fp16 on older ones, fp32 on CPU.

    `auto` keeps fp32 on every CPU: `bfloat16` on one with `cpu_has_native_bf16` runs the torch backend 2-3x
    faster but moves scores enough to move dev macro-F1, where the int8 export, faster still on BERT-base, did
    not (README, Benchmarks, has the measurements). So it is the operator's choice.
    """
    if dtype != "auto":
        return DTYPES[dtype]
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def resolve_device(device: str) -> torch.device:
    """Map `auto|cpu|cuda` to a torch device, once, at start-up."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NabaError(f"device {device!r} was asked for, but torch sees no CUDA GPU")
    return torch.device(device)


def auto_backend(
    export: Export | None, device: torch.device, quantize: Quantize | None
) -> tuple[Backend, Quantize | None]:
    """What `backend="auto"` runs: on CPU the artifact's ONNX export for its weights (int8 first: 3.9x torch's
    serving throughput on BERT-base, 1.9x on the shipped model, same dev macro-F1; README), else torch; on a
    GPU, torch.

    An artifact without an export (a fresh `naba train`, a starter model) serves on torch, so `auto` never
    fails where `torch` would load. `quantize="int8"` asks for the int8 export and fails without one.
    """
    if device.type != "cpu":
        return "torch", quantize  # `quantize` on a GPU is refused by the checks that follow
    found = export.best if export is not None else None
    if export is not None and not export.own_weights:
        logger.warning("%s was exported from other weights than its artifact: not used", export.directory)
    if quantize is not None or found == "int8":
        return "onnx", "int8"
    if found == "fp32":
        return "onnx", None
    return "torch", None


@dataclass(frozen=True)
class Scores:
    """Model outputs for one article, as numpy arrays over its body sentences."""

    label_probs: np.ndarray  # (K,) calibrated probabilities, what thresholds apply to
    sentence_logits: np.ndarray  # (N, K)
    summary_logits: np.ndarray  # (N,)
    label_logits: np.ndarray  # (K,) raw article logits, before calibration (what calibration is fitted on)
    # (K,) the lexical head's logits, unweighted (`label_logits` holds them times `lexical_weights`); None
    # without a lexical head.
    lexical_logits: np.ndarray | None = None


def calibrated_probabilities(
    logits: np.ndarray, calibration: Mapping[str, Mapping[str, float]], labels: Sequence[str]
) -> np.ndarray:
    """`sigmoid(scale * logit + bias)` per label with its Platt parameters (`naba.training.calibration` fits them);
    a label missing from `calibration` gets the plain sigmoid. Also for scores that do not come from a Naba
    artifact (the baselines of `bench/quality.py`), so that they are calibrated exactly as a model is.

    Args:
        logits: (..., k) raw scores, k labels in `labels` order.
    """
    params = [calibration.get(label, {}) for label in labels]
    scale = np.array([p.get("scale", 1.0) for p in params])
    bias = np.array([p.get("bias", 0.0) for p in params])
    z = scale * np.asarray(logits, dtype=np.float64) + bias
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid that never overflows


class Predictor:
    """Holds one loaded model and analyses articles: tags, evidence and summary from one encoder pass."""

    def __init__(
        self,
        model: NabaModel,
        tokenizer: PreTrainedTokenizerBase,
        config: NabaConfig,
        device: torch.device,
        max_windows_per_pass: int | None = None,
        backend: str = "torch",
        dtype: DType = "auto",
        lexical: LexicalHead | None = None,
    ) -> None:
        """`lexical`: the artifact's lexical head, when it has one (`NabaConfig.lexical_weights`)."""
        check_dtype(dtype, backend)
        if bool(config.lexical_weights) != (lexical is not None):
            raise NabaError("a lexical head needs config.lexical_weights, and lexical_weights a lexical head")
        self.dtype = inference_dtype(device, dtype) if backend == "torch" else torch.float32
        if self.dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_native_bf16():
            logger.warning("this CPU has no bf16 instructions: bfloat16 will run slower than float32")
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.config = config
        self.device = device
        self.max_windows_per_pass = max_windows_per_pass or WINDOWS_PER_PASS.get(device.type, 32)
        self.backend = backend  # what runs the encoder: torch, onnx or onnx-int8
        self.lexical = lexical
        if missing := [p for p in OPERATING_POINTS[1:] if p not in config.operating_points]:
            logger.warning(
                "%s %s has no %s thresholds (written before operating points); they fall back to the "
                "balanced thresholds",
                config.name,
                config.version,
                " or ".join(missing),
            )

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        device: str = "auto",
        backend: Backend = "auto",
        quantize: Quantize | None = None,
        dtype: DType = "auto",
    ) -> Predictor:
        """Load an artifact directory (see `naba.models.artifacts`).

        Args:
            device: `auto`, `cpu` or `cuda`.
            backend: `torch`, or `onnx` to run the encoder with ONNX Runtime on CPU, the fast path on machines
                without a GPU. It needs the artifact's ONNX export (`naba export`); the heads stay in torch.
                ONNX Runtime takes torch's intra-op thread count, so one setting governs both. `auto`: the
                fastest the artifact holds for the device (`auto_backend`), or torch when `dtype` asks for
                half precision.
            quantize: `int8` for the int8 export (`naba export --quantize int8`); `onnx` or `auto` only.
            dtype: precision of the torch backend (`inference_dtype`); `auto` or `float32` with ONNX.

        Raises:
            NabaError: an unknown backend, quantization or dtype, `quantize` without `onnx`, `onnx` on
                CUDA, or a half-precision dtype with `onnx`.
            ArtifactError: the artifact or its ONNX export is missing or corrupt.
        """
        if backend not in ("auto", "torch", "onnx") or quantize not in (None, "int8"):
            raise NabaError(f"unknown backend {backend!r} or quantize {quantize!r}")
        if backend == "auto" and dtype in HALF_DTYPES:
            backend = "torch"  # half precision was asked for: only torch runs it
        check_dtype(dtype, backend)  # before loading anything
        export = None
        if backend in ("auto", "onnx") and not device.startswith("cuda"):
            from naba.models.onnx_backend import read_export  # ONNX Runtime is only imported when used

            export = read_export(path)  # read once: for `auto` to choose, and to load
        if backend == "auto":
            backend, quantize = auto_backend(export, resolve_device(device), quantize)
        if quantize is not None and backend != "onnx":
            raise NabaError(f"quantize={quantize!r} needs backend 'onnx'; the torch backend has no int8 path")
        if backend == "onnx":
            if device.startswith("cuda"):
                raise NabaError(
                    "the onnx backend runs on CPU only; use device 'cpu', or backend 'torch' on CUDA"
                )
            device = "cpu"
        resolved = resolve_device(device)
        model, tokenizer, config = load_artifact(path, resolved)
        lexical = LexicalHead.load(Path(path), config.labels) if config.lexical_weights else None
        if backend == "onnx":
            from naba.models.onnx_backend import load_onnx_encoder  # ONNX Runtime is only imported when used

            model.encoder = load_onnx_encoder(  # the `Encoder` ONNX Runtime runs, in torch's place
                path, model.encoder.config, quantize == "int8", torch.get_num_threads(), export
            )
        name = backend if quantize is None else f"{backend}-{quantize}"
        logger.info("loaded %s %s from %s on %s (%s)", config.name, config.version, path, resolved, name)
        return cls(model, tokenizer, config, resolved, backend=name, dtype=dtype, lexical=lexical)

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(zip(self.config.labels, self.config.thresholds, strict=True))

    def thresholds_for(self, operating_point: OperatingPoint = "balanced") -> list[float]:
        """Per-label thresholds of an operating point; the balanced ones where the artifact has none for it.

        Raises:
            InvalidInputError: an unknown operating point.
        """
        check_operating_point(operating_point)
        if operating_point == "balanced":
            return list(self.config.thresholds)
        return list(self.config.operating_points.get(operating_point, self.config.thresholds))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated label probabilities from raw article logits (..., K), see `calibrated_probabilities`."""
        calibrated = calibrated_probabilities(logits, self.config.calibration, self.config.labels)
        return calibrated.astype(np.float32)

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.config.name, version=self.config.version)

    @property
    def info(self) -> dict[str, Any]:
        """What `/v1/model` reports."""
        return {
            "name": self.config.name,
            "version": self.config.version,
            "description": self.config.description,
            "labels": self.labels,
            "thresholds": self.thresholds,
            "operating_points": {
                point: dict(zip(self.config.labels, self.thresholds_for(point), strict=True))
                for point in OPERATING_POINTS
            },
            "max_length": self.config.window.max_length,
            "base_model": self.config.base_model,
            "created": self.config.created,
            "metrics": self.config.metrics,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "backend": self.backend,
        }

    def encode(self, article: Article) -> EncodedArticle:
        """Windows of one article, and what its model reads besides them: rule features (`heads.rule_features`)
        and lexical logits (`lexical`), if any."""
        return self.with_lexical(article, self.windows_of(article))

    def windows_of(self, article: Article) -> EncodedArticle:
        """The first stage of `encode`: tokens, sentences, windows and the network's rule features."""
        return encode_article(
            article,
            self.tokenizer,
            self.config.preprocessing,
            self.config.window,
            rule_features=self.model.heads.rule_features,
        )

    def with_lexical(self, article: Article, encoded: EncodedArticle) -> EncodedArticle:
        """The second stage of `encode`: `encoded` with the lexical head's logits, when the model has one."""
        if self.lexical is None:
            return encoded
        rules = None  # the rules are run once when the network reads the same ones
        if (
            encoded.rule_features is not None
            and tuple(self.lexical.rule_features) == self.model.heads.rule_features
        ):
            rules = np.array([encoded.rule_features])
        return replace(encoded, lexical_logits=self.lexical.logits([article], rules)[0])

    def _passes(self, encoded: list[EncodedArticle]) -> Iterator[list[int]]:
        """Group article indices so that one forward pass holds at most `max_windows_per_pass` windows."""
        group: list[int] = []
        windows = 0
        for i, art in enumerate(encoded):
            if group and windows + len(art.windows) > self.max_windows_per_pass:
                yield group
                group, windows = [], 0
            group.append(i)
            windows += len(art.windows)
        if group:
            yield group

    @torch.inference_mode()
    def score(self, encoded: Sequence[EncodedArticle]) -> list[Scores]:
        """Run the model over encoded articles; returns their scores in the same order, label probabilities
        calibrated (`probabilities`).

        Articles are sorted by size before they are cut into forward passes, so each pass pads little.
        """
        order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].windows), encoded[i].n_tokens))
        results: dict[int, Scores] = {}
        pad = self.tokenizer.pad_token_id
        for positions in self._passes([encoded[i] for i in order]):
            group = [order[p] for p in positions]
            batch = collate([encoded[i] for i in group], pad, self.model.heads.max_positions)
            out = self.model(**{k: v.to(self.device) for k, v in batch.items()})
            doc_logits = out["doc_logits"].float().cpu().numpy()  # (B, K)
            lexical = self._lexical_logits([encoded[i] for i in group])
            if lexical is not None:
                doc_logits = doc_logits + np.asarray(self.config.lexical_weights, dtype=np.float32) * lexical
            probs = self.probabilities(doc_logits)
            sentence_logits = out["sentence_logits"].float().cpu().numpy()
            summary_logits = out["summary_logits"].float().cpu().numpy()
            for row, i in enumerate(group):
                body = slice(encoded[i].n_title, encoded[i].n_segments)
                results[i] = Scores(
                    probs[row],
                    sentence_logits[row, body],
                    summary_logits[row, body],
                    doc_logits[row],
                    None if lexical is None else lexical[row],
                )
        return [results[i] for i in range(len(encoded))]

    def _lexical_logits(self, encoded: Sequence[EncodedArticle]) -> np.ndarray | None:
        """(B, K) lexical logits of the articles, unweighted; None when the model has no lexical head."""
        if self.lexical is None:
            return None
        logits = [e.lexical_logits for e in encoded if e.lexical_logits is not None]
        if len(logits) < len(encoded):
            raise NabaError(
                "articles encoded without lexical logits: encode them with this predictor's `encode`"
            )
        return np.stack(logits)

    def analyze(
        self, articles: Sequence[Article], options: ResultOptions = DEFAULT_OPTIONS
    ) -> list[Analysis]:
        """Tag, find evidence for and summarise each article as `options` ask; results come back in input
        order."""
        if not articles:
            return []
        encoded = [self.encode(a) for a in articles]
        return [self.result(e, s, options) for e, s in zip(encoded, self.score(encoded), strict=True)]

    def result(
        self, encoded: EncodedArticle, scores: Scores, options: ResultOptions = DEFAULT_OPTIONS
    ) -> Analysis:
        """Apply thresholds, pick evidence and the summary: the last step of `analyze`, public so that the
        service's batching engine can run `encode`, `score` and `result` as separate stages. `options` are
        the request's, for this one article."""
        sentences = encoded.sentences
        n_summary = options.summary_length(len(sentences), self.config.summary_sentences)
        thresholds = self.thresholds_for(options.operating_point)
        labels = []
        for k, (label, threshold) in enumerate(zip(self.config.labels, thresholds, strict=True)):
            if scores.label_probs[k] >= threshold:
                evidence = [sentences[i] for i in self.evidence_indices(sentences, scores, k, threshold)]
                labels.append(LabelResult(label, float(scores.label_probs[k]), evidence))
        labels.sort(key=lambda r: -r.score)
        chosen = self._summary(sentences, scores.summary_logits, n_summary)
        return Analysis(
            labels=labels,
            scores={lbl: float(p) for lbl, p in zip(self.config.labels, scores.label_probs, strict=True)},
            summary=" ".join(sentences[i] for i in chosen),
            summary_indices=chosen,
            model=self.ref,
            sentences=sentences,
        )

    def evidence_indices(
        self, sentences: Sequence[str], scores: Scores, k: int, threshold: float | None = None
    ) -> list[int]:
        """Indices of the sentences that drive label `k`, best first, at most `evidence_sentences`.

        With `evidence_rules` (the default), sentences where more of the guide's rules for the label fire
        come first, then the evidence head's order: a head trained on a few hundred quotes misses the
        annotators' quote far more often than the rules do (`bench/quality.py` prints both hit rates). A
        sentence is kept when a rule fires in it or the head scores it over `threshold` (the request's
        operating point; by default the label's balanced threshold); the best one is always kept.

        Args:
            sentences: the article's body sentences, those `scores` are over.
        """
        logits = scores.sentence_logits[:, k]
        if len(logits) == 0:
            return []
        label = self.config.labels[k]
        votes = positive_votes(sentences, label) if self.config.evidence_rules else [0] * len(logits)
        order = sorted(range(len(logits)), key=lambda i: (-votes[i], -logits[i]))
        probs = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid that never overflows
        threshold = self.config.thresholds[k] if threshold is None else threshold
        keep = [i for i in order if votes[i] > 0 or probs[i] >= threshold]
        return (keep or order[:1])[: self.config.evidence_sentences]

    def _summary(self, sentences: list[str], logits: np.ndarray, n: int) -> list[int]:
        """`n` sentences within the length budget, in article order; always the head's best one.

        The summary head is trained on one-sentence reference summaries, so it knows the best sentence far
        better than the second and third. With `summary_lead_fill` (the default) the rest of the summary is
        the article's lead, in order: news is written lead-first, and Lead-3 is the baseline multi-sentence
        summaries are judged against. Without it, the head's next best sentences fill it.
        """
        best = int(np.argmax(logits))
        rest = range(len(logits)) if self.config.summary_lead_fill else np.argsort(-logits, kind="stable")
        chosen: list[int] = []
        length = 0
        for i in [best, *(int(i) for i in rest if i != best)]:
            if len(chosen) == n:
                break
            size = len(sentences[i]) + 1
            if chosen and length + size > self.config.summary_max_chars:
                continue
            chosen.append(int(i))
            length += size
        return sorted(chosen)

    def warm_up(self) -> None:
        """Run one article through the model so the first request does not pay for lazy initialisation."""
        self.analyze([WARM_UP_ARTICLE])
