"""NB CUSUM (models.cusum) and the ramp alerts built on it (models.ramps.ramp_alerts)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from h3.api import basic_int as h3i
from hypothesis import given, settings
from hypothesis import strategies as st

from models.alerts import ALERT_COLUMNS
from models.cusum import cusum_pvalue, cusum_threshold, nb_cusum, nb_llr, simulate_in_control
from models.ramps import ramp_alerts

WEEK = np.array([1.0, 1.1, 1.1, 1.0, 1.2, 0.6, 0.5])


@pytest.mark.parametrize("mu, alpha", [(0.5, 0.0), (2.0, 0.0), (2.0, 0.3), (8.0, 0.1)])
def test_in_control_alarm_rate_stays_within_the_calibrated_level(mu, alpha):
    daily = mu * np.tile(WEEK, 4)  # a weekday profile: the bound holds for time-varying means too
    S = simulate_in_control(daily, alpha, kappa=1.5, n_sim=8000, random_state=1)
    for level in (0.1, 0.05, 0.01):
        rate = (S >= cusum_threshold(level)).mean()
        assert rate <= level * 1.1 + 0.002, (level, rate)
    assert np.all((cusum_pvalue(S) > 0) & (cusum_pvalue(S) <= 1))


def _sim(mu, shift, at, n_days, n_sim, alpha, seed):
    rng = np.random.default_rng(seed)
    m = np.full(n_days, mu)
    m[at:] *= shift
    lam = rng.gamma(1 / alpha, alpha * m[None, :], size=(n_sim, n_days))
    return rng.poisson(lam), np.full(n_days, mu)


def _delays(S, at, h):
    hit = S[:, at:] >= h
    return np.where(hit.any(axis=1), hit.argmax(axis=1), np.inf)


def test_step_shift_of_two_is_detected_within_a_few_days():
    y, mu = _sim(5.0, 2.0, 20, 40, 2000, 0.05, 2)
    S, onset = nb_cusum(y, mu, 0.05)
    d = _delays(S, 20, cusum_threshold(0.01))
    assert np.median(d) <= 4
    assert np.mean(d <= 7) >= 0.95
    # the estimated onset of a detected run is close to the true change day
    t = 20 + d[np.isfinite(d)].astype(int)
    est = onset[np.flatnonzero(np.isfinite(d)), t]
    assert abs(np.median(est) - 20) <= 2


def test_detection_is_monotone_in_the_shift_size():
    h = cusum_threshold(0.01)
    rates, delays = [], []
    for shift in (1.0, 1.25, 1.5, 2.0, 3.0):
        y, mu = _sim(3.0, shift, 10, 30, 3000, 0.05, 3)  # same seed: common random numbers
        d = _delays(nb_cusum(y, mu, 0.05)[0], 10, h)
        rates.append(np.mean(np.isfinite(d)))
        delays.append(np.median(d))
    assert all(b >= a for a, b in zip(rates, rates[1:], strict=False)), rates
    assert all(b <= a for a, b in zip(delays, delays[1:], strict=False)), delays
    assert rates[0] < 0.05 and rates[-1] > 0.99


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=5, max_size=30), st.integers(0, 29), st.floats(0.1, 5.0),
       st.floats(0.0, 1.0))
def test_cusum_is_pathwise_monotone_in_the_counts(ys, at, mu, alpha):
    y = np.array(ys, dtype=float)
    more = y.copy()
    more[at % y.size] += 1
    S1 = nb_cusum(y, mu, alpha)[0]
    S2 = nb_cusum(more, mu, alpha)[0]
    assert np.all(S2 >= S1 - 1e-12)


def test_llr_tends_to_poisson_and_is_zero_at_kappa_mean():
    y, mu = np.array([0, 1, 3, 10]), np.array([0.5, 1.0, 2.0, 6.0])
    pois = nb_llr(y, mu, 0.0)
    assert np.allclose(pois, y * np.log(1.5) - 0.5 * mu)
    assert np.allclose(nb_llr(y, mu, 1e-7), pois, atol=1e-5)
    with pytest.raises(ValueError):
        nb_llr(y, mu, 0.0, kappa=1.0)


# --------------------------------------------------------------------------------------------------
# ramp alerts on a synthetic panel
# --------------------------------------------------------------------------------------------------
CENTRE = h3i.latlng_to_cell(22.78, 115.37, 9)
CATS = np.array(["CG", "MD02", "MD1001", "MD15"])
MIX = np.array([0.3, 0.4, 0.1, 0.2])
END = "2026-11-15"


def _panel(ramp: float, seed: int = 11):
    rng = np.random.default_rng(seed)
    cells = np.array(h3i.grid_disk(CENTRE, 8), dtype=np.uint64)
    rate = rng.gamma(1.5, 0.25, cells.size)
    days = pd.date_range("2025-11-16", END)
    dow = WEEK[days.day_of_week.to_numpy()]
    centre = int(cells[40])
    patch = np.isin(cells, np.array(h3i.grid_disk(centre, 1), dtype=np.uint64))
    rate[patch] = 0.6  # a busy patch: 4.2 events a day in all
    mult = np.ones((cells.size, days.size))
    mult[patch] += ramp * np.clip((np.arange(days.size) - (days.size - 21)) / 13, 0, 1)  # onset 21 days back
    Y = rng.poisson(rate[:, None, None] * mult[:, :, None] * dow[None, :, None] * MIX[None, None, :])
    c, d, k = np.nonzero(Y)
    panel = pd.DataFrame({"cell": cells[c], "day": days[d], "category_code": CATS[k], "n": Y[c, d, k]})
    return panel, centre, cells[patch], days[-21]


def test_ramp_alerts_find_a_known_ramp_with_its_onset_and_sentence():
    panel, centre, patch, onset = _panel(1.0)
    alerts = ramp_alerts(panel, END, monitor_days=28)
    assert list(alerts.columns) == ALERT_COLUMNS
    assert (alerts["kind"] == "ramp").all() and (alerts["q_value"] <= 0.05).all()
    hits = alerts[alerts["cell"].map(lambda h: int(h, 16)).isin(patch.tolist())]
    assert len(hits) >= 1
    top = hits.iloc[0]
    assert top["observed"] > 1.3 * top["expected"]
    start = pd.Timestamp(top["window_start"])
    assert onset - pd.Timedelta(days=10) <= start <= onset + pd.Timedelta(days=10)
    assert str(top["window_end"]) == END
    assert "持续上升" in top["sentence_zh"] and f"{top['observed']} 件" in top["sentence_zh"]
    # nothing else in the city rises: at most one stray alert outside the patch
    assert len(alerts) - len(hits) <= 1


def test_no_ramp_means_few_or_no_ramp_alerts():
    for seed in (11, 12, 13):
        panel, *_ = _panel(0.0, seed)
        assert len(ramp_alerts(panel, END, monitor_days=28)) <= 1


def test_ramp_alerts_need_history_before_the_period():
    panel, *_ = _panel(0.0)
    with pytest.raises(ValueError):
        ramp_alerts(panel, "2025-12-01", monitor_days=28)
