"""A large CSV is staged while it is still being parsed (pipelines.chunks, readers.csv_frames): the same rows,
numbers and values as reading it whole, and a parse that fails part-way falls back before anything is written."""
from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import pipelines.chunks as chunks
import pipelines.ingest as ing
from pipelines.ingest import ingest
from pipelines.readers import ROW, csv_frames, read_export

from .test_quarantine import police_row
from .test_upsert import _csv
from .warehouse import query_frame

CELL = st.one_of(st.just(""), st.text(alphabet=st.sampled_from(list("纠纷邻里ab ,\"\n1号")), max_size=12),
                 st.just("长" * 20_005))  # longer than readers.MAX_FIELD_CHARS: cut the same way


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(CELL, CELL, CELL), max_size=40), chunk=st.integers(1, 9),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
def test_chunks_put_together_are_the_whole_read(tmp_path, rows, chunk, encoding):
    """Quoted commas, quotes and newlines, empty cells, three encodings, any chunk size: same frame."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["编号", " 内容 ", "地址"])
    w.writerows(rows)
    path = tmp_path / f"t_{encoding}.csv"
    path.write_bytes(buf.getvalue().encode(encoding))
    whole = read_export(path).frame
    parts = list(csv_frames(path, chunk))
    assert len(parts) == max(1, -(-len(whole) // chunk))
    assert all(len(p) == chunk for p in parts[:-1])
    joined = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole.reset_index(drop=True))
    assert list(joined[ROW]) == list(range(1, len(whole) + 1))


def test_a_malformed_row_stops_the_stream(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,4,5\n", encoding="utf-8")
    with pytest.raises(Exception, match="xpected 2 columns"):
        list(csv_frames(path, 1))


def _load(settings, tmp_path, monkeypatch, rows, name, streamed: bool):
    monkeypatch.setattr(ing, "CHUNK_ROWS", 7)
    monkeypatch.setattr(ing, "STREAM_MIN_BYTES", 0 if streamed else 1 << 40)
    [s] = ingest(settings, "police", [_csv(tmp_path / name, rows)], progress=False)
    return s


def test_streamed_load_equals_the_whole_file_load(settings, inside, tmp_path, monkeypatch):
    import dataclasses

    rows = [police_row(inside, 接警单编号=f"S{i}", 报警时间=f"2026-11-{1 + i % 9:02d} 10:00:00") for i in range(40)]
    rows[12] = police_row(inside, 接警单编号="S12", 报警类别代码="299999")  # quarantined: unknown category
    rows[30] = police_row(inside, 接警单编号="S3", 接警单状态="先行调解")  # an update of row 3, in a later chunk
    calls = []
    monkeypatch.setattr(chunks, "csv_frames", lambda *a: calls.append(a) or __import__(
        "pipelines.readers", fromlist=["csv_frames"]).csv_frames(*a))
    streamed = _load(settings, tmp_path, monkeypatch, rows, "s.csv", streamed=True)
    assert calls, "the streamed path was taken"
    other = dataclasses.replace(settings, home=tmp_path / "home2")
    whole = _load(other, tmp_path, monkeypatch, rows, "s.csv", streamed=False)
    assert len(calls) == 1
    for s in (streamed, whole):
        assert s.reconciles and (s.rows_read, s.inserted, s.updated, s.quarantined) == (40, 38, 1, 1)
    assert streamed.reasons == whole.reasons
    cols = "event_id, status, reported_at, summary_redacted, h3_cell, grid_code, source_row, content_hash"
    sql = f"SELECT {cols} FROM core.events ORDER BY event_id"
    pd.testing.assert_frame_equal(query_frame(settings, sql), query_frame(other, sql))
    sql = "SELECT source_row, field, reason FROM staging.rejects ORDER BY source_row"
    pd.testing.assert_frame_equal(query_frame(settings, sql), query_frame(other, sql))


def test_a_stream_that_fails_part_way_is_read_whole_and_nothing_is_written_twice(settings, inside, tmp_path,
                                                                                monkeypatch):
    """A row with an extra field after three chunks: the streamed parse stops, the load reads the file whole,
    keeps every good row once and quarantines the broken line as malformed_row."""
    rows = [police_row(inside, 接警单编号=f"F{i}") for i in range(30)]
    path = _csv(tmp_path / "f.csv", rows)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(25, lines[25].rstrip("\n") + ",多出的一列\n")  # record 25 gets an extra field
    path.write_text("".join(lines), encoding="utf-8")
    monkeypatch.setattr(ing, "CHUNK_ROWS", 7)
    monkeypatch.setattr(ing, "STREAM_MIN_BYTES", 0)
    fallbacks = []
    original = chunks.WholeFile.__init__
    monkeypatch.setattr(chunks.WholeFile, "__init__", lambda self, *a: fallbacks.append(1) or original(self, *a))
    [s] = ingest(settings, "police", [path], progress=False)
    assert fallbacks == [1]
    assert s.reconciles and (s.rows_read, s.inserted, s.quarantined) == (31, 30, 1)
    assert s.reasons == {"malformed_row": 1}
    n = query_frame(settings, "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM core.events")
    assert (int(n["n"].iloc[0]), int(n["d"].iloc[0])) == (30, 30)


def test_a_streamed_file_loaded_again_is_skipped_and_changes_nothing(settings, inside, tmp_path, monkeypatch):
    rows = [police_row(inside, 接警单编号=f"R{i}") for i in range(20)]
    first = _load(settings, tmp_path, monkeypatch, rows, "r.csv", streamed=True)
    again = _load(settings, tmp_path, monkeypatch, rows, "r.csv", streamed=True)
    assert first.inserted == 20 and not first.skipped
    assert again.skipped and "already loaded" in again.line()
    assert query_frame(settings, "SELECT count(*) AS n FROM core.events")["n"].iloc[0] == 20
