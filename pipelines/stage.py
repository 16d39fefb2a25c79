"""Stage one export: rename by profile, type, validate, convert coordinates, place, redact, quarantine.

``stage_export(raw, profile, ctx) -> Staged`` is data in, data out: the raw frame of strings from
``pipelines.readers`` goes in; canonical event rows (ready to upsert into ``core.events``) and reject rows
(file, row, field, reason) come out. Every input row ends up in exactly one of the two.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geodata.areas import AreaSet, bbox, grid_index, resolve_address
from geodata.coordcheck import check_coordinates
from geodata.crs import CoordinateError, looks_like_bd09mc, to_wgs84
from geodata.h3cells import cells_from_points
from onemap.contracts import CLOSED_STATUSES, DISPATCH_MODES, HANDLING_TIERS, OUTCOMES, STATUS_CLOSED
from onemap.warehouse import registered
from pipelines.columns import hex64, lookup, strptime_common, take_text
from pipelines.mappings import CategoryMap
from pipelines.profiles import Profile
from pipelines.readers import ROW
from pipelines.redact import pseudonymise, redact, redact_text, scrub_row_values

STAGES = ("登记受理", "先行调解", "风险研判", "分类流转", "跟踪督办", "案结事了")
STATUS_ALIASES = {
    **{s: s for s in (*STAGES, STATUS_CLOSED)},
    "registered": "登记受理", "待受理": "登记受理", "已受理": "登记受理", "mediating": "先行调解", "调解中": "先行调解",
    "assessing": "风险研判", "dispatched": "分类流转", "已派单": "分类流转", "处理中": "分类流转",
    "in_progress": "跟踪督办", "督办中": "跟踪督办", "closed": STATUS_CLOSED, "办结": STATUS_CLOSED,
    "已结案": STATUS_CLOSED, "结案": STATUS_CLOSED, "已完成": STATUS_CLOSED,
}
# the tier handling a case, as exports name it (a profile's [values.handling_tier] adds a system's own words)
TIER_ALIASES = {
    **{t: t for t in HANDLING_TIERS},
    **dict.fromkeys(("村", "社区", "村级", "社区级", "村居", "村（社区）", "村(社区)", "村/社区", "村居级"), "village"),
    **dict.fromkeys(("镇", "乡", "街道", "乡镇", "镇级", "乡级", "街道级", "镇街", "镇（街道）", "镇(街道)", "乡镇（街道）",
                     "乡镇(街道)", "镇/街道", "乡镇/街道"), "town"),
    **dict.fromkeys(("县", "区", "县级", "区级", "县区", "县（区）", "县(区)", "县/区", "县（市、区）", "县(市、区)", "市辖区"),
                    "county"),
    **dict.fromkeys(("市", "市级", "省", "省级", "上级", "县级以上", "市及以上", "地市"), "above"),
}
DISPATCH_ALIASES = {
    **{d: d for d in DISPATCH_MODES},
    **dict.fromkeys(("单派", "单派单", "单一派单", "单"), "single"),
    **dict.fromkeys(("双派", "双派单", "双向派单", "双"), "dual"),
}
TRUE_WORDS = {"是", "true", "1", "y", "yes", "t", "已", "现场处结"}
FALSE_WORDS = {"否", "false", "0", "n", "no", "f", ""}
CRS_ALIASES = {"gcj02": "gcj02", "gcj-02": "gcj02", "gcj": "gcj02", "bd09": "bd09", "bd-09": "bd09",
               "bd09ll": "bd09", "wgs84": "wgs84", "wgs-84": "wgs84", "cgcs2000": "cgcs2000", "bd09mc": "bd09mc"}
EARLIEST = pd.Timestamp("2000-01-01", tz="Asia/Shanghai")
TIME_FIELDS = ("reported_at", "occurred_at", "due_at", "closed_at")

# quarantine reasons (each has a test)
MISSING_REQUIRED = "missing_required"
BAD_TIME = "bad_time"
TIME_IN_FUTURE = "time_in_future"
TIME_BEFORE_2000 = "time_before_2000"
CLOSED_BEFORE_REPORTED = "closed_before_reported"
UNKNOWN_CATEGORY = "unknown_category"
UNKNOWN_STATUS = "unknown_status"
BAD_COORDINATE = "bad_coordinate"
UNSUPPORTED_CRS = "unsupported_crs"
DEGREE_CRS = ("wgs84", "cgcs2000", "gcj02", "bd09")  # given in degrees: checked for zeros, swaps, scaling
OUTSIDE_JURISDICTION = "outside_jurisdiction"
NO_LOCATION = "no_location"
DUPLICATE_IN_FILE = "duplicate_in_file"
BAD_NUMBER = "bad_number"
MALFORMED_ROW = "malformed_row"
UNKNOWN_VALUE = "unknown_value"  # a coded field (handling tier, dispatch mode) with a word no table knows


@dataclass
class StageContext:
    areas: AreaSet
    categories: CategoryMap
    hmac_key: bytes
    batch_id: str
    source_file: str
    now: pd.Timestamp
    h3_resolution: int = 10
    timezone: str = "Asia/Shanghai"
    taken_at: pd.Timestamp | None = None  # when the export was taken (--taken-at): nothing in it is later


@dataclass
class Staged:
    events: pd.DataFrame
    rejects: pd.DataFrame
    redactions: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)  # source code -> rows quarantined as unknown_category
    unusable_points: int = 0  # loaded rows whose coordinates could not be used (placed by address or grid code)
    other_outcomes: dict[str, int] = field(default_factory=dict)  # outcome words outside OUTCOMES -> loaded rows
    header_notes: tuple[str, ...] = ()  # what the file's header lacks or adds against the profile (_header_notes)
    not_understood: dict[str, dict[str, int]] = field(default_factory=dict)  # "header (field)" -> value -> rows


class MissingColumnError(ValueError):
    """A required column is absent from the file header: the whole file is refused, nothing is loaded."""


class _Rejects:
    def __init__(self, n: int):
        self.reason = np.full(n, None, dtype=object)
        self.field = np.full(n, None, dtype=object)
        self.detail = np.full(n, None, dtype=object)

    def add(self, mask: np.ndarray, field_name: str, reason: str, detail=None, values=None) -> None:
        """Record ``reason`` for the rows in ``mask`` that have none yet (the first reason wins).

        ``detail`` is a text, or a per-row array; with ``values`` (per-row) the detail of each row is
        ``detail + str(value)``, formatted only for the rows that are rejected here."""
        new = np.asarray(mask, dtype=bool) & (self.reason == None)  # noqa: E711 - first reason wins
        if not new.any():
            return
        self.reason[new] = reason
        self.field[new] = field_name
        if values is not None:  # a Series or an array; only the rejected rows are read
            rows = np.flatnonzero(new)
            picked = values.iloc[rows] if isinstance(values, pd.Series) else np.asarray(values, dtype=object)[rows]
            self.detail[new] = [f"{detail}{'' if pd.isna(v) else v}" for v in picked]
        elif detail is not None:
            self.detail[new] = np.asarray(detail, dtype=object)[new] if np.ndim(detail) else detail

    @property
    def rejected(self) -> np.ndarray:
        return self.reason != None  # noqa: E711


SLASH_DATE = r"^(\d{1,2})/(\d{1,2})/\d{4}"  # 03/11/2026: day or month first, which the text does not say
CJK_DATE = (r"^(\d{4})年(\d{1,2})月(\d{1,2})日\s*", r"\1-\2-\3 ")  # 2026年11月13日 10:20
CJK_TIME = (r"(\d{1,2})时(\d{1,2})分(?:(\d{1,2})秒)?$", r"\1:\2:\3")  # 14时20分(05秒)


def _slash_parts(values: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray] | None:
    """A column as trimmed text with the two leading numbers of its slash dates (``SLASH_DATE``; NaN elsewhere),
    or None when it holds no slash (the common case, found by Arrow at once)."""
    text = values.astype(pd.StringDtype("pyarrow"))
    if not text.str.contains("/", regex=False).any():
        return None
    text = text.str.strip()
    parts = text.str.extract(SLASH_DATE)
    return (text, pd.to_numeric(parts[0], errors="coerce").to_numpy(),
            pd.to_numeric(parts[1], errors="coerce").to_numpy())


def _slash_order(values: pd.Series) -> tuple[bool, np.ndarray]:
    """Whether a column's slash dates (``SLASH_DATE``) are day first, and the rows that cannot be read. One order
    holds for the whole column: a first number over 12 says day first, a second one over 12 month first. A column
    with both cannot be read, nor one with neither (03/11 may be 3 November or 11 March): those rows are marked,
    not each read its own way or guessed (a date whose two numbers are equal reads alike either way)."""
    found = _slash_parts(values)
    if found is None:
        return False, np.zeros(len(values), dtype=bool)
    _, first, second = found
    day_first, month_first = np.nan_to_num(first) > 12, np.nan_to_num(second) > 12
    if day_first.any() and month_first.any():
        return False, ~np.isnan(first)
    if not day_first.any() and not month_first.any():  # nothing says the order: 03/11 may be either day
        return False, ~np.isnan(first) & (first != second)
    return bool(day_first.any()), np.zeros(len(values), dtype=bool)


def _undeclared_slash_dates(values: pd.Series, formats: tuple[str, ...]) -> np.ndarray:
    """The rows of a column whose profile names its time formats that hold a slash date none of those formats
    reads and whose numbers do not say the order (03/11/2026): the profile speaks for its own layouts only."""
    found = _slash_parts(values)
    if found is None:
        return np.zeros(len(values), dtype=bool)
    text, first, second = found
    ambiguous = (first <= 12) & (second <= 12) & (first != second)
    declared = np.zeros(len(values), dtype=bool)
    for fmt in formats:
        declared |= pd.to_datetime(text, format=fmt, errors="coerce").notna().to_numpy()
    return ambiguous & ~declared


def check_time_bounds(rej: _Rejects, ctx: StageContext, columns: list[tuple[pd.Series, str, bool]]) -> None:
    """Times later than the export was taken (``--taken-at``, else the load; a day's grace for clocks and time
    zones): ``time_in_future``; then, for the columns flagged so, before 2000: ``time_before_2000``. ``columns``:
    (times, header, whether a time before 2000 is refused) each, checked in that order (the first reason wins)."""
    limit, taken = (ctx.taken_at, "导出时间（--taken-at）") if ctx.taken_at is not None else (ctx.now, "导入时间")
    for times, header, _ in columns:
        rej.add((times > limit + pd.Timedelta(days=1)).to_numpy(), header, TIME_IN_FUTURE, f"{header}晚于{taken}一天以上")
    for times, header, old in columns:
        if old:
            rej.add((times < EARLIEST).to_numpy(), header, TIME_BEFORE_2000, f"{header}早于 2000-01-01")


def _parse_times(values: pd.Series, tz: str, formats: tuple[str, ...] = (), store_tz: str | None = None,
                 day_first: bool = False) -> pd.Series:
    """Parse wall-clock timestamps that are local time in ``tz`` and express them in ``store_tz``.

    The profile's ``formats`` are tried first, then the common export format, both fast; the rest is
    parsed by pandas' format inference. Text that carries its own UTC offset (``...Z``, ``+08:00``)
    keeps that offset instead of being read as local time. Where summer time ends, an ambiguous wall
    clock time is read as its first (summer-time) occurrence; a time that does not exist where summer
    time starts is moved forward to the first valid time.
    """
    s = values.astype(pd.StringDtype("pyarrow")).str.strip().replace("", pd.NA)
    s = s.str.replace(*CJK_DATE, regex=True) if s.str.contains("年", regex=False).any() else s
    if s.str.contains("时", regex=False).any():  # 14时20分 → 14:20:00 (an empty seconds group reads as 00)
        s = s.str.replace(*CJK_TIME, regex=True).str.replace(r":$", ":00", regex=True)
    parsed = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    for fmt in formats:
        todo = (parsed.isna() & s.notna()).to_numpy()
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(s[todo], format=fmt, errors="coerce")
    todo = (parsed.isna() & s.notna()).to_numpy()
    if todo.all():  # the common export format (YYYY-MM-DD HH:MM:SS), by Arrow's parser
        parsed[:] = strptime_common(s)
    elif todo.any():
        parsed[todo] = strptime_common(s[todo])
    local = _localise(parsed, tz)
    todo = (parsed.isna() & s.notna()).to_numpy()
    if todo.any():
        rest = s[todo]
        aware = rest.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).fillna(False).to_numpy(dtype=bool)
        if (~aware).any():
            try:
                wall = pd.to_datetime(rest[~aware], format="mixed", errors="coerce", dayfirst=day_first)
                wall = wall.dt.tz_convert(tz) if wall.dt.tz is not None else _localise(wall, tz)
            except (ValueError, TypeError, AttributeError):  # zone names / offsets the regex did not see: rare, slow
                wall = rest[~aware].map(lambda v: _one_time(v, tz)).astype(local.dtype)
            local[wall.index] = wall
        if aware.any():
            local[rest.index[aware]] = pd.to_datetime(rest[aware], format="mixed", errors="coerce",
                                                      utc=True).dt.tz_convert(tz)
    return local.dt.tz_convert(store_tz) if store_tz and store_tz != tz else local


def _one_time(text: str, tz: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError):
        return pd.NaT
    if t is pd.NaT:
        return pd.NaT
    if t.tzinfo is not None:
        return t.tz_convert(tz)
    return t.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")


def _localise(naive: pd.Series, tz: str) -> pd.Series:
    return naive.dt.tz_localize(tz, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="shift_forward")


def _to_float(values: pd.Series) -> np.ndarray:
    """Numbers from text; anything that is not a number becomes NaN. Arrow's parser when the whole
    column is clean (the usual case, several times faster), pandas' lenient one otherwise."""
    text = values.astype(pd.StringDtype("pyarrow"))
    try:
        return pc.cast(text.array.__arrow_array__(), pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)


