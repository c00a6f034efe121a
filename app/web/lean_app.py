"""``LeanApp``: the FastAPI app, with a shorter stack for the requests of its ``LeanRoute``s.

For every request FastAPI runs the same stack: server errors, telemetry, the app-wide body limit, the
user middleware, exception handlers, an exit stack for its own dependency machinery, then a regex
scan of the routes. A ``LeanRoute``'s request (method and exact path) needs only some of these. The
telemetry layer is off unless ``DCGAN_OPENTELEMETRY``, there is no app-wide body limit, and the exit
stack serves FastAPI's dependency solving, which a LeanRoute does not use. So those requests run
through the same server-error and exception handlers and the same user middleware (the metrics), and
reach their route by a dict lookup: 113–127 → 66–80 µs of event-loop CPU per n=1 request in-process
(docs/benchmarks/README.md).

Everything else takes FastAPI's full stack: other paths and methods, a ``root_path``,
``LeanConfig.stock`` (FastAPI's own path, which its OpenTelemetry traces) and ``dependency_overrides``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.web.lean_route import LeanConfig, LeanRoute


class LeanApp(FastAPI):
    """A ``FastAPI`` whose LeanRoutes' requests skip the layers that do nothing for them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lean_routes: dict[tuple[str, str], LeanRoute] | None = None  # built at the first request
        self._lean_stack: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._lean_route(scope)
        if route is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"], scope["router"], scope["route"] = self, self.router, route  # as routing would set them
        if self._lean_stack is None:
            self._lean_stack = self._build_lean_stack()
        await self._lean_stack(scope, receive, send)

    def _lean_route(self, scope: Scope) -> LeanRoute | None:
        """The LeanRoute this request is for, if it may take the short stack."""
        if scope["type"] != "http" or self.root_path or scope.get("root_path") or self.dependency_overrides:
            return None
        config: LeanConfig = self.state.lean
        if config.stock or self.max_body_size is not None:  # FastAPI's own path; an app-wide limit to apply
            return None
        if self._lean_routes is None:
            self._lean_routes = {
                (method, route.path): route
                for route in self.router.routes
                if isinstance(route, LeanRoute)
                for method in route.methods or ()
            }
        return self._lean_routes.get((scope["method"], scope["path"]))

    def _build_lean_stack(self) -> ASGIApp:
        """FastAPI's ``build_middleware_stack`` for these requests: server errors, the user middleware and
        the exception handlers, around the route itself."""
        error_handler, handlers = None, {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value

        async def route(scope: Scope, receive: Receive, send: Send) -> None:
            await scope["route"].app(scope, receive, send)  # its method and path matched already

        app: ASGIApp = ExceptionMiddleware(route, handlers=handlers, debug=self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)
