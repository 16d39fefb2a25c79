"""Upserts keyed on event_id, status history, idempotent reloads, and all-or-nothing loads."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from pipelines.ingest import ingest

from .test_quarantine import police_row
from .warehouse import query_rows


def _csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False, encoding="utf-8")
    return path


def test_later_export_updates_status_and_appends_history(settings, inside, tmp_path):
    week1 = [police_row(inside, 接警单编号=f"J{i}", 接警单状态="登记受理") for i in range(5)]
    [s1] = ingest(settings, "police", [_csv(tmp_path / "w1.csv", week1)], progress=False)
    assert (s1.inserted, s1.updated, s1.unchanged) == (5, 0, 0)
    week2 = [police_row(inside, 接警单编号=f"J{i}", 接警单状态="先行调解") for i in range(2)]
    week2 += [police_row(inside, 接警单编号="J2", 接警单状态="已办结", 办结时间="2026-11-03 09:00:00", 处置结果="化解")]
    week2 = [week2[0], week2[1], week2[2]] + [police_row(inside, 接警单编号="J3")] + [police_row(inside, 接警单编号="J9")]
    [s2] = ingest(settings, "police", [_csv(tmp_path / "w2.csv", week2)], progress=False)
    assert (s2.rows_read, s2.inserted, s2.updated, s2.unchanged, s2.quarantined) == (5, 1, 3, 1, 0)
    history = query_rows(settings, "SELECT event_id, list(status ORDER BY observed_at, status) FROM "
                               "core.event_status_history GROUP BY 1 ORDER BY 1")
    hist = dict(history)
    assert hist["police:J0"] == ["登记受理", "先行调解"] or sorted(hist["police:J0"]) == ["先行调解", "登记受理"]
    assert len(hist["police:J2"]) == 2 and "已办结" in hist["police:J2"]
    assert hist["police:J3"] == ["登记受理"] and hist["police:J9"] == ["登记受理"]
    assert query_rows(settings, "SELECT status, outcome FROM core.events WHERE event_id = 'police:J2'") == [("已办结", "化解")]
    # the same file again: skipped; forced: nothing changes
    [again] = ingest(settings, "police", [tmp_path / "w2.csv"], progress=False)
    assert again.skipped
    [forced] = ingest(settings, "police", [tmp_path / "w2.csv"], force=True, progress=False)
    assert (forced.inserted, forced.updated, forced.unchanged) == (0, 0, 5)
    assert query_rows(settings, "SELECT count(*) FROM core.event_status_history")[0][0] == 9  # 5 + 3 changes + 1 new
    assert query_rows(settings, "SELECT count(*) FROM meta.batches")[0][0] == 3


def test_a_closed_case_shown_open_again_is_reopened_once_and_counts_in_the_reopen_rate(settings, inside, tmp_path):
    """重开: week 2 closes J0 and J1; week 3 shows J0 open again (the complainant came back) and J1 still closed;
    week 4 closes J0 again. J0 keeps the time it was first reopened; 重开率 = 1 of the 2 closed cases."""
    import datetime as dt

    from onemap import queries
    from onemap.warehouse import connect_readonly

    def week(n, rows):
        [summary] = ingest(settings, "police", [_csv(tmp_path / f"w{n}.csv", rows)], progress=False)
        return summary

    closed = {"接警单状态": "已办结", "办结时间": "2026-11-03 09:00:00", "处置结果": "化解"}
    week(1, [police_row(inside, 接警单编号=f"J{i}") for i in range(3)])
    week(2, [police_row(inside, 接警单编号="J0", **closed), police_row(inside, 接警单编号="J1", **closed)])
    assert query_rows(settings, "SELECT count(*) FROM core.events WHERE reopened_at IS NOT NULL")[0][0] == 0
    week(3, [police_row(inside, 接警单编号="J0", 接警单状态="跟踪督办"), police_row(inside, 接警单编号="J1", **closed)])
    [(first,)] = query_rows(settings, "SELECT reopened_at FROM core.events WHERE event_id = 'police:J0'")
    assert first is not None
    week(4, [police_row(inside, 接警单编号="J0", **{**closed, "办结时间": "2026-11-10 09:00:00"})])
    assert query_rows(settings, "SELECT event_id, status, reopened_at FROM core.events WHERE reopened_at IS NOT NULL"
                      ) == [("police:J0", "已办结", first)]
    history = query_rows(settings, "SELECT list(status ORDER BY observed_at) FROM core.event_status_history "
                                   "WHERE event_id = 'police:J0'")[0][0]
    assert history == ["登记受理", "已办结", "跟踪督办", "已办结"]
    con = connect_readonly(settings.warehouse_path, require_current=False)
    try:
        flt = queries.EventFilter(dt.date(2026, 11, 1), dt.date(2026, 11, 1))
        now = pd.Timestamp.now(tz="Asia/Shanghai")
        assert queries.kpis(con, flt, now)["reopened_rate"] == pytest.approx(1 / 2)
        assert queries.kpi_bases(con, flt, now)["reopened_rate"] == 2
        assert queries.kpis(con, flt, first - pd.Timedelta(seconds=1))["reopened_rate"] == 0  # as of before week 3
        # counted on the day of its reopening whatever its registration day; not before that day, nor as of before it
        day = pd.Timestamp(first).tz_convert("Asia/Shanghai").date()  # the day in the time zone of the filters
        on_the_day = queries.EventFilter(day, day)
        assert queries.reopened(con, on_the_day, now) == 1
        assert queries.reopened(con, on_the_day, first - pd.Timedelta(seconds=1)) == 0
        assert queries.reopened(con, queries.previous_period(on_the_day), now) == 0
        assert queries.reopened(con, dataclasses.replace(on_the_day, sources=("grid",)), now) == 0
    finally:
        con.close()


def test_failure_midway_leaves_nothing_partial(settings, inside, tmp_path, monkeypatch):
    good = _csv(tmp_path / "a.csv", [police_row(inside, 接警单编号="A1")])
    ingest(settings, "police", [good], progress=False)
    import pipelines.ingest as ing

    def boom(*a, **k):
        raise RuntimeError("disk full")

    second = _csv(tmp_path / "b.csv", [police_row(inside, 接警单编号="B1")])
    with monkeypatch.context() as m:
        m.setattr(ing, "link_matters", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            ingest(settings, "police", [second], progress=False)
    assert query_rows(settings, "SELECT event_id FROM core.events") == [("police:A1",)]
    [s] = ingest(settings, "police", [second], progress=False)
    assert s.inserted == 1


def test_killed_load_leaves_published_warehouse_intact_and_rerun_completes(settings, inside, tmp_path):
    ingest(settings, "police", [_csv(tmp_path / "first.csv", [police_row(inside, 接警单编号="K0")])], progress=False)
    big = _csv(tmp_path / "big.csv", [police_row(inside, 接警单编号=f"K{i}") for i in range(1, 60_001)])
    env = {**os.environ, "ONEMAP_HOME": str(settings.home), "ONEMAP_HMAC_KEY": "ab" * 16}
    proc = subprocess.Popen([sys.executable, "-m", "onemap.cli", "ingest", "police", str(big), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(settings.warehouse_path.parent.glob("*.building")):
        time.sleep(0.05)
    assert list(settings.warehouse_path.parent.glob("*.building")), "the load never started writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert query_rows(settings, "SELECT count(*) FROM core.events")[0][0] == 1
    [s] = ingest(settings, "police", [big], progress=False)
    assert s.inserted == 60_000 and s.reconciles
    assert not list(settings.warehouse_path.parent.glob("*.building*"))


def test_chunked_load_reconciles_across_chunks(settings, inside, tmp_path, monkeypatch):
    import pipelines.ingest as ing

    monkeypatch.setattr(ing, "CHUNK_ROWS", 7)
    rows = [police_row(inside, 接警单编号=f"C{i}") for i in range(30)]
    rows += [police_row(inside, 接警单编号="C3", 接警单状态="先行调解")]  # a later row of C3, in another chunk
    rows += [police_row(inside, 接警单编号="BAD", 报警类别代码="299999")]
    [s] = ingest(settings, "police", [_csv(tmp_path / "c.csv", rows)], progress=False)
    assert s.rows_read == 32 and s.reconciles
    assert (s.inserted, s.updated, s.quarantined) == (30, 1, 1)
    assert query_rows(settings, "SELECT status FROM core.events WHERE event_id = 'police:C3'") == [("先行调解",)]


def test_status_back_and_forth_within_one_file_keeps_history_unique(settings, inside, tmp_path, monkeypatch):
    """A record whose status returns to an earlier value in a later chunk of the same file: the history
    keeps one row per (event, status, batch) — checked by the warehouse contract, which would refuse to
    publish a duplicate."""
    import pipelines.ingest as ing

    monkeypatch.setattr(ing, "CHUNK_ROWS", 3)
    rows = [police_row(inside, 接警单编号=f"H{i}") for i in range(3)]
    rows += [police_row(inside, 接警单编号="H1", 接警单状态="先行调解")]
    rows += [police_row(inside, 接警单编号=f"F{i}") for i in range(2)]
    rows += [police_row(inside, 接警单编号="H1", 接警单状态="登记受理")]
    [s] = ingest(settings, "police", [_csv(tmp_path / "h.csv", rows)], progress=False)
    assert s.reconciles and (s.inserted, s.updated) == (5, 2)
    hist = query_rows(settings, "SELECT status, count(*) FROM core.event_status_history WHERE event_id = 'police:H1' "
                            "GROUP BY 1 ORDER BY 1")
    assert hist == [("先行调解", 1), ("登记受理", 1)]
    assert query_rows(settings, "SELECT status FROM core.events WHERE event_id = 'police:H1'") == [("登记受理",)]


def test_raw_copy_replaces_a_half_copy_left_by_a_killed_load(settings, tmp_path):
    from pipelines.ingest import keep_raw_copy

    src = tmp_path / "export.csv"
    src.write_bytes(b"a,b\n1,2\n")
    target = settings.raw_dir / "police" / f"{'0' * 16}_export.csv"
    target.parent.mkdir(parents=True)
    stale = target.with_name(target.name + ".part")
    stale.write_bytes(b"a,")
    stale.chmod(0o444)
    assert keep_raw_copy(settings, "police", src, "0" * 64) == target
    assert target.read_bytes() == src.read_bytes() and not stale.exists()
    # callers' names and phone numbers as exported: the owner's only, in folders no one else can enter
    assert (target.stat().st_mode & 0o777, target.parent.stat().st_mode & 0o777) == (0o400, 0o700)
    assert settings.raw_dir.stat().st_mode & 0o777 == 0o700
    target.chmod(0o444)  # kept by an earlier version, readable by all: tightened at the next load of it
    keep_raw_copy(settings, "police", src, "0" * 64)
    assert target.stat().st_mode & 0o777 == 0o400


def test_an_export_saying_案结事了_closes_the_case_everywhere(settings, inside, tmp_path):
    """案结事了 is the flow's last stage (the matter settled): it counts as closed in every KPI and in the backlog,
    like 已办结; one without a close time is quarantined like 已办结; shown open again later, it is reopened; and
    已办结 after 案结事了 (or the other way round) is no reopening."""
    import dataclasses
    import datetime as dt

    from onemap import queries
    from onemap.warehouse import connect_readonly

    settled = {"接警单状态": "案结事了", "办结时间": "2026-11-03 09:00:00", "处置结果": "化解"}
    rows = [police_row(inside, 接警单编号="S0", **settled), police_row(inside, 接警单编号="S1", **settled),
            police_row(inside, 接警单编号="S2", **{**settled, "办结时间": ""})]
    [first] = ingest(settings, "police", [_csv(tmp_path / "w1.csv", rows)], progress=False)
    assert (first.inserted, first.quarantined) == (2, 1)
    assert query_rows(settings, "SELECT field, reason FROM staging.rejects") == [("办结时间", "missing_required")]
    assert query_rows(settings, "SELECT DISTINCT status FROM core.events") == [("案结事了",)]
    flt = queries.EventFilter(dt.date(2026, 11, 1), dt.date(2026, 11, 1))

    def measured():  # as of now, after the loads: a reopening is dated by the load that showed it
        now = pd.Timestamp.now(tz="Asia/Shanghai")
        con = connect_readonly(settings.warehouse_path, require_current=False)
        try:
            days = queries.daily_series(con, dataclasses.replace(flt, end=dt.date(2026, 11, 5)))
            return queries.kpis(con, flt, now), dict(zip(pd.to_datetime(days["day"]).dt.day, days["open"], strict=True))
        finally:
            con.close()

    values, daily = measured()
    assert values["closed_rate"] == 1 and values["resolved_rate"] == 1 and values["overdue"] == 0
    assert values["median_days"] == pytest.approx((dt.datetime(2026, 11, 3, 9) - dt.datetime(2026, 11, 1, 10)
                                                   ).total_seconds() / 86400)
    assert [daily[d] for d in (1, 2, 3, 4)] == [2, 2, 0, 0]
    # S0 shown open again, S1 now exported as the plain 已办结: one reopening, none for S1
    ingest(settings, "police", [_csv(tmp_path / "w2.csv", [
        police_row(inside, 接警单编号="S0", 接警单状态="跟踪督办"),
        police_row(inside, 接警单编号="S1", **{**settled, "接警单状态": "已办结"})])], progress=False)
    assert query_rows(settings, "SELECT event_id FROM core.events WHERE reopened_at IS NOT NULL") == [("police:S0",)]
    values, _ = measured()
    assert values["closed_rate"] == pytest.approx(1 / 2) and values["reopened_rate"] == pytest.approx(1 / 2)


def test_the_backlog_reads_each_cases_stage_as_the_exports_loaded_by_then_showed_it(settings, inside, tmp_path):
    """积案 by stage as of a past time: the status of the latest export loaded by then; a case first loaded later,
    its first export's status; one open then by its close time but loaded only as closed: 阶段未记录."""
    import datetime as dt

    from onemap import queries
    from onemap.warehouse import connect_readonly

    def load(n, rows):
        ingest(settings, "police", [_csv(tmp_path / f"w{n}.csv", rows)], progress=False)

    load(1, [police_row(inside, 接警单编号="A"), police_row(inside, 接警单编号="B", 接警单状态="风险研判")])
    between = pd.Timestamp.now(tz="Asia/Shanghai")
    load(2, [police_row(inside, 接警单编号="A", 接警单状态="先行调解"),
             police_row(inside, 接警单编号="C", 接警单状态="跟踪督办"),
             police_row(inside, 接警单编号="D", 接警单状态="已办结", 办结时间="2026-11-20 09:00:00", 处置结果="化解")])
    flt = queries.EventFilter(dt.date(2026, 11, 1), dt.date(2026, 11, 1))
    con = connect_readonly(settings.warehouse_path, require_current=False)
    try:
        def stages(as_of):
            table = queries.backlog(con, flt, as_of)
            return dict(zip(table["code"], table["open"], strict=True))

        then = stages(between)  # A as week 1 showed it (not as now); C, loaded later, as first shown; D closed
        assert {k: v for k, v in then.items() if v} == {"登记受理": 1, "风险研判": 1, "跟踪督办": 1}
        # before D's close time, before every load: each as first shown; D was open but only ever loaded closed
        early = stages(pd.Timestamp("2026-11-15", tz="Asia/Shanghai"))
        assert {k: v for k, v in early.items() if v} == {"登记受理": 1, "风险研判": 1, "跟踪督办": 1,
                                                          queries.UNRECORDED_STAGE: 1}
        now = stages(pd.Timestamp.now(tz="Asia/Shanghai"))
        assert {k: v for k, v in now.items() if v} == {"先行调解": 1, "风险研判": 1, "跟踪督办": 1}
        # whole days open, at the band edges: reported 2026-11-01 10:00, due 11-10 10:00
        first = pd.Timestamp("2026-11-01 10:00", tz="Asia/Shanghai")
        for days, band, overdue in ((7.99, "days_0_7", 0), (8.0, "days_8_30", 0), (30.5, "days_8_30", 3),
                                    (31.0, "days_31_90", 3)):
            total = queries.backlog(con, flt, first + pd.Timedelta(days=days), total=True).iloc[-1]
            assert total[band] == total["open"] and total["oldest_days"] == int(days), days
            assert total["overdue"] == overdue, days
    finally:
        con.close()


