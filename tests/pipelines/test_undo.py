"""`onemap undo`: the latest load taken back whole, then the one before, as far as the kept undo points reach."""
import dataclasses
import hashlib
import json
import subprocess
import sys

import pandas as pd
import pytest

from onemap import undo
from pipelines.build import build
from pipelines.ingest import ingest

from .test_quarantine import police_row
from .warehouse import query_rows


def _csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False, encoding="utf-8")
    return path


def _digest(settings):
    return hashlib.sha256(settings.warehouse_path.read_bytes()).hexdigest()


def _week(settings, inside, tmp_path, n, ids, status="登记受理"):
    rows = [police_row(inside, 接警单编号=f"J{i}", 接警单状态=status) for i in ids]
    [summary] = ingest(settings, "police", [_csv(tmp_path / f"w{n}.csv", rows)], progress=False)
    return summary


def test_undo_puts_back_the_warehouse_as_it_was_then_the_load_before(settings, inside, tmp_path):
    _week(settings, inside, tmp_path, 1, range(4))
    after_first = _digest(settings)
    second = _week(settings, inside, tmp_path, 2, range(2, 7), status="先行调解")  # 3 new, 2 updated
    assert (second.inserted, second.updated) == (3, 2)
    build(settings)  # a build after the load goes back with it, and the preview says so
    point = undo.latest(settings)
    assert [f["file"] for f in point.loads] == ["w2.csv"] and point.builds_since == 1 and not point.blocked
    assert "1 build(s)" in point.describe() and "inserted 3 / updated 2" in point.describe()

    undo.undo(settings)
    assert _digest(settings) == after_first  # byte for byte: events, history, quarantine, batches
    assert query_rows(settings, "SELECT count(*) FROM core.events")[0][0] == 4
    assert query_rows(settings, "SELECT count(*) FROM core.event_status_history")[0][0] == 4
    assert query_rows(settings, "SELECT source_file FROM meta.batches") == [("w1.csv",)]
    # the file can be loaded again: it is no longer "already loaded", and loads as it did
    [again] = ingest(settings, "police", [tmp_path / "w2.csv"], progress=False)
    assert (again.skipped, again.inserted, again.updated) == (False, 3, 2)
    assert query_rows(settings, "SELECT count(*) FROM core.events")[0][0] == 7

    undo.undo(settings)  # the reload
    undo.undo(settings)  # then the first load: there was no warehouse before it
    assert not settings.warehouse_path.exists()
    with pytest.raises(ValueError, match="no load to undo"):
        undo.undo(settings)
    record = undo.undone(settings)
    assert [[f["file"] for f in u["loads"]] for u in record] == [["w2.csv"], ["w2.csv"], ["w1.csv"]]
    assert record[0]["builds_taken_back"] == 1 and record[0]["by"]


def test_only_the_last_undo_keep_loads_can_be_taken_back(settings, inside, tmp_path):
    settings = dataclasses.replace(settings, undo_keep=2)
    for n in range(4):
        _week(settings, inside, tmp_path, n, [n])
    kept = sorted(p.name for p in undo.undo_dir(settings).iterdir())
    assert len(kept) == 4 and sum(name.endswith(".duckdb") for name in kept) == 2  # a snapshot and a note each
    undo.undo(settings)
    undo.undo(settings)
    assert query_rows(settings, "SELECT count(*) FROM core.events")[0][0] == 2
    with pytest.raises(ValueError, match="no load to undo"):
        undo.undo(settings)


def test_a_later_load_without_an_undo_point_blocks_undoing_an_earlier_one(settings, inside, tmp_path):
    _week(settings, inside, tmp_path, 1, [1])
    _week(settings, inside, tmp_path, 2, [2])
    _week(settings, inside, tmp_path, 3, [3])
    newest = max(undo.undo_dir(settings).glob("*.json"))  # as if killed between publishing and noting it
    newest.unlink()
    point = undo.latest(settings)
    assert [f["file"] for f in point.loads] == ["w2.csv"] and "w3.csv" in point.blocked
    before = _digest(settings)
    with pytest.raises(ValueError, match=r"later load\(s\) left no undo point"):
        undo.undo(settings)
    assert _digest(settings) == before


