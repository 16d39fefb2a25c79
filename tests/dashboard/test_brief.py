"""The weekly 研判 brief: a frozen snapshot of one week, its numbers from the same queries and KPI definitions
as the map, written as .docx and .pdf with Chinese text and a map."""
from __future__ import annotations

import datetime as dt
import io
import re

import pandas as pd
import pytest

from dashboard.brief import (
    Bullets,
    Heading,
    Picture,
    Table,
    Text,
    default_week,
    week_of,
    weekly_brief,
    weekly_trend,
)
from dashboard.brief import week_alerts as brief_alerts
from onemap import queries
from onemap.cli import main
from onemap.contracts import CLOSED_STATUSES
from onemap.metrics import format_change, format_changes, format_value, kpi
from onemap.warehouse import connect_readonly

WEEK = dt.date(2026, 11, 4)  # a Wednesday of the demo's last complete weeks (the demo ends 2026-11-15)


@pytest.fixture(scope="module")
def brief(con):
    return weekly_brief(con, "汕尾市城区", WEEK, map_png=b"\x89PNG not drawn here")


def _table_after(brief, heading: str, first_column: str | None = None) -> Table:
    """The first table after ``heading`` (whose first column is ``first_column``, when given)."""
    i = next(i for i, b in enumerate(brief.blocks) if isinstance(b, Heading) and b.text == heading)
    return next(b for b in brief.blocks[i:] if isinstance(b, Table) and first_column in (None, b.columns[0]))


OVERDUE = "六、积案与超期督办"


def test_week_bounds_and_default_week(con):
    assert week_of(dt.date(2026, 11, 4)) == (dt.date(2026, 11, 2), dt.date(2026, 11, 8))
    assert week_of(dt.date(2026, 11, 8)) == (dt.date(2026, 11, 2), dt.date(2026, 11, 8))
    start, end = default_week(con)
    assert (start.weekday(), end.weekday()) == (0, 6)
    assert end <= queries.date_bounds(con)[1] < end + dt.timedelta(days=7)


def test_kpis_are_the_maps_numbers_as_of_the_end_of_each_week(con, brief):
    this = queries.EventFilter(start=dt.date(2026, 11, 2), end=dt.date(2026, 11, 8))
    end_of = pd.Timestamp("2026-11-09", tz="Asia/Shanghai")
    now = queries.kpis(con, this, end_of)
    before = queries.kpis(con, queries.previous_period(this), end_of - pd.Timedelta(days=7))
    year = queries.kpis(con, queries.EventFilter(start=dt.date(2025, 11, 3), end=dt.date(2025, 11, 9)),
                        end_of - pd.Timedelta(weeks=52))
    # 重开率 "—" where no export or flow log had shown a change of status by the end of that week (0 % would
    # claim none reopened); the demo's flow logs date every step, so its changes are seen from months before
    seen = queries.changes_seen_from(con)
    assert brief.kpis == queries.blank_unseen(now, end_of, seen) and now["registered"] > 0
    assert seen < end_of and brief.kpis["reopened_rate"] == now["reopened_rate"] == 0
    assert queries.blank_unseen(now, end_of, end_of + pd.Timedelta(days=1))["reopened_rate"] is None
    rows = {r[0]: r for r in _table_after(brief, "一、本周概况").rows}
    for key in ("registered", "closed_rate", "overdue"):
        k = kpi(key)
        assert rows[k.label] == [k.label, format_value(k, now[key]), format_value(k, before[key]),
                                 format_change(k, now[key], before[key]), format_value(k, year[key]),
                                 format_change(k, now[key], year[key])]


def test_categories_and_towns_add_up_to_the_week(brief):
    registered = int(brief.kpis["registered"])
    categories = _table_after(brief, "二、分类别变化").rows
    assert sum(int(r[1].replace(",", "")) for r in categories) == registered
    assert len({r[0] for r in categories}) == len(categories)  # names made unique (其他 of MD99 and QT)
    towns = _table_after(brief, "三、各镇街受理与办结").rows
    assert len(towns) == 10 and sum(int(r[1].replace(",", "")) for r in towns) == registered


