"""The ONNX fast path: export, checksums, parity with torch (rule head included), int8 accuracy, and every way
loading refuses."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from scipy.special import logit

from naba.cli import main
from naba.models.artifacts import sha256_file, write_checksums
from naba.models.errors import ArtifactError, NabaError
from naba.models.onnx_backend import (
    CHECKSUMS,
    EXPORT_FORMAT,
    EXPORT_INFO,
    FP32,
    INT8,
    ONNX_DIR,
    export_is_current,
    export_onnx,
)
from naba.models.predictor import Predictor
from naba.models.records import read_records
from naba.models.results import Article
from naba.training.evaluate import evaluate
from tests.conftest import seed_records

SEEDS = [Article(r["text"], id=r["id"]) for r in seed_records()]
LONG = Article(
    " ".join(f"الجملة رقم {i} عن العمليات المشتركة في المحافظة." for i in range(40)), title="عنوان"
)


@pytest.fixture(scope="module")
def exported(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session model with fp32 and int8 exports (the shared fixture directory stays untouched)."""
    copy = Path(shutil.copytree(model_dir, tmp_path_factory.mktemp("onnx") / "tiny"))
    export_onnx(copy, quantize=True)
    return copy


@pytest.fixture(scope="module")
def onnx_fp32(exported: Path) -> Predictor:
    return Predictor.from_dir(exported, device="cpu", backend="onnx")


def test_export_writes_both_encoders_with_checksums(exported: Path) -> None:
    onnx_dir = exported / ONNX_DIR
    sums = json.loads((onnx_dir / CHECKSUMS).read_text("utf-8"))
    assert set(sums) == {FP32, INT8, EXPORT_INFO}
    assert all(sha256_file(onnx_dir / name) == digest for name, digest in sums.items())
    assert (onnx_dir / INT8).stat().st_size < (onnx_dir / FP32).stat().st_size
    assert not [p for p in exported.iterdir() if p.name.startswith(".")]  # no temporary directory left


def test_export_fuses_attention_and_quantises_it(exported: Path) -> None:
    """The fused graph is the fast one: if the optimiser stops recognising the encoder's attention, this fails
    rather than the export silently running slower."""
    info = json.loads((exported / ONNX_DIR / EXPORT_INFO).read_text("utf-8"))
    assert info["format"] == EXPORT_FORMAT
    layers = json.loads((exported / "config.json").read_text("utf-8"))["num_hidden_layers"]
    assert info["fused_operators"]["Attention"] == layers
    assert export_is_current(exported / ONNX_DIR)
    ops = {node.op_type for node in onnx.load(str(exported / ONNX_DIR / INT8)).graph.node}
    assert {"QAttention", "MatMulInteger"} <= ops and "Attention" not in ops


