"""积案: the cases open at a reference time, by stage of the flow and by area, with how long they have been open."""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onemap import queries
from onemap.contracts import CLOSED_STATUSES

BANDS = [name for name, _, _ in queries.AGE_BANDS]
ANY = queries.EventFilter(dt.date(2026, 1, 1), dt.date(2026, 1, 1))  # the period is not used by the backlog


def _closed(ev: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Closed at ``as_of``: by the export's close time, or between a reopened case's earlier close and its reopening."""
    return ((ev["status"].isin(CLOSED_STATUSES) & (ev["closed_at"] <= as_of))
            | ((ev["first_closed_at"] <= as_of) & (ev["reopened_at"] > as_of)))


def _independent(con, as_of: pd.Timestamp, scope=None) -> pd.DataFrame:
    """The open cases at ``as_of`` computed in pandas from core.events, with their age in whole days."""
    ev = con.execute("SELECT status, reported_at, closed_at, first_closed_at, reopened_at, due_at, town_code, "
                     "village_code FROM core.events").df()
    ev = ev[ev["reported_at"] <= as_of]
    if scope is not None:
        ev = ev[ev[f"{scope.level}_code"] == scope.code]
    ev = ev[~_closed(ev, as_of)].copy()
    ev["age"] = np.floor((as_of - ev["reported_at"]).dt.total_seconds() / 86400).astype(int)
    return ev


@pytest.mark.parametrize("days_before", [0, 9, 40])
def test_the_backlog_by_stage_matches_an_independent_count_and_the_daily_backlog(con, days_before):
    built = queries.reference_time(con)
    day = built.date() - dt.timedelta(days=days_before + 1)
    as_of = pd.Timestamp(day + dt.timedelta(days=1), tz=built.tz)  # the end of that day
    table = queries.backlog(con, ANY, as_of, total=True)
    total = table.iloc[-1]
    assert total["name"] == "合计"
    ev = _independent(con, as_of)
    assert total["open"] == len(ev) > 0
    assert total["overdue"] == int((ev["due_at"] < as_of).sum())
    assert total["oldest_days"] == ev["age"].max()
    for name, (_, _, upper), lower in zip(BANDS, queries.AGE_BANDS, [-1, 7, 30, 90], strict=True):
        assert total[name] == int(((ev["age"] > lower) & (ev["age"] <= (upper or 10**6))).sum()), name
    rows = table.iloc[:-1]
    assert (rows[BANDS].sum(axis=1) == rows["open"]).all()  # every case in one band
    assert rows["open"].sum() == total["open"]
    # the same backlog as the daily chart's at that day's end, and the same overdue count as the 督办 list
    daily = queries.daily_series(con, queries.EventFilter(day, day)).iloc[0]
    assert (daily["open"], daily["overdue"]) == (total["open"], total["overdue"])
    assert queries.overdue_cases(con, as_of, limit=1)[1] == total["overdue"]


def test_at_the_last_build_each_case_is_in_its_exported_stage(con):
    table = queries.backlog(con, ANY).set_index("code")
    ev = _independent(con, queries.reference_time(con))
    assert table["open"].to_dict() == {**{s: 0 for s in table.index}, **ev["status"].value_counts().to_dict()}
    assert list(table.index[:5]) == ["登记受理", "先行调解", "风险研判", "分类流转", "跟踪督办"]
    assert queries.UNRECORDED_STAGE not in table.index  # every export loaded by then shows the open cases open


def test_by_area_every_case_is_in_one_row_and_a_town_sees_its_own(con):
    county = queries.backlog(con, ANY, by="area", total=True)
    stages = queries.backlog(con, ANY, total=True)
    assert county.iloc[-1]["open"] == stages.iloc[-1]["open"]  # nothing lost, unplaced cases included
    assert set(county["code"].iloc[:-1].dropna()) == set(queries.child_areas(con, None)["code"])
    town = queries.area_scope(con, county["code"].iloc[0])
    own = queries.backlog(con, queries.EventFilter(ANY.start, ANY.end, scope=town), total=True)
    row = county.iloc[0]
    assert own.iloc[-1][["open", *BANDS, "overdue"]].tolist() == row[["open", *BANDS, "overdue"]].tolist()
    assert own.iloc[-1]["open"] == len(_independent(con, queries.reference_time(con), town))
    villages = queries.backlog(con, queries.EventFilter(ANY.start, ANY.end, scope=town), by="area")
    assert villages["open"].sum() == row["open"]
    assert set(villages["code"].dropna()) <= set(queries.child_areas(con, town)["code"])


def test_category_and_source_filters_narrow_the_backlog(con):
    everything = queries.backlog(con, ANY, total=True).iloc[-1]["open"]
    police = queries.backlog(con, queries.EventFilter(ANY.start, ANY.end, sources=("police",)), total=True)
    grid = queries.backlog(con, queries.EventFilter(ANY.start, ANY.end, sources=("grid",)), total=True)
    assert 0 < police.iloc[-1]["open"] < everything
    assert police.iloc[-1]["open"] + grid.iloc[-1]["open"] == everything
    md = queries.backlog(con, queries.EventFilter(ANY.start, ANY.end, categories=("MD",)), total=True)
    assert 0 < md.iloc[-1]["open"] < everything


def test_a_bad_grouping_is_refused(con):
    with pytest.raises(ValueError, match="stage, area"):
        queries.backlog(con, ANY, by="month")


def test_onemap_backlog_prints_the_queries_numbers(demo_home, con, capsys):
    import json

    from onemap.cli import main

    assert main(["--home", str(demo_home), "backlog", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = queries.backlog(con, ANY, total=True)
    assert [r["name"] for r in rows] == list(expected["name"])
    assert [r["open"] for r in rows] == list(expected["open"])
    town = queries.child_areas(con, None)["code"].iloc[1]
    args = ["--home", str(demo_home), "backlog", "--by", "area", "--area", town, "--source", "grid",
            "--as-of", "2026-10-31"]
    assert main([*args, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    as_of = pd.Timestamp("2026-11-01", tz="Asia/Shanghai")
    flt = queries.EventFilter(ANY.start, ANY.end, sources=("grid",), scope=queries.area_scope(con, town))
    assert [r["open"] for r in rows] == list(queries.backlog(con, flt, as_of, by="area", total=True)["open"])
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "截至 2026-11-01 00:00" in table and "90天以上" in table and "合计" in table
    assert main(["--home", str(demo_home), "backlog", "--area", "999"]) == 2
    assert "no area with code '999'" in capsys.readouterr().err


def _located_open(con, as_of: pd.Timestamp, resolution: int) -> pd.Series:
    """Open cases per H3 cell (hex strings) at ``as_of``, computed in pandas and h3 from core.events."""
    import h3

    ev = con.execute("SELECT status, reported_at, closed_at, first_closed_at, reopened_at, h3_cell "
                     "FROM core.events WHERE h3_cell IS NOT NULL").df()
    ev = ev[(ev["reported_at"] <= as_of) & ~_closed(ev, as_of)]
    cells = ev["h3_cell"].map(lambda c: h3.cell_to_parent(format(int(c), "x"), resolution))
    return cells.value_counts().sort_index()


def test_the_backlog_playback_counts_each_cells_open_cases_at_every_step(con):
    built = queries.reference_time(con)
    last = built.date() - dt.timedelta(days=1)
    flt = queries.EventFilter(last - dt.timedelta(days=20), last)
    steps = queries.backlog_steps(flt, built)
    assert len(steps) == 21 and steps[-1] == pd.Timestamp(last + dt.timedelta(days=1), tz=built.tz)
    cells = queries.backlog_cells(con, flt, 8, steps)
    assert sorted(cells["as_of"].unique()) == steps
    for step in (steps[0], steps[10], steps[-1]):
        got = cells[cells["as_of"] == step].set_index("cell")["n"].sort_index()
        expected = _located_open(con, step, 8)
        assert got.to_dict() == expected.to_dict()
        # the map's single-time 积案 layer (and its export) is the same count
        single = queries.hex_counts(con, flt, 8, measure="backlog", as_of=step).set_index("cell")["n"]
        assert single.sort_index().to_dict() == expected.to_dict()
    # a public screen's rule holds at every step
    shown = queries.backlog_cells(con, flt, 8, steps, min_count=3)
    assert shown["n"].min() >= 3 and len(shown) < len(cells)
    town = queries.area_scope(con, queries.child_areas(con, None)["code"].iloc[0])
    own = queries.backlog_cells(con, dataclasses.replace(flt, scope=town), 8, steps[-1:])
    assert 0 < own["n"].sum() < cells[cells["as_of"] == steps[-1]]["n"].sum()


@given(start=st.dates(dt.date(2020, 1, 1), dt.date(2026, 12, 31)), days=st.integers(1, 1200),
       cut=st.integers(-3, 3))
def test_backlog_steps_end_at_the_period_or_the_build_and_are_few(start, days, cut):
    flt = queries.EventFilter(start, start + dt.timedelta(days=days - 1))
    period_end = pd.Timestamp(flt.end + dt.timedelta(days=1), tz="Asia/Shanghai")
    built = period_end + pd.Timedelta(hours=13 * cut)  # the last build before or after the period's end
    steps = queries.backlog_steps(flt, built)
    assert steps == sorted(set(steps)) and 1 <= len(steps) <= 32
    assert steps[-1] == min(period_end, built)
    assert steps[0] > pd.Timestamp(flt.start, tz="Asia/Shanghai") or steps[0] == built
    if days <= 31 and cut >= 0:
        assert len(steps) == days  # one a day
