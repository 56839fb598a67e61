from __future__ import annotations

import pytest

from infra.monitoring.promql import inline, metric_names, substitute_grafana_variables


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('up{job="scamguard"} == 0', {"up"}),
        ('sum by (job, le) (rate(a_bucket{route=~"/v1|/predict"}[5m]))', {"a_bucket"}),
        ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))", {"x_bucket"}),
        ("a / on (job, instance) group_left (version) b", {"a", "b"}),
        ("a and on (job) b > 0.5", {"a", "b"}),
        ("(sum by (job) (rate(a[30m])) or on () vector(0)) == 0", {"a"}),
        (
            "job:x:ratio_rate1h > 1.44e-2 and job:x:ratio_rate5m > 1.44e-2",
            {"job:x:ratio_rate1h", "job:x:ratio_rate5m"},
        ),
        ("rate(a[5m] offset 1h) / rate(a[1d:5m])", {"a"}),
        ('count({__name__="weird_name", label="sum(x)"})', {"weird_name"}),
        ('sum without (instance) (b{label="by (a)"})', {"b"}),
        ("max(c) by (instance)", {"c"}),
        ("topk(3, d) - inf + NaN", {"d"}),
        ('absent(up{job="scamguard"})', {"up"}),
        ('changes(process_start_time_seconds{job="s"}[1h])', {"process_start_time_seconds"}),
        ("e # a comment naming f\n + g", {"e", "g"}),
        ("0x1F + 1.5 * h", {"h"}),
        ("sum(i) BY (job) AND j", {"i", "j"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_grafana_variables_are_substituted() -> None:
    assert (
        substitute_grafana_variables("rate(a[$__rate_interval]) + b[${__interval}]") == "rate(a[1m]) + b[1m]"
    )


def test_inline_replaces_recorded_series_recursively() -> None:
    recorded = {"r:a": "sum(rate(a[5m]))", "r:b": "r:a * 2"}
    assert (
        inline("r:b > 1 and r:a > 0", recorded) == "((sum(rate(a[5m]))) * 2) > 1 and (sum(rate(a[5m]))) > 0"
    )


@pytest.mark.parametrize("expr", ['r:a{job="x"} > 1', "avg_over_time(r:a[1h])"])
def test_inline_refuses_selectors_it_cannot_rewrite(expr: str) -> None:
    with pytest.raises(ValueError, match="cannot inline"):
        inline(expr, {"r:a": "sum(a)"})
