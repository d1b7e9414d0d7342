"""Committed copies of whole outputs (tests/golden/): compared in full, rewritten on request.

After an intended change, `LUMEN_UPDATE_GOLDEN=1 python3 -m pytest TEST_FILE` rewrites the
copies its tests compare with; their diff is then reviewed like code.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR = Path(__file__).parent / "golden"


def matches(name: str, text: str) -> None:
    """Asserts that `text` is tests/golden/NAME (after rewriting it, when asked to)."""
    path = DIR / name
    if os.environ.get("LUMEN_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), (
        f"tests/golden/{name} differs: if the change is intended, rerun the test with "
        "LUMEN_UPDATE_GOLDEN=1 and review the diff")
