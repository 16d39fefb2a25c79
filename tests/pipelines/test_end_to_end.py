"""Small demo -> ingest -> build -> KPIs, checked against counts computed independently from the files."""
import datetime as dt

import pandas as pd
import pytest

from onemap import queries
from onemap.warehouse import connect_readonly

pytestmark = pytest.mark.slow


def _export_rows(home):
    """Every row of the generated export files in load order, the grid platform's later status update last, read
    with plain pandas (not with the product's readers)."""
    folder = home / "demo_exports"
    grid = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(folder.glob("网格巡查上报_*.csv"))]
                     + [pd.read_excel(folder / "网格巡查上报_最近30天.xlsx", dtype=str).fillna("")]
                     + [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(folder.glob("状态更新_*.csv"))])
    police = pd.read_csv(folder / "非警务警情.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    grid = grid.rename(columns={"事件编号": "id", "上报时间": "reported", "处理状态": "status", "办理期限": "due",
                                "办结时间": "closed", "处理结果": "outcome"})
    police = police.rename(columns={"接警单编号": "id", "报警时间": "reported", "接警单状态": "status",
                                    "办理期限": "due", "办结时间": "closed", "处置结果": "outcome"})
    grid["event_id"] = "grid:" + grid["id"]
    police["event_id"] = "police:" + police["id"]
    cols = ["event_id", "reported", "status", "due", "closed", "outcome"]
    return pd.concat([grid[cols], police[cols]], ignore_index=True)


def _exports(home):
    """Each record as its last export shows it (a later export updates the record), with ``first_closed``: the
    close time of an earlier export that showed it closed when the last shows it open again (重开), else ""."""
    rows = _export_rows(home)
    last = rows.drop_duplicates("event_id", keep="last").reset_index(drop=True)
    earlier = rows[rows.duplicated("event_id", keep="last") & (rows["status"] == "已办结")]
    first_closed = earlier.drop_duplicates("event_id").set_index("event_id")["closed"]
    reopened = last["status"] != "已办结"
    last["first_closed"] = last["event_id"].map(first_closed).where(reopened).fillna("")
    return last


def test_every_row_is_loaded_merged_or_quarantined(demo_home, con):
    rows = _export_rows(demo_home)
    loaded = con.execute("SELECT count(*) FROM core.events").fetchall()[0][0]
    flows = "source_file LIKE '流转记录_%'"  # the case-flow logs: their rows are steps, not cases
    rejected = con.execute(f"SELECT count(*) FROM staging.rejects WHERE NOT {flows}").fetchall()[0][0]
    assert rejected < 0.02 * len(rows)
    batches = con.execute("SELECT sum(rows_read), sum(inserted), sum(updated), sum(unchanged), sum(quarantined) "
                          f"FROM meta.batches WHERE NOT {flows}").fetchall()[0]
    read, inserted, updated, unchanged, quarantined = batches
    assert (read, inserted, quarantined) == (len(rows), loaded, rejected)
    assert inserted + updated + unchanged + quarantined == read  # every row: loaded, merged or quarantined
    # each flow log's step: added to the status history, or quarantined (a case the warehouse does not hold)
    for batch, read, inserted, unchanged, quarantined in con.execute(
            f"SELECT batch_id, rows_read, inserted, unchanged, quarantined FROM meta.batches WHERE {flows}").fetchall():
        assert read == inserted + unchanged + quarantined and inserted > 0.9 * read
        assert con.execute("SELECT count(*) FROM core.event_status_history WHERE batch_id = ?", [batch]
                           ).fetchall()[0][0] == inserted
        assert {r[0] for r in con.execute("SELECT DISTINCT reason FROM staging.rejects WHERE batch_id = ?", [batch]
                                          ).fetchall()} <= {"unknown_event"}
    # the later export's rows update records loaded before (a new status each: none unchanged)
    later = con.execute("SELECT rows_read, inserted, updated, quarantined FROM meta.batches "
                        "WHERE source_file LIKE '状态更新_%'").fetchall()
    assert len(later) == 1 and later[0][1] == 0 and later[0][2] == later[0][0] - later[0][3] > 0
    reasons = {r[0] for r in con.execute("SELECT DISTINCT reason FROM staging.rejects").fetchall()}
    assert "unknown_category" in reasons  # the generator plants unmapped police codes; they are reported


