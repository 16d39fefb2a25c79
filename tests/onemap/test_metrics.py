"""KPI formatting: the value and its change from the previous period (环比) as the strip shows them."""
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onemap.metrics import format_change, format_changes, format_value, kpi
from onemap.queries import EventFilter, Scope, previous_period


def test_change_is_per_cent_for_counts_points_for_rates_difference_for_means():
    assert format_change(kpi("registered"), 120, 100) == "▲ 20.0%"
    assert format_change(kpi("registered"), 80, 100) == "▼ 20.0%"
    assert format_change(kpi("registered"), 100, 100) == "→ 0.0%"
    assert format_change(kpi("closed_rate"), 0.70, 0.65) == "▲ 5.0 个百分点"
    assert format_change(kpi("closed_rate"), 0.60, 0.65) == "▼ 5.0 个百分点"
    assert format_change(kpi("satisfaction"), 4.1, 4.3) == "▼ 0.20"
    assert format_change(kpi("registered"), 5, 0) == "▲ 5 件"  # no per cent of nothing: the change in cases
    assert format_change(kpi("registered"), 0, 0) == "→ 0"
    # from a handful, in cases: a village's 超期 from 1 to 4 is "+3", not "▲300%"
    assert format_change(kpi("overdue"), 4, 1) == "▲ 3 件" and format_change(kpi("overdue"), 1, 4) == "▼ 3 件"
    assert format_change(kpi("overdue"), 7, 7) == "→ 0 件" and format_change(kpi("overdue"), 25, 20) == "▲ 25.0%"
    assert format_change(kpi("closed_rate"), None, 0.5) == "—"
    assert format_change(kpi("closed_rate"), 0.5, None) == "—"
    assert format_change(kpi("median_days"), 2.25, 3.0) == "▼ 0.8 天"
    assert format_change(kpi("median_days"), 2.21, 2.23) == "→ 0.0 天"  # rounds to nothing: no arrow up or down
    assert format_change(kpi("closed_rate"), 0.7001, 0.7) == "→ 0.0 个百分点"
    assert format_value(kpi("median_days"), 2.25) == "2.2 天" and format_value(kpi("ontime_rate"), 0.875) == "87.5%"

    # 环比 and 同比 of one row in one unit: in cases when either earlier count is a handful
    assert format_changes(kpi("registered"), 17, 21, 16) == ("▼ 4 件", "▲ 1 件")
    assert format_changes(kpi("registered"), 120, 100, 80) == ("▲ 20.0%", "▲ 50.0%")
    assert format_changes(kpi("closed_rate"), 0.7, 0.1, None) == ("▲ 60.0 个百分点", "—")


@given(start=st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31)), days=st.integers(1, 400))
def test_previous_period_has_the_same_length_and_ends_the_day_before(start, days):
    flt = EventFilter(start=start, end=start + dt.timedelta(days=days - 1), categories=("MD10",), sources=("grid",),
                      scope=Scope("town", "441502001"))
    before = previous_period(flt)
    assert (before.end - before.start).days + 1 == days
    assert before.end == flt.start - dt.timedelta(days=1)
    assert (before.categories, before.sources, before.scope) == (flt.categories, flt.sources, flt.scope)


def test_each_rate_is_a_whole_number_of_cases_over_its_base(con):
    """kpi_bases gives the denominator of every rate and mean: registered cases for 办结率, open cases for 超期率,
    closed cases naming their tier for the tier shares, surveyed closed cases for 满意度."""
    from onemap import queries
    from onemap.metrics import KPIS

    last = queries.date_bounds(con)[1]
    flt = EventFilter(start=last - dt.timedelta(days=27), end=last)
    values, bases = queries.kpis(con, flt), queries.kpi_bases(con, flt)
    assert set(bases) == {k.key for k in KPIS if k.kind in ("rate", "mean", "days")}
    assert bases["closed_rate"] == bases["resolved_rate"] == bases["onsite_rate"] == values["registered"] > 0
    assert 0 < bases["village_share"] < values["registered"] and bases["overdue_rate"] >= values["overdue"]
    for k in KPIS:
        if k.kind == "rate":
            cases = values[k.key] * bases[k.key]
            assert abs(cases - round(cases)) < 1e-6, k.key
    # the strip asks only for what it shows: the same numbers
    from onemap.metrics import STRIP

    assert queries.kpis(con, flt, keys=STRIP) == {k: values[k] for k in STRIP}
    assert queries.kpis(con, flt, keys=["registered"]) == {"registered": values["registered"]}  # no $as_of in it
    # per area: the towns' rows are each town's own KPIs
    towns = queries.area_kpis(con, flt)
    first = towns.iloc[0]
    own = queries.kpis(con, EventFilter(flt.start, flt.end, scope=queries.Scope("town", first["code"])))
    assert {k.key: first[k.key] for k in KPIS} == pytest.approx(own, nan_ok=True)
    # the rows add up to the strip: events placed to no town have their own last row (未定位)
    assert towns["registered"].sum() == values["registered"]
    unplaced = towns[towns["code"].isna()]
    assert unplaced.empty or (len(unplaced) == 1 and unplaced.index[0] == len(towns) - 1
                              and unplaced["name"].iloc[0] == queries.UNPLACED)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30 * 1440), st.one_of(st.none(), st.integers(0, 40 * 1440)),
                          st.one_of(st.none(), st.integers(0, 20 * 1440))), max_size=30))
