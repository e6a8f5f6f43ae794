"""One call that gives the application its engine: the configured server, or embedded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from persistence.postgres import PostgresEngine


async def open_engine(
    url: str | None,
    *,
    data_dir: Path | str | None = None,
    announce: Callable[[str], None] | None = None,
    **settings: Any,
) -> PostgresEngine:
    """Start and return a :class:`~persistence.postgres.PostgresEngine` for ``url``.

    With ``url=None`` an embedded PostgreSQL is started (or reused) in ``data_dir``, which
    the caller must give (:class:`~persistence.errors.InvalidArgument` otherwise);
    ``announce`` receives the one-line message saying where its data lives. ``settings`` go
    to ``PostgresConfig`` (``schema``, ``table_prefix``, ``pool_max_size`` ...). Closing the
    engine also releases the embedded server, which stops once no process uses it.
    """
    from persistence.embedded import require_data_dir, start_embedded_async
    from persistence.postgres import PostgresEngine

    embedded = None
    if url is None:
        data_dir = require_data_dir(data_dir)
        embedded = await start_embedded_async(data_dir)
        if announce is not None:
            announce(embedded.message)
        url = embedded.url
    engine = PostgresEngine(url, **settings)
    engine.embedded = embedded
    try:
        await engine.start()
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    return engine