def _loaded_files(demo_home, con) -> pd.DataFrame:
    files = _exports(demo_home)
    rejected = {r[0] for r in con.execute(
        "SELECT DISTINCT CASE WHEN source='grid' THEN 'grid:' ELSE 'police:' END || json_extract_string(raw, "
        "CASE WHEN source='grid' THEN '$.事件编号' ELSE '$.接警单编号' END) FROM staging.rejects").fetchall()}
    return files[~files["event_id"].isin(rejected)]


def _expected_kpis(files: pd.DataFrame, start: dt.date, end: dt.date, as_of: pd.Timestamp,
                   loaded: pd.Timestamp) -> dict:
    """The strip's KPIs computed from the export files with pandas, as of ``as_of``. ``loaded``: when the later
    export was loaded (the demo loads every file just before its build, so the build time stands for it): a
    reopened case is closed from its earlier close time until then."""
    day = pd.to_datetime(files["reported"]).dt.date
    sel = files[(day >= start) & (day <= end)]
    closed_at = pd.to_datetime(sel["closed"].replace("", None)).dt.tz_localize("Asia/Shanghai")
    first_closed = pd.to_datetime(sel["first_closed"].replace("", None)).dt.tz_localize("Asia/Shanghai")
    due = pd.to_datetime(sel["due"]).dt.tz_localize("Asia/Shanghai")
    closed = ((sel["status"] == "已办结") & (closed_at <= as_of)) | ((first_closed <= as_of) & (as_of < loaded))
    return {
        "registered": len(sel),
        "closed_rate": closed.sum() / len(sel),
        "resolved_rate": (closed & (sel["outcome"] == "化解")).sum() / len(sel),
        "overdue": int((~closed & (due < as_of)).sum()),
        "police": int(sel["event_id"].str.startswith("police:").sum()),
    }


def test_kpis_match_independent_counts(demo_home, con):
    files = _loaded_files(demo_home, con)
    as_of = queries.reference_time(con)
    start, end = dt.date(2026, 9, 1), dt.date(2026, 10, 31)
    expected = _expected_kpis(files, start, end, as_of, as_of)
    got = queries.kpis(con, queries.EventFilter(start=start, end=end))
    assert got["registered"] == expected["registered"]
    assert got["closed_rate"] == pytest.approx(expected["closed_rate"])
    assert got["resolved_rate"] == pytest.approx(expected["resolved_rate"])
    assert got["overdue"] == expected["overdue"]
    # a filter narrows the numbers
    police = queries.kpis(con, queries.EventFilter(start=start, end=end, sources=("police",)))
    assert police["registered"] == expected["police"]


