"""Operator endpoints, behind an admin key: swap the served model without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from naba.service.auth import require_admin_key
from naba.service.deps import SettingsDep
from naba.service.errors import ReloadInProgressError, error_responses
from naba.service.reload import reload_model
from naba.service.schemas import ModelRefOut, ReloadRequest, ReloadResponse

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin_key)],
    responses=error_responses(401, 403),
)


async def get_reload_lock(request: Request) -> asyncio.Lock:
    """The app's one reload lock (made by the lifespan), which the model-directory watcher holds too."""
    return request.app.state.reload_lock


ReloadLockDep = Annotated[asyncio.Lock, Depends(get_reload_lock)]


@router.post("/reload", response_model=ReloadResponse, responses=error_responses(409, 422, 503))
async def reload(
    request: Request, settings: SettingsDep, lock: ReloadLockDep, body: ReloadRequest | None = None
) -> ReloadResponse:
    """Load a model beside the served one, check it and swap it in; on failure the old model keeps serving."""
    if lock.locked():  # refuse rather than queue: a second reload behind the first is rarely what was meant
        raise ReloadInProgressError("another reload is running; retry when it has finished")
    async with lock:
        path = Path(body.path) if body is not None and body.path is not None else settings.model_dir
        result = await reload_model(request.app.state, path, settings)
    return ReloadResponse(
        model=ModelRefOut(name=result.model.name, version=result.model.version),
        previous_model=ModelRefOut(name=result.previous.name, version=result.previous.version)
        if result.previous
        else None,
        path=str(result.path),
        seconds=round(result.seconds, 3),
    )
