"""IAM policy documents of the AWS target, as plain dicts (validated offline: moto's IAM, parliament)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

VERSION = "2012-10-17"


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def allow(sid: str, actions: Sequence[str], resources: Sequence[str] | str) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": [resources] if isinstance(resources, str) else list(resources),
    }


def service_trust(service: str, account_id: str, source_arn_like: str | None = None) -> dict[str, Any]:
    """Trust for an AWS service principal, only on behalf of this account (confused-deputy guard)."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": account_id}}
    if source_arn_like:
        condition["ArnLike"] = {"aws:SourceArn": source_arn_like}
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
            "Condition": condition,
        }
    )
