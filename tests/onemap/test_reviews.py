"""Analysts' verdicts on alerts: appended, latest wins, damaged lines skipped, joined onto the alerts by key."""
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
    got = summary(with_reviews(frame, path)).set_index("kind")
    assert got.loc["cell"].to_dict() == {"alerts": 1, "reviewed": 1, "confirmed": 1, "false_alarm": 0, "precision": 1.0}
    assert got.loc["category", "reviewed"] == 0 and pd.isna(got.loc["category", "precision"])
    assert got.loc["all", "alerts"] == 2 and got.loc["all", "precision"] == 1.0


def test_onemap_alerts_summary(demo_home, capsys):
    import json

    from onemap.cli import main

    assert main(["--home", str(demo_home), "alerts", "--summary", "--format", "json"]) == 0
    rows = {r["kind"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["all"]["alerts"] == sum(r["alerts"] for k, r in rows.items() if k != "all") > 0
    assert main(["--home", str(demo_home), "alerts", "--summary"]) == 0
    assert "precision" in capsys.readouterr().out
