"""The weekly 研判 brief for the leadership meeting: a frozen snapshot of one Monday–Sunday week.

:func:`weekly_brief` reads the published warehouse through ``onemap.queries`` (the dashboard's queries and the
KPI definitions of ``onemap.metrics``) and returns the brief as an ordered list of blocks (headings, text,
tables, bullets, the map). ``dashboard.brief_files`` writes those blocks as .docx and .pdf.

Frozen: every figure is measured as of the end of its own week (Sunday 24:00, Asia/Shanghai; or the last
build, for a week still running), so the brief of a past week reads the same whenever it is made. 环比 is
the week before and 同比 the same week a year earlier (52 weeks, the same weekdays), each measured as of
the end of that week.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pandas as pd

from dashboard.exports import SOURCE_LABELS
from onemap import queries
from onemap.categories import category_name
from onemap.metrics import (
    HOTSPOT_CAVEAT,
    KPIS,
    SMALL_BASE,
    format_change,
    format_changes,
    format_moment,
    format_value,
    format_with_base,
    kpi,
    small_base_note,
)
from onemap.reviews import VERDICTS, recent_record, with_reviews

TOP_ALERTS = 10
TOP_OVERDUE = 20
TOP_REPEATS = 10
HOT_CLASSES = ("new_hot", "intensifying_hot", "consecutive_hot", "persistent_hot")
AREA_TABLE = ("registered", "closed_rate", "resolved_rate", "overdue", "village_share")  # section 三's columns
LOWEST_TIER_AREAS = 3
REGISTERED = ("registered",)  # the trend chart's one KPI: 24 weeks' queries need not compute the other eleven


@dataclass
class Heading:
    text: str
    level: int = 1


@dataclass
class Text:
    text: str
    note: bool = False  # a caveat or a source line, set smaller


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    nowrap: tuple[int, ...] = ()  # the columns whose cells are set on one line (ids, dates: broken, they misread)


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Picture:
    png: bytes
    caption: str
    width_mm: float = 160.0


Block = Heading | Text | Table | Bullets | Picture


@dataclass
class WeeklyBrief:
    county: str
    week_start: dt.date
    week_end: dt.date
    as_of: pd.Timestamp
    blocks: list[Block] = field(default_factory=list)
    kpis: dict[str, float | None] = field(default_factory=dict)  # this week's values, for checks and notebooks
    area: str = ""  # the town or village of a scoped brief ("" = the whole county)

    @property
    def title(self) -> str:
        return f"{self.county}社会治理研判周报（{self.week_start:%Y年%m月%d日}—{self.week_end:%m月%d日}）"

    @property
    def file_stem(self) -> str:
        return f"研判周报_{self.area or self.county}_{self.week_start:%Y%m%d}-{self.week_end:%Y%m%d}"  # whose, which week


def _category_labels(codes) -> dict[str, str]:
    """Category names, by their full names where two share a short one (其他纠纷 of MD99, 其他 of QT)."""
    names = {c: category_name(c) for c in codes}
    taken = pd.Series(list(names.values())).value_counts()
    return {c: category_name(c, "zh_full") if taken[n] > 1 else n for c, n in names.items()}


CASE_SOURCES = {"grid": "网格", "police": "警情", "hotline": "热线"}  # the system a case number belongs to


def _case_number(event_id: str) -> str:
    """'police:J4415022026…' -> '警情 J4415022026…': the number staff look up, in the system it names."""
    source, _, own = str(event_id).partition(":")
    return f"{CASE_SOURCES.get(source, source)} {own}" if own else str(event_id)


def _next_figure(brief: WeeklyBrief) -> int:
    """The number of the next figure (图n) of the brief."""
    return 1 + sum(isinstance(b, Picture) for b in brief.blocks)


def _tier_sentence(week: dict, areas: list[tuple[str, dict]]) -> str:
    """小事不出村、大事不出镇 in one sentence: where the week's closed cases were settled, and the areas whose
    villages settled the least ("" when no closed case of the week names its handling tier)."""
    village, below = week.get("village_share"), week.get("town_or_below_share")
    if village is None:
        return ""
    share = kpi("village_share")
    text = (f"层级办结（小事不出村、大事不出镇）：本周已办结且注明办理层级的案件中，村（社区）办结 "
            f"{format_value(share, village)}，镇村两级合计 {format_value(share, below)}。")
    # areas, not the unplaced; a rate over fewer than SMALL_BASE cases named only after those over enough (3 of 8
    # is no finding), and starred as in the table
    known = sorted(((base := v.get("base_village_share")) is not None and base < SMALL_BASE, v["village_share"],
                    name, base) for name, v in areas if v.get("village_share") is not None and name != queries.UNPLACED)
    if len(known) > LOWEST_TIER_AREAS:
        text += "村级办结占比最低：" + "、".join(f"{name}（{format_with_base(share, v, base)}）"
                                         for _, v, name, base in known[:LOWEST_TIER_AREAS]) + "。"
    return text


def week_of(day: dt.date) -> tuple[dt.date, dt.date]:
    """Monday and Sunday of the week holding ``day``."""
    start = day - dt.timedelta(days=day.weekday())
    return start, start + dt.timedelta(days=6)


def default_week(con) -> tuple[dt.date, dt.date]:
    """The last complete Monday–Sunday week of the data (the running week if the data hold no complete one)."""
    bounds = queries.date_bounds(con)
    if bounds is None:
        raise ValueError("the warehouse holds no events: load and build first")
    last = bounds[1]
    start, end = week_of(last)
    if end > last and start - dt.timedelta(days=7) >= bounds[0] - dt.timedelta(days=6):
        start, end = start - dt.timedelta(days=7), end - dt.timedelta(days=7)
    return start, end


def _end_of(day: dt.date, cap: pd.Timestamp) -> pd.Timestamp:
    """Midnight after ``day`` in the deployment's zone, or ``cap`` (the last build) when that is earlier."""
    end = pd.Timestamp(day + dt.timedelta(days=1), tz=cap.tz or "Asia/Shanghai")
    return min(end, cap)


