"""A source added to the warehouse later (a 12345 hotline loaded from this month on): its first month is not a
rise on the ground, so 环比 / 同比 against a period it does not cover whole are blank, and say why."""
import dataclasses
import datetime as dt

import pandas as pd

from onemap import queries
from onemap.warehouse import connect_readonly
from pipelines.ingest import ingest
from pipelines.profiles import PROFILE_DIR

from .test_quarantine import police_row


def _load(settings, tmp_path, source, name, rows, profile=None):
    pd.DataFrame(rows).to_csv(tmp_path / name, index=False)
    return ingest(settings, source, [tmp_path / name], profile_name=profile, progress=False)


def test_a_source_added_this_year_leaves_the_year_on_year_change_blank(settings, inside, tmp_path, capsys):
    hotline = tmp_path / "hotline.toml"
    hotline.write_text((PROFILE_DIR / "demo_police.toml").read_text(encoding="utf-8")
                       .replace('name = "demo_police"', 'name = "hotline_t"')
                       .replace('source = "police"', 'source = "hotline"'), encoding="utf-8")
    last_year = [police_row(inside, 接警单编号=f"Y{i}", 报警时间="2025-11-03 10:00:00", 办理期限="2025-11-13 10:00:00")
                 for i in range(4)]
    this_year = [police_row(inside, 接警单编号=f"N{i}", 报警时间="2026-11-03 10:00:00") for i in range(5)]
    _load(settings, tmp_path, "police", "p.csv", last_year + this_year)
    _load(settings, tmp_path, "hotline", "h.csv", [police_row(inside, 接警单编号=f"H{i}", 报警时间="2026-11-03 11:00:00")
                                                    for i in range(20)], profile=str(hotline))
    con = connect_readonly(settings.warehouse_path)
    try:
        flt = queries.EventFilter(start=dt.date(2026, 11, 2), end=dt.date(2026, 11, 8))
        now, before, year = queries.kpis_compared(con, flt)
        assert now["registered"] == 25 and year["registered"] is None and before["registered"] is None
        assert queries.late_sources(flt, queries.year_earlier(flt), queries.source_starts(con)) == ["hotline"]
        police = queries.EventFilter(start=flt.start, end=flt.end, sources=("police",))
        now, _, year = queries.kpis_compared(con, police)
        assert (now["registered"], year["registered"]) == (5, 4)  # like for like
        from dashboard.brief import weekly_brief

        texts = [getattr(b, "text", "") for b in weekly_brief(con, "汕尾市城区", flt.start).blocks]
        assert any(t.startswith("环比不可比（12345热线自 2026年11月03日 起才有数据") and "同比不可比" in t for t in texts)
    finally:
        con.close()
    from onemap.cli import main

    assert main(["--home", str(settings.home), "kpis", "--from", "2026-11-02", "--to", "2026-11-08"]) == 0
    assert "同比 blank: hotline has data from 2026-11-03 only" in capsys.readouterr().err
    assert main(["--home", str(settings.home), "kpis", "--from", "2026-11-02", "--to", "2026-11-08", "--source",
                 "police", "--format", "json"]) == 0
    out = capsys.readouterr()
    assert "blank" not in out.err and '"year_before":4' in out.out.replace(" ", "")


def test_a_source_younger_than_the_alert_model_needs_raises_no_alerts(settings, inside, tmp_path):
    """Twenty hotline calls in one hex in the last week of a warehouse whose police history is months long: with
    the hotline's first week in the panel it is an unusual rise of its own making; it is left out of the alerts
    (and the model run says so) until it has 14 weeks of data."""
    import json

    from pipelines.build import build

    hotline = tmp_path / "hotline.toml"
    hotline.write_text((PROFILE_DIR / "demo_police.toml").read_text(encoding="utf-8")
                       .replace('name = "demo_police"', 'name = "hotline_t"')
                       .replace('source = "police"', 'source = "hotline"'), encoding="utf-8")
    days = pd.date_range("2026-06-01", "2026-11-08", freq="D")
    _load(settings, tmp_path, "police", "p.csv",
          [police_row(inside, 接警单编号=f"P{i}", 报警时间=f"{d:%Y-%m-%d} 10:00:00", 办理期限=f"{d:%Y-%m-%d} 18:00:00")
           for i, d in enumerate(days)])
    _load(settings, tmp_path, "hotline", "h.csv",
          [police_row(inside, 接警单编号=f"H{i}", 报警时间="2026-11-07 11:00:00", 办理期限="2026-11-07 18:00:00")
           for i in range(20)], profile=str(hotline))
    build(settings)
    con = connect_readonly(settings.warehouse_path)
    try:
        [(params,)] = con.execute("SELECT params FROM meta.model_runs WHERE model = 'unusual_now'").fetchall()
        assert json.loads(params)["sources_left_out"] == ["hotline"]
        assert con.execute("SELECT count(*) FROM scores.alerts WHERE observed >= 20").fetchall()[0][0] == 0
        assert queries.alert_sources_left_out(con) == ["hotline"]
    finally:
        con.close()


