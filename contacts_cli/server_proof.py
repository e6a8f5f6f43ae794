"""How a ``contacts serve`` proves it is the one that wrote ``server.json``, without showing
the secret to whoever answers on its port.

``contacts serve`` puts a random *nonce* into ``server.json`` (a private file of the user's,
mode 0600) and keeps it in memory. A CLI that found the file sends ``GET /healthz`` with a
fresh random *challenge*; the server answers ``HMAC-SHA256(nonce, challenge)``. Only a process
that knows the nonce can compute that answer, and the answer reveals nothing a later
challenge could reuse, so a squatter on the announced port (a server that died and a stranger
took its port, a listener that raced the server's start-up) cannot pass: the CLI sends its
``Authorization`` header only after the proof checked out.

Used by both sides, so it imports nothing but the standard library (client mode starts fast).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

NONCE_ENV = "CONTACTS_DISCOVERY_NONCE"
"""How ``serve --workers`` hands the nonce to its worker processes (their environment is
readable by this user only, like ``server.json`` itself)."""

MAX_CHALLENGE = 128
"""The longest challenge ``/healthz`` answers (characters); a longer one is a 400."""


def new_nonce() -> str:
    """A fresh secret for one run of ``contacts serve``."""
    return secrets.token_hex(32)


def new_challenge() -> str:
    """A fresh challenge for one proof (never reused, so an answer cannot be replayed)."""
    return secrets.token_hex(16)


def answer(nonce: str, challenge: str) -> str:
    """What the server that knows ``nonce`` answers to ``challenge``."""
    return hmac.new(nonce.encode(), challenge.encode(), hashlib.sha256).hexdigest()


def proves(nonce: str, challenge: str, proof: object) -> bool:
    """Whether ``proof`` (from a ``/healthz`` answer) shows knowledge of ``nonce``."""
    return (bool(nonce) and isinstance(proof, str)
            and hmac.compare_digest(proof.encode(), answer(nonce, challenge).encode()))
