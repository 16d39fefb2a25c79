"""The one Wilson interval (onemap.metrics.wilson_interval) used for reviewed-alert precision and small shares."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from onemap.metrics import wilson_interval


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_matches_scipys_wilson_interval_and_holds_the_share(kn):
    k, n = kn
    low, high = wilson_interval(k, n)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert float(low) == pytest.approx(ref.low, abs=2e-5) and float(high) == pytest.approx(ref.high, abs=2e-5)
    assert 0 <= low <= k / n <= high <= 1


def test_vectorised_and_empty_where_nothing_was_counted():
    low, high = wilson_interval(np.array([0, 3, 30]), np.array([0, 4, 40]))
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert high[1] - low[1] > high[2] - low[2]  # "3 of 4" says less than "30 of 40"
