"""Analysts' verdicts on alerts: appended, latest wins, damaged lines skipped, joined onto the alerts by key."""
import datetime as dt

import pandas as pd
import pytest

from onemap.reviews import add_review, alert_key, keys_of, latest_reviews, summary, with_reviews


def _alerts() -> pd.DataFrame:
    return pd.DataFrame({"kind": ["cell", "category"], "cell": ["8841", "8842"], "window_end": ["2026-11-15"] * 2,
                         "window_days": [7, 1], "category_code": [None, "MD10"], "sentence_zh": ["a", "b"]})


def test_the_latest_verdict_counts_and_every_one_is_kept(tmp_path):
    path = tmp_path / "reviews" / "alert_reviews.jsonl"
    frame = _alerts()
    keys = keys_of(frame)
    assert list(keys) == ["cell|8841|2026-11-15|7|", "category|8842|2026-11-15|1|MD10"]
    add_review(path, keys[0], "false_alarm", "xingang", "441502001")
    add_review(path, keys[0], "confirmed", "county")
    got = with_reviews(frame, path)
    assert list(got["review"]) == ["confirmed", None] and list(got["reviewed_by"]) == ["county", None]
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2  # the earlier verdict stays in the file
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"key": "cell|8841|2026-11-15|7|", "verd')  # a line cut short by a full disk
    assert latest_reviews(path)[keys[0]]["verdict"] == "confirmed"
    with pytest.raises(ValueError, match="verdict 'maybe'"):
        add_review(path, keys[1], "maybe", "county")
    assert latest_reviews(tmp_path / "none.jsonl") == {}


def test_a_rebuilt_alert_keeps_its_key():
    assert alert_key("cell", "8841", "2026-11-15", 7, None) == alert_key("cell", "8841", "2026-11-15", 7.0, "")
    assert alert_key("cell", "8841", "2026-11-15", 7, None) != alert_key("cell", "8841", "2026-11-15", 1, None)


def test_the_summary_counts_verdicts_per_kind_and_in_all(tmp_path):
    frame = _alerts()
    path = tmp_path / "r.jsonl"
    add_review(path, keys_of(frame)[0], "confirmed", "county")
    got = summary(with_reviews(frame, path)).round(3).set_index("kind")
    assert got.loc["cell"].to_dict() == {"alerts": 1, "episodes": 1, "reviewed": 1, "confirmed": 1, "false_alarm": 0, "precision": 1.0,
                                         "precision_low": 0.207, "precision_high": 1.0}  # one verdict says little
    assert got.loc["category", "reviewed"] == 0 and pd.isna(got.loc["category", "precision"])
    assert pd.isna(got.loc["category", "precision_low"])
    assert got.loc["all", "alerts"] == 2 and got.loc["all", "precision"] == 1.0


def test_the_summary_by_month_has_intervals_that_hold_the_share(tmp_path):
    months = ["2026-09-30", "2026-10-05", "2026-10-20", "2026-11-01"] * 5
    frame = pd.DataFrame({"kind": "cell", "cell": [f"88{i:02d}" for i in range(20)], "window_end": months,
                          "window_days": 7, "category_code": None, "sentence_zh": "x"})
    path = tmp_path / "r.jsonl"
    for i, key in enumerate(keys_of(frame)):
        if i % 4 != 3:  # November's alerts are not reviewed yet
            add_review(path, key, "confirmed" if i % 3 else "false_alarm", "county")
    reviewed = with_reviews(frame, path)
    got = summary(reviewed.assign(month=reviewed["window_end"].str[:7]), by="month").set_index("month")
    assert list(got.index) == ["2026-09", "2026-10", "2026-11", "all"]
    assert got["alerts"].tolist() == [5, 10, 5, 20] and got["reviewed"].tolist() == [5, 10, 0, 15]
    assert got.loc["all", "confirmed"] == got.loc[["2026-09", "2026-10"], "confirmed"].sum()
    shown = got.dropna(subset=["precision"])
    assert ((shown["precision_low"] <= shown["precision"]) & (shown["precision"] <= shown["precision_high"])).all()
    # more verdicts, a narrower interval
    assert (shown.loc["all", "precision_high"] - shown.loc["all", "precision_low"]
            < shown.loc["2026-09", "precision_high"] - shown.loc["2026-09", "precision_low"])


