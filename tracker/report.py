"""Bad-input messages as `file:line: reason`, each said once."""

from __future__ import annotations

import sys
from typing import TextIO


class Reporter:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._seen: set[tuple[str, int, str]] = set()
        self.count = 0
        self.by_file: dict[str, int] = {}

    def bad(self, file: str, line: int, reason: str) -> None:
        key = (file, line, reason)
        if key in self._seen:
            return
        self._seen.add(key)
        self.count += 1
        self.by_file[file] = self.by_file.get(file, 0) + 1
        print(f"{file}:{line}: {reason}", file=self.stream or sys.stderr, flush=True)

    def info(self, message: str) -> None:
        print(message, file=self.stream or sys.stderr, flush=True)
