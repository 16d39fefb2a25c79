"""Jurisdiction scoping in the queries: a town or village scope sees exactly its own events, and model outputs
(alerts, hot spots, repeat places) only on its own cells and places. Counted independently from core.events."""
import dataclasses
import datetime as dt

import h3
import pandas as pd
import pytest
import shapely

from onemap import queries


@pytest.fixture(scope="module")
def events(con) -> pd.DataFrame:
    return con.execute("SELECT event_id, town_code, village_code, h3_cell, CAST(reported_at AS DATE) AS day, "
                       "coalesce(flags, []) AS flags, confidential FROM core.events").df()


@pytest.fixture(scope="module")
def period(con) -> queries.EventFilter:
    last = queries.date_bounds(con)[1]
    return queries.EventFilter(start=last - dt.timedelta(days=90), end=last)


def _in_period(events, flt):
    return events[(events["day"] >= pd.Timestamp(flt.start)) & (events["day"] <= pd.Timestamp(flt.end))]


def test_area_scope_knows_the_levels_and_refuses_what_is_not_an_area(con):
    town = queries.child_areas(con, None).iloc[0]
    scope = queries.area_scope(con, town.code)
    assert (scope.level, scope.name) == ("town", town["name"])
    village = queries.child_areas(con, scope).iloc[0]
    assert queries.area_scope(con, village.code).level == "village"
    assert queries.area_scope(con, "441502").whole
    with pytest.raises(ValueError, match="no area with code '999999'"):
        queries.area_scope(con, "999999")
    grid = con.execute("SELECT code FROM core.areas WHERE level = 'grid' LIMIT 1").fetchall()[0][0]
    with pytest.raises(ValueError, match="is a grid"):
        queries.area_scope(con, grid)


def test_each_town_sees_its_own_events_and_the_towns_add_up_to_the_county(con, events, period):
    in_period = _in_period(events, period)
    total = 0
    for town in queries.child_areas(con, None).itertuples():
        flt = dataclasses.replace(period, scope=queries.Scope("town", town.code))
        got = queries.kpis(con, flt)["registered"]
        assert got == (in_period["town_code"] == town.code).sum()
        total += got
    assert total + in_period["town_code"].isna().sum() == queries.kpis(con, period)["registered"]


def test_a_scoped_map_counts_only_the_scopes_events_in_each_hex(con, events, period):
    village = queries.child_areas(con, queries.area_scope(con, queries.child_areas(con, None).code[0])).code[0]
    flt = dataclasses.replace(period, scope=queries.area_scope(con, village))
    got = queries.hex_counts(con, flt, 9).set_index("cell")["n"]
    mine = _in_period(events, period)
    mine = mine[(mine["village_code"] == village) & mine["h3_cell"].notna()]
    expected = mine["h3_cell"].map(lambda c: h3.cell_to_parent(format(int(c), "x"), 9)).value_counts()
    assert len(got) > 0 and got.sort_index().to_dict() == expected.sort_index().to_dict()
    # a scope cannot be applied to the county-wide aggregates: refused, not ignored
    with pytest.raises(ValueError, match="not on a county-wide aggregate"):
        flt.where(day_expr="day", area_codes=False)


def test_a_non_handling_viewer_sees_sensitive_events_only_where_a_hex_holds_three(con, events, period):
    sensitive = set(queries.SENSITIVE_FLAGS)
    located = _in_period(events, period).dropna(subset=["h3_cell"]).copy()
    located["cell"] = located["h3_cell"].map(lambda c: h3.cell_to_parent(format(int(c), "x"), 8))
    located["sensitive"] = located["flags"].map(lambda f: bool(sensitive & set(f)))
    per_cell = located.groupby("cell").agg(n=("event_id", "size"), s=("sensitive", "sum"))
    shown = per_cell["n"] - per_cell["s"].where(per_cell["s"] < 3, 0)
    shown = shown[shown > 0]
    assert (per_cell["s"].between(1, 2)).any(), "the demo must hold hexes with one or two sensitive events"
    got = queries.hex_counts(con, period, 8, sensitive_min=3).set_index("cell")["n"]
    assert got.sort_index().to_dict() == shown.sort_index().to_dict()
    assert queries.hex_counts(con, period, 8)["n"].sum() == len(located)  # a handler sees every event


