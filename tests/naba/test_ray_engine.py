"""`naba predict --engine ray` on a local Ray instance: the same results, byte for byte per id, as the local
engine, bad lines and refused articles included; and killed with SIGKILL, then rerun, every id exactly once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from naba.cli import EXIT_INCOMPLETE
from naba.cli import main as naba
from tests.naba.test_kill_resume import kill_when, start, synthetic_articles

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install naba[ray])")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray instance owned by this process: killed drivers connect to it and die alone, and it stops here."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def archive(path: Path, n: int) -> Path:
    """`n` articles, with a line that is not JSON and an article the predictor refuses (no Arabic letters)."""
    lines = [json.dumps(r, ensure_ascii=False) for r in synthetic_articles(n)]
    lines.insert(3, "{not json")
    lines.insert(7, json.dumps({"id": "latin", "text": "no Arabic letters here"}))
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def by_id(path: Path) -> dict[str, str]:
    return {json.loads(line)["id"]: line for line in path.read_text("utf-8").splitlines()}


def test_ray_writes_what_the_local_engine_writes(model_dir: Path, tmp_path: Path, cluster: str) -> None:
    source = archive(tmp_path / "in.jsonl", 12)
    common = ["predict", "--model", str(model_dir), "--input", str(source), "--device", "cpu", "--backend",
              "torch", "--batch-size", "3", "--no-progress"]  # fmt: skip
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert naba([*common, "--output", str(local)]) == EXIT_INCOMPLETE
    assert naba([*common, "--output", str(ray), "--engine", "ray", "--ray-actors", "2"]) == EXIT_INCOMPLETE
    assert by_id(ray) == by_id(local) and len(by_id(ray)) == 12
    errors = [json.loads(line)["line"] for line in (tmp_path / "ray.errors.jsonl").read_text().splitlines()]
    assert errors == [4, 8]
    manifest = json.loads((tmp_path / "ray.run.json").read_text("utf-8"))
    assert manifest["engine"]["engine"] == "ray, 2 actors"


def test_ray_killed_and_rerun_writes_every_id_once(model_dir: Path, tmp_path: Path, cluster: str) -> None:
    source = archive(tmp_path / "in.jsonl", 40)
    output = tmp_path / "out.jsonl"
    args = ["predict", "--model", str(model_dir), "--input", str(source), "--output", str(output), "--device",
            "cpu", "--backend", "torch", "--engine", "ray", "--ray-address", cluster, "--ray-actors", "2",
            "--chunk-size", "8", "--batch-size", "4", "--no-progress"]  # fmt: skip
    log = tmp_path / "log.txt"
    kill_when(start(args, log), lambda: output.is_file() and output.stat().st_size > 0, log)
    assert naba(args) == EXIT_INCOMPLETE  # the refused article and the bad line stay errors
    ids = Counter(json.loads(line)["id"] for line in output.read_text("utf-8").splitlines())
    assert len(ids) == 40 and set(ids.values()) == {1}


def test_actors_the_cluster_has_no_room_for_fail_in_time(model_dir: Path, cluster: str) -> None:
    from naba.models.errors import NabaError
    from naba.ray_engine import RayAnalyzer

    with pytest.raises(NabaError, match="lacks room"):
        RayAnalyzer(model_dir, actors=1, cpus_per_actor=64, address=cluster, ready_timeout_s=2)
