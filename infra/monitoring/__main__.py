"""``python -m infra.monitoring render OUTDIR [--environment NAME] [--target HOST:PORT ...]``."""

from __future__ import annotations

import argparse
import pathlib
import sys

from infra.monitoring.config import MonitoringConfig
from infra.monitoring.render import write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.monitoring", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="write prometheus/ and grafana/ files under OUTDIR")
    r.add_argument("outdir", type=pathlib.Path)
    r.add_argument("--environment", default="local", help="stack name (default: local)")
    r.add_argument(
        "--target",
        action="append",
        dest="targets",
        metavar="HOST:PORT",
        help="API to scrape; repeat for several (default: 127.0.0.1:8080)",
    )
    r.add_argument(
        "--prometheus-url",
        default="http://prometheus:9090",
        help="URL Grafana uses to reach Prometheus (default: http://prometheus:9090)",
    )
    r.add_argument("--scrape-interval", type=int, default=15, metavar="SECONDS")
    r.add_argument("--availability-slo", type=float, default=0.999)
    r.add_argument("--latency-slo-seconds", type=float, default=0.25)
    r.add_argument(
        "--alert-on-no-traffic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the no-traffic alert (default: only for the prod environment)",
    )
    r.add_argument("--runbook-base-url", default="docs/monitoring/runbooks")
    args = parser.parse_args(argv)
    try:
        config = MonitoringConfig(
            environment=args.environment,
            scrape_targets=tuple(args.targets or ["127.0.0.1:8080"]),
            prometheus_url=args.prometheus_url,
            availability_slo=args.availability_slo,
            latency_slo_seconds=args.latency_slo_seconds,
            alert_on_no_traffic=(
                args.environment == "prod" if args.alert_on_no_traffic is None else args.alert_on_no_traffic
            ),
            scrape_interval_seconds=args.scrape_interval,
            runbook_base_url=args.runbook_base_url,
        )
    except ValueError as e:
        parser.error(str(e))
    for path in write(config, args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
