"""The production edge: a global external HTTPS load balancer in front of Cloud Run.

One static address, a Google-managed certificate for the configured host names, HTTP redirected to
HTTPS, serverless NEGs to the API and (optionally) Grafana, Cloud Armor in front of both (a
per-client rate limit, the edge limit in front of each instance's own, and OWASP preconfigured
rules), and Identity-Aware Proxy in front of Grafana.

Why these choices (Google's docs on serverless NEGs, Cloud Armor and IAP):
- A serverless NEG sends requests unauthenticated, so the API behind it grants run.invoker to
  allUsers and keeps ingress `internal-and-cloud-load-balancing`: the run.app URL then refuses
  the internet, and callers authenticate with their API key over HTTPS through the load balancer.
- Grafana instead is reached only through IAP (Google-managed OAuth client); IAP's service agent
  is its only invoker, and `gcpGrafanaViewers` are the IAP users.
- The OWASP rules that read request bodies (SQL injection, XSS, ...) are applied to Grafana only:
  the API's bodies are e-mails, and phishing mail legitimately contains HTML, scripts and
  SQL-looking text, which those signatures would refuse (the API validates its input itself).
  Protocol, scanner and method rules apply to both hosts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from infra.targets.gcp.cloudrun import member_slug

# Preconfigured Cloud Armor WAF rule sets (ModSecurity CRS 3.3), at the lowest sensitivity.
BOTH_HOSTS_WAF = ("protocolattack-v33-stable", "scannerdetection-v33-stable", "methodenforcement-v33-stable")
GRAFANA_ONLY_WAF = (
    "sqli-v33-stable",
    "xss-v33-stable",
    "lfi-v33-stable",
    "rfi-v33-stable",
    "rce-v33-stable",
    "sessionfixation-v33-stable",
)
IAP_ACCESSOR_ROLE = "roles/iap.httpsResourceAccessor"


@dataclass
class EdgeArgs:
    project: pulumi.Input[str]
    region: pulumi.Input[str]
    name_prefix: str  # e.g. scamguard-prod: every resource name starts with it
    api_service: pulumi.Input[str]  # Cloud Run service name
    api_domain: str
    rate_limit_per_minute: int  # per client IP; 0 = none
    grafana_service: pulumi.Input[str] | None = None
    grafana_domain: str = ""
    grafana_viewers: Sequence[str] = field(default_factory=tuple)
    labels: dict[str, str] = field(default_factory=dict)


def _every_source() -> gcp.compute.SecurityPolicyRuleMatchArgs:
    return gcp.compute.SecurityPolicyRuleMatchArgs(
        versioned_expr="SRC_IPS_V1",
        config=gcp.compute.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=["*"]),
    )


def security_policy_rules(
    grafana_domain: str, rate_limit_per_minute: int
) -> list[gcp.compute.SecurityPolicyRuleArgs]:
    """Cloud Armor rules, lowest priority number first; the default rule allows the rest."""
    rules: list[gcp.compute.SecurityPolicyRuleArgs] = []
    if rate_limit_per_minute > 0:
        rules.append(
            gcp.compute.SecurityPolicyRuleArgs(
                priority=1000,
                description="per-client rate limit at the edge (429), in front of each instance's own",
                action="throttle",
                match=_every_source(),
                rate_limit_options=gcp.compute.SecurityPolicyRuleRateLimitOptionsArgs(
                    conform_action="allow",
                    exceed_action="deny(429)",
                    enforce_on_key="IP",
                    rate_limit_threshold=gcp.compute.SecurityPolicyRuleRateLimitOptionsRateLimitThresholdArgs(
                        count=rate_limit_per_minute, interval_sec=60
                    ),
                ),
            )
        )
    for offset, rule_set in enumerate(BOTH_HOSTS_WAF):
        rules.append(_waf_rule(2000 + offset, rule_set, host=None))
    if grafana_domain:
        for offset, rule_set in enumerate(GRAFANA_ONLY_WAF):
            rules.append(_waf_rule(3000 + offset, rule_set, host=grafana_domain))
    rules.append(
        gcp.compute.SecurityPolicyRuleArgs(
            priority=2147483647,
            description="default: allow",
            action="allow",
            match=_every_source(),
        )
    )
    return rules


def _waf_rule(priority: int, rule_set: str, host: str | None) -> gcp.compute.SecurityPolicyRuleArgs:
    expression = f"evaluatePreconfiguredWaf('{rule_set}', {{'sensitivity': 1}})"
    if host is not None:
        expression = f"request.headers['host'] == '{host}' && {expression}"
    return gcp.compute.SecurityPolicyRuleArgs(
        priority=priority,
        description=f"OWASP CRS: {rule_set}" + (f" on {host}" if host else ""),
        action="deny(403)",
        match=gcp.compute.SecurityPolicyRuleMatchArgs(
            expr=gcp.compute.SecurityPolicyRuleMatchExprArgs(expression=expression)
        ),
    )


class EdgeLoadBalancer(pulumi.ComponentResource):
    address: gcp.compute.GlobalAddress
    security_policy: gcp.compute.SecurityPolicy
    url: pulumi.Output[str]
    grafana_url: pulumi.Output[str] | None
    ip_address: pulumi.Output[str]

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("scamguard:gcp:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        domains = [args.api_domain, *([args.grafana_domain] if args.grafana_domain else [])]

        self.address = gcp.compute.GlobalAddress(
            f"{name}-address", project=args.project, name=f"{prefix}-edge", labels=args.labels, opts=child
        )
        certificate = gcp.compute.ManagedSslCertificate(
            f"{name}-certificate",
            project=args.project,
            # A new domain list needs a new certificate; the proxy switches to it before the old goes.
            name=f"{prefix}-edge-{hashlib.sha256(','.join(domains).encode()).hexdigest()[:8]}",
            managed=gcp.compute.ManagedSslCertificateManagedArgs(domains=domains),
            opts=child,
        )
        self.security_policy = gcp.compute.SecurityPolicy(
            f"{name}-armor",
            project=args.project,
            name=f"{prefix}-edge",
            description="scamguard edge: per-client rate limit and OWASP preconfigured rules",
            rules=security_policy_rules(args.grafana_domain, args.rate_limit_per_minute),
            labels=args.labels,
            opts=child,
        )
        api_backend = self._backend(f"{name}-api", args, args.api_service, f"{prefix}-api", iap=False)
        host_rules = [gcp.compute.URLMapHostRuleArgs(hosts=[args.api_domain], path_matcher="api")]
        path_matchers = [gcp.compute.URLMapPathMatcherArgs(name="api", default_service=api_backend.id)]
        self.grafana_url = None
        if args.grafana_domain and args.grafana_service is not None:
            grafana_backend = self._backend(
                f"{name}-grafana", args, args.grafana_service, f"{prefix}-grafana", iap=True
            )
            host_rules.append(
                gcp.compute.URLMapHostRuleArgs(hosts=[args.grafana_domain], path_matcher="grafana")
            )
            path_matchers.append(
                gcp.compute.URLMapPathMatcherArgs(name="grafana", default_service=grafana_backend.id)
            )
            self._iap_access(name, args, grafana_backend)
            self.grafana_url = pulumi.Output.from_input(f"https://{args.grafana_domain}")

        url_map = gcp.compute.URLMap(
            f"{name}-urlmap",
            project=args.project,
            name=f"{prefix}-edge",
            default_service=api_backend.id,
            host_rules=host_rules,
            path_matchers=path_matchers,
            opts=child,
        )
        ssl_policy = gcp.compute.SSLPolicy(
            f"{name}-tls",
            project=args.project,
            name=f"{prefix}-edge",
            profile="MODERN",
            min_tls_version="TLS_1_2",
            opts=child,
        )
        https_proxy = gcp.compute.TargetHttpsProxy(
            f"{name}-https",
            project=args.project,
            name=f"{prefix}-edge",
            url_map=url_map.id,
            ssl_certificates=[certificate.id],
            ssl_policy=ssl_policy.id,
            opts=child,
        )
        self._forwarding_rule(f"{name}-https-rule", args, f"{prefix}-edge-https", "443", https_proxy.id)
        redirect_map = gcp.compute.URLMap(
            f"{name}-redirect",
            project=args.project,
            name=f"{prefix}-edge-redirect",
            default_url_redirect=gcp.compute.URLMapDefaultUrlRedirectArgs(
                https_redirect=True, strip_query=False, redirect_response_code="MOVED_PERMANENTLY_DEFAULT"
            ),
            opts=child,
        )
        http_proxy = gcp.compute.TargetHttpProxy(
            f"{name}-http",
            project=args.project,
            name=f"{prefix}-edge-http",
            url_map=redirect_map.id,
            opts=child,
        )
        self._forwarding_rule(f"{name}-http-rule", args, f"{prefix}-edge-http", "80", http_proxy.id)
        self.ip_address = self.address.address
        self.url = pulumi.Output.from_input(f"https://{args.api_domain}")
        self.register_outputs(
            {"url": self.url, "ip_address": self.ip_address, "grafana_url": self.grafana_url}
        )

    def _forwarding_rule(
        self, name: str, args: EdgeArgs, resource_name: str, port: str, target: pulumi.Input[str]
    ) -> None:
        gcp.compute.GlobalForwardingRule(
            name,
            project=args.project,
            name=resource_name,
            ip_address=self.address.address,  # the literal IP: accepted by every provider version
            ip_protocol="TCP",
            port_range=port,
            load_balancing_scheme="EXTERNAL_MANAGED",
            target=target,
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _backend(
        self, name: str, args: EdgeArgs, service: pulumi.Input[str], resource_name: str, *, iap: bool
    ) -> gcp.compute.BackendService:
        neg = gcp.compute.RegionNetworkEndpointGroup(
            f"{name}-neg",
            project=args.project,
            region=args.region,
            name=resource_name,
            network_endpoint_type="SERVERLESS",
            cloud_run=gcp.compute.RegionNetworkEndpointGroupCloudRunArgs(service=service),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return gcp.compute.BackendService(
            f"{name}-backend",
            project=args.project,
            name=resource_name,
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTPS",
            backends=[gcp.compute.BackendServiceBackendArgs(group=neg.id)],
            security_policy=self.security_policy.self_link,
            log_config=gcp.compute.BackendServiceLogConfigArgs(enable=True, sample_rate=1.0),
            iap=gcp.compute.BackendServiceIapArgs(enabled=True) if iap else None,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _iap_access(self, name: str, args: EdgeArgs, backend: gcp.compute.BackendService) -> None:
        """IAP's service agent invokes Grafana; the viewers may pass IAP. Nobody else does either."""
        assert args.grafana_service is not None
        number = gcp.organizations.get_project_output(project_id=args.project).number
        gcp.cloudrunv2.ServiceIamMember(
            f"{name}-iap-invoker",
            project=args.project,
            location=args.region,
            name=args.grafana_service,
            role="roles/run.invoker",
            member=number.apply(lambda n: f"serviceAccount:service-{n}@gcp-sa-iap.iam.gserviceaccount.com"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        for member in args.grafana_viewers:
            gcp.iap.WebBackendServiceIamMember(
                f"{name}-viewer-{member_slug(member)}",
                project=args.project,
                web_backend_service=backend.name,
                role=IAP_ACCESSOR_ROLE,
                member=member,
                opts=pulumi.ResourceOptions(parent=self),
            )
