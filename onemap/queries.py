"""Read-only, parameterised queries over the published warehouse (used by dashboard, reports, notebooks).

Values are always bound as parameters; only identifiers from fixed whitelists are formatted into SQL.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from onemap.categories import SENSITIVE_FLAGS, STAGES
from onemap.contracts import closed_status
from onemap.h3sql import h3_parent_sql
from onemap.metrics import KPIS, OPEN, OVERDUE, map_measure

# the boundary vintage shown and counted: the one loaded last (`onemap geodata load` or the first build)
# the boundaries in use: the vintage loaded last, leaving out those loaded for the record only (--history)
CURRENT_VINTAGE = ("(SELECT vintage FROM meta.area_vintages WHERE history IS NOT TRUE "
                   "ORDER BY loaded_at DESC LIMIT 1)")


SCOPE_LEVELS = ("county", "town", "village")
CHILD_LEVEL = {"county": "town", "town": "village", "village": "grid"}  # the areas one level below each


@dataclass(frozen=True)
class Scope:
    """The area a viewer may see (jurisdiction scoping): the whole county, one town or one village. Every query
    that serves a viewer takes one; a county scope is the whole deployment, the others restrict by the
    event's own ``town_code`` / ``village_code`` (so a town user also sees its events placed only to the town)."""
    level: str
    code: str
    name: str = ""

    def __post_init__(self):
        if self.level not in SCOPE_LEVELS:
            raise ValueError(f"a scope is one of {', '.join(SCOPE_LEVELS)}, not {self.level!r} ({self.code})")

    @property
    def whole(self) -> bool:
        return self.level == "county"

    def clause(self) -> tuple[str, dict]:
        """SQL condition on core.events (and tables with its area code columns) and its parameters."""
        if self.whole:
            return "TRUE", {}
        return f"{self.level}_code = $scope_code", {"scope_code": self.code}


COUNTY = Scope("county", "")  # the whole deployment, when the code does not matter


def narrow(scope: Scope | None) -> bool:
    """Whether ``scope`` restricts anything (a town or a village, not the whole county)."""
    return scope is not None and not scope.whole


def area_scope(con, code: str) -> Scope:
    """The scope of the area with this code in the current boundaries; a clear error if there is none."""
    rows = con.execute(f"SELECT level, name FROM core.areas WHERE code = ? AND vintage = {CURRENT_VINTAGE}",
                       [str(code)]).fetchall()
    if not rows:
        raise ValueError(f"no area with code {code!r} in the current boundaries (core.areas)")
    level, name = rows[0]
    if level not in SCOPE_LEVELS:
        raise ValueError(f"area {code} ({name}) is a {level}: a viewer's scope is the county, a town or a village")
    return Scope(level, str(code), name)


@dataclass(frozen=True)
class EventFilter:
    start: dt.date                 # first day, inclusive (Asia/Shanghai calendar day of reported_at)
    end: dt.date                   # last day, inclusive
    categories: tuple[str, ...] = ()   # product codes or top-level prefixes (e.g. 'MD10' matches MD1001); empty = all
    sources: tuple[str, ...] = ()      # grid / police / hotline; empty = all
    scope: Scope | None = None         # jurisdiction scope; None = whole county

    def where(self, day_expr: str | None = None, code_col: str = "category_code",
              source_col: str = "source", area_codes: bool = True) -> tuple[str, dict]:
        """SQL condition and parameters. ``day_expr``: a DATE column (the aggregates' ``day``); by default the
        Asia/Shanghai calendar days of core.events' ``reported_at``, written as a range of instants (midnight
        to midnight in the session's time zone) so that DuckDB neither converts every row's time zone nor
        scans row groups outside the period. ``area_codes=False``: the table has no area code columns (the
        hex aggregates), so a narrow scope cannot be applied there and is refused rather than ignored."""
        clauses = [f"{day_expr} BETWEEN $start AND $end" if day_expr else
                   "reported_at >= CAST($start AS TIMESTAMPTZ) AND reported_at < CAST($end AS TIMESTAMPTZ) + INTERVAL 1 DAY"]
        params: dict = {"start": self.start, "end": self.end}
        if self.categories:
            clauses.append(f"list_has_any([{code_col}, left({code_col}, 4), left({code_col}, 2)], $cats)")
            params["cats"] = list(self.categories)
        if self.sources:
            clauses.append(f"list_contains($sources, {source_col})")
            params["sources"] = list(self.sources)
        if narrow(self.scope):
            if not area_codes:
                raise ValueError("a town or village scope is applied on core.events, not on a county-wide aggregate")
            sql, extra = self.scope.clause()
            clauses.append(sql)
            params.update(extra)
        return " AND ".join(clauses), params


def hex_ids(cells: pd.Series) -> pd.Series:
    """UBIGINT H3 cells as the hex strings the map and the CLI show."""
    return cells.map(lambda c: format(int(c), "x"))


def date_bounds(con) -> tuple[dt.date, dt.date] | None:
    row = con.execute("SELECT min(CAST(reported_at AS DATE)), max(CAST(reported_at AS DATE)) FROM core.events"
                      ).fetchall()[0]
    return None if row[0] is None else (row[0], row[1])


def _over_events(con, flt: EventFilter, as_of: pd.Timestamp | None, exprs: dict[str, str],
                 by: str | None = None) -> tuple[str, dict]:
    """SQL (and parameters) of the aggregates ``exprs`` (name -> SQL with $as_of) over the filter's events, as of
    ``as_of`` (default the last build); with ``by``, per value of that column (as ``code``; NULL a group too)."""
    where, params = flt.where()
    if any("$as_of" in sql for sql in exprs.values()):  # DuckDB refuses a parameter the statement does not use
        params["as_of"] = as_of if as_of is not None else reference_time(con)
    select = ", ".join(f"{sql} AS {key}" for key, sql in exprs.items())
    if by is None:
        return f"SELECT {select} FROM core.events WHERE {where}", params
    return f"SELECT {by} AS code, {select} FROM core.events WHERE {where} GROUP BY 1", params


def _one_row(con, sql_params: tuple[str, dict]) -> dict:
    cursor = con.execute(*sql_params)
    return dict(zip([d[0] for d in cursor.description], cursor.fetchall()[0], strict=True))


def kpis(con, flt: EventFilter, as_of: pd.Timestamp | None = None, keys: Sequence[str] | None = None
         ) -> dict[str, float | None]:
    """The KPIs of onemap.metrics (``keys``, default all) for the events registered in the filter's period. Each
    KPI costs a pass of its own over the period's events, so a caller that shows a few asks for those."""
    row = _one_row(con, _over_events(con, flt, as_of, {k.key: k.sql for k in KPIS if keys is None or k.key in keys}))
    return {key: (None if v is None else float(v)) for key, v in row.items()}


def busiest_first(areas: pd.DataFrame) -> pd.DataFrame:
    """``areas`` (:func:`area_kpis`) by 受理数, most first (code breaks ties), the unplaced row
    (code None) last, as the map's side panel and the brief list them: the areas to look at come first."""
    return areas.assign(_unplaced=areas["code"].isna()).sort_values(
        ["_unplaced", "registered", "code"], ascending=[True, False, True]).drop(columns="_unplaced")


