"""Instants as the journal and the API write them: UTC, microseconds, never a naive one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contacts_cli.domain.model import format_timestamp, parse_timestamp

T0 = datetime(2026, 12, 4, 23, 20, 6, 367629, tzinfo=UTC)


def test_an_instant_in_utc_is_written_with_microseconds() -> None:
    assert format_timestamp(T0) == "2026-12-04T23:20:06.367629+00:00"
    assert format_timestamp(T0.replace(microsecond=0)) == "2026-12-04T23:20:06.000000+00:00"


def test_each_instant_gets_its_own_text_whatever_was_formatted_before() -> None:
    """The last instant is remembered by identity: an equal or a later one must not get its
    text, and going back to an earlier one gives that one's text again."""
    later = T0 + timedelta(microseconds=1)
    assert format_timestamp(T0) != format_timestamp(later)
    assert format_timestamp(later) == "2026-12-04T23:20:06.367630+00:00"
    assert format_timestamp(T0) == "2026-12-04T23:20:06.367629+00:00"
    twin = datetime(2026, 12, 4, 23, 20, 6, 367629, tzinfo=UTC)
    assert format_timestamp(twin) == format_timestamp(T0)


@pytest.mark.parametrize("zone", [timezone(timedelta(hours=2)), ZoneInfo("Europe/Paris"),
                                  ZoneInfo("UTC"), timezone(timedelta(0))])
def test_an_instant_in_another_zone_is_written_as_the_same_instant_in_utc(
    zone: timezone | ZoneInfo,
) -> None:
    local = T0.astimezone(zone)
    assert format_timestamp(local) == "2026-12-04T23:20:06.367629+00:00"
    assert parse_timestamp(format_timestamp(local)) == T0


def test_a_naive_instant_is_refused_even_right_after_an_aware_one() -> None:
    format_timestamp(T0)
    with pytest.raises(ValueError, match="has no timezone"):
        format_timestamp(T0.replace(tzinfo=None))


@given(st.datetimes(timezones=st.just(UTC)))
def test_the_text_is_isoformat_with_microseconds_for_any_instant_in_utc(value: datetime) -> None:
    """Whichever way it is written (orjson for a fraction of a second, ``isoformat`` on the
    whole second), the text is the reference's, and it reads back as the same instant."""
    assert format_timestamp(value) == value.isoformat(timespec="microseconds")
    assert parse_timestamp(format_timestamp(value)) == value
