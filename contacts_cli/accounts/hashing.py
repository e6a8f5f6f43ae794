"""argon2id hashing and verification that never block the event loop.

Hashes are argon2id in the PHC string format (``$argon2id$v=19$m=65536,t=3,p=4$salt$hash``)
with argon2-cffi's defaults, RFC 9106's low-memory profile: 64 MiB and about 150 ms of CPU per
hash or verification (``python -m contacts_cli.accounts.hashing`` measures it). Slow is the
point, and the reason it runs off the event loop: 150 ms on the loop would stall every other
user's requests.

Why a thread pool, despite "no thread pools on the hot path": the hot path is a contact
command reaching its actor and the journal, which stays on the loop. A verification happens
once per client per cache period (:mod:`.verifier`), and argon2-cffi releases the GIL while it
hashes, so a thread computes it beside the loop at the cost of one hand-over (measured: loop
lag stays under a millisecond, median 0.14 ms, while verifications run; a process pool would
add start-up and pickling for nothing the GIL-free C code needs). The pool is this
module's own and small (:data:`WORKERS`): a burst of logins queues here instead of taking
the default executor's threads or 64 MiB per concurrent hash without bound; past
:data:`MAX_WAITING` waiting calls it refuses with ``Unavailable`` (HTTP 503) rather than
queue without limit.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from contacts_cli.backends.errors import Unavailable

log = logging.getLogger("contacts_cli.accounts")

T = TypeVar("T")

WORKERS = 2
"""Hashes computed at once: each already uses up to four threads (argon2 lanes) and 64 MiB."""
MAX_WAITING = 64
"""Calls allowed to wait for a worker before further ones are refused with ``Unavailable``."""


class PasswordHashing:
    """argon2id hashing and verification on a small pool of threads of its own.

    ``hasher`` defaults to argon2-cffi's recommended parameters; tests pass a cheap one.
    """

    def __init__(self, hasher: PasswordHasher | None = None, *, workers: int = WORKERS,
                 max_waiting: int = MAX_WAITING) -> None:
        self.hasher = hasher or PasswordHasher()
        self.workers = workers
        self.max_waiting = max_waiting
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight = 0
        self._decoy: str | None = None

    async def _run(self, function: Callable[..., T], *args: str) -> T:
        if self._in_flight >= self.workers + self.max_waiting:
            raise Unavailable("too many password checks in progress; retry in a moment")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, function, *args)
        finally:
            self._in_flight -= 1

    async def hash(self, password: str) -> str:
        """The PHC string of a new argon2id hash of ``password`` (with a fresh salt)."""
        return await self._run(self.hasher.hash, password)

    async def verify(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches the PHC string ``stored``."""
        return await self._run(self._verify, stored, password)

    async def verify_decoy(self, password: str) -> bool:
        """Spend the time of a verification and return False: the answer for an unknown
        name, which must take as long as a wrong password for a known one."""
        if self._decoy is None:
            self._decoy = await self.hash(secrets.token_urlsafe(32))
        await self.verify(self._decoy, password)
        return False

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except VerifyMismatchError:
            return False
        except InvalidHashError:
            log.error("a stored password hash is not an argon2 hash; that login fails")
            return False
        except VerificationError:
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than this hasher's."""
        try:
            return self.hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def close(self) -> None:
        """Stop the threads once the calls in progress finish; queued ones are cancelled."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _measure(runs: int = 21) -> None:
    """Print the median time of one verification with the default parameters."""
    import statistics
    import time

    hasher = PasswordHasher()
    stored = hasher.hash("correct horse battery staple")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        hasher.verify(stored, "correct horse battery staple")
        times.append(time.perf_counter() - start)
    print(f"argon2id verify (m={hasher.memory_cost} KiB, t={hasher.time_cost}, "
          f"p={hasher.parallelism}): median {statistics.median(times) * 1000:.1f} ms, "
          f"min {min(times) * 1000:.1f} ms over {runs} runs")


if __name__ == "__main__":
    _measure()