def area_kpis(con, flt: EventFilter, as_of: pd.Timestamp | None = None, scope: Scope | None = None,
              keys: Sequence[str] | None = None) -> pd.DataFrame:
    """The KPIs (``keys``, default all), and the base of each rate and mean (``base_<key>``), for each area one
    level below ``scope`` (default the filter's own scope: the towns of the county, the villages of a town, the
    grids of a village), in one pass over the events. Every such area has a row, in code order, those without
    events with 受理数 0; then, if any of the filter's events are placed to none of them, a row :data:`UNPLACED`
    (code None), so that the rows add up to the KPI strip."""
    scope = scope or flt.scope or COUNTY
    wanted = [k for k in KPIS if keys is None or k.key in keys or k.key == "registered"]
    exprs = {k.key: k.sql for k in wanted} | {f"base_{k.key}": k.base for k in wanted if k.base}
    found = con.execute(*_over_events(con, flt, as_of, exprs, by=f"{CHILD_LEVEL[scope.level]}_code")).df()
    rows = child_areas(con, scope)
    if found["code"].isna().any():  # events placed to the scope but to none of its areas: a row, not lost
        rows = pd.concat([rows, pd.DataFrame({"code": [None], "name": [UNPLACED]})], ignore_index=True)
    out = rows.merge(found, on="code", how="left")
    counts = [c for c in out.columns if c in ("registered", "overdue") or c.startswith("base_")]
    out[counts] = out[counts].fillna(0).astype(int)
    return out.astype({c: object for c in out.columns if c not in counts}).where(out.notna(), None)


def kpi_bases(con, flt: EventFilter, as_of: pd.Timestamp | None = None) -> dict[str, int]:
    """How many cases each rate or mean KPI of :func:`kpis` is taken over (its denominator): a share of a
    handful of cases is read with its interval (``metrics.wilson_interval``), not compared as it stands."""
    row = _one_row(con, _over_events(con, flt, as_of, {k.key: k.base for k in KPIS if k.base}))
    return {key: int(v) for key, v in row.items()}


def previous_period(flt: EventFilter) -> EventFilter:
    """The period of the same length just before ``flt`` (环比), other conditions unchanged."""
    days = (flt.end - flt.start).days + 1
    return dataclasses.replace(flt, start=flt.start - dt.timedelta(days=days), end=flt.start - dt.timedelta(days=1))


EARLIEST = dt.date(2000, 1, 1)  # before any record (the loader quarantines earlier times)


def registered_by(flt: EventFilter, as_of: pd.Timestamp) -> EventFilter:
    """The filter's categories, sources and area over every registration day up to ``as_of`` (its period
    dropped): the cases a backlog at ``as_of`` reads, since a case is open from 登记受理 until it is closed."""
    return dataclasses.replace(flt, start=EARLIEST, end=as_of.date() + dt.timedelta(days=1))


def daily_series(con, flt: EventFilter) -> pd.DataFrame:
    """Per day of the filter's period: cases registered that day, and the backlog at the day's end: cases open
    (registered by then and not closed by then) and, of them, those past their due time. The backlog counts
    every case of the filter's categories, sources and area whatever its registration day, since a case is
    open from 登记受理 to 案结事了, not only on the day it came in. Closing uses the export's close time; a case
    shown open again by a later export (重开) counts as closed from its earlier close time until the load that
    showed it open (onemap.metrics.CLOSED_TIME, by calendar day).

    Computed from four counts per calendar day and running sums (no day × case join): open(d) = registered by
    d − closed by d; overdue(d) = (due by d) − (closed by d and due by d); a reopening counts as an un-closing
    on its day. A case closed before the period adds and takes away the same before it, so only the cases still
    open at its start, or registered in it, are read."""
    where, params = dataclasses.replace(flt, start=EARLIEST).where()
    params["first"] = flt.start
    return con.execute(f"""
        WITH ev AS (
            SELECT CAST(reported_at AS DATE) AS r,
                   CASE WHEN {closed_status()} THEN CAST(closed_at AS DATE) END AS c,
                   CAST(first_closed_at AS DATE) AS f, CAST(reopened_at AS DATE) AS o,
                   greatest(CAST(due_at AS DATE), CAST(reported_at AS DATE)) AS u
            FROM core.events WHERE {where}
              AND (NOT {closed_status()} OR closed_at IS NULL OR closed_at >= CAST($first AS TIMESTAMPTZ))),
        moves AS (
            SELECT r AS day, 1 AS reg, 0 AS closed, 0 AS due, 0 AS due_closed FROM ev
            UNION ALL SELECT c, 0, 1, 0, 0 FROM ev WHERE c IS NOT NULL
            UNION ALL SELECT u, 0, 0, 1, 0 FROM ev WHERE u IS NOT NULL
            UNION ALL SELECT greatest(c, u), 0, 0, 0, 1 FROM ev WHERE c IS NOT NULL AND u IS NOT NULL
            -- closed from the first close time until the reopening (nothing when both fall on one day)
            UNION ALL SELECT f, 0, 1, 0, 0 FROM ev WHERE f < o
            UNION ALL SELECT o, 0, -1, 0, 0 FROM ev WHERE f < o
            UNION ALL SELECT greatest(f, u), 0, 0, 0, 1 FROM ev WHERE f < o AND u IS NOT NULL
            UNION ALL SELECT greatest(o, u), 0, 0, 0, -1 FROM ev WHERE f < o AND u IS NOT NULL),
        days AS (SELECT CAST(unnest(generate_series(CAST($first AS DATE), CAST($end AS DATE), INTERVAL 1 DAY)) AS DATE)
                 AS day),
        per_day AS (
            SELECT day, sum(reg) AS reg, sum(closed) AS closed, sum(due) AS due, sum(due_closed) AS due_closed
            FROM (SELECT * FROM moves WHERE day <= $end UNION ALL SELECT day, 0, 0, 0, 0 FROM days) GROUP BY day),
        running AS (
            SELECT day, reg, sum(reg - closed) OVER w AS open, sum(due - due_closed) OVER w AS overdue
            FROM per_day WINDOW w AS (ORDER BY day))
        SELECT day, CAST(reg AS BIGINT) AS registered, CAST(open AS BIGINT) AS open, CAST(overdue AS BIGINT) AS overdue
        FROM running WHERE day >= $first ORDER BY day""", params).df()


# 积案: how long the cases open at the reference time have been open (whole days since registration), by band
AGE_BANDS: tuple[tuple[str, str, int | None], ...] = (
    ("days_0_7", "7天内", 7), ("days_8_30", "8–30天", 30), ("days_31_90", "31–90天", 90), ("days_over_90", "90天以上", None))
UNRECORDED_STAGE = "阶段未记录"  # open at the reference time, but no export loaded by then showed it open
# an event that may be listed one by one (never a confidential one; a sensitive-flag one only when $sensitive,
# the flags withheld from this viewer, is empty: a handling role)
LISTABLE = "NOT confidential AND NOT list_has_any(coalesce(flags, []), $sensitive)"
UNPLACED = "未定位"  # cases of the scope that their export placed in no area of the level asked for
BACKLOG_BY = ("stage", "area")
STAGE_TIME_DAYS = 90  # stage_times: the stays in a stage that ended in the last 90 days


