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
}
MOCK_CALLS: dict[str, MockCall] = {
    "gcp:organizations/getClientConfig:getClientConfig": lambda args: {
        "accessToken": "mock-access-token",
        "project": "mock-project",
        "region": "europe-west1",
        "zone": "europe-west1-b",
        "id": "mock",
        "defaultLabels": {},
    },
}
