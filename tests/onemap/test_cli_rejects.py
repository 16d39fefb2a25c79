"""`onemap loads` and `onemap rejects`: the load history and the quarantine as data staff read them, and the round
trip of correcting quarantined rows in their file's layout and loading them again."""
from __future__ import annotations

import json
import shutil

import pandas as pd

from onemap.cli import main


def _json(capsys) -> list[dict]:
    return json.loads(capsys.readouterr().out)


def test_loads_reconcile_and_the_summary_adds_up_to_each_files_quarantine(demo_home, capsys):
    assert main(["--home", str(demo_home), "loads", "--format", "json"]) == 0
    loads = _json(capsys)
    assert loads and all(r["reconciles"] for r in loads)
    assert all(r["rows_read"] == r["inserted"] + r["updated"] + r["unchanged"] + r["quarantined"] for r in loads)
    assert main(["--home", str(demo_home), "rejects", "--summary", "--format", "json"]) == 0
    per_file: dict[str, int] = {}
    for r in _json(capsys):
        per_file[r["source_file"]] = per_file.get(r["source_file"], 0) + r["rows"]
    assert per_file == {r["source_file"]: r["quarantined"] for r in loads if r["quarantined"]}
    assert main(["--home", str(demo_home), "rejects", "--reason", "unknown_category", "--format", "json"]) == 0
    rows = _json(capsys)
    assert rows and {r["reason"] for r in rows} == {"unknown_category"} and {r["field"] for r in rows} == {"报警类别代码"}
    assert "raw" not in rows[0]  # the listing names the problem; --raw gives the row itself
    assert main(["--home", str(demo_home), "rejects", "--limit", "3"]) == 0
    assert "rows in all" in capsys.readouterr().out


def test_quarantined_rows_come_back_in_their_layout_and_load_once_corrected(demo_home, tmp_path, capsys):
    """The police file's rows refused for an unmapped 报警类别 code, written with the file's own headers, given a
    mapped code in 'Excel', and loaded again: each is then inserted (or quarantined for another reason)."""
    home = tmp_path / "home"
    shutil.copytree(demo_home, home)  # the shared demo warehouse stays as the other tests read it
    out = tmp_path / "fix.csv"
    assert main(["--home", str(home), "rejects", "--file", "非警务警情.csv", "--reason", "unknown_category",
                 "--raw", "--format", "csv", "--out", str(out)]) == 0
    fix = pd.read_csv(out, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    source = pd.read_csv(demo_home / "demo_exports" / "非警务警情.csv", dtype=str, encoding="utf-8-sig",
                         keep_default_na=False).set_index("接警单编号")
    assert len(fix) > 0 and set(fix["报警类别代码"]) == {"299999"}
    assert "报警人姓名" not in fix.columns and "报警电话" not in fix.columns  # never kept in quarantine
    original = source.loc[fix["接警单编号"]]
    for column in ("报警时间", "报警类别代码", "经度", "纬度", "接警单状态", "办结时间"):
        assert (fix[column].to_numpy() == original[column].to_numpy()).all(), column
    assert not fix["报警内容"].str.contains(r"1[3-9]\d{9}").any()  # redacted, unlike the source file
    fix["报警类别代码"] = "200201"  # the clerk maps the unknown code by hand: 邻里纠纷
    fix.to_csv(out, index=False, encoding="utf-8-sig")
    capsys.readouterr()
    assert main(["--home", str(home), "ingest", "police", str(out), "--quiet"]) == 0
    line = capsys.readouterr().out
    assert f"read {len(fix):,}" in line and "[ok]" in line
    assert main(["--home", str(home), "loads", "--format", "json"]) == 0
    [again] = [r for r in _json(capsys) if r["source_file"] == "fix.csv"]
    assert again["inserted"] + again["quarantined"] == len(fix) and again["inserted"] > 0
    assert again["updated"] == 0  # they were never loaded before
    # the original file's rows now loaded from the fix are no longer outstanding; the rest still are
    args = ["--home", str(home), "rejects", "--file", "非警务警情.csv", "--reason", "unknown_category"]
    assert main([*args, "--format", "json"]) == 0
    listed = _json(capsys)
    assert len(listed) == len(fix) and sum(r["loaded_since"] == "fix.csv" for r in listed) == again["inserted"]
    assert main([*args, "--outstanding", "--format", "json"]) == 0
    assert len(_json(capsys)) == len(fix) - again["inserted"]
    assert main([*args, "--summary", "--format", "json"]) == 0
    [row] = _json(capsys)
    assert (row["rows"], row["outstanding"]) == (len(fix), len(fix) - again["inserted"])


def test_raw_needs_one_files_layout(demo_home, capsys):
    assert main(["--home", str(demo_home), "rejects", "--raw", "--format", "csv"]) == 2
    assert "choose one with --file" in capsys.readouterr().err
    assert main(["--home", str(demo_home), "rejects", "--raw"]) == 2
    assert "--format csv or json" in capsys.readouterr().err


def test_a_file_loaded_again_as_it_was_lists_its_bad_rows_once(demo_home, tmp_path, capsys):
    """ingest --force of the same bytes quarantines the same rows again: the listing keeps the latest load's, so a
    file's rows still add up to its load's count; --batch still reaches the superseded load."""
    home = tmp_path / "home"
    shutil.copytree(demo_home, home)
    police = demo_home / "demo_exports" / "非警务警情.csv"
    assert main(["--home", str(home), "ingest", "police", str(police), "--force", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "loads", "--format", "json"]) == 0
    *_, older, newer = sorted((r for r in _json(capsys) if r["source_file"] == police.name),
                              key=lambda r: r["loaded_at"])  # another test may have forced a load before
    assert older["quarantined"] == newer["quarantined"] > 0
    assert main(["--home", str(home), "rejects", "--file", police.name, "--format", "json"]) == 0
    listed = _json(capsys)
    assert len(listed) == newer["quarantined"]
    assert len({r["source_row"] for r in listed}) == len(listed)  # no row twice
    assert main(["--home", str(home), "rejects", "--batch", older["batch_id"], "--format", "json"]) == 0
    assert len(_json(capsys)) == older["quarantined"]


def test_rows_with_the_wrong_number_of_fields_come_back_as_their_text_in_a_column_of_their_own(tmp_path, capsys):
    """--raw of a file with ragged rows: the well-formed quarantined rows in the file's columns, each ragged one's
    text (redacted) in a last column 字段数不符的原行, in CSV and JSON alike (it refused the whole file)."""
    import pandas as pd

    from onemap.quarantine import MALFORMED_COLUMN, as_read

    frame = pd.DataFrame({"source_file": ["a.csv"] * 2,
                          "raw": [json.dumps({"事件编号": "G1", "上报时间": "昨天"}, ensure_ascii=False),
                                  json.dumps({"line": "G2,2026-11-01,A02,多出,的"}, ensure_ascii=False)]})
    laid = as_read(frame)
    assert list(laid.columns) == ["事件编号", "上报时间", MALFORMED_COLUMN]
    assert laid.iloc[0]["事件编号"] == "G1" and pd.isna(laid.iloc[0][MALFORMED_COLUMN])
    assert laid.iloc[1][MALFORMED_COLUMN] == "G2,2026-11-01,A02,多出,的" and pd.isna(laid.iloc[1]["事件编号"])


def test_a_misspelt_reason_is_named_with_the_reasons_present(demo_home, capsys):
    assert main(["--home", str(demo_home), "rejects", "--reason", "unknown_catgory"]) == 2
    err = capsys.readouterr().err
    assert "no row is quarantined for reason 'unknown_catgory'" in err and "unknown_category" in err
