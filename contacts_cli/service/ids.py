"""Identifiers of the service: user ids, persistence ids and new contact ids.

A user id names a journal (``contacts-user/<user_id>``), an actor and a URL path segment, so it
is restricted to a small alphabet, and ``.`` and ``..`` are refused: as a path segment they
would name the parent (an HTTP client normalises ``/api/../contacts`` to ``/contacts``).
"""

from __future__ import annotations

import os
import re

from contacts_cli.backends.errors import Invalid

PERSISTENCE_PREFIX = "contacts-user/"
USER_ID_PATTERN = r"^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$"
"""The user id rule as a regular expression both Python and JSON Schema (OpenAPI) read."""
USER_ID = re.compile(USER_ID_PATTERN)
USER_ID_RULE = "must be 1 to 64 letters, digits, '.', '_' or '-', and not '.' or '..'"


def check_user_id(user_id: str) -> str:
    """The user id if it follows :data:`USER_ID_RULE`; else ``Invalid``."""
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        raise Invalid([("user_id", USER_ID_RULE)])
    return user_id


def persistence_id(user_id: str) -> str:
    """The journal of one user: namespaced so no other actor type can collide with it."""
    return PERSISTENCE_PREFIX + check_user_id(user_id)


def new_contact_id() -> str:
    """A random (version 4) UUID as text, drawn from a pool filled from ``os.urandom`` in
    bulk: ``str(uuid.uuid4())`` per contact was a tenth of an import's domain work.

    A forked child empties its copy of the pool before it runs anything else
    (``os.register_at_fork``), so it never hands out the ids its parent will hand out too,
    and a draw makes no system call (it asked ``os.getpid()`` each time before)."""
    texts = _pool
    if not texts:
        texts.extend(uuid4_texts(_POOL_SIZE))
    return texts.pop()


def uuid4_texts(count: int) -> list[str]:
    """``count`` random UUIDs in their canonical text form, as ``str(uuid.uuid4())`` gives:
    the version nibble set to 4, the variant bits to ``10``, 122 random bits each."""
    digits = os.urandom(16 * count).hex()
    variant = _VARIANT
    texts = []
    for start in range(0, 32 * count, 32):
        h = digits[start:start + 32]
        texts.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant[h[16]]}{h[17:20]}-{h[20:]}")
    return texts


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_POOL_SIZE = 1024
_pool: list[str] = []
"""Unused contact ids, drawn by this process."""

if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_pool.clear)