def test_a_reopened_case_counts_as_closed_between_its_first_close_and_the_reopening(settings, inside, tmp_path):
    """重开 and the backlog over time: R closed 11-03, shown open again by a later load, closed again 11-25 (by an
    export loaded later still). At a time between the first close and the reopening it is closed in the KPIs,
    the backlog and the daily chart; from the reopening until its second close it is open again."""
    import datetime as dt

    from onemap import queries
    from onemap.warehouse import connect_readonly

    closed = {"接警单状态": "已办结", "办结时间": "2026-11-03 09:00:00", "处置结果": "化解"}
    ingest(settings, "police", [_csv(tmp_path / "w1.csv", [police_row(inside, 接警单编号="R", **closed)])],
           progress=False)
    ingest(settings, "police", [_csv(tmp_path / "w2.csv", [police_row(inside, 接警单编号="R", 接警单状态="跟踪督办")])],
           progress=False)
    [(reopened, first_closed)] = query_rows(settings, "SELECT reopened_at, first_closed_at FROM core.events")
    assert first_closed == pd.Timestamp("2026-11-03 09:00", tz="Asia/Shanghai")
    flt = queries.EventFilter(dt.date(2026, 11, 1), dt.date(2026, 11, 1))
    week = queries.EventFilter(dt.date(2026, 11, 1), dt.date(2026, 11, 7))
    between = pd.Timestamp("2026-11-05", tz="Asia/Shanghai")
    con = connect_readonly(settings.warehouse_path, require_current=False)
    try:
        assert queries.kpis(con, flt, between)["closed_rate"] == 1
        assert queries.kpis(con, flt, between)["median_days"] == pytest.approx(47 / 24)  # 11-01 10:00 → 11-03 09:00
        assert queries.backlog(con, flt, between, total=True).iloc[-1]["open"] == 0
        assert queries.kpis(con, flt, reopened)["closed_rate"] == 0  # open again from the reopening
        assert queries.backlog(con, flt, reopened, total=True).iloc[-1]["open"] == 1
        daily = queries.daily_series(con, week)
        assert list(daily["open"]) == [1, 1, 0, 0, 0, 0, 0]  # closed from 11-03 (reopened after the week)
        assert list(daily["overdue"]) == [0] * 7
    finally:
        con.close()
    # closed again: the second close time counts from then on, the reopening stays on record
    again = {**closed, "办结时间": "2026-11-25 09:00:00"}
    ingest(settings, "police", [_csv(tmp_path / "w3.csv", [police_row(inside, 接警单编号="R", **again)])],
           progress=False)
    assert query_rows(settings, "SELECT reopened_at, first_closed_at, closed_at FROM core.events") == [
        (reopened, first_closed, pd.Timestamp("2026-11-25 09:00", tz="Asia/Shanghai"))]
    con = connect_readonly(settings.warehouse_path, require_current=False)
    try:
        now = pd.Timestamp.now(tz="Asia/Shanghai")
        assert queries.kpis(con, flt, now)["closed_rate"] == 1 and queries.kpis(con, flt, now)["reopened_rate"] == 1
        assert queries.kpis(con, flt, now)["median_days"] == pytest.approx(24 - 1 / 24)
        assert queries.kpis(con, flt, between)["closed_rate"] == 1
    finally:
        con.close()


