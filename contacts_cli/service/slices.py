"""Long work in slices: the event loop gets the CPU back every few milliseconds.

The domain writes work that may take long (the first search of a large user, a search whose
terms interleave) as *steps*, a generator that yields between small pieces of work (see
:mod:`contacts_cli.domain.search_index`). :func:`run_in_slices` runs those steps and, once
:data:`SLICE_SECONDS` have passed since it last did, yields to the event loop, so one request
never holds it for longer than a slice plus one step (the service's aim: about 20 ms). The
reads of the journal (:mod:`contacts_cli.backends.past`) use a :class:`Slicer` for the same.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TypeVar

from contacts_cli.domain import Steps

T = TypeVar("T")

SLICE_SECONDS = 0.005
"""How long work may hold the event loop before it yields (a step may overrun it a little)."""


class Slicer:
    """Counts time since the event loop last ran; ``await tick()`` yields once it is due."""

    __slots__ = ("_budget", "_due")

    def __init__(self, budget: float = SLICE_SECONDS) -> None:
        self._budget = budget
        self._due = perf_counter() + budget

    async def tick(self) -> None:
        if perf_counter() >= self._due:
            await asyncio.sleep(0)
            self._due = perf_counter() + self._budget


async def run_in_slices(steps: Steps[T], budget: float = SLICE_SECONDS) -> T:
    """The value of ``steps``, run to the end with a yield to the loop every ``budget``."""
    slicer = Slicer(budget)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await slicer.tick()
