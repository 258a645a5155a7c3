"""The CPU fast path: the encoder exported to ONNX and run by ONNX Runtime, optionally with int8 weights.

The encoder is nearly all of the compute; the heads over sentence vectors are tiny, so only the encoder is
exported and the heads (the rule head of a `--rule-features` model included) stay in torch. `naba export`
writes, inside the artifact::

    onnx/encoder.onnx        input_ids, attention_mask (batch, sequence) -> last_hidden_state, fp32
    onnx/encoder.int8.onnx   the same with int8 weights (dynamic quantisation), with --quantize int8
    onnx/export.json         which weights were exported, how, and with which versions
    onnx/checksums.json      sha256 of the files above, checked on load

`Predictor.from_dir(..., backend="onnx")` puts an `OnnxEncoder` where the torch encoder was; `NabaModel` calls
it the same way and does not know the difference.

The export uses torch's TorchScript-based exporter (`dynamo=False`): it needs no `onnxscript`, exports in about
a second and handles the HF BERT graph with dynamic batch and sequence axes. The encoder is traced with eager
attention, whose graph ONNX Runtime's transformer optimiser recognises: it fuses each layer's attention into one
`Attention` operator (and the embeddings, layer norms and GELUs likewise), which int8 quantisation then turns
into `QAttention`, attention with int8 projections. On BERT-base that took the int8 service from 2.4x to 3.0x
the pipeline baseline at concurrency 32 (`bench/serve.py`; README, speed table). Because a tracer can bake
values into a graph, and a fusion can misread one, every export is checked against torch on inputs of another
shape before it is kept.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from naba.models.artifacts import (
    CHECKSUMS,
    WEIGHTS,
    atomic_directory,
    load_artifact,
    read_checksums,
    sha256_file,
    write_checksums,
)
from naba.models.errors import ArtifactError

logger = logging.getLogger(__name__)

ONNX_DIR = "onnx"
FP32 = "encoder.onnx"
INT8 = "encoder.int8.onnx"
EXPORT_INFO = "export.json"
OPSET = 17
# What an export holds; bumped when `naba export` writes a different graph: 2 has fused transformer operators.
# An older export still loads (its graph is right, only slower); loading it logs that a re-export pays.
EXPORT_FORMAT = 2
INPUTS = ["input_ids", "attention_mask"]
OUTPUT = "last_hidden_state"
TOLERANCE = 1e-3  # largest difference from torch, in hidden-state units, an fp32 export may show
# int8 weights for the matrix products and the fused attention's projections (nearly all the compute), one
# scale per output channel. Embedding lookups stay fp32: quantising them saves file size, not time, and costs
# the most accuracy.
INT8_SETTINGS: dict[str, Any] = {
    "weight_type": "QInt8",
    "op_types": ["MatMul", "Attention"],
    "per_channel": True,
}


class _EncoderGraph(nn.Module):
    """The HF encoder with tensors in and a tensor out, which is what the exporter can trace."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class OnnxEncoder(nn.Module):
    """Stands in for the HF encoder inside `NabaModel`: same call, same output field, run on CPU by ONNX Runtime.

    It is an `nn.Module` so that it can replace `NabaModel.encoder` (a submodule) by plain assignment; it has
    no parameters, so `.to()`, `.eval()` and `torch.inference_mode()` pass over it.

    Args:
        path: the `.onnx` file.
        config: the encoder's HF config; `NabaModel` reads `hidden_size` from it.
        threads: ONNX Runtime intra-op threads; None or 0 for its default (one per physical core).
    """

    def __init__(self, path: str | Path, config: PretrainedConfig, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.config = config
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> BaseModelOutput:
        feeds = {
            "input_ids": input_ids.to("cpu", torch.int64).numpy(),  # (W, L)
            "attention_mask": attention_mask.to("cpu", torch.int64).numpy(),  # (W, L)
        }
        (states,) = self.session.run([OUTPUT], feeds)  # (W, L, H) float32
        return BaseModelOutput(last_hidden_state=torch.from_numpy(states))


def _inputs(vocab_size: int, batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids with the last row half padded, so that the traced graph keeps the padding-mask path."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab_size, (batch, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[-1, max(1, length // 2) :] = 0
    return input_ids, attention_mask


def _export(graph: _EncoderGraph, path: Path, vocab_size: int, length: int) -> None:
    """Trace `graph` into an ONNX file with dynamic batch and sequence axes."""
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():
        # Expected noise: the exporter's own deprecation notice, and tracer notes about shape checks that
        # transformers makes trace-safe. `_check` is what vouches for the graph.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            graph,
            _inputs(vocab_size, batch=2, length=length, seed=0),
            str(path),
            input_names=INPUTS,
            output_names=[OUTPUT],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, OUTPUT: axes},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _fuse(path: Path, config: PretrainedConfig) -> dict[str, int]:
    """Apply ONNX Runtime's transformer fusions to the file in place; returns how many of each fused operator.

    Only the optimiser's portable Python fusions run (`opt_level=0`): the file holds no rewrite specific to
    this machine's CPU, and the session applies its own optimisations when it loads. A graph the fusions do
    not recognise (another architecture) comes back unfused and still correct.
    """
    with _quiet():
        optimized = optimize_model(
            str(path),
            model_type="bert",
            num_heads=getattr(config, "num_attention_heads", 0),  # 0: read from the graph
            hidden_size=getattr(config, "hidden_size", 0),
            opt_level=0,
        )
        optimized.save_model_to_file(str(path))
    return {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}


def _check(graph: _EncoderGraph, path: Path, vocab_size: int, length: int) -> float:
    """Largest difference between torch and the ONNX file on an input of another shape than the trace's.

    Raises:
        ArtifactError: the difference is over `TOLERANCE` (the export would change the model's answers).
    """
    input_ids, attention_mask = _inputs(vocab_size, batch=3, length=length, seed=1)
    with torch.inference_mode():
        expected = graph(input_ids, attention_mask).numpy()
    got = OnnxEncoder(path, PretrainedConfig(), threads=None)(input_ids, attention_mask).last_hidden_state
    diff = float(np.abs(got.numpy() - expected).max())
    if not diff <= TOLERANCE:
        raise ArtifactError(f"the ONNX export differs from the torch encoder by {diff:.2e}; it was not kept")
    return diff


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the optimiser's and the quantiser's logging below errors: a line per fusion and per tensor, and
    generic advice, on the root logger and their own."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation with `INT8_SETTINGS`: weights int8 ahead of time, activations per batch."""
    with _quiet():
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=INT8_SETTINGS["op_types"],
            per_channel=INT8_SETTINGS["per_channel"],
            # Shape inference does not type the outputs of fused (contrib) operators; they are all fp32.
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )


