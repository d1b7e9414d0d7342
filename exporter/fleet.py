"""One exporter for a fleet: a collector per gateway (tracker.fleet), every series labelled
with its gateway. Gateways are looked up again at each scrape, so a new gateway directory
shows up without a restart; a single root is one gateway (named by LUMEN_GATEWAY)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from prometheus_client.core import Metric

from exporter.collector import LumenCollector
from exporter.sources import DataRoot
from tracker.fleet import gateways
from tracker.report import Reporter
from tracker.settings import Settings

GATEWAY_LABEL = "gateway"


class FleetCollector:
    """The Collector the registry holds: merges each gateway's families into one family per
    name (the exposition allows a name once), adding the gateway label to every sample."""

    def __init__(self, s: Settings, rep: Reporter,
                 make: Callable[[DataRoot], LumenCollector] = LumenCollector) -> None:
        self.s = s
        self.rep = rep
        self.make = make
        self.collectors: dict[str, LumenCollector] = {}
        self.lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []  # families depend on the files; nothing to check at registration

    def _collector(self, name: str, root) -> LumenCollector:
        c = self.collectors.get(name)
        if c is None or c.root.settings.root != root:
            c = self.make(DataRoot(replace(self.s, root=root), self.rep))
            self.collectors[name] = c
        return c

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            found = gateways(self.s.root)
            for gone in self.collectors.keys() - {gw.name for gw in found}:
                del self.collectors[gone]
            merged: dict[str, Metric] = {}
            for gw in found:
                for fam in self._collector(gw.name, gw.root).collect():
                    out = merged.get(fam.name)
                    if out is None:
                        out = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type,
                                                        fam.unit)
                    for sample in fam.samples:
                        out.add_sample(sample.name, {GATEWAY_LABEL: gw.name, **sample.labels},
                                       sample.value, sample.timestamp)
        yield from merged.values()
