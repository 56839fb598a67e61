"""Google Cloud target: Artifact Registry, Cloud Run v2 with the GMP sidecar, VPC, IAM, Grafana.

One ComponentResource per concern (apis, registry, network, identity, secrets, service,
alerting, rule evaluator, grafana, monitoring); :class:`GcpPlatform` wires them to the
Platform interface.
"""

from infra.targets.gcp.platform import GcpPlatform

__all__ = ["GcpPlatform"]