def _parse_bool(values: pd.Series, yes: tuple[str, ...] = (), no: tuple[str, ...] = ()) -> tuple[pd.Series, np.ndarray]:
    """是/否 and their kin; ``yes`` / ``no``: the field's own words (保密 / 不保密)."""
    s = values.fillna("").astype(str).str.strip().str.lower()
    true = s.isin(TRUE_WORDS | set(yes)).to_numpy()
    false = s.isin(FALSE_WORDS | set(no)).to_numpy()
    return pd.Series(true, index=values.index), ~(true | false)


def _json_records(frame: pd.DataFrame) -> pd.Series:
    """One JSON object per row, keys with missing values left out, written by DuckDB (``to_json`` escapes
    each value; ``concat_ws`` skips the missing members), not by a Python loop over rows."""
    if not len(frame.columns):
        return pd.Series("{}", index=frame.index, dtype=object)
    table = pa.table({f"c{i}": frame[c].astype(pd.StringDtype("pyarrow")).array.__arrow_array__()
                      for i, c in enumerate(frame.columns)})
    members = ", ".join(f"CASE WHEN c{i} IS NOT NULL THEN {_sql_text(json.dumps(str(c), ensure_ascii=False) + ':')}"
                        f" || to_json(c{i}) END" for i, c in enumerate(frame.columns))
    con = _scratch_duckdb()
    with registered(con, "ext_frame", table):
        text = con.sql(f"SELECT '{{' || concat_ws(',', {members}) || '}}' AS j FROM ext_frame").to_arrow_table()
    return pd.Series(pd.StringDtype("pyarrow").__from_arrow__(text.column("j")), index=frame.index)