def test_towns_show_where_cases_were_settled_and_the_lowest_are_named(con, brief):
    """小事不出村: each town's 村级办结占比 is the KPI of its own events; the sentence gives the county's shares and
    names the three towns whose villages settled the least."""
    table = _table_after(brief, "三、各镇街受理与办结")
    share = kpi("village_share")
    assert table.columns[-1] == share.label
    end_of = pd.Timestamp("2026-11-09", tz="Asia/Shanghai")
    towns = queries.child_areas(con, None)
    got = {r[0]: r[-1] for r in table.rows}
    values, bases = {}, {}
    marked = 0
    for town in towns.itertuples():
        flt = queries.EventFilter(start=dt.date(2026, 11, 2), end=dt.date(2026, 11, 8),
                                  scope=queries.Scope("town", town.code))
        v, base = queries.kpis(con, flt, end_of)["village_share"], queries.kpi_bases(con, flt, end_of)["village_share"]
        few = v is not None and base < 30  # a share of fewer than 30 closed cases is marked, and a note says why
        assert got[town.name] == format_value(share, v) + ("*" if few else "")
        values[town.name], bases[town.name] = v, base
        marked += few
    notes = [b.text for b in brief.blocks if isinstance(b, Text) and b.text.startswith("* 比率的分母不足 30 件")]
    assert marked > 0 and notes == ["* 比率的分母不足 30 件，偶然性大（30 件中一半时，95% 区间为 33%—67%），比较镇街时请谨慎。"]
    [sentence] = [b.text for b in brief.blocks if isinstance(b, Text) and b.text.startswith("层级办结")]
    assert f"村（社区）办结 {format_value(share, brief.kpis['village_share'])}" in sentence
    assert f"镇村两级合计 {format_value(share, brief.kpis['town_or_below_share'])}" in sentence
    # the lowest over enough cases first; one over fewer only after them, starred as in the table
    lowest = sorted((bases[n] < 30, v, n) for n, v in values.items() if v is not None)[:3]
    assert sentence.endswith("村级办结占比最低：" + "、".join(
        f"{n}（{format_value(share, v)}{'*' if few else ''}）" for few, v, n in lowest) + "。")
    assert 0 < brief.kpis["village_share"] < brief.kpis["town_or_below_share"] <= 1


def test_alerts_hot_spots_overdue_and_repeats_are_there_with_their_caveat(brief):
    texts = [b.text for b in brief.blocks if isinstance(b, Text)]
    bullets = [i for b in brief.blocks if isinstance(b, Bullets) for i in b.items]
    assert any(t.startswith("【") for t in bullets) or any("没有通过统计检验的异常" in t for t in texts)
    assert any("不是对下周的预测" in t for t in texts)
    assert any(t.startswith("截至本周末共有超期未办结") for t in texts)
    assert any(isinstance(b, Picture) for b in brief.blocks)
    overdue = _table_after(brief, OVERDUE, "编号")
    assert all(int(r[5]) > 0 for r in overdue.rows)
    # the stage each case was at when the week ended, never a closed status (a case closed since is not
    # shown as 已办结 in a list of cases open at the week's end)
    assert overdue.columns[-1] == "周末时阶段"
    stages = {r[-1] for r in overdue.rows}
    assert stages and not stages & set(CLOSED_STATUSES)


def test_a_past_week_reads_the_same_whenever_it_is_made(con, brief):
    again = weekly_brief(con, "汕尾市城区", dt.date(2026, 11, 8), map_png=b"x")
    assert [b for b in again.blocks if not isinstance(b, Picture)] == \
        [b for b in brief.blocks if not isinstance(b, Picture)]


def test_report_command_writes_a_word_brief_and_a_pdf_with_chinese_text(demo_settings, tmp_path, capsys):
    import docx
    import pypdf

    assert main(["--home", str(demo_settings.home), "report", "--week", "2026-11-04", "--out", str(tmp_path)]) == 0
    written = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in written] == ["研判周报_汕尾市城区_20261102-20261108.docx", "研判周报_汕尾市城区_20261102-20261108.pdf"]
    con = connect_readonly(demo_settings.warehouse_path)
    try:
        registered = queries.kpis(con, queries.EventFilter(start=dt.date(2026, 11, 2), end=dt.date(2026, 11, 8)),
                                  pd.Timestamp("2026-11-09", tz="Asia/Shanghai"))["registered"]
    finally:
        con.close()
    document = docx.Document(str(tmp_path / "研判周报_汕尾市城区_20261102-20261108.docx"))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith(("Heading", "Title"))]
    assert headings[0] == "汕尾市城区社会治理研判周报（2026年11月02日—11月08日）"
    assert OVERDUE in headings and "附：指标口径" in headings
    assert len(document.inline_shapes) == 3  # the trend chart, the map and the backlog chart
    assert document.tables[0].rows[1].cells[1].text == f"{int(registered):,}"
    reader = pypdf.PdfReader(io.BytesIO((tmp_path / "研判周报_汕尾市城区_20261102-20261108.pdf").read_bytes()))
    assert len(reader.pages) >= 2
    # the first page read back as text (pypdf decodes the embedded CJK subset reliably there)
    text = reader.pages[0].extract_text().replace(" ", "").replace("\x00", "")
    assert "汕尾市城区社会治理研判周报" in text and "一、本周概况" in text
    assert f"受理数{int(registered):,}" in text
    assert any("/Subtype /Image" in str(reader.pages[i].get("/Resources", {}).get_object()) or
               "/XObject" in str(reader.pages[i].get("/Resources", {}).get_object()) for i in range(len(reader.pages)))


def test_report_command_refuses_a_bad_format_or_date(demo_settings, capsys):
    for args in (["--format", "xls"], ["--week", "11/04"]):
        with pytest.raises(SystemExit) as exc:
            main(["--home", str(demo_settings.home), "report", *args])
        assert exc.value.code == 2
    assert "expected" in capsys.readouterr().err


