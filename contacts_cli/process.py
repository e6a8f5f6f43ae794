"""Process-wide settings, applied by the programs' entry points, never by library classes.

``contacts`` (the CLI), ``contacts serve`` and ``python -m contacts_cli.http`` call these at
start-up; a script that embeds :class:`~contacts_cli.backends.local.LocalBackend` may call
:func:`tune_gc` itself.
"""

from __future__ import annotations

import gc
import sys
import types

_DEFAULT_GC_THRESHOLD = (700, 10, 10)
GC_THRESHOLD = (1_000_000, 20, 10)
"""The process's cyclic-GC thresholds while it hosts user actors (unless someone chose others).

A large user's state is hundreds of thousands of long-lived objects, and an import chunk
allocates as many more; at CPython's default (a young collection every 700 allocations) the
collector keeps promoting and rescanning them, a third of a 100,000-row import's time. The
state has no reference cycles (reference counting frees it), so collecting less often costs
only the young cyclic garbage it lets wait (the count is of objects allocated and not yet
freed). At 50,000 a 5,000-row chunk, alive until it is written, was still scanned one to
three times: ~100 young collections, 0.6-1.0 s of a 100,000-row import; at 200,000 the
four or five young collections of such an import still took 0.3 s (each scans everything
allocated since the one before); at 1,000,000 it makes none. What may wait is bounded by
that count: at most a million young objects, most of them not garbage at all."""


def tune_gc() -> None:
    """Apply :data:`GC_THRESHOLD` if the thresholds are still CPython's defaults."""
    if gc.get_threshold() == _DEFAULT_GC_THRESHOLD:
        gc.set_threshold(*GC_THRESHOLD)


def without_httpx_cli() -> None:
    """Make ``import httpx`` skip httpx's own command line.

    ``httpx._main`` loads pygments and rich's progress and syntax modules, a third of the
    client's start-up time; a stub module stands in for it (calling it says it is absent)."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stub = types.ModuleType("httpx._main")

    def main() -> None:  # pragma: no cover - httpx's CLI is not ours to offer
        raise SystemExit("httpx's command line is not available inside contacts")

    stub.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stub
