"""``HttpBackend``: the :class:`~contacts_cli.backends.base.ContactsBackend` of client mode.

It calls a running ``contacts serve`` over HTTP with httpx and turns HTTP statuses back into
the backend's errors, so every CLI command behaves the same in either mode. Only httpx is
imported here: client mode must start fast, so nothing pulls in the actor system, psycopg,
starlette or vobject.

``blocking=True`` (what the CLI uses) sends each request with httpx's synchronous client
from inside the ``async`` methods: a CLI process makes one request at a time and has nothing
else to run meanwhile, so its coroutines never suspend and the CLI drives them without an
event loop, saving asyncio's and anyio's start-up (about 40 ms per command). Inside an event
loop use the default, ``blocking=False`` (httpx's ``AsyncClient``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from contacts_cli.backends.base import (
    ContactJson,
    ContactList,
    ContactsBackend,
    DuplicatePolicy,
    EventList,
    JsonObject,
    Outcome,
    OutcomeList,
    RowList,
)
from contacts_cli.backends.errors import (
    BackendError,
    Conflict,
    Invalid,
    NotFound,
    ServiceUnreachable,
    TimedOut,
    Unavailable,
)

if TYPE_CHECKING:
    import httpx


def _user_path(user: str) -> str:
    return f"/api/{quote(user, safe='')}/contacts"


def _if_match(expected_version: int | None) -> dict[str, str]:
    return {} if expected_version is None else {"If-Match": f'"{expected_version}"'}


def _error_from(status: int, body: Any, url: str) -> BackendError:
    """The backend error for an HTTP error status and its JSON body."""
    message = ""
    if isinstance(body, Mapping):
        message = str(body.get("detail") or body.get("error") or body.get("message") or "")
    if status == 404:
        return NotFound(message or "not found")
    if status in (409, 412):
        error: BackendError = Conflict(message or "version conflict")
        return error
    if status == 401:
        return BackendError(message or "the service wants a token: set CONTACTS_API_TOKEN")
    if status in (400, 422):
        errors: list[tuple[str, str]] = []
        raw = body.get("errors") if isinstance(body, Mapping) else None
        for item in raw or []:
            if isinstance(item, Mapping):
                errors.append((str(item.get("field", "")), str(item.get("message", ""))))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                errors.append((str(item[0]), str(item[1])))
        return Invalid(errors or [("request", message or "invalid request")])
    if status == 503:
        return Unavailable(message or f"the service at {url} cannot reach its database")
    if status == 504:
        return TimedOut(message or "the service timed out")
    return BackendError(message or f"the service at {url} answered HTTP {status}")


async def _chunked(rows: AsyncIterable[JsonObject], size: int) -> AsyncIterator[RowList]:
    chunk: RowList = []
    async for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class HttpBackend:
    """Talks to ``contacts serve`` at ``base_url``."""

    def __init__(self, base_url: str, *, timeout: float = 30.0,
                 token: str | None = None, blocking: bool = False,
                 import_timeout: float | None = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._httpx = httpx
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.blocking = blocking
        self.requests = 0
        self.import_timeout = import_timeout or timeout
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "timeout": httpx.Timeout(timeout, connect=5.0),
            "headers": headers,
            # Plain http needs no certificates; loading the CA bundle costs ~20 ms per start.
            "verify": not self.base_url.startswith("http://"),
        }
        self._client: httpx.Client | None = httpx.Client(**options) if blocking else None
        self._async_client: httpx.AsyncClient | None = (
            None if blocking else httpx.AsyncClient(**options)
        )

    async def _request(self, method: str, path: str, *, raw: bool = False,
                       raw_response: bool = False, **kwargs: Any) -> Any:
        """The answer's JSON body (its text with ``raw``, the ``httpx.Response`` itself
        with ``raw_response``, error statuses included); an error status raises the backend
        error it stands for, a transport failure :class:`ServiceUnreachable`, ``TimedOut``
        or :class:`Unavailable`."""
        httpx = self._httpx
        extra = self._extra_headers()
        if extra:
            kwargs["headers"] = {**kwargs.get("headers", {}), **extra}
        try:
            self.requests += 1
            if self._client is not None:
                response = self._client.request(method, path, **kwargs)
            else:
                assert self._async_client is not None
                response = await self._async_client.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ServiceUnreachable(
                f"cannot reach the contacts service at {self.base_url}: {exc}",
                first_request=self.requests == 1) from exc
        except httpx.TimeoutException as exc:
            raise TimedOut(f"the service at {self.base_url} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the contacts service at {self.base_url}: {exc}") from exc
        if raw_response:
            return response
        if raw and not response.is_error:
            return response.text
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = {"error": response.text.strip()[:500]}
        if response.is_error:
            raise self._error(response, body)
        return body

    def _extra_headers(self) -> Mapping[str, str]:
        """Headers added to every request (a subclass passes credentials through)."""
        return {}

    def _error(self, response: httpx.Response, body: Any) -> BackendError:
        """The backend error an error response stands for (a subclass may read headers)."""
        return _error_from(response.status_code, body, self.base_url)

    async def create(self, user: str, data: Mapping[str, Any],
                     idempotency_key: str | None = None) -> ContactJson:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: ContactJson = await self._request(
            "POST", _user_path(user), json=dict(data), headers=headers)
        return result

    async def get(self, user: str, contact_id: str) -> ContactJson:
        result: ContactJson = await self._request(
            "GET", f"{_user_path(user)}/{quote(contact_id, safe='')}")
        return result

    async def list(self, user: str, *, limit: int = 50, cursor: str | None = None,
                   q: str | None = None) -> JsonObject:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if q:
            params["q"] = q
        result: JsonObject = await self._request("GET", _user_path(user), params=params)
        return result

    async def update(self, user: str, contact_id: str, changes: Mapping[str, Any],
                     expected_version: int | None = None) -> ContactJson:
        result: ContactJson = await self._request(
            "PATCH", f"{_user_path(user)}/{quote(contact_id, safe='')}",
            json=dict(changes), headers=_if_match(expected_version))
        return result

    async def remove(self, user: str, contact_id: str,
                     expected_version: int | None = None) -> ContactJson:
        result: ContactJson = await self._request(
            "DELETE", f"{_user_path(user)}/{quote(contact_id, safe='')}",
            headers=_if_match(expected_version))
        return result

    async def history(self, user: str, contact_id: str) -> EventList:
        result = await self._request(
            "GET", f"{_user_path(user)}/{quote(contact_id, safe='')}/history")
        items: EventList = result["items"] if isinstance(result, Mapping) else result
        return items

    async def as_of(self, user: str, when: datetime) -> ContactList:
        result = await self._request("GET", _user_path(user), params={"as_of": when.isoformat()})
        items: ContactList = result["items"] if isinstance(result, Mapping) else result
        return items

    async def import_rows(self, user: str, rows: AsyncIterable[JsonObject], *,
                          policy: DuplicatePolicy = "skip", chunk_size: int = 1000,
                          dry_run: bool = False) -> AsyncIterator[Outcome]:
        """Send the rows a chunk per request; each reply lists the chunk's durable outcomes."""
        offset = 0
        async for chunk in _chunked(rows, chunk_size):
            for outcome in await self.import_chunk(user, chunk, None, policy=policy,
                                                   dry_run=dry_run):
                outcome["row"] = int(outcome["row"]) + offset
                yield outcome
            offset += len(chunk)

    async def import_chunk(self, user: str, rows: RowList, idempotency_key: str | None, *,
                           policy: DuplicatePolicy = "skip", dry_run: bool = False,
                           more: bool = False) -> OutcomeList:
        """One request for ``rows`` (numbered 1..n by their body line); the outcomes come back
        as JSON Lines once the chunk is durable. An in-band error line raises. ``more``: the
        next chunk of the same import follows at once (the server may defer a snapshot)."""
        encode = _ROW_JSON
        body = "".join([f"{encode(row)}\n" for row in rows]).encode()
        headers = {"Content-Type": "application/x-ndjson"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        params = {"policy": policy, "dry_run": "true" if dry_run else "false",
                  "more": "true" if more else "false",
                  "chunk_size": str(max(1, min(len(rows), 10_000)))}
        text = await self._request("POST", f"{_user_path(user)}/import", params=params,
                                   content=body, headers=headers, raw=True,
                                   timeout=self.import_timeout)
        return self._outcomes(text)

    def _outcomes(self, text: str) -> OutcomeList:
        """The outcome lines of an import's answer; an in-band error line raises."""
        outcomes: OutcomeList = []
        for line in text.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if "error" in item:
                error = item["error"]
                raise _error_from(int(error.get("status", 500)), error, self.base_url)
            if "row" in item:
                outcomes.append(item)
        return outcomes

    async def stats(self) -> JsonObject:
        result: JsonObject = await self._request("GET", "/api/stats")
        return result

    async def add_account(self, name: str, password: str) -> JsonObject:
        result: JsonObject = await self._request(
            "POST", "/admin/accounts", json={"name": name, "password": password})
        return result

    async def set_password(self, name: str, password: str) -> JsonObject:
        result: JsonObject = await self._request(
            "PUT", f"/admin/accounts/{quote(name, safe='')}/password", json={"password": password})
        return result

    async def remove_account(self, name: str) -> JsonObject:
        result: JsonObject = await self._request(
            "DELETE", f"/admin/accounts/{quote(name, safe='')}")
        return result

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._async_client is not None:
            await self._async_client.aclose()


_ROW_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
"""``json.dumps(row, ensure_ascii=False)`` with the encoder built once (a chunk has thousands
of rows). The standard library, not orjson or msgspec: a row read from a JSON file may hold
NaN, Infinity or integers beyond 64 bits, which the server must see as ``json.dumps`` writes
them (and refuse or accept exactly as the in-process backend would); the faster encoders
write NaN as ``null`` and refuse the large integers. No cycle check: a row read from a file
has no cycles (one would end in RecursionError)."""


_conforms: type[ContactsBackend] = HttpBackend
"""Checked by mypy: HttpBackend is everything the CLI calls."""