def test_a_reopening_export_that_moves_the_report_past_the_old_close_keeps_no_first_close(settings, inside, tmp_path):
    """The earlier close time is kept only where it still follows the report: the contract (closing never precedes
    reporting) holds, and the warehouse publishes."""
    from onemap.warehouse import check_contracts, write_session

    closed = {"接警单状态": "已办结", "办结时间": "2026-11-03 09:00:00", "处置结果": "化解"}
    ingest(settings, "police", [_csv(tmp_path / "w1.csv", [police_row(inside, 接警单编号="M", **closed)])],
           progress=False)
    ingest(settings, "police", [_csv(tmp_path / "w2.csv", [police_row(
        inside, 接警单编号="M", 接警单状态="跟踪督办", 报警时间="2026-11-05 10:00:00", 办理期限="2026-11-15 10:00:00")])],
           progress=False)
    [(reopened, first_closed)] = query_rows(settings, "SELECT reopened_at, first_closed_at FROM core.events")
    assert reopened is not None and first_closed is None
    with write_session(settings.warehouse_path) as con:
        assert check_contracts(con) == []


def test_a_later_export_moving_a_reopened_cases_report_past_its_first_close_loads(settings, inside, tmp_path):
    """Reopened first (its first close kept), then an export corrects the report time to after that close: the
    first close goes (it cannot precede the report), the row loads, and so do the others of the file (the whole
    file failed on a contract check)."""
    closed = {"接警单状态": "已办结", "办结时间": "2026-11-03 09:00:00", "处置结果": "化解"}
    ingest(settings, "police", [_csv(tmp_path / "w1.csv", [police_row(inside, 接警单编号="M", **closed)])],
           progress=False)
    ingest(settings, "police", [_csv(tmp_path / "w2.csv", [police_row(inside, 接警单编号="M", 接警单状态="跟踪督办")])],
           progress=False)
    assert query_rows(settings, "SELECT first_closed_at IS NOT NULL FROM core.events") == [(True,)]
    [s3] = ingest(settings, "police", [_csv(tmp_path / "w3.csv", [
        police_row(inside, 接警单编号="M", 接警单状态="跟踪督办", 报警时间="2026-11-04 10:00:00"),
        police_row(inside, 接警单编号="N")])], progress=False)
    assert (s3.updated, s3.inserted, s3.quarantined) == (1, 1, 0)
    assert query_rows(settings, "SELECT strftime(reported_at, '%d %H'), reopened_at IS NOT NULL, first_closed_at "
                                "FROM core.events WHERE event_id = 'police:M'") == [("04 10", True, None)]


