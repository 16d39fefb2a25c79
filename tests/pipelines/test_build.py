"""Incremental aggregation: a later load re-aggregates only the days it touched, and matches a full rebuild."""
import pandas as pd
import pytest

from onemap.warehouse import connect_readonly
from pipelines.build import build
from pipelines.ingest import ingest

from .test_quarantine import police_row
from .test_upsert import _csv
from .warehouse import query_frame


def test_incremental_build_touches_only_changed_days_and_equals_full(settings, inside, tmp_path):
    rows = [police_row(inside, 接警单编号=f"J{i}", 报警时间=f"2026-10-{1 + i % 20:02d} 10:00:00",
                       办理期限="2026-11-30 00:00:00") for i in range(60)]
    ingest(settings, "police", [_csv(tmp_path / "a.csv", rows)], progress=False)
    first = build(settings, as_of=pd.Timestamp("2026-11-20", tz="Asia/Shanghai"))
    assert first["days_rebuilt"] == -1  # the first build aggregates everything
    more = [police_row(inside, 接警单编号=f"K{i}", 报警时间="2026-10-05 12:00:00", 办理期限="2026-11-30 00:00:00")
            for i in range(7)]
    ingest(settings, "police", [_csv(tmp_path / "b.csv", more)], progress=False)
    second = build(settings, as_of=pd.Timestamp("2026-11-20", tz="Asia/Shanghai"))
    assert second["days_rebuilt"] == 1
    incremental = query_frame(settings, "SELECT * FROM hex.cell_day ORDER BY ALL")
    build(settings, as_of=pd.Timestamp("2026-11-20", tz="Asia/Shanghai"), full=True)
    full = query_frame(settings, "SELECT * FROM hex.cell_day ORDER BY ALL")
    pd.testing.assert_frame_equal(incremental, full)
    day = query_frame(settings, "SELECT sum(n) AS n FROM hex.cell_day WHERE resolution = 8 AND day = '2026-10-05'")
    assert int(day["n"].iloc[0]) == 3 + 7


@pytest.mark.parametrize("table", ["scores.hotspots", "scores.outliers", "scores.alerts", "scores.repeat_places"])
def test_scores_carry_a_recorded_model_run(demo_settings, table):
    con = connect_readonly(demo_settings.warehouse_path)
    try:
        runs = con.execute(f"SELECT count(*) FROM {table} t JOIN meta.model_runs r USING (run_id)").fetchall()[0][0]
        total = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()
    assert runs == total
    assert total > 0 or table == "scores.repeat_places"  # the small test demo may have no repeat place


def test_build_puts_a_slow_build_up_into_scores_alerts_as_a_ramp(settings, tmp_path):
    """16 weeks of calm calls at five places, then a three-fold rise over the last three weeks at one."""
    import numpy as np
    from h3.api import basic_int as h3i

    from geodata.areas import demo_area_set
    from onemap import queries
    from onemap.cli import main

    grids = demo_area_set().grids
    spots = [grids.geometry.iloc[i].representative_point() for i in (40, 120, 200, 280, 360)]
    days = pd.date_range("2026-07-31", "2026-11-19")
    rng = np.random.default_rng(5)
    rows = []
    for j, p in enumerate(spots):
        rise = 1 + 2 * np.clip((np.arange(days.size) - (days.size - 21)) / 13, 0, 1) if j == 2 else np.ones(days.size)
        for d, m in zip(days, rise, strict=True):
            for i in range(rng.poisson(1.5 * m)):
                rows.append(police_row((p.x, p.y, ""), 接警单编号=f"R{j}-{d:%m%d}-{i}", 报警时间=f"{d:%Y-%m-%d} 1{i % 10}:00:00",
                                       办理期限="2026-12-31 00:00:00"))
    ingest(settings, "police", [_csv(tmp_path / "ramp.csv", rows)], progress=False)
    build(settings, as_of=pd.Timestamp("2026-11-20", tz="Asia/Shanghai"))
    ramps = query_frame(settings, "SELECT * FROM scores.alerts WHERE kind = 'ramp'")
    assert len(ramps) >= 1
    assert (ramps["window_end"].astype(str) == "2026-11-19").all()
    run = (pd.to_datetime(ramps["window_end"]) - pd.to_datetime(ramps["window_start"])).dt.days + 1
    assert (ramps["window_days"] == run).all() and (ramps["q_value"] <= 0.05).all()
    rising = h3i.latlng_to_cell(spots[2].y, spots[2].x, 8)
    near = {int(c) for c in h3i.grid_disk(rising, 1)}
    top = ramps.sort_values("score", ascending=False).iloc[0]
    assert int(top["cell"]) in near
    assert "持续上升" in top["sentence_zh"] and top["observed"] > 1.5 * top["expected"]
    # the command line and the dashboard's query both show it
    con = connect_readonly(settings.warehouse_path)
    try:
        shown = queries.alerts(con, window_days=7, with_ramps=True)
        hidden = queries.alerts(con, window_days=7)
    finally:
        con.close()
    assert (shown["kind"] == "ramp").sum() == len(ramps) and (hidden["kind"] == "ramp").sum() == 0
    assert main(["--home", str(settings.home), "alerts", "--kind", "ramp"]) == 0