_SCRATCH = threading.local()


def _scratch_duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for computing columns, one per thread (opening one costs ~30 ms per chunk)."""
    if getattr(_SCRATCH, "con", None) is None:
        _SCRATCH.con = duckdb.connect()
    return _SCRATCH.con


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _coded(values: pd.Series, aliases: dict[str, str]) -> tuple[pd.Series, np.ndarray]:
    """A coded field's canonical words (missing where empty) and the mask of given values no alias knows.
    Matched as written, then without spaces and case (``Village``, ``镇 级``)."""
    text = values.astype("string").str.strip().fillna("")
    found = lookup(text, lambda v: None if not v else aliases.get(v, aliases.get("".join(str(v).split()).casefold())))
    canonical = pd.Series(found, index=values.index, dtype=object)
    return canonical, (text.ne("").to_numpy() & canonical.isna().to_numpy())


def _content_hash(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A stable digest of the fields a later export may change; equal digest = nothing to update.

    Each column is hashed in its own type (timestamps as UTC integers, numbers as numbers, text as
    text), so no column is formatted as text first."""
    values = {}
    for c in columns:
        v = frame[c]
        if isinstance(v.dtype, pd.DatetimeTZDtype):
            v = v.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]").astype("int64").where(v.notna(), -1)
        elif v.dtype == object:
            v = v.astype(pd.StringDtype("pyarrow"))
        values[c] = v
    digest = pd.util.hash_pandas_object(pd.DataFrame(values, index=frame.index), index=False).to_numpy()
    return hex64(digest).set_axis(frame.index)


def _row_hash_ids(raw: pd.DataFrame, profile: Profile, found: dict[str, str]) -> pd.Series:
    """Record ids for an export without one: SHA-1 of the row's trimmed values + occurrence number.

    ``<16 hex>-<n>``: n = 1, 2, … numbers rows with identical values in file order, so genuinely repeated
    rows (two calls of the same type on the same day and block) stay separate records, and loading the
    same file again yields the same ids. The hashed columns are the profile's ``[record_id] columns``
    (canonical fields or headers), else every column ordered by header name except party identifiers
    and dropped columns.
    """
    if profile.record_id_columns:
        cols = [found.get(c, c) for c in profile.record_id_columns]
        missing = [c for c in cols if c not in raw.columns]
        if missing:
            raise MissingColumnError(f"[record_id] columns not in the file: {missing}")
    else:
        skip = {ROW, *profile.party_columns, *profile.drop_columns}
        cols = sorted((c for c in raw.columns if c not in skip), key=lambda c: c.strip().lower())
    vals = raw[cols].astype("string")
    joined = vals.iloc[:, 0].str.strip().fillna("\x00")
    for c in cols[1:]:
        joined = joined + "\x1f" + vals[c].str.strip().fillna("\x00")
    digest = pd.Series([hashlib.sha1(t.encode("utf-8")).hexdigest()[:16] for t in joined], index=raw.index)
    occurrence = digest.groupby(digest, sort=False).cumcount() + 1
    return digest + "-" + occurrence.astype(str)


