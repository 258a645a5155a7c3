"""Settings: every documented `NABA_*` variable is read, and limits that contradict each other are refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from naba.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"

# A value for each variable of README's settings table, none of them the default, and what Settings reads.
ENVIRONMENT: dict[str, tuple[str, Any]] = {
    "NABA_MODEL_DIR": ("/srv/naba/model", Path("/srv/naba/model")),
    "NABA_DEVICE": ("cpu", "cpu"),
    "NABA_BACKEND": ("onnx", "onnx"),
    "NABA_QUANTIZE": ("int8", "int8"),
    "NABA_DTYPE": ("bfloat16", "bfloat16"),
    "NABA_MAX_CHARS": ("1234", 1234),
    "NABA_MAX_BODY_BYTES": ("56789", 56789),
    "NABA_MAX_BATCH_ARTICLES": ("50", 50),
    "NABA_SUMMARY_SENTENCES": ("4", 4),
    "NABA_MAX_SUMMARY_SENTENCES": ("9", 9),
    "NABA_BATCH_SIZE": ("7", 7),
    "NABA_TORCH_THREADS": ("3", 3),
    "NABA_MAX_CONCURRENT_REQUESTS": ("11", 11),
    "NABA_MAX_QUEUE": ("100", 100),
    "NABA_MAX_BATCH_TOKENS": ("2048", 2048),
    "NABA_MAX_WAIT_MS": ("2.5", 2.5),
    "NABA_REQUEST_TIMEOUT_S": ("12.5", 12.5),
    "NABA_KEEP_ALIVE_S": ("90", 90),
    "NABA_API_KEYS": ("k1,k2", ["k1", "k2"]),
    "NABA_ADMIN_KEYS": ("a1", ["a1"]),
    "NABA_DATA_DIR": ("/srv/naba/data", Path("/srv/naba/data")),
    "NABA_DATABASE_URL": ("postgresql+psycopg://naba@db/naba", "postgresql+psycopg://naba@db/naba"),
    "NABA_WATCH_MODEL_S": ("2.5", 2.5),
}


def documented_variables() -> list[str]:
    """The variables named in the first column of README's settings table."""
    return re.findall(r"^\| `(NABA_[A-Z0-9_]+)` \|", README.read_text("utf-8"), flags=re.MULTILINE)


def test_every_documented_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Renaming a field (or documenting a variable under another name) breaks this test, not a deployment."""
    documented = documented_variables()
    assert sorted(documented) == sorted(ENVIRONMENT), "README's settings table and this test disagree"
    for name, (raw, _) in ENVIRONMENT.items():
        monkeypatch.setenv(name, raw)
    settings = Settings()
    for name, (_, expected) in ENVIRONMENT.items():
        value = getattr(settings, name.removeprefix("NABA_").lower())
        if isinstance(value, list):
            value = [key.get_secret_value() if isinstance(key, SecretStr) else key for key in value]
        assert value == expected, name


def test_a_batch_limit_above_the_queue_is_refused() -> None:
    """Such a batch could never be admitted: it would get 503 with Retry-After forever, even when idle."""
    with pytest.raises(ValidationError, match=r"max_batch_articles \(10\) is more than max_queue \(8\)"):
        Settings(max_queue=8, max_batch_articles=10)
    assert Settings(max_queue=8, max_batch_articles=8).max_batch_articles == 8


def test_an_unset_batch_limit_follows_a_smaller_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NABA_MAX_QUEUE", "8")
    assert Settings().max_batch_articles == 8
    monkeypatch.setenv("NABA_MAX_BATCH_ARTICLES", "9")
    with pytest.raises(ValidationError, match="NABA_MAX_BATCH_ARTICLES to at most NABA_MAX_QUEUE"):
        Settings()
    assert Settings(max_queue=1000).max_batch_articles == 9
