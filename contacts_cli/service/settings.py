"""Environment-driven configuration of the contacts service and the in-process backend.

Every knob has a default that works on a laptop; each value read from the environment is
validated once, here, so a typo fails at start with the variable's name, not later at a request.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_SHUTDOWN_AFTER = 600.0
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 64 * 1024
DEFAULT_QUERY_TIMEOUT = 5.0
DEFAULT_IMPORT_CHUNK_TIMEOUT = 60.0
DEFAULT_SNAPSHOT_EVERY = 500
DEFAULT_IMPORT_CHUNK_SIZE = 1000
DEFAULT_AUTH_CACHE_SECONDS = 60.0
DEFAULT_LOGIN_FAILURES_PER_USER = 10
DEFAULT_LOGIN_FAILURES_PER_ADDRESS = 50
DEFAULT_LOGIN_WINDOW = 600.0
DEFAULT_CLUSTER_TTL = 6.0
DEFAULT_CLUSTER_LOCAL_TTL = 3.0
DEFAULT_WORKERS = 1
MAX_WORKERS = 64

_REGION = re.compile(r"^[A-Z]{2}$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def default_data_dir() -> Path:
    """Where the embedded PostgreSQL keeps its files when no ``DATABASE_URL`` is given."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("contacts", appauthor=False))