def export_onnx(artifact_dir: str | Path, quantize: bool = False) -> Path:
    """Export an artifact's encoder to `<artifact>/onnx`, replacing an earlier export.

    The files are written to a temporary directory inside the artifact and renamed into place, so an export
    that dies half-way leaves the previous one (or none) behind, never a torn one.

    Args:
        artifact_dir: a Naba artifact (see `naba.models.artifacts`); it is loaded and verified first.
        quantize: also write `encoder.int8.onnx`, with int8 weights (dynamic quantisation).

    Returns:
        The `onnx` directory.

    Raises:
        ArtifactError: the artifact does not load, or the export does not reproduce the torch encoder.
    """
    artifact_dir = Path(artifact_dir)
    model, _, config = load_artifact(artifact_dir, "cpu")
    assert isinstance(model.encoder, PreTrainedModel)  # what load_artifact builds: the torch encoder
    if hasattr(model.encoder, "set_attn_implementation"):
        model.encoder.set_attn_implementation("eager")  # the attention graph the optimiser can fuse
    graph = _EncoderGraph(model.encoder).eval()
    vocab_size = int(model.encoder.config.vocab_size)
    max_length = config.window.max_length
    target = artifact_dir / ONNX_DIR
    with atomic_directory(target, replace=True) as tmp:
        _export(graph, tmp / FP32, vocab_size, length=min(max_length, 16))
        fused = _fuse(tmp / FP32, model.encoder.config)
        diff = _check(graph, tmp / FP32, vocab_size, length=min(max_length, 48))
        if quantize:
            _quantize(tmp / FP32, tmp / INT8)
        info: dict[str, Any] = {
            "weights_sha256": sha256_file(artifact_dir / WEIGHTS),
            "format": EXPORT_FORMAT,
            "opset": OPSET,
            "fused_operators": fused,
            "max_abs_diff_fp32": diff,
            "int8": INT8_SETTINGS if quantize else None,
            "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
        }
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2), "utf-8")
        write_checksums(tmp)
    files = sorted(p.name for p in target.iterdir() if p.name != CHECKSUMS)
    logger.info("exported the encoder to %s (%s; fp32 max diff %.1e)", target, ", ".join(files), diff)
    return target


