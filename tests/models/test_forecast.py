"""Cell risk forecaster, baselines, panel helpers and the rolling-origin backtest."""
from __future__ import annotations

import h3.api.numpy_int as h3n
import numpy as np
import pandas as pd
import pytest
import shapely
from sklearn.base import clone

from models.backtest import rolling_origin_backtest, run_backtest, scorable_origins
from models.forecast import (
    AllHistory,
    CellRiskForecaster,
    EWMAHistory,
    KDEBaseline,
    LastKWeeks,
    build_grid,
    kernel_parts,
    kernel_score,
)
from models.panel import (
    cells_from_lonlat,
    day_coverage,
    events_to_panel,
    exposure_from_days,
    period_floor,
    ring_matrix,
    study_area_cells,
)

CENTRE = h3n.latlng_to_cell(45.52, -122.68, 9)
CELLS = np.sort(np.asarray(h3n.grid_disk(CENTRE, 7), dtype=np.uint64))  # 169 cells
START = pd.Timestamp("2020-01-06")  # a Monday


def synthetic_panel(n_weeks=40, seed=0, sparse=False):
    """Poisson counts with a stable, spatially smooth risk surface (plus a few hot cells if dense)."""
    rng = np.random.default_rng(seed)
    dist = np.array([h3n.grid_distance(int(CENTRE), int(c)) for c in CELLS])
    lam = (0.3 if sparse else 3.0) * np.exp(-dist / 2.5)
    if not sparse:
        lam[rng.choice(CELLS.size, 6, replace=False)] += 6.0
    rows = []
    for w in range(n_weeks):
        y = rng.poisson(lam)
        for c, n in zip(CELLS[y > 0], y[y > 0], strict=True):
            rows.append((c, START + pd.Timedelta(weeks=w), int(n), int(rng.binomial(n, 0.4))))
    panel = pd.DataFrame(rows, columns=["cell", "week", "n", "cat:A"])
    panel["cell"] = panel["cell"].astype(np.uint64)
    return panel, lam


ALL_MODELS = {
    "kernel": CellRiskForecaster(),
    "additive": CellRiskForecaster(estimator="additive"),
    "blend": CellRiskForecaster(estimator="blend", max_iter=20, min_samples_leaf=20),
    "last4": LastKWeeks(4),
    "all": AllHistory(),
    "ewma": EWMAHistory(8),
    "kde": KDEBaseline(300.0),
}


# ---------------------------------------------------------------------------------------------------
# interface
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ALL_MODELS))
def test_predict_returns_expected_counts_for_the_universe(name):
    panel, _ = synthetic_panel(30)
    origin = START + pd.Timedelta(weeks=25)
    universe = np.union1d(CELLS, np.asarray(h3n.grid_ring(CENTRE, 8), dtype=np.uint64))
    m = clone(ALL_MODELS[name]).fit(panel[panel.week < origin], cells=universe, origin=origin)
    s = m.predict(panel, origin, cells=universe)
    assert isinstance(s, pd.Series)
    assert s.index.dtype == np.uint64
    assert np.array_equal(s.index.to_numpy(), universe)
    assert np.all(np.isfinite(s.to_numpy())) and np.all(s.to_numpy() >= 0)


def test_forecaster_finds_the_hot_cells_and_is_sklearn_cloneable():
    panel, lam = synthetic_panel(40, seed=1)
    origin = START + pd.Timedelta(weeks=39)
    m = CellRiskForecaster(lags=(1, 4, 13), random_state=3)
    assert clone(m).get_params()["lags"] == (1, 4, 13)
    s = m.fit(panel[panel.week < origin], cells=CELLS, origin=origin).predict(panel, origin, cells=CELLS)
    top = set(s.sort_values(ascending=False).index[:8])
    truth = set(CELLS[np.argsort(-lam)[:8]])
    assert len(top & truth) >= 6
    # calibrated scale: total expected count near the total true rate
    assert s.sum() == pytest.approx(lam.sum(), rel=0.2)


