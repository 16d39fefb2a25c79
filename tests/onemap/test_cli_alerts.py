"""`onemap alerts --since DATE --format table|csv|json` on the built demo county, as an analyst runs it."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from onemap.cli import main


def _run(capsys, demo_home, *args) -> str:
    assert main(["--home", str(demo_home), "alerts", *args]) == 0
    return capsys.readouterr().out


def test_json_csv_and_table_list_the_same_alerts(capsys, demo_home):
    records = json.loads(_run(capsys, demo_home, "--format", "json"))
    assert records, "the demo build raises alerts"
    assert {"window_end", "window_days", "kind", "place", "cell", "observed", "expected", "score", "q_value",
            "sentence_zh"} <= set(records[0])
    assert all(r["q_value"] <= 0.05 and r["observed"] > r["expected"] for r in records)
    # every alert names its town and village, edge cells too (by the events of their neighbourhood)
    assert all(r["place"] and r["sentence_zh"].startswith(f"【{r['place']}】") for r in records)
    frame = pd.read_csv(io.StringIO(_run(capsys, demo_home, "--format", "csv")))
    assert len(frame) == len(records)
    assert list(frame["sentence_zh"]) == [r["sentence_zh"] for r in records]
    table = _run(capsys, demo_home)
    assert table.strip().splitlines()[-1].startswith(f"{len(records)} alerts")


def test_since_and_window_filter(capsys, demo_home):
    records = json.loads(_run(capsys, demo_home, "--format", "json"))
    ends = sorted({r["window_end"][:10] for r in records})
    since = ends[len(ends) // 2]
    later = json.loads(_run(capsys, demo_home, "--since", since, "--format", "json"))
    assert later and all(r["window_end"][:10] >= since for r in later)
    assert len(later) == sum(r["window_end"][:10] >= since for r in records)
    week = json.loads(_run(capsys, demo_home, "--window", "7", "--format", "json"))
    assert week and all(r["window_days"] == 7 for r in week)
    assert "no alerts since 2099-01-01" in _run(capsys, demo_home, "--since", "2099-01-01")


def test_a_bad_date_is_a_usage_error_that_says_what_is_expected(capsys, demo_home):
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(demo_home), "alerts", "--since", "12/01/2026"])
    assert exc.value.code == 2
    assert "expected a date YYYY-MM-DD, got '12/01/2026'" in capsys.readouterr().err


def test_asking_for_older_alerts_than_were_scored_says_so(capsys, demo_home):
    assert main(["--home", str(demo_home), "alerts", "--since", "2026-01-01", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert "alerts are scored from 2026-11-02 on" in captured.err
    assert captured.out.startswith("window_end,")  # the csv itself is untouched


def test_each_alert_names_the_test_family_its_q_value_comes_from(capsys, demo_home):
    """A category alert's q may come from the cell family (carried by one category), the cell × category or the
    neighbourhood × category family; q-values compare within a family and window only, where they rise as the
    score falls (Benjamini-Hochberg is monotone). Each alert says its family."""
    from models.alerts import FAMILIES

    records = pd.DataFrame(json.loads(_run(capsys, demo_home, "--format", "json")))
    assert set(records["family"]) <= set(FAMILIES)
    allowed = {"cell": {"cell"}, "neighbourhood": {"neighbourhood"}, "ramp": {"ramp_cell", "ramp_neighbourhood"},
               "category": {"cell", "cell_category", "neighbourhood_category"}}
    assert all(f in allowed[k] for k, f in zip(records["kind"], records["family"], strict=True))
    for _, group in records[records["kind"] != "ramp"].groupby(["window_end", "window_days", "family"]):
        q = group.sort_values("score", ascending=False)["q_value"].to_numpy()
        assert (q[1:] >= q[:-1] - 1e-12).all(), group[["score", "q_value"]]
    table = _run(capsys, demo_home)
    assert " q " in table and "named after each q" in table
