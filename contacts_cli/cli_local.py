"""In-process mode: start the actor system in this process (imported only in that mode).

The service's settings come from the environment (``CONTACTS_*``), with the CLI's global
flags (``--database-url``, ``--data-dir``) on top. A database that cannot be reached or an
embedded PostgreSQL that fails to start becomes :class:`~contacts_cli.backend.Unavailable`
(exit code 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contacts_cli.backend import Invalid, Unavailable

if TYPE_CHECKING:
    from contacts_cli.cli_common import Settings
    from contacts_cli.local import LocalBackend
    from contacts_cli.settings import Settings as ServiceSettings


def service_settings(settings: Settings) -> ServiceSettings:
    """The service's settings for this invocation (flag > environment > .env)."""
    from contacts_cli.settings import Settings as ServiceSettings
    from contacts_cli.settings import SettingsError

    try:
        return ServiceSettings.from_env(
            database_url=settings.database_url, data_dir=settings.data_dir
        )
    except SettingsError as exc:
        raise Invalid([("configuration", str(exc))]) from None


async def open_local_backend(settings: Settings) -> LocalBackend:
    """Start the engine, the actor system and the router in this process."""
    from contacts_cli.local import LocalBackend
    from persistence.errors import StorageUnavailable

    config = service_settings(settings)
    try:
        return await LocalBackend.open(config)
    except StorageUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except RuntimeError as exc:  # the embedded PostgreSQL did not start
        raise Unavailable(str(exc)) from None
