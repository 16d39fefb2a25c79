"""hex.cell_day / hex.area_day equal a straightforward count of core.events (h3-py parents, pandas groupby)."""
import h3
import pandas as pd

from onemap.warehouse import connect_readonly
from pipelines.aggregate import AREA_LEVELS

KEYS = ["day", "category_code", "source"]


def _read(settings):
    con = connect_readonly(settings.warehouse_path, settings.timezone)
    try:
        events = con.execute("SELECT h3_cell, reported_at, category_code, source, town_code, village_code, grid_code "
                             "FROM core.events").df()
        cells = con.execute("SELECT resolution, cell, day, category_code, source, n FROM hex.cell_day").df()
        areas = con.execute("SELECT level, code, day, category_code, source, n FROM hex.area_day").df()
    finally:
        con.close()
    events["day"] = events["reported_at"].dt.tz_convert(settings.timezone).dt.date
    return events, cells, areas


def _same(got: pd.DataFrame, want: pd.DataFrame, by: list[str]) -> None:
    got = got.assign(day=pd.to_datetime(got["day"]).dt.date)[by + ["n"]].astype({"n": "int64"})
    want = want[by + ["n"]].astype({"n": "int64"})
    got = got.sort_values(by, ignore_index=True)
    want = want.sort_values(by, ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_aggregates_equal_a_plain_count_of_the_events(demo_settings):
    events, cells, areas = _read(demo_settings)
    located = events[events["h3_cell"].notna()]
    assert len(located) > 1000
    for res in demo_settings.h3_resolutions:
        parent = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), res)) for c in located["h3_cell"]]
        want = located.assign(cell=pd.array(parent, dtype="UInt64")).groupby(["cell", *KEYS]).size()
        _same(cells[cells["resolution"] == res].drop(columns="resolution"),
              want.rename("n").reset_index(), ["cell", *KEYS])
    assert set(cells["resolution"]) == set(demo_settings.h3_resolutions)
    for level in AREA_LEVELS:
        want = events[events[f"{level}_code"].notna()].groupby([f"{level}_code", *KEYS]).size()
        _same(areas[areas["level"] == level].drop(columns="level"),
              want.rename("n").reset_index().rename(columns={f"{level}_code": "code"}), ["code", *KEYS])
    assert set(areas["level"]) == set(AREA_LEVELS)


def test_an_export_moving_an_event_without_a_point_to_another_day_leaves_no_count_on_the_old_day(settings, inside,
                                                                                                  tmp_path):
    """Events placed by address only are counted in hex.area_day alone: a later export that moves one to another
    day must take it off the old day too (the incremental refresh re-aggregated the new day only)."""
    from pipelines.build import build
    from pipelines.ingest import ingest

    from .test_quarantine import police_row

    def load(name, rows):
        pd.DataFrame(rows).to_csv(tmp_path / name, index=False)
        return ingest(settings, "police", [tmp_path / name], progress=False)

    no_point = {"经度": "", "纬度": ""}
    load("w1.csv", [police_row(inside, 接警单编号=f"A{i}", **no_point) for i in range(3)]
         + [police_row(inside, 接警单编号="P")])
    build(settings)
    load("w2.csv", [police_row(inside, 接警单编号="A0", 报警时间="2026-11-05 10:00:00", 接警单状态="先行调解", **no_point)])
    events, cells, areas = _read(settings)
    assert events["h3_cell"].isna().sum() == 3 and events["town_code"].notna().all()
    for level in AREA_LEVELS:
        want = events[events[f"{level}_code"].notna()].groupby([f"{level}_code", *KEYS]).size()
        _same(areas[areas["level"] == level].drop(columns="level"),
              want.rename("n").reset_index().rename(columns={f"{level}_code": "code"}), ["code", *KEYS])
