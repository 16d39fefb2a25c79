"""Read an export file (CSV in UTF-8 / UTF-8 with BOM / GB18030, .xlsx, JSON lines) into strings.

Everything is read as text so that validation, not the reader, decides what a bad value is; the row
number of each record (1-based, header excluded) travels with it for the quarantine table.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

ROW = "__row"
ENCODINGS = ("utf-8-sig", "gb18030")


class ReadError(ValueError):
    """The file cannot be read at all; the message names the file and what is wrong."""


def detect_encoding(path: Path, sample_bytes: int = 1 << 20) -> str:
    with open(path, "rb") as fh:
        data = fh.read(sample_bytes)
    offset = 0
    for enc in ENCODINGS:
        try:
            data.decode(enc)
            return enc
        except UnicodeDecodeError as exc:
            if exc.start >= len(data) - 4 and len(data) == sample_bytes:  # a multibyte char cut by the sample
                return enc
            offset = max(offset, exc.start)
    raise ReadError(f"{path}: not UTF-8 and not GB18030 (first undecodable byte near offset {offset})")


def read_export(path: Path, sheet: str = "") -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ReadError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            frame = _read_csv(path)
        elif suffix in (".xlsx", ".xlsm"):
            frame = _read_xlsx(path, sheet)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            frame = _read_jsonl(path)
        else:
            raise ReadError(f"{path}: unsupported file type {suffix!r} (use .csv, .xlsx or .jsonl)")
    except ReadError:
        raise
    except (pd.errors.ParserError, ValueError, KeyError, OSError) as exc:
        raise ReadError(f"{path}: cannot be parsed: {exc}") from exc
    if frame.empty and not len(frame.columns):
        raise ReadError(f"{path}: no header row")
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    frame.insert(0, ROW, range(1, len(frame) + 1))
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    encoding = detect_encoding(path)
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding=encoding, sep=sep,
                       engine="c", on_bad_lines="error")


def _read_xlsx(path: Path, sheet: str) -> pd.DataFrame:
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
        header = next(rows, None)
        if header is None:
            raise ReadError(f"{path}: sheet {ws.title!r} is empty")
        header = [str(h) if h is not None else f"column_{i + 1}" for i, h in enumerate(header)]
        data = [["" if v is None else str(v) for v in r] for r in rows if any(v is not None for v in r)]
    finally:
        book.close()
    frame = pd.DataFrame(data, columns=header, dtype=str)
    return frame.replace({"": None})


def _read_jsonl(path: Path) -> pd.DataFrame:
    records = []
    encoding = detect_encoding(path)
    with path.open(encoding=encoding) as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReadError(f"{path}: line {i} is not valid JSON: {exc.msg}") from exc
            if not isinstance(obj, dict):
                raise ReadError(f"{path}: line {i} is not a JSON object")
            records.append({k: None if v is None else str(v) for k, v in obj.items()})
    return pd.DataFrame.from_records(records)
