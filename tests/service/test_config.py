"""Settings: limits that contradict each other are refused at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import Settings


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
