"""Timestamps as integer microseconds since the epoch, so window bounds compare exactly."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from operator import itemgetter
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.parser import isoparse

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{2}):?(\d{2})$")


def parse_zone(text: str) -> tzinfo:
    """A zone from '+09:00', 'UTC' or an IANA name such as 'Asia/Seoul'."""
    text = text.strip()
    if text.upper() in ("UTC", "Z"):
        return UTC
    m = _OFFSET.match(text)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {text!r} (use +HH:MM or an IANA name)") from e


def to_us(dt: datetime) -> int:
    return (dt - EPOCH) // _US


def from_us(us: int, tz: tzinfo = UTC) -> datetime:
    return (EPOCH + timedelta(microseconds=us)).astimezone(tz)


class TimeParser:
    """Parses ISO 8601 timestamps; ones without an offset are read in `naive_zone`.

    `saw_naive` lets the caller log the zone once, when it first matters.
    """

    def __init__(self, naive_zone: tzinfo) -> None:
        self.naive_zone = naive_zone
        self.saw_naive = False

    def parse(self, text: str) -> int:
        s = text.strip()
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            if not s:
                raise
            dt = isoparse(s)  # ISO forms fromisoformat rejects, e.g. '20251023T131000+0900'
        if dt.tzinfo is None:
            self.saw_naive = True
            dt = dt.replace(tzinfo=self.naive_zone)
        return to_us(dt)


_FIXED = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ])\d{2}:\d{2}:\d{2}(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})$"
)


@dataclass(frozen=True)
class FixedFormat:
    """A timestamp layout whose strings sort in time order: same width, same offset.

    Lines that all start with such a timestamp can be searched with bisect on the raw
    strings, so rows outside every window are never parsed.
    """

    width: int
    sep: str
    digits: int
    suffix: str
    zone: tzinfo

    @classmethod
    def of(cls, ts: str) -> FixedFormat | None:
        m = _FIXED.match(ts)
        if not m:
            return None
        suffix = m.group(3)
        zone = UTC if suffix == "Z" else parse_zone(suffix)
        return cls(len(ts), m.group(1), len(m.group(2) or ""), suffix, zone)

    def signature(self) -> tuple:
        """What every line of a matching block has at fixed positions (see `signatures`).

        Equal width, date-time separator and offset are what make string order time
        order (the width fixes where the fraction's '.' is); strict order itself is
        checked by the caller.
        """
        return (self.sep, self.suffix + ",")

    def key(self, us: int, lower: bool) -> str:
        """The timestamp string of the bound `us`, rounded inward to the format's precision."""
        step = 10 ** (6 - self.digits)
        q, r = divmod(us, step)
        if lower and r:
            q += 1
        sec, frac = divmod(q * step, 1_000_000)
        text = _second_text(sec, self.sep, self.zone)
        if self.digits:
            text += "." + f"{frac:06d}"[: self.digits]
        return text + self.suffix


@lru_cache(maxsize=4096)
def _second_text(sec: int, sep: str, zone: tzinfo) -> str:
    # Window bounds of nearby events share seconds; formatting dates is the slow part.
    return from_us(sec * 1_000_000, zone).strftime(f"%Y-%m-%d{sep}%H:%M:%S")


def signatures(fmt: FixedFormat, lines: list[str]) -> Iterator[tuple]:
    """The characters at each line's separator positions, to compare with `signature()`."""
    w, k = fmt.width, len(fmt.suffix)
    return map(itemgetter(10, slice(w - k, w + 1)), lines)