def _latest_time(raw: pd.DataFrame, out: pd.DataFrame, names: tuple[str, ...], local_tz: str,
                 formats: tuple[str, ...], store_tz: str) -> pd.Series:
    """Per row, the latest of the named times that the row has: canonical time fields already parsed in
    ``out``, or headers of ``raw`` parsed here (an unparseable auxiliary time is ignored, not rejected)."""
    lower = {c.strip().lower(): c for c in raw.columns if c != ROW}
    series = []
    for name in names:
        if name in TIME_FIELDS:
            series.append(out[name])
        elif name.strip().lower() in lower:
            series.append(_parse_times(raw[lower[name.strip().lower()]], local_tz, formats).dt.tz_convert(store_tz))
    if not series:
        return pd.Series(pd.NaT, index=raw.index, dtype=f"datetime64[ns, {store_tz}]")
    return pd.concat(series, axis=1).max(axis=1)


#: what a later export of a record may change (a corrected report or occurrence time or address too: an export
#: that only moves a case's 上报时间 must move it in the warehouse, its day's counts and alerts with it)
HASHED_FIELDS = ["status", "closed_at", "due_at", "outcome", "on_site_closed", "satisfaction", "category_code",
                 "summary_redacted", "lng", "lat", "grid_code", "confidential", "department", "handling_tier",
                 "dispatch_mode", "reported_at", "occurred_at", "address_redacted"]


def mapped_columns(raw: pd.DataFrame, profile: Profile, source_file: str) -> tuple[dict[str, pd.Series], dict[str, str]]:
    """The file's columns by canonical field, ``[values.<field>]`` applied, and the header each came from; a
    required field missing from the header refuses the file (MissingColumnError)."""
    headers = [c for c in raw.columns if c != ROW]
    found = profile.resolve_headers(headers)
    missing = [f for f in profile.required if f not in found]
    if missing:
        wanted = "; ".join(f"{f} (one of: {', '.join(profile.columns.get(f, (f,)))})" for f in missing)
        raise MissingColumnError(f"{source_file}: required column(s) not in the header: {wanted}. "
                                 f"Header is: {', '.join(headers)}")
    col = {f: raw[h] for f, h in found.items()}
    for f, mapping in profile.values.items():  # [values.<field>]: raw value -> canonical value
        if f in col:
            key = col[f].astype("string").str.strip().str.casefold()
            col[f] = key.map(mapping).astype(object).where(key.isin(mapping.keys()), col[f])
    return col, found


def canonical_status(raw_status: pd.Series) -> pd.Series:
    """Product statuses of raw status words (STATUS_ALIASES, after the profile's [values.status]); None unknown."""
    return pd.Series(lookup(raw_status, lambda v: STATUS_ALIASES.get(v, STATUS_ALIASES.get(str(v).lower()))),
                     index=raw_status.index)