# CTEs over a CTE ``ev`` of open cases (event_id, status): ``staged`` adds each case's ``stage`` at ``$as_of`` — the
# status of the latest export loaded by then, or of its first export if it was first loaded later; a case open
# at ``$as_of`` by its close time whose exports so far all say closed is at UNRECORDED_STAGE
STAGED = f"""
        hist AS (
            SELECT event_id, arg_max(status, observed_at) FILTER (WHERE observed_at <= $as_of) AS then_status,
                   arg_min(status, observed_at) AS first_status
            FROM core.event_status_history WHERE event_id IN (SELECT event_id FROM ev) GROUP BY event_id),
        staged AS (
            SELECT ev.*, CASE WHEN {closed_status('coalesce(then_status, first_status, status)')}
                              THEN '{UNRECORDED_STAGE}' ELSE coalesce(then_status, first_status, status) END AS stage
            FROM ev LEFT JOIN hist USING (event_id))"""


def stage_times(con, flt: EventFilter, as_of: pd.Timestamp | None = None, days: int = STAGE_TIME_DAYS
                ) -> pd.DataFrame:
    """How long cases stay in each stage of the flow: every stay in an open stage that ended (the case moved on or
    closed) in the ``days`` up to ``as_of``, of the filter's categories, sources and area, whatever its
    registration day — ``stays``, ``median_days``, ``p90_days`` — beside ``now``, the cases in that stage at
    ``as_of`` (as :func:`backlog` counts them). A stay runs from the first record of the stage to the next record
    of another status (consecutive records of one status are one stay). Read from the status history: exact
    with case-flow logs loaded (pipelines.flow), coarse with exports only (a stay then runs from one export to
    the next that shows a change)."""
    as_of = as_of if as_of is not None else reference_time(con)
    where, params = registered_by(flt, as_of).where()
    params.update({"as_of": as_of, "since": as_of - pd.Timedelta(days=int(days))})
    frame = con.execute(f"""
        WITH ev AS (SELECT event_id FROM core.events WHERE {where}),
        h AS (SELECT event_id, status, observed_at,
                     lag(status) OVER (PARTITION BY event_id ORDER BY observed_at, status) AS before
              FROM core.event_status_history WHERE observed_at <= $as_of AND event_id IN (SELECT event_id FROM ev)),
        stays AS (SELECT status, observed_at,
                         lead(observed_at) OVER (PARTITION BY event_id ORDER BY observed_at, status) AS ended
                  FROM h WHERE before IS DISTINCT FROM status)
        SELECT status AS code, count(*) AS stays,
               median(epoch(ended - observed_at) / 86400.0) AS median_days,
               quantile_cont(epoch(ended - observed_at) / 86400.0, 0.9) AS p90_days
        FROM stays WHERE ended IS NOT NULL AND ended > $since AND NOT {closed_status('status')}
        GROUP BY status""", params).df().set_index("code")
    now = backlog(con, flt, as_of, by="stage").set_index("code")["open"]
    order = [s.name_zh for s in STAGES if not s.closed]
    out = pd.DataFrame({"code": order, "name": order})
    out["stays"] = [int(frame["stays"].get(c, 0)) for c in order]
    out["median_days"] = [frame["median_days"].get(c) for c in order]
    out["p90_days"] = [frame["p90_days"].get(c) for c in order]
    out["now"] = [int(now.get(c, 0)) for c in order]
    return out


def backlog(con, flt: EventFilter, as_of: pd.Timestamp | None = None, by: str = "stage", total: bool = False
            ) -> pd.DataFrame:
    """积案: the cases open at ``as_of`` (default the last build) of the filter's categories, sources and area, whatever
    their registration day (the filter's period is not used: a case is open from 登记受理 to 案结事了), per stage
    of the flow (``by="stage"``, the open stages in flow order) or per area one level below the filter's scope
    (``by="area"``, every such area, then those placed in none). Columns: code, name, open, one count per
    :data:`AGE_BANDS` (whole days open at ``as_of``), overdue (past their due time) and oldest_days; with
    ``total``, a last row 合计.

    A case's stage at ``as_of`` is the status of the latest export loaded by then (``core.event_status_history``);
    for a case first loaded after ``as_of``, the status of that first export. A case whose exports loaded by
    then all say it is closed, yet it was open at ``as_of`` by its close time (closed later, or reopened), is
    counted under :data:`UNRECORDED_STAGE`."""
    if by not in BACKLOG_BY:
        raise ValueError(f"backlog by {by!r}: one of {', '.join(BACKLOG_BY)}")
    as_of = as_of if as_of is not None else reference_time(con)
    where, params = registered_by(flt, as_of).where()
    params["as_of"] = as_of
    scope = flt.scope or COUNTY
    level = CHILD_LEVEL[scope.level]
    key = f"{level}_code" if by == "area" else "stage"
    lower = [-1, *(upper for _, _, upper in AGE_BANDS[:-1])]  # each band: above the last one's upper bound
    bands = ", ".join(f"count(*) FILTER (WHERE age > {lo}{'' if hi is None else f' AND age <= {hi}'}) AS {name}"
                      for (name, _, hi), lo in zip(AGE_BANDS, lower, strict=True))
    found = con.execute(f"""
        WITH ev AS (
            SELECT event_id, status, due_at, {level}_code,
                   CAST(floor(epoch($as_of - reported_at) / 86400) AS BIGINT) AS age
            FROM core.events WHERE {where} AND reported_at <= $as_of AND {OPEN}),
        {STAGED}
        SELECT {key} AS code, count(*) AS open, {bands},
               count(*) FILTER (WHERE due_at < $as_of) AS overdue, max(age) AS oldest_days
        FROM staged GROUP BY 1""", params).df()
    if by == "stage":
        order = [s.name_zh for s in STAGES if not s.closed] + [UNRECORDED_STAGE]
        rows = pd.DataFrame({"code": order, "name": order})
        extra = found[~found["code"].isin(order)]  # a status outside the flow (a newer vocabulary): kept, not lost
        rows = pd.concat([rows, pd.DataFrame({"code": extra["code"], "name": extra["code"]})], ignore_index=True)
    else:
        rows = child_areas(con, scope)
        if found["code"].isna().any():
            rows = pd.concat([rows, pd.DataFrame({"code": [None], "name": [UNPLACED]})], ignore_index=True)
    out = rows.merge(found, on="code", how="left")
    counts = ["open", *(name for name, _, _ in AGE_BANDS), "overdue"]
    out[counts] = out[counts].fillna(0).astype("int64")
    out["oldest_days"] = out["oldest_days"].astype("Int64")
    if by == "stage":  # the unrecorded stage only where it occurs
        out = out[(out["code"] != UNRECORDED_STAGE) | (out["open"] > 0)].reset_index(drop=True)
    if total:
        sums = {c: int(out[c].sum()) for c in counts}
        out = pd.concat([out, pd.DataFrame([{"code": "", "name": "合计", **sums,
                                              "oldest_days": out["oldest_days"].max()}])], ignore_index=True)
        out["oldest_days"] = out["oldest_days"].astype("Int64")
    return out


