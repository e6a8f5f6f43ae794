"""Property: whatever JSON, text or bytes reach a REST route, in its body, path, query or
headers, the answer is a success or a problem+json 4xx; an import answers in-band, one
line per row and a closing summary. Never a 5xx, a traceback or a half-answered stream
(issue 10). Bounded (a fixed number of examples, no deadline) so the suite stays fast."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacts_cli.http.bodies import loads_strict
from contacts_cli.io.bounded_json import MAX_JSON_DEPTH, loads_bounded, nests_deeper
from contacts_cli.io.errors import JsonTooDeep
from tests.service.live_asgi import LiveAsgi

BOUNDED = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=200)
"""Any code point, lone surrogates and NUL included."""
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
contact_like = st.fixed_dictionaries({}, optional={
    key: json_values | any_text
    for key in ("name", "emails", "phones", "company", "title", "labels", "notes", "birthday",
                "address", "id")
})
deep = st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=5000).map(
    lambda n: '{"name": ' + "[" * n + "]" * n + "}")


def _json_text(value: Any) -> str:
    return json.dumps(value)  # escapes lone surrogates as \ud800, as a hostile client would


bodies = st.one_of(
    contact_like.map(_json_text),
    json_values.map(_json_text),
    any_text,
    deep,
).map(lambda text: text.encode("utf-8", "surrogatepass")) | st.binary(max_size=300)
import_bodies = st.lists(bodies, max_size=6).map(b"\n".join)
visible = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
segment = st.one_of(st.sampled_from(["alice", "bob", ".", "..", "-x", "a" * 200]), any_text)
content_types = st.one_of(st.none(), st.sampled_from([
    "application/json", "application/merge-patch+json", "application/x-ndjson", "text/plain",
    "application/json; charset=latin-1"]), visible)
queries = st.dictionaries(
    st.sampled_from(["limit", "cursor", "q", "as_of", "policy", "chunk_size", "dry_run",
                     "more", "first_row", "challenge"]),
    st.one_of(visible, any_text.map(lambda t: t.encode("utf-8", "surrogatepass").decode(
        "utf-8", "replace"))),
    max_size=4,
)
headers = st.fixed_dictionaries({}, optional={
    "If-Match": visible, "Idempotency-Key": visible, "Accept": visible,
})

ROUTES = [
    ("POST", "/api/{user}/contacts"),
    ("GET", "/api/{user}/contacts"),
    ("GET", "/api/{user}/contacts/{id}"),
    ("PATCH", "/api/{user}/contacts/{id}"),
    ("DELETE", "/api/{user}/contacts/{id}"),
    ("GET", "/api/{user}/contacts/{id}/history"),
    ("POST", "/api/{user}/contacts/import"),
    ("POST", "/admin/accounts"),
    ("PUT", "/admin/accounts/{user}/password"),
    ("DELETE", "/admin/accounts/{user}"),
    ("GET", "/healthz"),
]


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAsgi]:
    app = LiveAsgi(database_url, tmp_path_factory.mktemp("hostile"))
    yield app
    app.close()


def check_answer(response: Any, importing: bool) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert json.loads(response.content)["status"] == response.status_code
    elif importing:
        lines = [json.loads(line) for line in response.content.splitlines()]
        assert lines and "summary" in lines[-1], response.text[-500:]
        for row in lines[:-1]:
            assert isinstance(row["row"], int) and row["row"] >= 1
            if row["outcome"] == "rejected":
                assert row["errors"]


@BOUNDED
@given(route=st.sampled_from(ROUTES), user=segment, contact_id=segment, body=bodies,
       import_body=import_bodies, content_type=content_types, query=queries,
       extra=headers)
def test_any_request_is_answered_with_success_or_a_4xx_problem(
    live: LiveAsgi, route: tuple[str, str], user: str, contact_id: str, body: bytes,
    import_body: bytes, content_type: str | None, query: dict[str, str],
    extra: dict[str, str],
) -> None:
    method, template = route
    importing = template.endswith("/import")
    path = template.format(user=quote(user.encode("utf-8", "surrogatepass"), safe=""),
                           id=quote(contact_id.encode("utf-8", "surrogatepass"), safe=""))
    sent = dict(extra)
    if content_type is not None:
        sent["Content-Type"] = content_type
    content = (import_body if importing else body) if method in ("POST", "PATCH", "PUT") else None
    response = live.request(method, path, params=query, headers=sent, content=content)
    check_answer(response, importing)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(any_text, deep, json_values.map(_json_text)))
def test_bounded_json_decodes_or_refuses_with_a_value_error(text: str) -> None:
    try:
        loads_bounded(text)
    except JsonTooDeep:
        assert nests_deeper(text)
    except ValueError:
        pass  # json.JSONDecodeError is a ValueError


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), any_text.map(
    lambda t: t.encode("utf-8", "surrogatepass")), deep.map(str.encode)))
def test_strict_json_bodies_decode_or_refuse_with_a_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):  # JSONDecodeError, UnicodeDecodeError, JsonTooDeep
        loads_strict(data)
