"""Incremental aggregation: a later load re-aggregates only the days it touched, and matches a full rebuild."""
import pandas as pd
import pytest

from onemap.warehouse import connect_readonly
from pipelines.build import build
from pipelines.ingest import ingest

from .test_quarantine import police_row
from .test_upsert import _csv


def _table(settings, sql):
    con = connect_readonly(settings.warehouse_path)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


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
    incremental = _table(settings, "SELECT * FROM hex.cell_day ORDER BY ALL")
    build(settings, as_of=pd.Timestamp("2026-11-20", tz="Asia/Shanghai"), full=True)
    full = _table(settings, "SELECT * FROM hex.cell_day ORDER BY ALL")
    pd.testing.assert_frame_equal(incremental, full)
    day = _table(settings, "SELECT sum(n) AS n FROM hex.cell_day WHERE resolution = 8 AND day = '2026-10-05'")
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
