"""The HTTP microservice (``contacts serve``): Starlette routes over the in-process backend."""

from contacts_cli.http.app import create_app
from contacts_cli.http.server import run_server

__all__ = ["create_app", "run_server"]