@dataclass(frozen=True, slots=True)
class Settings:
    """The service's configuration; build it with :meth:`from_env` or directly in tests."""

    database_url: str | None = None
    db_schema: str = "contacts"
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_token: str | None = None
    default_region: str = "US"
    shutdown_after: float | None = DEFAULT_SHUTDOWN_AFTER
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    query_timeout: float = DEFAULT_QUERY_TIMEOUT
    import_chunk_timeout: float = DEFAULT_IMPORT_CHUNK_TIMEOUT
    import_chunk_size: int = DEFAULT_IMPORT_CHUNK_SIZE
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
    restart_budget: int = 5
    restart_window: float = 60.0
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    auth_cache_seconds: float = DEFAULT_AUTH_CACHE_SECONDS
    login_failures_per_user: int = DEFAULT_LOGIN_FAILURES_PER_USER
    login_failures_per_address: int = DEFAULT_LOGIN_FAILURES_PER_ADDRESS
    login_window: float = DEFAULT_LOGIN_WINDOW
    advertise: str | None = None
    """``host:port`` other instances forward requests to (``--advertise``); None: the bound
    address (a wildcard bind advertises 127.0.0.1, reachable from this host only)."""
    cluster_ttl: float = DEFAULT_CLUSTER_TTL
    """Seconds a ``contacts serve`` instance stays live after its last renewal (the database
    judges). After a kill -9 its users are served elsewhere within about this."""
    cluster_renew_every: float | None = None
    """Seconds between renewals; None: a third of the TTL."""
    cluster_local_ttl: float = DEFAULT_CLUSTER_LOCAL_TTL
    """The TTL of an in-process CLI command's registration (``contacts --local``): short, so
    that a command killed while holding a user frees it soon."""
    workers: int = DEFAULT_WORKERS

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"CONTACTS_PORT must be 1..65535, got {self.port}")
        if not self.host:
            raise SettingsError("CONTACTS_HOST must not be empty")
        if not _REGION.match(self.default_region):
            raise SettingsError(
                "CONTACTS_DEFAULT_REGION must be a two-letter region code such as US or DE, "
                f"got {self.default_region!r}"
            )
        if self.shutdown_after is not None and not 0 < self.shutdown_after < 10**7:
            raise SettingsError(
                f"CONTACTS_SHUTDOWN_AFTER must be positive seconds, got {self.shutdown_after}"
            )
        for name, value in (
            ("CONTACTS_MAX_BODY_BYTES", self.max_body_bytes),
            ("CONTACTS_MAX_LINE_BYTES", self.max_line_bytes),
            ("CONTACTS_SNAPSHOT_EVERY", self.snapshot_every),
            ("CONTACTS_IMPORT_CHUNK_SIZE", self.import_chunk_size),
            ("CONTACTS_LOGIN_FAILURES_PER_USER", self.login_failures_per_user),
            ("CONTACTS_LOGIN_FAILURES_PER_ADDRESS", self.login_failures_per_address),
        ):
            if value < 1:
                raise SettingsError(f"{name} must be at least 1, got {value}")
        for name, seconds in (
            ("CONTACTS_QUERY_TIMEOUT", self.query_timeout),
            ("CONTACTS_IMPORT_CHUNK_TIMEOUT", self.import_chunk_timeout),
            ("CONTACTS_LOGIN_WINDOW", self.login_window),
        ):
            if not 0 < seconds < 10**6:
                raise SettingsError(f"{name} must be positive seconds, got {seconds}")
        if not _SCHEMA.match(self.db_schema):
            raise SettingsError(
                "CONTACTS_DB_SCHEMA must be a lower-case identifier (letters, digits, _), "
                f"got {self.db_schema!r}"
            )
        if self.api_token is not None and not self.api_token.strip():
            raise SettingsError("CONTACTS_API_TOKEN is set but empty")
        for name, seconds in (
            ("CONTACTS_CLUSTER_TTL", self.cluster_ttl),
            ("CONTACTS_CLUSTER_LOCAL_TTL", self.cluster_local_ttl),
        ):
            if not 0.5 <= seconds <= 3600:
                raise SettingsError(f"{name} must be 0.5 to 3600 seconds, got {seconds}")
        renew = self.cluster_renew_every
        if renew is not None and not 0 < renew <= self.cluster_ttl / 2:
            raise SettingsError(
                "CONTACTS_CLUSTER_RENEW_EVERY must be positive and at most half of "
                f"CONTACTS_CLUSTER_TTL ({self.cluster_ttl:g} s), got {renew}"
            )
        if not 1 <= self.workers <= MAX_WORKERS:
            raise SettingsError(f"CONTACTS_WORKERS must be 1..{MAX_WORKERS}, got {self.workers}")
        if self.advertise is not None:
            split_address(self.advertise, "CONTACTS_ADVERTISE")
        if not 0 <= self.auth_cache_seconds < 10**6:
            raise SettingsError("CONTACTS_AUTH_CACHE_SECONDS must be 0 (no cache) or positive "
                                f"seconds, got {self.auth_cache_seconds}")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise SettingsError("CONTACTS_TLS_CERTFILE and CONTACTS_TLS_KEYFILE go together: "
                                "set both (HTTPS) or neither (HTTP)")

    @property
    def tls(self) -> bool:
        """Whether the service serves HTTPS (a certificate and its key are configured)."""
        return self.tls_certfile is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``CONTACTS_*`` and ``DATABASE_URL``; ``overrides`` win (None ones are ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if url := env.get("DATABASE_URL", "").strip():
            values["database_url"] = url
        if schema := env.get("CONTACTS_DB_SCHEMA", "").strip():
            values["db_schema"] = schema
        if data_dir := env.get("CONTACTS_DATA_DIR", "").strip():
            values["data_dir"] = Path(data_dir).expanduser()
        for var, attr in (("CONTACTS_TLS_CERTFILE", "tls_certfile"),
                          ("CONTACTS_TLS_KEYFILE", "tls_keyfile")):
            if path := env.get(var, "").strip():
                values[attr] = Path(path).expanduser()
        if host := env.get("CONTACTS_HOST", "").strip():
            values["host"] = host
        if advertise := env.get("CONTACTS_ADVERTISE", "").strip():
            values["advertise"] = advertise
        if "CONTACTS_API_TOKEN" in env:
            values["api_token"] = env["CONTACTS_API_TOKEN"]
        if region := env.get("CONTACTS_DEFAULT_REGION", "").strip():
            values["default_region"] = region.upper()
        if "CONTACTS_SHUTDOWN_AFTER" in env:
            raw = env["CONTACTS_SHUTDOWN_AFTER"].strip().lower()
            never = raw in {"", "0", "never", "none"}
            values["shutdown_after"] = None if never else _number(env, "CONTACTS_SHUTDOWN_AFTER")
        ints = {
            "CONTACTS_PORT": "port",
            "CONTACTS_MAX_BODY_BYTES": "max_body_bytes",
            "CONTACTS_MAX_LINE_BYTES": "max_line_bytes",
            "CONTACTS_SNAPSHOT_EVERY": "snapshot_every",
            "CONTACTS_IMPORT_CHUNK_SIZE": "import_chunk_size",
            "CONTACTS_LOGIN_FAILURES_PER_USER": "login_failures_per_user",
            "CONTACTS_LOGIN_FAILURES_PER_ADDRESS": "login_failures_per_address",
            "CONTACTS_WORKERS": "workers",
        }
        for var, attr in ints.items():
            if env.get(var, "").strip():
                values[attr] = _integer(env, var)
        floats = {
            "CONTACTS_QUERY_TIMEOUT": "query_timeout",
            "CONTACTS_IMPORT_CHUNK_TIMEOUT": "import_chunk_timeout",
            "CONTACTS_AUTH_CACHE_SECONDS": "auth_cache_seconds",
            "CONTACTS_LOGIN_WINDOW": "login_window",
            "CONTACTS_CLUSTER_TTL": "cluster_ttl",
            "CONTACTS_CLUSTER_RENEW_EVERY": "cluster_renew_every",
            "CONTACTS_CLUSTER_LOCAL_TTL": "cluster_local_ttl",
        }
        for var, attr in floats.items():
            if env.get(var, "").strip():
                values[attr] = _number(env, var)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def check_bind(self) -> None:
        """Refuse a non-loopback address unless an API token protects ``/api`` or the
        service speaks HTTPS (then only account holders get in, by HTTP Basic); refuse a
        certificate or key that cannot be loaded, before anything starts."""
        if self.tls:
            self.check_tls()
        if self.api_token is None and not self.tls and not is_loopback(self.host):
            raise SettingsError(
                f"refusing to bind to {self.host!r} without CONTACTS_API_TOKEN or HTTPS: set "
                "a token, serve HTTPS (--certfile/--keyfile), or bind to a loopback address "
                "such as 127.0.0.1"
            )

    def check_tls(self) -> None:
        """Load the certificate and key once, so a wrong path or a mismatched pair fails
        here with the variable's name rather than inside uvicorn."""
        import ssl

        assert self.tls_certfile is not None and self.tls_keyfile is not None
        for var, path in (("CONTACTS_TLS_CERTFILE", self.tls_certfile),
                          ("CONTACTS_TLS_KEYFILE", self.tls_keyfile)):
            if not path.is_file():
                raise SettingsError(f"{var}: no such file {str(path)!r}")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.tls_certfile, self.tls_keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                f"cannot load the certificate {str(self.tls_certfile)!r} with the key "
                f"{str(self.tls_keyfile)!r} (CONTACTS_TLS_CERTFILE, CONTACTS_TLS_KEYFILE): "
                f"{exc}") from None


    @property
    def advertised_address(self) -> str:
        """Where other instances reach this one: ``advertise``, else the bound address (a
        wildcard bind advertises the loopback address: set ``advertise`` across hosts)."""
        if self.advertise is not None:
            return self.advertise
        host = self.host
        if host in {"0.0.0.0", "::", "[::]", ""}:
            host = "127.0.0.1"
        return join_address(host, self.port)


def split_address(address: str, name: str = "address") -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets) as a pair; a clear error naming ``name`` otherwise."""
    host, colon, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(
            f"{name} must be host:port (an IPv6 host in brackets), got {address!r}"
        )
    return host, int(port)


def join_address(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback IP)."""
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _integer(env: Mapping[str, str], var: str) -> int:
    raw = env[var].strip()
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{var} must be an integer, got {raw!r}") from None


def _number(env: Mapping[str, str], var: str) -> float:
    raw = env[var].strip()
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{var} must be a number of seconds, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{var} must be a finite number, got {raw!r}")
    return value
