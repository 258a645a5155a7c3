"""Which route a request is for, known before FastAPI's router runs.

The ASGI middleware in front of the router answer some requests themselves: the admission gate and the
body-size limit refuse them, and the key check runs before FastAPI reads the body. They still need the route:
the metrics label a refusal with the route's path (not "unmatched", which would hide where the load went), and
the key check reads the route's guards from its dependencies.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import Scope


class RouteTable:
    """The app's routes, matched against a request's scope the way the router matches them."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        """Read `routes` (`app.routes`, once every router is included): routes added later are not seen."""
        self._routes = list(iter_route_contexts(routes))

    def match(self, scope: Scope, *, any_method: bool = False) -> RouteContext | None:
        """The route the router will run for `scope`; None when it will answer 404 (or 405, unless
        `any_method`: then the route whose path matches, which the router names in its 405 too)."""
        partial = None
        for route in self._routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route
            if match == Match.PARTIAL and partial is None:
                partial = route
        return partial if any_method else None

    def path(self, scope: Scope) -> str | None:
        """The path template of the route `scope` is for, whatever its method; None for an unknown path."""
        route = self.match(scope, any_method=True)
        return route.path if route is not None else None
