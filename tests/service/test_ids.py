"""User ids and contact ids: the alphabet (without '.' and '..'), and no id shared across fork."""

from __future__ import annotations

import os

import pytest

from contacts_cli.backends.errors import Invalid
from contacts_cli.service.ids import check_user_id, new_contact_id, persistence_id


@pytest.mark.parametrize("user", ["alice", "a.b", "...", ".hidden", "-x_", "A" * 64])
def test_user_ids_in_the_alphabet_are_accepted(user: str) -> None:
    assert check_user_id(user) == user
    assert persistence_id(user) == f"contacts-user/{user}"


@pytest.mark.parametrize("user", [".", "..", "", "a/b", "a b", "é", "A" * 65, "a\n"])
def test_other_user_ids_are_invalid(user: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_user_id(user)
    assert caught.value.errors[0][0] == "user_id"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_draws_the_ids_its_parent_will_draw() -> None:
    new_contact_id()  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ten ids and leave at once
        try:
            os.write(write, " ".join(new_contact_id() for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_contact_id() for _ in range(10)}
    assert len(child) == 10
    assert not child & parent
