"""What model is served and with which limits."""

from __future__ import annotations

from fastapi import APIRouter

from naba.service.deps import EngineDep, SettingsDep
from naba.service.errors import error_responses
from naba.service.schemas import ModelInfo

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelInfo, responses=error_responses(503))
async def read_model(engine: EngineDep, settings: SettingsDep) -> ModelInfo:
    """Describe the served model and the request limits."""
    limits = {
        "max_chars": settings.max_chars,
        "max_batch_articles": settings.max_batch_articles,
        "max_summary_sentences": settings.max_summary_sentences,
    }
    return ModelInfo.model_validate({**engine.info, **limits})
