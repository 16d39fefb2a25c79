"""Case-flow logs (流转记录 / 办理过程): one row per step of a case — its record id, the status it entered, when.

A weekly export says where each case stands when it is taken; the status history then knows a case's stage only
at the moments exports were loaded, and a past day's backlog by stage shows the cases no export had seen open as
阶段未记录. Grid and 12345 platforms also export each case's steps with their times. Loaded with a profile of
``kind = "flow"`` (``onemap ingest grid 流转记录.csv --profile NAME``), each step is added to
``core.event_status_history`` at its own time: the stage of every case on every past day is then known, and a
step back from a closed status to an open one is a reopening (重开), dated so.

Each row is added, already held (the same case, status and time: a log loaded again, or overlapping the last
one), or quarantined with a reason: a case the warehouse does not hold (``unknown_event``: load the case export
first), no id / status / time, a status no table reads, a time that cannot be read or lies in the future. Counts
reconcile: read = inserted (steps added) + unchanged (held already) + quarantined.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from onemap.contracts import closed_status
from onemap.warehouse import registered
from pipelines.profiles import Profile
from pipelines.stage import (
    BAD_TIME,
    DUPLICATE_IN_FILE,
    MISSING_REQUIRED,
    ROW,
    UNKNOWN_STATUS,
    StageContext,
    _parse_times,
    _reject_frame,
    _Rejects,
    canonical_status,
    check_time_bounds,
    mapped_columns,
)

UNKNOWN_EVENT = "unknown_event"  # a step of a case the warehouse does not hold


@dataclass
class FlowStaged:
    steps: pd.DataFrame    # event_id, status, observed_at, source_row
    rejects: pd.DataFrame  # as staging.rejects
    raw: pd.DataFrame      # the rows as read, for quarantining steps of unknown cases at load time


def stage_flow(raw: pd.DataFrame, profile: Profile, ctx: StageContext) -> FlowStaged:
    """Check and type a flow log's rows (see the module's docstring); cases are looked up at load time."""
    n = len(raw)
    col, found = mapped_columns(raw, profile, ctx.source_file)

    def get(name: str) -> pd.Series:
        return col[name] if name in col else pd.Series([None] * n, index=raw.index, dtype=object)

    def header(name: str) -> str:
        return found.get(name, name)

    rej = _Rejects(n)
    rid = get("source_record_id").astype("string").str.strip().fillna("")
    rej.add(rid.eq("").to_numpy(), header("source_record_id"), MISSING_REQUIRED, f"{header('source_record_id')}为空")
    raw_status = get("status").fillna("").astype(str).str.strip()
    status = canonical_status(raw_status)
    rej.add(raw_status.eq("").to_numpy(), header("status"), MISSING_REQUIRED, f"{header('status')}为空")
    rej.add(status.isna().to_numpy(), header("status"), UNKNOWN_STATUS,
            f"{header('status')}无法识别（可在配置的 [values.status] 中对应到产品状态）：", values=raw_status)
    given = get("observed_at").astype("string").str.strip().fillna("").ne("").to_numpy()
    times = _parse_times(get("observed_at"), profile.timezone or ctx.timezone, profile.time_formats
                         ).dt.tz_convert(ctx.timezone)
    rej.add(~given, header("observed_at"), MISSING_REQUIRED, f"{header('observed_at')}为空")
    rej.add(given & times.isna().to_numpy(), header("observed_at"), BAD_TIME,
            f"{header('observed_at')}无法识别为时间（可在配置的 [times] formats 中写明它的写法）：", values=get("observed_at"))
    check_time_bounds(rej, ctx, [(times, header("observed_at"), True)])
    steps = pd.DataFrame({"event_id": profile.source + ":" + rid, "status": status, "observed_at": times,
                          "source_row": raw[ROW].astype("int64")}, index=raw.index)
    passing = np.flatnonzero(~rej.rejected)
    twice = np.zeros(n, dtype=bool)
    twice[passing] = steps.iloc[passing][["event_id", "status", "observed_at"]].duplicated().to_numpy()
    rej.add(twice, header("source_record_id"), DUPLICATE_IN_FILE, "同一案件、环节和时间在本文件中重复出现")
    keep = ~rej.rejected
    return FlowStaged(steps[keep].reset_index(drop=True), _reject_frame(raw, rej, profile, ctx, []), raw)


def load_flow(con, staged: FlowStaged, profile: Profile, ctx: StageContext, write: bool = True) -> dict[str, int]:
    """Add the steps of cases the warehouse holds to their status history (those it holds already are unchanged),
    quarantine the others, and mark the reopenings the steps show (a closed status followed by an open one).
    ``write=False``: the counts only (a dry run). Returns inserted / unchanged / quarantined and the new rejects."""
    with registered(con, "flow_steps", staged.steps):
        known = con.execute("SELECT s.source_row FROM flow_steps s SEMI JOIN core.events e USING (event_id)"
                            ).df()["source_row"]
        # a step before the case was reported cannot be (a minute's grace for clocks)
        early = con.execute("SELECT s.source_row FROM flow_steps s JOIN core.events e USING (event_id) "
                            "WHERE s.observed_at < e.reported_at - INTERVAL 1 MINUTE").df()["source_row"]
        held = con.execute("""
            SELECT count(*) FROM flow_steps s SEMI JOIN core.event_status_history h
                ON h.event_id = s.event_id AND h.status = s.status AND h.observed_at = s.observed_at""").fetchall()[0][0]
        unknown = staged.steps[~staged.steps["source_row"].isin(known)]
        counts = {"inserted": len(known) - len(early) - held, "unchanged": held}
        if write and counts["inserted"]:
            with registered(con, "early_rows", pd.DataFrame({"source_row": early.astype("int64")})):
                con.execute("""
                    INSERT INTO core.event_status_history
                    SELECT s.event_id, s.status, s.observed_at, $batch FROM flow_steps s
                    SEMI JOIN core.events e USING (event_id)
                    ANTI JOIN early_rows x USING (source_row)
                    ANTI JOIN core.event_status_history h
                        ON h.event_id = s.event_id AND h.status = s.status AND h.observed_at = s.observed_at""",
                            {"batch": ctx.batch_id})
            _mark_reopenings(con, ctx)
    rejects = staged.rejects
    headers = profile.resolve_headers(list(staged.raw.columns))
    for rows, field, reason, detail in (
            (unknown["source_row"], "source_record_id", UNKNOWN_EVENT,
             "仓库中没有这个编号的案件：先导入案件导出，再导入它的流转记录（已导入过的流转记录用 --force 再导入）"),
            (early, "observed_at", BAD_TIME, "早于该案件的上报时间")):
        if len(rows):
            raw = staged.raw[staged.raw[ROW].isin(rows)]
            rej = _Rejects(len(raw))
            rej.add(np.ones(len(raw), dtype=bool), headers.get(field, field), reason, detail)
            rejects = pd.concat([rejects, _reject_frame(raw, rej, profile, ctx, [])], ignore_index=True)
    counts["quarantined"] = len(rejects)
    return {**counts, "rejects": rejects}


def _mark_reopenings(con, ctx: StageContext) -> None:
    """A case whose flow log (this one's steps) shows a closed status, then an open one, was reopened at that open
    step (the first such, unless the warehouse knows an earlier reopening); its first close is the close before
    it. Only the log's own steps are read: an export loaded without --taken-at is dated when it was loaded, after
    the steps the log dates earlier, and would read as a step back. The case's days are re-aggregated by the next
    build (updated_at)."""
    closed = closed_status("status")
    con.execute(f"""
        UPDATE core.events e SET reopened_at = r.reopened,
            first_closed_at = CASE WHEN r.closed_before >= e.reported_at THEN r.closed_before END,
            updated_at = $now
        FROM (SELECT event_id, min(observed_at) AS reopened, arg_min(last_close, observed_at) AS closed_before
              FROM (SELECT event_id, observed_at, {closed} AS is_closed,
                           max(CASE WHEN {closed} THEN observed_at END) OVER (
                               PARTITION BY event_id ORDER BY observed_at
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS last_close
                    FROM core.event_status_history WHERE batch_id = $batch)
              WHERE NOT is_closed AND last_close < observed_at GROUP BY event_id) r
        WHERE e.event_id = r.event_id AND (e.reopened_at IS NULL OR e.reopened_at > r.reopened)""",
                {"now": ctx.now, "batch": ctx.batch_id})