def test_an_old_week_says_its_alerts_were_not_kept_and_of_which_weeks_its_hot_spots_are(con):
    old = weekly_brief(con, "汕尾市城区", dt.date(2026, 9, 9), map_png=None)
    texts = [b.text for b in old.blocks if isinstance(b, Text)]
    assert any(t.startswith("本周不在已计算的预警范围内") for t in texts)
    assert any(t.startswith("截至 2026年09月13日的近26周") for t in texts)  # its own Sunday's, not the build's
    assert not any(isinstance(b, Picture) for b in old.blocks)  # no map given, none drawn


def test_the_trend_is_twelve_weeks_ending_with_the_brief_week_beside_a_year_earlier(con, brief):
    trend = weekly_trend(con, dt.date(2026, 11, 2))
    assert len(trend) == 12 and list(trend["week"])[-1] == dt.date(2026, 11, 2)
    assert all((b - a).days == 7 for a, b in zip(trend["week"], trend["week"][1:], strict=False))
    assert trend["registered"].iloc[-1] == brief.kpis["registered"]
    earlier = queries.kpis(con, queries.EventFilter(start=dt.date(2025, 11, 3), end=dt.date(2025, 11, 9)))
    assert trend["year_before"].iloc[-1] == earlier["registered"]


def test_a_loaded_but_unbuilt_warehouse_is_refused_with_the_command_to_run(tmp_path, monkeypatch, capsys):
    from onemap.settings import load_settings
    from pipelines.ingest import ingest

    monkeypatch.setenv("ONEMAP_HMAC_KEY", "ab" * 16)
    settings = load_settings(environ={"ONEMAP_HOME": str(tmp_path / "h"), "ONEMAP_HMAC_KEY": "ab" * 16},
                             local_file=tmp_path / "none.toml")
    export = tmp_path / "e.csv"
    export.write_text("接警单编号,报警时间,报警类别代码,报警内容,案发地址\nJ1,2026-11-01 10:00:00,200201,邻居漏水,新港街道\n",
                      encoding="utf-8")
    ingest(settings, "police", [export], progress=False)
    assert main(["--home", str(settings.home), "report"]) == 2
    assert "run `onemap build` first" in capsys.readouterr().err


def test_the_overdue_list_counts_but_never_lists_confidential_or_sensitive_cases(con, brief):
    listed = [r[0] for r in _table_after(brief, OVERDUE, "编号").rows]
    held_back = con.execute(
        "SELECT count(*) FROM core.events WHERE list_contains($ids, event_id) "
        "AND (confidential OR list_has_any(coalesce(flags, []), $s))",
        {"ids": listed, "s": queries.SENSITIVE_FLAGS}).fetchall()[0][0]
    assert listed and held_back == 0
    _, total = queries.overdue_cases(con, brief.as_of)
    assert any(isinstance(b, Text) and b.text.startswith(f"截至本周末共有超期未办结 {total:,} 件") for b in brief.blocks)


def test_a_towns_brief_holds_the_town_only_and_its_map_frames_the_town(con, demo_settings):
    from dashboard.brief_files import brief_for

    town = queries.area_scope(con, queries.child_areas(con, None)["code"].iloc[0])
    brief = brief_for(con, demo_settings, WEEK, scope=town)
    assert town.name in brief.title and brief.file_stem.startswith(f"研判周报_{town.name}_")
    this = queries.EventFilter(*week_of(WEEK), scope=town)
    assert brief.kpis["registered"] == queries.kpis(con, this, brief.as_of)["registered"]
    villages = queries.child_areas(con, town)
    tables = [b for b in brief.blocks if isinstance(b, Table)]
    by_area = next(t for t in tables if t.columns[0] == "村（社区）")
    counts = [int(r[1].replace(",", "")) for r in by_area.rows]
    assert sorted(r[0] for r in by_area.rows) == sorted(villages["name"]) and counts == sorted(counts, reverse=True)
    assert sum(counts) <= brief.kpis["registered"]
    overdue = next((t for t in tables if t.columns[0] == "编号"), None)
    if overdue:
        assert all(r[2].startswith(town.name) for r in overdue.rows)
    outline, labels = queries.map_layers(con, town)  # what the brief map draws
    assert [f["id"] for f in outline["county"]["features"]] == [town.code]
    assert sorted(f["id"] for f in outline["town"]["features"]) == sorted(villages["code"])
    assert set(labels["name"]) == set(villages["name"])
    assert any(isinstance(b, Picture) for b in brief.blocks)


