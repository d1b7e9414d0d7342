"""controls/rules_history.jsonl: one rule change a line, read incrementally from an offset."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tracker.report import Reporter
from tracker.timeparse import TimeParser


@dataclass(frozen=True)
class RuleEvent:
    ts: str  # as written, the rule_ts column
    t_us: int
    actor: str
    rule: str
    old: str
    new: str
    note: str
    line: int

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What makes two lines the same event; rules_effects.csv holds exactly these."""
        return (self.ts, self.actor, self.rule, self.old, self.new)


def value_text(v: object) -> str | None:
    """old/new as text for the CSV: numbers as JSON writes them, strings as they are."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return json.dumps(v) if math.isfinite(v) else None
    if isinstance(v, str):
        return v
    return None


def parse_line(raw: bytes, name: str, lineno: int, tp: TimeParser, rep: Reporter):
    """One jsonl line to a RuleEvent, or None after reporting why it was left out."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        rep.bad(name, lineno, f"not valid UTF-8 (byte {e.start}); line skipped")
        return None
    text = text.lstrip("\ufeff").strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        rep.bad(name, lineno, f"malformed JSON ({e.msg} at column {e.colno}); line skipped")
        return None
    except ValueError as e:  # an integer of thousands of digits
        rep.bad(name, lineno, f"unreadable JSON ({e}); line skipped")
        return None
    except RecursionError:
        rep.bad(name, lineno, "JSON nested too deep to read; line skipped")
        return None
    if not isinstance(obj, dict):
        rep.bad(name, lineno, "not a JSON object; line skipped")
        return None
    ts = obj.get("ts")
    if not isinstance(ts, str) or not ts.strip():
        rep.bad(name, lineno, "missing ts; line skipped")
        return None
    try:
        t_us = tp.parse(ts)
    except (ValueError, OverflowError):
        rep.bad(name, lineno, f"invalid ts {ts!r} (want ISO 8601 with offset); line skipped")
        return None
    rule = obj.get("rule")
    if not isinstance(rule, str) or not rule:
        rep.bad(name, lineno, "missing rule; line skipped")
        return None
    actor = obj.get("actor")
    if not isinstance(actor, str):
        rep.bad(name, lineno, "missing actor; kept with an empty actor")
        actor = ""
    values = []
    for field in ("old", "new"):
        v = value_text(obj.get(field))
        if v is None:
            what = "missing" if obj.get(field) is None else "not a number or string"
            rep.bad(name, lineno, f"{field} {what}; kept with an empty {field}")
            v = ""
        values.append(v)
    note = obj.get("note")
    fields = [ts, actor, rule, values[0], values[1], note if isinstance(note, str) else ""]
    clean = [_writable(f) for f in fields]
    if clean != fields:
        rep.bad(name, lineno, "text with a lone surrogate or a carriage return; kept with "
                "U+FFFD and a newline in their place")
    return RuleEvent(clean[0], t_us, *clean[1:], lineno)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _writable(text: str) -> str:
    """The text as rules_effects.csv can hold it and give back unchanged.

    JSON may carry lone surrogates ("\\ud800"), which UTF-8 cannot encode, and a bare
    carriage return, which Python's csv writer leaves unquoted so a reader splits the row
    there. Both are replaced, the same way on every run, so the event's key stays stable.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        text = _SURROGATE.sub("\ufffd", text)
    return text


class HistoryReader:
    """Reads complete lines appended since the last call; a file that shrank is read anew."""

    def __init__(self, path: Path, tp: TimeParser, rep: Reporter) -> None:
        self.path = path
        self.tp = tp
        self.rep = rep
        self.offset = 0
        self.lineno = 0
        self.ino: int | None = None
        self.exists = False
        self.generation = 0  # counts restarts from the top (file replaced or truncated)
        # Set when a last line without its newline was taken because it parsed whole.
        self._took_unterminated = False

    def read_new(self) -> list[RuleEvent]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.exists = False
            return []
        self.exists = True
        if st.st_ino != self.ino or st.st_size < self.offset:
            self.ino, self.offset, self.lineno = st.st_ino, 0, 0
            self._took_unterminated = False
            self.generation += 1
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        start = 0
        if self._took_unterminated and data.startswith(b"\n"):
            start = 1  # the newline that ends the line already taken
        self._took_unterminated = False
        end = data.rfind(b"\n") + 1
        lines = data[start:end].split(b"\n")[:-1] if end > start else []
        tail = data[max(end, start):]
        # A last line without its newline may be half written; take it only if it parses
        # as a whole JSON object, as it does when the writer just left the newline off.
        if tail.strip() and _is_json_object(tail):
            lines.append(tail)
            end = len(data)
            self._took_unterminated = True
        events = []
        name = str(self.path)
        for raw in lines:
            self.lineno += 1
            ev = parse_line(raw, name, self.lineno, self.tp, self.rep)
            if ev is not None:
                events.append(ev)
        self.offset += max(end, start)
        return events


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False
