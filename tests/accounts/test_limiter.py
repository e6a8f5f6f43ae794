"""Failed logins are limited per user name and per client address (clock injected)."""

from __future__ import annotations

import pytest

from contacts_cli.accounts.limiter import LoginLimiter, LoginLimits, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_user_is_limited_whatever_address_the_attempts_come_from(clock: Clock) -> None:
    limiter = LoginLimiter(LoginLimits(per_user=3, per_address=100, window=300), clock=clock)
    for n in range(3):
        assert limiter.retry_after("alice", f"192.0.2.{n}") is None
        limiter.failed("alice", f"192.0.2.{n}")
    assert limiter.retry_after("alice", "198.51.100.7") == 100  # one attempt per 100 s
    assert limiter.retry_after("bob", "198.51.100.7") is None
    clock.now = 99.5
    assert limiter.retry_after("alice", "198.51.100.7") == 1
    clock.now = 100.0
    assert limiter.retry_after("alice", "198.51.100.7") is None
    limiter.failed("alice", "198.51.100.7")
    assert limiter.retry_after("alice", "198.51.100.7") == 100


def test_an_address_is_limited_whatever_names_it_tries(clock: Clock) -> None:
    limiter = LoginLimiter(LoginLimits(per_user=100, per_address=4, window=40), clock=clock)
    for n in range(4):
        assert limiter.retry_after(f"user{n}", "203.0.113.9") is None
        limiter.failed(f"user{n}", "203.0.113.9")
    assert limiter.retry_after("someone-else", "203.0.113.9") == 10
    assert limiter.retry_after("someone-else", "203.0.113.10") is None
    limiter.failed(None, "203.0.113.10")  # a name no account can have: counted by address
    assert limiter.retry_after(None, "203.0.113.10") is None


def test_the_allowance_refills_evenly_and_never_beyond_its_size(clock: Clock) -> None:
    limiter = LoginLimiter(LoginLimits(per_user=2, per_address=100, window=60), clock=clock)
    clock.now = 10_000.0  # a long quiet time does not bank more than two attempts
    limiter.failed("alice", "a")
    limiter.failed("alice", "a")
    assert limiter.retry_after("alice", "a") == 30
    clock.now += 60
    limiter.failed("alice", "a")
    limiter.failed("alice", "a")
    assert limiter.retry_after("alice", "a") == 30


def test_the_answer_is_the_same_for_names_with_and_without_accounts(clock: Clock) -> None:
    limiter = LoginLimiter(LoginLimits(per_user=2, per_address=100, window=60), clock=clock)
    for name in ("alice", "no-such-user"):
        limiter.failed(name, "a")
        limiter.failed(name, "b")
    assert limiter.retry_after("alice", "c") == limiter.retry_after("no-such-user", "c") == 30


def test_an_ipv6_client_is_counted_by_its_64_network(clock: Clock) -> None:
    limiter = LoginLimiter(LoginLimits(per_user=100, per_address=2, window=60), clock=clock)
    limiter.failed("a", "2001:db8:1:2::1")
    limiter.failed("b", "2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert limiter.retry_after("c", "2001:db8:1:2::abcd") == 30
    assert limiter.retry_after("c", "2001:db8:1:3::1") is None
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("[2001:db8::1]") == "2001:db8::/64"
    assert address_key(None) == "unknown"
    assert address_key("testclient") == "testclient"


def test_memory_is_bounded_and_refilled_entries_go_first(clock: Clock) -> None:
    limiter = LoginLimiter(LoginLimits(per_user=1, per_address=1000, window=10),
                           clock=clock, max_keys=3)
    limiter.failed("old", "a")
    clock.now = 20.0  # "old" has refilled
    for name in ("u1", "u2", "u3"):
        limiter.failed(name, "a")
    assert limiter.retry_after("u1", "x") == 10
    assert limiter.retry_after("u3", "x") == 10
    limiter.failed("u4", "a")  # over the bound with nothing refilled: the oldest goes
    assert limiter.retry_after("u1", "x") is None
    assert limiter.retry_after("u4", "x") == 10