def test_horizon_scales_expected_counts():
    panel, _ = synthetic_panel(20)
    origin = START + pd.Timedelta(weeks=20)
    one = AllHistory().predict(panel, origin, cells=CELLS)
    two = AllHistory(horizon_weeks=2).predict(panel, origin, cells=CELLS)
    assert np.allclose(two.to_numpy(), 2 * one.to_numpy())


# ---------------------------------------------------------------------------------------------------
# no leakage
# ---------------------------------------------------------------------------------------------------
def _tamper_future(panel, origin, seed=5):
    """Change everything at/after the origin: counts x10, new cells, extra weeks, new categories."""
    rng = np.random.default_rng(seed)
    fut = panel[panel.week >= origin].copy()
    fut["n"] = fut["n"] * 10 + 1
    extra = pd.DataFrame({
        "cell": rng.choice(CELLS, 30).astype(np.uint64),
        "week": origin + pd.to_timedelta(rng.integers(0, 8, 30), unit="W"),
        "n": rng.integers(1, 50, 30),
        "cat:A": 0,
    })
    return pd.concat([panel[panel.week < origin], fut, extra], ignore_index=True)


@pytest.mark.parametrize("name", list(ALL_MODELS))
def test_no_leakage_from_the_origin_week_onwards(name):
    panel, _ = synthetic_panel(36, seed=2)
    origin = START + pd.Timedelta(weeks=30)
    tampered = _tamper_future(panel, origin)
    a = clone(ALL_MODELS[name]).fit(panel, cells=CELLS, origin=origin).predict(panel, origin, cells=CELLS)
    b = clone(ALL_MODELS[name]).fit(tampered, cells=CELLS, origin=origin).predict(tampered, origin, cells=CELLS)
    pd.testing.assert_series_equal(a, b)


def test_no_leakage_through_the_backtest():
    # the forecast for an origin is the same whether or not later data exist
    panel, _ = synthetic_panel(36, seed=4)
    origin = START + pd.Timedelta(weeks=30)
    models = {"f": CellRiskForecaster(), "l4": LastKWeeks(4)}
    full = rolling_origin_backtest(panel, CELLS, 9, [origin], models).per_origin
    cut = rolling_origin_backtest(panel[panel.week <= origin], CELLS, 9, [origin], models).per_origin
    pd.testing.assert_frame_equal(full.drop(columns="seconds"), cut.drop(columns="seconds"))


# ---------------------------------------------------------------------------------------------------
# gaps are not zeros
# ---------------------------------------------------------------------------------------------------
def test_missing_periods_are_not_read_as_zeros():
    weeks = [START + pd.Timedelta(weeks=w) for w in list(range(0, 6)) + list(range(10, 12))]
    panel = pd.DataFrame({"cell": np.uint64(CELLS[0]), "week": weeks, "n": 2})
    # weeks 6-9 are a missing export (exposure 0), week 10 only 3/7 observed and holding 2 events
    expo = pd.Series(1.0, index=pd.date_range(START, periods=12, freq="7D"))
    expo.iloc[6:10] = 0.0
    expo.iloc[10] = 3 / 7
    origin = START + pd.Timedelta(weeks=12)
    for model in (AllHistory(), LastKWeeks(4), EWMAHistory(4), CellRiskForecaster()):
        m = clone(model).fit(panel, cells=CELLS[:1], exposure=expo, origin=origin)
        s = m.predict(panel, origin, cells=CELLS[:1], exposure=expo)
        assert s.iloc[0] >= 2.0 - 1e-9, type(model).__name__
    # a plain rate: 16 events over 7 3/7 observed weeks
    assert AllHistory().predict(panel, origin, exposure=expo).iloc[0] == pytest.approx(16 / (7 + 3 / 7))
    # the 4-week window holds weeks 8-11: 4 events over 1 3/7 observed weeks
    assert LastKWeeks(4).predict(panel, origin, exposure=expo).iloc[0] == pytest.approx(4 / (1 + 3 / 7))


