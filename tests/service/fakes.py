"""A fake predictor that duck-types `naba.models.predictor.Predictor`, variants that misbehave, and a wait helper.

The fake is deterministic and derived from the input (a label scores high when one of its keywords occurs,
the summary is the first sentences), so tests can predict every field without a model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from naba.models.predictor import Predictor
from naba.models.preprocessing import split_sentences
from naba.models.results import (
    DEFAULT_OPTIONS,
    Analysis,
    Article,
    LabelResult,
    ModelRef,
    OperatingPoint,
    ResultOptions,
)

KEYWORDS = {
    "economy": ("البنك", "التضخم", "الاقتصاد"),
    "politics": ("الحكومة", "البرلمان", "الانتخابات"),
    "sports": ("المنتخب", "المباراة", "الدوري"),
}
ECONOMY_TEXT = "أعلن البنك المركزي رفع سعر الفائدة. وقال المحافظ إن القرار يكبح التضخم. وتراجعت الأسهم."
POLITICS_TEXT = "عقد البرلمان جلسة طارئة. وناقش النواب الموازنة."
SPORTS_TEXT = "فاز المنتخب في المباراة النهائية."


@dataclass(frozen=True)
class FakeEncoded:
    """What `FakePredictor.encode` returns: the article itself, costed by its length."""

    article: Article

    @property
    def n_tokens(self) -> int:
        return len(self.article.text)


class FakePredictor:
    """Stands in for `naba.models.predictor.Predictor`: same attributes and staged methods, keyword scores.

    Keyword labels score 0.9 and others 0.1, so the `precision` operating point (0.95) tags nothing and
    `recall` (0.05) tags every label.
    """

    def __init__(self) -> None:
        self.labels = list(KEYWORDS)
        self.thresholds = dict.fromkeys(KEYWORDS, 0.5)
        self.operating_points = {
            "balanced": self.thresholds,
            "precision": dict.fromkeys(KEYWORDS, 0.95),
            "recall": dict.fromkeys(KEYWORDS, 0.05),
        }
        self.ref = ModelRef(name="fake-topics", version="0.0.1")
        self.warmed_up = False
        self.threads: list[str] = []  # name of the thread each model call (score) ran on
        self.calls: list[list[Article]] = []  # the articles of each model call
        self.summary_requests: list[int | None] = []  # summary_sentences asked of each result
        self.options: list[dict[str, Any]] = []  # every option asked of each result, with the article's text

    @property
    def info(self) -> dict[str, Any]:
        return {
            "name": self.ref.name,
            "version": self.ref.version,
            "description": "keyword fake",
            "labels": self.labels,
            "thresholds": self.thresholds,
            "operating_points": self.operating_points,
            "max_length": 128,
            "base_model": "none",
            "created": "2024-01-01T00:00:00Z",
            "metrics": {"micro_f1": 1.0},
            "device": "cpu",
        }

    def encode(self, article: Article) -> FakeEncoded:
        return FakeEncoded(article)

    def score(self, encoded: Sequence[FakeEncoded]) -> list[FakeEncoded]:
        self.threads.append(threading.current_thread().name)
        self.calls.append([e.article for e in encoded])
        return list(encoded)

    def result(
        self, encoded: FakeEncoded, scores: FakeEncoded, options: ResultOptions = DEFAULT_OPTIONS
    ) -> Analysis:
        self.summary_requests.append(options.summary_sentences)
        self.options.append({"text": encoded.article.text, **asdict(options)})
        n = len(split_sentences(encoded.article.text))
        n_summary = options.summary_length(n, 1)
        return self._one(encoded.article, n_summary, options.operating_point)

    # The real predictor's analyze, over this fake's encode, score and result stages.
    analyze = Predictor.analyze

    def warm_up(self) -> None:
        self._one(Article(text="نص للتحمية."), 1)
        self.warmed_up = True

    def _one(
        self, article: Article, n_summary: int, operating_point: OperatingPoint = "balanced"
    ) -> Analysis:
        thresholds = self.operating_points[operating_point]
        sentences = split_sentences(article.text)
        scores = {
            label: 0.9 if any(word in article.text for word in words) else 0.1
            for label, words in KEYWORDS.items()
        }
        labels = [
            LabelResult(label, score, [s for s in sentences if any(w in s for w in KEYWORDS[label])])
            for label, score in scores.items()
            if score >= thresholds[label]
        ]
        chosen = list(range(min(n_summary, len(sentences))))
        return Analysis(
            labels=labels,
            scores=scores,
            summary=" ".join(sentences[i] for i in chosen),
            summary_indices=chosen,
            model=self.ref,
            sentences=sentences,
        )


class RaisingPredictor(FakePredictor):
    """Warms up fine, then raises `error` on every request."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def score(self, encoded: Sequence[FakeEncoded]) -> list[FakeEncoded]:
        if self.warmed_up:
            raise self.error
        return super().score(encoded)


class GatedPredictor(FakePredictor):
    """Its model calls block until `gate` is set (`entered` says one has started), so tests can hold a request
    in the model and pile work up behind it."""

    def __init__(self, version: str = "0.0.1") -> None:
        super().__init__()
        self.ref = ModelRef(name="gated", version=version)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def score(self, encoded: Sequence[FakeEncoded]) -> list[FakeEncoded]:
        self.entered.set()
        if not self.gate.wait(timeout=10):
            raise RuntimeError("test never opened the gate")
        return super().score(encoded)


class SlowEncodePredictor(FakePredictor):
    """Tokenising an article whose text contains `marker` blocks until `release` is set (`encoding` says it
    started), so a request can be held before it reaches the queue."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.encoding = threading.Event()
        self.release = threading.Event()

    def encode(self, article: Article) -> FakeEncoded:
        if self.marker in article.text:
            self.encoding.set()
            if not self.release.wait(timeout=10):
                raise RuntimeError("test never released the encode")
        return super().encode(article)


class SlowWarmUpPredictor(FakePredictor):
    """Warm-up blocks until the test sets `release`, to observe the service before it is ready."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def warm_up(self) -> None:
        if not self.release.wait(timeout=10):
            raise RuntimeError("test never released the warm-up")
        super().warm_up()


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `fn` on a thread (with a TestClient: a second connection); its result lands in the returned list."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


def wait_until_loaded(client: TestClient) -> None:
    """Block until the app's background model load has finished (succeeded or failed).

    The lifespan loads the model in a task on the client's event loop; awaiting it through the client's
    portal is deterministic, unlike polling /readyz.
    """
    app: FastAPI = client.app  # type: ignore[assignment]

    async def _wait() -> None:
        await app.state.loader

    assert client.portal is not None, "use the TestClient as a context manager so the lifespan runs"
    client.portal.call(_wait)
