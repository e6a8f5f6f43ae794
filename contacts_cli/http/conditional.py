"""HTTP conditional requests on a contact: its ``ETag``, ``If-Match`` and ``If-None-Match``.

A contact's entity tag is its version in quotes (``"3"``), so a client can name the version
it last saw. Invariants (tested in ``tests/service/test_http_api.py`` and
``tests/service/test_mutants_http_conditional.py``):

* ``If-Match: "n"`` makes a change conditional on the contact being at version ``n``: the
  actor refuses a stale one (:class:`~contacts_cli.backends.errors.Conflict`), answered 412,
  and nothing changes. The same conflict without ``If-Match`` (a retried write) is a 409.
* ``If-Match: *`` or none: any version. Anything else is refused with 400 before the body
  is read, never taken as "any".
* ``If-None-Match`` naming the current version (or ``*``) answers a read 304, with the
  ``ETag`` and no body; any other value reads the contact (200).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from contacts_cli.backends.base import ContactJson
from contacts_cli.http.problems import HttpProblem, echo

ETAG = re.compile(r'^"?(\d{1,18})"?$')
"""A version as ``If-Match`` may name it: digits, quoted or (leniently) not."""


def etag(contact: ContactJson) -> str:
    """The contact's entity tag: its version in quotes."""
    return f'"{contact["version"]}"'


def expected_version(request: Request) -> int | None:
    """The version named by ``If-Match`` (``*`` or absent: any; malformed: 400)."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    match = ETAG.match(header.strip())
    if not match:
        raise HttpProblem(
            400, f'If-Match must be one version in quotes such as "3", got {echo(header)}'
        )
    return int(match.group(1))


def has_if_match(request: Request) -> bool:
    """Whether a stale version is answered 412 (the client asked with ``If-Match``) rather
    than 409."""
    return "if-match" in request.headers


def not_modified(request: Request, contact: ContactJson) -> Response | None:
    """The 304 for a read whose ``If-None-Match`` names ``contact``'s version (or ``*``);
    ``None``: answer with the contact."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip() in {etag(contact), "*"}:
        return Response(status_code=304, headers={"ETag": etag(contact)})
    return None