def reopened(con, flt: EventFilter, as_of: pd.Timestamp | None = None) -> int:
    """Cases shown open again (重开) by an export of the filter's period (the day of the reopening, up to
    ``as_of``), whatever their registration day: the 重开率 KPI is the period's own cases, and reads 0 % in a week
    whose reopenings were all of older cases."""
    as_of = as_of if as_of is not None else reference_time(con)
    where, params = registered_by(flt, as_of).where()
    params.update(as_of=as_of, day1=flt.start, day2=flt.end)
    return int(con.execute(
        f"""SELECT count(*) FROM core.events WHERE {where} AND reopened_at <= $as_of
            AND reopened_at >= CAST($day1 AS TIMESTAMPTZ)
            AND reopened_at < CAST($day2 AS TIMESTAMPTZ) + INTERVAL 1 DAY""", params).fetchone()[0])


YEAR = dt.timedelta(weeks=52)  # 同比: the same weekdays a year earlier (364 days), as the weekly brief compares


def year_earlier(flt: EventFilter) -> EventFilter:
    """The same period a year earlier (同比), on the same weekdays, other conditions unchanged."""
    return dataclasses.replace(flt, start=flt.start - YEAR, end=flt.end - YEAR)


def source_starts(con) -> dict[str, dt.date]:
    """The first day each source has data (a source added to the warehouse later, e.g. a 12345 hotline loaded
    from this month, begins then)."""
    return dict(con.execute("SELECT source, min(CAST(reported_at AS DATE)) FROM core.events GROUP BY 1").fetchall())


def late_sources(flt: EventFilter, earlier: EventFilter, starts: dict[str, dt.date]) -> list[str]:
    """The sources of ``flt`` (all, when it names none) whose data begins after ``earlier`` starts: an earlier
    period they do not cover whole cannot be compared with ``flt`` (a source added this month is a 同比 rise of
    its own size, not a change on the ground)."""
    return sorted(src for src, first in starts.items() if (not flt.sources or src in flt.sources)
                  and first > earlier.start)


def comparable(values: dict[str, float | None], flt: EventFilter, earlier: EventFilter,
               starts: dict[str, dt.date]) -> dict[str, float | None]:
    """``values`` (the KPIs of ``earlier``), or all None (shown —) when a source of ``flt`` began after ``earlier``
    started (:func:`late_sources`)."""
    return {k: None for k in values} if late_sources(flt, earlier, starts) else values


def kpis_compared(con, flt: EventFilter, as_of: pd.Timestamp | None = None, keys: Sequence[str] | None = None
                  ) -> tuple[dict[str, float | None], dict[str, float | None], dict[str, float | None]]:
    """KPIs of the period, of the period of the same length before it (环比) and of the same period a year earlier
    (同比). Each earlier period is measured as of the same lag (``as_of`` moved back by as much as the period),
    so a rate closed "by now" is not flattered by the older period's extra time to close."""
    as_of = as_of if as_of is not None else reference_time(con)
    before = previous_period(flt)
    # the lag from the time the data reaches, not from the build: a build two days after the last export would
    # otherwise give the older periods two more days of closures than the current one can have (环比 ▼ falsely)
    # counted from the end of the data's last day, as the brief measures each week at its end (a build at 00:00:55
    # and an export of 23:59 would otherwise compare with a week ending a minute apart from the brief's)
    lag = min(as_of, data_end(con).ceil("D"))
    earlier = lag - (flt.start - before.start)
    previous, year = kpis(con, before, earlier, keys), kpis(con, year_earlier(flt), lag - YEAR, keys)
    seen = changes_seen_from(con) if "reopened_rate" in previous else None  # read once, for all three
    starts = source_starts(con)
    return (blank_unseen(kpis(con, flt, as_of, keys), as_of, seen),
            comparable(blank_unseen(previous, earlier, seen), flt, before, starts),
            comparable(blank_unseen(year, lag - YEAR, seen), flt, year_earlier(flt), starts))


def changes_seen_from(con) -> pd.Timestamp | None:
    """When a later export first changed the status of a record already loaded: before then the warehouse could
    see no case reopened (重开), nor any other change, only each record as first loaded. None: not yet."""
    row = con.execute("SELECT min(observed_at) FROM (SELECT observed_at, row_number() OVER (PARTITION BY event_id "
                      "ORDER BY observed_at) AS k FROM core.event_status_history) WHERE k > 1").fetchall()[0][0]
    return None if row is None else pd.Timestamp(row)


def blank_unseen(values: dict[str, float | None], as_of: pd.Timestamp, seen: pd.Timestamp | None
                 ) -> dict[str, float | None]:
    """``values`` (KPIs as of ``as_of``) with 重开率 blank (None, shown —) where no export had yet shown a change
    of status by ``as_of`` (``seen``: :func:`changes_seen_from`): it reads 0 % there because reopenings could
    not be seen, not because none happened."""
    if values.get("reopened_rate") is None:
        return values
    return values if seen is not None and seen <= as_of else {**values, "reopened_rate": None}


# top-level product category of a code: MDxx for the mediation list, the two-letter domain for grid events
TOP_CATEGORY = "CASE WHEN category_code LIKE 'MD%' THEN left(category_code, 4) ELSE left(category_code, 2) END"


def category_counts(con, flt: EventFilter) -> pd.Series:
    """Events per top-level product category (onemap.categories.TOP_LEVEL_CODES) for the filter."""
    where, params = flt.where()
    rows = con.execute(f"SELECT {TOP_CATEGORY} AS code, count(*) FROM core.events WHERE {where} GROUP BY 1",
                       params).fetchall()
    return pd.Series({code: n for code, n in rows}, dtype="int64").rename("events")


def overdue_cases(con, as_of: pd.Timestamp, limit: int = 20, scope: Scope | None = None) -> tuple[pd.DataFrame, int]:
    """Open cases past their due time at ``as_of`` (督办) in ``scope``, longest overdue first, whatever their
    registration date; confidential cases and cases with a sensitive flag are counted but never listed.
    Each case has its ``status`` now and its ``stage`` at ``as_of`` (:data:`STAGED`). Returns (cases, how many
    in all)."""
    in_scope, params = (scope or COUNTY).clause()
    params["as_of"] = as_of
    total = con.execute(f"SELECT count(*) FROM core.events WHERE {OVERDUE} AND {in_scope}", params).fetchall()[0][0]
    params.update({"limit": int(limit), "sensitive": SENSITIVE_FLAGS})
    frame = con.execute(f"""
        WITH ev AS (
            SELECT event_id, source, category_code, town_code, village_code, CAST(reported_at AS DATE) AS reported,
                   due_at, CAST(due_at AS DATE) AS due, date_diff('day', due_at, $as_of) AS days_overdue, status
            FROM core.events WHERE {OVERDUE} AND {in_scope} AND {LISTABLE}
            ORDER BY due_at, event_id LIMIT $limit),
        {STAGED}
        SELECT * EXCLUDE (due_at) FROM staged ORDER BY due_at, event_id""", params).df()
    return frame, int(total)


def area_names(con) -> dict[str, str]:
    """Code -> name of every area of the current boundary vintage."""
    return dict(con.execute(f"SELECT code, name FROM core.areas WHERE vintage = {CURRENT_VINTAGE}").fetchall())


