"""Supervision guarantees the other tests let through (mutants of ``actors/supervision.py``;
``make mutation MODULES=supervision``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from actors import ActorSystem, Context, Decision, Escalation, dispatch, spawn
from tests.actors.conftest import eventually


class Boom(Exception):
    """The fault the tests inject."""


def failing(state: int, msg: Any, ctx: Context) -> int:
    raise Boom(str(msg))


async def test_an_escalation_reaches_each_parent_up_the_chain_unaltered(
    system: ActorSystem,
) -> None:
    """An Escalation is a frozen value: it travels up the chain (wrapped by each parent that
    escalates further), so no parent's on_crash may rewrite what the child reported."""
    seen: list[Escalation] = []
    refused: list[BaseException] = []

    def tamper(msg: object, error: BaseException, ctx: Context) -> Decision:
        assert isinstance(msg, Escalation)
        seen.append(msg)
        try:
            msg.msg = "rewritten"  # type: ignore[misc]
        except dataclasses.FrozenInstanceError as refusal:
            refused.append(refusal)
        return Decision.STOP_CHILD

    parent = spawn(system, failing, "parent", initial_state=0, on_crash=tamper)
    child = spawn(
        parent, failing, "child", initial_state=0, on_crash=lambda m, e, c: Decision.ESCALATE
    )
    dispatch(child, "original")
    await eventually(lambda: len(seen) == 1)
    assert seen[0].msg == "original" and seen[0].child == child
    assert len(refused) == 1