def test_a_load_of_files_already_loaded_leaves_no_undo_point(settings, inside, tmp_path):
    first = _week(settings, inside, tmp_path, 1, [1])
    [skipped] = ingest(settings, "police", [tmp_path / "w1.csv"], progress=False)
    assert skipped.skipped
    point = undo.latest(settings)
    assert [f["batch_id"] for f in point.loads] == [first.batch_id]
    assert len(list(undo.undo_dir(settings).glob("*.duckdb"))) == 0  # the first load replaced no warehouse


def test_a_failed_load_leaves_no_undo_point_and_the_previous_one_stands(settings, inside, tmp_path, monkeypatch):
    _week(settings, inside, tmp_path, 1, [1])
    _week(settings, inside, tmp_path, 2, [2])
    import pipelines.ingest as ingest_module

    def broken(*args, **kwargs):
        raise RuntimeError("killed")
    monkeypatch.setattr(ingest_module, "link_matters", broken)
    with pytest.raises(RuntimeError):
        _week(settings, inside, tmp_path, 3, [3])
    point = undo.latest(settings)
    assert [f["file"] for f in point.loads] == ["w2.csv"] and not point.blocked
    assert len(list(undo.undo_dir(settings).glob("*.json"))) == 2


def test_cli_previews_then_undoes_and_loads_lists_it(settings, inside, tmp_path):
    _week(settings, inside, tmp_path, 1, [1])
    _week(settings, inside, tmp_path, 2, [2, 3])
    home = str(settings.home)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "onemap.cli", "--home", home, *args], capture_output=True,
                              text=True, env={"ONEMAP_HMAC_KEY": "ab" * 16, "PATH": "/usr/bin:/bin"})

    preview = run("undo")
    assert preview.returncode == 0 and "would undo" in preview.stdout and "w2.csv" in preview.stdout
    assert query_rows(settings, "SELECT count(*) FROM core.events")[0][0] == 3  # the preview changed nothing
    done = run("undo", "--yes")
    assert done.returncode == 0, done.stderr
    assert "undone" in done.stdout and query_rows(settings, "SELECT count(*) FROM core.events")[0][0] == 1
    loads = run("loads")
    assert "taken back by onemap undo (1" in loads.stdout and "w2.csv (2 inserted, 0 updated)" in loads.stdout
    note = json.loads((settings.logs_dir / undo.LOG_NAME).read_text(encoding="utf-8"))
    assert note["loads"][0]["inserted"] == 2 and note["undone_at"].endswith("+08:00")


def test_undo_keep_0_keeps_no_copies(settings, inside, tmp_path):
    _week(settings, inside, tmp_path, 0, [0])
    assert undo.latest(dataclasses.replace(settings, undo_keep=0)) is None  # set to 0: the points left are not offered
    settings = dataclasses.replace(settings, undo_keep=0)
    _week(settings, inside, tmp_path, 1, [1])
    _week(settings, inside, tmp_path, 2, [2])
    assert list(undo.undo_dir(settings).iterdir()) == [] and undo.latest(settings) is None


def test_the_warehouse_and_its_undo_copies_are_the_owners_only(settings, inside, tmp_path):
    _week(settings, inside, tmp_path, 1, [1])
    _week(settings, inside, tmp_path, 2, [2])
    assert settings.warehouse_path.stat().st_mode & 0o777 == 0o600
    assert settings.warehouse_path.parent.stat().st_mode & 0o777 == 0o700
    assert undo.undo_dir(settings).stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in undo.undo_dir(settings).glob("*.duckdb"))


def test_undo_follows_the_order_loads_were_published_whatever_the_clock(settings, inside, tmp_path, monkeypatch):
    """A load made with the clock an hour behind (an NTP correction) is still the latest: undo takes it back alone,
    and a build published before a load is not said to be taken back with it."""
    build(settings)  # (an empty warehouse is built: no events yet)
    _week(settings, inside, tmp_path, 1, [1])
    assert undo.latest(settings).builds_since == 0
    real_now = pd.Timestamp.now

    def behind(*args, **kwargs):
        return real_now(*args, **kwargs) - pd.Timedelta(hours=1)
    monkeypatch.setattr(pd.Timestamp, "now", behind)
    _week(settings, inside, tmp_path, 2, [2])
    monkeypatch.setattr(pd.Timestamp, "now", real_now)
    point = undo.latest(settings)
    assert [f["file"] for f in point.loads] == ["w2.csv"] and not point.blocked
    undo.undo(settings)
    assert query_rows(settings, "SELECT event_id FROM core.events") == [("police:J1",)]
    assert [f["file"] for f in undo.latest(settings).loads] == ["w1.csv"]