def test_onemap_alerts_summary(demo_home, capsys):
    import json

    from onemap.cli import main

    assert main(["--home", str(demo_home), "alerts", "--summary", "--format", "json"]) == 0
    rows = {r["kind"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["all"]["alerts"] == sum(r["alerts"] for k, r in rows.items() if k != "all") > 0
    assert main(["--home", str(demo_home), "alerts", "--summary"]) == 0
    assert "precision_low" in capsys.readouterr().out
    # per town: the towns' alerts add up to all of them, and each town's count is what its user sees
    assert main(["--home", str(demo_home), "alerts", "--summary", "--by", "area", "--format", "json"]) == 0
    towns = {r["area"]: r["alerts"] for r in json.loads(capsys.readouterr().out)}
    total = towns.pop("all")
    assert sum(towns.values()) == total == rows["all"]["alerts"]
    from onemap import queries
    from onemap.warehouse import connect_readonly

    con = connect_readonly(demo_home / "warehouse" / "onemap.duckdb")
    try:
        by_code = {a.name: a.code for a in queries.child_areas(con, None).itertuples()}
        for name, n in towns.items():
            assert len(queries.alerts(con, scope=queries.Scope("town", by_code[name]))) == n
    finally:
        con.close()


def test_a_category_alert_on_a_cell_and_on_its_neighbourhood_are_two_alerts(con):
    """A category is scored on the cell and on the k-ring around it, both centred on that cell: one key for both
    made a verdict on the one land on the other (and its buttons did nothing). A single cell's key is unchanged."""
    single = alert_key("category", "8841", "2026-11-15", 7, "CG")
    assert single == "category|8841|2026-11-15|7|CG"
    assert alert_key("category", "8841", "2026-11-15", 7, "CG", n_cells=7) != single
    assert alert_key("neighbourhood", "8841", "2026-11-15", 7, None, n_cells=7) == "neighbourhood|8841|2026-11-15|7|"
    from onemap import queries

    shown = queries.alerts(con)
    assert len(shown) and keys_of(shown).is_unique


def test_an_episode_is_a_run_of_daily_alerts_of_one_kind_place_category_and_window():
    """A spike stays in the 7-day windows of the days after it: one alert a day, one episode, whatever test raised
    each day's (the cell's total, then its driving category). A gap of a day, another window length or place starts
    another; a ramp's window is its run so far, whatever its length, and it is an episode of its own."""
    import duckdb

    from onemap import queries
    from onemap.warehouse import create_schema

    con = duckdb.connect()
    create_schema(con)

    def alert(day: int, days: int = 7, kind: str = "cell", cell: int = 1, category: str | None = None):
        con.execute("INSERT INTO scores.alerts (run_id, kind, resolution, cell, window_days, window_start, window_end, "
                    "observed, expected, score, p_value, q_value, category_code, n_cells, sentence_zh) VALUES "
                    "('r', ?, 8, ?, ?, DATE '2026-11-01', DATE '2026-11-01' + ?, 5, 1, 3, 0.001, 0.01, ?, 1, 's')",
                    [kind, cell, days, day, category])
    for day in (1, 2, 3, 5):  # a run of three days, a gap, one more
        alert(day)
    alert(2, days=1)  # a 1-day window on a day of the run: its own
    alert(2, category="MD10", kind="category")
    alert(3, category="MD10", kind="category")
    alert(2, days=10, kind="ramp")
    alert(3, days=11, kind="ramp")  # the same ramp a day on
    alert(3, cell=2)  # another place
    got = queries.alerts(con).sort_values(["kind", "cell", "window_days", "window_end"])
    starts = dict(zip(zip(got["kind"], got["cell"], got["window_days"], got["window_end"], strict=True),
                      got["episode_start"], strict=True))
    one = queries.hex_ids(pd.Series([1], dtype="uint64")).iloc[0]
    assert [starts[("cell", one, 7, f"2026-11-0{d}")] for d in (2, 3, 4, 6)] == ["2026-11-02"] * 3 + ["2026-11-06"]
    assert starts[("cell", one, 1, "2026-11-03")] == "2026-11-03"
    assert starts[("ramp", one, 11, "2026-11-04")] == "2026-11-03"
    assert starts[("category", one, 7, "2026-11-04")] == "2026-11-02"  # the category alert joins the cell's run
    assert queries.episode_count(got) == 5 and len(got) == 10
    since = queries.alerts(con, since=dt.date(2026, 11, 4))  # a run begun before `since` keeps its first day
    assert since.loc[since["window_end"] == "2026-11-04", "episode_start"].eq("2026-11-02").any()
