"""`naba build-starter`: with no shared data it still builds a working, honestly described model."""

from __future__ import annotations

from pathlib import Path

from naba.cli import main as naba
from naba.models.artifacts import read_config
from naba.models.predictor import Predictor
from naba.models.results import Article
from naba.training.starter import find_data
from tests.conftest import NEGATIVES


def test_find_data_falls_back_to_the_seeds(tmp_path: Path) -> None:
    train, dev, what = find_data(tmp_path / "nowhere")
    assert train == [str(Path(__file__).resolve().parents[2] / "seeds" / "seeds.jsonl")]
    assert dev == [] and what == "the five seed articles"


def test_find_data_uses_the_shared_data(data_dir: Path) -> None:
    train, dev, _ = find_data(data_dir)
    assert [Path(p).name for p in train] == ["train.jsonl", "bbc_train.jsonl"]
    assert [Path(p).name for p in dev] == ["dev.jsonl", "bbc_dev.jsonl"]


def test_starter_from_seeds_serves_and_says_what_it_is(tmp_path: Path) -> None:
    out = tmp_path / "starter"
    args = ["--output", str(out), "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1"]
    assert naba(["build-starter", *args]) == 0
    config = read_config(out)
    assert config.name == "naba-starter"
    assert "random weights" in config.description and "seed articles" in config.description
    assert "random weights" in (out / "README.md").read_text("utf-8")
    analysis = Predictor.from_dir(out, device="cpu").analyze([Article(NEGATIVES[0])])[0]
    assert set(analysis.scores) == set(config.labels)
