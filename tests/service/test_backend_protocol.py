"""Both backends offer every call of the protocols they stand for, with compatible parameters.

mypy checks the same (``_conforms`` in each backend module); this test keeps the check in the
test suite too, where a backend that drops or renames a parameter fails at once."""

from __future__ import annotations

import inspect

import pytest

from contacts_cli.backends.base import ContactsBackend, ServiceBackend
from contacts_cli.backends.http import HttpBackend
from contacts_cli.backends.local import LocalBackend


def _calls(protocol: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(protocol).items()
            if inspect.isfunction(member) and not name.startswith("_")}


@pytest.mark.parametrize(("backend", "protocol"), [
    (HttpBackend, ContactsBackend), (LocalBackend, ContactsBackend),
    (LocalBackend, ServiceBackend),
])
def test_backend_offers_every_call_of_its_protocol(backend: type, protocol: type) -> None:
    calls = _calls(protocol)
    assert calls, protocol
    for name, wanted in calls.items():
        offered = inspect.signature(getattr(backend, name))
        assert inspect.iscoroutinefunction(getattr(backend, name)) == \
            inspect.iscoroutinefunction(getattr(protocol, name)), name
        for parameter in wanted.parameters.values():
            mine = offered.parameters.get(parameter.name)
            assert mine is not None, f"{backend.__name__}.{name} lacks {parameter.name}"
            assert mine.kind == parameter.kind, f"{backend.__name__}.{name}({parameter.name})"
            assert mine.default == parameter.default, f"{backend.__name__}.{name}"
        extra = [p for p in offered.parameters.values() if p.name not in wanted.parameters]
        assert all(p.default is not inspect.Parameter.empty for p in extra), name


def test_the_local_backend_is_also_what_the_http_app_serves() -> None:
    assert set(_calls(ServiceBackend)) - set(_calls(ContactsBackend)) == {
        "ping", "runtime_metrics", "import_numbered_chunks", "verify_password", "as_of_pages",
        "cluster_figures",
        "cards", "put_card", "changes_since", "host_of", "relay"}  # what CardDAV serves from
