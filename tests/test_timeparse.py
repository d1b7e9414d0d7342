"""tracker.timeparse: microseconds both ways, zones, and the bisect keys of fixed layouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tracker.timeparse import FixedFormat, TimeParser, from_us, parse_zone, signatures, to_us

KST = timezone(timedelta(hours=9))
T0 = datetime(2025, 10, 23, 13, 10, tzinfo=KST)


@pytest.mark.parametrize("text, offset", [
    ("+09:00", 9 * 60), ("-05:30", -330), ("UTC+0100", 60), ("0930", None), ("UTC", 0),
    ("z", 0), ("utc", 0), ("Asia/Seoul", 9 * 60), ("Nowhere/City", None), ("", None),
])
def test_parse_zone(text, offset):
    if offset is None:
        with pytest.raises(ValueError, match="unknown time zone"):
            parse_zone(text)
    else:
        assert parse_zone(text).utcoffset(T0.replace(tzinfo=None)) == timedelta(minutes=offset)


def test_from_us_and_to_us_are_inverse_and_keep_the_zone():
    us = to_us(T0)
    assert us == int(T0.timestamp()) * 1_000_000
    back = from_us(us, KST)
    assert back == T0 and back.utcoffset() == timedelta(hours=9)
    assert from_us(us + 1) == T0 + timedelta(microseconds=1)
    assert from_us(us).utcoffset() == timedelta(0)


def test_parser_naive_zone_and_forms():
    tp = TimeParser(KST)
    assert tp.parse(" 2025-10-23T13:10:00+09:00 ") == to_us(T0)
    assert not tp.saw_naive
    assert tp.parse("20251023T131000+0900") == to_us(T0)
    assert tp.parse("2025-296T13:10:00+09:00") == to_us(T0)  # an ordinal date: dateutil's
    assert tp.parse("2025-10-23T13:10:00") == to_us(T0) and tp.saw_naive
    for bad in ("", "  ", "yesterday"):
        with pytest.raises(ValueError):
            tp.parse(bad)


@pytest.mark.parametrize("ts, sep, digits, suffix, offset", [
    ("2025-10-23T13:10:00.123Z", "T", 3, "Z", 0),
    ("2025-10-23 13:10:00+09:00", " ", 0, "+09:00", 9 * 60),
    ("2025-10-23T13:10:00.123456-05:00", "T", 6, "-05:00", -300),
])
def test_fixed_format_of(ts, sep, digits, suffix, offset):
    fmt = FixedFormat.of(ts)
    assert (fmt.width, fmt.sep, fmt.digits, fmt.suffix) == (len(ts), sep, digits, suffix)
    assert fmt.zone.utcoffset(None) == timedelta(minutes=offset)
    assert fmt.signature() == (sep, suffix + ",")
    line = ts + ",1,2"
    assert list(signatures(fmt, [line, line])) == [(sep, suffix + ",")] * 2


@pytest.mark.parametrize("ts", ["2025-10-23T13:10:00.1234567Z", "2025-10-23T13:10:00",
                                "2025-10-23T13:10Z", "x2025-10-23T13:10:00Z"])
def test_fixed_format_of_other_layouts_is_none(ts):
    assert FixedFormat.of(ts) is None


@given(us=st.integers(0, 4_000_000_000_000_000), digits=st.integers(0, 6),
       suffix=st.sampled_from(["Z", "+09:00", "-05:30"]), lower=st.booleans())
@example(us=to_us(T0), digits=3, suffix="+09:00", lower=True)  # exactly on the grid
@example(us=to_us(T0) + 1, digits=3, suffix="+09:00", lower=True)  # 1 us past it
@example(us=to_us(T0) + 999, digits=3, suffix="Z", lower=False)
def test_key_is_the_nearest_grid_time_inside_the_bound(us, digits, suffix, lower):
    frac = "." + "0" * digits if digits else ""
    fmt = FixedFormat.of(f"2025-10-23T13:10:00{frac}{suffix}")
    key = fmt.key(us, lower)
    assert len(key) == fmt.width and FixedFormat.of(key) == fmt
    got = TimeParser(UTC).parse(key)
    step = 10 ** (6 - digits)
    assert got % step == 0
    if lower:
        assert us <= got < us + step
    else:
        assert us - step < got <= us