TREND_WEEKS = 12


def weekly_trend(con, start: dt.date, weeks: int = TREND_WEEKS, scope: queries.Scope | None = None) -> pd.DataFrame:
    """受理数 of the ``weeks`` weeks ending with the week starting ``start``, and of the same weeks a year
    earlier (columns week, label, registered, year_before), by the KPI's own definition, within ``scope``."""
    rows = []
    for i in range(weeks - 1, -1, -1):
        monday = start - dt.timedelta(weeks=i)
        week = queries.EventFilter(start=monday, end=monday + dt.timedelta(days=6), scope=scope)
        earlier = queries.year_earlier(week)
        rows.append({"week": monday, "label": f"{monday.month}/{monday.day}",
                     "registered": int(queries.kpis(con, week, keys=REGISTERED)["registered"] or 0),
                     "year_before": int(queries.kpis(con, earlier, keys=REGISTERED)["registered"] or 0)})
    return pd.DataFrame(rows)


def weekly_backlog(con, start: dt.date, weeks: int = TREND_WEEKS, scope: queries.Scope | None = None
                   ) -> pd.DataFrame:
    """The backlog at the end of each of the ``weeks`` weeks ending with the week starting ``start`` (columns week:
    its Monday, label: its Sunday, open, overdue): ``queries.daily_series`` on the Sundays, within ``scope``."""
    first = start - dt.timedelta(weeks=weeks - 1)
    days = queries.daily_series(con, queries.EventFilter(start=first, end=start + dt.timedelta(days=6), scope=scope))
    sundays = days[pd.to_datetime(days["day"]).dt.day_of_week == 6]
    sunday = pd.to_datetime(sundays["day"])
    return pd.DataFrame({"week": (sunday - pd.Timedelta(days=6)).dt.date.to_numpy(),
                         "label": [f"{d.month}/{d.day}" for d in sunday],  # the day the count is taken
                         "open": sundays["open"].astype(int).to_numpy(),
                         "overdue": sundays["overdue"].astype(int).to_numpy()})


BACKLOG_COLUMNS = ["在办", *(label for _, label, _ in queries.AGE_BANDS), "超期", "最久（天）"]
LONG_OPEN = ("days_31_90", "days_over_90")  # the bands of cases open more than 30 days


