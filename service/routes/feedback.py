"""Analysts' corrections: `POST /v1/feedback` stores one for retraining (`naba.corrections`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError

from naba.corrections import Correction, CorrectionStore
from naba.models.errors import InvalidInputError
from naba.models.preprocessing import validate_text, validate_title
from naba.service.deps import EngineDep, SettingsDep
from naba.service.errors import StoreUnavailableError, error_responses
from naba.service.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(prefix="/v1", tags=["feedback"])


def correction_store(request: Request, url: str) -> CorrectionStore:
    """The app's store, opened on first use (a service that never gets feedback never opens a database)."""
    store: CorrectionStore | None = getattr(request.app.state, "corrections", None)
    if store is None:
        store = request.app.state.corrections = CorrectionStore(url)
    return store


def checked_correction(body: FeedbackRequest, labels: list[str], max_chars: int) -> Correction:
    """The correction, if every label is the served model's and every evidence sentence is in the text.

    Raises:
        InvalidInputError: an unknown or repeated label, evidence for a label not in `labels`, a quote that
            is not in the text, or text the service would refuse to analyse.
    """
    validate_text(body.text, max_chars)
    validate_title(body.title, max_chars)
    if unknown := sorted(set(body.labels) - set(labels)):
        raise InvalidInputError(f"unknown labels {unknown}; the model's are {labels}")
    if len(set(body.labels)) != len(body.labels):
        raise InvalidInputError(f"labels repeat: {body.labels}")
    if stray := sorted(set(body.evidence) - set(body.labels)):
        raise InvalidInputError(f"evidence for labels the article does not carry: {stray}")
    for label, quote in body.evidence.items():
        if not quote.strip() or quote not in body.text:
            raise InvalidInputError(f"the evidence for {label} is not a passage of the text")
    return Correction(
        text=body.text,
        title=body.title,
        article_id=body.id,
        labels=tuple(body.labels),
        evidence=body.evidence,
        model_name=body.model.name,
        model_version=body.model.version,
    )


@router.post(
    "/feedback", status_code=201, response_model=FeedbackResponse, responses=error_responses(422, 503)
)
async def post_feedback(
    body: FeedbackRequest, request: Request, engine: EngineDep, settings: SettingsDep
) -> FeedbackResponse:
    """Store an analyst's correction of a result, for retraining."""
    correction = checked_correction(body, list(engine.info["labels"]), settings.max_chars)
    try:
        store = correction_store(request, settings.database_url)
        stored = await asyncio.to_thread(store.add, correction)
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(f"the corrections store cannot be written: {type(exc).__name__}") from exc
    assert stored.id is not None and stored.created is not None
    return FeedbackResponse(id=stored.id, created=stored.created.isoformat())
