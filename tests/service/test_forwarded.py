"""Which address a rate limit keys on behind proxies: counted from the right by hop count, so
entries the client writes into X-Forwarded-For gain it nothing."""

from __future__ import annotations

import pytest

from service.ratelimit import client_host
from tests.service.conftest import SCAM_TEXT, ClientFactory


def scope(xff: list[str], peer: str = "169.254.1.1") -> dict:
    return {"client": (peer, 1234), "headers": [(b"x-forwarded-for", v.encode()) for v in xff]}


@pytest.mark.parametrize(
    ("xff", "hops", "expected"),
    [
        (["203.0.113.7"], 1, "203.0.113.7"),
        (["1.2.3.4, 203.0.113.7"], 1, "203.0.113.7"),  # the client wrote 1.2.3.4
        (["1.2.3.4, 203.0.113.7, 35.191.0.1"], 2, "203.0.113.7"),  # behind the external LB
        (["1.2.3.4", "203.0.113.7"], 1, "203.0.113.7"),  # the header repeated
        ([], 1, "169.254.1.1"),  # no proxy added anything: the peer
        (["203.0.113.7"], 2, "169.254.1.1"),  # fewer entries than hops: not what the proxies send
        (["1.2.3.4, 203.0.113.7"], 0, "169.254.1.1"),  # hops off: the (uvicorn-resolved) peer
    ],
)
def test_client_host_counts_hops_from_the_right(xff: list[str], hops: int, expected: str) -> None:
    assert client_host(scope(xff), hops) == expected


def test_invented_forwarded_addresses_share_one_budget(make_client: ClientFactory) -> None:
    """The attack: a new leftmost X-Forwarded-For entry per request. With hop counting every one of
    them is the same client, so the limit holds."""
    client = make_client(rate_limit="3/minute", forwarded_hops=1)
    statuses = [
        client.post(
            "/v1/classify",
            json={"text": SCAM_TEXT},
            headers={"X-Forwarded-For": f"10.9.{i}.{i}, 198.51.100.20"},
        ).status_code
        for i in range(6)
    ]
    assert statuses == [200, 200, 200, 429, 429, 429]
    # Another real client (another rightmost entry) has its own budget.
    other = client.post(
        "/v1/classify", json={"text": SCAM_TEXT}, headers={"X-Forwarded-For": "198.51.100.21"}
    )
    assert other.status_code == 200
