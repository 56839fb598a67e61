"""MkDocs hook: the reference tables of the docs are generated from the code at build time.

A page asks for one with a line `<!-- generated: NAME -->`; an unknown NAME fails the build. So the
configuration keys, service settings, metrics, alerts and policy rules in the docs are always the
ones the code has, and never copied by hand.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    from infra.configref import markdown_table

    return markdown_table()


def service_settings() -> str:
    from pydantic import AliasChoices

    from service.settings import Settings

    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env = alias.choices[0] if isinstance(alias, AliasChoices) else f"SCAMGUARD_{name.upper()}"
        default = field.get_default(call_default_factory=True)
        if default in (None, "", ()):
            shown = "*(unset)*"
        else:
            shown = f"`{','.join(default) if isinstance(default, tuple) else default}`"
        rows.append(f"| `{env}` | {shown} | {_cell(field.description or '')} |")
    return "\n".join(rows) + "\n"


def metrics() -> str:
    from prometheus_client.metrics import MetricWrapperBase

    import service.metrics as module

    rows = ["| Metric | Type | Meaning |", "| --- | --- | --- |"]
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            (family, *_) = value.describe()  # typed as an Iterable of one family
            name = family.name + ("_total" if family.type == "counter" else "")
            rows.append(f"| `{name}` | {family.type} | {_cell(family.documentation)} |")
    for name, kind, documentation in module.ADMISSION_METRICS:
        name += "_total" if kind == "counter" else ""
        rows.append(f"| `{name}` | {kind} | {_cell(documentation)} Only with the admission proxy. |")
    return "\n".join(rows) + "\n"


def alerts() -> str:
    from infra.monitoring.config import MonitoringConfig
    from infra.monitoring.rules import alert_rules

    config = MonitoringConfig(
        environment="prod",
        scrape_targets=["api:8080"],
        prometheus_url="http://p:9090",
        alert_on_no_traffic=True,
    )
    rows = ["| Alert (runbook) | Severity | For | Fires when |", "| --- | --- | --- | --- |"]
    for _, group in alert_rules(config):
        for alert in group:
            link = f"[{alert.alert}](runbooks/{alert.alert}.md)"
            when = re.sub(r"\{\{ \$labels\.(\w+) \}\}", r"*\1*", alert.description)
            rows.append(f"| {link} | {alert.severity} | {alert.for_} | {_cell(when)} |")
    return "\n".join(rows) + "\n"


def policy_rules() -> str:
    from policy.scamguard_policy import RULES

    rows = ["| Rule | Enforcement | What it requires |", "| --- | --- | --- |"]
    rows += [f"| `{r.name}` | {r.enforcement} | {_cell(r.description)} |" for r in RULES]
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "config-reference": config_reference,
    "service-settings": service_settings,
    "metrics": metrics,
    "alerts": alerts,
    "policy-rules": policy_rules,
}


def render(markdown: str) -> str:
    # At call time: MkDocs restores sys.path after loading a hook module.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated table {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]().rstrip("\n")

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **_: object) -> str:
    return render(markdown)
