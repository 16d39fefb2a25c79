"""Where cases are settled (办理层级) and how they were dispatched (派单方式): read from the export's words into
village / town / county / above and single / dual, unknown words quarantined, a changed tier updates the
record, and the two KPIs of 小事不出村、大事不出镇 computed from them as defined."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onemap import queries
from onemap.contracts import HANDLING_TIERS
from onemap.metrics import kpi
from pipelines import stage as S
from pipelines.profiles import load_profile
from tests.pipelines.test_profile_features import stage
from tests.pipelines.test_quarantine import police_row


@pytest.fixture(scope="module")
def inside(areas):
    p = areas.grids.geometry.iloc[100].representative_point()
    return p.x, p.y, str(areas.grids["code"].iloc[100])


@pytest.mark.parametrize("word, tier", [
    ("村（社区）", "village"), ("社区", "village"), ("村级", "village"), ("Village", "village"),
    ("镇（街道）", "town"), ("街道", "town"), (" 镇 级 ", "town"), ("乡镇", "town"),
    ("县（区）", "county"), ("区级", "county"), ("COUNTY", "county"),
    ("市级", "above"), ("省级", "above"), ("", None),
])
def test_tier_words_of_exports_become_the_four_tiers(areas, inside, word, tier):
    staged = stage([police_row(inside, 办理层级=word, 派单方式="双派单")], load_profile("demo_police"), areas)
    assert staged.rejects.empty
    [event] = staged.events.to_dict("records")
    assert event["handling_tier"] == tier and event["dispatch_mode"] == "dual"


@pytest.mark.parametrize("over, field, detail", [
    ({"办理层级": "网格"}, "办理层级", "网格"),
    ({"派单方式": "三派"}, "派单方式", "三派"),
])
def test_an_unknown_word_is_quarantined_naming_field_and_word(areas, inside, over, field, detail):
    staged = stage([police_row(inside, **over), police_row(inside, 接警单编号="J2")], load_profile("demo_police"),
                   areas)
    assert len(staged.events) == 1  # the other row loads
    [rej] = staged.rejects.to_dict("records")
    assert (rej["reason"], rej["field"], rej["source_row"]) == (S.UNKNOWN_VALUE, field, 1)
    assert rej["detail"].endswith(detail) and "应为" in rej["detail"]


def test_a_profile_adds_its_systems_own_words(areas, inside, tmp_path):
    text = (load_profile("demo_police").path.read_text(encoding="utf-8")
            + '\n[values.handling_tier]\n"网格" = "village"\n"综治中心" = "county"\n')
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    staged = stage([police_row(inside, 办理层级="网格"), police_row(inside, 接警单编号="J2", 办理层级="综治中心")],
                   load_profile(str(path)), areas)
    assert staged.rejects.empty
    assert staged.events["handling_tier"].tolist() == ["village", "county"]


def test_a_changed_tier_or_dispatch_changes_the_digest_so_a_later_export_updates_the_record(areas, inside):
    rows = [police_row(inside, 接警单编号=f"J{i}", 办理层级=t, 派单方式=d)
            for i, (t, d) in enumerate([("村级", "单派"), ("镇级", "单派"), ("村级", "双派"), ("村级", "单派")])]
    digests = stage(rows, load_profile("demo_police"), areas).events["content_hash"].tolist()
    assert digests[0] == digests[3] and len(set(digests[:3])) == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([*HANDLING_TIERS, None])), max_size=40))
def test_tier_shares_count_only_closed_cases_that_name_their_tier(cases):
    """村级办结占比 and 镇村办结占比 as defined in onemap.metrics, against a count by hand."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t (status VARCHAR, closed_at TIMESTAMPTZ, handling_tier VARCHAR, "
                "first_closed_at TIMESTAMPTZ, reopened_at TIMESTAMPTZ)")  # never reopened here
    as_of = pd.Timestamp("2026-11-20 12:00", tz="Asia/Shanghai")
    rows = [("已办结" if closed else "跟踪督办", as_of - pd.Timedelta(days=1) if closed else None, tier)
            for closed, tier in cases]
    if rows:
        con.executemany("INSERT INTO t VALUES (?, ?, ?, NULL, NULL)", rows)
    got = con.execute(f"SELECT {kpi('village_share').sql}, {kpi('town_or_below_share').sql} FROM t",
                      {"as_of": as_of}).fetchone()
    tiered = [tier for closed, tier in cases if closed and tier is not None]
    if not tiered:
        assert got == (None, None)
    else:
        assert got[0] == pytest.approx(tiered.count("village") / len(tiered))
        assert got[1] == pytest.approx(sum(t in ("village", "town") for t in tiered) / len(tiered))


def test_the_demo_records_tiers_and_towns_differ_in_settling_locally(con):
    """The demo exports carry both fields, every word loads, and the towns' shares agree with a pandas count."""
    assert con.execute("SELECT count(*) FROM staging.rejects WHERE reason = ?", [S.UNKNOWN_VALUE]).fetchone()[0] == 0
    events = con.execute("SELECT town_code, status, closed_at, handling_tier, dispatch_mode, on_site_closed "
                         "FROM core.events WHERE town_code IS NOT NULL").df()
    assert set(events["handling_tier"]) == set(HANDLING_TIERS) and set(events["dispatch_mode"]) == {"single", "dual"}
    assert (events.loc[events["on_site_closed"].fillna(False).astype(bool), "handling_tier"] == "village").all()
    as_of = queries.reference_time(con)
    first, last = queries.date_bounds(con)
    closed = events[(events["status"] == "已办结") & (events["closed_at"] <= as_of)]
    expected = closed.groupby("town_code")["handling_tier"].apply(lambda t: (t == "village").mean())
    got = {town: queries.kpis(con, queries.EventFilter(first, last, scope=queries.Scope("town", town)),
                              as_of)["village_share"] for town in expected.index}
    assert pd.Series(got).sort_index().to_numpy() == pytest.approx(expected.sort_index().to_numpy())
    assert expected.max() - expected.min() > 0.05  # some towns' villages settle more: worth a column in the brief