def stage_export(raw: pd.DataFrame, profile: Profile, ctx: StageContext,
                 malformed: pd.DataFrame | None = None) -> Staged:
    n = len(raw)
    col, found = mapped_columns(raw, profile, ctx.source_file)
    if profile.crs_column and profile.crs_column in raw.columns:
        col["__crs__"] = raw[profile.crs_column]
    if profile.record_id == "row_hash":
        col["source_record_id"] = _row_hash_ids(raw, profile, found)
        found["source_record_id"] = "(row hash)"

    def get(name: str) -> pd.Series:
        return col[name] if name in col else pd.Series([None] * n, index=raw.index, dtype=object)

    rej = _Rejects(n)
    out = pd.DataFrame(index=raw.index)
    out["source"] = profile.source
    rid = get("source_record_id").astype("string").str.strip()
    out["source_record_id"] = rid
    out["event_id"] = profile.source + ":" + rid

    for f in profile.required:
        empty = get(f).astype("string").str.strip().fillna("").eq("").to_numpy()
        rej.add(empty, found.get(f, f), MISSING_REQUIRED, f"必填项“{found.get(f, f)}”为空")

    # ---------------------------------------------------------------- times
    local_tz = profile.timezone or ctx.timezone  # the zone the export's wall-clock times are in
    for f in TIME_FIELDS:
        values = get(f)
        # (a profile that names its formats says the order itself)
        if profile.time_formats:
            day_first = False
            rej.add(_undeclared_slash_dates(values, profile.time_formats), found.get(f, f), BAD_TIME,
                    f"{found.get(f, f)}：日/月顺序无法确定（03/11 可读作 3 月 11 日或 11 月 3 日），且不是配置 "
                    "[times] formats 所列的写法：", values=values)
        else:
            day_first, mixed = _slash_order(values)
            rej.add(mixed, found.get(f, f), BAD_TIME, f"{found.get(f, f)}：本文件的日/月顺序无法确定（各行不一，或没有"
                    "一行能说明，如 03/11 可读作 3 月 11 日或 11 月 3 日；可在配置的 [times] formats 中写明）：", values=values)
        parsed = _parse_times(values, local_tz, profile.time_formats, day_first=day_first)
        if f in profile.date_only:  # a date and no time of day: local midnight, precision kept in ext
            parsed = _localise(parsed.dt.tz_localize(None).dt.normalize(), local_tz)
        parsed = parsed.dt.tz_convert(ctx.timezone)
        given = values.astype("string").str.strip().fillna("").ne("").to_numpy()
        rej.add(given & parsed.isna().to_numpy(), found.get(f, f), BAD_TIME,
                f"{found.get(f, f)}无法识别为时间（可在配置的 [times] formats 中写明它的写法）：", values=values)
        out[f] = parsed
    rep = out["reported_at"]
    check_time_bounds(rej, ctx, [(out[f], found.get(f, f), f != "closed_at")
                                 for f in ("reported_at", "occurred_at", "closed_at")])
    rej.add((out["closed_at"] < rep).to_numpy(), found.get("closed_at", "closed_at"), CLOSED_BEFORE_REPORTED,
            f"{found.get('closed_at', '办结时间')}早于{found.get('reported_at', '上报时间')}")

    # ---------------------------------------------------------------- category and status
    raw_code = get("category_raw_code").astype(pd.StringDtype("pyarrow")).str.strip()
    cat = ctx.categories.map(profile.category_system, raw_code)
    code_text = raw_code.fillna("")
    deliberate = code_text.isin(list(profile.unmapped_codes)).to_numpy(dtype=bool)
    unmapped = cat["category_code"].isna().to_numpy() & raw_code.notna().to_numpy()
    rej.add(unmapped & deliberate, found.get("category_raw_code", "category_raw_code"), UNKNOWN_CATEGORY,
            f"该代码按配置 {profile.name} 有意不纳入（其 [categories] unmapped 所列）：",
            values=code_text)
    rej.add(unmapped, found.get("category_raw_code", "category_raw_code"), UNKNOWN_CATEGORY,
            f"代码不在 {profile.category_system} 类别对照表中：", values=code_text)
    out["category_code"] = cat["category_code"]
    out["category_raw_code"] = raw_code  # Arrow-backed text (missing = NA): no per-row objects
    raw_name = get("category_raw_name").astype(pd.StringDtype("pyarrow")).str.strip()
    out["category_raw_name"] = raw_name
    out["category_method"] = "map"
    if profile.classify_free_text:
        # no code but some text: left for the text model (pipelines.classify), which sets the category and
        # its confidence or quarantines the row as unclassified
        text_given = get("summary").astype("string").str.strip().fillna("").ne("").to_numpy()
        pending = raw_code.isna().to_numpy() & text_given
        out.loc[pending, "category_method"] = "model"
        rej.add(raw_code.isna().to_numpy() & ~text_given, found.get("category_raw_code", "category_raw_code"),
                MISSING_REQUIRED, "没有类别代码，也没有可供分类的文字")
    out["category_confidence"] = 1.0
    out["flags"] = cat["flags"]

    raw_status = get("status").fillna("").astype(str).str.strip()
    status = canonical_status(raw_status)
    closed_given = out["closed_at"].notna()
    status = status.where(~(raw_status.eq("") & closed_given), STATUS_CLOSED)
    status = status.where(~(raw_status.eq("") & ~closed_given), STAGES[0])
    rej.add(status.isna().to_numpy(), found.get("status", "status"), UNKNOWN_STATUS,
            f"{found.get('status', '处理状态')}无法识别（可在配置的 [values.status] 中对应到产品状态）：", values=raw_status)
    out["status"] = status
    closed_rule = pd.Series(False, index=raw.index)
    if profile.closed_at_from:  # [status] closed_at_from: a disposition without a close time
        need = status.isin(CLOSED_STATUSES) & ~closed_given
        if need.any():
            latest = _latest_time(raw, out, profile.closed_at_from, local_tz, profile.time_formats, ctx.timezone)
            closed_rule = need & latest.notna()
            out.loc[closed_rule, "closed_at"] = latest[closed_rule]
            closed_given = out["closed_at"].notna()
            rej.add((out["closed_at"] < rep).to_numpy(), found.get("closed_at", "closed_at"),
                    CLOSED_BEFORE_REPORTED, "办结时间（按配置的 closed_at_from 规则）早于上报时间")
    # a closed case without a close time is closed "some time before this export": keep it honest, reject
    rej.add((status.isin(CLOSED_STATUSES) & ~closed_given).to_numpy(), found.get("closed_at", "closed_at"),
            MISSING_REQUIRED, "状态为已办结，但办结时间为空")

    # ---------------------------------------------------------------- process fields
    out["outcome"] = get("outcome").astype(pd.StringDtype("pyarrow")).str.strip().replace("", pd.NA)
    on_site, bad = _parse_bool(get("on_site_closed"))
    # an export without the column does not say: unknown (NULL), not "no" (现场处结率 counts recorded cases only)
    out["on_site_closed"] = on_site if "on_site_closed" in found else None
    rej.add(bad, found.get("on_site_closed", "on_site_closed"), BAD_NUMBER, "应为 是/否")
    conf, bad = _parse_bool(get("confidential"), yes=("保密", "涉密"), no=("不保密", "非保密", "公开"))
    out["confidential"] = conf
    rej.add(bad, found.get("confidential", "confidential"), BAD_NUMBER, "应为 是/否（或 保密/不保密）")
    sat_raw = get("satisfaction").astype("string").str.strip().replace("", pd.NA)
    sat = pd.Series(_to_float(sat_raw), index=sat_raw.index)
    rej.add((sat_raw.notna() & (sat.isna() | (sat < 0) | (sat > 5))).to_numpy(),
            found.get("satisfaction", "satisfaction"), BAD_NUMBER, "满意度应为 0–5 的数字")
    out["satisfaction"] = sat.astype(float)
    out["department"] = get("department")
    for f, aliases, meaning in (("handling_tier", TIER_ALIASES, "村（社区）/ 镇（街道）/ 县（区）/ 市级及以上"),
                                ("dispatch_mode", DISPATCH_ALIASES, "单派 / 双派")):
        out[f], unknown = _coded(get(f), aliases)
        rej.add(unknown, found.get(f, f), UNKNOWN_VALUE, f"{found.get(f, f)}无法识别（应为{meaning}）：",
                values=get(f))

    # ---------------------------------------------------------------- place
    unusable = _stage_place(out, get, found, profile, ctx, rej)

    # ---------------------------------------------------------------- personal information
    summary, counts = redact(get("summary"))
    address, addr_counts = redact(get("address"))
    out["summary_redacted"] = summary
    out["address_redacted"] = address
    redactions = {k: counts.get(k, 0) + addr_counts.get(k, 0) for k in set(counts) | set(addr_counts)}
    party_cols = [c for c in profile.party_columns if c in raw.columns]
    own = [raw[c] for c in party_cols]  # each row's own party values, taken out of its free text
    if own:
        out["summary_redacted"], n_summary = scrub_row_values(out["summary_redacted"], own)
        out["address_redacted"], n_address = scrub_row_values(out["address_redacted"], own)
        if n_summary + n_address:
            redactions["party_value"] = n_summary + n_address
    if party_cols:
        keys = [pseudonymise(raw[c], ctx.hmac_key) for c in party_cols]
        out["party_keys"] = [[k for k in ks if k is not None] or None for ks in zip(*keys, strict=True)]
    else:
        out["party_keys"] = None
    # headers not mapped to a field, and the raw text of value-mapped fields (e.g. a US disposition), go to ext
    value_mapped = {found[f] for f in profile.values if f in found}
    mapped_headers = ((set(found.values()) - value_mapped) | set(profile.party_columns) | set(profile.drop_columns)
                      | {ROW})
    extra = [c for c in raw.columns if c not in mapped_headers]
    # whatever lands in ext is redacted like the summary: a free-text column the profile did not name
    # (a disposition note, a resolution description) must not smuggle names or phone numbers in
    ext_frame = pd.DataFrame({c: scrub_row_values(redact(raw[c])[0], own)[0] if own else redact(raw[c])[0]
                              for c in extra}, index=raw.index)
    if profile.date_only:
        ext_frame["time_precision"] = "day"
    rule = f"latest of {', '.join(profile.closed_at_from)} (status closed, no close time given)"
    if closed_rule.any():
        ext_frame["closed_at_rule"] = np.where(closed_rule.to_numpy(), rule, None)
    out["ext"] = _json_records(ext_frame)

    # ---------------------------------------------------------------- lineage
    out["linked_event_id"] = None
    out["batch_id"] = ctx.batch_id
    out["source_file"] = ctx.source_file
    out["source_row"] = raw[ROW].astype("int64")
    out["updated_at"] = ctx.now

    # a record id twice in one file: the later row is the newer state; earlier rows are quarantined. Among the rows
    # that pass the checks only: a later copy quarantined for a reason of its own leaves the earlier one loaded
    passing = ~rej.rejected
    dup = out["event_id"].where(passing).duplicated(keep="last").to_numpy() & passing
    rej.add(dup, found.get("source_record_id", "source_record_id"), DUPLICATE_IN_FILE,
            "同一编号在本文件后面再次出现，已载入后面那一行")

    keep = ~rej.rejected
    unknown = rej.reason == UNKNOWN_CATEGORY
    unmapped_counts = code_text[unknown].value_counts()
    unmapped_counts = {str(k): int(v) for k, v in unmapped_counts.items()}
    events = out if keep.all() else out[keep]
    events["content_hash"] = _content_hash(events, HASHED_FIELDS)
    rejects = _reject_frame(raw, rej, profile, ctx, [found[f] for f in FREE_TEXT_FIELDS if f in found] + extra)
    rejects = with_malformed(rejects, malformed, raw, profile, ctx)
    outcomes = events["outcome"].dropna()
    other = outcomes[~outcomes.isin(OUTCOMES)].value_counts()
    return Staged(events.reset_index(drop=True), rejects, redactions, unmapped_counts,
                  int((unusable & keep).sum()), {str(k): int(v) for k, v in other.items()},
                  _header_notes(profile, found, raw.columns, [c for c in extra if c not in value_mapped]),
                  _not_understood(raw, rej, found))