def test_the_briefs_alerts_carry_the_analysts_verdicts(con, tmp_path):
    from onemap.reviews import add_review, keys_of

    ends = pd.to_datetime(queries.alerts(con, window_days=7)["window_end"])
    week = ends[ends.dt.day_of_week == 6].iloc[0].date()  # a Sunday with alerts: its week lists them
    plain = weekly_brief(con, "汕尾市城区", week, map_png=None)
    listed = next(b for b in plain.blocks if isinstance(b, Bullets) and "预计" in b.items[0])
    week_alerts = brief_alerts(con, *week_of(week))
    first = week_alerts[week_alerts["sentence_zh"] == listed.items[0]].iloc[[0]]
    reviews = tmp_path / "alert_reviews.jsonl"
    add_review(reviews, keys_of(first).iloc[0], "false_alarm", "county")
    reviewed = weekly_brief(con, "汕尾市城区", week, map_png=None, reviews_path=reviews)
    items = next(b for b in reviewed.blocks if isinstance(b, Bullets) and "预计" in b.items[0]).items
    assert items[0] == listed.items[0] + "（经核实：误报）" and items[1:] == listed.items[1:]
    texts = [b.text for b in reviewed.blocks if isinstance(b, Text)]
    assert f"以上 {len(items)} 条中已核实 1 条：属实 0 条，误报 1 条。" in texts
    # the record of the last four weeks: one verdict, a wide interval; a second, confirmed one changes it
    record = next(t for t in texts if "起异常，一起连续多日每日一条）中已核实" in t)
    kept = queries.scored_through(con)["alerts_from"]  # the demo keeps two weeks of alerts: the span says so
    assert record.startswith(f"{kept:%m月%d日}（现有预警最早的一天）至 {week:%m月%d日}的 ")
    assert "已核实 1 条：属实 0 条，误报 1 条，属实率 0%（95% 区间 0%—79%）。" in record
    add_review(reviews, keys_of(week_alerts.iloc[[-1]]).iloc[0], "confirmed", "county")
    again = weekly_brief(con, "汕尾市城区", week, map_png=None, reviews_path=reviews)
    record = next(b.text for b in again.blocks if isinstance(b, Text) and "）中已核实" in b.text)
    assert "已核实 2 条：属实 1 条，误报 1 条，属实率 50%（95% 区间 9%—91%）。" in record
    assert not any("）中已核实" in b.text for b in plain.blocks if isinstance(b, Text))


def test_the_backlog_at_each_weeks_end_leads_to_this_weeks_overdue_count(con):
    """The 督办 section's chart: the backlog at the end of each of the last 12 weeks; its last point is the
    count the section gives (截至本周末共有超期未办结 N 件)."""
    from dashboard.brief import weekly_backlog
    from dashboard.brief_images import backlog_chart

    start, end = week_of(WEEK)
    weeks = weekly_backlog(con, start)
    assert len(weeks) == 12 and weeks["week"].iloc[-1] == start
    assert (weeks["overdue"] <= weeks["open"]).all() and weeks["open"].min() > 0
    plain = weekly_brief(con, "汕尾市城区", WEEK, map_png=None)
    total = next(b.text for b in plain.blocks if isinstance(b, Text) and b.text.startswith("截至本周末共有超期未办结"))
    assert f"超期未办结 {int(weeks['overdue'].iloc[-1]):,} 件" in total
    png = backlog_chart(list(weeks["label"]), list(weeks["open"]), list(weeks["overdue"]))
    drawn = weekly_brief(con, "汕尾市城区", WEEK, map_png=b"m", trend_png=b"t", backlog_png=png)
    captions = [b.caption for b in drawn.blocks if isinstance(b, Picture)]
    assert captions[0].startswith("图1 近12周每周受理数") and captions[1].startswith("图2 本周受理事件分布")
    assert captions[2] == "图3 近12周每周末未办结与超期案件数" and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_backlog_at_the_weeks_end_by_stage_and_its_longest_open_areas(con, brief):
    """积案: the open cases at the end of the week by stage and age band (queries.backlog at Sunday 24:00), the
    change since the Sunday before, and the towns with the most cases open over 30 days."""
    end_of = pd.Timestamp("2026-11-09", tz="Asia/Shanghai")
    week = queries.EventFilter(start=dt.date(2026, 11, 2), end=dt.date(2026, 11, 8))
    expected = queries.backlog(con, week, end_of, total=True)
    table = _table_after(brief, OVERDUE, "阶段")
    assert [r[0] for r in table.rows] == list(expected["name"])
    assert [int(r[1].replace(",", "")) for r in table.rows] == list(expected["open"])
    assert [int(r[6].replace(",", "")) for r in table.rows] == list(expected["overdue"])
    total, before = expected.iloc[-1], queries.backlog(con, week, end_of - pd.Timedelta(days=7), total=True).iloc[-1]
    texts = [b.text for b in brief.blocks if isinstance(b, Text)]
    [line] = [t for t in texts if t.startswith("截至本周末在办案件（积案）")]
    assert f"{int(total['open']):,} 件" in line
    change = int(total["open"] - before["open"])
    assert (f"增加 {change:,} 件" if change > 0 else f"减少 {-change:,} 件" if change < 0 else "持平") in line
    areas = queries.backlog(con, week, end_of, by="area")
    longest = areas.assign(n=areas["days_31_90"] + areas["days_over_90"]).sort_values(["n", "code"],
                                                                                      ascending=[False, True])
    [towns] = [t for t in texts if t.startswith("在办超过 30 天最多的镇街：")]
    assert towns.startswith(f"在办超过 30 天最多的镇街：{longest['name'].iloc[0]}（{int(longest['n'].iloc[0])} 件）")
    # the overdue count of the table is the 督办 list's count
    assert any(t.startswith(f"截至本周末共有超期未办结 {int(total['overdue']):,} 件") for t in texts)