def _backlog_blocks(brief: WeeklyBrief, con, week: queries.EventFilter, stages: pd.DataFrame, as_of: pd.Timestamp,
                    week_before: pd.Timestamp, level: str, tier: str) -> None:
    """积案 at the end of the week: the open cases by stage and how long they have been open (``stages``:
    ``queries.backlog`` at ``as_of``, with its 合计 row), the change since the end of the week before, and the
    areas one level down with the most cases open > 30 days."""
    add = brief.blocks.append
    now = stages.iloc[-1]
    before = queries.backlog(con, week, week_before, total=True).iloc[-1]
    change = int(now["open"] - before["open"])
    long_open = int(now[list(LONG_OPEN)].sum())
    add(Text(f"截至本周末在办案件（积案）{int(now['open']):,} 件，较上周末"
             f"{'增加' if change > 0 else '减少' if change < 0 else '持平'}{f' {abs(change):,} 件' if change else ''}；"
             f"其中在办超过 30 天 {long_open:,} 件（超过 90 天 {int(now['days_over_90']):,} 件），"
             f"已超期 {int(now['overdue']):,} 件。"))
    add(Table(["阶段", *BACKLOG_COLUMNS],
              [[r["name"], *(f"{int(r[c]):,}" for c in ("open", *(k for k, _, _ in queries.AGE_BANDS), "overdue")),
                "—" if pd.isna(r["oldest_days"]) else f"{int(r['oldest_days'])}"] for _, r in stages.iterrows()]))
    if (stages["code"] == queries.UNRECORDED_STAGE).any():
        add(Text(f"{queries.UNRECORDED_STAGE}：周末时在办，但周末前载入的导出中没有它在办的记录（多为之后才载入、载入时已办结的案件）。",
                 note=True))
    areas = queries.backlog(con, week, as_of, by="area")
    areas = areas.assign(long_open=areas[list(LONG_OPEN)].sum(axis=1))
    areas = areas[(areas["long_open"] > 0) & areas["code"].notna()].sort_values(
        ["long_open", "code"], ascending=[False, True]).head(LOWEST_TIER_AREAS)
    if len(areas):
        add(Text(f"在办超过 30 天最多的{tier}：" + "、".join(f"{r['name']}（{int(r['long_open'])} 件）"
                                               for _, r in areas.iterrows()) + "。"))


def week_alerts(con, start: dt.date, end: dt.date, scope: queries.Scope | None = None) -> pd.DataFrame:
    """The alerts raised in the week ``start``–``end`` (``queries.alerts`` rows): every window (7-day and 1-day)
    whose last day is one of the week's, and the ramps found on one of them.

    ``window_end`` is the day a window was scored and the alert shown on the map, so each alert belongs to the
    brief of the week holding that day and to no other: a 7-day window ending on the Monday (six days of the
    week before) was raised this week, and its sentence gives its dates. Listing only the window ending on the
    Sunday left out every alert raised from Monday to Saturday whose place was quiet by Sunday."""
    found = queries.alerts(con, since=start, scope=scope)
    return found[found["window_end"] <= f"{end:%Y-%m-%d}"].reset_index(drop=True)


def _days_scored(con, start: dt.date, end: dt.date) -> list[dt.date]:
    """The days of the week on which alert windows were scored (``queries.alert_spans``)."""
    return queries.days_scored(con, [start + dt.timedelta(days=i) for i in range((end - start).days + 1)])


def _running(end: dt.date, scored: dict) -> bool:
    """Whether the week ending on ``end`` runs past the last day scored (``queries.scored_through``): its Sunday
    is not in the data yet."""
    return scored["alerts_to"] is not None and end > scored["alerts_to"]


def _unscored_text(end: dt.date, scored: dict, days: list[dt.date]) -> str:
    """Which days of the week ending on ``end`` had no alert scored, and why: the week has not ended in the data
    yet, or the days are older than the alerts kept. ``days``: the days that were scored."""
    if _running(end, scored):
        return (f"本周尚未结束（预警已计算至 {scored['alerts_to']:%m月%d日}），其后各日的预警在数据载入并更新后列出。")
    if days:
        return f"本周只有 {days[0]:%m月%d日}—{days[-1]:%m月%d日} 在已计算的预警范围内。"
    return ("本周不在已计算的预警范围内：预警从每次更新的最近两周算起，之前各次更新的预警保留"
            + (f"（现有 {scored['alerts_from']:%Y年%m月%d日} 起）。" if scored["alerts_from"] else "。"))


HOT_RESOLUTION = 8  # the brief's hot spots: the town-sized hexes of its map