def test_day_coverage_detects_gaps_and_outages():
    days = pd.date_range("2016-08-01", "2016-09-30").append(pd.date_range("2016-11-01", "2016-11-30"))
    cov = day_coverage(np.repeat(days.values, 3))
    assert cov["2016-10-01":"2016-10-31"].eq(0).all()
    assert cov["2016-08-01":"2016-09-30"].eq(1).all() and cov["2016-11-01":].eq(1).all()
    # a short empty run is a real zero day, not a gap
    short = days[(days != pd.Timestamp("2016-08-10")) & (days != pd.Timestamp("2016-08-11"))]
    assert day_coverage(short)["2016-08-10"] == 1.0
    # hourly outage detection: every hour has events except 12:00-21:59 on day 2, data ends 14:xx day 3
    hours = pd.date_range("2018-05-01", "2018-05-03 14:30", freq="20min")
    hours = hours[~((hours >= "2018-05-02 12:00") & (hours < "2018-05-02 22:00"))]
    c = day_coverage(hours, gap_hours=6)
    assert c["2018-05-01"] == 1.0
    assert c["2018-05-02"] == pytest.approx(14 / 24)
    assert c["2018-05-03"] == pytest.approx(15 / 24)
    ex = exposure_from_days(c, "1D")
    assert ex.tolist() == pytest.approx([1.0, 14 / 24, 15 / 24])


def test_portland_scoring_rule_keeps_exactly_four_weeks():
    days = pd.date_range("2016-08-01", "2016-09-30").append(pd.date_range("2016-11-01", "2016-11-30"))
    o = scorable_origins(days, "7D", min_history_days=28)
    assert [d.strftime("%m-%d") for d in o] == ["08-29", "09-05", "09-12", "09-19"]


# ---------------------------------------------------------------------------------------------------
# panel helpers and backtest
# ---------------------------------------------------------------------------------------------------
def test_events_to_panel_and_study_cells():
    ev = pd.DataFrame({
        "lon": [-122.68, -122.68, -122.60, np.nan],
        "lat": [45.52, 45.52, 45.50, 45.5],
        "t": pd.to_datetime(["2020-01-07", "2020-01-12", "2020-01-13", "2020-01-13"]),
        "kind": ["x", "y", "x", "x"],
    })
    p = events_to_panel(ev, 9, time_col="t", category_col="kind")
    assert p["cell"].dtype == np.uint64
    assert p["n"].sum() == 3                           # the row without coordinates is dropped
    assert set(p["week"]) == {pd.Timestamp("2020-01-06"), pd.Timestamp("2020-01-13")}
    assert {"cat:x", "cat:y"} <= set(p.columns)
    assert period_floor(["2020-01-12 23:00"], "7D")[0] == pd.Timestamp("2020-01-06")
    poly = shapely.Point(-122.68, 45.52).buffer(0.01)
    cells = study_area_cells(poly, 9)
    assert cells.dtype == np.uint64 and cells.size > 10
    assert cells_from_lonlat([-122.68], [45.52], 9)[0] in cells


def test_rolling_origin_backtest_table():
    panel, _ = synthetic_panel(30, seed=6)
    origins = [START + pd.Timedelta(weeks=w) for w in (26, 27, 28)]
    res = rolling_origin_backtest(panel, CELLS, 9, origins,
                                  {"forecaster": CellRiskForecaster(), "last-4": LastKWeeks(4)},
                                  area_fractions=(0.05, 0.2))
    per = res.per_origin
    assert len(per) == 3 * 2 * 2
    assert {"pai", "pei", "hit_rate", "ceiling_pai", "n_star"} <= set(per.columns)
    assert (per["pai"] <= per["ceiling_pai"] + 1e-9).all()
    assert per["pei"].between(0, 1).all()
    text = res.to_text("synthetic")
    for token in ("PAI@5%", "PEI@5%", "PAI@20%", "ceil@20%", "forecaster", "last-4"):
        assert token in text


