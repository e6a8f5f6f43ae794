"""Fixtures and bounded-wait helpers for the actor runtime tests (no timed asserts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from actors import ActorSystem


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with ActorSystem("test") as running:
        yield running


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``predicate()`` holds; fail if it still does not after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


async def settle(rounds: int = 20) -> None:
    """Let every ready task run a few times (for asserting that something did NOT happen)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