def test_a_later_export_correcting_only_the_report_time_or_address_updates_the_record(settings, inside, tmp_path):
    """The report time, the occurrence time and the address are part of what a later export may change: an export
    that only moves a case's 报警时间 to another day moves it in the warehouse (and its day's counts)."""
    ingest(settings, "police", [_csv(tmp_path / "w1.csv", [police_row(inside, 接警单编号=f"T{i}") for i in range(3)])],
           progress=False)
    [s2] = ingest(settings, "police", [_csv(tmp_path / "w2.csv", [
        police_row(inside, 接警单编号="T0", 报警时间="2026-11-02 00:30:00"),
        police_row(inside, 接警单编号="T1", 案发地址="新港街道某路2号"),
        police_row(inside, 接警单编号="T2")])], progress=False)
    assert (s2.updated, s2.unchanged) == (2, 1)
    got = dict(query_rows(settings, "SELECT event_id, strftime(reported_at, '%Y-%m-%d %H:%M') || ' ' || address_redacted "
                                    "FROM core.events"))
    assert got["police:T0"].startswith("2026-11-02 00:30") and got["police:T1"].endswith("某路2号")
    assert query_rows(settings, "SELECT count(*) FROM core.event_status_history")[0][0] == 3  # no status changed


def test_an_old_export_loaded_late_is_dated_when_it_was_taken(settings, inside, tmp_path, capsys):
    """`onemap ingest --taken-at`: a backlog of exports loaded today keeps their own dates in the status history
    and for 重开, while each record's updated_at stays the load time the incremental build reads."""
    from onemap.cli import main

    closed = {"接警单状态": "已办结", "办结时间": "2026-11-03 09:00:00", "处置结果": "化解"}
    w1 = _csv(tmp_path / "w1.csv", [police_row(inside, 接警单编号="J0", **closed)])
    w2 = _csv(tmp_path / "w2.csv", [police_row(inside, 接警单编号="J0", 接警单状态="跟踪督办")])
    home = ["--home", str(settings.home)]
    assert main([*home, "ingest", "police", str(w1), "--taken-at", "2026-11-05 18:00", "--quiet"]) == 0
    before = pd.Timestamp.now(tz="Asia/Shanghai")
    assert main([*home, "ingest", "police", str(w2), "--taken-at", "2026-11-12 18:00", "--quiet"]) == 0
    history = query_rows(settings, "SELECT status, observed_at FROM core.event_status_history ORDER BY observed_at")
    assert [(s, pd.Timestamp(t).strftime("%m-%d %H:%M")) for s, t in history] == [
        ("已办结", "11-05 18:00"), ("跟踪督办", "11-12 18:00")]
    [(reopened, updated)] = query_rows(settings, "SELECT reopened_at, updated_at FROM core.events")
    assert pd.Timestamp(reopened).strftime("%m-%d %H:%M") == "11-12 18:00" and pd.Timestamp(updated) >= before
    # an export cannot be taken after it is loaded, and a time must be a time
    capsys.readouterr()
    assert main([*home, "ingest", "police", str(w2), "--taken-at", "2099-01-01 00:00", "--force", "--quiet"]) != 0
    assert "is in the future" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="not a time"):
        main([*home, "ingest", "police", str(w2), "--taken-at", "last tuesday", "--force", "--quiet"])


