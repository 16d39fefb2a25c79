"""The predictive check of EHSA classes: outcome rules on hand-made series, no look-ahead, top-k, stats."""
from __future__ import annotations

import numpy as np
from h3.api import basic_int as h3i

from models.hexgrid import kring_weights
from models.hotspot_eval import classify_at, exceeds, forward_outcomes, selection_stats, top_cells

CENTRE = h3i.latlng_to_cell(22.78, 115.37, 9)


def test_exceeds_ratio_and_zero_mean_rule():
    # expected 4: needs >= 6; expected 0: needs >= zero_min
    assert exceeds([6, 5, 2, 1], [4, 4, 0, 0], 1.5, zero_min=2).tolist() == [True, False, True, False]


def test_forward_outcomes_on_constructed_series():
    window, horizon = 26, 4
    X = np.zeros((4, 34))
    X[0, :26] = 1          # mean 1/week -> expectation 4: next 6 rises, not falls
    X[0, 26:30] = [2, 2, 1, 1]
    X[1, :26] = 1          # next 5: neither (5 < 6 and 5 > 4/1.5)
    X[1, 26:30] = [2, 1, 1, 1]
    X[2, 26:30] = [1, 0, 1, 0]   # zero mean, 2 next -> rises; ratio undefined
    X[3, :26] = 3          # expectation 12: next 8 = 12/1.5 falls
    X[3, 26:30] = 2
    X[:, 30:] = 100        # after the horizon: must not count
    out = forward_outcomes(X, t=26, window=window, horizon=horizon)
    assert out["next"].tolist() == [6, 5, 2, 8]
    assert out["rise"].tolist() == [True, False, True, False]
    assert out["fall"].tolist() == [False, False, False, True]
    np.testing.assert_allclose(out["ratio"].to_numpy()[[0, 1, 3]], [1.5, 1.25, 8 / 12])
    assert np.isnan(out["ratio"][2])
    assert out["last"].tolist() == [4, 4, 0, 12]


def test_classify_at_reads_nothing_from_t_on_and_finds_a_new_hot_spot():
    cells = np.array(sorted(h3i.grid_disk(CENTRE, 6)), dtype=np.uint64)
    W = kring_weights(cells, k=1)
    rng = np.random.default_rng(3)
    X = rng.poisson(0.3, (cells.size, 40)).astype(float)
    ring = np.isin(cells, np.array(h3i.grid_disk(CENTRE, 1), dtype=np.uint64))
    t = 30
    X[ring, t - 1] += 8   # the centre's disk flares up in the last slice before t only
    a = classify_at(X, W, t)
    assert a[np.searchsorted(cells, CENTRE)] == "new_hot"
    Y = X.copy()
    Y[:, t:] = rng.poisson(5.0, (cells.size, X.shape[1] - t))
    assert (classify_at(Y, W, t) == a).all()


def test_top_cells_and_selection_stats():
    m = top_cells([3, 5, 5, 0, 1], 2, secondary=[0, 1, 2, 0, 0])
    assert m.tolist() == [False, True, True, False, False]
    assert top_cells([0, 0, 1], 3).tolist() == [False, False, True]   # never a zero
    s = selection_stats([True, True, False, True], [True, False, True, True], [2.0, np.nan, 9.0, 1.0])
    assert (s["n"], s["hits"], s["ratio_n"]) == (3, 2, 2)
    assert abs(s["precision"] - 2 / 3) < 1e-12 and s["ratio_sum"] == 3.0
