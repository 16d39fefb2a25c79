"""The 民情地图 Dash app: one map page with filters, a KPI strip and the events behind a clicked hex.

Callbacks are thin: read inputs, call an ``onemap.queries`` function, call a ``dashboard.figures``
builder, return. Everything is served from this process (``serve_locally``), nothing from a CDN.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from urllib.parse import parse_qs

import dash
import h3
import pandas as pd
from dash import ALL, ClientsideFunction, Input, Output, State, dcc, html
from flask import Response

from dashboard.auth import Gate, Viewer
from dashboard.data import DashboardData
from dashboard.exports import SOURCE_LABELS, export_name, filter_words, hex_file
from dashboard.figures import (
    backlog_map,
    basemap_source,
    daily_chart,
    for_wall_screen,
    hex_map,
    hotspot_map,
    offline_style,
)
from onemap import queries
from onemap.categories import TOP_LEVEL_CODES, category_name
from onemap.metrics import (
    STRIP,
    format_changes,
    format_moment,
    format_value,
    format_with_base,
    kpi,
    map_measure,
    small_base_note,
)
from onemap.reviews import VERDICTS, add_review, keys_of, latest_reviews, recent_record
from onemap.settings import Settings

DEFAULT_DAYS = 28


def _category_options() -> list[dict]:
    """The product categories by their full names (two are "其他": 其他纠纷 and 其他), found by name or by code
    (data staff type "MD10"); the code shows on hover."""
    return [{"label": category_name(code, "zh_full").replace("(", "（").replace(")", "）"), "value": code,
             "search": f"{code} {category_name(code, 'zh_full')}", "title": code} for code in TOP_LEVEL_CODES]


# dcc.Dropdown's own words, in Chinese (its defaults are English: "Select All", "Search" ...)
DROPDOWN_LABELS = {"select_all": "全选", "deselect_all": "全不选", "selected_count": "已选 {num_selected} 类",
                   "search": "搜索类别或代码", "clear_search": "清除搜索", "clear_selection": "清除所选",
                   "no_options_found": "没有匹配的类别"}


def _filter(data: DashboardData, viewer: Viewer, start: str, end: str, categories, sources, search: str | None
            ) -> queries.EventFilter:
    """The filter of a request: the controls' values, always within the viewer's own area (set here, on the
    server, from the signed-in account; nothing the browser sends can widen it), or the area inside it that
    the page has drilled down to (``search``: the address's ``?area=CODE``, :func:`_focus`). The public wall
    screen shows its own period and every category and source, whatever a request made by hand asks for."""
    if viewer.public:
        first, last = _default_period(queries.date_bounds(data.con()))
        return queries.EventFilter(start=first, end=last, scope=viewer.scope)
    return queries.EventFilter(start=dt.date.fromisoformat(start[:10]), end=dt.date.fromisoformat(end[:10]),
                               categories=tuple(categories or ()), sources=tuple(sources or ()),
                               scope=_focus(data, viewer, search))


def _brief_week(con, bounds) -> str:
    """'研判周报 11/30–12/6 ': which week the Word / PDF buttons give (the last complete week of the data;
    ``bounds``: ``queries.date_bounds``)."""
    from dashboard.brief import default_week

    if not bounds:
        return "研判周报 "
    start, end = default_week(con)
    return f"研判周报 {start.month}/{start.day}–{end.month}/{end.day} "


def _default_period(bounds) -> tuple[dt.date, dt.date]:
    """The page's first period: the last DEFAULT_DAYS days with data (``bounds``: ``queries.date_bounds``)."""
    first, last = bounds or (dt.date.today(), dt.date.today())
    return max(first, last - dt.timedelta(days=DEFAULT_DAYS - 1)), last


def _focus(data: DashboardData, viewer: Viewer, search: str | None) -> queries.Scope:
    """The area the page looks at: the viewer's own, or the town or village inside it that a drill-down link
    chose (``?area=CODE``, so that the browser's back button and a shared link work). A code outside the
    viewer's area, or not a town or village, is ignored: checked here, on the server."""
    code = parse_qs((search or "").lstrip("?")).get("area", [""])[0]
    own = viewer.scope
    if not code or (queries.narrow(own) and not code.startswith(own.code)) or code == own.code:
        return own
    try:
        return queries.area_scope(data.con(), code)
    except ValueError:
        return own


def _breadcrumb(data: DashboardData, viewer: Viewer, focus: queries.Scope) -> html.Div | None:
    """'汕尾市城区 › 新港街道 › 海景社区': the way back up from a drilled-down area, as links, to the viewer's own."""
    if focus == viewer.scope:
        return None
    names = queries.area_names(data.con())
    own = viewer.scope.code if queries.narrow(viewer.scope) else ""
    chain = _ancestors(names, focus.code)
    between = chain[chain.index(own) + 1:] if own in chain else chain[1:]  # below the county, or the viewer's own
    steps = [(own, _area_name(data, viewer.scope))] + [(c, names[c]) for c in between]
    crumbs = [dcc.Link(name, href=f"?area={code}" if code else "?", className="crumb") for code, name in steps]
    return html.Div(className="breadcrumb", children=[
        *[part for crumb in crumbs for part in (crumb, " › ")], html.B(focus.name)])


def _ancestors(names: dict[str, str], code: str) -> list[str]:
    """The codes of the areas holding ``code``, county first (a code extends its parent's: county, town, ...)."""
    return sorted((c for c in names if code.startswith(c) and c != code), key=len)


def _area_name(data: DashboardData, scope: queries.Scope) -> str:
    """The scope's name: a town's or village's own, the county's from the settings."""
    return scope.name if queries.narrow(scope) else data.settings.county_name


def _page_title(data: DashboardData, scope: queries.Scope | None) -> str:
    """'民情地图 · 汕尾市城区 · 新港街道 · 海景社区': the county, then the town and village the page looks at."""
    chain = []
    if scope is not None and queries.narrow(scope):
        names = queries.area_names(data.con())
        chain = [names[c] for c in _ancestors(names, scope.code)
                 if len(c) > len(data.settings.county_code)] + [scope.name]
    return " · ".join(["民情地图", data.settings.county_name, *chain])


def _kpi_card(key: str) -> html.Div:
    k = kpi(key)
    return html.Div(className="kpi", title=f"{k.label}：{k.zh}", children=[
        html.Div(k.label, className="kpi-label"), html.Div("—", id=f"kpi-{key}", className="kpi-value"),
        html.Div("", id=f"kpi-{key}-change", className="kpi-change",
                 title="环比：与之前同样长的一段时间相比；同比：与去年同期（52 周前的同样日子）相比")])


def _visible_alerts(data: DashboardData, viewer: Viewer) -> pd.DataFrame:
    """The alerts the side panel lists to ``viewer``: the latest 7-day window's (and running ramps) in its area."""
    frame = queries.alerts(data.con(), window_days=7, limit=200, with_ramps=True, scope=viewer.scope)
    frame = frame[frame["window_end"] == frame["window_end"].iloc[0]] if len(frame) else frame
    # a category alert on a hex and the one on its neighbourhood name the same place: the stronger is listed
    return frame.drop_duplicates(["place", "category_code"]) if len(frame) else frame


def _verdict_class(review: dict | None) -> str:
    """属实 in green, 误报 in grey: a false alarm is a finding too, not a success."""
    return f"review {(review or {}).get('verdict', '')}".strip()


def _verdict_text(review: dict | None) -> str:
    review = review or {}
    who = review.get("unit") or review.get("user", "")  # older records have only the account
    return f"已核实：{VERDICTS[review['verdict']]}（{who}）" if review.get("verdict") in VERDICTS else ""


def _alert_list(data: DashboardData, viewer: Viewer | None, limit: int = 8) -> html.Div | html.P:
    """The panel's alerts, each with 属实 / 误报 buttons (the review loop) for a signed-in viewer, and how many
    more there are when not all fit."""
    if viewer is None:
        return html.P("—")
    visible = _visible_alerts(data, viewer)
    latest = visible.head(limit)
    if latest.empty:
        return html.P("暂无通过统计检验的异常（已控制误报比例）")
    reviewed = latest_reviews(data.settings.reviews_path)
    items = []
    for key, r in zip(keys_of(latest), latest.itertuples(), strict=True):
        review = [] if viewer.public else [
            html.Span(_verdict_text(reviewed.get(key)), id={"type": "review-status", "key": key},
                      className=_verdict_class(reviewed.get(key))),
            *[html.Button(label, id={"type": "review", "key": key, "verdict": verdict}, className="review-button")
              for verdict, label in VERDICTS.items()]]
        items.append(html.Li([html.B(f"{r.place or r.cell} · 实际 {r.observed} / 预计 {r.expected:.1f}"),
                              html.Div(r.sentence_zh, className="summary"), html.Div(review, className="review-row")]))
    more = len(visible) - len(latest)
    end = dt.date.fromisoformat(latest["window_end"].iloc[0])
    window = (f"最新 7 天窗口 {end - dt.timedelta(days=6):%m-%d} 至 {end:%m-%d}"
              + ("" if viewer.public else "；研判周报列出一周内每天发出的预警"))
    return html.Div([html.P(window, className="summary"), html.Ul(className="alerts", children=items)]
                    + ([html.P(f"另有 {more} 条较弱的预警未列出（研判周报和 onemap alerts 列出全部）", className="summary")]
                       if more > 0 else []))


def _review_record(data: DashboardData, viewer: Viewer | None, scope: queries.Scope | None = None) -> str:
    """How often this area's alerts were right lately, as its analysts judged them (not on the public screen)."""
    if viewer is None or viewer.public:
        return ""
    last = (queries.date_bounds(data.con()) or (None, dt.date.today()))[1]
    return recent_record(data.con(), last, scope or viewer.scope, data.settings.reviews_path)


def _place_list(frame: pd.DataFrame, empty: str, title, detail) -> html.Ul | html.P:
    """A side-panel list of places (repeat places, outlier cells): a bold title and a line of detail each."""
    if frame.empty:
        return html.P(empty)
    return html.Ul(className="alerts", children=[
        html.Li([html.B(title(r)), html.Div(detail(r), className="summary")]) for r in frame.itertuples()])


def _repeat_list(data: DashboardData, viewer: Viewer | None, limit: int = 5) -> html.Ul | html.P:
    if viewer is None:
        return html.P("—")
    as_of = queries.reference_time(data.con())  # the build's places: its window ends then
    return _place_list(
        queries.repeat_places(data.con(), limit=limit, scope=viewer.scope), "暂无重复警情地点",
        lambda r: f"{r.place or r.grid_code} · {r.n_events} 起",
        lambda r: (f"{r.first_day} 至 {r.last_day}，50 米内（截至 {format_moment(as_of)} 的近 {r.window_days} 天）；"
                   f"主要为{category_name(r.top_category)}"))


def _outlier_list(data: DashboardData, viewer: Viewer | None, limit: int = 5) -> html.Ul | html.P:
    """The secondary signal (models.outliers), said to be one: cells unlike the others, not alerts."""
    if viewer is None:
        return html.P("—")

    def trend(growth: float) -> str:
        return "持平" if abs(growth) < 0.05 else ("上升" if growth > 0 else "下降")
    return _place_list(
        queries.outlier_cells(data.con(), limit=limit, scope=viewer.scope), "暂无（事件较少的六边形不参与比较）",
        lambda r: f"{r.place or r.cell} · 异常度 {r.outlier_score:.2f}",
        lambda r: f"近16周 {r.n} 件；近4周周均较此前12周{trend(r.growth)}；未办结占 {r.unresolved_share:.0%}")


AREA_PANEL = ("registered", "closed_rate", "overdue", "village_share")  # the side panel's per-area table
AREA_TITLE = {"county": "各镇街", "town": "各村（社区）", "village": "各网格"}  # the areas one level below each scope


def _area_table(frame: pd.DataFrame, links: bool = False) -> html.Div | html.P:
    """The KPIs of each area one level below the viewer's (``queries.area_kpis``), busiest first; a rate over few
    cases is starred, as in the brief. With ``links``, each area's name drills the page down to it."""
    if frame.empty:
        return html.P("—")
    shown = [kpi(k) for k in AREA_PANEL]
    ordered = queries.busiest_first(frame)
    rows = [[r["name"]] + [format_with_base(k, r[k.key], r.get(f"base_{k.key}")) for k in shown]
            for _, r in ordered.iterrows()]
    names = [dcc.Link(name, href=f"?area={code}", title=f"查看{name}") if links and code else name
             for name, code in zip(ordered["name"], ordered["code"], strict=True)]
    table = html.Table(className="areas", children=[
        html.Thead(html.Tr([html.Th("")] + [html.Th(k.label, title=k.zh) for k in shown])),
        html.Tbody([html.Tr([html.Td(name)] + [html.Td(cell) for cell in row[1:]])
                    for name, row in zip(names, rows, strict=True)])])
    starred = any(cell.endswith("*") for row in rows for cell in row[1:])
    return html.Div([table] + ([html.Div(small_base_note(), className="summary")] if starred else []))


def _backlog_table(frame: pd.DataFrame) -> html.Div | html.P:
    """积案 by stage (``queries.backlog`` with its 合计 row): the open cases of each stage in age bands, and overdue."""
    if frame.empty or not frame["open"].iloc[-1]:
        return html.P("当前没有在办案件")
    bands = queries.AGE_BANDS
    head = [html.Th("")] + [html.Th(label, title=f"在办 {label}（自登记受理起）") for _, label, _ in bands] + [
        html.Th("在办"), html.Th("超期", title="在办且已过办理期限")]
    body = [html.Tr([html.Td(r["name"])] + [html.Td(f"{int(r[key]):,}") for key, _, _ in bands]
                    + [html.Td(f"{int(r['open']):,}"), html.Td(f"{int(r['overdue']):,}")],
                    className="total" if r["name"] == "合计" else "") for _, r in frame.iterrows()]
    oldest = frame["oldest_days"].iloc[-1]
    return html.Div([html.Table(className="areas backlog", children=[html.Thead(html.Tr(head)), html.Tbody(body)]),
                     html.Div(f"在办最久的已 {int(oldest)} 天；阶段按已载入的最新导出。此表不论何时受理，"
                              "所以其超期多于指标卡的“超期”（只计所选时段内受理的）", className="summary")])


def _hex_km2(resolution: int) -> str:
    """A hex's size as a reader can picture it: 'H3-8' means nothing to a leader, '约 0.74 平方公里' does."""
    km2 = h3.average_hexagon_area(int(resolution), unit="km^2")
    return f"{km2:.2g}" if km2 < 1 else f"{km2:.1f}"


def _default_resolution(settings: Settings, scope: queries.Scope | None) -> int:
    """The hex size a page opens with: the configured default for the county, one finer per tier below it
    (a town's map at H3 9, a village's at H3 10), within the configured resolutions."""
    finer = queries.SCOPE_LEVELS.index(scope.level) if scope else 0  # county 0, town 1, village 2
    return min(settings.h3_default + finer, settings.h3_finest)


def build_layout(data: DashboardData, kiosk: bool, viewer: Viewer | None) -> html.Div:
    """The page; ``viewer`` None (Dash validating the layout, or no one signed in yet) gives it without data."""
    con = data.con()
    bounds = queries.date_bounds(con)
    first = (bounds or (dt.date.today(),))[0]
    start, last = _default_period(bounds)
    res_default = _default_resolution(data.settings, viewer.scope if viewer else None)
    controls = html.Div(id="controls", className="controls" + (" hidden" if kiosk else ""), children=[
        html.Div([html.Label("时间范围"), dcc.DatePickerRange(
            id="dates", min_date_allowed=first, max_date_allowed=last, start_date=start, end_date=last,
            display_format="YYYY-MM-DD", first_day_of_week=1, month_format="YYYY年MMM",
            start_date_placeholder_text="开始日期", end_date_placeholder_text="结束日期")], className="control"),
        html.Div([html.Label("事件类别"), dcc.Dropdown(id="categories", options=_category_options(), multi=True,
                                                    placeholder="全部类别", labels=DROPDOWN_LABELS,
                                                    maxHeight=360)], className="control wide"),
        html.Div([html.Label("来源（不选即全部）"), dcc.Checklist(
            id="sources", options=[{"label": SOURCE_LABELS.get(s, s), "value": s}
                                   for s in queries.sources_present(con)],
            value=[], inline=True)], className="control"),
        html.Div([html.Label("图层"), dcc.RadioItems(
            id="layer", options=[{"label": "受理数", "value": "counts"}, {"label": "未办结", "value": "open"},
                                 {"label": "超期", "value": "overdue"}, {"label": "积案回放", "value": "backlog"},
                                 {"label": "新兴热点（近26周）", "value": "hotspots"}],
            value="counts", inline=True)], className="control"),
        html.Div([html.Label("六边形级别"), dcc.RadioItems(
            id="resolution", options=[{"label": html.Span(f"H3-{r}", title=f"每个六边形约 {_hex_km2(r)} 平方公里"),
                                       "value": r} for r in data.settings.h3_resolutions],
            value=res_default, inline=True)], className="control"),
        html.Div([html.Label("导出六边形数据"), html.Div([
            html.Button("CSV", id="hex-csv", className="brief-button", title="每个六边形的事件数（Excel 可直接打开）"),
            html.Button("GeoJSON", id="hex-geojson", className="brief-button", title="六边形边界与事件数（QGIS 等可打开）"),
            dcc.Download(id="hex-download")])], className="control"),
    ])
    return html.Div(className="page" + (" kiosk" if kiosk else ""), children=[
        dcc.Location(id="url", refresh=False), dcc.Store(id="playback"),
        html.Header(className="header", children=[
            html.H1(_page_title(data, viewer.scope if viewer else None), id="page-title"),
            *([html.Span("演示数据：村居与网格边界为合成数据", className="badge", id="synthetic-badge")]
              if queries.boundaries_synthetic(con) else []),  # a deployment's own boundaries: no badge
            html.Span(className="brief" + (" hidden" if kiosk else ""), title="最近一个完整周（周一至周日）的研判周报",
                      children=[_brief_week(con, bounds), html.Button("Word", id="brief-docx", className="brief-button"),
                                html.Button("PDF", id="brief-pdf", className="brief-button"),
                                dcc.Download(id="brief-download")]),
            html.Span(id="asof", className="asof"),
            *([html.Span(id="next-view", className="next-view", **{"data-seconds": data.settings.refresh_seconds})]
              if kiosk else []),  # 下一画面 N 秒: the wall screen is live (assets/kiosk.js counts down)
            html.Span(className="user" + (" hidden" if kiosk else ""), id="user", children=[
                viewer.label if viewer else "", " ",
                *([html.A("改密码", href="/password", className="logout"), html.A("退出", href="/logout", className="logout")]
                  if viewer and viewer.name != "local" else [])]),
        ]),
        controls,
        html.Div(id="kpis", className="kpis", children=[_kpi_card(k) for k in STRIP]),
        html.Div(className="main", children=[
            dcc.Graph(id="map", className="map", config=MAP_CONFIG,
                      style={"height": "100%"}),
            html.Aside(id="detail", className="detail", children=[
                html.H3("异常预警（近7天）"), html.Div(id="alerts", children=_alert_list(data, viewer)),
                html.Div(_review_record(data, viewer), id="review-record", className="summary"),
                html.H3(f"{AREA_TITLE[(viewer.scope if viewer else queries.COUNTY).level]}（所选时段）",
                        id="areas-title", className="" if not kiosk else "hidden"),
                html.Div(id="areas", className="" if not kiosk else "hidden"),
                html.H3(f"每日受理与日终积压（近{DEFAULT_DAYS}天）" if kiosk else "每日受理与日终积压（所选时段）"),
                dcc.Graph(id="daily", config=GRAPH_CONFIG | {"displayModeBar": False},
                          style={} if kiosk else {"height": "190px"}),  # the wall screen's: as tall as drawn
                html.H3("积案：在办案件按阶段与时长", id="backlog-title",
                        title="截至数据时点仍未办结的案件（不论何时受理），按所选类别和来源"),
                html.Div(id="backlog"),
                # not on the wall screen, which holds what fits without scrolling: alerts, the days, the backlog
                html.H3("重复警情地点（回访）", className="hidden" if kiosk else ""),
                html.Div(id="repeats", children=_repeat_list(data, viewer), className="hidden" if kiosk else ""),
                html.H3("画像异常（次要信号）", className="hidden" if kiosk else "",
                        title="孤立森林（IsolationForest）：六边形近16周的类别构成、增长和未办结占比与其他六边形差别最大的几处。"
                              "没有显著性检验，不是预警，仅供研判时参考"),
                html.Div(id="outliers", children=_outlier_list(data, viewer), className="hidden" if kiosk else ""),
                html.H3("点击六边形查看事件", id="detail-heading", className="hidden" if kiosk else ""),
                html.Div(id="detail-body")]),
        ]),
        dcc.Interval(id="refresh", interval=data.settings.refresh_seconds * 1000, disabled=not kiosk),
    ])


# plotly.js toolbar: Chinese (assets/plotly-locale-zh-cn.js), no "Share chart" (it posts the figure to
# cloud.plotly.com; the default is on) and no box/lasso select, which nothing here reads
GRAPH_CONFIG = {"locale": "zh-CN", "displaylogo": False, "showSendToCloud": False, "showEditInChartStudio": False}
MAP_CONFIG = GRAPH_CONFIG | {"scrollZoom": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"],
                             "toImageButtonOptions": {"filename": "民情地图", "scale": 2}}
BACKLOG_NOTE = "积案：各日日终仍未办结的案件，不论何时受理"
LAYER_MEASURES = {"counts": "registered", "open": "open", "overdue": "overdue",  # layer value -> map measure
                  "backlog": "backlog"}
KIOSK_ROTATION = ("counts", "overdue", "hotspots")  # the wall screen's views, one per refresh
KIOSK_SCREEN = (1920, 1080)  # the wall screen's plotly type is drawn for this size (CSS pixels), scaled to the screen
KIOSK_SCREEN_COOKIE = "onemap_screen"  # "<width>x<height>" of the screen in CSS pixels, from assets/kiosk.js
KIOSK_MAP_PADDING = {"top": 64, "bottom": 40, "left": 24, "right": 90}  # px at 1920×1080, around the fitted area
# the controls every view of the period reads, in _filter's order
FILTER_INPUTS = (Input("dates", "start_date"), Input("dates", "end_date"), Input("categories", "value"),
                 Input("sources", "value"), Input("url", "search"))


def _notes(*parts: str) -> str:
    """The map's corner notes that apply, in one line."""
    return "；".join(p for p in parts if p)


def _privacy(data: DashboardData, viewer: Viewer) -> tuple[dict, str]:
    """``hex_counts`` keywords for what ``viewer`` may not see, and the map's note saying what is left out."""
    small = data.settings.small_count_suppress
    privacy = viewer.hex_privacy(small)
    note = ""
    if privacy.get("min_count", 0) > 1:
        note = f"涉家暴、未成年人事件在六边形内少于 {small} 件时不计入；少于 {small} 件的六边形不在大屏显示"
    elif privacy.get("sensitive_min", 0) > 1:
        note = f"涉家暴、未成年人事件：六边形内少于 {small} 件时不计入地图"
    return privacy, note


def _backlog_layer(data: DashboardData, viewer: Viewer, flt: queries.EventFilter, resolution: int
                   ) -> tuple[pd.DataFrame, str]:
    """积案回放: the open cases per hex at the end of each day (or week) of the period, as ``viewer`` may see them."""
    privacy, note = _privacy(data, viewer)
    steps = queries.backlog_steps(flt, queries.reference_time(data.con()))
    return (queries.backlog_cells(data.con(), flt, resolution, steps, **privacy),
            _notes(note, _off_map_note(data, flt, "backlog", steps[-1])))


def _off_map_note(data: DashboardData, flt: queries.EventFilter, measure: str, as_of=None) -> str:
    """Why the hexes add up to less than the KPI: the events with no point (placed by address to an area only)."""
    n = queries.off_map(data.con(), flt, measure, as_of)
    return f"另有 {n:,} 件只定位到镇街或村居、没有点位，不在地图上（计入指标）" if n else ""


def _hex_layer(data: DashboardData, viewer: Viewer, flt: queries.EventFilter, resolution: int,
               layer: str = "counts") -> tuple[pd.DataFrame, str]:
    """The counts per hex of a count layer (受理数 / 未办结 / 超期) that ``viewer`` may see, and the map's note on
    what is left out. Small counts are left out on the server: all of them on the public wall screen, those
    of sensitive events for a non-handling viewer (privacy.small_count_suppress). Map and export read this."""
    privacy, note = _privacy(data, viewer)
    measure, as_of = _layer_measure(data, flt, layer)
    return (queries.hex_counts(data.con(), flt, resolution, measure=measure, as_of=as_of, **privacy),
            _notes(note, _off_map_note(data, flt, measure, as_of)))


def _layer_measure(data: DashboardData, flt: queries.EventFilter, layer: str) -> tuple[str, pd.Timestamp]:
    """What a layer's hexes count and as of when: the last build, or for 积案 the end of the period's last day
    (as the playback's last step shows it). The map, its export and a hex's list all read this."""
    measure = LAYER_MEASURES.get(layer, "registered")
    as_of = queries.reference_time(data.con())
    if map_measure(measure).every_registration:
        as_of = queries.backlog_steps(flt, as_of)[-1]
    return measure, as_of


def _small_hex_note(data: DashboardData, flt: queries.EventFilter, resolution) -> str:
    """Two sizes finer than the area's own (H3-10 over the whole county: ~15,000 hexes of 0.015 km²), the hexes
    are specks at the area's zoom: the map says to zoom in, or which size suits the area."""
    own = _default_resolution(data.settings, flt.scope)
    if int(resolution) < own + 2:
        return ""
    return f"H3-{int(resolution)} 六边形在{_area_name(data, flt.scope)}全图中很小：放大地图查看，或选 H3-{own}"


VIEW_TITLES = {"counts": "受理数", "open": "未办结", "overdue": "超期未办结", "backlog": "积案",
               "hotspots": "新兴热点（近26周）"}


def _view_title(fig, layer: str, flt: queries.EventFilter, scale: float = 1.0) -> None:
    """The wall screen's caption of the view it shows, top centre of the map (the legend is top left), large:
    26 px on a 1920×1080 screen, times ``scale`` (:func:`_kiosk_scale`)."""
    period = "" if layer == "hotspots" else f"（{flt.start:%m月%d日}—{flt.end:%m月%d日}）"
    fig.add_annotation(text=f"<b>{VIEW_TITLES.get(layer, layer)}</b>{period}", xref="paper", yref="paper",
                       x=0.5, y=0.99, xanchor="center", yanchor="top", showarrow=False,
                       font={"size": round(26 * scale), "color": "#ffffff"}, bgcolor="rgba(16,38,64,0.85)",
                       borderpad=round(8 * scale))


def _kiosk_scale() -> float:
    """How much larger than on a 1920×1080 screen the wall screen draws its plotly type (map names, notes, colour
    bar, daily chart): the screen's size over ``KIOSK_SCREEN``, the shorter fit, 0.75 to 4 (as --u in style.css),
    so 2 on a 3840×2160 screen. The screen's browser reports its size (assets/kiosk.js); 1 if it has not."""
    try:
        width, height = (int(v) for v in dash.ctx.cookies.get(KIOSK_SCREEN_COOKIE, "").split("x"))
    except ValueError:
        return 1.0
    return min(max(min(width / KIOSK_SCREEN[0], height / KIOSK_SCREEN[1]), 0.75), 4.0)


def _as_of_text(con) -> str:
    """'数据截至 12-06 23:59 · 12-08 04:09 更新': how far the loaded exports reach, and, when the build came later,
    when it ran (open and overdue are counted then; what happened since the last export is not yet known)."""
    as_of, end = queries.reference_time(con), queries.data_end(con)
    text = f"数据截至 {end:%Y-%m-%d %H:%M}"
    return text + (f" · {as_of:%m-%d %H:%M} 更新" if as_of - end > pd.Timedelta(hours=1) else "")


def _outline_urls(data: DashboardData, scope: queries.Scope, outlines: dict[str, dict]) -> dict[str, str]:
    """The map's outline layers as URLs of this server (``outlines`` route), not inline GeoJSON: the browser
    fetches each once and keeps it, instead of receiving the ~900 grid outlines (300 KB) with every figure."""
    stamp = f"{queries.reference_time(data.con()):%Y%m%d%H%M%S}"  # a new build (new boundaries too): new URLs
    return {level: f"/geo/{scope.code or 'county'}/{level}.geojson?v={stamp}" for level in outlines}


def _basemap_source(data: DashboardData) -> dict:
    """The deployment's tiles as the map's source: this server's ``basemap_tile`` route, no one else's."""
    info, settings = data.basemap.info, data.settings
    return basemap_source("/basemap/{z}/{x}/{y}", info.min_zoom, info.max_zoom, info.attribution,
                          settings.basemap_opacity)


def _hotspot_view(con, resolution: int, categories, sources, kiosk: bool = False) -> tuple[int, str]:
    """The hot-spot resolution nearest the one selected (finer on a tie), and the note on what the layer does not
    follow: hot spots are scored by the build over every category and source of the last 26 weeks. The wall
    screen (``kiosk``) has no period, category or source to choose: its note names none."""
    available = queries.hotspot_resolutions(con) or [resolution]
    res = min(available, key=lambda r: (abs(r - resolution), -r))
    ignored = [name for name, chosen in (("所选时段", True), ("类别", categories), ("来源", sources)) if chosen]
    note = "" if kiosk else f"此图层按全部类别与来源计算，不随{'、'.join(ignored)}变化"
    return res, _notes(note, f"热点按 H3-{res} 计算" if res != resolution else "")


def register_callbacks(app: dash.Dash, data: DashboardData, gate: Gate, kiosk: bool = False) -> None:
    if kiosk:
        app.clientside_callback(  # each tick restarts the countdown of assets/kiosk.js
            "function(n) { window._onemapTick = Date.now(); return window.dash_clientside.no_update; }",
            Output("next-view", "title"), Input("refresh", "n_intervals"))

        @app.callback(Output("layer", "value"), Input("refresh", "n_intervals"), prevent_initial_call=True)
        def rotate(n):  # the wall screen turns through where events come in, where the overdue pile up, hot spots
            return KIOSK_ROTATION[(n or 0) % len(KIOSK_ROTATION)]

    @app.callback(
        Output("map", "figure"), *[Output(f"kpi-{k}", "children") for k in STRIP],
        *[Output(f"kpi-{k}-change", "children") for k in STRIP], Output("asof", "children"),
        *FILTER_INPUTS, Input("resolution", "value"), Input("layer", "value"), Input("refresh", "n_intervals"),
    )
    def update(start, end, categories, sources, search, resolution, layer, _tick):
        if kiosk and dash.ctx.triggered_id == "refresh":
            # the wall screen's tick turns its view (rotate), and the new view redraws with fresh data: drawing the
            # old view as well doubled the work of each tick, and on a busy machine its late answer could land
            # after the new view's, leaving the old map up under the new view's name
            raise dash.exceptions.PreventUpdate
        con, viewer = data.con(), gate.viewer()
        flt = _filter(data, viewer, start, end, categories, sources, search)
        values, before, year = queries.kpis_compared(con, flt, keys=STRIP)
        center, zoom = data.view(flt.scope)
        outlines, labels = data.layers(flt.scope)
        outlines = _outline_urls(data, flt.scope, outlines)
        if layer == "hotspots":
            res, note = _hotspot_view(con, int(resolution), categories, sources, kiosk)
            fig = hotspot_map(queries.hotspot_cells(con, res, flt.scope), outlines, labels, center, zoom=zoom,
                              note=note)
        elif layer == "backlog":
            cells, note = _backlog_layer(data, viewer, flt, int(resolution))
            fig = backlog_map(cells, outlines, labels, center, zoom=zoom,
                              note=_notes(BACKLOG_NOTE, note, _small_hex_note(data, flt, resolution)))
        else:
            counts, note = _hex_layer(data, viewer, flt, int(resolution), layer)
            places = queries.cell_places(con, list(counts["cell"]), int(resolution), flt.scope)  # hover (~30 ms)
            counts = counts.assign(place=counts["cell"].map(places).fillna(""))
            fig = hex_map(counts, outlines, labels, center, zoom=zoom,
                          note=_notes(note, _small_hex_note(data, flt, resolution)),
                          title=map_measure(LAYER_MEASURES.get(layer, "registered")).label)
        # assets/onemap.js fits the map to the area; plotly keeps a view per area (uirevision), so that going back
        # up does not put the drilled-down area's view back
        fig.update_layout(meta={"fit": data.bounds(flt.scope)}, uirevision=flt.scope.code or "county")
        if data.basemap:
            fig.update_layout(map_style=offline_style(basemap=_basemap_source(data)))
        if kiosk:  # no controls on the wall screen: the map says which of its views it shows, in type for the room
            scale = _kiosk_scale()
            for_wall_screen(fig, scale)
            _view_title(fig, layer, flt, scale)
            # the area fitted clear of the caption (top), the corner note (foot) and the colour bar (right)
            pad = {side: round(px * scale) for side, px in KIOSK_MAP_PADDING.items()}
            fig.update_layout(meta={**fig.layout.meta, "pad": pad})
        return (fig, *[format_value(kpi(k), values[k]) for k in STRIP],
                *["环比 {} · 同比 {}".format(*format_changes(kpi(k), values[k], before[k], year[k]))
                  for k in STRIP],
                _as_of_text(con))

    @app.callback(
        Output("daily", "figure"),
        *FILTER_INPUTS, Input("refresh", "n_intervals"),
    )
    def daily(start, end, categories, sources, search, _tick):
        """Registered per day and the backlog at each day's end, of the viewer's own area (aggregate counts)."""
        flt = _filter(data, gate.viewer(), start, end, categories, sources, search)
        return daily_chart(queries.daily_series(data.con(), flt), scale=_kiosk_scale() if kiosk else None)

    @app.callback(
        Output("backlog", "children"), Output("backlog-title", "children"),
        Input("categories", "value"), Input("sources", "value"), Input("url", "search"),
        Input("refresh", "n_intervals"),
    )
    def backlog(categories, sources, search, _tick):
        """积案 of the viewer's own area at the last build, whatever the registration day (aggregate counts)."""
        con, viewer = data.con(), gate.viewer()
        as_of = queries.reference_time(con)
        day = as_of.date().isoformat()  # the backlog reads every registration day, not the period
        flt = _filter(data, viewer, day, day, categories, sources, search)
        return (_backlog_table(queries.backlog(con, flt, as_of, total=True)),
                f"积案：截至 {format_moment(as_of)} 在办案件按阶段与时长")

    @app.callback(
        Output("areas", "children"), Output("areas-title", "children"),
        *FILTER_INPUTS, Input("refresh", "n_intervals"),
    )
    def areas(start, end, categories, sources, search, _tick):
        """The per-area KPI table of the area the page looks at (not on the public wall screen): each town or
        village a drill-down link, under the way back up."""
        viewer = gate.viewer()
        if viewer.public:
            return None, dash.no_update
        flt = _filter(data, viewer, start, end, categories, sources, search)
        focus = flt.scope
        frame = queries.area_kpis(data.con(), flt, keys=AREA_PANEL)
        return ([_breadcrumb(data, viewer, focus), _area_table(frame, links=focus.level != "village")],
                f"{AREA_TITLE[focus.level]}（所选时段）")

    @app.callback(Output({"type": "review-status", "key": ALL}, "children"),
                  Output({"type": "review-status", "key": ALL}, "className"), Output("review-record", "children"),
                  Input({"type": "review", "key": ALL, "verdict": ALL}, "n_clicks"), State("url", "search"),
                  prevent_initial_call=True)
    def review_alert(_clicks, search):
        """属实 / 误报 on an alert the viewer can see (checked here, on the server), kept beside the warehouse."""
        viewer, clicked = gate.viewer(), dash.ctx.triggered_id
        if viewer.public or not clicked or not any(t["value"] for t in dash.ctx.triggered):
            raise dash.exceptions.PreventUpdate
        if clicked["key"] not in set(keys_of(_visible_alerts(data, viewer))):
            raise dash.exceptions.PreventUpdate
        add_review(data.settings.reviews_path, clicked["key"], clicked["verdict"], viewer.name,
                   viewer.scope.code if queries.narrow(viewer.scope) else None, unit=viewer.unit)
        gate.record("alert_review", key=clicked["key"], verdict=clicked["verdict"])
        reviewed = latest_reviews(data.settings.reviews_path)
        keys = [o["id"]["key"] for o in dash.ctx.outputs_list[0]]
        return ([_verdict_text(reviewed.get(k)) for k in keys], [_verdict_class(reviewed.get(k)) for k in keys],
                _review_record(data, viewer, _focus(data, viewer, search)))  # the area's record, with this one

    @app.callback(Output("hex-download", "data"), Input("hex-csv", "n_clicks"), Input("hex-geojson", "n_clicks"),
                  State("dates", "start_date"), State("dates", "end_date"), State("categories", "value"),
                  State("sources", "value"), State("resolution", "value"), State("layer", "value"),
                  State("url", "search"), prevent_initial_call=True)
    def download_hexes(_csv, _geojson, start, end, categories, sources, resolution, layer, search):
        """The layer's hexes as the map shows them to this viewer, named for the filter, each with its town and
        village (what a hex is, for a reader of the file who has no map)."""
        viewer = gate.viewer()
        if viewer.public:  # the wall screen has no export; a request made by hand gets nothing either
            raise dash.exceptions.PreventUpdate
        flt = _filter(data, viewer, start, end, categories, sources, search)
        layer = layer if layer in LAYER_MEASURES else "counts"  # the hot spot layer exports its counts
        counts, note = _hex_layer(data, viewer, flt, int(resolution), layer)
        counts = counts.assign(**{level: queries.cell_area_names(data.con(), counts["cell"], level)
                                  for level in ("town", "village")})
        fmt = "geojson" if dash.ctx.triggered_id == "hex-geojson" else "csv"
        area = _area_name(data, flt.scope)
        label = map_measure(LAYER_MEASURES[layer]).label
        gate.record("export", layer=LAYER_MEASURES[layer], resolution=int(resolution), start=flt.start, end=flt.end,
                    format=fmt, cells=len(counts), focus=flt.scope.code or None)
        about = {"指标": label, "地区": area, "时段": f"{flt.start} 至 {flt.end}", "六边形级别": f"H3-{int(resolution)}",
                 "筛选": "、".join(filter_words(flt.categories, flt.sources)) or "全部类别与来源",
                 "数据截至": format_moment(queries.reference_time(data.con()), year=True), "说明": note}
        return dcc.send_bytes(hex_file(counts, int(resolution), fmt, label, about),
                              export_name(label, area, int(resolution), flt.start, flt.end, flt.categories,
                                          flt.sources, fmt))

    @app.callback(Output("brief-download", "data"), Input("brief-docx", "n_clicks"), Input("brief-pdf", "n_clicks"),
                  State("url", "search"), prevent_initial_call=True)
    def download_brief(_docx, _pdf, search):
        """The brief of the area the page looks at (the viewer's own, or the town or village drilled down to)."""
        from dashboard.brief_files import brief_for, render  # imaging and document libraries: only when asked

        viewer = gate.viewer()
        if viewer.public:  # the wall screen hides the buttons; a request made by hand gets nothing either
            raise dash.exceptions.PreventUpdate
        fmt = "pdf" if dash.ctx.triggered_id == "brief-pdf" else "docx"
        focus = _focus(data, viewer, search)
        brief = brief_for(data.con(), data.settings, scope=focus)
        gate.record("brief", week=brief.week_start, format=fmt, focus=focus.code or None)
        return dcc.send_bytes(render(brief, fmt), f"{brief.file_stem}.{fmt}")

    @app.callback(
        Output("detail-body", "children"), Output("map", "clickData"), Input("map", "clickData"),
        *FILTER_INPUTS, Input("resolution", "value"), Input("layer", "value"), prevent_initial_call=True,
    )
    def detail(click, start, end, categories, sources, search, resolution, layer):
        """The events of the clicked hex that its layer counts (on 超期, the overdue cases, longest overdue first).
        Any other change — a filter, the area, the layer, the hex size — clears the list and the outline: it
        would no longer be the hex's list under what the map shows."""
        viewer = gate.viewer()
        if viewer.public:  # nothing to clear on the wall screen as it turns through its views
            if dash.ctx.triggered_id != "map":
                raise dash.exceptions.PreventUpdate
            return html.P("大屏不显示事件明细"), dash.no_update
        cell = (click or {}).get("points", [{}])[0].get("location")
        if dash.ctx.triggered_id != "map" or not cell:
            return html.P("点击地图上的六边形，查看该处的事件", className="summary"), None
        flt = _filter(data, viewer, start, end, categories, sources, search)
        measure, as_of = _layer_measure(data, flt, layer if layer in LAYER_MEASURES else "counts")
        ask = {"handler": viewer.handler, "measure": measure, "as_of": as_of}
        rows = queries.events_in_cell(data.con(), flt, cell, int(resolution), **ask)
        counts = queries.cell_event_counts(data.con(), flt, cell, int(resolution), **ask)
        gate.record("drill_down", cell=cell, resolution=int(resolution), listed=len(rows), handler=viewer.handler,
                    focus=flt.scope.code or None)
        place = queries.cell_places(data.con(), [cell], int(resolution), flt.scope).get(cell, "")  # never another area's
        return _event_list(cell, int(resolution), place, rows, counts, viewer.handler, measure), dash.no_update

    @app.callback(Output("alerts", "children"), Output("repeats", "children"), Output("outliers", "children"),
                  Output("page-title", "children"), Output("review-record", "children"), Input("url", "search"),
                  prevent_initial_call=True)
    def focus_lists(search):
        """Drilled down (or back up): the title, alerts, their record, repeat places and the secondary outlier
        cells of the area the page now looks at."""
        viewer = gate.viewer()
        seen = dataclasses.replace(viewer, scope=_focus(data, viewer, search))
        return (_alert_list(data, seen), _repeat_list(data, seen), _outlier_list(data, seen),
                _page_title(data, seen.scope), _review_record(data, seen))

    @app.callback(Output("resolution", "value"), Input("url", "search"), prevent_initial_call=True)
    def resolution_for_focus(search):
        """Drilling down (or back up) opens the area at its own hex size, as a user signed in there would see it."""
        return _default_resolution(data.settings, _focus(data, gate.viewer(), search))

    # the browser tab (and a bookmark) names the area too
    app.clientside_callback("function(title) { document.title = title; return window.dash_clientside.no_update; }",
                            Output("page-title", "title"), Input("page-title", "children"))
    app.clientside_callback(ClientsideFunction("onemap", "fitMap"), Output("map", "className"),
                            Input("map", "figure"), prevent_initial_call=True)
    app.clientside_callback(ClientsideFunction("onemap", "highlightCell"), Output("map", "style"),
                            Input("map", "clickData"), prevent_initial_call=True)
    app.clientside_callback(ClientsideFunction("onemap", "stopPlayback"), Output("playback", "data"),
                            *FILTER_INPUTS, Input("resolution", "value"), Input("layer", "value"),
                            prevent_initial_call=True)

    # the list sits at the foot of the side panel: bring it into view when a hex is clicked, and only then (a
    # filter or layer change empties the list, and scrolled the alerts and tables out of sight on every load)
    app.clientside_callback(
        "function(click) { const h = document.getElementById('detail-heading');"
        " if (click && h) { h.scrollIntoView({behavior: 'smooth', block: 'start'}); }"
        " return window.dash_clientside.no_update; }",
        Output("detail-heading", "title"), Input("map", "clickData"), prevent_initial_call=True)


def _event_list(cell: str, resolution: int, place: str, rows: pd.DataFrame, counts: dict, handler: bool,
                measure: str = "registered") -> list:
    """The drill-down: where the hex is (its village, the H3 id on hover for data staff), how many events of the
    layer's ``measure`` it holds, how many are listed and why the others are not; an overdue case says by how
    many days."""
    kind = "保密事件" if handler else "保密事件及涉家暴、未成年人事件"
    hidden = f"另有 {counts['hidden']} 条{kind}只计入统计，不逐条显示" if counts["hidden"] else f"{kind}只计入统计"
    total = counts["listable"] + counts["hidden"]
    where = html.B(f"{place or '所选'}六边形（H3-{resolution}）", title=f"H3 {cell}", className="cell-name")
    label, registered = map_measure(measure).label, measure == "registered"
    if rows.empty:
        return [html.P([where, f"：{label}共 {total} 条，无可列出的事件（{hidden}）" if total
                        else "：所选条件下无事件" if registered else f"：无{label}事件"])]
    shown = (f"{label}共 {total} 条，列出{'最新' if registered else '等待最久的'} {len(rows)} 条"
             if len(rows) < counts["listable"] else f"{label}共 {total} 条，列出 {len(rows)} 条")
    items = [html.Li([html.B(f"{r.reported} · {category_name(r.category_code)} · {r.status}"),
                      *([html.Span(f" 超期 {int(r.overdue_days)} 天", className="overdue-mark")]
                        if pd.notna(r.overdue_days) else []),
                      html.Div(r.summary_redacted or "", className="summary")]) for r in rows.itertuples()]
    return [html.P([where, f"：{shown}（已脱敏；{hidden}）"]), html.Ul(items, className="events")]


def create_app(settings: Settings, kiosk: bool = False, kiosk_area: str | None = None) -> dash.Dash:
    """The app. With accounts in the users file every page needs sign-in and shows the user's own area; the
    wall screen (``kiosk``) is public and shows ``kiosk_area`` (a county / town / village code; default the
    whole county)."""
    data = DashboardData(settings)
    _ = data.basemap  # a basemap that cannot be used stops the server at start, with what is wrong
    kiosk_scope = (queries.area_scope(data.con(), kiosk_area) if kiosk_area else queries.COUNTY) if kiosk else None
    gate = Gate(settings, data.con, kiosk_scope)
    app = dash.Dash(__name__, title="民情地图 One Map", serve_locally=True, update_title=None,
                    assets_folder=str(__import__("pathlib").Path(__file__).parent / "assets"))
    gate.install(app.server)
    app.layout = lambda: build_layout(data, kiosk, gate.current())

    @app.server.route("/geo/<code>/<level>.geojson")
    def outlines(code: str, level: str):
        """One outline layer of the map of an area inside the viewer's own (signed in, as every page)."""
        viewer = gate.viewer()
        scope = viewer.scope if code == (viewer.scope.code or "county") else _focus(data, viewer, f"?area={code}")
        layers, _ = data.layers(scope)
        if (scope.code or "county") != code or level not in layers:
            return Response("no such outline", status=404)
        return Response(json.dumps(layers[level], ensure_ascii=False), mimetype="application/geo+json",
                        headers={"Cache-Control": "private, max-age=86400"})

    @app.server.route("/basemap/<int:z>/<int:x>/<int:y>")
    def basemap_tile(z: int, x: int, y: int):
        """A tile of the deployment's own basemap, from this machine (204 where the set has none)."""
        found = data.basemap.tile(z, x, y) if data.basemap else None
        if found is None:
            return Response(status=204)
        return Response(found[0], mimetype=found[1], headers={"Cache-Control": "private, max-age=86400"})

    register_callbacks(app, data, gate, kiosk)
    return app
