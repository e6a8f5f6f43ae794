"""``python -m contacts_cli.http``: run the service with settings from the environment."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from contacts_cli.http.server import run_server
from contacts_cli.http.workers import WORKER_FLAG, supervise, worker_sockets
from contacts_cli.server_proof import NONCE_ENV
from contacts_cli.service.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contacts_cli.http", description=__doc__)
    parser.add_argument("--host", help="address to bind (CONTACTS_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (CONTACTS_PORT, default 8765)")
    parser.add_argument("--database-url", help="PostgreSQL URL (DATABASE_URL); default: embedded")
    parser.add_argument("--workers", type=int,
                        help="worker processes sharing the port (CONTACTS_WORKERS, default 1)")
    parser.add_argument("--advertise", metavar="HOST:PORT",
                        help="where other instances reach this one (CONTACTS_ADVERTISE)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument(WORKER_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        overrides = {"host": args.host, "port": args.port, "database_url": args.database_url,
                     "workers": args.workers, "advertise": args.advertise}
        settings = Settings.from_env(**overrides)
        if args.worker:
            sockets, address = worker_sockets(settings)
            return run_server(settings, log_level=args.log_level, sockets=sockets,
                              address=address, discovery_nonce=os.environ.get(NONCE_ENV))
        if settings.workers > 1:
            return supervise(settings, settings.workers, log_level=args.log_level)
        return run_server(settings, log_level=args.log_level)
    except SettingsError as exc:
        print(f"contacts serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"contacts serve: cannot listen: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
