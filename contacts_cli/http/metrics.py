"""Prometheus metrics: HTTP requests plus the actor runtime's own counters, read at scrape time.

The runtime keeps plain counters (it has no Prometheus dependency); a custom collector turns
them into metric families on each scrape, so the hot path pays nothing for exposition. The
cluster's figures (instances live, users hosted here, takeovers) come from the database: the
endpoint reads them (at most once a second) before the collector runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from contacts_cli.http.app import ServiceState

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


_COUNTERS = (
    ("contacts_messages_handled", "Messages the actors have handled.", "messages_handled"),
    ("contacts_dead_letters", "Messages sent to stopped actors.", "dead_letters"),
    ("contacts_actor_faults", "Handler failures seen by supervision.", "faults"),
    ("contacts_events_persisted", "Events written to the journal.", "persists"),
    ("contacts_passivations", "User actors stopped after being idle.", "passivations"),
    ("contacts_events_replayed", "Events replayed during recoveries.", "events_replayed"),
)
"""(metric, help, runtime counter) of each counter exposed."""

_SUMMARIES = (
    ("contacts_persist_seconds", "Journal writes (persist/persist_all) and their latency.",
     "persist_seconds_count", "persist_seconds_sum"),
    ("contacts_replay_seconds",
     "Recoveries (snapshot load plus journal replay) and their duration.",
     "replays", "replay_seconds_sum"),
)
"""(metric, help, runtime count, runtime sum) of each summary exposed."""


_CLUSTER_GAUGES = (
    ("contacts_cluster_instances_live", "Instances registered and live on this database.",
     "instances_live"),
    ("contacts_cluster_users_hosted", "Users whose lease this instance holds.",
     "users_hosted_here"),
    ("contacts_cluster_takeovers_last_hour",
     "Users taken over from expired instances in the last hour (whole cluster).",
     "takeovers_last_hour"),
    ("contacts_cluster_serving", "1 while this instance may serve its users, else 0.",
     "serving"),
)
_CLUSTER_COUNTERS = (
    ("contacts_cluster_forwarded", "Calls forwarded to the instance hosting the user.",
     "forwarded"),
    ("contacts_cluster_forwards_refused",
     "Forwards the owner refused (not hosting the user, or no connection).",
     "forwards_refused"),
    ("contacts_cluster_rejoins", "Times this process registered anew after losing its "
     "registration.", "rejoins"),
)


class RuntimeCollector(Collector):
    """Exposes the runtime counters of the served backend on every scrape."""

    def __init__(self, service: ServiceState) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        backend = self.service.current
        m = backend.runtime_metrics() if backend is not None else {}
        yield GaugeMetricFamily(
            "contacts_live_actors", "Actors currently running (router and user actors).",
            value=m.get("live_actors", 0),
        )
        for name, documentation, key in _COUNTERS:
            yield CounterMetricFamily(name, documentation, value=m.get(key, 0))
        for name, documentation, count, total in _SUMMARIES:
            yield SummaryMetricFamily(name, documentation, count_value=int(m.get(count, 0)),
                                      sum_value=m.get(total, 0.0))
        cluster = self.service.cluster
        if cluster is not None:
            for name, documentation, key in _CLUSTER_GAUGES:
                yield GaugeMetricFamily(name, documentation, value=float(cluster[key]))
            for name, documentation, key in _CLUSTER_COUNTERS:
                yield CounterMetricFamily(name, documentation, value=cluster[key])
        for quantile in ("p50", "p99"):
            if (value := m.get(f"persist_seconds_{quantile}")) is not None:
                yield GaugeMetricFamily(
                    f"contacts_persist_seconds_{quantile}",
                    f"Journal write latency over the recent writes, {quantile}.", value=value,
                )


class HttpMetrics:
    """Request counters and latency histograms by method, route template and status."""

    def __init__(self, registry: CollectorRegistry, service: ServiceState) -> None:
        self.registry = registry
        self.requests = Counter(
            "contacts_http_requests", "HTTP requests answered.",
            ["method", "route", "status"], registry=registry,
        )
        self.latency = Histogram(
            "contacts_http_request_seconds", "HTTP request latency until the response started.",
            ["method", "route"], buckets=_BUCKETS, registry=registry,
        )
        registry.register(RuntimeCollector(service))


class HttpMetricsMiddleware:
    """Pure ASGI middleware (no per-request task) recording each request once."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                self.metrics.latency.labels(scope["method"], template).observe(
                    time.perf_counter() - started
                )
                self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def metrics_endpoint(request: Request) -> Response:
    service: ServiceState = request.app.state.service
    backend = service.current
    service.cluster = await backend.cluster_figures() if backend is not None else None
    return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)