def test_alerts_and_hot_spots_of_a_town_lie_on_its_cells(con):
    towns = list(queries.child_areas(con, None).code)
    every_alert = queries.alerts(con)
    every_hot = queries.hotspot_cells(con, 8)
    names = queries.area_names(con)
    seen_alerts, seen_hot = 0, 0
    for code in towns:
        scope = queries.Scope("town", code)
        mine = queries.alerts(con, scope=scope)
        hot = queries.hotspot_cells(con, 8, scope)
        seen_alerts += len(mine)
        seen_hot += len(hot)
        assert set(mine["cell"]) <= set(every_alert["cell"]) and set(hot["cell"]) <= set(every_hot["cell"])
        # one rule decides who sees an alert and what it is named: every alert a town sees is named in that town
        assert mine["place"].str.startswith(names[code]).all()
        places = queries.cell_places(con, list(mine["cell"]), 8)
        assert mine["place"].tolist() == [places[c] for c in mine["cell"]]
    # every alert and hot spot cell belongs to exactly one town (none lost, none shown twice)
    assert seen_alerts == len(every_alert) and seen_hot == len(every_hot)
    assert len(queries.alerts(con, limit=3, scope=queries.Scope("town", towns[0]))) <= 3
    # a village user's alerts are named after that village
    town = every_alert["place"].value_counts().index[0]
    code = next(c for c in towns if town.startswith(names[c]))
    seen = 0
    for village in queries.child_areas(con, queries.Scope("town", code)).code:
        mine = queries.alerts(con, scope=queries.Scope("village", village))
        assert (mine["place"] == names[code] + names[village]).all()
        seen += len(mine)
    assert seen == (every_alert["place"].str.startswith(names[code])).sum() > 0


def test_repeat_places_and_overdue_cases_stay_inside_the_scope(con, events):
    county = queries.repeat_places(con, limit=1000)
    as_of = queries.reference_time(con)
    _, all_overdue = queries.overdue_cases(con, as_of, 1000)
    placed, overdue = 0, 0
    for code in queries.child_areas(con, None).code:
        scope = queries.area_scope(con, code)
        mine = queries.repeat_places(con, limit=1000, scope=scope)
        shape = queries.scope_shape(con, scope)
        assert shapely.contains_xy(shape, mine["lng"], mine["lat"]).all()
        placed += len(mine)
        cases, total = queries.overdue_cases(con, as_of, 1000, scope)
        assert (cases["town_code"] == code).all() and len(cases) <= total
        overdue += total
    assert placed == len(county)  # every repeat place lies in one town
    unplaced = con.execute(f"SELECT count(*) FROM core.events WHERE {queries.OVERDUE} AND town_code IS NULL",
                           {"as_of": as_of}).fetchall()[0][0]
    assert overdue + unplaced == all_overdue


@pytest.mark.parametrize("resolution", [8, 10])
def test_each_cells_home_is_the_village_with_most_of_its_events(con, events, resolution):
    """hex.cell_home (built) against a count in pandas: the stored village holds the most placed events of
    its cell (ties may go either way), and the town is that village's own."""
    placed = events.dropna(subset=["h3_cell", "village_code"]).copy()
    placed["cell"] = placed["h3_cell"].map(lambda c: h3.str_to_int(h3.cell_to_parent(format(int(c), "x"), resolution)))
    per = placed.groupby(["cell", "village_code"]).size().rename("n").reset_index()
    top = per.groupby("cell")["n"].max()
    stored = con.execute("SELECT cell, town_code, village_code, n FROM hex.cell_home WHERE resolution = ?",
                         [resolution]).df()
    stored["cell"] = stored["cell"].astype("int64").astype(object).map(int)
    assert len(stored) == len(top) and set(stored["cell"]) == set(top.index)
    got = per.set_index(["cell", "village_code"])["n"]
    assert all(got[(c, v)] == top[c] == n for c, v, n in zip(stored["cell"], stored["village_code"], stored["n"],
                                                             strict=True))
    assert (stored["village_code"].str[:9] == stored["town_code"]).all()


def test_the_daily_backlog_matches_a_count_case_by_case(con):
    """queries.daily_series against a count over every case for every day: registered that day; open at the day's
    end (registered by then, not closed by then); of them, past their due day. In one town, for one category."""
    town = queries.child_areas(con, None)["code"].iloc[0]
    last = queries.date_bounds(con)[1]
    flt = queries.EventFilter(last - dt.timedelta(days=20), last, categories=("MD",), scope=queries.Scope("town", town))
    got = queries.daily_series(con, flt).set_index("day")
    full = con.execute("SELECT CAST(reported_at AS DATE) AS r, CASE WHEN status = '已办结' THEN CAST(closed_at AS DATE) "
                       "END AS c, CAST(due_at AS DATE) AS u FROM core.events WHERE town_code = ? AND "
                       "category_code LIKE 'MD%'", [town]).df()
    r, c, u = (pd.to_datetime(full[k]) for k in ("r", "c", "u"))
    assert len(got) == 21 and got["open"].min() > 0
    for day, row in got.iterrows():
        day = pd.Timestamp(day)
        still_open = (r <= day) & ~(c <= day)
        assert row["registered"] == (r == day).sum()
        assert row["open"] == still_open.sum(), day
        assert row["overdue"] == (still_open & (u <= day)).sum(), day
