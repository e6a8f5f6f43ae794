"""The Starlette application: routes, error rendering, authentication and metrics in one place.

Authentication (:mod:`contacts_cli.http.auth`) guards ``/api`` and ``/admin``; the HTTP Basic
authenticator it uses is ``app.state.authenticator``, for other routes to use as well.

``create_app`` takes a started :class:`~contacts_cli.backends.base.ServiceBackend`, or a way
to open one at startup (the server module passes the in-process ``LocalBackend``); the app is
typed to the protocol only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from contacts_cli.accounts.basic import BasicAuthenticator
from contacts_cli.accounts.limiter import LoginLimiter, LoginLimits
from contacts_cli.backends.base import ServiceBackend
from contacts_cli.backends.errors import BackendError, Unavailable
from contacts_cli.carddav import Authenticate, carddav_routes
from contacts_cli.http import account_routes, routes
from contacts_cli.http.auth import ApiAuth
from contacts_cli.http.conditional import has_if_match
from contacts_cli.http.metrics import HttpMetrics, HttpMetricsMiddleware, metrics_endpoint
from contacts_cli.http.openapi import openapi_endpoint
from contacts_cli.http.origin import RequestOriginMiddleware
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
    cluster: dict[str, Any] | None = None
    """The cluster's figures as of the last scrape of /metrics (read before each scrape)."""
    discovery_nonce: str | None = None
    """The secret of the ``server.json`` this process announced itself with, if it did
    (``/healthz`` proves knowledge of it: :mod:`contacts_cli.server_proof`)."""

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
    return backend_error_response(
        exc, instance=request.url.path, from_if_match=has_if_match(request)
    )


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
               carddav_authenticate: Authenticate | None = None,
               discovery_nonce: str | None = None) -> Starlette:
    """The ASGI app; ``settings`` supplies limits and the API token.

    With ``backend`` the app serves it and leaves its lifecycle to the caller; else the app's
    lifespan calls ``open_backend`` at startup and closes what it opened at shutdown (after
    uvicorn has finished the requests in flight). It also serves CardDAV
    (:mod:`contacts_cli.carddav`), its users signing in with their accounts (HTTP Basic,
    :mod:`contacts_cli.accounts`); ``carddav_authenticate`` replaces that check (tests).
    ``discovery_nonce``: the secret of the ``server.json`` that announces this server.
    """
    if (backend is None) == (open_backend is None):
        raise TypeError("create_app needs exactly one of backend and open_backend")
    service = ServiceState(settings, backend, discovery_nonce=discovery_nonce)
    basic = authenticator(settings, service)

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
            _route("/admin/accounts", POST=account_routes.add_account),
            _route("/admin/accounts/{name}", DELETE=account_routes.remove_account),
            _route("/admin/accounts/{name}/password", PUT=account_routes.set_password),
            *_carddav(service, carddav_authenticate or basic.authenticate),
        ],
        lifespan=lifespan,
        exception_handlers={
            HttpProblem: _problem,
            BackendError: _backend_error,
            HTTPException: _http_exception,
            Exception: _unexpected,
        },
    )
    # No redirect for a trailing slash (or an encoded one in a contact id): a client gets the
    # problem+json 404 every other unknown path gets, not a bare 307 to follow.
    app.router.redirect_slashes = False
    app.state.service = service
    app.state.authenticator = basic
    app.add_middleware(RequestOriginMiddleware)
    app.add_middleware(ApiAuth, token=settings.api_token, authenticator=app.state.authenticator)
    app.add_middleware(HttpMetricsMiddleware, metrics=http_metrics)
    return app


def authenticator(settings: Settings, service: ServiceState) -> BasicAuthenticator:
    """HTTP Basic against the served backend's accounts, with the configured login limits
    (``contacts_cli.accounts.basic.authenticate`` finds it as ``app.state.authenticator``)."""

    async def verify(name: str, password: str) -> bool:
        return await service.backend.verify_password(name, password)

    limits = LoginLimits(settings.login_failures_per_user, settings.login_failures_per_address,
                         settings.login_window)
    return BasicAuthenticator(verify, LoginLimiter(limits))
def _carddav(service: ServiceState, authenticate: Authenticate) -> list[BaseRoute]:
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
