"""Outputs the GCP provider would compute, for Pulumi's mocks (offline preview and unit tests).

Keyed by resource type token; each maker gets the resource name and its (camelCase) inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

MockOutputs = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
MockCall = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def _service(name: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    service = str(inputs.get("name", name))
    traffic = [
        {**t, "uri": f"https://{t['tag']}---{service}-mock.a.run.app" if t.get("tag") else ""}
        for t in inputs.get("traffics", [])
    ]
    return {
        "uri": f"https://{service}-mock.a.run.app",
        "latestReadyRevision": f"{service}-00001-mock",
        "trafficStatuses": traffic,
    }


MOCK_OUTPUTS: dict[str, MockOutputs] = {
    "gcp:serviceaccount/account:Account": lambda name, inputs: {
        "email": f"{inputs['accountId']}@{inputs.get('project', 'mock-project')}.iam.gserviceaccount.com",
    },
    "gcp:cloudrunv2/service:Service": _service,
    "gcp:secretmanager/secret:Secret": lambda name, inputs: {
        "name": f"projects/{inputs.get('project', 'mock-project')}/secrets/{inputs['secretId']}",
    },
    "gcp:secretmanager/secretVersion:SecretVersion": lambda name, inputs: {"version": "1"},
    "gcp:storage/bucket:Bucket": lambda name, inputs: {"url": f"gs://{inputs.get('name', name)}"},
    "random:index/randomPassword:RandomPassword": lambda name, inputs: {"result": f"mock-password-{name}"},
    "random:index/randomId:RandomId": lambda name, inputs: {"hex": "a1b2", "b64Url": "obI", "dec": "41394"},
    "gcp:compute/globalAddress:GlobalAddress": lambda name, inputs: {
        "address": "203.0.113.10",
        "selfLink": f"https://www.googleapis.com/compute/v1/projects/mock-project/global/addresses/{name}",
    },
    "gcp:compute/securityPolicy:SecurityPolicy": lambda name, inputs: {
        "selfLink": f"https://www.googleapis.com/compute/v1/projects/mock-project/global/securityPolicies/{name}",
    },
}
MOCK_CALLS: dict[str, MockCall] = {
    "gcp:organizations/getProject:getProject": lambda args: {
        "projectId": args.get("projectId", "mock-project"),
        "number": "123456789012",
        "name": args.get("projectId", "mock-project"),
    },
    "gcp:organizations/getClientConfig:getClientConfig": lambda args: {
        "accessToken": "mock-access-token",
        "project": "mock-project",
        "region": "europe-west1",
        "zone": "europe-west1-b",
        "id": "mock",
        "defaultLabels": {},
    },
}