def test_export_of_an_older_format_loads_with_a_warning(
    exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = Path(shutil.copytree(exported, tmp_path / "old"))
    info_file = old / ONNX_DIR / EXPORT_INFO
    info = json.loads(info_file.read_text("utf-8"))
    del info["format"]
    info_file.write_text(json.dumps(info), "utf-8")
    write_checksums(old / ONNX_DIR)
    assert not export_is_current(old / ONNX_DIR)
    with caplog.at_level(logging.WARNING):
        predictor = Predictor.from_dir(old, device="cpu", backend="onnx")
    assert "rerun `naba export" in caplog.text
    assert predictor.analyze(SEEDS[:1])[0].scores


def test_fp32_matches_torch(predictor: Predictor, onnx_fp32: Predictor) -> None:
    articles = [*SEEDS, LONG]  # LONG spans several windows, so the batch has padding
    for ours, theirs in zip(onnx_fp32.analyze(articles), predictor.analyze(articles), strict=True):
        assert ours.scores == pytest.approx(theirs.scores, abs=1e-4)
        assert ours.summary_indices == theirs.summary_indices
        assert [r.label for r in ours.labels] == [r.label for r in theirs.labels]
    assert onnx_fp32.info["backend"] == "onnx"
    assert predictor.info["backend"] == "torch"


def _widest_gap_thresholds(predictor: Predictor, articles: list[Article]) -> list[float]:
    """Per label, a threshold in the middle of the widest gap between the predictor's sorted scores.

    The tiny model is barely trained and its tuned thresholds sit within ~1e-5 of some score, so any change
    at all flips a decision and, on 17 articles, moves macro-F1 by points. The widest gap gives the comparison
    the largest margin the scores allow, so it measures the int8 encoder, not where a threshold happened to land.
    """
    probs = np.array([[a.scores[lbl] for lbl in predictor.labels] for a in predictor.analyze(articles)])
    thresholds = []
    for k in range(probs.shape[1]):
        scores = np.sort(probs[:, k])
        i = int(np.argmax(np.diff(scores)))
        thresholds.append(float(scores[i] + scores[i + 1]) / 2)
    return thresholds


def test_int8_keeps_macro_f1_and_tags(exported: Path, train_file: Path) -> None:
    fp32 = Predictor.from_dir(exported, device="cpu", backend="onnx")
    int8 = Predictor.from_dir(exported, device="cpu", backend="onnx", quantize="int8")
    assert int8.info["backend"] == "onnx-int8"
    records = read_records([train_file])
    articles = [r.article for r in records]
    fp32_logits = logit(np.array([[a.scores[lbl] for lbl in fp32.labels] for a in fp32.analyze(articles)]))
    int8_logits = logit(np.array([[a.scores[lbl] for lbl in int8.labels] for a in int8.analyze(articles)]))
    # Relative to how far the fp32 logits spread across articles, not an absolute bound on probabilities:
    # the tiny random model's int8 error is ~1% of its spread, and the spread is what ranks and decides.
    spread = fp32_logits.max(axis=0) - fp32_logits.min(axis=0)
    assert (np.abs(int8_logits - fp32_logits).max(axis=0) < 0.05 * spread).all()
    thresholds = _widest_gap_thresholds(
        fp32, [a for a, r in zip(articles, records, strict=True) if r.labels is not None]
    )
    fp32.config.thresholds = int8.config.thresholds = thresholds
    assert abs(evaluate(int8, records)["macro_f1"] - evaluate(fp32, records)["macro_f1"]) <= 0.005
    fp32_tags = [{r.label for r in a.labels} for a in fp32.analyze(SEEDS)]
    assert [{r.label for r in a.labels} for a in int8.analyze(SEEDS)] == fp32_tags


def test_naba_evaluate_scores_with_the_backend_asked_for(
    exported: Path, train_file: Path, tmp_path: Path
) -> None:
    flags = {
        "torch": [],
        "onnx": ["--backend", "onnx"],
        "onnx-int8": ["--backend", "onnx", "--quantize", "int8"],
    }
    runs = {}
    for name, extra in flags.items():
        output = tmp_path / f"{name}.json"
        assert main(["evaluate", "--model", str(exported), "--data", str(train_file), "--output", str(output),
                     "--device", "cpu", *extra]) == 0  # fmt: skip
        runs[name] = json.loads(output.read_text("utf-8"))
    assert {name: run["model"]["backend"] for name, run in runs.items()} == {name: name for name in flags}
    # The fp32 export gives torch's scores (to 1e-3), hence its metrics; int8's accuracy bound is tested above
    # with thresholds away from the scores, since the tiny model's own thresholds sit among them.
    assert runs["onnx"]["macro_f1"] == pytest.approx(runs["torch"]["macro_f1"])
    assert 0.0 <= runs["onnx-int8"]["macro_f1"] <= 1.0


def test_tampered_export_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(exported, tmp_path / "tiny"))
    with (copy / ONNX_DIR / FP32).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="checksum"):
        Predictor.from_dir(copy, device="cpu", backend="onnx")


def test_export_from_other_weights_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(exported, tmp_path / "tiny"))
    onnx_dir = copy / ONNX_DIR
    (onnx_dir / EXPORT_INFO).write_text(json.dumps({"weights_sha256": "0" * 64}), "utf-8")
    sums = {name: sha256_file(onnx_dir / name) for name in (FP32, INT8, EXPORT_INFO)}
    (onnx_dir / CHECKSUMS).write_text(json.dumps(sums), "utf-8")
    with pytest.raises(ArtifactError, match="other weights"):
        Predictor.from_dir(copy, device="cpu", backend="onnx")


