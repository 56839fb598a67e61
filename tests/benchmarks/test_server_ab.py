"""The same-run A/B's arithmetic: ratios are taken per round, in order."""

from __future__ import annotations

import math

import pytest

from benchmarks.server_ab import paired_ratios


def test_ratios_pair_the_rounds_in_order() -> None:
    # a machine that slows down over the run: each side's median hides it, the pairs do not
    assert paired_ratios([100.0, 50.0, 25.0], [95.0, 50.0, 30.0]) == [0.95, 1.0, 1.2]


def test_a_zero_reference_is_not_a_ratio() -> None:
    (ratio,) = paired_ratios([0.0], [10.0])
    assert math.isnan(ratio)


def test_unequal_rounds_are_refused() -> None:
    with pytest.raises(ValueError, match="2 reference rounds against 1"):
        paired_ratios([1.0, 2.0], [1.0])


def test_throughput_counts_only_answers_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind the admission proxy a saturating run may be partly refused: those are not throughput."""
    import os

    from benchmarks import server_ab, wrk

    def fake_run(*_args: object, max_non_2xx_share: float = 0.0, **_kwargs: object) -> wrk.WrkResult:
        assert max_non_2xx_share == server_ab.SHED_ALLOWED
        return wrk.WrkResult(requests_per_second=100.0, p50_ms=1.0, p99_ms=2.0, requests=300, non_2xx=3)

    monkeypatch.setattr(server_ab.wrk, "run", fake_run)
    run = server_ab.measure(1, os.getpid(), "batch", 3)
    assert run.wrk.requests_per_second == pytest.approx(99.0)
    assert run.wrk.non_2xx == 3