def _alerts_listed(brief) -> list[str]:
    """The bullets of section 四 (the alerts), [] when it lists none."""
    i = next(i for i, b in enumerate(brief.blocks) if isinstance(b, Heading) and b.text.startswith("四、"))
    j = next(j for j in range(i + 1, len(brief.blocks)) if isinstance(brief.blocks[j], Heading))
    return [item for b in brief.blocks[i:j] if isinstance(b, Bullets) for item in b.items]


def test_a_week_lists_the_alerts_raised_on_its_days_strongest_place_first(con, monkeypatch):
    """window_end is the day an alert was raised: every window ending on one of the week's days (7-day or 1-day,
    the one ending on the Monday too, though six of its days are the week before) and every ramp found in the
    week is the week's, one line a place (its strongest), strongest first; windows ending before the Monday or
    after the Sunday belong to other briefs. The lead line counts them all."""
    def alert(end: str, place: str, sentence: str, score: float, kind: str = "cell", days: int = 7,
              start: str | None = None) -> dict:
        return {"window_end": end, "window_days": days, "kind": kind, "place": place, "cell": f"8a{place}",
                "category_code": None, "observed": 9, "expected": 1.0, "ratio": 9.0, "score": score,
                "q_value": 0.01, "sentence_zh": sentence, "episode_start": start or end}

    stored = pd.DataFrame([
        alert("2026-11-15", "甲村", "下周日结束的窗口", 95), alert("2026-11-09", "乙村", "下周一结束的窗口", 90),
        alert("2026-11-08", "丙村", "周日结束的窗口", 10), alert("2026-11-05", "丁村", "周四结束的窗口", 60),
        alert("2026-11-05", "丁村", "周四的单日窗口", 40, days=1), alert("2026-11-06", "丁村", "周五仍在", 30, start="2026-11-05"), alert("2026-11-04", "戊村", "周三发现的上升", 20, "ramp", 20),
        alert("2026-11-02", "己村", "周一结束的窗口", 70, "category"), alert("2026-11-01", "庚村", "上周日结束的窗口", 50)])

    def alerts(con, since=None, window_days=None, limit=None, *, kind=None, with_ramps=False, scope=None):
        return stored[stored["window_end"] >= f"{since}"].reset_index(drop=True)

    monkeypatch.setattr(queries, "alerts", alerts)
    brief = weekly_brief(con, "汕尾市城区", WEEK, map_png=None)
    assert _alerts_listed(brief) == ["周一结束的窗口", "周四结束的窗口", "周三发现的上升", "周日结束的窗口"]
    assert any(isinstance(b, Text) and b.text == "本周发出预警 6 条，合 5 起异常（同一处连日预警每日一条，连续的算一起），涉及 4 处，每处列出最强的一条："
               for b in brief.blocks)


def test_the_demos_brief_lists_every_alert_raised_in_its_week(con):
    """The demo's last week: the places listed are those of every alert whose window ends in the week (the
    7-day windows ending before its Sunday too), strongest first, one a place."""
    start, end = dt.date(2026, 11, 9), dt.date(2026, 11, 15)
    stored = queries.alerts(con, since=start)
    raised = stored[stored["window_end"] <= f"{end}"]
    assert (raised["window_end"] < f"{end}").any()  # the demo has alerts on windows ending before the Sunday
    assert brief_alerts(con, start, end).equals(raised.reset_index(drop=True))
    listed = _alerts_listed(weekly_brief(con, "汕尾市城区", dt.date(2026, 11, 12), map_png=None))
    expected = raised.sort_values("score", ascending=False).drop_duplicates("place").head(10)
    assert listed == list(expected["sentence_zh"]) and listed


def test_no_alert_says_which_days_of_the_week_were_scored(con, monkeypatch):
    """Nothing listed: the week scored and nothing found; or the week still running in the data (its last days
    not loaded), the days scored so far named."""
    none = queries.alerts(con).iloc[0:0]
    with monkeypatch.context() as m:
        m.setattr(queries, "alerts", lambda *args, **kwargs: none)
        scored = weekly_brief(con, "汕尾市城区", WEEK, map_png=None)  # 11-02..11-08 inside the build's scored span
    assert not _alerts_listed(scored)
    assert any(isinstance(b, Text) and b.text == "本周没有通过统计检验的异常（已控制误报比例）。" for b in scored.blocks)
    running = weekly_brief(con, "汕尾市城区", dt.date(2026, 11, 18), map_png=None)  # the demo ends on 11-15
    assert not _alerts_listed(running)
    assert any(isinstance(b, Text) and b.text.startswith("本周尚未结束（预警已计算至 11月15日）") for b in running.blocks)