def test_missing_export_says_to_run_naba_export(model_dir: Path) -> None:
    with pytest.raises(ArtifactError, match="naba export"):
        Predictor.from_dir(model_dir, device="cpu", backend="onnx")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "cuda", "backend": "onnx"}, "CPU only"),
        ({"device": "cpu", "backend": "torch", "quantize": "int8"}, "needs backend 'onnx'"),
        ({"device": "cpu", "backend": "tensorrt"}, "unknown backend"),
    ],
)
def test_bad_backend_requests_are_refused(exported: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(NabaError, match=match):
        Predictor.from_dir(exported, **kwargs)


def test_naba_export_command(model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(model_dir, tmp_path / "tiny"))
    assert main(["export", "--model", str(copy)]) == 0
    assert (copy / ONNX_DIR / FP32).is_file()
    assert not (copy / ONNX_DIR / INT8).exists()
    with pytest.raises(ArtifactError, match="--quantize int8"):
        Predictor.from_dir(copy, device="cpu", backend="onnx", quantize="int8")

    assert main(["export", "--model", str(copy), "--quantize", "int8"]) == 0  # replaces the first export
    assert (
        Predictor.from_dir(copy, device="cpu", backend="onnx", quantize="int8").info["backend"] == "onnx-int8"
    )


def test_rule_head_stays_in_torch_next_to_the_onnx_encoder(rules_model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(rules_model_dir, tmp_path / "tiny-rules"))
    export_onnx(copy)
    torch_predictor = Predictor.from_dir(copy, device="cpu", backend="torch")
    onnx_predictor = Predictor.from_dir(copy, device="cpu", backend="onnx")
    assert onnx_predictor.model.heads.rule_features == torch_predictor.model.heads.rule_features != ()
    articles = [*SEEDS, LONG]
    assert all(onnx_predictor.encode(a).rule_features is not None for a in articles)
    for ours, theirs in zip(onnx_predictor.analyze(articles), torch_predictor.analyze(articles), strict=True):
        assert ours.scores == pytest.approx(theirs.scores, abs=1e-4)
        assert [r.label for r in ours.labels] == [r.label for r in theirs.labels]


def test_auto_backend_serves_the_fastest_export_the_model_holds(
    model_dir: Path, exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service's default: int8 export first, then fp32, then torch; never an export of other weights."""
    assert Predictor.from_dir(model_dir, device="cpu").backend == "torch"  # no export: torch, no error
    assert Predictor.from_dir(exported, device="cpu").backend == "onnx-int8"
    half = Predictor.from_dir(exported, device="cpu", dtype="bfloat16")  # only torch runs bf16
    assert (half.backend, half.dtype) == ("torch", torch.bfloat16)
    copy = Path(shutil.copytree(model_dir, tmp_path / "tiny"))
    export_onnx(copy)
    assert Predictor.from_dir(copy, device="cpu", backend="auto").backend == "onnx"
    with pytest.raises(ArtifactError, match="--quantize int8"):
        Predictor.from_dir(copy, device="cpu", backend="auto", quantize="int8")  # asked for, not there

    onnx_dir = copy / ONNX_DIR
    (onnx_dir / EXPORT_INFO).write_text(json.dumps({"weights_sha256": "0" * 64}), "utf-8")
    write_checksums(onnx_dir)
    with caplog.at_level(logging.WARNING, logger="naba.models.onnx_backend"):
        assert Predictor.from_dir(copy, device="cpu").backend == "torch"
    assert "other weights" in caplog.text


def test_auto_reads_the_export_once_and_hashes_only_the_encoder_it_loads(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import naba.models.onnx_backend as onnx_backend

    copy = Path(shutil.copytree(exported, tmp_path / "copy"))
    (copy / ONNX_DIR / FP32).write_bytes(b"not the fp32 encoder any more")  # the one auto does not load
    reads = []
    real = onnx_backend.read_export
    monkeypatch.setattr(onnx_backend, "read_export", lambda path: reads.append(path) or real(path))
    predictor = Predictor.from_dir(copy, device="cpu", backend="auto")
    assert predictor.info["backend"] == "onnx-int8" and len(reads) == 1
    (copy / ONNX_DIR / INT8).write_bytes(b"broken")
    with pytest.raises(ArtifactError, match="does not match its checksum"):
        Predictor.from_dir(copy, device="cpu", backend="auto")
