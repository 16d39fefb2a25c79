"""KPIs, each defined once: label, meaning, denominator, and the SQL that computes it.

Every KPI is an aggregate over ``core.events`` rows registered (reported) in the period, evaluated as of
``$as_of``. The dashboard, the weekly report and the notebooks all call ``onemap.queries.kpis``, which
uses these definitions and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onemap.contracts import RESOLVED_OUTCOME, closed_status

# the close time in effect at the reference time, NULL while open: the export's close time once it says closed and
# that time has come; and for a case shown open again later (重开), its earlier close time until that reopening
CLOSED_TIME = (f"(CASE WHEN {closed_status()} AND closed_at <= $as_of THEN closed_at "
               "WHEN first_closed_at <= $as_of AND reopened_at > $as_of THEN first_closed_at END)")
# "closed as of" and "open as of" the reference time
CLOSED = f"({CLOSED_TIME} IS NOT NULL)"
OPEN = f"({CLOSED_TIME} IS NULL)"
OVERDUE = f"{OPEN} AND due_at < $as_of"  # open at the reference time and past its due time (督办)
# closed as of the reference time by a tier the export names (sources without a tier stay out of the denominator)
CLOSED_TIERED = f"{CLOSED} AND handling_tier IS NOT NULL"


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    meaning: str
    sql: str
    kind: str  # "count", "rate", "mean" or "days" (a median duration in days)
    base: str | None = None  # SQL count of the cases a rate or mean is taken over (its denominator)
    zh: str = ""  # 口径: the definition in Chinese, as the map's tooltips and the brief's appendix give it


def _share(key: str, label: str, meaning: str, part: str, of: str | None = None, zh: str = "") -> Kpi:
    """A rate: the cases meeting ``part`` among those meeting ``of`` (None: every case registered in the period)."""
    base = "count(*)" if of is None else f"count(*) FILTER (WHERE {of})"
    within = part if of is None else f"({of}) AND ({part})"
    return Kpi(key, label, meaning, f"count(*) FILTER (WHERE {within}) / nullif({base}, 0)", "rate", base, zh)


KPIS: tuple[Kpi, ...] = (
    Kpi("registered", "受理数", "cases registered (reported) in the period", "count(*)", "count",
        zh="所选时段内登记受理（上报）的事件数"),
    _share("closed_rate", "办结率", "closed as of the reference time ÷ registered in the period", CLOSED,
           zh="时段内受理的事件中，截至统计时点已办结的比例"),
    _share("resolved_rate", "化解率", "closed with outcome 化解 ÷ registered in the period",
           f"{CLOSED} AND outcome = '{RESOLVED_OUTCOME}'", zh="时段内受理的事件中，截至统计时点已办结且结果为“化解”的比例"),
    Kpi("overdue", "超期", "open at the reference time and past their due time",
        f"count(*) FILTER (WHERE {OVERDUE})", "count",
        zh="时段内受理的事件中，截至统计时点仍未办结且已过办理期限的件数"),
    _share("overdue_rate", "超期率", "overdue ÷ open at the reference time", OVERDUE, OPEN,
           zh="截至统计时点未办结的事件中，已过办理期限的比例"),
    # (over the cases whose export records it: a 12345 export without the column is not 0 % on the spot)
    _share("onsite_rate", "现场处结率", "closed on the spot by the first responder ÷ registered with the field recorded",
           f"{CLOSED} AND on_site_closed", "on_site_closed IS NOT NULL",
           zh="时段内受理、且导出记有“是否现场处结”的事件中，由首到人员现场处结的比例"),
    Kpi("satisfaction", "满意度", "mean satisfaction (0–5) of closed cases that were surveyed",
        f"avg(satisfaction) FILTER (WHERE {CLOSED})", "mean", f"count(satisfaction) FILTER (WHERE {CLOSED})",
        zh="已办结并做了回访评价的事件的平均满意度（0–5 分）"),
    # on time, honestly: a case still open past its due time counts against the rate, not only late closures
    # (a rate over closed cases alone reads 100 % beside a long overdue list)
    _share("ontime_rate", "按时办结率",
           "closed by their due time ÷ (closed with a due time + open past their due time)",
           f"{CLOSED} AND {CLOSED_TIME} <= due_at", f"due_at IS NOT NULL AND ({CLOSED} OR due_at < $as_of)",
           zh="在办理期限内办结的件数 ÷（已办结且有期限的件数 + 仍未办结但已超期的件数）；超期未办的也算未按时"),
    # 重办结率轻解决率: a case closed and then shown open again by a later export was not settled
    _share("reopened_rate", "重开率", "closed cases later shown open again ÷ cases closed at some time, as of the "
           "reference time", "reopened_at <= $as_of", f"{CLOSED} OR reopened_at <= $as_of",
           zh="办结过的事件中，后来的导出又显示为未办结（重开）的比例"),
    Kpi("median_days", "办结用时", "median days from report to close of the cases closed as of the reference time "
        "(a recent period reads low: its slow cases are still open)",
        f"median(epoch({CLOSED_TIME} - reported_at) / 86400.0) FILTER (WHERE {CLOSED})", "days",
        f"count(*) FILTER (WHERE {CLOSED})",
        zh="已办结事件从上报到办结天数的中位数（最近时段偏小：慢的案件还没办完）"),
    # 小事不出村、大事不出镇: where cases are settled. Only cases whose export names the handling tier count.
    _share("village_share", "村级办结占比", "closed by the village (community) tier ÷ closed with a known handling tier",
           "handling_tier = 'village'", CLOSED_TIERED,
           zh="已办结且写明办理层级的事件中，由村（社区）办结的比例（小事不出村）"),
    _share("town_or_below_share", "镇村办结占比", "closed by the village or town tier ÷ closed with a known handling tier",
           "handling_tier IN ('village', 'town')", CLOSED_TIERED,
           zh="已办结且写明办理层级的事件中，由村（社区）或镇（街道）办结的比例（大事不出镇）"),
)

STRIP = ("registered", "closed_rate", "resolved_rate", "overdue", "village_share")  # the KPI strip on the map page


@dataclass(frozen=True)
class MapMeasure:
    """What a hex of the map counts: the events registered in the period, or those of them that are in a
    given state at the reference time (the case burden a 督办 needs to see, not only where events were)."""
    key: str
    label: str
    where: str | None  # SQL condition on core.events with $as_of; None = every registered event
    every_registration: bool = False  # the cases in that state at $as_of whatever their registration day (积案)


MAP_MEASURES: tuple[MapMeasure, ...] = (
    MapMeasure("registered", "受理数", None),
    MapMeasure("open", "未办结", OPEN),
    MapMeasure("overdue", "超期", OVERDUE),
    MapMeasure("backlog", "积案", OPEN, every_registration=True),
)


# what the emerging hot spot classes say and do not say (measured, docs/analytics.md §3): on the map and in the brief
HOTSPOT_CAVEAT = "热点类别显示近26周事件在哪里聚集、聚集如何变化（热点统计与趋势检验），不是对下周的预测"


def map_measure(key: str) -> MapMeasure:
    for m in MAP_MEASURES:
        if m.key == key:
            return m
    raise KeyError(f"unknown map measure {key!r} ({', '.join(m.key for m in MAP_MEASURES)})")


def kpi(key: str) -> Kpi:
    for k in KPIS:
        if k.key == key:
            return k
    raise KeyError(key)


def format_value(k: Kpi, value) -> str:
    if value is None:
        return "—"
    if k.kind == "rate":
        return f"{100 * value:.1f}%"
    if k.kind == "mean":
        return f"{value:.2f}"
    if k.kind == "days":
        return f"{value:.1f} 天"
    return f"{int(value):,}"


SMALL_BASE = 30  # a rate over fewer cases is starred where areas are compared: its 95 % interval is wide
SMALL_COUNT = 20  # a count's change from fewer than this is given in cases, not per cent


def format_with_base(k: Kpi, value, base) -> str:
    """:func:`format_value`, starred (*) for a rate taken over fewer than SMALL_BASE cases."""
    few = k.kind == "rate" and value is not None and base is not None and base < SMALL_BASE
    return format_value(k, value) + ("*" if few else "")


def small_base_note() -> str:
    """What the star of :func:`format_with_base` means, with the interval it stands for."""
    low, high = wilson_interval(SMALL_BASE // 2, SMALL_BASE)
    return (f"* 比率的分母不足 {SMALL_BASE} 件，偶然性大（{SMALL_BASE} 件中一半时，95% 区间为 "
            f"{100 * low:.0f}%—{100 * high:.0f}%）")


def format_change(k: Kpi, value, before, in_cases: bool = False) -> str:
    """The change from an earlier period as a leader reads it (环比): counts in per cent (in cases when the earlier
    count was under SMALL_COUNT, or ``in_cases``), rates in percentage points, means as a difference, with an
    arrow; "—" when either side is missing or a count was zero."""
    if value is None or before is None:
        return "—"
    diff = value - before
    if k.kind == "rate":
        size, unit = f"{abs(100 * diff):.1f}", " 个百分点"
    elif k.kind == "mean":
        size, unit = f"{abs(diff):.2f}", ""
    elif k.kind == "days":
        size, unit = f"{abs(diff):.1f}", " 天"
    elif not before:  # no per cent of nothing; the change in cases is still said (超期 0 → 1: ▲ 1 件)
        return f"▲ {value:,.0f} 件" if value else "→ 0"
    elif before < SMALL_COUNT or in_cases:  # 4 after 1 is "+3 件", not "▲300%": a per cent of a handful alarms for nothing
        size, unit = f"{abs(diff):,.0f}", " 件"
    else:
        size, unit = f"{abs(100 * diff / before):.1f}", "%"
    # a change that rounds to nothing reads as none, not as a rise or fall of 0.0
    arrow = "→" if float(size) == 0 else "▲" if diff > 0 else "▼"
    return f"{arrow} {size}{unit}"


def format_moment(at, year: bool = False) -> str:
    """A reference time as people say it: midnight is the end of the day before ("12-06 日终", as the demo's and a
    nightly build's time reads beside 数据截至 12-06 23:59), any other time "12-07 08:30"."""
    import pandas as pd

    at = pd.Timestamp(at)
    if at == at.normalize():
        return (at - pd.Timedelta(days=1)).strftime("%Y-%m-%d 日终" if year else "%m-%d 日终")
    return at.strftime("%Y-%m-%d %H:%M" if year else "%m-%d %H:%M")


def format_changes(k: Kpi, value, before, year) -> tuple[str, str]:
    """环比 and 同比 of one KPI in one unit: both in cases when either earlier count is under SMALL_COUNT (a row
    reading "▼ 19.0%" beside "▲ 1 件" mixes units that cannot be compared)."""
    few = k.kind == "count" and any(b is not None and b < SMALL_COUNT for b in (before, year))
    return format_change(k, value, before, few), format_change(k, value, year, few)


def wilson_interval(hits, n, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """The 95 % Wilson score interval of a share ``hits / n`` (arrays or numbers; NaN where n = 0).

    For the small counts of one town's week or one month's reviewed alerts, where "3 of 4" is not "75 %":
    unlike the normal approximation it stays within 0–1 and is honest at 0 and n."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.asarray(hits, dtype=float) / np.where(n > 0, n, np.nan)
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the interval holds the share itself (at 0 and n rounding would otherwise leave it a hair outside)
    return np.clip(np.minimum(centre - half, p), 0, 1), np.clip(np.maximum(centre + half, p), 0, 1)
