"""pyproject.toml is the list of runtime dependencies: the images install exactly those (as
Debian packages, for the air-gapped build), and each one is imported by the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# PyPI name -> (Debian bookworm package, import name). A new dependency needs a line here,
# which is the reminder to add it to the Dockerfile and scripts/build-images.sh too.
DEBIAN = {
    "prometheus-client": ("python3-prometheus-client", "prometheus_client"),
    "python-dateutil": ("python3-dateutil", "dateutil"),
    "pyyaml": ("python3-yaml", "yaml"),
    "numpy": ("python3-numpy", "numpy"),
    "scipy": ("python3-scipy", "scipy"),
    "bcrypt": ("python3-bcrypt", "bcrypt"),
}
# What the images need besides the libraries: the interpreter and the zone database.
BASE = {"python3", "tzdata"}
SHIPPED = ("tracker", "exporter", "demo")  # the packages the image copies


# Optional extras the image ships too (basic auth in the exporter's web config).
IMAGE_EXTRAS = ("web",)


def _runtime() -> dict[str, tuple[str, str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    deps = [*project["dependencies"],
            *(d for extra in IMAGE_EXTRAS for d in project["optional-dependencies"][extra])]
    names = [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in deps]
    unknown = [n for n in names if n not in DEBIAN]
    assert not unknown, f"no Debian package known for {unknown}: add it to DEBIAN"
    return {n: DEBIAN[n] for n in names}


def test_the_dockerfile_installs_the_runtime_dependencies_and_nothing_else():
    text = (REPO / "Dockerfile").read_text("utf-8")
    # The package names follow `apt-get install ... \` up to the `&&` that ends the command.
    install = re.search(r"apt-get install[^\n]*\\\n(.*?)&&", text, re.S).group(1).split()
    install = [w for w in install if w != "\\"]
    assert set(install) == BASE | {deb for deb, _ in _runtime().values()}
    check = re.search(r"-c 'import ([^;]+);", text).group(1)
    assert {m.strip() for m in check.split(",")} == {"zoneinfo"} | {
        mod for _, mod in _runtime().values()}


def test_the_airgapped_base_holds_the_same_packages():
    text = (REPO / "scripts" / "build-images.sh").read_text("utf-8")
    packages = re.search(r'rootfs "\$workdir/python\.tar" apt \\\n\s*(\S+)', text).group(1)
    assert set(packages.split(",")) == BASE | {deb for deb, _ in _runtime().values()}


def test_every_runtime_dependency_is_imported_by_the_shipped_code():
    source = "\n".join(p.read_text("utf-8") for pkg in SHIPPED
                       for p in (REPO / pkg).rglob("*.py"))
    for name, (_, module) in _runtime().items():
        assert re.search(rf"^\s*(import|from) {module}\b", source, re.M), (
            f"{name} is a dependency that no shipped module imports")
