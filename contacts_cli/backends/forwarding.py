"""Forwarding a command to the instance that hosts the user (see ``docs/cluster.md``).

A user's actor is active on exactly one live instance. When this process meets
``ActivationElsewhere`` for a user, :class:`~contacts_cli.backends.local.LocalBackend`
sends the same backend call over HTTP to the owner's registered address through
:class:`Peers` (one keep-alive ``httpx.AsyncClient`` per peer), so the answer always
comes from the one activation: reads are never stale, writes never conflict. It happens at
the backend level, so the HTTP routes and the in-process CLI share it.

The rules, one hop at most:

* the forwarded request carries ``X-Contacts-Forwarded: <this instance id>`` and the
  original request's ``Authorization`` (the in-process CLI's token when it has none);
* a forwarded request that meets ``ActivationElsewhere`` again is answered 503 with
  ``Retry-After: 1`` and ``X-Contacts-Not-Hosted: 1`` (:class:`NotHostedHere`), never
  forwarded a second time; the origin then asks the database again once;
* a refused connection means the owner may be dead: the origin retries the activation
  with a short back-off for up to the owner's TTL (after which the database lets it take
  the user over), then answers 503. A request that was sent but got no answer is never
  re-sent (it may have been applied): it is answered 503/504 and the client retries.

CardDAV requests are *relayed* whole instead (:meth:`PeerBackend.relay`): the address book's
protocol is served by the instance that hosts the user, so a sync token, an ETag and the
multistatus body all come from the one activation. The same one-hop rule applies.

The request's origin (its credentials, whether it was itself forwarded) reaches the backend
through a context variable that the HTTP layer sets (:func:`request_origin`).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contacts_cli.backends.base import BackendError, OutcomeList
from contacts_cli.backends.errors import Unavailable
from contacts_cli.backends.http import _ROW_JSON, HttpBackend, _user_path

if TYPE_CHECKING:
    import httpx

    from contacts_cli.service.messages import Import

FORWARDED_HEADER = "X-Contacts-Forwarded"
NOT_HOSTED_HEADER = "X-Contacts-Not-Hosted"
RETRY_AFTER_SECONDS = 1

OWNERS_REMEMBERED = 100_000
"""Users whose remote owner this instance remembers (least recently learned forgotten first)."""


class NotHostedHere(Unavailable):
    """A forwarded request met a user whose actor is active on a third instance: answered
    503 (``Retry-After: 1``) instead of a second hop; its origin asks the database again."""


@dataclass(frozen=True, slots=True)
class Relayed:
    """The answer of the instance a whole HTTP request was relayed to."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


RELAYED_REQUEST_HEADERS = frozenset((
    "accept", "authorization", "content-type", "depth", "if-match", "if-none-match", "prefer",
))
"""What a relayed request carries of the client's headers: what the protocol reads."""
RELAYED_RESPONSE_HEADERS = frozenset((
    "allow", "content-type", "dav", "etag", "last-modified", "location", "preference-applied",
    "retry-after", "www-authenticate",
))
"""What the client gets back of the owner's response headers (no hop-by-hop ones)."""


class PeerRefused(Unavailable):
    """No connection could be made to the instance that hosts the user: it may be dead.
    Nothing was sent."""


@dataclass(frozen=True, slots=True)
class RequestOrigin:
    """Where the request being served came from."""

    authorization: str | None = None
    """Its ``Authorization`` header, passed on to the owner unchanged."""
    forwarded_by: str | None = None
    """The instance that forwarded it here (its ``X-Contacts-Forwarded``), if any."""


_origin: ContextVar[RequestOrigin | None] = ContextVar("contacts_request_origin", default=None)


@contextlib.contextmanager
def request_origin(origin: RequestOrigin) -> Iterator[None]:
    """Serve one request with ``origin`` visible to the backend calls it makes."""
    token = _origin.set(origin)
    try:
        yield
    finally:
        _origin.reset(token)


def current_origin() -> RequestOrigin | None:
    """The origin of the HTTP request being served; None in the in-process CLI."""
    return _origin.get()


def is_forwarded() -> bool:
    origin = _origin.get()
    return origin is not None and origin.forwarded_by is not None


