"""Prometheus exporter: gateway state, latest signals and rule effects, read at scrape time."""