def test_hotspot_time_step_setting_reaches_the_recorded_run(settings, inside, tmp_path):
    """``[hotspots] time_step`` (ArcGIS's neighbourhood time step): a burst the week before keeps the cell's
    space-time z up this week, is recorded with the run, and is refused outside 0..25."""
    import dataclasses
    import json

    from onemap.settings import SettingsError, load_settings

    rows = [police_row(inside, 接警单编号=f"B{i}", 报警时间=f"2026-11-0{3 + i % 3} 10:00:00",
                       办理期限="2026-12-31 00:00:00") for i in range(12)]
    rows += [police_row(inside, 接警单编号="N1", 报警时间="2026-11-14 10:00:00", 办理期限="2026-12-31 00:00:00")]
    ingest(settings, "police", [_csv(tmp_path / "burst.csv", rows)], progress=False)
    sql = ("SELECT h.cell, h.z, r.params FROM scores.hotspots h JOIN meta.model_runs r USING (run_id) "
           "WHERE h.resolution = 9 AND h.count > 0")  # the cell of this week's one event
    as_of = pd.Timestamp("2026-11-20", tz="Asia/Shanghai")
    build(settings, as_of=as_of)
    spatial = query_frame(settings, sql).iloc[0]
    build(dataclasses.replace(settings, hotspot_time_step=2), as_of=as_of, full=True)
    space_time = query_frame(settings, sql).iloc[0]
    assert json.loads(spatial["params"])["time_step"] == 0
    params = json.loads(space_time["params"])
    assert params["time_step"] == 2 and params["global_window"] == "cube"
    assert space_time["cell"] == spatial["cell"]
    assert space_time["z"] > spatial["z"] + 2  # this week's neighbourhood reaches back to the burst
    with pytest.raises(SettingsError, match="time_step"):
        load_settings(environ={"ONEMAP_HOME": str(tmp_path / "h2"), "ONEMAP_HOTSPOTS__TIME_STEP": "-1"},
                      local_file=tmp_path / "none.toml")


def test_a_warehouse_from_before_a_new_aggregate_column_gains_and_fills_it(demo_settings, tmp_path):
    """hex.cell_day.n_sensitive came after the first warehouses: opening one for writing adds the column, and
    the next (incremental) build finds the unfilled rows and re-aggregates everything."""
    import dataclasses
    import shutil

    import duckdb

    from onemap.categories import SENSITIVE_FLAGS

    home = tmp_path / "home"
    shutil.copytree(demo_settings.home, home)
    settings = dataclasses.replace(demo_settings, home=home)
    old = duckdb.connect(str(settings.warehouse_path))
    old.execute("ALTER TABLE hex.cell_day DROP COLUMN n_sensitive")
    old.close()
    with pytest.raises(ValueError, match=r"lacks hex.cell_day.n_sensitive\): run `onemap build`"):
        connect_readonly(settings.warehouse_path)  # the map and the brief say what to do, not a SQL error
    stats = build(settings, as_of=pd.Timestamp("2026-11-16", tz="Asia/Shanghai"))
    assert stats["days_rebuilt"] == -1
    con = connect_readonly(settings.warehouse_path)
    try:
        got = con.execute("SELECT sum(n_sensitive), count(*) FILTER (WHERE n_sensitive IS NULL) FROM hex.cell_day "
                          "WHERE resolution = 10").fetchall()[0]
        expected = con.execute("SELECT count(*) FROM core.events WHERE h3_cell IS NOT NULL AND "
                               "list_has_any(coalesce(flags, []), ?)", [SENSITIVE_FLAGS]).fetchall()[0][0]
    finally:
        con.close()
    assert got == (expected, 0) and expected > 0


def test_a_later_build_keeps_the_alerts_of_earlier_weeks(demo_settings, tmp_path):
    """Alert archive: a build rescoring the last 14 days keeps what earlier builds alerted before that, so the
    brief of a past week still lists its alerts; the runs that own them stay recorded."""
    import dataclasses
    import datetime as dt
    import shutil

    from onemap import queries
    from onemap.warehouse import write_session

    home = tmp_path / "home"
    shutil.copytree(demo_settings.home, home)
    settings = dataclasses.replace(demo_settings, home=home)
    con = connect_readonly(settings.warehouse_path)
    first = queries.alerts(con)
    first_span = queries.alert_spans(con)
    con.close()
    assert len(first) and len(first_span) == 1
    # three weeks later: move every event 21 days on (the data now ends three weeks after the first build's)
    with write_session(settings.warehouse_path) as w:
        w.execute("UPDATE core.events SET reported_at = reported_at + INTERVAL 21 DAY, "
                  "occurred_at = occurred_at + INTERVAL 21 DAY, due_at = due_at + INTERVAL 21 DAY, "
                  "closed_at = closed_at + INTERVAL 21 DAY, first_closed_at = first_closed_at + INTERVAL 21 DAY, "
                  "reopened_at = reopened_at + INTERVAL 21 DAY, updated_at = now()")
    build(settings, as_of=pd.Timestamp("2026-12-07", tz="Asia/Shanghai"))
    con = connect_readonly(settings.warehouse_path)
    try:
        spans = queries.alert_spans(con)
        kept = queries.alerts(con)
        new_from = spans[-1][0]
        assert len(spans) == 2 and spans[0] == first_span[0] and new_from > first_span[0][1]
        old = kept[kept["window_end"] < f"{new_from}"]
        # the first build's alerts, all of them (their windows end before the new span), unchanged
        pd.testing.assert_frame_equal(old.reset_index(drop=True),
                                      first[first["window_end"] < f"{new_from}"].reset_index(drop=True))
        assert queries.alerts_scored(con, first_span[0][1]) and queries.alerts_scored(con, spans[-1][1])
        assert not queries.alerts_scored(con, first_span[0][1] + dt.timedelta(days=1))  # the gap between builds
        runs = con.execute("SELECT count(*) FROM meta.model_runs WHERE model = 'unusual_now'").fetchall()[0][0]
        assert runs == 2
    finally:
        con.close()