def cell_home_sql(resolution: int) -> str:
    """SQL for each H3 cell's home at a resolution: (cell, town_code, village_code, n), the village holding most
    of the cell's placed events (n of them; of villages tied, the lowest code, so that a rebuild names it alike). The build stores it in hex.cell_home; :func:`_cell_homes` reads
    that, or runs this on a warehouse not yet built."""
    parent = h3_parent_sql("h3_cell", resolution)
    return f"""
        SELECT cell, home.town AS town_code, home.village AS village_code, n FROM (
            SELECT cell, first({{'town': town_code, 'village': village_code}} ORDER BY n DESC, village_code) AS home,
                   max(n) AS n FROM (
                SELECT {parent} AS cell, town_code, village_code, count(*) AS n FROM core.events
                WHERE h3_cell IS NOT NULL AND village_code IS NOT NULL GROUP BY ALL)
            GROUP BY cell)"""


def _cell_homes(con, cells: Sequence[int], resolution: int, k: int) -> dict[int, tuple[str, str]]:
    """(town code, village code) holding most of the placed events in each cell's k-ring disk: the home of the
    disk's cell whose home village has the most events there."""
    from h3.api import basic_int as h3i

    if not len(cells):
        return {}
    pairs = [(c, m) for c in cells for m in h3i.grid_disk(c, k)]
    stored = con.execute("SELECT count(*) > 0 FROM hex.cell_home WHERE resolution = ?", [int(resolution)]
                         ).fetchall()[0][0]
    homes = (f"(SELECT cell, town_code, village_code, n FROM hex.cell_home WHERE resolution = {int(resolution)})"
             if stored else f"({cell_home_sql(resolution)})")
    rows = con.execute(f"""
        WITH disk AS (SELECT unnest($centre)::UBIGINT AS centre, unnest($member)::UBIGINT AS cell)
        SELECT d.centre, first(coalesce(h.town_code, '') || '|' || h.village_code ORDER BY h.n DESC, h.village_code)
        FROM disk d JOIN {homes} h USING (cell) GROUP BY d.centre""",
                       {"centre": [c for c, _ in pairs], "member": [m for _, m in pairs]}).fetchall()
    return {int(cell): tuple(codes.split("|", 1)) for cell, codes in rows}


def cell_homes(con, cells: Sequence[str], resolution: int) -> dict[str, tuple[str, str]]:
    """(town code, village code) each H3 cell (hex string) belongs to: the village holding most of its placed
    events (``hex.cell_home``); a cell with none, that of its k = 1 disk. The one rule for "which village is this
    cell": it decides who sees a cell (:func:`cells_in_scope`) and what an alert on it is named
    (:func:`cell_places`). Cells with no placed event in their disk either are left out."""
    wanted = list(dict.fromkeys(int(c, 16) for c in cells))
    homes = _cell_homes(con, wanted, resolution, 0)
    homes.update(_cell_homes(con, [c for c in wanted if c not in homes], resolution, 1))
    return {format(cell, "x"): home for cell, home in homes.items()}


def cell_places(con, cells: Sequence[str], resolution: int, scope: Scope | None = None) -> dict[str, str]:
    """'town + village' names of the H3 cells given as hex strings, by :func:`cell_homes`: a cell on a boundary
    is named for where its events are, not for its centre, and for the area whose users see it. With a town or
    village ``scope``, a cell whose home is outside it (a hex on its edge, holding a few of its events) is named
    '<scope>（边缘）', never for the neighbouring area."""
    homes = cell_homes(con, cells, resolution)
    names = area_names(con) if homes else {}
    part = 0 if scope is None or scope.level == "town" else 1
    return {cell: names.get(town, "") + names.get(village, "")
            if not narrow(scope) or (town, village)[part] == scope.code else f"{scope.name}（边缘）"
            for cell, (town, village) in homes.items()}


def cells_in_scope(con, cells: Sequence[str], resolution: int, scope: Scope | None) -> set[str]:
    """The cells (hex strings) that belong to ``scope`` by :func:`cell_homes`. County-wide results of the models
    (alerts, hot spots) are shown to a town or village user for these cells."""
    if not narrow(scope):
        return set(cells)
    part = 0 if scope.level == "town" else 1
    return {cell for cell, home in cell_homes(con, cells, resolution).items() if home[part] == scope.code}


def cell_area_names(con, cells: pd.Series, level: str) -> pd.Series:
    """The name of the town or village (``level``) each H3 cell (hex string, any resolution) belongs to by
    :func:`cell_homes`; "—" for a cell with no placed event around it."""
    import h3

    part = 0 if level == "town" else 1
    names = area_names(con)
    out = pd.Series("—", index=cells.index, dtype=object)
    for resolution, group in cells.groupby(cells.map(h3.get_resolution)):
        homes = cell_homes(con, list(group), int(resolution))
        out[group.index] = [names.get(homes[c][part], "—") if c in homes else "—" for c in group]
    return out


def scope_shape(con, scope: Scope | None):
    """The scope's boundary (shapely, WGS84) in the current vintage; the county's for the whole county."""
    import shapely

    if not narrow(scope):
        rows = con.execute(f"SELECT geometry_wkb FROM core.areas WHERE level = 'county' AND vintage = "
                           f"{CURRENT_VINTAGE}").fetchall()
    else:
        rows = con.execute(f"SELECT geometry_wkb FROM core.areas WHERE code = ? AND vintage = {CURRENT_VINTAGE}",
                           [scope.code]).fetchall()
    if not rows:
        raise ValueError(f"no boundary for area {scope.code} in the current vintage")
    return shapely.from_wkb(bytes(rows[0][0]))


def child_areas(con, scope: Scope | None) -> pd.DataFrame:
    """The areas one level below ``scope`` (the towns of the county, the villages of a town, the grids of a
    village), with code and name, for per-area tables."""
    scope = scope or COUNTY
    return con.execute(f"SELECT code, name FROM core.areas WHERE level = $level AND vintage = {CURRENT_VINTAGE} "
                       "AND ($whole OR parent_code = $code) ORDER BY code",
                       {"level": CHILD_LEVEL[scope.level], "whole": scope.whole, "code": scope.code}).df()


def boundaries_synthetic(con) -> bool:
    """Whether the current boundaries are synthetic (the demo county), not a deployment's own."""
    row = con.execute(f"SELECT bool_or(synthetic) FROM core.areas WHERE vintage = {CURRENT_VINTAGE}").fetchall()
    return bool(row and row[0][0])


def is_built(con) -> bool:
    """Whether `onemap build` has run on this warehouse (aggregates, scores and the boundaries are there)."""
    return bool(con.execute("SELECT count(*) FROM meta.builds").fetchall()[0][0])


def data_end(con) -> pd.Timestamp:
    """The latest time the loaded exports speak of (an event reported or closed), at most the build's
    :func:`reference_time`: what "数据截至" means. A build some time after the last export knows nothing of what
    happened since; comparisons with earlier periods are lagged from here."""
    as_of = reference_time(con)
    row = con.execute("SELECT max(greatest(reported_at, coalesce(closed_at, reported_at))) FROM core.events "
                      "WHERE reported_at <= $as_of", {"as_of": as_of}).fetchall()[0][0]
    return as_of if row is None else min(as_of, pd.Timestamp(row).tz_convert(as_of.tz) if as_of.tz else pd.Timestamp(row))


def reference_time(con) -> pd.Timestamp:
    """The as-of time of the latest build (falls back to now when nothing was built yet)."""
    rows = con.execute("SELECT max(as_of) FROM meta.builds").fetchall()
    return pd.Timestamp(rows[0][0]) if rows and rows[0][0] is not None else pd.Timestamp.now(tz="Asia/Shanghai")