def test_forecaster_learns_spatial_smoothing_on_sparse_data():
    # sparse counts on a smooth surface: the tuned kernel borrows from neighbours, and its top cells hold
    # at least as much *true* risk as the raw all-history count's (scored on the known rates, not on
    # one noisy week)
    panel, lam = synthetic_panel(30, seed=7, sparse=True)
    k = 17  # 10 % of the cells
    gains = []
    for w in (16, 20, 24, 28):
        origin = START + pd.Timedelta(weeks=w)
        m = CellRiskForecaster().fit(panel, cells=CELLS, origin=origin)
        f = m.predict(panel, origin, cells=CELLS).to_numpy()
        a = AllHistory().predict(panel, origin, cells=CELLS).to_numpy()
        gains.append(lam[np.argsort(-f, kind="stable")[:k]].sum() - lam[np.argsort(-a, kind="stable")[:k]].sum())
    assert m.kernel_table_ is not None
    assert m.kernel_params_["a1"] + m.kernel_params_["a2"] > 0
    assert np.mean(gains) > 0


def test_kernel_parts_are_past_only_rates_and_match_the_forecaster():
    panel, _ = synthetic_panel(30, seed=4, sparse=True)
    g = build_grid(panel, cells=CELLS)                   # the whole series, future weeks included
    t = 20
    E, R1E, R2E, Rc = kernel_parts(g, [t], np.inf, 4)
    # own rate = all-history rate before t; recent = last 4 weeks; rings = neighbour sums of the own rate
    assert np.allclose(E[:, 0], g.Y[:, :t].sum(axis=1) / t)
    assert np.allclose(Rc[:, 0], g.Y[:, t - 4:t].sum(axis=1) / 4)
    i = int(np.flatnonzero(CELLS == CENTRE)[0])
    ring1 = np.isin(CELLS, np.asarray(h3n.grid_ring(int(CENTRE), 1), dtype=np.uint64))
    assert R1E[i, 0] == pytest.approx(E[ring1, 0].sum())
    assert np.allclose(R2E, ring_matrix(CELLS, 2) @ E)
    # nothing at or after t is read
    g.Y[:, t:] += 99.0
    for a, b in zip(kernel_parts(g, [t], 8.0, 4), kernel_parts(build_grid(panel, cells=CELLS), [t], 8.0, 4),
                    strict=True):
        assert np.allclose(a, b)
    # the forecaster's prediction at an origin is kernel_score of its chosen parameters
    origin = START + pd.Timedelta(weeks=t)
    m = CellRiskForecaster().fit(panel, cells=CELLS, origin=origin)
    p = m.kernel_params_
    parts = kernel_parts(build_grid(panel, cells=CELLS), [t], p["halflife"], 4)
    expected = kernel_score(parts, p["a1"], p["a2"], p["b"])[:, 0]
    assert np.allclose(m.predict(panel, origin, cells=CELLS).to_numpy(), expected)
    assert np.allclose(kernel_score(parts, 0.5, 0.0, 2.0), parts[0] + 0.5 * parts[1] + 2.0 * parts[3])


# ---------------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------------
def test_real_portland_res9_forecaster_at_least_matches_last4(shared_data):
    # about 4 s: two weekly origins on the real NIJ data (not marked slow)
    df, text = run_backtest("portland-cfs", 9, origins=["2016-09-12", "2016-09-19"], data_dir=shared_data,
                            models={"forecaster": CellRiskForecaster(), "last-4": LastKWeeks(4)})
    s = df.attrs["summary"]
    assert "PEI@5%" in text and "ceil@5%" in text
    assert s.loc["forecaster", "pai@0.05"] >= s.loc["last-4", "pai@0.05"] - 1e-9
    assert s.loc["forecaster", "pai@0.05"] <= s.loc["forecaster", "ceiling_pai@0.05"]
    # the naive baseline reproduces the published anchor scale (PAI@5 % ~7.5, ceiling ~8.7)
    assert 6.5 < s.loc["last-4", "pai@0.05"] < 8.5
