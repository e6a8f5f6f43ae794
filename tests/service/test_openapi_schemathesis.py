"""A bounded schemathesis run over the service's own ``/openapi.json`` (issue 10): requests
generated from the document, valid and invalid ones, sent to the in-process app on a real
PostgreSQL schema. No 5xx, whatever the request; a 4xx is problem+json.

The budget is fixed (``EXAMPLES`` cases) so the run stays well under half a minute; a run of
38,676 cases found no 5xx beyond those issue 10 fixed, and this keeps it that way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from contacts_cli.http.openapi import DOCUMENT
from tests.service.live_asgi import LiveAsgi

EXAMPLES = 300


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx: Any, value: Any) -> bytes:
    """The import route's body: the document says "a string"; anything else, one JSON line."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
CASES = st.one_of(SCHEMA.as_strategy(GenerationMode.POSITIVE),
                  SCHEMA.as_strategy(GenerationMode.NEGATIVE))


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAsgi]:
    app = LiveAsgi(database_url, tmp_path_factory.mktemp("schemathesis"))
    yield app
    app.close()


def test_the_document_is_the_one_served(live: LiveAsgi) -> None:
    assert live.request("GET", "/openapi.json").json()["paths"].keys() == DOCUMENT["paths"].keys()


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(case=CASES)
def test_no_generated_request_gets_a_server_error(live: LiveAsgi, case: Any) -> None:
    sent = case.as_transport_kwargs(base_url="http://test")
    method, url = sent.pop("method"), sent.pop("url")
    content = sent.pop("data", None)
    if "json" in sent:
        content = json.dumps(sent.pop("json")).encode("utf-8", "surrogatepass")
    headers = {k: v.encode("utf-8", "surrogatepass") if isinstance(v, str) else v
               for k, v in (sent.pop("headers", None) or {}).items()}
    cookies = sent.pop("cookies", None) or {}
    if cookies:  # the API reads none; sent as a header, as a client would
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    response = live.request(method, url, params=sent.pop("params", None), headers=headers,
                            content=content)
    assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
