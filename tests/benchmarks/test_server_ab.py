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
