"""`onemap kpis`: the map's and the brief's KPIs from the command line, for a period and an area."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from onemap import queries
from onemap.cli import main
from onemap.metrics import KPIS


def test_kpis_of_a_period_with_their_changes_are_the_queries_numbers(demo_home, con, capsys):
    town = queries.child_areas(con, None)["code"].iloc[0]
    args = ["--home", str(demo_home), "kpis", "--from", "2026-10-01", "--to", "2026-10-31", "--area", town]
    assert main([*args, "--format", "json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    flt = queries.EventFilter(dt.date(2026, 10, 1), dt.date(2026, 10, 31), scope=queries.area_scope(con, town))
    now, before, year = queries.kpis_compared(con, flt)
    assert list(rows) == [k.key for k in KPIS]
    for k in KPIS:
        for column, expected in (("value", now), ("previous", before), ("year_before", year)):
            assert rows[k.key][column] == pytest.approx(expected[k.key], nan_ok=True), (k.key, column)
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "环比" in table and "同比" in table and "村级办结占比" in table


def test_kpis_per_area_and_a_bad_period(demo_home, con, capsys):
    assert main(["--home", str(demo_home), "kpis", "--by-area", "--category", "MD", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    last = queries.date_bounds(con)[1]
    expected = queries.area_kpis(con, queries.EventFilter(last - dt.timedelta(days=27), last, categories=("MD",)))
    assert [r["code"] for r in rows] == list(expected["code"])
    assert [r["registered"] for r in rows] == list(expected["registered"]) and sum(r["registered"] for r in rows) > 0
    assert main(["--home", str(demo_home), "kpis", "--from", "2026-11-02", "--to", "2026-11-01"]) == 2
    assert "is after" in capsys.readouterr().err


def test_earlier_periods_are_compared_at_the_lag_from_where_the_data_ends(con):
    """Measured weeks after the last export (a build long after it, or --as-of), the earlier periods are measured
    as long after their own end as the data reaches after the period's, not as the build came: that gave them
    weeks more of closures than the current period can have, and its 办结率 a false ▼."""
    data_end = queries.data_end(con)
    assert data_end == con.execute("SELECT max(greatest(reported_at, coalesce(closed_at, reported_at))) "
                                   "FROM core.events").fetchall()[0][0]
    assert queries.reference_time(con) - data_end < dt.timedelta(hours=1)  # the demo builds when its exports were taken
    end = data_end.ceil("D")  # the end of the data's last day, as the brief ends each week
    later = end + dt.timedelta(days=21)
    last = queries.date_bounds(con)[1]
    flt = queries.EventFilter(last - dt.timedelta(days=27), last)
    now, before, year = queries.kpis_compared(con, flt, later)
    unseen = {"reopened_rate": None}  # no export had shown a change of status by then: 重开率 cannot be measured
    assert now == queries.kpis(con, flt, later)
    # (the demo's flow logs date each step over the last 26 weeks: a change of status is seen four weeks ago, not
    # a year ago)
    assert before == queries.kpis(con, queries.previous_period(flt), end - dt.timedelta(days=28))
    assert year == {**queries.kpis(con, queries.year_earlier(flt), end - queries.YEAR), **unseen}
    assert before != queries.kpis(con, queries.previous_period(flt), later - dt.timedelta(days=28))


def test_a_category_is_read_whatever_its_case_and_a_wrong_one_is_refused(demo_home, capsys):
    from onemap.cli import main

    args = ["--home", str(demo_home), "kpis", "--format", "json"]
    assert main([*args, "--category", "MD10"]) == 0
    upper = capsys.readouterr().out
    assert main([*args, "--category", "md10"]) == 0
    assert capsys.readouterr().out == upper
    assert main([*args, "--category", "ZZ9"]) != 0
    assert "--category ZZ9: no product category is or begins with it" in capsys.readouterr().err
