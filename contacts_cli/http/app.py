"""The Starlette application: routes, error rendering, authentication and metrics in one place.

``create_app`` takes a started :class:`~contacts_cli.backends.base.ServiceBackend`, or a way
to open one at startup (the server module passes the in-process ``LocalBackend``); the app is
typed to the protocol only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from contacts_cli.backends.base import ServiceBackend
from contacts_cli.backends.errors import BackendError, Unavailable
from contacts_cli.carddav import Authenticate, carddav_routes
from contacts_cli.http import routes
from contacts_cli.http.auth import BearerAuth
from contacts_cli.http.metrics import HttpMetrics, HttpMetricsMiddleware, metrics_endpoint
from contacts_cli.http.openapi import openapi_endpoint
from contacts_cli.http.problems import HttpProblem, backend_error_response, problem_response
from contacts_cli.service.settings import Settings

log = logging.getLogger("contacts_cli.http")

Endpoint = Callable[[Request], Awaitable[Response]]
BackendOpener = Callable[[], Awaitable[ServiceBackend]]


@dataclass
class ServiceState:
    """What every route needs: the backend, the settings, the metrics registry."""

    settings: Settings
    current: ServiceBackend | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    @property
    def backend(self) -> ServiceBackend:
        if self.current is None:
            raise Unavailable("the service is starting or stopping")
        return self.current


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpProblem)
    return problem_response(
        exc.status, exc.detail, errors=exc.errors, instance=request.url.path, headers=exc.headers
    )


async def _backend_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BackendError)
    from_if_match = "if-match" in request.headers
    return backend_error_response(exc, instance=request.url.path, from_if_match=from_if_match)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404:
        detail = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(exc.status_code, detail, instance=request.url.path,
                            headers=dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return problem_response(500, "internal error; see the server log", instance=request.url.path)


def create_app(settings: Settings, backend: ServiceBackend | None = None, *,
               open_backend: BackendOpener | None = None,
               carddav_authenticate: Authenticate | None = None) -> Starlette:
    """The ASGI app; ``settings`` supplies limits and the API token.

    With ``backend`` the app serves it and leaves its lifecycle to the caller; else the app's
    lifespan calls ``open_backend`` at startup and closes what it opened at shutdown (after
    uvicorn has finished the requests in flight). With ``carddav_authenticate`` (the
    accounts' check of a request) it also serves CardDAV (:mod:`contacts_cli.carddav`);
    without one, no CardDAV route exists.
    """
    if (backend is None) == (open_backend is None):
        raise TypeError("create_app needs exactly one of backend and open_backend")
    service = ServiceState(settings, backend)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if open_backend is None:
            yield
            return
        service.current = await open_backend()
        try:
            yield
        finally:
            opened, service.current = service.current, None
            await opened.close()

    http_metrics = HttpMetrics(service.registry, service)
    contacts = "/api/{user_id}/contacts"
    app = Starlette(
        routes=[
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/readyz", routes.readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
            Route("/api/stats", routes.stats, methods=["GET"]),
            _route(contacts, GET=routes.list_contacts, POST=routes.create_contact),
            _route(contacts + "/import", POST=routes.import_contacts),
            _route(
                contacts + "/{contact_id}",
                name="contact",
                GET=routes.get_contact,
                PATCH=routes.update_contact,
                DELETE=routes.remove_contact,
            ),
            _route(contacts + "/{contact_id}/history", GET=routes.contact_history),
            *_carddav(service, carddav_authenticate),
        ],
        lifespan=lifespan,
        exception_handlers={
            HttpProblem: _problem,
            BackendError: _backend_error,
            HTTPException: _http_exception,
            Exception: _unexpected,
        },
    )
    app.state.service = service
    app.add_middleware(BearerAuth, token=settings.api_token)
    app.add_middleware(HttpMetricsMiddleware, metrics=http_metrics)
    return app


def _carddav(service: ServiceState, authenticate: Authenticate | None) -> list[BaseRoute]:
    if authenticate is None:
        return []
    return carddav_routes(lambda: service.backend, authenticate=authenticate,
                          region=service.settings.default_region)


def _route(path: str, *, name: str | None = None, **handlers: Endpoint) -> Route:
    """One route per path whose methods dispatch to ``handlers`` (so 405 lists all of them)."""

    async def endpoint(request: Request) -> Response:
        return await handlers[request.method](request)

    methods = list(handlers)
    if "GET" in handlers:
        methods.append("HEAD")
        handlers["HEAD"] = handlers["GET"]
    return Route(path, endpoint, methods=methods, name=name)
