"""A seeded random mix of messages, faults, decisions, escalations and stops.

Whatever happens, an actor never runs two of its methods at once, every query settles (a
reply or a typed error, never a hang), and leaving the system stops every actor.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from actors import (
    ActorCrashed,
    ActorNotFound,
    ActorRef,
    ActorSystem,
    Behaviour,
    Context,
    Decision,
    Escalation,
    QueryTimeout,
    dispatch,
    query,
    spawn_behaviour,
    stop,
)
from tests.actors.conftest import eventually
from tests.actors.test_supervision import alive

# Decision and weight: mostly decisions that keep actors alive, so faults keep coming.
OWN = {Decision.STOP: 3, Decision.STOP_ALL: 1, Decision.RESET: 30, Decision.RESET_ALL: 5,
       Decision.RESUME: 40, Decision.ESCALATE: 20}
FOR_ESCALATION = {**OWN, Decision.STOP_CHILD: 5, Decision.STOP_ALL_CHILDREN: 1,
                  Decision.RESET_CHILD: 30, Decision.RESET_ALL_CHILDREN: 5}


class Chaos(Behaviour):
    def __init__(self, rng: random.Random, violations: list[str], refs: list[ActorRef],
                 depth: int, top: bool = False) -> None:
        self.top = top  # a top-level actor never escalates (the root would stop it)
        self.depth = depth
        self.refs = refs
        self.rng = rng
        self.violations = violations
        self.busy = False
        self.total = 0

    def enter(self, what: str, ctx: Context) -> None:
        if self.busy:
            self.violations.append(f"{ctx.path}: {what} while busy")
        self.busy = True

    async def started(self, ctx: Context) -> None:
        self.enter("started", ctx)
        try:
            if ctx.self not in self.refs:
                self.refs.append(ctx.self)
            if self.depth:  # children are (re)created at every start, as after a reset
                for j in range(2):
                    spawn_behaviour(ctx, Chaos(self.rng, self.violations, self.refs,
                                               self.depth - 1), f"c{j}")
            await asyncio.sleep(0)
            if self.rng.random() < 0.05:
                raise RuntimeError("start failed")
        finally:
            self.busy = False

    async def receive(self, msg: object, ctx: Context) -> None:
        self.enter("receive", ctx)
        try:
            if self.rng.random() < 0.5:
                await asyncio.sleep(0)
            if msg == "boom":
                raise RuntimeError("boom")
            if isinstance(msg, int):
                self.total += msg
            if ctx.sender is not None:
                ctx.reply(self.total)
        finally:
            self.busy = False

    def reset(self) -> None:
        if self.busy:
            self.violations.append("reset while busy")
        self.total = 0

    async def stopped(self, ctx: Context, unprocessed: list[object]) -> None:
        self.enter("stopped", ctx)
        self.busy = False

    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        self.enter("on_crash", ctx)
        try:
            await asyncio.sleep(0)
            weights = dict(FOR_ESCALATION if isinstance(msg, Escalation) else OWN)
            if self.top:
                del weights[Decision.ESCALATE]
            return self.rng.choices(list(weights), list(weights.values()))[0]
        finally:
            self.busy = False


@pytest.mark.parametrize("seed", range(8))
async def test_chaos(seed: int) -> None:
    rng = random.Random(seed)
    violations: list[str] = []
    outcomes: list[str] = []
    async with ActorSystem("chaos") as system:
        refs: list[ActorRef] = []
        for i in range(3):
            spawn_behaviour(system, Chaos(rng, violations, refs, 2, top=True), f"top{i}")
        await eventually(lambda: len(refs) >= 3)

        async def ask(ref: ActorRef, msg: object) -> None:
            try:
                await query(ref, msg, 10)
                outcomes.append("reply")
            except ActorCrashed:
                outcomes.append("crashed")
            except ActorNotFound:
                outcomes.append("not found")
            except QueryTimeout:
                outcomes.append("timeout")  # a RESUMEd crash that dropped the query

        queries = []
        for _ in range(2000):
            live = [ref for ref in refs if alive(ref)]
            ref = rng.choice(live if live and rng.random() < 0.9 else refs)
            roll = rng.random()
            msg: object = "boom" if rng.random() < 0.15 else rng.randint(1, 9)
            if roll > 0.995:
                queries.append(asyncio.ensure_future(stop(ref)))
            elif roll > 0.8:
                queries.append(asyncio.ensure_future(ask(ref, msg)))
            else:
                dispatch(ref, msg)
            if rng.random() < 0.2:
                await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(*queries), 30)
    assert violations == []
    assert system.metrics.live_actors == 0
    assert "timeout" not in outcomes  # every query got a reply or a typed error at once
    assert system.metrics.faults > 0 and "reply" in outcomes  # the mix really was exercised
