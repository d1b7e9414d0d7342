"""Writes the Lumen dashboards as JSON under grafana/dashboards/, or checks they are current.

python3 grafana/build.py           regenerate the committed JSON
python3 grafana/build.py --check   exit 1 if the committed JSON differs from the code
"""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script, Python puts grafana/ on the path, not the repository root that the
    # grafana.* imports below need.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
from grafana_foundation_sdk.models.dashboard import Dashboard  # noqa: E402

from grafana import fleet, overview, pipeline, rule_history  # noqa: E402

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"

BUILDERS: dict[str, Callable[[], Dashboard]] = {
    "overview.json": overview.build,
    "rule-history.json": rule_history.build,
    "pipeline-health.json": pipeline.build,
    "fleet.json": fleet.build,
}


def render(dashboard: Dashboard) -> str:
    """The dashboard's JSON text; sorted keys and a final newline keep it byte-stable."""
    return (
        json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: render(build()) for name, build in BUILDERS.items()}


def outdated(directory: Path = DASHBOARD_DIR) -> list[str]:
    """Names of the dashboard files in directory that are missing or differ from the code."""
    result = []
    for name, text in rendered().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            result.append(name)
    return result


def write(directory: Path = DASHBOARD_DIR) -> list[Path]:
    """Writes every dashboard's JSON into directory; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text, encoding="utf-8", newline="\n")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Lumen Grafana dashboards.")
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the committed JSON is not what the code builds",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = outdated()
        for name in stale:
            print(f"outdated: grafana/dashboards/{name} (run python3 grafana/build.py)")
        return 1 if stale else 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