def test_a_load_links_only_its_own_events(settings, inside, tmp_path, monkeypatch):
    """A police incident and a grid report of one matter left unlinked by earlier loads are not linked by, nor
    counted as linked in, a later load of another source's file that covers their days."""
    import pipelines.ingest as ingest_module
    from pipelines.load import link_matters

    hotline = tmp_path / "hotline.toml"
    hotline.write_text((PROFILE_DIR / "demo_police.toml").read_text(encoding="utf-8")
                       .replace('name = "demo_police"', 'name = "hotline_t"')
                       .replace('source = "police"', 'source = "hotline"'), encoding="utf-8")
    grid_row = {"事件编号": "G1", "上报时间": "2026-11-03 10:20:00", "事件类型代码": "A02", "事件描述": "邻里纠纷",
                "经度": f"{inside[0]:.6f}", "纬度": f"{inside[1]:.6f}", "坐标系": "WGS84", "处理状态": "登记受理"}
    monkeypatch.setattr(ingest_module, "link_matters", lambda con, batch: 0)  # as if left unlinked then
    _load(settings, tmp_path, "police", "p.csv", [police_row(inside, 接警单编号="P1", 报警时间="2026-11-03 10:00:00")])
    _load(settings, tmp_path, "grid", "g.csv", [grid_row])
    monkeypatch.setattr(ingest_module, "link_matters", link_matters)
    [h] = _load(settings, tmp_path, "hotline", "h.csv", [police_row(inside, 接警单编号="H1", 报警时间="2026-11-03 11:00:00")],
                profile=str(hotline))
    assert h.linked == 0
    con = connect_readonly(settings.warehouse_path)
    try:
        assert con.execute("SELECT count(*) FROM core.events WHERE linked_event_id IS NOT NULL").fetchall()[0][0] == 0
    finally:
        con.close()


def test_a_source_without_the_on_site_field_leaves_the_on_site_rate_alone(settings, inside, tmp_path):
    hotline = tmp_path / "hotline.toml"
    hotline.write_text((PROFILE_DIR / "demo_police.toml").read_text(encoding="utf-8")
                       .replace('name = "demo_police"', 'name = "hotline_t"')
                       .replace('source = "police"', 'source = "hotline"'), encoding="utf-8")
    closed = {"接警单状态": "已办结", "办结时间": "2026-11-03 12:00:00", "处置结果": "化解"}
    _load(settings, tmp_path, "police", "p.csv", [police_row(inside, 接警单编号="P1", 是否现场处结="是", **closed),
                                                   police_row(inside, 接警单编号="P2", 是否现场处结="否", **closed)])
    calls = [police_row(inside, 接警单编号=f"H{i}", **closed) for i in range(3)]
    for c in calls:
        c.pop("是否现场处结")
    _load(settings, tmp_path, "hotline", "h.csv", calls, profile=str(hotline))
    con = connect_readonly(settings.warehouse_path)
    try:
        flt = queries.EventFilter(dt.date(2026, 11, 1), dt.date(2026, 11, 3))
        assert queries.kpis(con, flt)["onsite_rate"] == 0.5  # not 1 of 5
        assert queries.kpis(con, dataclasses.replace(flt, sources=("hotline",)))["onsite_rate"] is None
    finally:
        con.close()
