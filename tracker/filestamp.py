"""What tells that a file changed between two looks: its identity (inode), size and mtime."""

from __future__ import annotations

import os
from pathlib import Path

Stamp = tuple[int, int, int]


def file_stamp(path: Path) -> Stamp | None:
    """(inode, size, mtime_ns), or None when the file cannot be stat'ed (missing)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
