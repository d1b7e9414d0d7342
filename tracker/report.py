"""Bad-input messages as `file:line: reason`, each said once."""

from __future__ import annotations

import logging
import sys
from typing import TextIO


class Reporter:
    """Says each bad line once. Commands pass their logger (the common stderr format);
    tests and benchmarks may pass a stream instead, to read or silence the messages."""

    def __init__(self, stream: TextIO | None = None, log: logging.Logger | None = None) -> None:
        self.stream = stream
        self.log = log
        self._seen: set[tuple[str, int, str]] = set()
        self.count = 0
        self.by_file: dict[str, int] = {}

    def _say(self, level: int, message: str) -> None:
        if self.log is not None and self.stream is None:
            self.log.log(level, "%s", message)
        else:
            print(message, file=self.stream or sys.stderr, flush=True)

    def bad(self, file: str, line: int, reason: str) -> None:
        key = (file, line, reason)
        if key in self._seen:
            return
        self._seen.add(key)
        self.count += 1
        self.by_file[file] = self.by_file.get(file, 0) + 1
        self._say(logging.WARNING, f"{file}:{line}: {reason}")

    def info(self, message: str) -> None:
        self._say(logging.INFO, message)

    def error(self, message: str) -> None:
        self._say(logging.ERROR, message)
