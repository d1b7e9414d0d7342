"""One exporter for a fleet: a collector per gateway (tracker.fleet), every series labelled
with its gateway. Gateways are looked up again at each scrape, so a new gateway directory
shows up without a restart; a single root is one gateway (named by LUMEN_GATEWAY).

A scrape of 50 gateways is tens of thousands of series; formatting them is most of its
cost, and most of them (per rule, per recent change) change only when a gateway's effects
or history do. `exposition()` keeps each gateway's text of those families until then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from exporter.collector import Derived, LumenCollector, duration
from exporter.sources import DataRoot
from tracker.fleet import gateways
from tracker.report import Reporter
from tracker.settings import Settings

GATEWAY_LABEL = "gateway"


def _labelled(fam: Metric, gateway: str) -> Metric:
    out = Metric(fam.name, fam.documentation, fam.type, fam.unit)
    for sample in fam.samples:
        out.add_sample(sample.name, {GATEWAY_LABEL: gateway, **sample.labels}, sample.value,
                       sample.timestamp)
    return out


class _Families:
    """A registry-like holder, so prometheus_client formats exactly these families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _texts(families: list[Metric]) -> list[tuple[str, str, str]]:
    """(name, header lines, sample lines) of each family, as the exposition writes them."""
    out = []
    for fam in families:
        help_line, type_line, samples = generate_latest(_Families([fam])).decode(
            "utf-8").split("\n", 2)
        out.append((fam.name, f"{help_line}\n{type_line}\n", samples))
    return out


class FleetCollector:
    """The Collector the registry holds: merges each gateway's families into one family per
    name (the exposition allows a name once), adding the gateway label to every sample."""

    def __init__(self, s: Settings, rep: Reporter,
                 make: Callable[[DataRoot], LumenCollector] = LumenCollector) -> None:
        self.s = s
        self.rep = rep
        self.make = make
        self.collectors: dict[str, LumenCollector] = {}
        # gateway -> (the Derived its text was built from, that text)
        self._derived_text: dict[str, tuple[Derived, list[tuple[str, str, str]]]] = {}
        self.lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []  # families depend on the files; nothing to check at registration

    def _found(self) -> list[tuple[str, LumenCollector]]:
        found = gateways(self.s.root)
        for gone in self.collectors.keys() - {gw.name for gw in found}:
            del self.collectors[gone]
            self._derived_text.pop(gone, None)
        return [(gw.name, self._collector(gw.name, gw.root)) for gw in found]

    def _collector(self, name: str, root: Path) -> LumenCollector:
        c = self.collectors.get(name)
        if c is None or c.root.settings.root != root:
            c = self.make(DataRoot(replace(self.s, root=root), self.rep))
            self.collectors[name] = c
        return c

    def collect(self) -> Iterator[Metric]:
        """Every family, built anew (what tests and generate_latest read)."""
        merged: dict[str, Metric] = {}
        with self.lock:
            for name, c in self._found():
                started = time.perf_counter()
                with c.lock:
                    d = c.refresh()
                    families = [*c.live_families(d), duration(started), *c.derived_families(d)]
                for fam in families:
                    out = merged.setdefault(fam.name, Metric(fam.name, fam.documentation,
                                                             fam.type, fam.unit))
                    out.samples.extend(_labelled(fam, name).samples)
        yield from merged.values()

    def exposition(self) -> bytes:
        """The text exposition of collect(), with each gateway's effect and history
        families formatted once per change of its files rather than once per scrape."""
        headers: dict[str, str] = {}
        samples: dict[str, list[str]] = {}
        with self.lock:
            for name, c in self._found():
                started = time.perf_counter()
                with c.lock:
                    d = c.refresh()
                    live = c.live_families(d)
                    cached = self._derived_text.get(name)
                    if cached is None or cached[0] is not d:
                        fams = [_labelled(f, name) for f in c.derived_families(d)]
                        cached = self._derived_text[name] = (d, _texts(fams))
                live.append(duration(started))
                for fam, header, text in [*_texts([_labelled(f, name) for f in live]),
                                          *cached[1]]:
                    headers.setdefault(fam, header)
                    samples.setdefault(fam, []).append(text)
        return "".join(headers[f] + "".join(samples[f]) for f in headers).encode("utf-8")


class FleetRegistry(CollectorRegistry):
    """The exporter's registry: its one collector is the fleet's, and it offers the cached
    text exposition to the HTTP server (exporter.server.exposition)."""

    def __init__(self, fleet: FleetCollector) -> None:
        super().__init__(auto_describe=False)
        self.fleet = fleet
        self.register(fleet)

    def exposition(self) -> bytes:
        return self.fleet.exposition()