def hex_counts(con, flt: EventFilter, resolution: int, min_count: int = 0, sensitive_min: int = 0,
               measure: str = "registered", as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Events per H3 cell (as hex strings) at a resolution, for the filter; with ``measure`` (onemap.metrics
    .MAP_MEASURES) only those open / overdue at ``as_of`` (default the last build). Left out here, on the server:
    with ``min_count``, cells with fewer events (public screens); with ``sensitive_min``, events with a
    sensitive flag in a cell that holds fewer of them than that (they sit at household points: a
    non-handling viewer sees them only as counts of three or more, product.md). A town or village
    scope and the open / overdue measures are counted from core.events, the rest from the hex.cell_day
    aggregate (which carries the sensitive events' count as ``n_sensitive``). The backlog measure (积案) counts
    the cases open at ``as_of`` whatever their registration day: :func:`backlog_cells` at that one time."""
    as_of = as_of if as_of is not None else reference_time(con)
    if map_measure(measure).every_registration:
        return backlog_cells(con, flt, resolution, [as_of], min_count, sensitive_min)[["cell", "n"]]
    if narrow(flt.scope) or map_measure(measure).where:
        where, params = _measured(flt, measure, as_of)
        params["sensitive"] = SENSITIVE_FLAGS
        parent = h3_parent_sql("h3_cell", resolution)
        counted = (f"SELECT {parent} AS cell, count(*) AS n, count(*) FILTER "
                   "(WHERE list_has_any(coalesce(flags, []), $sensitive)) AS s "
                   f"FROM core.events WHERE h3_cell IS NOT NULL AND {where} GROUP BY 1")
    else:
        where, params = flt.where(day_expr="day", area_codes=False)
        params["res"] = int(resolution)
        counted = (f"SELECT cell, sum(n) AS n, sum(n_sensitive) AS s FROM hex.cell_day "
                   f"WHERE resolution = $res AND {where} GROUP BY cell")
    return _shown_counts(con, counted, params, min_count, sensitive_min)


def off_map(con, flt: EventFilter, measure: str = "registered", as_of: pd.Timestamp | None = None) -> int:
    """How many events of the filter (of the map ``measure``, as :func:`hex_counts` counts them) have no point and
    so no hex: placed by address to a town or village only, or to nothing. The map leaves them out; the KPIs and
    the area tables count them."""
    as_of = as_of if as_of is not None else reference_time(con)
    where, params = _measured(flt, measure, as_of)
    return int(con.execute(f"SELECT count(*) FROM core.events WHERE h3_cell IS NULL AND {where}",
                           params).fetchall()[0][0])


def _measured(flt: EventFilter, measure: str, as_of: pd.Timestamp) -> tuple[str, dict]:
    """SQL condition (and parameters) on core.events: the filter's events that the map ``measure`` counts at
    ``as_of`` — those registered in the period, those of them open or overdue then, or (积案) every case open
    then whatever its registration day."""
    m = map_measure(measure)
    if m.every_registration:
        flt = registered_by(flt, as_of)
    where, params = flt.where()
    if m.where:
        where += f" AND {m.where}" + (" AND reported_at <= $as_of" if m.every_registration else "")
        params["as_of"] = as_of
    return where, params


def _shown_counts(con, counted: str, params: dict, min_count: int, sensitive_min: int, keys: str = "") -> pd.DataFrame:
    """Run ``counted`` (SQL giving ``keys`` columns, cell, n events and s of them with a sensitive flag) and leave
    out what a viewer may not see (:func:`hex_counts`' ``min_count`` and ``sensitive_min``); cells as hex strings."""
    params = {**params, "min": max(int(min_count), 1), "smin": int(sensitive_min)}
    sql = (f"SELECT {keys}cell, n FROM (SELECT {keys}cell, (n - CASE WHEN s < $smin THEN s ELSE 0 END)::BIGINT AS n "
           f"FROM ({counted})) WHERE n >= $min ORDER BY {keys}cell")
    frame = con.execute(sql, params).df()
    frame["cell"] = hex_ids(frame["cell"])
    return frame


def backlog_steps(flt: EventFilter, as_of: pd.Timestamp, most: int = 31) -> list[pd.Timestamp]:
    """The times at which :func:`backlog_cells` counts the backlog over the filter's period: the end of each day
    (of each week, or of longer even steps for a long period, at most ``most``), ending with the period's last day
    and never after ``as_of`` (the last build)."""
    days = (flt.end - flt.start).days + 1
    step = 1 if days <= 31 else 7 if days <= 7 * most else -(-days // most)
    ends = [flt.end - dt.timedelta(days=i) for i in range(0, days, step)][::-1]
    tz = as_of.tz or "Asia/Shanghai"
    return sorted({min(pd.Timestamp(d + dt.timedelta(days=1), tz=tz), as_of) for d in ends})


def backlog_cells(con, flt: EventFilter, resolution: int, as_ofs: Sequence[pd.Timestamp], min_count: int = 0,
                  sensitive_min: int = 0) -> pd.DataFrame:
    """积案 per H3 cell at each of ``as_ofs``: the cases of the filter's categories, sources and area that are open at
    that time, whatever their registration day (columns as_of, cell, n), with :func:`hex_counts`' rules on what
    is left out. The map's backlog playback: a case counts at every step from 登记受理 until it is closed."""
    if not as_ofs:
        return pd.DataFrame({"as_of": [], "cell": [], "n": []})
    last = max(as_ofs)
    where, params = registered_by(flt, last).where()
    params.update({"steps": list(as_ofs), "first": min(as_ofs), "sensitive": SENSITIVE_FLAGS})
    open_then = OPEN.replace("$as_of", "s.as_of")  # the one definition of open, at each step's time
    parent = h3_parent_sql("e.h3_cell", resolution)
    counted = f"""
        SELECT s.as_of, {parent} AS cell, count(*) AS n,
               count(*) FILTER (WHERE list_has_any(coalesce(e.flags, []), $sensitive)) AS s
        FROM (SELECT * FROM core.events WHERE h3_cell IS NOT NULL AND {where}
                AND NOT ({closed_status()} AND closed_at <= $first)) e
        JOIN (SELECT unnest($steps) AS as_of) s ON e.reported_at <= s.as_of AND {open_then}
        GROUP BY ALL"""
    return _shown_counts(con, counted, params, min_count, sensitive_min, keys="as_of, ")


def _area_rows(con, columns: str, level: str, codes: Sequence[str] | None, within: str | None = None) -> list[tuple]:
    """``columns`` of the current vintage's areas of one level (only ``codes``, when given; only those inside the
    area coded ``within``, when given: area codes extend their parent's), by code."""
    return con.execute(f"SELECT {columns} FROM core.areas WHERE level = $level AND vintage = {CURRENT_VINTAGE} "
                       "AND ($codes IS NULL OR list_contains($codes, code)) "
                       "AND ($within IS NULL OR starts_with(code, $within)) ORDER BY code",
                       {"level": level, "codes": None if codes is None else list(codes), "within": within}).fetchall()


def area_geojson(con, level: str, codes: Sequence[str] | None = None, within: str | None = None) -> dict:
    """Boundaries of one area level (only ``codes``, when given; only inside the area coded ``within``) as a
    GeoJSON FeatureCollection (WGS84), id = code."""
    import shapely

    if level not in ("county", "town", "village", "grid"):
        raise ValueError(f"unknown area level {level!r}")
    rows = _area_rows(con, "code, name, synthetic, geometry_wkb", level, codes, within)
    features = []
    for code, name, synthetic, wkb in rows:
        geom = shapely.from_wkb(bytes(wkb))
        features.append({"type": "Feature", "id": code, "properties": {"code": code, "name": name,
                                                                        "synthetic": bool(synthetic)},
                         "geometry": json.loads(shapely.to_geojson(shapely.set_precision(geom, 1e-5)))})
    return {"type": "FeatureCollection", "features": features}


def map_layers(con, scope: Scope | None, grids: bool = False) -> tuple[dict[str, dict], pd.DataFrame]:
    """The outlines of a map of ``scope`` (default the county) and the names on it: its own outline ("county"),
    the areas one level below it ("town"; for a village, its grids, under "grid" when ``grids``) with their
    names, and, with ``grids``, every grid inside it. Nothing of the areas around: the brief's map and a town or
    village user's map frame their own area."""
    scope = scope or COUNTY
    child = CHILD_LEVEL[scope.level]
    within = None if scope.whole else scope.code
    layers = {"county": area_geojson(con, scope.level, None if scope.whole else [scope.code])}
    layers["grid" if grids and child == "grid" else "town"] = area_geojson(con, child, within=within)
    if grids and child != "grid":
        layers["grid"] = area_geojson(con, "grid", within=within)
    return layers, area_labels(con, child, within=within)


def area_labels(con, level: str, codes: Sequence[str] | None = None, within: str | None = None) -> pd.DataFrame:
    """Name and a label point (inside the shape) of each area of one level (only ``codes``, when given; only inside
    the area coded ``within``)."""
    import shapely

    rows = _area_rows(con, "code, name, geometry_wkb", level, codes, within)
    pts = [shapely.point_on_surface(shapely.from_wkb(bytes(w))) for _, _, w in rows]
    return pd.DataFrame({"code": [r[0] for r in rows], "name": [r[1] for r in rows],
                         "lng": [p.x for p in pts], "lat": [p.y for p in pts]})


def _in_cell(flt: EventFilter, cell_hex: str, resolution: int, handler: bool, measure: str,
             as_of: pd.Timestamp) -> tuple[str, dict, str]:
    """(where, params, listable): the events of one hex that the map ``measure`` counts (:func:`_measured`), and
    the condition for listing one of them."""
    where, params = _measured(flt, measure, as_of)
    params.update({"cell": int(cell_hex, 16), "sensitive": [] if handler else SENSITIVE_FLAGS})
    where = f"h3_cell IS NOT NULL AND {h3_parent_sql('h3_cell', resolution)} = $cell AND {where}"
    return where, params, LISTABLE


# the order a hex's list follows per map measure: the newest first; for the burden, the longest waiting first
CELL_ORDER = {"registered": "reported_at DESC", "open": "reported_at", "backlog": "reported_at",
              "overdue": "due_at, reported_at"}


def events_in_cell(con, flt: EventFilter, cell_hex: str, resolution: int, limit: int = 200,
                   handler: bool = False, measure: str = "registered", as_of: pd.Timestamp | None = None
                   ) -> pd.DataFrame:
    """The events behind one hex (redacted fields only) that the map's ``measure`` counts there at ``as_of``
    (default the last build), at most ``limit``: the newest first, or for open and overdue cases the longest
    waiting first, each with ``overdue_days`` (days past its due time, if overdue). Confidential events are
    never listed one by one, and events with a sensitive flag only to a handling role (``handler``): elsewhere
    they count only in the aggregates (:func:`cell_event_counts`)."""
    as_of = as_of if as_of is not None else reference_time(con)
    where, params, listable = _in_cell(flt, cell_hex, resolution, handler, measure, as_of)
    params.update({"limit": int(limit), "as_of": as_of})
    return con.execute(
        f"SELECT strftime(reported_at, '%Y-%m-%d %H:%M') AS reported, source, category_code, status, "
        f"summary_redacted, CASE WHEN {OVERDUE} THEN date_diff('day', due_at, $as_of) END AS overdue_days "
        f"FROM core.events WHERE {where} AND {listable} "
        f"ORDER BY {CELL_ORDER[map_measure(measure).key]} LIMIT $limit", params).df()


def cell_event_counts(con, flt: EventFilter, cell_hex: str, resolution: int, handler: bool = False,
                      measure: str = "registered", as_of: pd.Timestamp | None = None) -> dict:
    """How many of the events of one hex that ``measure`` counts: ``listable`` (what :func:`events_in_cell`
    lists, before its limit) and ``hidden`` (counted on the map, never listed to this viewer)."""
    as_of = as_of if as_of is not None else reference_time(con)
    where, params, listable = _in_cell(flt, cell_hex, resolution, handler, measure, as_of)
    n, shown = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {listable}) FROM core.events WHERE {where}",
                           params).fetchall()[0]
    return {"listable": int(shown), "hidden": int(n - shown)}


def sources_present(con) -> Sequence[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT source FROM core.events ORDER BY 1").fetchall()]


HOTSPOT_COLUMNS = ("cell", "pattern", "pattern_zh", "z", "p", "significant", "count")


def hotspot_cells(con, resolution: int, scope: Scope | None = None) -> pd.DataFrame:
    """Latest emerging-hotspot classes per cell (cells with no pattern are left out); with a town or village
    ``scope``, only its cells (:func:`cells_in_scope`)."""
    frame = con.execute(
        f"SELECT {', '.join(HOTSPOT_COLUMNS)} FROM scores.hotspots "
        "WHERE resolution = ? AND pattern <> 'no_pattern' ORDER BY z DESC", [int(resolution)]).df()
    return classed_cells(con, frame, resolution, scope)



def classed_cells(con, frame: pd.DataFrame, resolution: int, scope: Scope | None = None) -> pd.DataFrame:
    """The cells of a hot spot table (``HOTSPOT_COLUMNS``, cells as UBIGINT) that have a class, strongest first,
    as hex ids; with a town or village ``scope``, only its cells (:func:`cells_in_scope`). The stored classes
    (:func:`hotspot_cells`) and those a past week's brief scores read the same way."""
    frame = frame[frame["pattern"] != "no_pattern"].sort_values("z", ascending=False, kind="stable")
    frame = frame.assign(cell=hex_ids(frame["cell"]))[list(HOTSPOT_COLUMNS)]
    if narrow(scope):
        frame = frame[frame["cell"].isin(cells_in_scope(con, frame["cell"], resolution, scope))]
    return frame.reset_index(drop=True)


def alert_spans(con) -> list[tuple[dt.date, dt.date]]:
    """The days on which scored alert windows end, as (first, last) spans, oldest first: each build scores the
    last days of its data, whether or not an alert fires, and keeps the alerts of earlier builds before that
    (a run recorded before spans were stored counts by its alerts' days)."""
    rows = con.execute("""
        SELECT coalesce(CAST(json_extract_string(r.params, '$.span_from') AS DATE), min(a.window_end)) AS s,
               coalesce(CAST(json_extract_string(r.params, '$.span_to') AS DATE), max(a.window_end)) AS e
        FROM meta.model_runs r LEFT JOIN scores.alerts a USING (run_id)
        WHERE r.model = 'unusual_now' GROUP BY r.run_id, r.params ORDER BY s""").fetchall()
    return [(s, e) for s, e in rows if s is not None]


def alerts_scored(con, day: dt.date) -> bool:
    """Whether alert windows ending on ``day`` were scored (so that no alert means none was found)."""
    return bool(days_scored(con, [day]))


def days_scored(con, days: Sequence[dt.date]) -> list[dt.date]:
    """Those of ``days`` on which alert windows were scored (:func:`alert_spans`, read once)."""
    spans = alert_spans(con)
    return [d for d in days if any(s <= d <= e for s, e in spans)]


def scored_through(con) -> dict[str, dt.date | None]:
    """The period the stored scores cover: the first and last day on which scored alert windows end
    (``alerts_from``, ``alerts_to``; see :func:`alert_spans`) and the last day of the hot spot slices
    (``hotspots_to``)."""
    spans = alert_spans(con)
    h = con.execute("SELECT max(slice_end) FROM scores.hotspots").fetchall()[0][0]
    if not spans:
        return {"alerts_from": None, "alerts_to": None, "hotspots_to": h}
    return {"alerts_from": spans[0][0], "alerts_to": max(e for _, e in spans), "hotspots_to": h}


def hotspot_resolutions(con) -> list[int]:
    return [r[0] for r in con.execute("SELECT DISTINCT resolution FROM scores.hotspots ORDER BY 1").fetchall()]


ALERT_FIELDS = ("window_end", "window_days", "kind", "place", "cell", "n_cells", "category_code", "observed",
                "expected", "ratio", "score", "q_value", "family", "sentence_zh", "episode_start")

#: one alert per window and day: a spike of Monday is in the 7-day windows ending Monday to Sunday, each scored
#: by its day's build. An episode (一起异常) is a run of alerts on one place (cell or neighbourhood centre) and
#: window length on consecutive days, whatever the test that raised each day's (the cell's total one day, its
#: driving category the next); ramps (their window is their run so far, so any length) make episodes of their
#: own. ``episode_start`` is the window end of its first alert, read over all stored alerts whatever ``since``
_EPISODES = """
    WITH keyed AS (
        SELECT *, CASE WHEN kind = 'ramp' THEN 0 ELSE window_days END AS span_key,
               kind = 'ramp' AS is_ramp FROM scores.alerts),
    runs AS (
        SELECT *, window_end - CAST(dense_rank() OVER (PARTITION BY is_ramp, resolution, cell, span_key
                                                       ORDER BY window_end) AS INTEGER) AS run
        FROM keyed)
    SELECT *, strftime(min(window_end) OVER (PARTITION BY is_ramp, resolution, cell, span_key, run),
                       '%Y-%m-%d') AS episode_start
    FROM runs"""


def alert_sources_left_out(con) -> list[str]:
    """The sources the latest alert scoring left out as too young for its model (pipelines.build.score_alerts)."""
    rows = con.execute("SELECT params FROM meta.model_runs WHERE model = 'unusual_now' ORDER BY ran_at DESC LIMIT 1"
                       ).fetchall()
    return list(json.loads(rows[0][0]).get("sources_left_out", [])) if rows else []


def episode_count(alerts: pd.DataFrame) -> int:
    """How many episodes (see ``_EPISODES``) the rows of :func:`alerts` belong to."""
    key = alerts[["cell", "episode_start"]].assign(ramp=alerts["kind"] == "ramp",
                                                   span=alerts["window_days"].where(alerts["kind"] != "ramp", 0))
    return len(key.drop_duplicates())


def alerts(con, since: dt.date | None = None, window_days: int | None = None, limit: int | None = None, *,
           kind: str | None = None, with_ramps: bool = False, scope: Scope | None = None) -> pd.DataFrame:
    """Stored "unusual now" alerts, newest window first, strongest first within a window. ``kind``: only
    cell / neighbourhood / category / ramp alerts; ``with_ramps``: ramp alerts (whose window is their
    run, of any length) are kept whatever ``window_days`` asks for; ``scope``: only alerts on cells of a town
    or village (:func:`cells_in_scope`; a neighbourhood alert by its centre cell)."""
    clauses, params = ["TRUE"], {}
    if since is not None:
        clauses.append("window_end >= $since")
        params["since"] = since
    if window_days is not None:
        clauses.append("(window_days = $days OR kind = 'ramp')" if with_ramps else "window_days = $days")
        params["days"] = int(window_days)
    if kind is not None:
        clauses.append("kind = $kind")
        params["kind"] = str(kind)
    sql = (f"SELECT {', '.join(ALERT_FIELDS)}, resolution FROM ({_EPISODES}) WHERE {' AND '.join(clauses)} "
           "ORDER BY window_end DESC, score DESC")
    if limit is not None and not narrow(scope):
        sql += " LIMIT $limit"
        params["limit"] = int(limit)
    frame = con.execute(sql, params).df()
    frame["cell"] = hex_ids(frame["cell"])
    if narrow(scope):
        keep = set().union(*(cells_in_scope(con, group["cell"], res, scope) for res, group in frame.groupby("resolution")))
        frame = frame[frame["cell"].isin(keep)].head(limit).reset_index(drop=True)
    frame["window_end"] = pd.to_datetime(frame["window_end"]).dt.strftime("%Y-%m-%d")
    return frame[list(ALERT_FIELDS)]


def outlier_cells(con, limit: int = 5, scope: Scope | None = None) -> pd.DataFrame:
    """The cells whose recent profile (category mix, growth, unresolved share) is most unlike the others' — the
    secondary IsolationForest signal (``scores.outliers``, ``signal`` = secondary: no p-value, never an alert),
    highest first, with their place names; with a town or village ``scope``, its cells (:func:`cells_in_scope`)."""
    frame = con.execute("SELECT cell, resolution, outlier_score, n, growth, unresolved_share, signal "
                        "FROM scores.outliers ORDER BY outlier_score DESC, cell").df()
    if frame.empty:
        return frame.assign(place=pd.Series(dtype=object))
    frame["cell"] = hex_ids(frame["cell"])
    res = int(frame["resolution"].iloc[0])
    if narrow(scope):
        frame = frame[frame["cell"].isin(cells_in_scope(con, frame["cell"], res, scope))]
    frame = frame.head(int(limit)).reset_index(drop=True)
    places = cell_places(con, list(frame["cell"]), res, scope)
    return frame.assign(place=[places.get(c, "") for c in frame["cell"]])


def repeat_places(con, limit: int = 20, scope: Scope | None = None) -> pd.DataFrame:
    """Places (never people) with repeated incidents in the calibrated window, for follow-up visits (回访); with a
    town or village ``scope``, the places inside its boundary."""
    sql = ("SELECT place, grid_code, n_events, window_days, top_category, strftime(first_at, '%m-%d') AS first_day, "
           "strftime(last_at, '%m-%d') AS last_day, lng, lat FROM scores.repeat_places ORDER BY n_events DESC, last_at DESC")
    if not narrow(scope):
        return con.execute(sql + " LIMIT ?", [int(limit)]).df()
    import shapely

    frame = con.execute(sql).df()
    inside = shapely.contains_xy(scope_shape(con, scope), frame["lng"].to_numpy(), frame["lat"].to_numpy())
    return frame[inside].head(int(limit)).reset_index(drop=True)