def _not_understood(raw: pd.DataFrame, rej: _Rejects, found: dict[str, str]) -> dict[str, dict[str, int]]:
    """The words of coded fields no table reads (bad_number, unknown_value), per field, with how many rows each
    sent to quarantine: a 满意度 column saying 满意 / 基本满意 is one [values.satisfaction] table away from loading."""
    field_of = {h: f for f, h in found.items()}
    out = {}
    for header in pd.unique(rej.field[np.isin(rej.reason, [BAD_NUMBER, UNKNOWN_VALUE])]):
        if header in raw.columns and header in field_of:
            rows = (rej.field == header) & np.isin(rej.reason, [BAD_NUMBER, UNKNOWN_VALUE])
            counts = raw[header][rows].astype("string").str.strip().value_counts()
            out[f"{header} ({field_of[header]})"] = {str(k): int(v) for k, v in counts.items()}
    return out


def with_malformed(rejects: pd.DataFrame, malformed: pd.DataFrame | None, raw: pd.DataFrame, profile: Profile,
                   ctx: StageContext) -> pd.DataFrame:
    """``rejects`` and the rows the reader could not split into the header's fields (``malformed_row``)."""
    if malformed is None or not len(malformed):
        return rejects
    return pd.concat([rejects, pd.DataFrame({
        "batch_id": ctx.batch_id, "source": profile.source, "source_file": ctx.source_file,
        "source_row": malformed["source_row"].astype("int64").to_numpy(), "field": "*",
        "reason": MALFORMED_ROW, "detail": malformed["detail"].to_numpy(),
        "raw": [_malformed_raw(line, fields, list(raw.columns.drop(ROW, errors="ignore")), profile)
                for line, fields in zip(malformed["raw"], malformed.get("fields", [None] * len(malformed)),
                                        strict=True)],
        "scrubbed": True})], ignore_index=True)


def _header_notes(profile: Profile, found: dict[str, str], headers, kept: list[str]) -> tuple[str, ...]:
    """What a data engineer must know of this file's header against its profile: fields the profile maps that the
    file lacks (their values are empty: a misspelt header reads as missing data), [party] columns it lacks (if it
    names callers under another header, that column is kept as it is), and the columns kept unmapped in ext."""
    notes = []
    if profile.party_columns and not any(c in headers for c in profile.party_columns):
        notes.append(f"WARNING: none of the [party] columns ({', '.join(profile.party_columns)}) is in this file's "
                     "header — if the file gives callers' names or numbers under another header, add it to [party] "
                     "(kept otherwise, in ext, with only its phone and ID numbers and cued names masked)")
    absent = [f"{f} ({' / '.join(profile.columns[f])})" for f in profile.columns if f not in found]
    if absent:
        notes.append("fields the profile maps but this file's header lacks (loaded empty): " + ", ".join(absent))
    if kept:
        notes.append("columns kept in ext, mapped to no field (free text redacted): " + ", ".join(map(str, kept)))
    return tuple(notes)