def test_the_areas_are_listed_busiest_first_and_the_unplaced_last(con, brief):
    """As the map's side panel: by the week's 受理数, most first, the code breaking ties, 未定位 last."""
    this = queries.EventFilter(*week_of(WEEK))
    areas = queries.area_kpis(con, this, brief.as_of, keys=("registered",))
    expected = areas.sort_values(["registered", "code"], ascending=[False, True])
    assert [r[0] for r in _table_after(brief, "三、各镇街受理与办结").rows] == list(expected["name"])
    assert list(expected["code"]) != list(areas["code"])  # code order is not this order: the test can tell
    frame = pd.DataFrame({"code": ["441502003", None, "441502001", "441502002"],
                          "name": ["丙", queries.UNPLACED, "甲", "乙"], "registered": [5, 99, 7, 7]})
    assert list(queries.busiest_first(frame)["name"]) == ["甲", "乙", "丙", queries.UNPLACED]


def _overdue_table(brief) -> tuple[int, Table]:
    tables = [b for b in brief.blocks if isinstance(b, Table)]
    return next((i, t) for i, t in enumerate(tables) if t.columns[0] == "编号")


def test_the_overdue_ids_and_dates_are_wide_enough_for_one_line_in_the_pdf(con, monkeypatch):
    """The PDF's 督办 table: the id and date columns as wide as their longest cell needs (set in that font, with
    the cell's margins), where equal columns broke the ids over two lines."""
    from fpdf import FPDF

    from dashboard.brief_files import render

    brief = weekly_brief(con, "汕尾市城区", WEEK, map_png=None)
    k, table = _overdue_table(brief)
    drawn = []
    real = FPDF.table

    def table_spy(pdf, *args, **kwargs):
        drawn.append((pdf, pdf.font_size_pt, kwargs.get("col_widths")))
        return real(pdf, *args, **kwargs)

    monkeypatch.setattr(FPDF, "table", table_spy)
    assert render(brief, "pdf")[:5] == b"%PDF-"
    pdf, size, widths = drawn[k]
    assert widths is not None
    mm = [w / sum(widths) * pdf.epw for w in widths]  # fpdf2 takes them as shares of the page's width
    pdf.set_font("cjk", size=size)
    for j in table.nowrap:
        longest = max((r[j] for r in table.rows), key=pdf.get_string_width)
        assert mm[j] >= pdf.get_string_width(longest) + 2 * pdf.c_margin + pdf.line_width, (j, longest)
    assert table.nowrap == (0, 3, 4) and any(len(r[0]) >= 20 for r in table.rows)  # ids like 警情 J441502…


def test_the_overdue_ids_and_dates_are_wide_enough_for_one_line_in_word(con):
    """The Word brief's 督办 table: fixed column widths (Word would otherwise size them again), the id and date
    columns as wide as their longest cell needs in 小五 bold (the style's first column), A4 as the PDF."""
    import docx

    from dashboard.brief_files import DOCX_CELL_MARGIN_MM, DOCX_TABLE_PT, render, text_width_mm

    brief = weekly_brief(con, "汕尾市城区", WEEK, map_png=None)
    k, table = _overdue_table(brief)
    document = docx.Document(io.BytesIO(render(brief, "docx")))
    assert round(document.sections[0].page_width.mm) == 210
    word = document.tables[k]
    assert word.rows[0].cells[0].text == "编号" and word.autofit is False
    for j in table.nowrap:
        longest = max(text_width_mm(r[j], DOCX_TABLE_PT, bold=True) for r in table.rows)
        assert word.columns[j].width.mm >= longest + 2 * DOCX_CELL_MARGIN_MM, j
        assert all(row.cells[j].width == word.columns[j].width for row in word.rows)
    assert word.rows[1].cells[0].paragraphs[0].runs[0].font.size.pt == DOCX_TABLE_PT
    page = document.sections[0]
    assert sum(c.width for c in word.columns) <= page.page_width - page.left_margin - page.right_margin + 10


def test_the_overview_says_its_overdue_is_the_weeks_own_and_gives_the_whole_burden(con, brief):
    """本周概况's 超期 counts only the cases registered in the week (a handful, where hundreds are overdue in all):
    the line under the table says so and gives the open and overdue cases whatever their registration day,
    as the 积案 section counts them."""
    texts = [b.text for b in brief.blocks if isinstance(b, Text)]
    held = queries.backlog(con, queries.EventFilter(brief.week_start, brief.week_end), brief.as_of,
                           total=True).iloc[-1]
    line = next(t for t in texts if t.startswith("上表各项只计本周受理的事件"))
    assert f"其超期 {int(brief.kpis['overdue'])} 件" in line
    assert f"截至本周末在办 {int(held['open']):,} 件，其中已超期 {int(held['overdue']):,} 件" in line
    assert held["overdue"] > brief.kpis["overdue"]  # the burden is larger than the week's own share of it


