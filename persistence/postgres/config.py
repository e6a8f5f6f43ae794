"""Connection settings for the PostgreSQL engine and the one-line description of a target.

Errors must name host, port and database but never the password, so every message about a
server goes through :func:`describe_target` and :func:`connection_error`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict

from persistence.errors import InvalidArgument, StorageUnavailable

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    """Where and how the engine stores its tables.

    ``schema`` and ``table_prefix`` name the tables (``<schema>.<prefix>journal`` ...);
    they are lower-case identifiers so that they never need case-sensitive quoting by hand.
    """

    url: str
    schema: str = "contacts"
    table_prefix: str = ""
    pool_min_size: int = 1
    pool_max_size: int = 8
    connect_timeout: float = 5.0
    """Seconds to wait for a connection before a call fails with StorageUnavailable."""
    max_batch_events: int = 10_000
    """Upper bound on events one group-commit transaction writes (a single batch may exceed it)."""
    max_batches_in_flight: int = 2
    """Group-commit batches one engine runs at once. Waiting appends are shared among the
    free slots, so with 2 one batch commits while the next is prepared and executed
    (measured best on 2 shared cores: 3 and 4 make batches too small)."""
    replay_page_size: int = 2_000

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.schema):
            raise InvalidArgument(
                f"schema must be a lower-case identifier (letters, digits, _), got {self.schema!r}"
            )
        if self.table_prefix and not _IDENTIFIER.match(self.table_prefix):
            raise InvalidArgument(
                "table_prefix must be empty or a lower-case identifier (letters, digits, _), "
                f"got {self.table_prefix!r}"
            )
        if self.pool_min_size < 1 or self.pool_max_size < self.pool_min_size:
            raise InvalidArgument(
                f"need 1 <= pool_min_size <= pool_max_size, got {self.pool_min_size} and "
                f"{self.pool_max_size}"
            )
        if self.connect_timeout <= 0:
            raise InvalidArgument(f"connect_timeout must be positive, got {self.connect_timeout}")
        if min(self.max_batch_events, self.replay_page_size, self.max_batches_in_flight) < 1:
            raise InvalidArgument(
                "max_batch_events, max_batches_in_flight and replay_page_size must be at least 1"
            )
        describe_target(self.url)  # a malformed URL fails here, with a clear message

    @property
    def target(self) -> str:
        """``host:port/database`` of the server, without credentials."""
        return describe_target(self.url)


def database_url_from_env(environ: dict[str, str] | None = None) -> str | None:
    """``DATABASE_URL`` from the environment, or ``None`` when it is unset or blank."""
    env = os.environ if environ is None else environ
    value = env.get("DATABASE_URL", "").strip()
    return value or None


def describe_target(url: str) -> str:
    """``host:port/database`` for ``url``: what every error message names, never the password."""
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:
        # The parser's message can echo the URL; never repeat it.
        raise StorageUnavailable(
            f"invalid PostgreSQL URL ({type(exc).__name__}): expected "
            "postgresql://user[:password]@host[:port]/database"
        ) from None
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or "5432")
    database = str(params.get("dbname") or params.get("user") or "postgres")
    return f"{host}:{port}/{database}"


def _password(url: str) -> str | None:
    try:
        value = conninfo_to_dict(url).get("password")
    except Exception:
        return None
    return str(value) if value else None


def connection_error(url: str, action: str, exc: BaseException) -> StorageUnavailable:
    """A one-line :class:`StorageUnavailable` for ``exc`` naming the target, without password."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    # libpq prefixes every attempt with 'connection to server at ... failed:'; keep the cause.
    reason = re.sub(r'connection (?:failed|to server)[^:]*?(?:failed)?: ', "", reason)
    reason = reason.replace("FATAL: ", "").strip()
    password = _password(url)
    if password:
        reason = reason.replace(password, "***")
    return StorageUnavailable(f"{action} PostgreSQL at {describe_target(url)}: {reason}")
