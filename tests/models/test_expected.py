"""ExpectedCounts: recovers known Poisson rates with weekday and season structure, per-category wage
season, neighbour borrowing for sparse cells, data gaps, overdispersion, and speed."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from h3.api import basic_int as h3i
from sklearn.base import clone

from models.expected import ExpectedCounts, day_numbers, wage_season

CENTRE = h3i.latlng_to_cell(22.78, 115.37, 9)  # 汕尾市城区, res 9
DOW = np.array([1.0, 1.1, 1.1, 1.0, 1.2, 0.6, 0.5])  # Monday … Sunday


def _panel(Y: np.ndarray, cells: np.ndarray, days: pd.DatetimeIndex, cats: np.ndarray | None = None) -> pd.DataFrame:
    """Long panel of the non-zero entries of Y (cells × days [× categories])."""
    idx = np.nonzero(Y)
    out = {"cell": cells[idx[0]], "day": days[idx[1]], "n": Y[idx]}
    if cats is not None:
        out["category_code"] = cats[idx[2]]
    return pd.DataFrame(out)


def _truth_profile(days: pd.DatetimeIndex, wage: float = 0.0) -> np.ndarray:
    seas = 1 + 0.3 * np.sin(2 * np.pi * days.day_of_year.to_numpy() / 365.25)
    ind, ramp = wage_season(days.to_numpy())
    return DOW[days.day_of_week.to_numpy()] * seas * (1 + wage * ind * (0.5 + ramp))


@pytest.fixture(scope="module")
def seasonal():
    rng = np.random.default_rng(0)
    cells = np.array(h3i.grid_disk(CENTRE, 6), dtype=np.uint64)  # 127 cells
    rate = rng.gamma(2.0, 0.5, cells.size)
    days = pd.date_range("2024-11-16", "2026-11-15")
    T = _truth_profile(days)
    Y = rng.poisson(rate[:, None] * T[None, :])
    return cells, rate, days, T, _panel(Y, cells, days)


def test_recovers_rates_weekday_and_season(seasonal):
    cells, rate, days, T, panel = seasonal
    m = ExpectedCounts(by_category=False, level_halflife_weeks=None).fit(panel)
    assert {"dow", "trend", "fourier"} <= set(m.terms_)
    # the time profile (up to its normalisation) follows the true one
    prof = m.time_profile(days.to_numpy()).iloc[:, 0].to_numpy()
    ratio = prof / T
    assert np.std(ratio / ratio.mean()) < 0.03
    eff = m.season_effects().iloc[0]
    assert eff["dow_sat"] == pytest.approx(0.6, rel=0.06)
    assert eff["dow_sun"] == pytest.approx(0.5, rel=0.06)
    assert eff["dow_fri"] == pytest.approx(1.2, rel=0.05)
    # per-cell expected counts of the last week match the true Poisson means
    c, mu = m.expected_matrix("2026-11-15", 7)
    order = np.argsort(cells)
    truth = (rate * T[-7:].sum())[order]
    np.testing.assert_array_equal(c, cells[order])
    assert mu.sum() / truth.sum() == pytest.approx(1.0, abs=0.03)
    assert np.median(np.abs(mu.sum(axis=1) / truth - 1)) < 0.06
    # a single day: Sunday expectation is about half of Friday's
    fri = m.predict("2026-11-13", 1)["expected"].sum()
    sun = m.predict("2026-11-15", 1)["expected"].sum()
    assert sun / fri == pytest.approx(0.5 / 1.2, rel=0.08)


def test_wage_arrears_season_per_category():
    rng = np.random.default_rng(1)
    cells = np.array(h3i.grid_disk(CENTRE, 4), dtype=np.uint64)
    days = pd.date_range("2024-11-16", "2026-11-15")
    cats = np.array(["MD02", "MD1001"])
    T = np.stack([_truth_profile(days), _truth_profile(days, wage=1.5)], axis=1)  # days × categories
    rate = rng.gamma(2.0, 0.4, cells.size)
    Y = rng.poisson(rate[:, None, None] * T[None, :, :] * np.array([1.0, 0.3])[None, None, :])
    m = ExpectedCounts(level_halflife_weeks=None).fit(_panel(Y, cells, days, cats))
    eff = m.season_effects()
    assert "wage" in m.terms_
    # true peak multiplier 1 + 1.5 × 1.5 = 3.25 just before the festival; flat for neighbour disputes
    assert eff.loc["MD1001", "wage_season_peak"] > 2.3
    assert 0.75 < eff.loc["MD02", "wage_season_peak"] < 1.3
    # the model expects more wage disputes in late January than in June, not so for neighbour disputes
    jan = m.predict("2026-02-10", 7, by_category=True).groupby("category_code")["expected"].sum()
    jun = m.predict("2026-06-16", 7, by_category=True).groupby("category_code")["expected"].sum()
    assert jan["MD1001"] / jun["MD1001"] > 2.0
    assert 0.7 < jan["MD02"] / jun["MD02"] < 1.4


def test_sparse_cells_borrow_from_neighbours():
    """Four weeks of history: a cell with a single event is pulled toward its neighbourhood's rate."""
    rng = np.random.default_rng(2)
    busy_c = h3i.latlng_to_cell(22.78, 115.37, 9)
    quiet_c = h3i.latlng_to_cell(22.90, 115.60, 9)
    busy = np.array(h3i.grid_disk(busy_c, 2), dtype=np.uint64)
    quiet = np.array(h3i.grid_disk(quiet_c, 2), dtype=np.uint64)
    days = pd.date_range("2026-06-01", "2026-06-28")
    cells = np.concatenate([busy, quiet])
    rate = np.r_[np.full(busy.size, 0.5), np.full(quiet.size, 0.02)]
    Y = rng.poisson(rate[:, None] * np.ones(days.size)[None, :])
    for c in (busy_c, quiet_c):  # the two centres: exactly one event in four weeks
        Y[cells == c] = 0
        Y[cells == c, 10] = 1
    m = ExpectedCounts(by_category=False).fit(_panel(Y, cells, days))
    e_busy, e_quiet = m.predict("2026-07-05", 7, cells=[busy_c, quiet_c])["expected"].to_numpy()
    raw = 7 / 28  # the cell's own rate, one event in 28 days, per week
    assert e_busy > raw > e_quiet
    assert e_busy > 2 * e_quiet
    assert e_busy < 0.5 * 7  # but not all the way to the neighbours' rate
    # a busy cell keeps (about) its own rate
    own = m.predict("2026-07-05", 7, cells=busy[1:2])["expected"].iloc[0]
    own_raw = Y[1].sum() / 28 * 7
    assert own == pytest.approx(own_raw, rel=0.2)


