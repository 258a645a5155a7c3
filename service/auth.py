"""Bearer-key checks for the inference and admin endpoints.

Keys come from `Settings.api_keys` and `Settings.admin_keys` (`NABA_API_KEYS`, `NABA_ADMIN_KEYS`). Inference is
open while no api key is set; admin endpoints stay refused until an admin key is set, so a service started
without keys can be queried but never reconfigured. A presented key is compared with every configured key, each
in constant time, so response timing tells a guesser neither how close a guess came nor which key it hit.
Probes, metrics and docs are not guarded: they are mounted without these dependencies.

The checks are route dependencies, which is how the routes declare them and how OpenAPI documents them, but
FastAPI reads and parses a request's body before it solves any dependency. `AuthenticateFirst` therefore runs
a route's checks as soon as its route is known, before the body is read: a caller without a key gets 401, not
a 422 about its JSON, and cannot make the server read and parse megabytes of it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from naba.models.errors import NabaError
from naba.service.deps import SettingsDep
from naba.service.errors import ForbiddenError, UnauthorizedError, handle_naba_error
from naba.service.route_table import RouteTable
from naba.settings import Settings

logger = logging.getLogger(__name__)

# auto_error=False: a missing or non-Bearer header reaches our checks (and our error body) as None. The scheme
# also puts the "Authorize" button in /docs.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key, or an admin key for /v1/admin.")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def key_matches(presented: str, keys: Sequence[SecretStr]) -> bool:
    """Whether `presented` equals one of `keys`, comparing against all of them in constant time."""
    candidate = presented.encode()
    matched = False
    for key in keys:
        # No short-circuit: every key is compared whatever the outcome of the others.
        matched |= hmac.compare_digest(candidate, key.get_secret_value().encode())
    return matched


def caller(credentials: HTTPAuthorizationCredentials | None) -> str:
    """Who sent a request, as stored with what they send (corrections): `key:` and the first 12 hex digits of
    the key's sha256, never the key itself; `anonymous` without one."""
    if credentials is None:
        return "anonymous"
    return "key:" + hashlib.sha256(credentials.credentials.encode()).hexdigest()[:12]


async def require_api_key(settings: SettingsDep, credentials: BearerDep) -> None:
    """Let the request through when no api keys are set, or when it carries an api or admin key.

    Raises:
        UnauthorizedError: Keys are set and the request has no bearer key, or an unknown one.
    """
    if not settings.api_keys:
        return
    if credentials is None:
        raise UnauthorizedError("this endpoint needs an API key: send 'Authorization: Bearer <key>'")
    if not key_matches(credentials.credentials, [*settings.api_keys, *settings.admin_keys]):
        raise UnauthorizedError("the API key is not valid")


async def require_admin_key(settings: SettingsDep, credentials: BearerDep) -> None:
    """Let the request through only with an admin key.

    Raises:
        ForbiddenError: No admin keys are set (admin endpoints are off), or the key is an api key, which
            authenticates the caller but does not allow administration.
        UnauthorizedError: The request has no bearer key, or one that is neither an admin nor an api key.
    """
    if not settings.admin_keys:
        raise ForbiddenError("admin endpoints are disabled: set NABA_ADMIN_KEYS")
    if credentials is None:
        raise UnauthorizedError("this endpoint needs an admin key: send 'Authorization: Bearer <key>'")
    if key_matches(credentials.credentials, settings.admin_keys):
        return
    if key_matches(credentials.credentials, settings.api_keys):
        raise ForbiddenError("this key may not use admin endpoints; use an admin key")
    raise UnauthorizedError("the admin key is not valid")


Guard = Callable[[Settings, HTTPAuthorizationCredentials | None], Awaitable[None]]
GUARDS: tuple[Guard, ...] = (require_api_key, require_admin_key)


class AuthenticateFirst:
    """ASGI middleware: run a route's key checks (its `GUARDS` dependencies) before the body is read.

    A refused request gets the same error body and headers as the dependency would give it. A request that
    passes goes on, and FastAPI runs the same checks again as dependencies: a few microseconds that keep each
    route guarded by its own declaration, with or without this middleware.
    """

    def __init__(self, app: ASGIApp, routes: RouteTable) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.match(scope) if scope["type"] == "http" else None
        guards = [d.dependency for d in getattr(route, "dependencies", ()) if d.dependency in GUARDS]
        if guards:
            request = Request(scope)  # no `receive`: the body cannot be read here
            try:
                credentials = await bearer_scheme(request)
                for guard in guards:
                    await guard(request.app.state.settings, credentials)
            except NabaError as exc:
                response = await handle_naba_error(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