def _place_text(get) -> pd.Series:
    """What a row without a usable point is placed by: the export's own town and village columns (所属街道,
    所属社区: the platform's record of where the case belongs), then the address, as one text — the town named
    first decides among same-named villages, and a road named after another town (东涌路) does not move it."""
    parts = [get(f).astype("string").str.strip().fillna("") for f in ("town_name", "village_name", "address")]
    return parts[0] + parts[1] + parts[2]


def _stage_place(out, get, found, profile, ctx: StageContext, rej: _Rejects) -> np.ndarray:
    """Place each row (point, else address or grid code; see below); returns the rows that gave coordinates the
    load could not use, whatever placed them, so that the summary can say how many."""
    n = len(out)
    lng_raw = get("lng").astype("string").str.strip().replace("", pd.NA)
    lat_raw = get("lat").astype("string").str.strip().replace("", pd.NA)
    lng = _to_float(lng_raw)
    lat = _to_float(lat_raw)
    unparsable = (lng_raw.notna() & np.isnan(lng)).to_numpy() | (lat_raw.notna() & np.isnan(lat)).to_numpy()

    crs = np.full(n, profile.crs, dtype=object)
    # per-row CRS column (e.g. 坐标系 = GCJ02 / BD09) overrides the profile default
    row_crs = ctx_row_crs(get, profile)
    if row_crs is not None:
        norm = lookup(row_crs, lambda v: CRS_ALIASES.get(k := str(v).strip().lower(), k or None) if pd.notna(v) else None)
        crs = np.where(pd.isna(norm), profile.crs, norm)
    bd09mc = crs == "bd09mc"
    rej.add(bd09mc, profile.crs_column or "crs", UNSUPPORTED_CRS,
            "不支持 BD09MC（百度墨卡托米制坐标）：请导出百度经纬度（bd09）")
    # metres given as degrees (a Baidu SDK's BD09MC under a bd09 profile): said so, not taken for bad degrees and
    # placed by address as if nothing were wrong
    metres = np.zeros(n, dtype=bool)
    degrees = np.isin(crs, DEGREE_CRS) & ~np.isnan(lng) & ~np.isnan(lat)
    metres[degrees] = looks_like_bd09mc(lng[degrees], lat[degrees])
    rej.add(metres, found.get("lng", "lng"), UNSUPPORTED_CRS,
            "坐标数值远大于 180，像是 BD09MC（百度墨卡托米制坐标），不支持：请导出百度经纬度（bd09），"
            "或检查配置中的坐标系：", values=lng_raw + "," + lat_raw)
    bd09mc = bd09mc | metres

    has_xy = ~np.isnan(lng) & ~np.isnan(lat) & ~bd09mc
    w_lng = np.full(n, np.nan)
    w_lat = np.full(n, np.nan)
    issue = np.full(n, None, dtype=object)
    for name in pd.unique(crs[has_xy]):
        sel = has_xy & (crs == name)
        x, y = lng[sel], lat[sel]
        if name in DEGREE_CRS:
            # sanity first, on the raw degrees: zeros, swapped, ×1e6 integers, out of range
            chk = check_coordinates(x, y, bbox=bbox(ctx.areas), margin_deg=0.05)
            x, y = chk["lng"].to_numpy(dtype=float), chk["lat"].to_numpy(dtype=float)
            iss = chk["issue"].to_numpy(dtype=object)
            bad = pd.notna(iss) & ~chk["repaired"].to_numpy(dtype=bool)
            issue[np.flatnonzero(sel)[bad]] = iss[bad]
        try:
            cx, cy = to_wgs84(x, y, src_crs=name)
        except CoordinateError as exc:
            rej.add(sel, profile.crs_column or "crs", UNSUPPORTED_CRS, str(exc))
            continue
        w_lng[sel], w_lat[sel] = cx, cy

    hit = grid_index(ctx.areas, w_lng, w_lat)
    located = hit >= 0
    outside = (~np.isnan(w_lng) & ~located) | (issue == "outside_jurisdiction")
    # a point given but unusable (zero, out of range, outside) falls back to the address, then to the grid
    # code; if those fail too, the row is quarantined with the coordinate reason. Only the rows without a
    # usable point (``rest``, few in a normal export) go through the fallbacks, as Python objects.
    rest = np.flatnonzero(~located)
    r_town, r_village, r_grid = (np.full(len(rest), None, dtype=object) for _ in range(3))
    r_precision = np.full(len(rest), "none", dtype=object)
    addr_ok = known_grid = np.zeros(len(rest), dtype=bool)
    if len(rest):
        found_at = resolve_address(ctx.areas, _place_text(get).iloc[rest])
        r_town, r_village, r_grid = (np.array(found_at[c], dtype=object)
                                     for c in ("town_code", "village_code", "grid_code"))
        r_precision = found_at["precision"].to_numpy(dtype=object)
        addr_ok = r_precision != "none"
        grid_given = get("grid_code").iloc[rest].astype("string").str.strip().fillna("")
        grid_codes = ctx.areas.grids["code"].astype(str)
        if profile.grid_match == "code_or_name":  # e.g. police beats PN1…PN13 that are grid NAMES of the deployment
            names = ctx.areas.grids["name"].astype(str).str.strip().str.casefold()
            unique = ~names.duplicated(keep=False)
            by_name = dict(zip(names[unique], grid_codes[unique], strict=True))
            named = grid_given.str.casefold().map(by_name)
            grid_given = grid_given.where(grid_given.isin(set(grid_codes)) | named.isna(), named)
        known_grid = grid_given.isin(set(grid_codes)).to_numpy()
        # the finer of the two: an address naming a grid, else the export's own grid code, else the address's
        # village or town (a grid code beside an address of its village was dropped for the village)
        by_code = known_grid & (r_precision != "grid")
        addr_ok = addr_ok & ~by_code
        r_town, r_village = np.where(by_code, None, r_town), np.where(by_code, None, r_village)
        r_grid = np.where(by_code, grid_given.to_numpy(dtype=object), np.where(addr_ok, r_grid, None))
        r_grid = np.where(pd.isna(r_grid), None, r_grid)
        r_precision = np.where(by_code, "grid", np.where(addr_ok, r_precision, "none"))
        # a grid known only by its code: parents from the deployment's layers (code prefixes as the fallback)
        g2v = dict(zip(grid_codes, ctx.areas.grids["parent_code"].astype(str), strict=True))
        v2t = dict(zip(ctx.areas.villages["code"].astype(str), ctx.areas.villages["parent_code"].astype(str),
                       strict=True))
        need = pd.isna(r_village) & pd.notna(r_grid)
        r_village[need] = _parents(r_grid[need], g2v, 12)
        need = pd.isna(r_town) & pd.notna(r_village)
        r_town[need] = _parents(r_village[need], v2t, 9)

    no_place = np.zeros(n, dtype=bool)
    no_place[rest] = ~addr_ok & ~known_grid
    rej.add(no_place & unparsable, found.get("lng", "lng"), BAD_COORDINATE, "坐标不是数字")
    rej.add(no_place & outside, found.get("lng", "lng"), OUTSIDE_JURISDICTION,
            "点位不在本辖区任何网格内")
    rej.add(no_place & pd.notna(issue) & ~outside, found.get("lng", "lng"), BAD_COORDINATE,
            "坐标检查未通过：", values=issue)
    rej.add(no_place, found.get("address", "address"), NO_LOCATION,
            "没有可用坐标，地址和网格编码也都不能定位到本辖区内")

    out["lng"] = np.where(located, w_lng, np.nan)
    out["lat"] = np.where(located, w_lat, np.nan)
    crs_code, crs_names = pd.factorize(crs)
    out["src_crs"] = take_text(crs_names, np.where(~np.isnan(lng) | ~np.isnan(lat), crs_code, -1))
    method = np.where(addr_ok, "address", np.where(known_grid, "grid-code", "none"))
    out["geocode_method"] = take_text(["gps"], np.where(located, 0, -1), rest, method)
    out["geocode_precision"] = take_text(["point"], np.where(located, 0, -1), rest, r_precision)
    _, town, village, grid = (codes[:-1] for codes in ctx.areas.grid_codes)  # county: the deployment's own
    out["grid_code"] = take_text(grid, hit, rest, r_grid)
    out["village_code"] = take_text(village, hit, rest, r_village)
    out["town_code"] = take_text(town, hit, rest, r_town)
    out["county_code"] = take_text([ctx.areas.county_code], np.where(out["town_code"].notna(), 0, -1))
    cells = cells_from_points(lat=np.where(located, w_lat, np.nan), lng=np.where(located, w_lng, np.nan),
                              resolution=ctx.h3_resolution)
    out["h3_cell"] = pd.arrays.IntegerArray(np.where(located, cells, 0).astype(np.uint64), ~located)
    return (lng_raw.notna() | lat_raw.notna()).to_numpy() & ~located


