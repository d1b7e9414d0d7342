"""The two Prometheus configurations: promtool accepts them, and the long-term one is the
default one plus remote_write to the `longterm` profile's store (and a scrape of it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "prometheus" / "prometheus.yml"
LONGTERM = REPO / "prometheus" / "prometheus-longterm.yml"
STORE = "victoriametrics"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compose() -> dict:
    return _load(REPO / "compose.yaml")


def test_promtool_accepts_both(promtool: str) -> None:
    for path in (CONFIG, LONGTERM):
        out = subprocess.run([promtool, "check", "config", "--syntax-only", str(path)],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, f"{path.name}: {out.stdout}{out.stderr}"


def test_long_term_config_is_the_default_one_plus_remote_write_to_the_store() -> None:
    base, longterm = _load(CONFIG), _load(LONGTERM)
    (remote,) = longterm.pop("remote_write")
    jobs = longterm["scrape_configs"]
    store_jobs = [job for job in jobs if job["job_name"] == STORE]
    assert len(store_jobs) == 1
    jobs.remove(store_jobs[0])
    # Anything else changed in one file and not the other would make the stack behave
    # differently with the store on.
    assert longterm == base
    service = _compose()["services"][STORE]
    port = next(a.split("=:")[1] for a in service["command"] if a.startswith("-httpListenAddr"))
    assert remote["url"] == f"http://{STORE}:{port}/api/v1/write"
    assert store_jobs[0]["static_configs"] == [{"targets": [f"{STORE}:{port}"]}]


def test_the_store_runs_only_in_the_longterm_profile_and_prometheus_defaults_to_no_store():
    services = _compose()["services"]
    profiled = {name for name, s in services.items() if s.get("profiles")}
    assert profiled == {STORE, "longterm-init"}
    assert all(services[name]["profiles"] == ["longterm"] for name in profiled)
    volumes = services["prometheus"]["volumes"]
    assert "${LUMEN_PROMETHEUS_CONFIG:-./prometheus/prometheus.yml}:" \
        "/etc/prometheus/prometheus.yml:ro" in volumes
    # The store's volume is handed to its user before it starts.
    assert services[STORE]["depends_on"] == {
        "longterm-init": {"condition": "service_completed_successfully"}
    }
    assert services[STORE]["user"] == services["longterm-init"]["user"] == "65534:65534"


def test_env_example_turns_on_the_profile_and_its_config_together() -> None:
    lines = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    profile = lines.index("# COMPOSE_PROFILES=longterm")
    assert lines[profile + 1] == (
        "# LUMEN_PROMETHEUS_CONFIG=./prometheus/" + LONGTERM.name
    )
