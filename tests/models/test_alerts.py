""""Unusual now" alerts: BH control on noise, injected spikes and spread clusters, drivers, Chinese
sentences, surprise-score properties and the detection evaluation used by the bench."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from h3.api import basic_int as h3i
from hypothesis import given, settings
from hypothesis import strategies as st

from models.alert_eval import evaluate_detection
from models.alerts import (
    ALERT_COLUMNS,
    bh_qvalues,
    category_label,
    score_cells,
    score_window,
    select_alerts,
    surprise,
)
from models.expected import ExpectedCounts, day_numbers
from models.stats import fdr_bh

CENTRE = h3i.latlng_to_cell(22.78, 115.37, 9)  # 汕尾市城区, res 9
CATS = np.array(["CG", "MD02", "MD1001", "MD15"])
MIX = np.array([0.3, 0.4, 0.1, 0.2])
END = "2026-11-15"  # a Sunday; the scored week is 11-09 … 11-15


@pytest.fixture(scope="module")
def city():
    """Two years of Poisson noise with a weekday profile over 217 res-9 cells and 4 categories."""
    rng = np.random.default_rng(11)
    cells = np.array(h3i.grid_disk(CENTRE, 8), dtype=np.uint64)
    rate = rng.gamma(1.5, 0.25, cells.size)
    days = pd.date_range("2024-11-16", END)
    dow = np.array([1.0, 1.1, 1.1, 1.0, 1.2, 0.6, 0.5])[days.day_of_week.to_numpy()]
    Y = rng.poisson(rate[:, None, None] * dow[None, :, None] * MIX[None, None, :])
    c, d, k = np.nonzero(Y)
    panel = pd.DataFrame({"cell": cells[c], "day": days[d], "category_code": CATS[k], "n": Y[c, d, k]})
    return cells, rate, panel


def _events(cell, day: str, cats: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"cell": np.uint64(cell), "day": pd.Timestamp(day), "category_code": cats, "n": 1})


def test_pure_noise_gives_few_or_no_alerts(city):
    _, _, panel = city
    total, per_window = 0, []
    for end in pd.date_range("2026-09-27", END, freq="7D"):  # 8 weekly windows
        a = score_window(panel, end, 7)
        assert list(a.columns) == ALERT_COLUMNS
        per_window.append(len(a))
        total += len(a)
    # per window and family BH keeps the chance of any false alert near alpha: 4 families × 8 windows × 0.05
    assert total <= 4
    daily = score_window(panel, END, 1)
    assert len(daily) <= 1


def test_injected_spike_is_found_with_its_cell_and_drivers(city):
    cells, _, panel = city
    target = cells[40]
    inj = pd.concat([_events(target, "2026-11-10", ["MD02"] * 4), _events(target, "2026-11-12", ["MD02"] * 3),
                     _events(target, "2026-11-14", ["MD15"] * 3)])
    a = score_window(pd.concat([panel, inj], ignore_index=True), END, 7)
    top = a.iloc[0]
    assert top["kind"] == "cell"
    assert top["cell"] == h3i.int_to_str(int(target))
    assert top["resolution"] == 9
    assert top["observed"] >= 10 and top["expected"] < top["observed"] / 2
    assert top["q_value"] <= 0.05 and top["p_value"] <= top["q_value"]
    assert top["window_start"] == pd.Timestamp("2026-11-09").date()
    assert top["window_end"] == pd.Timestamp(END).date()
    drivers = top["drivers"]
    assert drivers[0]["category_code"] == "MD02" and drivers[0]["observed"] >= 7
    assert drivers[0]["name_zh"] == "邻里纠纷"
    assert {"MD02", "MD15"} <= {d["category_code"] for d in drivers}
    # the same spike is not reported again as its neighbourhood or as its categories
    assert not ((a["kind"] != "cell") & (a["cell"] == top["cell"])).any()
    assert a["score"].is_monotonic_decreasing


def test_sentence_names_observed_expected_and_top_category(city):
    cells, rate, panel = city
    target = cells[int(np.argmax(rate))]  # a busy cell: expected is several events a week
    inj = pd.concat([_events(target, "2026-11-10", ["MD02"] * 12), _events(target, "2026-11-12", ["MD15"] * 7)])
    top = score_window(pd.concat([panel, inj], ignore_index=True), END, 7).iloc[0]
    s = top["sentence_zh"]
    assert f"受理 {top['observed']} 件" in s
    exp = top["expected"]
    assert exp > 1 and ((f"预计约 {exp:.1f} 件" in s) or (f"预计约 {exp:.0f} 件" in s))
    assert "邻里纠纷（" in s and "物业纠纷（" in s
    assert top["cell"] == h3i.int_to_str(int(target)) and top["cell"] not in s
    area = h3i.cell_area(int(target), unit="km^2")
    assert f"该处六边形区域（约 {float(f'{area:.2g}'):g} 平方公里）" in s
    assert "过去7天（11月9日至15日）" in s
    assert s.endswith("。")
    assert f"是预计的 {top['observed'] / exp:.1f} 倍" in s
    assert top["ratio"] == pytest.approx(top["observed"] / exp)


def test_spread_cluster_over_seven_cells_is_a_neighbourhood_alert(city):
    cells, rate, panel = city
    # a quiet spot: +2 or +3 mixed matters in each of the 7 cells of a disk, no cell unusual on its own
    dist = np.array([h3i.grid_distance(CENTRE, int(c)) for c in cells])
    candidates = [c for c, dd in zip(cells, dist, strict=True) if dd <= 6]
    loads = {int(c): rate[np.isin(cells, h3i.grid_disk(int(c), 1))].sum() for c in candidates}
    centre = min(loads, key=loads.get)
    disk = h3i.grid_disk(centre, 1)
    rng = np.random.default_rng(5)
    inj = pd.concat([_events(c, f"2026-11-{10 + i % 5}", list(rng.choice(CATS, int(rng.integers(2, 4)))))
                     for i, c in enumerate(disk)])
    a = score_window(pd.concat([panel, inj], ignore_index=True), END, 7, by_category=False)
    hoods = a[a["kind"] == "neighbourhood"]
    assert len(hoods) >= 1
    disk_hex = {h3i.int_to_str(c) for c in disk}
    first = hoods.iloc[0]
    assert first["cell"] in disk_hex
    assert first["n_cells"] == 7
    assert first["observed"] >= 14
    assert "该处及周边 7 个六边形区域（约 " in first["sentence_zh"] and "平方公里）合计" in first["sentence_zh"]
    assert first["cell"] not in first["sentence_zh"]  # a size for the leader, the hex id in its own column
    # few if any of the seven cells alarm on their own
    assert (a[a["kind"] == "cell"]["cell"].isin(disk_hex)).sum() <= 2


def test_single_category_cluster_is_found_per_category(city):
    cells, _, panel = city
    disk = h3i.grid_disk(int(cells[100]), 1)
    inj = pd.concat([_events(c, "2026-11-12", ["MD1001"] * 2) for c in disk])  # wage arrears at 7 sites
    a = score_window(pd.concat([panel, inj], ignore_index=True), END, 7)
    hits = a[(a["kind"] == "category") & (a["category_code"] == "MD1001") & (a["n_cells"] == 7)]
    if hits.empty:  # the plain neighbourhood alert may carry it instead, naming the category as driver
        hits = a[(a["kind"] == "neighbourhood")]
        assert hits.iloc[0]["drivers"][0]["category_code"] == "MD1001"
    else:
        assert "拖欠农民工工资纠纷" in hits.iloc[0]["sentence_zh"]
    assert hits.iloc[0]["cell"] in {h3i.int_to_str(c) for c in disk}


def test_category_alert_in_an_otherwise_ordinary_cell(city):
    cells, rate, panel = city
    busy = cells[int(np.argmax(rate))]
    inj = _events(busy, "2026-11-11", ["MD1001"] * 6)
    a = score_window(pd.concat([panel, inj], ignore_index=True), END, 7)
    cat = a[(a["kind"] == "category") & (a["cell"] == h3i.int_to_str(int(busy)))]
    assert len(cat) == 1 and cat.iloc[0]["category_code"] == "MD1001"
    assert "拖欠农民工工资纠纷 " in cat.iloc[0]["sentence_zh"]


def test_scoring_never_sees_the_window_in_its_baseline(city):
    cells, _, panel = city
    inj = _events(cells[40], "2026-11-12", ["MD02"] * 12)
    p2 = pd.concat([panel, inj], ignore_index=True)
    a1 = score_window(p2, END, 7)
    m = ExpectedCounts().fit(panel[day_numbers(panel["day"].to_numpy()) < day_numbers("2026-11-09")])
    exp = m.predict(END, 7, cells=[cells[40]])["expected"].iloc[0]
    row = a1[a1["cell"] == h3i.int_to_str(int(cells[40]))].iloc[0]
    assert row["expected"] == pytest.approx(exp, rel=0.02)


@settings(max_examples=60, deadline=None)
@given(mu=st.floats(0.01, 200.0), alpha=st.sampled_from([0.0, 0.05, 0.5, 2.0]), y0=st.integers(0, 400))
def test_score_is_monotone_in_observed(mu, alpha, y0):
    ys = np.arange(y0, y0 + 40)
    p, score = surprise(ys, mu, alpha)
    assert np.all(np.diff(score) >= -1e-9)
    assert np.all(np.diff(p) <= 1e-12)
    assert np.all(np.isfinite(score)) and np.all((p >= 0) & (p <= 1))
    # strictly increasing once above the mean (until the double floor)
    above = (ys[:-1] > mu + 1) & (p[1:] > 1e-290)
    assert np.all(np.diff(score)[above] > 0)


def test_surprise_matches_scipy_and_tail_underflow():
    from scipy import stats

    p, s = surprise([0, 1, 5, 10], 2.0, 0.0)
    np.testing.assert_allclose(p, [1.0, stats.poisson.sf(0, 2), stats.poisson.sf(4, 2), stats.poisson.sf(9, 2)])
    np.testing.assert_allclose(s, -np.log10(p))
    p, s = surprise(10, 2.0, 0.5)
    assert p == pytest.approx(stats.nbinom.sf(9, 2.0, 1 / (1 + 0.5 * 2.0)))
    _, s_big = surprise([400, 401], 0.5, 0.0)  # p underflows: the score stays finite and ordered
    assert np.isfinite(s_big).all() and s_big[1] > s_big[0] > 300


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=60), st.sampled_from([0.01, 0.05, 0.2]))
def test_bh_qvalues_agree_with_fdr_bh(p, alpha):
    p = np.asarray(p)
    np.testing.assert_array_equal(bh_qvalues(p) <= alpha, fdr_bh(p, alpha))


def test_category_labels():
    assert category_label("MD02") == "邻里纠纷"
    assert category_label("MD10") == "劳动争议"
    assert category_label("MD1001") == "拖欠农民工工资纠纷"
    assert category_label("CG") == "城市管理类事件"
    assert category_label("DISORDER") == "DISORDER"


def test_daily_window_sentence_and_select_alerts_cap(city):
    cells, _, panel = city
    inj = pd.concat([_events(cells[7], "2026-11-15", ["MD15"] * 8), _events(cells[90], "2026-11-15", ["CG"] * 8)])
    p2 = pd.concat([panel, inj], ignore_index=True)
    a = score_window(p2, END, 1)
    assert {h3i.int_to_str(int(cells[7])), h3i.int_to_str(int(cells[90]))} <= set(a["cell"])
    assert a.iloc[0]["sentence_zh"].startswith("11月15日当天，")
    assert len(score_window(p2, END, 1, max_alerts=1)) == 1


def test_evaluate_detection_recall_and_false_alarms(city):
    cells, _, panel = city
    start = day_numbers("2026-11-09")
    m = ExpectedCounts().fit(panel[day_numbers(panel["day"].to_numpy()) < start], end=int(start) - 1)
    base = panel[day_numbers(panel["day"].to_numpy()) >= start]
    spike = cells[30]
    cluster = h3i.grid_disk(int(cells[150]), 1)
    inj = pd.concat([_events(spike, "2026-11-12", ["MD02"] * 9)]
                    + [_events(c, "2026-11-13", ["CG", "MD15", "MD02"]) for c in cluster])
    sw = score_cells(m, pd.concat([base, inj], ignore_index=True), END, 7)
    truth = pd.DataFrame({"anomaly_id": [1] + [2] * 7, "kind": ["spike"] + ["cluster"] * 7,
                          "cell": [int(spike)] + list(cluster), "window_end": END})
    res = evaluate_detection([sw], truth, fa_per_day=(1,))
    got = res.set_index(["mode", "kind"])["recall"]
    assert got[("cell", "spike")] == 1.0
    assert got[("neighbourhood", "cluster")] == 1.0
    assert got[("combined", "spike")] == 1.0 and got[("combined", "cluster")] == 1.0
    assert (res[res["mode"] != "bh"]["fa_per_day"] <= 1.0).all()
    bh = res[res["mode"] == "bh"].set_index("kind")["recall"]
    assert bh["spike"] == 1.0
    # the operational table agrees with the BH row
    alerts = select_alerts(sw)
    assert h3i.int_to_str(int(spike)) in set(alerts["cell"])


def test_real_portland_week_is_calm(shared_data):
    """On real calls (Portland, res 9) a plain week yields a handful of alerts, not hundreds."""
    from geodata.h3cells import cells_from_points

    d = pd.read_parquet(shared_data / "portland_nij_cfs_2016_aug_sep_nov.parquet").dropna(subset=["lon", "lat"])
    d["cell"] = cells_from_points(d["lat"], d["lon"], 9)
    panel = d.groupby(["cell", "occ_date", "call_group"], observed=True).size().reset_index(name="n")
    panel = panel.rename(columns={"occ_date": "day", "call_group": "category_code"})
    a = score_window(panel, "2016-09-25", 7)
    assert len(a) < 60
    assert a["q_value"].le(0.05).all()


def test_a_one_kind_flare_up_in_a_busy_cell_passes_through_its_category_family(city):
    cells, rate, panel = city
    busy = cells[int(np.argmax(rate))]
    inj = _events(busy, "2026-11-11", ["MD1001"] * 6)  # a rare kind: ~0.4 expected in the week
    full = pd.concat([panel, inj], ignore_index=True)
    d = day_numbers(full["day"].to_numpy())
    start = int(day_numbers(END)) - 6
    m = ExpectedCounts().fit(full[d < start], end=start - 1)
    win = full[d >= start]
    with_family = score_cells(m, win, END, 7)
    total_only = score_cells(m, win, END, 7, category_family=False)
    i = int(np.searchsorted(with_family.cells, busy))
    assert with_family.p_cell[i] < total_only.p_cell[i] / 100
    # still a valid p-value: Bonferroni over the K category tests, then over the two tests
    rows, _, _, _, p_pairs, _ = with_family.category_tests()
    K = with_family.observed_cat.shape[1]
    expect = min(1.0, 2 * min(total_only.p_cell[i], K * p_pairs[rows == i].min()))
    assert with_family.p_cell[i] == pytest.approx(expect, rel=1e-6)
    # reported in the words of that category (the cell's total may look ordinary), once
    a = select_alerts(with_family)
    top = a.iloc[0]
    assert top["kind"] == "category" and top["cell"] == h3i.int_to_str(int(busy))
    assert total_only.p_cell[i] > 0.001  # the week's total alone is unremarkable
    assert top["category_code"] == "MD1001" and top["observed"] >= 6 and top["expected"] < 1
    assert top["p_value"] == pytest.approx(with_family.p_cell[i])
    assert (a["cell"] == top["cell"]).sum() == 1
