"""Case-flow logs (流转记录): each step of a case into its status history at its own time; reconciled counts."""
import datetime as dt

import pandas as pd
import pytest

from onemap import queries
from onemap.warehouse import check_contracts, connect_readonly, write_session
from pipelines.ingest import ingest

from .test_quarantine import police_row
from .warehouse import query_rows

GRID = {"上报时间": "2026-11-02 09:00:00", "事件类型代码": "A02", "事件描述": "邻里纠纷", "坐标系": "WGS84",
        "处理状态": "跟踪督办"}


def _grid(inside, **over):
    return {"事件编号": "G1", **GRID, "经度": f"{inside[0]:.6f}", "纬度": f"{inside[1]:.6f}", **over}


def _csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _flow(path, steps):
    return _csv(path, [{"事件编号": i, "环节": s, "操作时间": t, "操作人工号": "WGY001"} for i, s, t in steps])


def test_a_flow_log_dates_each_stage_and_the_past_backlog_reads_it(settings, inside, tmp_path):
    """Loaded at the end, the export alone knows only where a case stood then: a past day's backlog can only show
    that stage (or 阶段未记录 for a case closed by then). Its flow log gives the stage of every day; loading the log
    again changes nothing."""
    taken = pd.Timestamp("2026-11-20 08:00", tz="Asia/Shanghai")
    ingest(settings, "grid", [_csv(tmp_path / "g.csv", [_grid(inside), _grid(inside, 事件编号="G2")])],
           progress=False, taken_at=taken)

    def stage_on(day: str) -> dict:
        con = connect_readonly(settings.warehouse_path)
        try:
            flt = queries.EventFilter(dt.date(2026, 11, 1), dt.date(2026, 11, 20))
            frame = queries.backlog(con, flt, pd.Timestamp(day, tz="Asia/Shanghai"), by="stage")
            return {r["code"]: int(r["open"]) for _, r in frame.iterrows() if r["open"]}
        finally:
            con.close()

    assert stage_on("2026-11-06") == {"跟踪督办": 2}  # where the cases stood when the export was taken
    steps = [("G1", "登记受理", "2026-11-02 09:00"), ("G1", "先行调解", "2026-11-04 10:00"),
             ("G1", "跟踪督办", "2026-11-10 10:00"), ("G2", "登记受理", "2026-11-02 09:05"),
             ("G2", "风险研判", "2026-11-05 16:00"), ("G9", "登记受理", "2026-11-03 09:00"),  # a case never loaded
             ("G2", "某环节", "2026-11-06 09:00"), ("", "先行调解", "2026-11-06 09:00")]
    [s] = ingest(settings, "grid", [_flow(tmp_path / "flow.csv", steps)], profile_name="demo_grid_flow",
                 progress=False, taken_at=taken)
    assert (s.rows_read, s.inserted, s.unchanged, s.quarantined, s.reconciles) == (8, 5, 0, 3, True)
    assert s.reasons == {"unknown_event": 1, "unknown_status": 1, "missing_required": 1}
    assert "a flow log: 5 steps added" in s.line()
    assert stage_on("2026-11-06") == {"先行调解": 1, "风险研判": 1}
    assert stage_on("2026-11-12") == {"跟踪督办": 1, "风险研判": 1}
    [(raw,)] = query_rows(settings, "SELECT raw FROM staging.rejects WHERE reason = 'unknown_event'")
    assert "G9" in raw and "WGY001" not in raw  # [drop] columns are not kept
    [again] = ingest(settings, "grid", [tmp_path / "flow.csv"], profile_name="demo_grid_flow", force=True,
                     progress=False, taken_at=taken)
    assert (again.inserted, again.unchanged) == (0, 5)
    with write_session(settings.warehouse_path) as con:
        assert check_contracts(con) == []


