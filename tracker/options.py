"""What every command shares: the common flags, settings from flags then environment, one
log format on stderr, and the exit codes (SPEC "Commands").

Declared once here (as csvkit does for its tools), so `--root`, the windows and the zone
mean the same in the tracker, the exporter, the demo and the runbook.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from tracker.settings import DEFAULT_NAIVE_ZONE, Settings, resolve

# Exit codes, the same for every command.
DONE = 0
FAILED = 1  # could not do its job (an input that cannot be used, a port taken, ...)
BAD_SETTINGS = 2  # argparse also exits 2 on a bad flag
INTERRUPTED = 130


def common_flags(windows: bool = True) -> argparse.ArgumentParser:
    """A parent parser with --root and, for commands that measure effects, the windows and
    the zone of offset-less timestamps."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--root", help="data root (default: $LUMEN_ROOT, else the current directory)")
    if windows:
        p.add_argument("--pre", type=float, help="pre window seconds ($LUMEN_EFFECT_PRE_S, 30)")
        p.add_argument("--post", type=float,
                       help="post window seconds ($LUMEN_EFFECT_POST_S, 30)")
        p.add_argument("--guard", type=float, help="seconds left out on each side of the "
                       "change ($LUMEN_EFFECT_GUARD_S, 1)")
        p.add_argument("--naive-tz", help="zone for timestamps without an offset "
                       f"($LUMEN_NAIVE_TZ, default {DEFAULT_NAIVE_ZONE}, KST, the teams' habit)")
    return p


class SettingsError(ValueError):
    """A flag or LUMEN_* variable with a value that cannot be used (exit 2)."""


def settings(args: argparse.Namespace) -> Settings:
    """Settings from the common flags, then LUMEN_* variables, then defaults."""
    try:
        return resolve(args.root, getattr(args, "pre", None), getattr(args, "post", None),
                       getattr(args, "guard", None), getattr(args, "naive_tz", None))
    except ValueError as e:
        raise SettingsError(str(e)) from e


class _Format(logging.Formatter):
    """`prog: message`, with the level spelled out when it is not plain information, as
    compilers and git do, so `file:line: reason` lines stay easy to read and grep."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        return f"{record.name}: {text}"


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (pytest swaps it per test)."""

    @property
    def stream(self):  # noqa: D102 - logging's own attribute
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def logger(prog: str) -> logging.Logger:
    """The command's logger, writing to stderr in the common format (once per process)."""
    log = logging.getLogger(prog)
    if not log.handlers:
        handler = _Stderr()
        handler.setFormatter(_Format())
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def run(prog: str, body: Callable[[logging.Logger], int]) -> int:
    """Runs a command's body with the exit codes every command shares: what the body
    returns, 2 for a SettingsError (said on stderr), 130 when interrupted."""
    log = logger(prog)
    try:
        return body(log)
    except SettingsError as e:
        log.error("%s", e)
        return BAD_SETTINGS
    except KeyboardInterrupt:
        return INTERRUPTED