def test_an_export_taken_before_the_one_loaded_keeps_the_later_state(settings, inside, tmp_path, capsys):
    """Exports loaded out of order (--taken-at): the record keeps the state of the later export; the older one's
    status goes into the history at its own time, so a backlog of that day reads its stage. A case the later
    export shows closed and the older one open is no reopening (it crashed the load's contract check)."""
    from onemap.cli import main

    closed = {"接警单状态": "已办结", "办结时间": "2026-11-15 09:00:00", "处置结果": "化解"}
    new = _csv(tmp_path / "n.csv", [police_row(inside, 接警单编号="J0", **closed),
                                    police_row(inside, 接警单编号="J1", 接警单状态="先行调解")])
    old = _csv(tmp_path / "o.csv", [police_row(inside, 接警单编号="J0", 接警单状态="跟踪督办"),
                                    police_row(inside, 接警单编号="J1", 接警单状态="登记受理"),
                                    police_row(inside, 接警单编号="J2")])
    home = ["--home", str(settings.home)]
    assert main([*home, "ingest", "police", str(new), "--taken-at", "2026-11-20 10:00"]) == 0
    capsys.readouterr()
    assert main([*home, "ingest", "police", str(old), "--taken-at", "2026-11-10 10:00"]) == 0
    out = capsys.readouterr().out
    assert "read 3 / inserted 1 / updated 0 / unchanged 2" in out and "2 of unchanged: the warehouse holds a later" in out
    assert query_rows(settings, "SELECT event_id, status, reopened_at FROM core.events ORDER BY 1") == [
        ("police:J0", "已办结", None), ("police:J1", "先行调解", None), ("police:J2", "登记受理", None)]
    history = query_rows(settings, "SELECT event_id, list(status ORDER BY observed_at) FROM core.event_status_history "
                                   "GROUP BY 1 ORDER BY 1")
    assert history == [("police:J0", ["跟踪督办", "已办结"]), ("police:J1", ["登记受理", "先行调解"]),
                       ("police:J2", ["登记受理"])]
    # the same older file again changes nothing
    assert main([*home, "ingest", "police", str(old), "--taken-at", "2026-11-10 10:00", "--force"]) == 0
    assert query_rows(settings, "SELECT count(*) FROM core.event_status_history")[0][0] == 5