def test_previous_period_kpis_are_measured_at_the_same_lag(demo_home, con):
    """环比 on the strip: the 31 days before October, each KPI as of the time the data reaches moved back 31 days
    (queries.data_end: a build later than the last export would otherwise give the earlier periods the days of
    closures in between, which October cannot have), counted from the end of the data's last day as the brief
    counts each week from its end; the demo builds at that midnight, seconds after its exports were taken. 重开率
    is blank (—) for a period measured before any export or flow log showed a change of status: no reopening could
    be seen."""
    files = _loaded_files(demo_home, con)
    as_of = queries.reference_time(con)
    assert queries.data_end(con) < as_of
    lag = min(as_of, queries.data_end(con).ceil("D"))
    assert lag == as_of == as_of.normalize()
    october = queries.EventFilter(start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 31))
    assert queries.previous_period(october) == queries.EventFilter(start=dt.date(2026, 8, 31),
                                                                   end=dt.date(2026, 9, 30))
    now, before, year = queries.kpis_compared(con, october)
    assert now == queries.kpis(con, october)
    # 同比: the same weekdays 52 weeks earlier, as of the reference time moved back as much
    last_year = queries.EventFilter(start=dt.date(2025, 10, 2), end=dt.date(2025, 11, 1))
    assert queries.year_earlier(october) == last_year
    assert year == {**queries.kpis(con, last_year, lag - pd.Timedelta(weeks=52)), "reopened_rate": None}
    # (the demo's flow logs date each step over the last 26 weeks: September is seen, a year ago is not)
    assert before["reopened_rate"] is not None and now["reopened_rate"] is not None
    expected_year = _expected_kpis(files, dt.date(2025, 10, 2), dt.date(2025, 11, 1), lag - pd.Timedelta(weeks=52),
                                   as_of)
    assert year["registered"] == expected_year["registered"] > 0
    assert year["closed_rate"] == pytest.approx(expected_year["closed_rate"])
    expected = _expected_kpis(files, dt.date(2026, 8, 31), dt.date(2026, 9, 30), lag - pd.Timedelta(days=31), as_of)
    assert before["registered"] == expected["registered"]
    assert before["closed_rate"] == pytest.approx(expected["closed_rate"])
    assert before["resolved_rate"] == pytest.approx(expected["resolved_rate"])
    assert before["overdue"] == expected["overdue"]


def test_hex_counts_add_up_at_every_resolution(con, demo_settings):
    flt = queries.EventFilter(start=dt.date(2000, 1, 1), end=dt.date(2100, 1, 1))
    located = con.execute("SELECT count(*) FROM core.events WHERE h3_cell IS NOT NULL").fetchall()[0][0]
    for res in demo_settings.h3_resolutions:
        assert queries.hex_counts(con, flt, res)["n"].sum() == located


def test_no_raw_personal_information_in_the_store(demo_home, con):
    police = pd.read_csv(demo_home / "demo_exports" / "非警务警情.csv", dtype=str, encoding="utf-8-sig")
    text = " ".join(r[0] or "" for r in con.execute("SELECT summary_redacted FROM core.events").fetchall())
    assert not __import__("re").search(r"1[3-9]\d{9}", text)
    dump = " ".join(str(r) for r in con.execute("SELECT * FROM core.events WHERE source='police' LIMIT 2000").fetchall())
    phones = set(police["报警电话"].head(2000))
    assert not any(p in dump for p in phones)
    keys = con.execute("SELECT party_keys FROM core.events WHERE source='police' AND party_keys IS NOT NULL LIMIT 5"
                       ).fetchall()
    assert keys and all(len(k) == 32 for row in keys for k in row[0])


def test_cross_source_links_recover_the_truth(demo_home, con):
    truth = pd.read_csv(demo_home / "demo_exports" / "truth" / "links.csv")
    found = con.execute("SELECT linked_event_id AS grid_event_id, event_id AS police_event_id FROM core.events "
                        "WHERE source = 'police' AND linked_event_id IS NOT NULL").df()
    loaded = {r[0] for r in con.execute("SELECT event_id FROM core.events").fetchall()}
    truth = truth[truth["grid_event_id"].isin(loaded) & truth["police_event_id"].isin(loaded)]
    t = set(map(tuple, truth[["grid_event_id", "police_event_id"]].to_numpy()))
    f = set(map(tuple, found[["grid_event_id", "police_event_id"]].to_numpy()))
    precision = len(t & f) / len(f)
    recall = len(t & f) / len(t)
    assert precision >= 0.95, precision
    assert recall >= 0.90, recall


