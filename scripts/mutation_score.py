"""Per-module mutation scores from mutmut's results, leaving out the equivalent mutants.

Usage: python3 scripts/mutation_score.py [MODULE_PREFIX...]   (run by scripts/mutation.sh)
       python3 scripts/mutation_score.py --retest-alive [MODULE_PREFIX...]
           forgets the verdict on the alive mutants, so that the next run tries them
           against the tests added since (mutmut keeps a verdict once given)
       python3 scripts/mutation_score.py --pending [MODULE_PREFIX...]
           the names of the mutants not yet run (what scripts/mutation.sh passes to mutmut)

score = killed / (mutants run - equivalent), where killed counts the mutants a test failed
on or that ran past mutmut's timeout; equivalent mutants (a change no input can observe)
are listed, with why, in docs/equivalent-mutants.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = REPO / "docs" / "equivalent-mutants.md"
KILLED = {"killed", "timeout", "caught by type check"}
NOT_RUN = {"not checked", "skipped", "check was interrupted by user"}


def equivalent_names(path: Path = EQUIVALENT_FILE) -> set[str]:
    """Mutant names written as `name` at the start of a list item."""
    if not path.exists():
        return set()
    return set(re.findall(r"^- `([^`]+)`", path.read_text(encoding="utf-8"), re.MULTILINE))


def results() -> dict[str, str]:
    out = subprocess.run(
        ["mutmut", "results", "--all", "true"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    return dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+?)\s*$", out, re.MULTILINE))


def module_of(mutant: str) -> str:
    return mutant.split(".x", 1)[0] if ".x" in mutant else mutant.rsplit(".", 1)[0]


def in_scope(module: str, prefixes: list[str]) -> bool:
    return any(not p or module == p or module.startswith(p + ".") for p in prefixes)


ALIVE_CODES = {0, 5, 33}  # survived, no tests (mutmut's exit codes)


def retest_alive(prefixes: list[str]) -> int:
    count = 0
    for meta in (REPO / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text(encoding="utf-8"))
        codes = data["exit_code_by_key"]
        alive = [k for k, c in codes.items()
                 if c in ALIVE_CODES and in_scope(module_of(k), prefixes)]
        for key in alive:
            codes[key] = None
        if alive:
            meta.write_text(json.dumps(data), encoding="utf-8")
            count += len(alive)
    print(f"{count} alive mutants will be tried again")
    return 0


def pending(prefixes: list[str]) -> int:
    """Prints the names of the mutants not yet run (not checked, interrupted or skipped):
    `mutmut run` given a pattern runs every mutant it matches again, given names only those."""
    for meta in (REPO / "mutants").rglob("*.py.meta"):
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        for key, code in codes.items():
            if code in (None, 2, 34) and in_scope(module_of(key), prefixes):
                print(key)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--retest-alive"]:
        return retest_alive(argv[1:] or [""])
    if argv[:1] == ["--pending"]:
        return pending(argv[1:] or [""])
    prefixes = argv or [""]
    equivalent = equivalent_names()
    by_module: dict[str, Counter] = defaultdict(Counter)
    survivors: list[str] = []
    for name, status in sorted(results().items()):
        module = module_of(name)
        if not in_scope(module, prefixes):
            continue
        if status in NOT_RUN:
            by_module[module]["not run"] += 1
        elif name in equivalent:
            by_module[module]["equivalent"] += 1
        elif status in KILLED:
            by_module[module]["killed"] += 1
        else:  # survived, no tests, suspicious, segfault
            by_module[module]["alive"] += 1
            survivors.append(f"{name}: {status}")
    print(f"{'module':28} {'mutants':>7} {'equiv':>5} {'killed':>6} {'alive':>5} {'score':>6}")
    for module, c in sorted(by_module.items()):
        counted = c["killed"] + c["alive"]
        score = f"{100 * c['killed'] / counted:5.1f}%" if counted else "    -"
        total = counted + c["equivalent"]
        note = f"  ({c['not run']} not run)" if c["not run"] else ""
        print(f"{module:28} {total:7} {c['equivalent']:5} {c['killed']:6} {c['alive']:5} "
              f"{score:>6}{note}")
    if survivors:
        print("\nalive (not equivalent; `mutmut show NAME` prints the change):")
        print("\n".join(f"  {s}" for s in survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
