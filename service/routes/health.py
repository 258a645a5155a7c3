"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from naba.service.deps import EngineDep
from naba.service.errors import error_responses
from naba.service.schemas import HealthResponse, ModelRefOut, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """Answer while the process lives, whether or not a model is loaded."""
    return HealthResponse()


@router.get("/readyz", response_model=ReadyResponse, responses=error_responses(503))
async def readyz(engine: EngineDep) -> ReadyResponse:
    """Answer 200 once the model is loaded and answered its warm-up, 503 before or if loading failed."""
    return ReadyResponse(model=ModelRefOut(name=engine.ref.name, version=engine.ref.version))