def test_cells_without_history_get_a_small_prior_from_surroundings():
    rng = np.random.default_rng(6)
    centre = h3i.latlng_to_cell(22.78, 115.37, 9)
    ring = np.array([c for c in h3i.grid_disk(centre, 2) if c != centre], dtype=np.uint64)
    far = h3i.latlng_to_cell(23.30, 116.20, 9)  # nothing around it
    days = pd.date_range("2026-01-01", "2026-06-30")
    Y = rng.poisson(np.full((ring.size, days.size), 0.3))
    panel = _panel(Y, ring, days)
    m = ExpectedCounts(by_category=False).fit(panel, cells=[centre])
    e = m.predict("2026-07-07", 7, cells=[centre, far])["expected"].to_numpy()
    assert e[0] > 0 and e[1] > 0
    assert e[0] > e[1]
    # unknown at fit time ≈ declared at fit time with no events (only the pooled prior strength differs)
    m2 = ExpectedCounts(by_category=False).fit(panel)
    np.testing.assert_allclose(m2.predict("2026-07-07", 7, cells=[centre, far])["expected"].to_numpy(), e,
                               rtol=0.15)


def test_missing_month_is_not_read_as_zeros():
    rng = np.random.default_rng(3)
    cells = np.array(h3i.grid_disk(CENTRE, 3), dtype=np.uint64)
    days = pd.date_range("2016-08-01", "2016-11-30")
    Y = rng.poisson(np.full((cells.size, days.size), 0.8))
    Y[:, (days >= "2016-10-01") & (days < "2016-11-01")] = 0  # October is missing from the export
    m = ExpectedCounts(by_category=False).fit(_panel(Y, cells, days))
    assert m.observed_days_.size == days.size - 31
    mu = m.predict("2016-12-07", 7)["expected"].to_numpy()
    assert mu.mean() == pytest.approx(0.8 * 7, rel=0.05)


