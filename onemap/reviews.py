"""Analysts' verdicts on alerts (属实 / 误报): the review loop that tells, over time, how often an alert was right.

Kept as an append-only JSON-lines file beside the warehouse (``<home>/reviews/alert_reviews.jsonl``), not in it:
the warehouse is written only by the pipelines and replaced whole on every build, while verdicts are written by
people at the map and must outlive builds. An alert is identified by what it is about (kind, cell, window end
and length, category), which a rebuild that finds the same alert again keeps; the latest verdict on a key
counts, and every earlier one stays in the file.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
from pathlib import Path

import pandas as pd

from onemap import queries
from onemap.metrics import wilson_interval

VERDICTS = {"confirmed": "属实", "false_alarm": "误报"}


def alert_key(kind: str, cell: str, window_end: str, window_days: int, category_code: str | None,
              n_cells: int = 1) -> str:
    """The identity of an alert across builds (the H3 cell id carries its resolution). A category alert is
    scored on the cell and on its k-ring neighbourhood around the same centre: ``n_cells`` tells them apart
    (a single cell's key is as it always was, so verdicts given before keep their alert)."""
    key = f"{kind}|{cell}|{window_end}|{int(window_days)}|{category_code or ''}"
    return key + (f"|{int(n_cells)}" if kind == "category" and n_cells and int(n_cells) > 1 else "")


def keys_of(alerts: pd.DataFrame) -> pd.Series:
    """:func:`alert_key` of each row of an ``onemap.queries.alerts`` frame."""
    return pd.Series([alert_key(r.kind, r.cell, r.window_end, r.window_days,
                                None if pd.isna(r.category_code) else r.category_code, getattr(r, "n_cells", 1))
                      for r in alerts.itertuples()], index=alerts.index, dtype=object)


def add_review(path: Path, key: str, verdict: str, user: str, area: str | None = None, unit: str | None = None
               ) -> dict:
    """Append one verdict (one line, under a file lock: the server's threads and processes may write at once).
    ``user``: the account; ``unit``: its display name (新港街道综治中心), what the map shows beside the verdict."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    line = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "key": key, "verdict": verdict,
            "user": user, "area": area, "unit": unit or user}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    return line


def latest_reviews(path: Path) -> dict[str, dict]:
    """The latest verdict on each alert key ({} when nothing was reviewed). A damaged line (a disk that filled
    mid-write) is skipped, not fatal: the others stay readable."""
    path = Path(path)
    if not path.is_file():
        return {}
    out: dict[str, dict] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                review = json.loads(line)
                out[review["key"]] = review
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return out


def summary(reviewed: pd.DataFrame, by: str = "kind") -> pd.DataFrame:
    """Per group (``by``: a column of ``reviewed``, e.g. kind, month or area) and in all, from :func:`with_reviews`
    output: alerts, episodes (a run of daily alerts on one place counts once: ``queries.episode_count``), reviewed,
    属实, 误报, and the share of reviewed alerts that were confirmed (the alerts'
    precision as the centre judged it; empty before any review) with its 95 % Wilson interval, since a month's
    or a town's handful of verdicts says less than its share suggests."""
    rows = []
    for group, frame in [*reviewed.groupby(by, sort=True), ("all", reviewed)]:
        confirmed = int((frame["review"] == "confirmed").sum())
        false = int((frame["review"] == "false_alarm").sum())
        n = confirmed + false
        low, high = wilson_interval(confirmed, n)
        episodes = queries.episode_count(frame) if "episode_start" in frame else len(frame)
        rows.append({by: group, "alerts": len(frame), "episodes": episodes, "reviewed": n, "confirmed": confirmed,
                     "false_alarm": false,
                     "precision": confirmed / n if n else None,
                     "precision_low": float(low) if n else None, "precision_high": float(high) if n else None})
    return pd.DataFrame(rows)


def with_reviews(alerts: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``alerts`` with the columns ``review`` (confirmed / false_alarm / None) and ``reviewed_by``."""
    latest = latest_reviews(path)
    found = [latest.get(k, {}) for k in keys_of(alerts)]
    return alerts.assign(review=pd.Series([r.get("verdict") for r in found], index=alerts.index, dtype=object),
                         reviewed_by=pd.Series([r.get("user") for r in found], index=alerts.index, dtype=object))


RECORD_WEEKS = 4


def recent_record(con, end: dt.date, scope, path: Path, weeks: int = RECORD_WEEKS) -> str:
    """How often the alerts of the ``weeks`` ending on ``end`` in ``scope`` were right, as the analysts judged them
    (属实 / 误报), with the share's 95 % interval, in one Chinese sentence ("" before any was reviewed): the brief
    and the map's alert panel weigh the alerts they list by it."""
    first = end - dt.timedelta(weeks=weeks) + dt.timedelta(days=1)
    kept = queries.scored_through(con)["alerts_from"]  # the first day alerts were kept: say so, not "4 weeks"
    span = (f"近{weeks}周（{first:%m月%d日}—{end:%m月%d日}）" if kept is None or kept <= first
            else f"{kept:%m月%d日}（现有预警最早的一天）至 {end:%m月%d日}")
    recent = queries.alerts(con, since=first, scope=scope)
    row = summary(with_reviews(recent[recent["window_end"] <= f"{end:%Y-%m-%d}"], path)).iloc[-1]  # "all"
    if not row["reviewed"]:
        return ""
    return (f"{span}的 {row['alerts']} 条预警（{row['episodes']} 起异常，一起连续多日每日一条）中已核实 {row['reviewed']} 条："
            f"属实 {row['confirmed']} 条，误报 {row['false_alarm']} 条，属实率 {100 * row['precision']:.0f}%"
            f"（95% 区间 {100 * row['precision_low']:.0f}%—{100 * row['precision_high']:.0f}%）。")
