"""Monitoring as code for scamguard (contract D): Prometheus rules and Grafana dashboards for every target.

``render(config)`` gives the files a Prometheus/Grafana pair needs; ``rule_groups(config)`` and
``dashboards(config)`` give the same content as data for targets that deploy through an API.
"""

from infra.monitoring.config import MonitoringConfig
from infra.monitoring.dashboards import dashboards
from infra.monitoring.render import render, write
from infra.monitoring.rules import alert_names, rule_groups

__all__ = ["MonitoringConfig", "alert_names", "dashboards", "render", "rule_groups", "write"]
