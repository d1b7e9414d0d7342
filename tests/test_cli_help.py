"""Each command's --help against a committed copy: the help is the reference people read at
the terminal, so a changed flag, default or sentence should be seen in review. After an
intended change:

    LUMEN_UPDATE_GOLDEN=1 python3 -m pytest tests/test_cli_help.py

and read the diff of tests/golden/help-*.txt.
"""

from __future__ import annotations

import pytest

import exporter.cli
import tracker.cli
import tracker.runbook
from tests.golden import matches


@pytest.mark.parametrize("module", [tracker.cli, exporter.cli, tracker.runbook],
                         ids=lambda m: m.__name__)
def test_help_is_the_committed_one(module, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to the terminal's width
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    prog = module.PROG
    assert text.startswith(f"usage: {prog} ")
    matches(f"help-{prog}.txt", text)
