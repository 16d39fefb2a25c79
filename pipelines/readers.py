"""Read an export file (CSV in UTF-8 / UTF-8 with BOM / GB18030, .xlsx, JSON lines) into strings.

Everything is read as text so that validation, not the reader, decides what a bad value is; the row
number of each record (1-based, header excluded) travels with it for the quarantine table. Lines that
cannot be parsed as a record at all (a CSV row with the wrong number of fields, a JSON line that is not
an object) come back separately as ``malformed`` rows, to be quarantined: nothing is dropped silently.
A file that cannot be read at all raises ``ReadError`` naming the file and the problem.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROW = "__row"
ENCODINGS = ("utf-8-sig", "gb18030")
MAX_FIELD_CHARS = 20_000  # longer cells are cut (and flagged) so one broken export cannot exhaust memory
# Arrow parses the CSV in blocks on all cores; 4 MB blocks measured 1.5 s against 2.2 s for 16 MB on the 348 MB
# bench file (2 cores). A row longer than a block is read again as one block.
CSV_BLOCK_BYTES = 4 << 20


_ARROW_TEXT = {pa.large_string(): pd.StringDtype("pyarrow"), pa.string(): pd.StringDtype("pyarrow")}


class ReadError(ValueError):
    """The file cannot be read at all; the message names the file and what is wrong."""


@dataclass
class ReadResult:
    frame: pd.DataFrame           # one row per record, all columns text, plus ROW
    malformed: pd.DataFrame       # columns: source_row, detail, raw, fields (a CSV row's values, else None)
    encoding: str = ""

    @property
    def rows_read(self) -> int:
        return len(self.frame) + len(self.malformed)


def _no_malformed() -> pd.DataFrame:
    return pd.DataFrame({"source_row": pd.Series([], dtype="int64"), "detail": pd.Series([], dtype=object),
                         "raw": pd.Series([], dtype=object), "fields": pd.Series([], dtype=object)})


def detect_encoding(path: Path, sample_bytes: int = 1 << 20) -> str:
    """UTF-8 (with or without BOM) if the sample decodes as such, else GB18030, else a ReadError."""
    with open(path, "rb") as fh:
        data = fh.read(sample_bytes)
    if len(data) == sample_bytes and b"\n" in data:
        data = data[: data.rfind(b"\n") + 1]  # never judge a character cut in half by the sample's end
    offset = 0
    for enc in ENCODINGS:
        try:
            data.decode(enc)
            return enc
        except UnicodeDecodeError as exc:
            offset = max(offset, exc.start)
    raise ReadError(f"{path}: not UTF-8 and not GB18030 (first undecodable byte near offset {offset})")


def read_export(path: Path, sheet: str = "") -> ReadResult:
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ReadError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            result = _read_csv(path)
        elif suffix in (".xlsx", ".xlsm"):
            result = _read_xlsx(path, sheet)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            result = _read_jsonl(path)
        else:
            raise ReadError(f"{path}: unsupported file type {suffix!r} (use .csv, .xlsx or .jsonl)")
    except ReadError:
        raise
    except UnicodeDecodeError as exc:
        raise ReadError(f"{path}: mixed or broken text encoding near byte {exc.start}: {exc.reason}") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, KeyError, OSError, csv.Error) as exc:
        raise ReadError(f"{path}: cannot be parsed: {exc}") from exc
    result.frame = _finish(result.frame, path, result.malformed.empty)
    return result


def _finish(frame: pd.DataFrame, path: Path, need_header: bool = True, first_row: int = 1) -> pd.DataFrame:
    """Record numbers (from ``first_row``), clean and unique header names, enormous cells cut."""
    if ROW not in frame.columns:
        frame.insert(0, ROW, range(first_row, first_row + len(frame)))
    if len(frame.columns) <= 1 and need_header:
        raise ReadError(f"{path}: no header row")
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if len(set(frame.columns)) != len(frame.columns):
        dup = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
        raise ReadError(f"{path}: the header repeats column name(s) {dup}")
    for col in frame.columns:  # cut enormous cells (rare; checked vectorised)
        if col == ROW or _bytes_at_most(frame[col], MAX_FIELD_CHARS):
            continue
        s = frame[col].astype("string")
        long = (s.str.len() > MAX_FIELD_CHARS).fillna(False)
        if long.any():
            frame.loc[long, col] = s[long].str.slice(0, MAX_FIELD_CHARS)
    return frame


def csv_frames(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """The frame ``read_export(path)`` returns for a well-formed CSV export, ``rows`` records at a time, each
    handed out as soon as it is parsed (Arrow's streaming reader, which also takes less CPU than the
    multi-threaded one): a load stages the first records while the rest of the file is still being parsed.
    Always yields at least one frame (an empty one for a file with a header only).

    A file this cannot read as it stands raises (``pa.ArrowInvalid`` for a row with the wrong number of fields
    or one longer than a parse block, ``ReadError`` / ``UnicodeDecodeError`` for the rest); the caller then
    reads it with :func:`read_export`, which keeps the good rows of a broken file and names the problem.
    """
    path = Path(path)
    encoding, sep, header = _csv_layout(path)
    reader = pacsv.open_csv(path, **_arrow_csv_options(encoding, sep, header, CSV_BLOCK_BYTES))
    pending: list[pa.RecordBatch] = []
    waiting = done = 0
    for batch in reader:
        pending.append(batch)
        waiting += batch.num_rows
        while waiting >= rows:
            table = pa.Table.from_batches(pending, schema=reader.schema)
            yield _csv_frame(table.slice(0, rows), header, path, done + 1)
            done += rows
            rest = table.slice(rows)
            pending, waiting = rest.to_batches(), rest.num_rows
    if waiting or not done:
        yield _csv_frame(pa.Table.from_batches(pending, schema=reader.schema), header, path, done + 1)


def _csv_frame(table: pa.Table, header: list[str], path: Path, first_row: int) -> pd.DataFrame:
    # the columns stay Arrow-backed strings (empty cell = missing)
    frame = table.rename_columns(header).to_pandas(types_mapper=_ARROW_TEXT.get)
    return _finish(frame, path, first_row=first_row)


def _bytes_at_most(values: pd.Series, limit: int) -> bool:
    """True when no cell of an Arrow text column is longer than ``limit`` bytes (so none has more than
    ``limit`` characters): read from the offsets, without counting characters."""
    if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
        return False
    longest = pc.max(pc.binary_length(values.array.__arrow_array__())).as_py()
    return longest is None or longest <= limit


def _csv_layout(path: Path) -> tuple[str, str, list[str]]:
    """(encoding, separator, header) of a CSV export; a header that repeats a name is a ReadError."""
    encoding = detect_encoding(path)
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, encoding=encoding, newline="") as fh:
        header = next(csv.reader(fh, delimiter=sep), [])
    names = [h.strip().lstrip("\ufeff") for h in header]
    if len(set(names)) != len(names):
        raise ReadError(f"{path}: the header repeats column name(s) {sorted({n for n in names if names.count(n) > 1})}")
    return encoding, sep, header


def _arrow_csv_options(encoding: str, sep: str, header: list[str], block_size: int) -> dict:
    """Arrow CSV options: every column read as text, the header line skipped, quoted newlines allowed."""
    names = [f"c{i}" for i in range(len(header))]
    return {
        "read_options": pacsv.ReadOptions(encoding="utf8" if encoding == "utf-8-sig" else encoding,
                                          column_names=names, skip_rows=1, block_size=block_size),
        "parse_options": pacsv.ParseOptions(delimiter=sep, newlines_in_values=True),
        "convert_options": pacsv.ConvertOptions(column_types={n: pa.large_string() for n in names},
                                                null_values=[""], strings_can_be_null=True)}


def _read_csv(path: Path) -> ReadResult:
    encoding, sep, header = _csv_layout(path)

    def arrow_read(block_size: int) -> pa.Table:
        return pacsv.read_csv(path, **_arrow_csv_options(encoding, sep, header, block_size))

    try:
        try:
            table = arrow_read(CSV_BLOCK_BYTES)
        except pa.ArrowInvalid as exc:  # one row longer than a block: read the file as one block
            if "straddl" not in str(exc):
                raise
            table = arrow_read(max(path.stat().st_size + 1, CSV_BLOCK_BYTES))
    except pa.ArrowInvalid:  # a row with the wrong number of fields, mostly: keep the good ones, report the rest
        return _read_csv_tolerant(path, encoding, sep)
    # multi-threaded Arrow parse; the columns stay Arrow-backed strings (empty cell = missing)
    frame = table.rename_columns(header).to_pandas(types_mapper=_ARROW_TEXT.get)
    return ReadResult(frame, _no_malformed(), encoding)


def _read_csv_tolerant(path: Path, encoding: str, sep: str) -> ReadResult:
    """Slow path for files with broken rows: keep every well-formed row, report the others."""
    csv.field_size_limit(sys.maxsize)
    good: list[list[str]] = []
    rows: list[int] = []
    bad: list[tuple[int, str, str, list[str]]] = []
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if header is None:
            raise ReadError(f"{path}: no header row")
        width = len(header)
        for i, rec in enumerate(reader, start=1):
            if len(rec) == width:
                good.append(rec)
                rows.append(i)
            elif not any(v.strip() for v in rec):
                continue
            else:
                bad.append((i, f"expected {width} fields, found {len(rec)}", sep.join(rec)[:2000], rec))
    frame = pd.DataFrame(good, columns=header, dtype=object).replace({"": None}).astype(pd.StringDtype("pyarrow"))
    frame.insert(0, ROW, rows)
    malformed = pd.DataFrame(bad, columns=["source_row", "detail", "raw", "fields"]) if bad else _no_malformed()
    return ReadResult(frame, malformed, encoding)


TITLE_ROWS = 3  # rows above an .xlsx table's header that may hold its title


def _read_xlsx(path: Path, sheet: str) -> ReadResult:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises a zoo of exceptions on broken files
        raise ReadError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from exc
    try:
        if sheet and sheet not in book.sheetnames:
            raise ReadError(f"{path}: no sheet named {sheet!r}; sheets are {book.sheetnames}")
        ws = book[sheet] if sheet else book.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        top = list(itertools.islice(rows, TITLE_ROWS + 1))
        if not top:
            raise ReadError(f"{path}: sheet {ws.title!r} is empty")
        # a title above the table (one cell, often merged: "2026年11月网格事件台账"), and maybe a line under it
        # (制表单位, 日期): the header is the first of the top rows that fills as many cells as any of them does
        # (three will do), the rows above it being shorter
        filled = [sum(v is not None and str(v).strip() != "" for v in r) for r in top]
        if max(filled) < 3 and len(book.sheetnames) > 1:  # a cover or notes sheet before the data
            raise ReadError(f"{path}: sheet {ws.title!r} holds no table (at most {max(filled)} filled cells in its "
                            f"first rows); the workbook's sheets are {book.sheetnames}: name the data sheet with "
                            "--sheet (or the profile's sheet)")
        first = next(i for i, n in enumerate(filled) if n >= min(3, max(filled)))
        header, rows = top[first], itertools.chain(top[first + 1:], rows)
        header = [str(h) if h is not None else f"column_{i + 1}" for i, h in enumerate(header)]
        data, numbers = [], []
        for i, r in enumerate(rows, start=1):
            if any(v is not None for v in r):
                data.append([None if v is None else _cell_text(v) for v in r[:len(header)]])
                numbers.append(i)
    finally:
        book.close()
    frame = pd.DataFrame(data, columns=header, dtype=object)
    frame.insert(0, ROW, numbers)
    return ReadResult(frame, _no_malformed(), "xlsx")


def _cell_text(v) -> str:
    import datetime as dt

    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v)) if abs(v) >= 1e9 else repr(v)  # long ids typed as numbers keep their digits
    return str(v)


def _read_jsonl(path: Path) -> ReadResult:
    records, numbers, bad = [], [], []
    encoding = detect_encoding(path)
    with path.open(encoding=encoding) as fh:
        text = fh.read()
    if text.lstrip().startswith("["):  # a JSON array of objects is accepted too
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReadError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from exc
        lines = [(i, json.dumps(o, ensure_ascii=False)) for i, o in enumerate(items, start=1)]
    else:
        lines = list(enumerate(io.StringIO(text), start=1))
    for i, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append((i, f"not valid JSON: {exc.msg}", line[:2000], None))
            continue
        if not isinstance(obj, dict):
            bad.append((i, "not a JSON object", line[:2000], None))
            continue
        records.append({k: None if v is None else (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
                        for k, v in obj.items()})
        numbers.append(i)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    if not len(frame.columns) and not bad:
        raise ReadError(f"{path}: no JSON records")
    frame.insert(0, ROW, numbers)
    malformed = pd.DataFrame(bad, columns=["source_row", "detail", "raw", "fields"]) if bad else _no_malformed()
    return ReadResult(frame, malformed, encoding)
