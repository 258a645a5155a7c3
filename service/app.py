"""Build the FastAPI app: routes, error handlers, metrics middleware and the model's lifecycle.

The model loads in the background once the server is up: `/healthz` answers at once, `/readyz` and the
analysis routes answer 503 until the predictor has loaded and answered its warm-up, and a model that fails to
load leaves the process up and saying so (503) rather than crash-looping with no way to ask why.

Run it with `uvicorn --factory service.app:create_app`, or `naba serve`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI

from naba import __version__
from naba.models.errors import NabaError
from naba.models.predictor import Predictor
from naba.service.admission import AdmissionGate, BodySizeLimit
from naba.service.auth import AuthenticateFirst
from naba.service.engine import BatchingConfig, InferenceEngine
from naba.service.errors import register_error_handlers
from naba.service.metrics import RequestMetricsMiddleware
from naba.service.reload import load_checked, watch_model_dir
from naba.service.route_table import RouteTable
from naba.service.routes import api_router, page
from naba.settings import Settings, get_settings

logger = logging.getLogger(__name__)


async def load_engine(app: FastAPI, settings: Settings, predictor: Predictor | None) -> None:
    """Load the predictor (unless one was given), warm it up, then publish the engine on `app.state`.

    Runs as a background task of the lifespan. Any failure is logged and recorded in `app.state.load_failed`;
    it never propagates, so the process stays up to answer probes.
    """
    try:
        if predictor is None:
            logger.info("loading model from %s (device=%s)", settings.model_dir, settings.device)
            predictor = await asyncio.to_thread(load_checked, settings.model_dir, settings)
        else:  # a caller's predictor: warm it up here, as load_checked does for the ones it loads
            await asyncio.to_thread(predictor.warm_up)
    except Exception as exc:  # shutdown while loading (CancelledError) is not caught: nothing to undo
        app.state.load_failed = True
        # A NabaError (e.g. ArtifactError) explains itself; anything else is a bug worth a traceback.
        expected = isinstance(exc, NabaError)
        logger.error(
            "model not loaded from %s: %s: %s",
            settings.model_dir,
            type(exc).__name__,
            exc,
            exc_info=None if expected else exc,
        )
        return
    engine = InferenceEngine(predictor, BatchingConfig.from_settings(settings))
    app.state.engine = engine
    logger.info("model %s %s ready", engine.ref.name, engine.ref.version)


def create_app(settings: Settings | None = None, predictor: Predictor | None = None) -> FastAPI:
    """Build the service.

    Args:
        settings: Runtime settings; defaults to `get_settings()` (the `NABA_*` environment). Routes see the
            same object through `SettingsDep` (`app.state.settings`).
        predictor: An already loaded predictor (tests, or a caller that loaded one itself). When None, the
            lifespan loads `Predictor.from_dir(settings.model_dir, device=settings.device)`.

    Returns:
        The app. Its model loads when the lifespan starts; `app.state.loader` is that task, and
        `app.state.engine` is set once the model is ready.
    """
    settings = settings if settings is not None else get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("settings: %s", settings.model_dump(mode="json"))
        if settings.torch_threads is not None:
            torch.set_num_threads(settings.torch_threads)
        app.state.engine = None
        app.state.load_failed = False
        app.state.corrections = None  # opened by the first POST /v1/feedback
        app.state.reload_lock = asyncio.Lock()  # one reload at a time: the admin endpoint's and the watcher's
        app.state.loader = asyncio.create_task(load_engine(app, settings, predictor))
        tasks = [app.state.loader]
        if settings.watch_model_s is not None:
            tasks.append(asyncio.create_task(watch_model_dir(app.state, settings, settings.watch_model_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if app.state.engine is not None:
                app.state.engine.close()
                app.state.engine = None
            if app.state.corrections is not None:
                app.state.corrections.close()

    app = FastAPI(
        title="Naba",
        version=__version__,
        description="Tags Arabic news articles by topic, quotes the evidence and summarises them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    register_error_handlers(app)
    app.include_router(api_router)
    app.mount("/static", page.static_files(), name="static")
    routes = RouteTable(app.routes)  # for the middleware that answer before the router, every route included
    app.add_middleware(AuthenticateFirst, routes=routes)
    # Outside the key check: under a flood the gate refuses the excess at once, before any other work.
    app.add_middleware(AdmissionGate, max_in_flight=settings.max_concurrent_requests)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Outermost: it also counts what the middleware inside refuse, under the route they were sent to.
    app.add_middleware(RequestMetricsMiddleware, routes=routes)
    return app