def test_the_hot_spots_are_listed_busiest_first_in_plain_words(brief):
    """五、新兴热点: the named hot spots busiest first, each count said to be its hex's (which may reach past the
    village), and no statistician's symbol (Gi*) for a leader to decode."""
    i = next(i for i, b in enumerate(brief.blocks) if isinstance(b, Heading) and b.text == "五、新兴热点")
    bullets = next(b for b in brief.blocks[i:] if isinstance(b, Bullets) or isinstance(b, Heading) and b is not
                   brief.blocks[i])
    assert isinstance(bullets, Bullets) and bullets.items
    counts = [int(item.rsplit("所在六边形最近一周 ", 1)[1].split(" 件")[0]) for item in bullets.items]
    assert counts == sorted(counts, reverse=True)
    texts = [getattr(b, "text", "") for b in brief.blocks] + [t for b in brief.blocks for t in getattr(b, "items", [])]
    assert not [t for t in texts if "Gi*" in t]


def test_a_case_number_names_its_system_not_a_code_prefix(brief):
    """督办 table: '警情 J4415…' / '网格 WG…', the number staff look up in the system named, not 'police:J4415…'."""
    _, table = _overdue_table(brief)
    assert table.rows and all(r[0].split(" ", 1)[0] in ("警情", "网格", "热线") and ":" not in r[0] for r in table.rows)


def test_the_overview_counts_the_weeks_reopenings_of_older_cases(con):
    """重开率 is the week's own cases; the demo's last export reopens older cases, so that week's rate reads 0 %
    and the line under the table gives the reopenings apart, as many as the warehouse holds for the week."""
    start, end = default_week(con)
    [(count,)] = con.execute("SELECT count(*) FROM core.events WHERE CAST(reopened_at AS DATE) BETWEEN ? AND ?",
                             [start, end]).fetchall()
    assert count > 0
    brief = weekly_brief(con, "汕尾市城区", start)
    line = next(b.text for b in brief.blocks if isinstance(b, Text) and b.text.startswith("上表各项只计本周受理的事件"))
    assert brief.kpis["reopened_rate"] == 0
    assert f"本周导出显示重开（办结后又转为未办结）{count:,} 件，均为本周以前受理的事件" in line
    assert "重开" not in next(b.text for b in weekly_brief(con, "汕尾市城区", WEEK).blocks
                              if isinstance(b, Text) and b.text.startswith("上表各项"))  # no reopening that week


def test_the_briefs_map_lies_on_the_deployments_basemap_when_there_is_one(demo_settings, con, tmp_path):
    """[map] basemap: the printed map draws the tiles under the hexes (their magenta shows between them); without
    one it does not."""
    import dataclasses

    import numpy as np
    from PIL import Image

    from dashboard.brief_files import brief_for
    from dashboard.data import DashboardData
    from tests.geodata.tiles import make_mbtiles

    tiles = make_mbtiles(tmp_path / "c.mbtiles", DashboardData(demo_settings).bounds(queries.COUNTY),
                         zooms=range(8, 13), colour=(255, 0, 255))

    def magenta(settings) -> float:
        picture = next(b for b in brief_for(con, settings, WEEK).blocks if isinstance(b, Picture) and "分布" in b.caption)
        pixels = np.asarray(Image.open(io.BytesIO(picture.png)).convert("RGB")).astype(int)
        return float(((pixels[..., 0] > 120) & (pixels[..., 1] < 60) & (pixels[..., 2] > 120)).mean())

    assert magenta(dataclasses.replace(demo_settings, basemap=tiles, basemap_opacity=0.8)) > 0.2
    assert magenta(demo_settings) == 0
    # tiles of another place are refused as the server refuses them, not printed without a word
    from geodata.basemap import BasemapError

    elsewhere = make_mbtiles(tmp_path / "bj.mbtiles", (116.3, 39.8, 116.5, 40.0), zooms=[10])
    with pytest.raises(BasemapError, match="not the county"):
        brief_for(con, dataclasses.replace(demo_settings, basemap=elsewhere), WEEK)


def test_the_last_weeks_brief_and_the_kpis_command_give_the_same_numbers(con):
    """The brief measures each week at its end; `onemap kpis` (queries.kpis_compared) measures now and lags the
    earlier periods from the end of the data's last day. The demo is built at that midnight, so for its last
    week both give the same 本周, 上周 and 去年同期, 重开率 of a year ago blank in both (— : no export or flow log
    had shown a change of status by then)."""
    start, end = default_week(con)
    brief = weekly_brief(con, "汕尾市城区", start)
    now, before, year = queries.kpis_compared(con, queries.EventFilter(start, end))
    table = _table_after(brief, "一、本周概况")
    rows = {row[0]: row for row in table.rows}
    for k in (kpi(key) for key in now):
        changes = format_changes(k, now[k.key], before[k.key], year[k.key])
        assert rows[k.label][1:] == [format_value(k, now[k.key]), format_value(k, before[k.key]), changes[0],
                                     format_value(k, year[k.key]), changes[1]], k.label
    # the demo's flow logs reach 26 weeks back: last week's 重开率 is measured, a year ago's is not (—)
    assert rows["重开率"][2] == "0.0%" and rows["重开率"][4] == "—" and year["reopened_rate"] is None