def test_on_time_rate_counts_open_overdue_cases_and_median_days_is_the_median(cases):
    """按时办结率 = closed by due ÷ (closed with a due time + open past due); 办结用时 = the median of closed cases'
    days from report to close; both against a count by hand over (minutes from the period's start to the report,
    minutes to close or None, minutes to the due time or None: exports carry whole seconds at most)."""
    import statistics

    import duckdb
    import pandas as pd

    from onemap.metrics import kpi

    as_of = pd.Timestamp("2026-11-30 12:00", tz="Asia/Shanghai")
    start = as_of - pd.Timedelta(days=30)
    rows, on_time, judged, days = [], 0, 0, []
    for offset, close, due in cases:
        reported = start + pd.Timedelta(minutes=offset)
        closed_at = reported + pd.Timedelta(minutes=close) if close is not None else None
        closed = closed_at is not None and closed_at <= as_of
        due_at = reported + pd.Timedelta(minutes=due) if due is not None else None
        rows.append(("已办结" if closed else "跟踪督办", reported, closed_at if closed else None, due_at))
        if closed:
            days.append((closed_at - reported).total_seconds() / 86400)
        if due_at is not None and (closed or due_at < as_of):
            judged += 1
            on_time += bool(closed and closed_at <= due_at)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Shanghai'")
    con.execute("CREATE TABLE t (status VARCHAR, reported_at TIMESTAMPTZ, closed_at TIMESTAMPTZ, due_at TIMESTAMPTZ, "
                "first_closed_at TIMESTAMPTZ, reopened_at TIMESTAMPTZ)")  # never reopened here
    if rows:
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, NULL, NULL)", rows)
    ontime, median = kpi("ontime_rate"), kpi("median_days")
    got = con.execute(f"SELECT {ontime.sql}, {ontime.base}, {median.sql} FROM t", {"as_of": as_of}).fetchone()
    assert got[1] == judged
    assert got[0] == (pytest.approx(on_time / judged) if judged else None)
    assert got[2] == (pytest.approx(statistics.median(days), abs=1e-6) if days else None)


def test_every_kpi_has_its_chinese_definition_and_the_brief_prints_them(con):
    """口径: each KPI carries a Chinese definition that the map's tooltips and the brief's appendix show."""
    from dashboard.brief import Heading, Table, weekly_brief
    from onemap.metrics import KPIS

    assert all(k.zh and len(k.zh) >= 10 for k in KPIS) and len({k.zh for k in KPIS}) == len(KPIS)
    brief = weekly_brief(con, "汕尾市城区", None, map_png=None)
    i = next(i for i, b in enumerate(brief.blocks) if isinstance(b, Heading) and b.text == "附：指标口径")
    table = next(b for b in brief.blocks[i:] if isinstance(b, Table))
    assert table.rows == [[k.label, k.zh] for k in KPIS]


def test_a_midnight_reference_time_reads_as_the_end_of_the_day_before():
    import pandas as pd

    from onemap.metrics import format_moment

    midnight = pd.Timestamp("2026-12-07 00:00", tz="Asia/Shanghai")
    assert format_moment(midnight) == "12-06 日终" and format_moment(midnight, year=True) == "2026-12-06 日终"
    assert format_moment(midnight + pd.Timedelta(minutes=55)) == "12-07 00:55"
