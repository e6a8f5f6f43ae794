"""The errors of cluster placement; both derive from the engine's :class:`PersistenceError`.

They live here until ``persistence/errors.py`` takes them in (one error vocabulary per layer).
"""

from __future__ import annotations

from persistence.errors import PersistenceError


class LeaseLost(PersistenceError):
    """A write or a release named a lease that is no longer held: another instance took the
    user over (a higher epoch), the lease was released, or its owner's registration expired.

    Nothing was written for this key. The activation that sees this must stop at once and
    must not answer from memory again: the user's owner is elsewhere now.
    """

    def __init__(self, key: str, owner: str, epoch: int, action: str = "write") -> None:
        super().__init__(
            f"{action} for {key!r} refused: instance {owner!r} no longer holds its lease at "
            f"epoch {epoch} (taken over, released, or the instance's registration expired)"
        )
        self.key = key
        self.owner = owner
        self.epoch = epoch


class MembershipLost(PersistenceError):
    """This instance may take no user: its registration expired, was removed, or it drains.

    An expired registration is never renewed again ("dead is dead"): the process must stop
    serving every user it hosts and register anew, under a new instance id.
    """

    def __init__(self, instance_id: str, reason: str) -> None:
        super().__init__(f"instance {instance_id!r} may take no user: {reason}")
        self.instance_id = instance_id
        self.reason = reason