def test_a_past_weeks_hot_spots_are_those_of_the_weeks_up_to_its_sunday(con):
    """The build scores the hot spots of its latest 26 weeks; a past week's brief scores the 26 weeks up to its
    own Sunday the same way, so that it shows neither the classes nor the counts of the weeks after it. Scored
    here up to the build's own last Sunday, the classes are the build's."""
    import shapely

    from dashboard.brief import HOT_RESOLUTION, _week_hotspots
    from models.hotspots import hotspots_of_weeks

    stored_to = queries.scored_through(con)["hotspots_to"]
    county = shapely.union_all([shapely.geometry.shape(f["geometry"])
                                for f in queries.area_geojson(con, "county")["features"]])
    again = hotspots_of_weeks(con, county, HOT_RESOLUTION, stored_to, 26).reset_index()
    again = again[again["pattern"] != "no_pattern"]
    stored = queries.hotspot_cells(con, HOT_RESOLUTION)
    assert dict(zip(queries.hex_ids(again["cell"]), again["pattern"], strict=True)) == \
        dict(zip(stored["cell"], stored["pattern"], strict=True))

    week_end = stored_to - dt.timedelta(days=7)
    past, through = _week_hotspots(con, week_end, None, stored_to)
    assert through == week_end and len(past)
    week_counts = con.execute("SELECT cell, sum(n) FROM hex.cell_day WHERE resolution = ? AND day BETWEEN ? AND ? "
                              "GROUP BY cell", [HOT_RESOLUTION, week_end - dt.timedelta(days=6), week_end]).fetchall()
    counts = {format(int(c), "x"): int(n) for c, n in week_counts}
    assert all(int(r.count) == counts.get(r.cell, 0) for r in past.itertuples())  # that week's counts
    assert _week_hotspots(con, stored_to, None, stored_to)[1] == stored_to  # the build's own week: its classes
    brief = weekly_brief(con, "汕尾市城区", week_end)
    assert any(isinstance(b, Text) and b.text.startswith(f"截至 {week_end:%Y年%m月%d日}的近26周") for b in brief.blocks)


def test_pdf_lines_break_chinese_text_between_characters_but_never_inside_a_number():
    """cjk_lines (the PDF's paragraphs): a line is as full as it can be; a number, its unit after a space ("312 件")
    and closing punctuation stay on the line before; nothing is lost but the spaces the lines break at."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from dashboard.brief_files import NO_LINE_START, cjk_lines

    pieces = st.sampled_from(["事", "件", "重开", "（占", "），", "。", " ", "312", "2,273", "32.0%", " 件", "H3-8", "超期"])

    @settings(max_examples=300, deadline=None)
    @given(parts=st.lists(pieces, min_size=1, max_size=40), width=st.integers(6, 30))
    def check(parts, width):
        text = "".join(parts)
        lines = cjk_lines(text, len, width)
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
        for i, line in enumerate(lines):
            assert len(line) <= width
            if i:
                forced = len(lines[i - 1]) == width  # a run longer than a line is cut where it must be
                assert line[:1] not in NO_LINE_START or forced, (lines, i)
            assert line.strip() or not text.strip()
        for run in re.findall(r"[0-9A-Za-z][0-9A-Za-z.,:%/+\-]*", text):  # a number on one line, if it fits one
            assert len(run) > width or any(run in line for line in lines), (run, lines)

    check()
    assert cjk_lines("在办 2,273 件，其中", len, 9) == ["在办", "2,273 件，其", "中"]


def test_a_villages_brief_lists_its_grids_and_says_its_hexes_reach_past_it(con, demo_settings):
    """A village's brief has a row per grid (and 未定位 for events placed to the village only), as the page's
    table has for a village user, adding up to the village's 受理数; its hot spot counts are the hexes', which
    may reach past the village: it says so."""
    from dashboard.brief_files import brief_for

    village = queries.area_scope(con, "441502001001")
    brief = brief_for(con, demo_settings, WEEK, scope=village)
    table = _table_after(brief, "三、各网格受理与办结")
    grids = set(queries.child_areas(con, village)["name"])
    names = [r[0] for r in table.rows]
    assert table.columns[0] == "网格" and set(names) - {queries.UNPLACED} == grids
    assert sum(int(r[1].replace(",", "")) for r in table.rows) == brief.kpis["registered"]
    texts = [b.text for b in brief.blocks if isinstance(b, Text)]
    if any(isinstance(b, Bullets) and "热点" in b.items[0] for b in brief.blocks):
        assert any(t.startswith(f"六边形约 0.7 平方公里，件数含其伸出{village.name}的部分") for t in texts)