def test_reloading_the_same_file_changes_nothing(demo_home, demo_settings):
    from pipelines.ingest import ingest

    before = demo_settings.warehouse_path.stat().st_mtime_ns
    con = connect_readonly(demo_settings.warehouse_path)
    history_before = con.execute("SELECT count(*) FROM core.event_status_history").fetchall()[0][0]
    con.close()
    police = demo_home / "demo_exports" / "非警务警情.csv"
    [summary] = ingest(demo_settings, "police", [police], progress=False)
    assert summary.skipped
    [forced] = ingest(demo_settings, "police", [police], force=True, progress=False)
    assert forced.reconciles and forced.inserted == 0 and forced.updated == 0
    assert forced.unchanged + forced.quarantined == forced.rows_read
    assert demo_settings.warehouse_path.stat().st_mtime_ns != before  # a new file was published ...
    con = connect_readonly(demo_settings.warehouse_path)
    n_hist = con.execute("SELECT count(*) FROM core.event_status_history").fetchall()[0][0]
    assert n_hist == history_before  # ... but no status changed, so no history was added


def test_events_behind_a_hex_are_redacted_and_exclude_confidential(con, demo_settings):
    flt = queries.EventFilter(start=dt.date(2000, 1, 1), end=dt.date(2100, 1, 1))
    top = queries.hex_counts(con, flt, 9).sort_values("n").iloc[-1]
    rows = queries.events_in_cell(con, flt, top["cell"], 9, limit=10_000)
    confidential = con.execute(
        f"SELECT count(*) FROM core.events WHERE confidential AND h3_cell IS NOT NULL AND "
        f"{__import__('onemap.h3sql', fromlist=['x']).h3_parent_sql('h3_cell', 9)} = ?", [int(top['cell'], 16)]
    ).fetchall()[0][0]
    assert len(rows) == top["n"] - confidential
    assert not rows["summary_redacted"].fillna("").str.contains(r"1[3-9]\d{9}").any()


def test_kiosk_layout_hides_controls_and_refreshes(demo_settings):
    from dashboard.app import build_layout
    from dashboard.data import DashboardData

    layout = build_layout(DashboardData(demo_settings), kiosk=True, viewer=None)
    found = {}

    def walk(node):
        if getattr(node, "id", None):
            found[node.id] = node
        for child in getattr(node, "children", None) or []:
            if hasattr(child, "children") or getattr(child, "id", None):
                walk(child)

    walk(layout)
    assert "hidden" in found["controls"].className
    assert found["refresh"].disabled is False


def test_town_week_mart_uses_the_same_kpi_definitions(con):
    as_of = queries.reference_time(con)
    row = con.execute("SELECT town_code, week_start FROM marts.town_week_kpis ORDER BY registered DESC LIMIT 1"
                      ).fetchall()[0]
    town, week = row
    mart = con.execute("SELECT registered, closed_rate, overdue FROM marts.town_week_kpis "
                       "WHERE town_code = ? AND week_start = ?", [town, week]).fetchall()[0]
    flt = queries.EventFilter(start=week, end=week + dt.timedelta(days=6), scope=queries.Scope("town", town))
    got = queries.kpis(con, flt, as_of=as_of)
    assert (got["registered"], got["closed_rate"], got["overdue"]) == pytest.approx(mart)


def test_drill_down_never_lists_confidential_or_sensitive_events(con):
    """Domestic-violence and minor cases sit at household points: on the map they count, but are not listed."""
    cell, total, hidden = con.execute("""
        SELECT h3_cell, count(*),
               count(*) FILTER (WHERE confidential OR list_has_any(coalesce(flags, []), $s))
        FROM core.events WHERE h3_cell IN (SELECT h3_cell FROM core.events WHERE list_has_any(coalesce(flags, []), $s))
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1""", {"s": queries.SENSITIVE_FLAGS}).fetchall()[0]
    assert hidden >= 1
    first, last = queries.date_bounds(con)
    rows = queries.events_in_cell(con, queries.EventFilter(start=first, end=last), format(int(cell), "x"), 10,
                                  limit=10_000)
    assert len(rows) == total - hidden