def _week_hotspots(con, end: dt.date, scope: queries.Scope | None, stored_to: dt.date | None
                   ) -> tuple[pd.DataFrame, dt.date | None]:
    """The emerging hot spot classes of the weeks up to the week's Sunday ``end`` (cells with a class; the columns
    of ``queries.hotspot_cells``) and the last day they cover. The build's own where it scored that week or a
    later one is not yet scored (``stored_to``: its last day); for an earlier week, scored here from the
    aggregates as the build scores (same weeks and neighbourhood in time, ``models.hotspots.hotspots_of_weeks``):
    a past week's brief must not show the hot spots, and this week's counts, of the weeks after it."""
    if stored_to is None or end >= stored_to:
        return queries.hotspot_cells(con, HOT_RESOLUTION, scope), stored_to
    from models.hotspots import hotspots_of_weeks

    params = json.loads(con.execute("SELECT params FROM meta.model_runs WHERE model = 'emerging_hotspots'"
                                    ).fetchall()[0][0])
    table = hotspots_of_weeks(con, queries.scope_shape(con, None), HOT_RESOLUTION, end, int(params["weeks"]),
                              int(params.get("time_step", 0)))
    return queries.classed_cells(con, table.reset_index(), HOT_RESOLUTION, scope), end


def _repeats_at(con, as_of: pd.Timestamp, scope: queries.Scope | None) -> tuple[pd.DataFrame, float]:
    """The repeat places at the end of the brief's week (the build's calibrated window), not the build's own
    table: that one is as of the data, and a past week's brief would list incidents after the week."""
    from models.recent_repeats import calibrated_window, label_places, places_as_of, places_in_scope

    window = calibrated_window(con)
    places = places_as_of(con, as_of, window)
    places = places_in_scope(places, scope.level if queries.narrow(scope) else None, scope.code if scope else None)
    places = places.sort_values(["n_events", "last_at"], ascending=False).head(TOP_REPEATS)
    return places.assign(place=label_places(places, queries.area_names(con))), window


def _reopened_text(count: int, now: dict) -> str:
    """The week's reopenings of any case, beside 重开率 (the week's own cases only, so 0 % where the cases
    reopened were older)."""
    if not count:
        return ""
    own = now.get("reopened_rate")
    note = "，均为本周以前受理的事件，不计入上表重开率" if not own else "（上表重开率只计本周受理的事件）"
    return f"本周导出显示重开（办结后又转为未办结）{count:,} 件{note}。"