def _parents(codes: np.ndarray, parent_of: dict[str, str], prefix: int) -> np.ndarray:
    """The parent code of each code (from the deployment's layers; the code's first ``prefix`` digits as
    the fallback)."""
    return np.array([parent_of.get(c, c[:prefix]) for c in codes], dtype=object)


def ctx_row_crs(get, profile: Profile) -> pd.Series | None:
    """The per-row CRS column named by the profile, if the file has it."""
    if not profile.crs_column:
        return None
    s = get("__crs__")
    return None if s.isna().all() else s


FREE_TEXT_FIELDS = ("summary", "address")  # redacted on load (with the unmapped columns, kept in ext), in events
                                           # and in the quarantine alike


def _reject_frame(raw: pd.DataFrame, rej: _Rejects, profile: Profile, ctx: StageContext,
                  free_text: list[str]) -> pd.DataFrame:
    """The quarantined rows, each with its file, row, field, reason and the row as read: without the party and
    [drop] columns, and with its free text (``free_text`` headers: summary, address and the columns no field
    maps, which events keep in ext) redacted as the loaded events' is. The
    warehouse holds no raw name or phone number, quarantine included (product.md, personal information)."""
    mask = rej.rejected
    personal = set(profile.party_columns) | set(profile.drop_columns)
    sub = raw.loc[mask, [c for c in raw.columns if c != ROW and c not in personal]].copy()
    for column in free_text:
        if column in sub.columns:
            sub[column] = redact(sub[column]).text
    raws = [json.dumps({k: v for k, v in r.items() if v is not None and v == v}, ensure_ascii=False)[:4000]
            for r in sub.to_dict("records")]
    return pd.DataFrame({
        "batch_id": ctx.batch_id, "source": profile.source, "source_file": ctx.source_file,
        "source_row": raw.loc[mask, ROW].astype("int64").to_numpy(),
        "field": rej.field[mask], "reason": rej.reason[mask], "detail": rej.detail[mask], "raw": raws,
        "scrubbed": True,
    })


GONE = "[已删除]"  # a party or [drop] value taken out of a malformed row's text


def _malformed_raw(line: str, fields: list[str] | None, header: list[str], profile: Profile) -> str:
    """A malformed row as quarantine keeps it: {"line": text}, free text redacted and the party and [drop] values
    taken out. Its fields do not line up with the header, so a CSV row loses the value at each such column's
    place counted from the left and from the right (one field too many or too few, on either side of it);
    a broken JSON line, the value of each such key."""
    personal = set(profile.party_columns) | set(profile.drop_columns)
    if isinstance(fields, list):
        width, n = len(header), len(fields)
        hidden = {j for i, name in enumerate(header) if name in personal for j in (i, n - (width - i)) if 0 <= j < n}
        out = io.StringIO()
        csv.writer(out).writerow([GONE if j in hidden else redact_text(v) for j, v in enumerate(fields)])
        text = out.getvalue().rstrip("\r\n")
    else:
        text = str(line)
        for name in personal:
            text = re.sub(rf'("{re.escape(name)}"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}}]*)', rf'\1"{GONE}"', text)
        text = redact_text(text)
    return json.dumps({"line": text[:2000]}, ensure_ascii=False)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
