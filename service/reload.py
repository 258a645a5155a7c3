"""Replace the served model without a restart: load the new one beside it, check it, then swap.

Loading, warm-up and the smoke check run on a worker thread while the engine keeps serving the old model, so a
reload costs clients nothing but some CPU (and, on a GPU, room for two models for a moment). Only a model that
loaded, warmed up and passed the smoke check reaches `engine.swap`; any failure before that leaves the engine
untouched and becomes a `ReloadFailedError` that says why. Serialising reloads is the caller's job (the admin
route holds a lock).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from naba.models.errors import ModelNotReadyError, NabaError
from naba.models.predictor import Predictor
from naba.models.preprocessing import split_sentences
from naba.models.results import Article, ModelRef
from naba.service.engine import BatchingConfig, InferenceEngine
from naba.service.errors import ReloadFailedError
from naba.settings import Settings

logger = logging.getLogger(__name__)

# A fixed article with several sentences, so the summary and evidence checks have something to choose from.
SMOKE_ARTICLE = Article(
    title="اجتماع أمني مشترك",
    text=(
        "عقد قادة الأجهزة الأمنية اجتماعا مشتركا في العاصمة صباح اليوم. "
        "وناقش المجتمعون تنسيق العمليات على الحدود الشمالية. "
        "وقال المتحدث الرسمي إن الاجتماع سيتكرر كل شهر. "
        "وأضاف أن غرفة عمليات مشتركة ستفتتح قريبا."
    ),
)


@dataclass(frozen=True)
class ReloadResult:
    """What a successful reload changed."""

    path: Path
    model: ModelRef  # now serving
    previous: ModelRef | None  # served before the swap; None when no model had loaded
    seconds: float  # load, warm-up and checks


def smoke_check(predictor: Predictor) -> None:
    """Analyse `SMOKE_ARTICLE` and refuse a model whose answer breaks the API's promises.

    Every label gets a score in [0, 1], tagged labels are among the scored ones, and evidence and summary are
    sentences of the article. A model that fails this would answer clients with nonsense, not errors.

    Raises:
        ReloadFailedError: Naming every broken promise.
    """
    results = predictor.analyze([SMOKE_ARTICLE])
    if len(results) != 1:
        raise ReloadFailedError(f"smoke check failed: {len(results)} results for 1 article")
    [analysis] = results
    sentences = split_sentences(SMOKE_ARTICLE.text)
    problems = []
    if set(analysis.scores) != set(predictor.labels):
        problems.append(f"scores cover {sorted(analysis.scores)}, not the labels {sorted(predictor.labels)}")
    # Written so that NaN fails too.
    outside = {label: p for label, p in analysis.scores.items() if not 0.0 <= p <= 1.0}
    outside |= {r.label: r.score for r in analysis.labels if not 0.0 <= r.score <= 1.0}
    if outside:
        problems.append(f"scores outside [0, 1]: {outside}")
    if unscored := [r.label for r in analysis.labels if r.label not in analysis.scores]:
        problems.append(f"tagged labels without a score: {unscored}")
    if any(e not in sentences for r in analysis.labels for e in r.evidence):
        problems.append("evidence that is not a sentence of the article")
    indices = analysis.summary_indices
    if not indices or any(not 0 <= i < len(sentences) for i in indices):
        problems.append(f"summary_indices {indices} do not point at the article's {len(sentences)} sentences")
    elif analysis.summary != " ".join(sentences[i] for i in indices):
        problems.append("a summary that is not made of the article's sentences")
    if problems:
        raise ReloadFailedError("smoke check failed: " + "; ".join(problems))


def load_checked(path: Path, settings: Settings) -> Predictor:
    """Load, warm up and smoke-check a model with the configured device and backend; blocking, so it runs
    off the event loop. The service loads every model, at start-up and on reload, through here.

    Raises:
        ArtifactError: any artifact problem the loader finds.
    """
    predictor = Predictor.from_dir(
        path,
        device=settings.device,
        backend=settings.backend,
        quantize=settings.quantize,
        dtype=settings.dtype,
    )
    predictor.warm_up()
    smoke_check(predictor)
    return predictor


async def reload_model(state: Any, path: Path, settings: Settings) -> ReloadResult:
    """Load the artifact at `path`, check it and make the service serve it.

    With an engine running, it swaps the predictor: requests already queued finish on the old model, later
    ones get the new one. When the model failed to load at start-up there is no engine yet, and a good reload
    starts one, so an operator can fix a bad deployment without a restart.

    Args:
        state: The app's `state`: `engine` (None until a model is ready) and `load_failed`.
        path: Artifact directory, as the server sees it.
        settings: Device, backend and batching limits.

    Returns:
        The new and previous model (None when none was serving) and how long loading and checking took.

    Raises:
        ModelNotReadyError: The start-up load is still running.
        ReloadFailedError: The artifact is missing, corrupt or unsafe (`ArtifactError`), cannot be loaded, or
            failed its warm-up or smoke check; whatever was serving still serves.
    """
    engine: InferenceEngine | None = state.engine
    if engine is None and not state.load_failed:
        raise ModelNotReadyError("the model is still loading; reload once /readyz answers")
    previous = engine.ref if engine is not None else None
    serving = f"{previous.name} {previous.version}" if previous else "no model"
    logger.info("reloading model from %s (serving %s)", path, serving)
    start = time.perf_counter()
    try:
        predictor = await asyncio.to_thread(load_checked, path, settings)
    except NabaError as exc:  # ArtifactError, a failed smoke check, a missing GPU: the message says why
        logger.warning("reload from %s failed: %s", path, exc.message)
        raise ReloadFailedError(_failure(path, exc.message, serving)) from exc
    except Exception as exc:  # e.g. a tokenizer or weights file that parses but is broken
        reason = f"{type(exc).__name__}: {exc}"
        logger.warning("reload from %s failed: %s", path, reason, exc_info=exc)
        raise ReloadFailedError(_failure(path, reason, serving)) from exc
    seconds = time.perf_counter() - start
    if engine is None:
        state.engine = InferenceEngine(predictor, BatchingConfig.from_settings(settings))
        state.load_failed = False
    else:
        engine.swap(predictor)
    current = predictor.ref
    logger.info(
        "reloaded %s %s from %s in %.1f s (was %s)", current.name, current.version, path, seconds, serving
    )
    return ReloadResult(path=path, model=current, previous=previous, seconds=seconds)


def _failure(path: Path, reason: str, serving: str) -> str:
    return f"cannot reload from {path}: {reason}; still serving {serving}"


async def watch_model_dir(state: Any, settings: Settings, interval_s: float) -> None:
    """Reload whenever `settings.model_dir` comes to resolve to another directory: a registry's `current`
    pointer moved (`naba models promote`, `naba retrain`). It polls, as a symlink swapped by rename raises no
    event that every file system reports. A target that fails its checks is logged and not tried again; the
    old model keeps serving. Runs until cancelled; reloads hold the same lock as the admin endpoint.
    """
    served = os.path.realpath(settings.model_dir)
    while True:
        await asyncio.sleep(interval_s)
        target = os.path.realpath(settings.model_dir)
        if target == served or (state.engine is None and not state.load_failed):
            continue
        async with state.reload_lock:
            try:
                result = await reload_model(state, Path(target), settings)
                logger.info(
                    "%s now points at %s: serving %s", settings.model_dir, target, result.model.version
                )
            except (ReloadFailedError, ModelNotReadyError) as exc:
                logger.warning("not serving %s: %s", target, exc.message)
        served = target