def weekly_brief(con, county: str, week: dt.date | None = None, map_png: bytes | None = None,
                 trend_png: bytes | None = None, scope: queries.Scope | None = None,
                 reviews_path=None, backlog_png: bytes | None = None) -> WeeklyBrief:
    """The brief of the week holding ``week`` (default: :func:`default_week`) for ``scope`` (default the whole
    county; a town's or village's brief holds only its own events, alerts, hot spots and places). ``map_png``:
    the week's map (``dashboard.brief_images.week_map``) and ``trend_png``: the chart of :func:`weekly_trend`
    (``dashboard.brief_images.trend_chart``), drawn by the caller so that this module stays free of imaging.
    ``reviews_path``: analysts' verdicts on alerts (onemap.reviews), added to the alerts listed."""
    start, end = week_of(week) if week else default_week(con)
    built = queries.reference_time(con)
    this = queries.EventFilter(start=start, end=end, scope=scope)
    last_week = queries.previous_period(this)
    last_year = queries.year_earlier(this)
    area = scope.name if queries.narrow(scope) else ""
    as_of = _end_of(end, built)
    seen = queries.changes_seen_from(con)
    now = queries.blank_unseen(queries.kpis(con, this, as_of), as_of, seen)  # 重开率 "—" before any change was seen
    starts = queries.source_starts(con)
    before, year = (queries.comparable(queries.blank_unseen(queries.kpis(con, f, at), at, seen), this, f, starts)
                    for f, at in ((f, _end_of(f.end, built)) for f in (last_week, last_year)))
    brief = WeeklyBrief(county + area, start, end, as_of, kpis=now, area=area)
    add = brief.blocks.append

    add(Text(f"数据截至 {format_moment(as_of, year=True)}（每项指标按其所在周结束时计算；环比为上周，同比为去年同期同一周）。",
             note=True))
    add(Heading("一、本周概况"))
    add(Table(["指标", "本周", "上周", "环比", "去年同期", "同比"],
              [[k.label, format_value(k, now[k.key]), format_value(k, before[k.key]), changes[0],
                format_value(k, year[k.key]), changes[1]]
               for k in KPIS for changes in [format_changes(k, now[k.key], before[k.key], year[k.key])]]))
    late = [(name, f) for name, f in (("环比", last_week), ("同比", last_year))
            if queries.late_sources(this, f, starts)]
    if late:
        add(Text("；".join(f"{name}不可比（" + "、".join(
            f"{SOURCE_LABELS.get(src, src)}自 {starts[src]:%Y年%m月%d日} 起才有数据"
            for src in queries.late_sources(this, f, starts)) + "，比较期不完整）" for name, f in late) + "，显示为 —。",
            note=True))
    # the table is the week's own cases: a leader must not read its 超期 as the whole overdue burden
    stages = queries.backlog(con, this, as_of, total=True)  # 积案 at the week's end, by stage (section 六 too)
    held = stages.iloc[-1]
    share = f"（占在办的 {held['overdue'] / held['open']:.1%}）" if held["open"] else ""
    add(Text(f"上表各项只计本周受理的事件（其超期 {format_value(kpi('overdue'), now['overdue'])} 件）。不论何时受理，"
             f"截至本周末在办 {int(held['open']):,} 件，其中已超期 {int(held['overdue']):,} 件{share}，见“积案与超期督办”。"
             + _reopened_text(queries.reopened(con, this, as_of), now)))

    if trend_png:
        add(Picture(trend_png, f"图{_next_figure(brief)} 近{TREND_WEEKS}周每周受理数（红色为本周），折线为去年同期"))

    add(Heading("二、分类别变化"))
    counts = pd.DataFrame({"now": queries.category_counts(con, this), "before": queries.category_counts(con, last_week),
                           "year": queries.category_counts(con, last_year)}).fillna(0).astype(int)
    counts = counts[counts["now"] + counts["before"] > 0]
    counts = counts.assign(diff=counts["now"] - counts["before"]).sort_values(["now", "diff"], ascending=False)
    registered = kpi("registered")
    label = _category_labels(counts.index)
    add(Table(["类别", "本周", "上周", "环比", "去年同期"],
              [[label[code], f"{r.now:,}", f"{r.before:,}", format_change(registered, r.now, r.before),
                f"{r.year:,}"] for code, r in counts.iterrows()]))
    rising = counts[counts["diff"] > 0].sort_values("diff", ascending=False).head(3)
    if len(rising):
        add(Text("上升最多：" + "；".join(f"{label[c]} 增加 {r['diff']} 件" for c, r in rising.iterrows()) + "。"))

    # the areas one level down: towns of the county, villages of a town; a village's brief has its own row
    # the areas one level down, one row each in one pass over the events: towns, villages, or a village's grids
    level = queries.CHILD_LEVEL[(scope or queries.COUNTY).level]
    tier = {"town": "镇街", "village": "村（社区）", "grid": "网格"}[level]
    add(Heading(f"三、各{tier}受理与办结"))
    areas = queries.busiest_first(queries.area_kpis(con, this, as_of, scope, keys=AREA_TABLE))
    values = [(r["name"], r) for _, r in areas.iterrows()]
    shown = [kpi(k) for k in AREA_TABLE]
    rows = [[name] + [format_with_base(k, v[k.key], v.get(f"base_{k.key}")) for k in shown] for name, v in values]
    add(Table([tier, *(k.label for k in shown)], rows))
    if any(cell.endswith("*") for row in rows for cell in row[1:]):
        add(Text(f"{small_base_note()}，比较{tier}时请谨慎。", note=True))
    tiers = _tier_sentence(now, values)
    if tiers:
        add(Text(tiers))

    add(Heading("四、异常预警：风险区域及原因"))
    scored = queries.scored_through(con)
    raised = week_alerts(con, start, end, scope)
    alerts = raised.sort_values("score", ascending=False).drop_duplicates("place").head(TOP_ALERTS)
    days = _days_scored(con, start, end)
    if len(alerts):
        if reviews_path is not None:
            alerts = with_reviews(alerts, reviews_path)
            alerts["sentence_zh"] = [s + (f"（经核实：{VERDICTS[v]}）" if v in VERDICTS else "")
                                     for s, v in zip(alerts["sentence_zh"], alerts["review"], strict=True)]
        places = raised["place"].nunique()
        add(Text(f"本周发出预警 {len(raised)} 条，合 {queries.episode_count(raised)} 起异常（同一处连日预警每日一条，"
                 f"连续的算一起），涉及 {places} 处"
                 + (f"，以下按强度列出前 {len(alerts)} 处" if places > len(alerts) else "，每处列出最强的一条")
                 + "："))
        add(Bullets(list(alerts["sentence_zh"])))
        if reviews_path is not None and alerts["review"].notna().any():
            counts = alerts["review"].value_counts()
            add(Text(f"以上 {len(alerts)} 条中已核实 {int(counts.sum())} 条："
                     + "，".join(f"{name} {int(counts.get(v, 0))} 条" for v, name in VERDICTS.items()) + "。"))
    elif days:
        add(Text(("本周" if len(days) == 7 else f"{days[0]:%m月%d日}—{days[-1]:%m月%d日}")
                 + "没有通过统计检验的异常（已控制误报比例）。"))
    if len(days) < 7:
        add(Text(_unscored_text(end, scored, days)))
    record = recent_record(con, end, scope, reviews_path) if reviews_path is not None else ""
    if record:
        add(Text(record))

    add(Heading("五、新兴热点"))
    hot, hot_to = _week_hotspots(con, end, scope, scored["hotspots_to"])
    if len(hot):
        through = f"截至 {hot_to:%Y年%m月%d日}" if hot_to else "最近一次计算"
        add(Text(f"{through}的近26周，各类热点六边形数："
                 + "，".join(f"{z} {n} 个" for z, n in hot["pattern_zh"].value_counts().items()) + "。"))
        named = hot[hot["pattern"].isin(HOT_CLASSES)].sort_values("count", ascending=False, kind="stable")
        named = named.assign(place=named["cell"].map(queries.cell_places(con, named["cell"], HOT_RESOLUTION)))
        named = named.dropna(subset=["place"]).drop_duplicates("place").head(8)
        if len(named):  # busiest first; the count is the hex's (about 0.7 km²), which may reach past the village
            add(Bullets([f"{r.place}：{r.pattern_zh}（所在六边形最近一周 {int(r.count)} 件）" for r in named.itertuples()]))
            if queries.narrow(scope):  # a hex's count may exceed the area's own total of the table above
                add(Text(f"六边形约 0.7 平方公里，件数含其伸出{scope.name}的部分，可多于上表{scope.name}的受理数。",
                         note=True))
    else:
        add(Text("本期未计算新兴热点。"))
    add(Text(HOTSPOT_CAVEAT + "。", note=True))
    if map_png:
        add(Picture(map_png, f"图{_next_figure(brief)} 本周受理事件分布（H3 六边形，{start:%m月%d日}—{end:%m月%d日}）"))

    add(Heading("六、积案与超期督办"))
    _backlog_blocks(brief, con, this, stages, as_of, _end_of(last_week.end, built), level, tier)
    overdue, total = queries.overdue_cases(con, as_of, TOP_OVERDUE, scope)
    place = queries.area_names(con)
    if backlog_png:
        add(Picture(backlog_png, f"图{_next_figure(brief)} 近{TREND_WEEKS}周每周末未办结与超期案件数"))
    add(Text(f"截至本周末共有超期未办结 {total:,} 件（保密及涉家暴、未成年人事件只计数、不列出），"
             f"超期最久的 {len(overdue)} 件："))
    if len(overdue):
        add(Table(["编号", "类别", "地点", "受理日期", "办理期限", "超期天数", "周末时阶段"],
                  [[_case_number(r.event_id), category_name(r.category_code),
                    place.get(r.town_code, "") + place.get(r.village_code, ""), f"{pd.Timestamp(r.reported):%Y-%m-%d}",
                    f"{pd.Timestamp(r.due):%Y-%m-%d}", f"{int(r.days_overdue)}", r.stage]
                   for r in overdue.itertuples()], nowrap=(0, 3, 4)))  # the case id and its two dates

    add(Heading("七、重复警情地点（回访）"))
    repeats, window = _repeats_at(con, as_of, scope)
    if len(repeats):
        add(Text(f"截至本周末的近 {window:g} 天内，同一地点（50 米内）发生 3 起及以上的地点，按起数排列（保密事件不计）：",
                 note=True))
        add(Table(["地点", "起数", "时间", "主要类别"],
                  [[r.place or r.grid_code or "—", f"{r.n_events}",
                    f"{pd.Timestamp(r.first_at):%m-%d} 至 {pd.Timestamp(r.last_at):%m-%d}",
                    category_name(r.top_category)] for r in repeats.itertuples()]))
    else:
        add(Text("本期没有重复警情地点。"))

    # the definitions, so that a figure is read as it was computed (办结率 and 化解率 are often quoted undefined)
    add(Heading("附：指标口径"))
    add(Table(["指标", "口径"], [[k.label, k.zh] for k in KPIS]))
    add(Text(f"统计时点为各周结束时（本周为 {as_of:%Y-%m-%d %H:%M}）；比率旁的 * 表示分母不足 {SMALL_BASE} 件。", note=True))
    return brief