@dataclass(frozen=True)
class Export:
    """An artifact's ONNX export as read once: `export.json`, its checksum list and whether it was made from the
    artifact's weights. `backend="auto"` chooses from it and `load_onnx_encoder` loads from it, so loading reads
    each file once and hashes only the encoder it loads."""

    artifact_dir: Path
    info: dict[str, Any]
    listed: dict[str, str]
    own_weights: bool

    @property
    def directory(self) -> Path:
        return self.artifact_dir / ONNX_DIR

    @property
    def best(self) -> str | None:
        """The fastest encoder it holds for the artifact's own weights: `int8`, `fp32`, or None (stale)."""
        if not self.own_weights:
            return None
        return next((kind for kind, name in (("int8", INT8), ("fp32", FP32)) if name in self.listed), None)

    @property
    def current(self) -> bool:
        """Whether it was written in this version's format (`EXPORT_FORMAT`); an older one is right, but slower."""
        return self.info.get("format") == EXPORT_FORMAT


def read_export(artifact_dir: str | Path) -> Export | None:
    """The artifact's export, or None when it has none that can be read."""
    artifact_dir = Path(artifact_dir)
    onnx_dir = artifact_dir / ONNX_DIR
    try:
        listed = read_checksums(onnx_dir)
        info = json.loads((onnx_dir / EXPORT_INFO).read_text("utf-8"))
        own_weights = _exported_from_own_weights(artifact_dir, info)
    except (OSError, ValueError):
        return None
    return Export(artifact_dir, info, listed, own_weights)


def load_onnx_encoder(
    artifact_dir: str | Path,
    config: PretrainedConfig,
    int8: bool = False,
    threads: int | None = None,
    export: Export | None = None,
) -> OnnxEncoder:
    """The exported encoder of an artifact, verified against its checksums and the artifact's weights.

    Args:
        artifact_dir: an artifact that `load_artifact` has already verified.
        config: the encoder's HF config.
        int8: load `encoder.int8.onnx` instead of the fp32 export.
        threads: ONNX Runtime intra-op threads (None: its default).
        export: the artifact's export as `read_export` read it (read here when not given).

    Raises:
        ArtifactError: no export (run `naba export`), a file that fails its checksum, or an export made from
            other weights than the artifact's.
    """
    artifact_dir = Path(artifact_dir)
    onnx_dir = artifact_dir / ONNX_DIR
    name = INT8 if int8 else FP32
    if not (onnx_dir / name).is_file():
        flag = " --quantize int8" if int8 else ""
        raise ArtifactError(
            f"{artifact_dir} has no ONNX export ({ONNX_DIR}/{name}); run `naba export --model {artifact_dir}{flag}`"
        )
    export = export or read_export(artifact_dir)
    if export is None or name not in export.listed or EXPORT_INFO not in export.listed:
        raise ArtifactError(f"{onnx_dir} has no checksum for {name} or {EXPORT_INFO}; rerun `naba export`")
    for checked in (name, EXPORT_INFO):  # the encoder loaded and what vouches for it, not the other encoder
        if sha256_file(onnx_dir / checked) != export.listed[checked]:
            raise ArtifactError(f"{onnx_dir / checked} does not match its checksum; rerun `naba export`")
    if not export.own_weights:
        raise ArtifactError(
            f"{onnx_dir} was exported from other weights than {artifact_dir}; rerun `naba export`"
        )
    if not export.current:
        logger.warning(
            "%s was written by an older `naba export` (format %s, now %d); it is correct but slower than a "
            "fresh one: rerun `naba export --model %s`",
            onnx_dir,
            export.info.get("format", 1),
            EXPORT_FORMAT,
            artifact_dir,
        )
    logger.info("encoder runs on ONNX Runtime from %s", onnx_dir / name)
    return OnnxEncoder(onnx_dir / name, config, threads)


def _exported_from_own_weights(artifact_dir: Path, info: dict[str, Any]) -> bool:
    """Whether an export's `export.json` names the weights the artifact's checksums list."""
    return info.get("weights_sha256") == read_checksums(artifact_dir).get(WEIGHTS)


def export_is_current(onnx_dir: str | Path) -> bool:
    """Whether an artifact's `onnx` directory holds an export in this version's format (`EXPORT_FORMAT`)."""
    info = Path(onnx_dir) / EXPORT_INFO
    return info.is_file() and json.loads(info.read_text("utf-8")).get("format") == EXPORT_FORMAT
