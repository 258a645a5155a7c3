"""Shared fixtures: a tiny encoder and a tiny fine-tuned Naba model, built offline once per session.

The encoder is a 2-layer, 32-wide BERT with random weights and a WordPiece vocabulary trained on the seed
articles; the model is fine-tuned from it for a few steps (twins also read rule features, or add a lexical
head). Nothing is downloaded (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The corrections store defaults to a file in the working directory: no test may write one there.
os.environ["NABA_DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='naba-tests-')}/corrections.sqlite3"

# Property tests draw the same examples on every run (the suite is deterministic) and keep no example database.
settings.register_profile("naba", derandomize=True, database=None)
settings.load_profile("naba")

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds" / "seeds.jsonl"

# Short articles without any of the three topics, so the tagging head sees negatives.
NEGATIVES = [
    "فاز فريق الهلال على النصر بهدفين مقابل هدف في مباراة مثيرة. وسجل المهاجم الهدف الثاني في الدقيقة الأخيرة.",
    "ارتفعت أسعار النفط في الأسواق العالمية اليوم. وقال محللون إن الطلب القوي دعم الأسعار خلال الأسبوع.",
    "افتتح وزير الثقافة معرض الكتاب الدولي بمشاركة مئات دور النشر. ويستمر المعرض عشرة أيام.",
    "أعلنت وزارة الصحة عن حملة تطعيم جديدة للأطفال في المدارس. وتشمل الحملة جميع المحافظات.",
    "توقعت هيئة الأرصاد هطول أمطار غزيرة على المناطق الشمالية. ودعت المواطنين إلى الحذر على الطرق.",
    "وقعت الحكومة اتفاقية لتطوير شبكة الكهرباء. وتهدف الاتفاقية إلى تحسين الخدمة في المدن الكبرى.",
]


def seed_records() -> list[dict]:
    return [json.loads(line) for line in SEEDS.read_text("utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data directory; tests that need it skip when it is absent."""
    path = Path(os.environ.get("NABA_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (path / "labelled" / "train.jsonl").is_file():
        pytest.skip(f"shared data not found at {path} (set NABA_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeds (all three topics), negatives (none) and summary pairs (first sentence as reference)."""
    rows = seed_records()
    rows += [{"id": f"neg-{i}", "text": t, "labels": []} for i, t in enumerate(NEGATIVES)]
    rows += [{"id": f"sum-{i}", "text": t, "summary": t.split(".")[0] + "."} for i, t in enumerate(NEGATIVES)]
    return write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", rows)


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from naba.training.encoder import EncoderSize, build_encoder

    texts = [r["text"] for r in seed_records()] + NEGATIVES
    size = EncoderSize(vocab_size=500, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                       max_position_embeddings=64)  # fmt: skip
    return build_encoder(texts, tmp_path_factory.mktemp("encoder") / "enc", size, seed=0)


TRAIN_ARGS = ["--max-length", "64", "--window-overlap", "16", "--num_train_epochs", "2",
              "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--seed", "0",
              "--disable_tqdm", "true", "--version", "test-1"]  # fmt: skip


def naba_train(argv: list[str]) -> Path:
    """`naba train` with these arguments, in this process: parsed as the command parses them, then the library
    (`naba.training.train.train_model`); returns the artifact and lets errors propagate, where the command
    would turn them into exit codes."""
    from naba.cli.train import TRAIN
    from naba.training.train import train_model

    return train_model(*TRAIN.parse(argv))


def naba_pretrain(argv: list[str]) -> Path:
    """`naba pretrain` with these arguments, in this process, as `naba_train`: returns the encoder."""
    from naba.cli.pretrain import PRETRAIN
    from naba.training.pretrain import pretrain_encoder

    return pretrain_encoder(*PRETRAIN.parse(argv))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path, train_file: Path) -> Path:
    """A tiny fine-tuned artifact, trained once per session."""
    output = tmp_path_factory.mktemp("models") / "tiny"
    args = ["--train", str(train_file), "--dev", str(train_file), "--base-model", str(encoder_dir)]
    return naba_train([*args, "--output", str(output), *TRAIN_ARGS])


@pytest.fixture(scope="session")
def rules_model_dir(tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path, train_file: Path) -> Path:
    """The same tiny artifact trained with `--rule-features`: it also reads the guide's labelling functions."""
    output = tmp_path_factory.mktemp("models") / "tiny-rules"
    args = ["--train", str(train_file), "--dev", str(train_file), "--base-model", str(encoder_dir)]
    return naba_train([*args, "--output", str(output), *TRAIN_ARGS, "--rule-features"])


@pytest.fixture(scope="session")
def lexical_model_dir(tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path, train_file: Path) -> Path:
    """The same tiny artifact trained with `--lexical`: TF-IDF n-gram logits add to the network's."""
    output = tmp_path_factory.mktemp("models") / "tiny-lexical"
    args = ["--train", str(train_file), "--dev", str(train_file), "--base-model", str(encoder_dir)]
    return naba_train([*args, "--output", str(output), *TRAIN_ARGS, "--lexical"])


@pytest.fixture(scope="session")
def predictor(model_dir: Path):
    from naba.models.predictor import Predictor

    return Predictor.from_dir(model_dir, device="cpu")