def test_overdispersion_is_estimated():
    rng = np.random.default_rng(4)
    cells = np.array(h3i.grid_disk(CENTRE, 5), dtype=np.uint64)
    days = pd.date_range("2025-01-01", "2026-06-30")
    mu = rng.gamma(2.0, 1.0, cells.size)[:, None] * np.ones(days.size)[None, :]
    alpha = 0.5  # Var = mu + alpha mu²
    Y_nb = rng.poisson(mu * rng.gamma(1 / alpha, alpha, mu.shape))
    m = ExpectedCounts(by_category=False, level_halflife_weeks=None).fit(_panel(Y_nb, cells, days))
    a_cell, a_ring = m.dispersion(1)
    assert a_cell == pytest.approx(alpha, abs=0.12)
    per_cell, _ = m.dispersion_per_cell(1)
    assert np.median(per_cell) == pytest.approx(alpha, abs=0.15)
    Y_p = rng.poisson(mu)
    m2 = ExpectedCounts(by_category=False, level_halflife_weeks=None).fit(_panel(Y_p, cells, days))
    assert m2.dispersion(1)[0] < 0.05
    assert m2.dispersion(7)[0] < 0.05


def test_sklearn_conventions(seasonal):
    est = ExpectedCounts(history_weeks=52, random_state=3, k=2)
    assert est.get_params()["history_weeks"] == 52
    c = clone(est)
    assert c.get_params() == est.get_params()
    _, _, _, _, panel = seasonal
    c.fit(panel, end="2026-06-30")
    assert c.end_ == int(day_numbers("2026-06-30"))
    assert c.observed_days_.min() >= c.end_ - 52 * 7 + 1


@pytest.mark.slow
def test_fit_is_fast_on_a_million_events():
    rng = np.random.default_rng(5)
    cells = np.array(h3i.grid_disk(h3i.latlng_to_cell(22.78, 115.37, 10), 60), dtype=np.uint64)  # 10,981 cells
    n = 1_000_000
    days = np.arange(int(day_numbers("2024-11-16")), int(day_numbers("2024-11-16")) + 730)
    w = rng.gamma(0.5, 1.0, cells.size)
    panel = pd.DataFrame({"cell": cells[rng.choice(cells.size, n, p=w / w.sum())],
                          "day": days[rng.integers(0, days.size, n)],
                          "category_code": rng.choice(np.array([f"C{i:02d}" for i in range(12)]), n),
                          "n": 1})
    t0 = time.perf_counter()
    m = ExpectedCounts().fit(panel)
    m.dispersion(7)
    assert time.perf_counter() - t0 < 10.0


def test_dispersion_per_category_and_the_category_mix_prior():
    """A bursty category (NB alpha 2) and a calm one (Poisson): per-category alphas tell them apart, and cells
    whose expected calls are mostly of the bursty kind get a larger alpha even without bursts of their own."""
    rng = np.random.default_rng(6)
    cells = np.array(h3i.grid_disk(CENTRE, 5), dtype=np.uint64)  # 91 cells
    days = pd.date_range("2025-06-01", "2026-06-30")
    share = np.where(np.arange(cells.size) % 2 == 0, 0.8, 0.1)  # share of the bursty category per cell
    base = rng.gamma(4.0, 0.5, cells.size)
    mu_b = (base * share)[:, None] * np.ones(days.size)[None, :]
    mu_c = (base * (1 - share))[:, None] * np.ones(days.size)[None, :]
    Y = np.stack([rng.poisson(mu_b * rng.gamma(0.5, 2.0, mu_b.shape)), rng.poisson(mu_c)], axis=2)
    m = ExpectedCounts(level_halflife_weeks=None).fit(_panel(Y, cells, days, np.array(["BURST", "CALM"])))
    a = dict(zip(m.categories_, m.dispersion_per_category(1), strict=True))
    assert a["BURST"] == pytest.approx(2.0, rel=0.35)
    assert a["CALM"] < 0.1
    # the prior pulls the per-cell alpha toward the mix: with a strong prior, only the mix separates them
    strong = clone(m).set_params(dispersion_prior_strength=1e6).fit(_panel(Y, cells, days, np.array(["BURST", "CALM"])))
    per_cell, _ = strong.dispersion_per_cell(1)
    order = np.searchsorted(strong.cells_, cells)
    bursty, calm = per_cell[order][share > 0.5], per_cell[order][share < 0.5]
    assert np.median(bursty) > 3 * np.median(calm)
