"""Named dependencies for the routes: the settings and the ready inference engine.

Both read `app.state` and are `async def`: a plain `def` dependency is sent to the thread pool on every
request, and under a flood those hops (not the model) are what saturates the event loop. For the same reason
the app does not use `dependency_overrides` to hand routes its settings: with any override set, FastAPI
re-inspects every dependency's signature on every request.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request

from naba.models.errors import ModelNotReadyError
from naba.service.engine import InferenceEngine
from naba.settings import Settings

logger = logging.getLogger(__name__)


async def app_settings(request: Request) -> Settings:
    """The settings the app was built with (`create_app` stores them on `app.state`)."""
    return request.app.state.settings


async def get_engine(request: Request) -> InferenceEngine:
    """The engine the lifespan stored once the model loaded and warmed up.

    Raises:
        ModelNotReadyError: The model is still loading, or failed to load (the reason is in the log, not in
            the response, which would otherwise leak paths and internals to clients).
    """
    engine: InferenceEngine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        if getattr(request.app.state, "load_failed", False):
            raise ModelNotReadyError("the model failed to load; the service log says why")
        raise ModelNotReadyError("the model is still loading; retry shortly")
    return engine


SettingsDep = Annotated[Settings, Depends(app_settings)]
EngineDep = Annotated[InferenceEngine, Depends(get_engine)]