class PeerBackend(HttpBackend):
    """An ``HttpBackend`` to one peer instance, sending as the request being served."""

    def __init__(self, address: str, me: Callable[[], str], *, fallback_token: str | None,
                 timeout: float, import_timeout: float) -> None:
        super().__init__(f"http://{address}", timeout=timeout, import_timeout=import_timeout)
        self.address = address
        self._me = me
        self._fallback = f"Bearer {fallback_token}" if fallback_token else None

    def _extra_headers(self) -> Mapping[str, str]:
        origin = current_origin()
        authorization = origin.authorization if origin is not None else self._fallback
        headers = {FORWARDED_HEADER: self._me()}
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def _error(self, response: httpx.Response, body: Any) -> BackendError:
        if response.headers.get(NOT_HOSTED_HEADER):
            return NotHostedHere(f"instance {self.address} no longer hosts the user")
        if response.status_code == 401:
            return Unavailable(
                f"the instance at {self.address} refused the credentials forwarded to it: "
                "every instance must share CONTACTS_API_TOKEN"
            )
        error = super()._error(response, body)
        if type(error) is BackendError:  # an unexpected status: not ours to call internal
            return Unavailable(f"the instance at {self.address} hosting the user failed: "
                               f"{error}")
        return error

    async def _request(self, method: str, path: str, *, raw: bool = False,
                       **kwargs: Any) -> Any:
        try:
            return await super()._request(method, path, raw=raw, **kwargs)
        except Unavailable as exc:
            if getattr(exc, "first_request", None) is not None:  # ServiceUnreachable
                raise PeerRefused(f"the instance at {self.address} hosting the user does "
                                  f"not accept connections: {exc}") from exc
            raise

    async def relay(self, method: str, target: str, headers: Mapping[str, str],
                    body: bytes) -> Relayed:
        """Send a whole HTTP request (path and query ``target``) to this peer as it came,
        marked as forwarded, and return its answer unchanged (but for hop-by-hop headers).

        Raises :class:`PeerRefused` when no connection could be made (nothing was sent),
        :class:`NotHostedHere` when the peer does not host the user any more, and the
        backend's :class:`Unavailable` / ``TimedOut`` when the request was sent but not
        answered (it may have been applied: never re-sent)."""
        sent = {name: value for name, value in headers.items()
                if name.lower() in RELAYED_REQUEST_HEADERS}
        sent[FORWARDED_HEADER] = self._me()
        response: httpx.Response = await self._request(
            method, target, raw_response=True, headers=sent, content=body)
        if response.headers.get(NOT_HOSTED_HEADER):
            raise NotHostedHere(f"instance {self.address} no longer hosts the user")
        kept = [(name, value) for name, value in response.headers.items()
                if name.lower() in RELAYED_RESPONSE_HEADERS]
        return Relayed(response.status_code, kept, response.content)

    async def import_command(self, user: str, command: Import) -> OutcomeList:
        """One import chunk with its own row numbers (line n of the body is row n counted
        from ``first_row``; rows missing from the chunk are blank lines), so outcomes and
        idempotency keys (``<key>#<row>``) are those the origin would have produced."""
        first = command.rows[0].ref if command.rows else 1
        lines: list[str] = []
        expected = first
        for item in command.rows:
            if item.ref < expected:
                raise ValueError("an import chunk's rows must be in ascending order")
            lines.extend("" for _ in range(item.ref - expected))
            lines.append(_ROW_JSON(dict(item.data)))
            expected = item.ref + 1
        headers = {"Content-Type": "application/x-ndjson"}
        if command.idempotency_key:
            headers["Idempotency-Key"] = command.idempotency_key
        params = {"policy": command.policy, "dry_run": _flag(command.dry_run),
                  "more": _flag(command.more), "first_row": str(first),
                  "chunk_size": str(max(1, min(len(command.rows), 10_000)))}
        text = await self._request("POST", f"{_user_path(user)}/import", params=params,
                                   content=("\n".join(lines) + "\n").encode(),
                                   headers=headers, raw=True, timeout=self.import_timeout)
        return self._outcomes(text)


def _flag(value: bool) -> str:
    return "true" if value else "false"


class Peers:
    """The peers this instance forwards to (one keep-alive client each), and which peer
    hosts which user, as last learned from the database."""

    def __init__(self, me: Callable[[], str], *, fallback_token: str | None,
                 timeout: float, import_timeout: float) -> None:
        self._me = me
        self._fallback_token = fallback_token
        self._timeout = timeout
        self._import_timeout = import_timeout
        self._peers: dict[str, PeerBackend] = {}
        self._owners: OrderedDict[str, str] = OrderedDict()
        self.forwarded = 0
        self.refused = 0

    def peer(self, address: str) -> PeerBackend:
        peer = self._peers.get(address)
        if peer is None:
            peer = PeerBackend(address, self._me, fallback_token=self._fallback_token,
                               timeout=self._timeout, import_timeout=self._import_timeout)
            self._peers[address] = peer
        return peer

    def owner_of(self, user: str) -> str | None:
        """The address last learned to host ``user``, if any."""
        return self._owners.get(user)

    def learn(self, user: str, address: str) -> None:
        self._owners[user] = address
        self._owners.move_to_end(user)
        if len(self._owners) > OWNERS_REMEMBERED:
            self._owners.popitem(last=False)

    def forget(self, user: str) -> None:
        self._owners.pop(user, None)

    def forget_all(self) -> None:
        self._owners.clear()

    async def close(self) -> None:
        peers, self._peers = list(self._peers.values()), {}
        for peer in peers:
            await peer.close()