def test_small_counts_are_left_out_on_the_server_when_asked(con):
    first, last = queries.date_bounds(con)
    week = queries.EventFilter(start=last - dt.timedelta(days=6), end=last)
    every = queries.hex_counts(con, week, 9)
    shown = queries.hex_counts(con, week, 9, min_count=3)
    assert (every["n"] < 3).any() and (shown["n"] >= 3).all()
    pd.testing.assert_frame_equal(shown.reset_index(drop=True),
                                  every[every["n"] >= 3].reset_index(drop=True))


def test_the_wall_screen_is_as_strict_as_a_signed_in_viewer_about_sensitive_events(con):
    """The public screen leaves out small hexes AFTER taking out the sensitive events a viewer does not see: a hex
    of 3 events, one of them a lone domestic-violence report, would otherwise show that report to the street."""
    from dashboard.auth import Viewer

    first, last = queries.date_bounds(con)
    flt = queries.EventFilter(start=first, end=last)
    wall = Viewer("kiosk", queries.COUNTY, public=True).hex_privacy(3)
    viewer = Viewer("town", queries.COUNTY).hex_privacy(3)
    changed = 0
    for res in (9, 10):
        shown = queries.hex_counts(con, flt, res, **wall).set_index("cell")["n"]
        seen = queries.hex_counts(con, flt, res, **viewer).set_index("cell")["n"]
        every = queries.hex_counts(con, flt, res).set_index("cell")["n"]
        assert shown.equals(seen[seen >= 3])  # each wall hex as the viewer sees it, none below 3
        changed += int((every.reindex(shown.index) > shown).sum())
    assert changed  # sensitive events were taken out of some hexes the wall screen shows


def test_the_demos_later_export_closes_cases_and_reopens_some(demo_home, con):
    """The grid platform's later export carries the week's status changes: cases closed since the earlier export
    (their history: a stage, then 已办结) and cases that came back open (重开, counted in 重开率)."""
    later = _export_rows(demo_home)
    later = later[later.duplicated("event_id", keep=False)].drop_duplicates("event_id", keep="last")
    reopened = set(later.loc[later["status"] != "已办结", "event_id"])
    closed_now = set(later.loc[later["status"] == "已办结", "event_id"])
    assert reopened and closed_now
    got = dict(con.execute("SELECT event_id, reopened_at IS NOT NULL FROM core.events WHERE event_id IN "
                           "(SELECT unnest($ids))", {"ids": sorted(reopened | closed_now)}).fetchall())
    assert {e for e, flag in got.items() if flag} == reopened
    history = dict(con.execute("SELECT event_id, list(status ORDER BY observed_at) FROM core.event_status_history "
                               "WHERE event_id IN (SELECT unnest($ids)) GROUP BY 1", {"ids": sorted(reopened)}).fetchall())
    assert all(h[-2:] == ["已办结", "跟踪督办"] for h in history.values()) and len(history) == len(reopened)
    first, last = queries.date_bounds(con)
    assert queries.kpis(con, queries.EventFilter(first, last))["reopened_rate"] > 0


def test_a_cell_tied_between_villages_is_homed_in_the_lowest_code_every_time(con):
    """Which village (and so which town's users) a cell belongs to must not flip between rebuilds of the same data:
    of villages holding equally many of its events, the lowest code."""
    counts = con.execute(f"""
        SELECT {queries.h3_parent_sql('h3_cell', 10)} AS cell, village_code, count(*) AS n FROM core.events
        WHERE h3_cell IS NOT NULL AND village_code IS NOT NULL GROUP BY ALL""").df()
    top = counts[counts["n"] == counts.groupby("cell")["n"].transform("max")]
    want = top.groupby("cell")["village_code"].min()
    tied = top.groupby("cell").size().loc[lambda s: s > 1].index
    assert len(tied) >= 5
    got = con.execute(f"SELECT cell, village_code FROM ({queries.cell_home_sql(10)})").df().set_index("cell")
    assert got.loc[tied, "village_code"].equals(want.loc[tied])
