import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from geodata.areas import demo_area_set
from geodata.crs import gcj02_to_wgs84
from pipelines.demo_generator import DemoGenerator


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def areas():
    return demo_area_set()


def test_same_seed_gives_identical_files(areas, tmp_path):
    a = DemoGenerator(areas, n_events=3000, end_date="2026-06-30", seed=11).generate(tmp_path / "a")
    b = DemoGenerator(areas, n_events=3000, end_date="2026-06-30", seed=11).generate(tmp_path / "b")
    c = DemoGenerator(areas, n_events=3000, end_date="2026-06-30", seed=12).generate(tmp_path / "c")
    assert _digests(a.out_dir) == _digests(b.out_dir)
    assert _digests(a.out_dir) != _digests(c.out_dir)


@pytest.fixture(scope="module")
def demo(areas, tmp_path_factory):
    return DemoGenerator(areas, n_events=6000, end_date="2026-11-15", seed=3).generate(tmp_path_factory.mktemp("d"))


def test_native_forms_of_both_sources(demo):
    names = {p.name for p in demo.grid_files + demo.police_files}
    assert "网格巡查上报_最近30天.xlsx" in names and "非警务警情.csv" in names
    assert any(n.endswith(".csv") and n.startswith("网格巡查上报_") for n in names)
    police = demo.police_files[0]
    assert police.read_bytes()[:3] == b"\xef\xbb\xbf"  # UTF-8 with BOM, as police exports often are
    frame = pd.read_csv(police, dtype=str, encoding="utf-8-sig")
    assert frame["报警类别代码"].str.fullmatch(r"\d{6}").all()
    # free text carries names and phone numbers that the loader has to redact
    assert frame["报警内容"].str.contains(r"1[3-9]\d{9}").mean() > 0.95
    assert (frame.apply(lambda r: r["报警人姓名"] in r["报警内容"], axis=1)).mean() > 0.95
    address_only = frame["经度"].isna()
    assert 0.05 < address_only.mean() < 0.2 and frame.loc[address_only, "案发地址"].notna().all()
    grid = pd.read_excel([p for p in demo.grid_files if p.suffix == ".xlsx"][0], dtype=str)
    assert {"事件编号", "上报时间", "经度", "纬度", "坐标系", "处理状态", "办理期限", "所属网格"} <= set(grid.columns)
    assert set(grid["坐标系"]) == {"GCJ02", "BD09"}
    assert set(grid["处理状态"]) <= {"登记受理", "先行调解", "风险研判", "分类流转", "跟踪督办", "案结事了", "已办结"}


def test_grid_coordinates_are_gcj02_of_the_true_points(demo):
    truth = pd.read_parquet(demo.truth_dir / "events.parquet").set_index("event_id")
    csv = [p for p in demo.grid_files if p.suffix == ".csv"]
    frame = pd.concat([pd.read_csv(p, dtype={"事件编号": str}) for p in csv])
    gcj = frame[frame["坐标系"] == "GCJ02"].head(500)
    lng, lat = gcj02_to_wgs84(lng=gcj["经度"].to_numpy(), lat=gcj["纬度"].to_numpy())
    t = truth.loc["grid:" + gcj["事件编号"]]
    err_m = np.hypot((lng - t["lng"].to_numpy()) * 102_000, (lat - t["lat"].to_numpy()) * 110_540)
    assert err_m.max() < 1.0  # rounding to 6 decimals only
    raw_err = np.hypot((gcj["经度"].to_numpy() - t["lng"].to_numpy()) * 102_000,
                       (gcj["纬度"].to_numpy() - t["lat"].to_numpy()) * 110_540)
    assert raw_err.min() > 100  # the GCJ offset is real: treating it as WGS84 would misplace every point


def test_ground_truth_is_written(demo):
    meta = json.loads((demo.truth_dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["n_events"] == demo.n_events
    anomalies = pd.read_csv(demo.truth_dir / "anomalies.csv")
    assert {"spike", "cluster"} == set(anomalies["kind"])
    links = pd.read_csv(demo.truth_dir / "links.csv")
    assert len(links) > 50
    assert links["grid_event_id"].str.startswith("grid:").all() and links["police_event_id"].str.startswith("police:").all()


def test_wage_arrears_rise_before_the_spring_festival(demo):
    truth = pd.read_parquet(demo.truth_dir / "events.parquet")
    month = truth["reported"].dt.month
    wage = truth["category_code"] == "MD1001"
    season = wage[month.isin([12, 1])].mean()
    summer = wage[month.isin([6, 7, 8])].mean()
    assert season > 2 * summer


def test_weekly_seasonality_differs_by_source(demo):
    truth = pd.read_parquet(demo.truth_dir / "events.parquet")
    weekend = truth["reported"].dt.day_of_week >= 5
    grid_weekend = weekend[truth["source"] == "grid"].mean()
    police_weekend = weekend[truth["source"] == "police"].mean()
    assert grid_weekend < 2 / 7 < police_weekend


def test_the_later_export_carries_the_last_weeks_status_changes(demo):
    """Each row of the later export is a record of the earlier grid exports with a new status: closed in the last
    week (shown at a stage before), or shown open again after it was closed (重开)."""
    [update] = demo.update_files
    later = pd.read_csv(update, dtype=str, keep_default_na=False).set_index("事件编号")
    earlier = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in demo.grid_files if p.suffix == ".csv"]
                        + [pd.read_excel(p, dtype=str).fillna("") for p in demo.grid_files if p.suffix == ".xlsx"]
                        ).set_index("事件编号")
    assert len(later) > 0 and later.index.isin(earlier.index).all() and later.index.is_unique
    before = earlier.loc[later.index]
    assert (later.drop(columns=["处理状态", "办结时间", "处理结果", "是否现场处结", "满意度评价"])
            == before.drop(columns=["处理状态", "办结时间", "处理结果", "是否现场处结", "满意度评价"])).all().all()
    closed = later["处理状态"] == "已办结"
    assert (before.loc[closed, "处理状态"] != "已办结").all() and (later.loc[closed, "办结时间"] != "").all()
    assert (before.loc[~closed, "处理状态"] == "已办结").all() and (later.loc[~closed, "办结时间"] == "").all()
    assert closed.any() and (~closed).any()
    earlier_export = pd.Timestamp("2026-11-08")  # a week before the demo's last day, 2026-11-15
    assert (pd.to_datetime(later.loc[closed, "办结时间"]) >= earlier_export).all()
    assert (pd.to_datetime(before.loc[closed, "上报时间"]) < earlier_export).all()