def test_a_step_back_from_closed_is_a_reopening(settings, inside, tmp_path):
    closed = {"处理状态": "已办结", "办结时间": "2026-11-05 10:00:00", "处理结果": "化解"}
    ingest(settings, "grid", [_csv(tmp_path / "g.csv", [_grid(inside, **closed)])], progress=False)
    steps = [("G1", "登记受理", "2026-11-02 09:00"), ("G1", "已办结", "2026-11-05 10:00"),
             ("G1", "跟踪督办", "2026-11-07 10:00"), ("G1", "已办结", "2026-11-09 10:00")]
    [s] = ingest(settings, "grid", [_flow(tmp_path / "flow.csv", steps)], profile_name="demo_grid_flow",
                 progress=False)
    assert s.inserted == 4
    [(reopened, first)] = query_rows(settings, "SELECT reopened_at, first_closed_at FROM core.events")
    assert (reopened, first) == (pd.Timestamp("2026-11-07 10:00", tz="Asia/Shanghai"),
                                 pd.Timestamp("2026-11-05 10:00", tz="Asia/Shanghai"))


def test_a_flow_profile_dry_run_writes_nothing(settings, inside, tmp_path):
    ingest(settings, "grid", [_csv(tmp_path / "g.csv", [_grid(inside)])], progress=False)
    path = _flow(tmp_path / "flow.csv", [("G1", "先行调解", "2026-11-04 10:00"), ("G7", "先行调解", "2026-11-04 10:00")])
    [s] = ingest(settings, "grid", [path], profile_name="demo_grid_flow", dry_run=True, progress=False)
    assert (s.inserted, s.quarantined) == (1, 1)
    assert query_rows(settings, "SELECT count(*) FROM core.event_status_history")[0][0] == 1


@pytest.mark.parametrize("missing", ["环节", "操作时间"])
def test_a_flow_log_without_its_required_columns_is_refused(settings, inside, tmp_path, missing):
    from pipelines.stage import MissingColumnError

    ingest(settings, "grid", [_csv(tmp_path / "g.csv", [_grid(inside)])], progress=False)
    frame = pd.DataFrame([{"事件编号": "G1", "环节": "先行调解", "操作时间": "2026-11-04 10:00"}]).drop(columns=missing)
    frame.to_csv(tmp_path / "f.csv", index=False)
    with pytest.raises(MissingColumnError, match="required column"):
        ingest(settings, "grid", [tmp_path / "f.csv"], profile_name="demo_grid_flow", progress=False)


def test_police_rows_are_untouched_by_a_grid_flow_log(settings, inside, tmp_path):
    ingest(settings, "police", [_csv(tmp_path / "p.csv", [police_row(inside, 接警单编号="G1")])], progress=False)
    [s] = ingest(settings, "grid", [_flow(tmp_path / "flow.csv", [("G1", "先行调解", "2026-11-04 10:00")])],
                 profile_name="demo_grid_flow", progress=False)
    assert (s.inserted, s.reasons) == (0, {"unknown_event": 1})  # grid:G1, not police:G1


def test_stage_times_read_each_stay_from_the_flow(settings, inside, tmp_path, capsys):
    """How long cases stay in each stage: from a stage's first record to the next record of another status
    (the export's record of the stage a case already stood at is the same stay)."""
    taken = pd.Timestamp("2026-11-20 08:00", tz="Asia/Shanghai")
    ingest(settings, "grid", [_csv(tmp_path / "g.csv", [_grid(inside), _grid(inside, 事件编号="G2")])],
           progress=False, taken_at=taken)
    steps = [("G1", "登记受理", "2026-11-02 09:00"), ("G1", "先行调解", "2026-11-04 09:00"),
             ("G1", "跟踪督办", "2026-11-10 09:00"), ("G2", "登记受理", "2026-11-02 09:00"),
             ("G2", "风险研判", "2026-11-06 09:00")]
    ingest(settings, "grid", [_flow(tmp_path / "flow.csv", steps)], profile_name="demo_grid_flow", progress=False,
           taken_at=taken)
    con = connect_readonly(settings.warehouse_path)
    try:
        got = queries.stage_times(con, queries.EventFilter(dt.date(2026, 11, 20), dt.date(2026, 11, 20)),
                                  taken + pd.Timedelta(hours=1)).set_index("code")
    finally:
        con.close()
    assert got.loc["登记受理", "stays"] == 2 and got.loc["登记受理", "median_days"] == pytest.approx(3.0)
    assert (got.loc["先行调解", "stays"], got.loc["先行调解", "median_days"]) == (1, pytest.approx(6.0))
    # G2's 风险研判 ended when the export showed it at 跟踪督办; G1 is still at 跟踪督办 (now, no ended stay)
    assert got.loc["风险研判", "median_days"] == pytest.approx((taken - pd.Timestamp("2026-11-06 09:00",
                                                                                tz="Asia/Shanghai")).days + 23 / 24)
    assert got.loc["跟踪督办", "stays"] == 0 and got.loc["跟踪督办", "now"] == 2
    from onemap.cli import main

    assert main(["--home", str(settings.home), "backlog", "--by", "stage-time"]) == 0
    assert "各环节用时" in capsys.readouterr().out