def test_taken_at_with_its_own_offset_and_a_source_without_a_default_profile(settings, inside, tmp_path, capsys):
    from onemap.cli import main

    home = ["--home", str(settings.home)]
    w = _csv(tmp_path / "w.csv", [police_row(inside, 接警单编号="J0")])
    assert main([*home, "ingest", "police", str(w), "--taken-at", "2026-11-10 02:00+00:00", "--quiet"]) == 0
    [(seen,)] = query_rows(settings, "SELECT observed_at FROM core.event_status_history")
    assert pd.Timestamp(seen).tz_convert("Asia/Shanghai").strftime("%m-%d %H:%M") == "11-10 10:00"
    capsys.readouterr()
    assert main([*home, "ingest", "hotline", str(w)]) == 2
    assert "source 'hotline' has no default profile: name one with --profile" in capsys.readouterr().err


def test_a_dry_run_says_what_the_load_would_do_and_writes_nothing(settings, inside, tmp_path, capsys):
    """--dry-run reads the warehouse (read only): a file already loaded would be skipped, a later export's
    records would be updated, unchanged or inserted — the same counts the load then gives."""
    from onemap.cli import main

    home = ["--home", str(settings.home)]
    w1 = _csv(tmp_path / "w1.csv", [police_row(inside, 接警单编号=f"J{i}") for i in range(3)])
    assert main([*home, "ingest", "police", str(w1), "--dry-run"]) == 0  # no warehouse yet: all new
    assert "read 3 / inserted 3 / updated 0 / unchanged 0" in capsys.readouterr().out
    assert not settings.warehouse_path.exists()
    assert main([*home, "ingest", "police", str(w1), "--quiet"]) == 0
    capsys.readouterr()
    assert main([*home, "ingest", "police", str(w1), "--dry-run"]) == 0
    assert "already loaded in batch" in capsys.readouterr().out
    w2 = _csv(tmp_path / "w2.csv", [police_row(inside, 接警单编号="J0", 接警单状态="先行调解"), police_row(inside, 接警单编号="J1"),
                                    police_row(inside, 接警单编号="J7")])
    history = query_rows(settings, "SELECT count(*) FROM core.event_status_history")
    assert main([*home, "ingest", "police", str(w2), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "dry run, nothing written" in dry and "read 3 / inserted 1 / updated 1 / unchanged 1" in dry
    assert query_rows(settings, "SELECT count(*) FROM core.event_status_history") == history
    assert main([*home, "ingest", "police", str(w2), "--quiet"]) == 0
    assert "read 3 / inserted 1 / updated 1 / unchanged 1" in capsys.readouterr().out


def test_a_file_mostly_outside_the_jurisdiction_is_warned_about(settings, inside, tmp_path, capsys):
    from onemap.cli import main

    rows = [police_row(inside, 接警单编号=f"B{i}", 经度="116.40", 纬度="39.90", 案发地址="北京某地") for i in range(3)]
    w = _csv(tmp_path / "elsewhere.csv", rows + [police_row(inside, 接警单编号="J1")])
    assert main(["--home", str(settings.home), "ingest", "police", str(w), "--quiet"]) == 0
    assert "WARNING: 3 of 4 rows lie outside this jurisdiction" in capsys.readouterr().out


def test_the_sheet_of_a_workbook_is_chosen_on_the_command_line(settings, inside, tmp_path, capsys):
    """A workbook whose first sheet is notes: --sheet names the data's (refused without, naming the columns)."""
    from onemap.cli import main

    path = tmp_path / "export.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"说明": ["本表为 11 月非警务警情"]}).to_excel(book, sheet_name="说明", index=False)
        pd.DataFrame([police_row(inside, 接警单编号="X1")]).to_excel(book, sheet_name="数据", index=False)
    home = ["--home", str(settings.home)]
    assert main([*home, "ingest", "police", str(path), "--quiet"]) == 2
    assert "export.xlsx" in capsys.readouterr().err
    assert main([*home, "ingest", "police", str(path), "--sheet", "数据", "--quiet"]) == 0
    assert "read 1 / inserted 1" in capsys.readouterr().out


def test_a_reopening_is_found_whatever_order_the_exports_are_loaded_in(settings, inside, tmp_path):
    """Week 2 closes J0, week 3 shows it open again: loaded newest first (each with --taken-at), the warehouse ends
    with the same reopening and first close as loaded in order (the close was kept in the history only)."""
    closed = {"接警单状态": "已办结", "办结时间": "2026-11-03 09:00:00", "处置结果": "化解"}
    weeks = {1: [police_row(inside, 接警单编号="J0"), police_row(inside, 接警单编号="J1")],
             2: [police_row(inside, 接警单编号="J0", **closed), police_row(inside, 接警单编号="J1", **closed)],
             3: [police_row(inside, 接警单编号="J0", 接警单状态="跟踪督办"), police_row(inside, 接警单编号="J1", **closed)]}
    taken = {n: pd.Timestamp(f"2026-11-0{3 + n} 08:00", tz="Asia/Shanghai") for n in weeks}

    def state():
        return query_rows(settings, "SELECT event_id, status, reopened_at, first_closed_at FROM core.events "
                                    "ORDER BY event_id")

    for n in (1, 2, 3):
        ingest(settings, "police", [_csv(tmp_path / f"w{n}.csv", weeks[n])], progress=False, taken_at=taken[n])
    in_order = state()
    assert in_order[0][2] == taken[3] and in_order[0][3] is not None and in_order[1][2] is None
    import shutil
    shutil.rmtree(settings.home)
    for n in (3, 2, 1):
        ingest(settings, "police", [_csv(tmp_path / f"w{n}.csv", weeks[n])], progress=False, taken_at=taken[n])
    assert state() == in_order


def test_a_deployments_own_profile_file_is_remembered_for_its_rejects(settings, inside, tmp_path):
    """A load under `--profile path/own.toml` records the file (and --taken-at), so that a corrected row loaded
    later is found as loaded since (the lookup knew shipped profiles by name only: every row stayed outstanding)."""
    from onemap import quarantine
    from onemap.warehouse import connect_readonly
    from pipelines.load import loaded_since
    from pipelines.profiles import PROFILE_DIR

    own = tmp_path / "own_police.toml"
    own.write_text((PROFILE_DIR / "demo_police.toml").read_text(encoding="utf-8")
                   .replace('name = "demo_police"', 'name = "own_police"'), encoding="utf-8")
    taken = pd.Timestamp("2026-11-20 08:00", tz="Asia/Shanghai")
    ingest(settings, "police", [_csv(tmp_path / "w1.csv", [police_row(inside, 接警单编号="B1", 报警类别代码="999999"),
                                                            police_row(inside, 接警单编号="B2")])],
           profile_name=str(own), progress=False, taken_at=taken)
    ingest(settings, "police", [_csv(tmp_path / "fix.csv", [police_row(inside, 接警单编号="B1")])],
           profile_name=str(own), progress=False)
    con = connect_readonly(settings.warehouse_path)
    try:
        stored = con.execute("SELECT source_file, profile, profile_file, taken_at FROM meta.batches "
                             "ORDER BY source_file").fetchall()
        assert stored[1][:3] == ("w1.csv", "own_police", str(own.resolve())) and stored[1][3] == taken
        assert stored[0][3] is None
        rejected = quarantine.rejects(con)
        assert list(loaded_since(con, rejected)) == ["fix.csv"]
    finally:
        con.close()


def test_rejects_raw_leaves_out_rows_that_would_overwrite_the_record_they_share_an_id_with(settings, inside,
                                                                                            tmp_path, capsys):
    """A duplicate_in_file row shares its id with a later row of its file that loaded: handed back by --raw and
    loaded again as it was, it overwrote that record. --raw leaves such rows out unless asked for by reason."""
    from onemap.cli import main

    rows = [police_row(inside, 接警单编号="D1", 报警内容="第一份"), police_row(inside, 接警单编号="D1", 报警内容="第二份"),
            police_row(inside, 接警单编号="U1", 报警类别代码="999999")]
    ingest(settings, "police", [_csv(tmp_path / "w.csv", rows)], progress=False)
    capsys.readouterr()
    base = ["--home", str(settings.home), "rejects", "--file", "w.csv", "--raw", "--format", "json"]
    assert main(base) == 0
    out = capsys.readouterr()
    assert [r["接警单编号"] for r in json.loads(out.out)] == ["U1"] and "1 duplicate_in_file row(s) left out" in out.err
    assert main([*base, "--reason", "duplicate_in_file"]) == 0
    assert [r["报警内容"] for r in json.loads(capsys.readouterr().out)] == ["第一份"]
    # a file never loaded is said to be so, not "nothing in quarantine"
    assert main(["--home", str(settings.home), "rejects", "--file", "nosuch.csv"]) != 0
    assert "no load of a file named 'nosuch.csv'; the files loaded are: w.csv" in capsys.readouterr().err
