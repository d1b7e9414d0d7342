"""Dashboards as code: builders for the Grafana dashboards under grafana/dashboards/."""