def test_an_export_dated_at_its_load_does_not_make_a_flow_close_a_reopening(settings, inside, tmp_path):
    """The export (taken earlier, loaded now without --taken-at) says 先行调解 at its load time; the flow log closes the
    case ten minutes before that. The history reads closed-then-open, but only a log's own steps make a reopening;
    a step dated before the case was reported is quarantined (bad_time), not read as a close."""
    now = pd.Timestamp.now(tz="Asia/Shanghai").floor("s")
    fmt = "%Y-%m-%d %H:%M:%S"
    reported = (now - pd.Timedelta(days=2)).strftime(fmt)
    ingest(settings, "grid", [_csv(tmp_path / "g.csv", [_grid(inside, 上报时间=reported, 处理状态="先行调解")])],
           progress=False)
    steps = [("G1", "登记受理", reported), ("G1", "先行调解", (now - pd.Timedelta(days=1)).strftime(fmt)),
             ("G1", "已办结", (now - pd.Timedelta(minutes=10)).strftime(fmt)),
             ("G1", "已办结", (now - pd.Timedelta(days=9)).strftime(fmt))]  # before the report: impossible
    [s] = ingest(settings, "grid", [_flow(tmp_path / "flow.csv", steps)], profile_name="demo_grid_flow",
                 progress=False)
    assert (s.inserted, s.quarantined, s.reasons) == (3, 1, {"bad_time": 1})
    assert query_rows(settings, "SELECT reopened_at, first_closed_at FROM core.events") == [(None, None)]
    [(detail,)] = query_rows(settings, "SELECT detail FROM staging.rejects")
    assert detail == "早于该案件的上报时间"


def test_a_quarantined_step_is_outstanding_until_a_later_flow_log_adds_its_cases_steps(settings, inside, tmp_path):
    """A step of a case not loaded yet stays outstanding when the case export comes (it loads the case, not the
    step), and is loaded since once the corrected log is loaded again."""
    from onemap import quarantine
    from pipelines.load import loaded_since

    ingest(settings, "grid", [_csv(tmp_path / "g.csv", [_grid(inside)])], progress=False)
    ingest(settings, "grid", [_flow(tmp_path / "flow.csv", [("G1", "先行调解", "2026-11-04 10:00"),
                                                           ("G2", "先行调解", "2026-11-04 10:00")])],
           profile_name="demo_grid_flow", progress=False)

    def since():
        con = connect_readonly(settings.warehouse_path)
        try:
            rows = quarantine.rejects(con)
            return list(loaded_since(con, rows))
        finally:
            con.close()
    assert since() == [None]
    ingest(settings, "grid", [_csv(tmp_path / "g2.csv", [_grid(inside, 事件编号="G2")])], progress=False)
    assert since() == [None]  # the case, not its step
    ingest(settings, "grid", [_flow(tmp_path / "flow2.csv", [("G2", "先行调解", "2026-11-04 10:00")])],
           profile_name="demo_grid_flow", progress=False)
    assert since() == ["flow2.csv"]
