"""``python -m tests.carddav.server [PORT]``: the service with CardDAV, for tests and the bench.

The app is the product's (``create_app`` with the in-process backend); only the
authenticator is the test one (accounts from ``CARDDAV_TEST_ACCOUNTS="user:password,..."``),
since the real accounts are not this package's. Stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import sys

import uvicorn

from contacts_cli.backends.local import LocalBackend
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from tests.carddav.accounts import accounts_from_text


def main(port: int | None) -> None:
    settings = Settings.from_env(host="127.0.0.1", port=port)

    async def open_backend() -> LocalBackend:
        return await LocalBackend.open(settings)

    app = create_app(settings, open_backend=open_backend,
                     carddav_authenticate=accounts_from_text(os.environ["CARDDAV_TEST_ACCOUNTS"]))
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning",
                            access_log=False, lifespan="on", http="h11")
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    numbers = [arg for arg in sys.argv[1:] if arg.isdigit()]  # (``--log-level x`` is ignored)
    main(int(numbers[0]) if numbers else None)
