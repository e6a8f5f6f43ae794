"""The actor runtime's counters as plain numbers, and the figures ``contacts stats`` shows.

The runtime keeps its own metrics object (it knows nothing of Prometheus or of this CLI);
these functions read it by attribute name, so a counter the runtime does not keep is simply
absent rather than an error.
"""

from __future__ import annotations

from typing import Any

_COUNTERS = ("live_actors", "messages_handled", "dead_letters", "faults", "passivations",
             "persists", "replays", "events_replayed")
_TIMINGS = ("persist_seconds", "replay_seconds")


def runtime_metrics(metrics: object) -> dict[str, float]:
    """The counters, plus ``<timing>_count``, ``_sum``, ``_p50`` and ``_p99`` per timing."""
    out: dict[str, float] = {}
    for name in _COUNTERS:
        value = getattr(metrics, name, None)
        if isinstance(value, int | float):
            out[name] = value
    for name in _TIMINGS:
        timings = getattr(metrics, name, None)
        if timings is None:
            continue
        out[name + "_count"] = float(getattr(timings, "count", 0))
        out[name + "_sum"] = float(getattr(timings, "total", 0.0))
        for quantile in ("p50", "p99"):
            value = getattr(timings, quantile, None)
            if isinstance(value, int | float):
                out[f"{name}_{quantile}"] = float(value)
    return out


def stats_json(users: int, live_users: int, metrics: dict[str, float],
               uptime: float) -> dict[str, Any]:
    """What ``contacts stats`` (and ``GET /api/stats``) report."""
    return {
        "users": users,
        "live_users": live_users,
        "live_actors": metrics.get("live_actors", 0),
        "messages_handled": metrics.get("messages_handled", 0),
        "events_persisted": metrics.get("persists", 0),
        "journal_writes": metrics.get("persist_seconds_count", 0),
        "persist_seconds_total": metrics.get("persist_seconds_sum", 0.0),
        "persist_ms_p50": _ms(metrics.get("persist_seconds_p50")),
        "persist_ms_p99": _ms(metrics.get("persist_seconds_p99")),
        "recoveries": metrics.get("replays", 0),
        "recovery_seconds_total": metrics.get("replay_seconds_sum", 0.0),
        "events_replayed": metrics.get("events_replayed", 0),
        "uptime_seconds": round(uptime, 3),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
