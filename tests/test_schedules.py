"""Annealing schedules (``_schedules.py``)."""

import pytest

from sklearn_betavae._schedules import linear_ramp


@pytest.mark.parametrize("n_steps", [1, 7, 100])
def test_linear_ramp_matches_definition(n_steps):
    # beta(t) = min(1, t / T) * beta_max, checked against the piecewise definition.
    for t in range(2 * n_steps):
        expected = 3.0 * t / n_steps if t < n_steps else 3.0
        assert linear_ramp(t, n_steps, 3.0) == pytest.approx(expected)


def test_linear_ramp_disabled():
    # n_steps = 0 means no ramp: the final value from the first step.
    assert linear_ramp(0, 0, 2.5) == 2.5
