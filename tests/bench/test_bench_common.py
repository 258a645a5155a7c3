"""`bench/common.py`'s `with_exports`: a benchmark never writes into a model it does not own, and never times
an export older than this version's format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import bench.common as common
from bench.common import ModelChoice, with_exports
from naba.models.artifacts import write_checksums
from naba.models.onnx_backend import EXPORT_INFO, INT8, ONNX_DIR, export_is_current


def test_a_model_it_does_not_own_is_copied_then_exported(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "BENCH_DIR", tmp_path / "bench")
    original = Path(shutil.copytree(model_dir, tmp_path / "served"))
    chosen = with_exports(ModelChoice("served", original), ["torch", "onnx-int8"])
    assert chosen.owned and chosen.path == (tmp_path / "bench" / "served-copy").resolve()
    assert (chosen.path / ONNX_DIR / INT8).is_file() and export_is_current(chosen.path / ONNX_DIR)
    assert not (original / ONNX_DIR).exists()
    assert with_exports(ModelChoice("served", original), ["torch"]).path == original  # torch needs no export


def test_an_export_of_an_older_format_is_redone(model_dir: Path, tmp_path: Path) -> None:
    owned = Path(shutil.copytree(model_dir, tmp_path / "owned"))
    with_exports(ModelChoice("owned", owned, owned=True), ["onnx-int8"])
    info_file = owned / ONNX_DIR / EXPORT_INFO
    info = json.loads(info_file.read_text("utf-8"))
    del info["format"]  # as `naba export` wrote it before fused graphs
    info_file.write_text(json.dumps(info), "utf-8")
    write_checksums(owned / ONNX_DIR)
    assert not export_is_current(owned / ONNX_DIR)
    with_exports(ModelChoice("owned", owned, owned=True), ["onnx-int8"])
    assert export_is_current(owned / ONNX_DIR)
