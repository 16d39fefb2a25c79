"""What the loads did and what they refused, for data staff: the load history (meta.batches) and the quarantine
(staging.rejects), as frames, and the quarantined rows back in their source's own layout, to be corrected and
loaded again (`onemap rejects --raw`)."""
from __future__ import annotations

import json

import pandas as pd

LOAD_COLUMNS = ("loaded_at", "source", "source_file", "profile", "rows_read", "inserted", "updated", "unchanged",
                "linked", "quarantined", "taken_at")


def loads(con) -> pd.DataFrame:
    """Every load of a file (newest first) with its counts, and whether they reconcile: read = inserted + updated
    + unchanged + quarantined."""
    frame = con.execute("SELECT * FROM meta.batches ORDER BY loaded_at DESC, source_file").df()
    # (taken_at is NULL, i.e. taken when loaded, in a warehouse written before the column was added)
    frame = frame.reindex(columns=[*LOAD_COLUMNS, "batch_id"])
    return frame.assign(reconciles=frame["rows_read"] == frame[["inserted", "updated", "unchanged",
                                                                 "quarantined"]].sum(axis=1))


def rejects(con, file: str | None = None, reason: str | None = None, batch: str | None = None) -> pd.DataFrame:
    """Quarantined rows (by file and row number), optionally of one file name, reason or batch. A file loaded again
    as it was (the same bytes for the same source, ``ingest --force``) quarantines the same rows again: only its
    latest load's are listed, so that each bad row is listed once and a file's rows add up to its load's
    ``quarantined``; ``batch`` names any load, superseded or not."""
    clauses, params = ["TRUE"], {}
    if batch is None:
        clauses.append("r.batch_id IN (SELECT batch_id FROM meta.batches "
                       "QUALIFY row_number() OVER (PARTITION BY sha256, source ORDER BY loaded_at DESC) = 1)")
    for column, value in (("r.source_file", file), ("r.reason", reason), ("r.batch_id", batch)):
        if value is not None:
            clauses.append(f"{column} = ${column[2:]}")
            params[column[2:]] = value
    return con.execute(f"""
        SELECT b.loaded_at, r.source, r.source_file, r.source_row, r.field, r.reason, r.detail, r.raw, r.batch_id
        FROM staging.rejects r LEFT JOIN meta.batches b USING (batch_id)
        WHERE {' AND '.join(clauses)} ORDER BY b.loaded_at, r.source_file, r.source_row""", params).df()


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """How many rows each file lost to each reason, and on which field, most first; with a ``loaded_since`` column
    (the file that has since loaded the row's record), how many of them are still ``outstanding``."""
    keys = ["source_file", "reason", "field"]
    out = frame.groupby(keys).size().rename("rows").reset_index()
    if "loaded_since" in frame:
        left = frame[frame["loaded_since"].isna()].groupby(keys).size().rename("outstanding").reset_index()
        out = out.merge(left, on=keys, how="left").fillna({"outstanding": 0}).astype({"outstanding": "int64"})
    return out.sort_values(["source_file", "rows"], ascending=[True, False], ignore_index=True)


MALFORMED_COLUMN = "字段数不符的原行"  # as_read: the text of a row the reader could not split into the header's fields


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """The quarantined rows of one file in its own layout (its headers, in its order), to correct and load again.
    Party and dropped columns are not kept in quarantine, so they are absent; free text comes back redacted."""
    files = frame["source_file"].unique()
    if len(files) > 1:
        raise ValueError(f"rows of {len(files)} files ({', '.join(files[:3])} …) have different layouts: "
                         "choose one with --file")
    rows = [json.loads(raw) if raw else {} for raw in frame["raw"]]
    # a row with the wrong number of fields cannot be laid out in the file's columns: its text, as kept, goes in a
    # last column of its own, to be split by hand
    rows = [{MALFORMED_COLUMN: r["line"]} if set(r) == {"line"} else r for r in rows]
    headers = list(dict.fromkeys(h for r in rows for h in r if h != MALFORMED_COLUMN))
    headers += [MALFORMED_COLUMN] if any(MALFORMED_COLUMN in r for r in rows) else []
    return pd.DataFrame(rows, columns=headers, dtype=object)
