"""Shared helpers: a deterministic id source and clock for the functional core."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ids(prefix: str = "id") -> Callable[[], str]:
    counter: Iterator[int] = count(1)
    return lambda: f"{prefix}-{next(counter):05d}"


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def new_id() -> Callable[[], str]:
    return ids()
