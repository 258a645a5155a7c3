"""Analysts' corrections: `POST /v1/feedback` stores one for retraining (`naba.corrections`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from naba.corrections import Correction, CorrectionStore
from naba.models.errors import InvalidInputError
from naba.models.preprocessing import validate_text, validate_title
from naba.service.auth import BearerDep, caller, require_admin_key
from naba.service.deps import EngineDep, SettingsDep
from naba.service.errors import StoreUnavailableError, error_responses
from naba.service.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(prefix="/v1", tags=["feedback"])
T = TypeVar("T")


def correction_store(request: Request, url: str) -> CorrectionStore:
    """The app's store, opened on first use (a service that never gets feedback never opens a database)."""
    store: CorrectionStore | None = getattr(request.app.state, "corrections", None)
    if store is None:
        store = request.app.state.corrections = CorrectionStore(url)
    return store


def checked_correction(
    body: FeedbackRequest, labels: list[str], max_chars: int, submitted_by: str = "anonymous"
) -> Correction:
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
    if body.summary is not None:
        validate_text(body.summary, max_chars)
    return Correction(
        text=body.text,
        title=body.title,
        article_id=body.id,
        labels=tuple(body.labels),
        evidence=body.evidence,
        model_name=body.model.name,
        model_version=body.model.version,
        summary=body.summary,
        submitted_by=submitted_by,
    )


@router.post(
    "/feedback", status_code=201, response_model=FeedbackResponse, responses=error_responses(422, 503)
)
async def post_feedback(
    body: FeedbackRequest, request: Request, engine: EngineDep, settings: SettingsDep, credentials: BearerDep
) -> FeedbackResponse:
    """Store an analyst's correction of a result, for retraining; who sent it is recorded from their key."""
    correction = checked_correction(
        body, list(engine.info["labels"]), settings.max_chars, caller(credentials)
    )
    stored = await asyncio.to_thread(_in_store, request, settings.database_url, lambda s: s.add(correction))
    assert stored.id is not None and stored.created is not None
    return FeedbackResponse(id=stored.id, created=stored.created.isoformat())


@router.get(
    "/feedback",
    dependencies=[Depends(require_admin_key)],
    response_class=Response,
    responses={
        200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}, "description": "Rows."},
        **error_responses(401, 403, 503),
    },
)
async def export_feedback(request: Request, settings: SettingsDep) -> Response:
    """The corrections as training JSONL (admin): the latest correction of each article, oldest first."""
    rows = await asyncio.to_thread(_in_store, request, settings.database_url, CorrectionStore.training_rows)
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return Response(body, media_type="application/x-ndjson")


def _in_store(request: Request, url: str, work: Callable[[CorrectionStore], T]) -> T:
    """`work` on the app's store; a database that cannot be reached or read is a 503, not a 500."""
    try:
        return work(correction_store(request, url))
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(f"the corrections store cannot be used: {type(exc).__name__}") from exc
