"""Command batching against one-at-a-time processing, on generated command sequences.

Hypothesis generates sequences of writes, two-event writes, reads, handlers that raise
(before or after persisting) and writes the engine refuses (injected failures, nothing
written), queued all at once. The batched actor must give:

* for every command not in a failed append: the reply one-at-a-time processing gives;
* for every command in a failed append: the failure, and nothing of it in the journal;
* the journal of one-at-a-time processing of the same sequence in which each command of a
  failed append is replaced by one that fails before persisting (its callers got a
  failure, the actor recovered: exactly what one-at-a-time gives for such a command).

And every failed append holds a poisoned write, every poisoned write fails, the commands of
one failed append are consecutive and at most ``max_batch`` (twice that with pipelining:
the batch decided while it was in flight fails with it), and batching never costs more
appends than one at a time (besides the failed ones). Each example runs without and with
pipelining.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import ActorSystem, query, spawn_actor
from tests.actors.batching_support import CountingEngine, Ledger, T, ask_all, journal_of

WRITE_FAILED = ("crashed", "InjectedWriteFailure")

commands = st.one_of(
    st.tuples(st.just("w"), st.integers(0, 9)),
    st.tuples(st.just("ww"), st.integers(0, 9), st.integers(0, 9)),
    st.just(("r",)),
    st.just(("boom",)),
    st.tuples(st.just("boom_after"), st.integers(0, 9)),
    st.tuples(st.just("poison"), st.integers(0, 9)),
)


async def run(sequence: list[Any], max_batch: int,
              pipeline: bool = False) -> tuple[list[object], list[Any], int]:
    engine = CountingEngine()
    async with ActorSystem("model", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch, pipeline=pipeline))
        await query(ref, ("r",), T)  # recovered and idle: the whole sequence queues at once
        replies = await ask_all(ref, sequence)
    return replies, await journal_of(engine), engine.appends


def failed_groups(replies: list[object]) -> list[list[int]]:
    """The positions of the commands that got the injected failure, in consecutive runs."""
    groups: list[list[int]] = []
    for index, reply in enumerate(replies):
        if reply == WRITE_FAILED:
            if groups and groups[-1][-1] == index - 1:
                groups[-1].append(index)
            else:
                groups.append([index])
    return groups


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=st.lists(commands, min_size=1, max_size=40), max_batch=st.integers(2, 9),
       pipeline=st.booleans())
def test_batched_processing_is_one_at_a_time_processing(
    sequence: list[Any], max_batch: int, pipeline: bool
) -> None:
    batched, batched_journal, batched_appends = asyncio.run(run(sequence, max_batch, pipeline))
    write_failed = {i for i, reply in enumerate(batched) if reply == WRITE_FAILED}
    poisoned = {i for i, command in enumerate(sequence) if command[0] == "poison"}
    assert poisoned <= write_failed
    per_failure = max_batch * (2 if pipeline else 1)
    for group in failed_groups(batched):  # failed appends back to back make one run
        poisons = sum(i in poisoned for i in group)
        assert poisons >= 1 and len(group) <= poisons * per_failure, (group, sequence)

    reference = [("boom",) if i in write_failed else c for i, c in enumerate(sequence)]
    one_at_a_time, journal, appends = asyncio.run(run(reference, 1))
    expected = [WRITE_FAILED if i in write_failed else r for i, r in enumerate(one_at_a_time)]
    assert batched == expected
    assert batched_journal == journal
    assert batched_appends <= appends + len(poisoned)
