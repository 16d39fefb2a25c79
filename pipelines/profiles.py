"""Column-mapping profiles (TOML), one per source system: which header means which canonical field.

A profile has these tables (see the shipped ``pipelines/profiles/*.toml``; only ``[profile]`` and
``[columns]`` are required):

``[profile]``
    ``name``, ``source`` (grid / police / hotline), ``category_system`` (the ``source_system`` of the
    mapping table rows to use), ``crs`` (``wgs84`` / ``gcj02`` / ``bd09`` / ``cgcs2000`` or any CRS
    pyproj knows, e.g. ``EPSG:2913`` for x/y in state-plane feet), ``crs_column`` (per-row CRS),
    ``timezone`` (the zone the export's wall-clock times are in; empty = the deployment's
    ``time.timezone``), ``sheet`` (.xlsx sheet), ``kind``: ``"records"`` (default: the cases as they stand) or
    ``"flow"`` (a 流转记录 / 办理过程 export: one row per step of a case — its id, the step's status and
    ``observed_at``, when it was taken — loaded into the status history by ``pipelines.flow``; no
    ``category_system`` needed).
``[columns]``
    canonical field = header, or a list of accepted headers (first present wins). One header may feed
    two fields (e.g. a call date that is both ``reported_at`` and ``occurred_at``).
``[required] fields``, ``[party] columns``, ``[drop] columns``
    as before: required canonical fields; party identifiers (stored only as HMAC pseudonyms); headers
    never stored.
``[values.<field>]``
    raw value → canonical value for one field, matched trimmed and case-insensitively, e.g. the US
    dispositions of a call log onto the product statuses (``"Assignment Completed" = "已办结"``). Values
    not listed pass through unchanged (and then meet the built-in aliases, or are quarantined, e.g.
    ``unknown_status``). The raw value is kept in ``ext`` under its header.
``[status] closed_at_from``
    for rows whose status is 已办结 but whose close time is empty: the close time is the LATEST of
    these times that the row has (canonical time fields such as ``reported_at`` or headers of the
    file); ``ext.closed_at_rule`` records that it was derived. Without it such rows are quarantined
    (``missing_required``).
``[times]``
    ``formats``: strptime formats tried in order before the built-in ones (``%Y-%m-%d %H:%M:%S``,
    then anything pandas recognises); ``date_only``: canonical time fields that carry a date and no
    time of day (stored at local midnight, ``ext.time_precision = "day"``).
``[record_id]``
    ``from = "column"`` (default: the ``source_record_id`` column) or ``"row_hash"`` for exports
    without an id: ``<16 hex of SHA-1 over the row's trimmed values>-<n>``, n = 1, 2, … numbering
    identical rows in file order, so real duplicate rows stay separate records and reloading the
    same file gives the same ids. ``columns`` limits the hash to these canonical fields or headers
    (default: every column except [party]/[drop] columns, ordered by header name).
``[place] grid_match``
    ``"code"`` (default): the grid column holds grid codes; ``"code_or_name"``: it may also hold a grid
    NAME of the deployment (e.g. police beats PN1…PN13 named so in the grid layer), matched trimmed
    and case-insensitively when the name is unique.
``[categories] unmapped``
    source codes the profile deliberately leaves out of the mapping table (e.g. officer-initiated
    activity, 911 hang-ups). They are quarantined as ``unknown_category`` like any unmapped code, but
    with a detail that says the omission is deliberate; the list documents the decision.
"""
from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
SOURCES = ("grid", "police", "hotline")
DEFAULT_PROFILE = {"grid": "demo_grid", "police": "demo_police"}
TIME_FIELD_NAMES = ("reported_at", "occurred_at", "due_at", "closed_at")
RECORD_ID_MODES = ("column", "row_hash")
GRID_MATCH_MODES = ("code", "code_or_name")
#: the fields a profile's [columns] may map (README, Input formats)
CANONICAL_FIELDS = ("source_record_id", "reported_at", "occurred_at", "category_raw_code", "category_raw_name",
                    "summary", "address", "town_name", "village_name", "lng", "lat", "grid_code", "status", "due_at", "closed_at", "outcome",
                    "on_site_closed", "satisfaction", "confidential", "department", "handling_tier", "dispatch_mode",
                    "observed_at")  # observed_at: a flow log's time of each step (kind = "flow")
PROFILE_KINDS = ("records", "flow")
CANONICAL_STATUSES = ("登记受理", "先行调解", "风险研判", "分类流转", "跟踪督办", "案结事了", "已办结")
_TABLES = {"profile", "columns", "required", "party", "drop", "values", "status", "times", "record_id", "place",
           "categories"}


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    category_system: str
    crs: str
    crs_column: str
    timezone: str
    sheet: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    party_columns: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    path: Path | None = field(default=None, compare=False)
    values: dict[str, dict[str, str]] = field(default_factory=dict)   # field -> {casefolded raw: canonical}
    closed_at_from: tuple[str, ...] = ()
    time_formats: tuple[str, ...] = ()
    date_only: tuple[str, ...] = ()
    record_id: str = "column"
    record_id_columns: tuple[str, ...] = ()
    grid_match: str = "code"
    unmapped_codes: tuple[str, ...] = ()
    classify_free_text: bool = False  # [categories] classify_free_text: rows with text and no code -> model
    kind: str = "records"  # [profile] kind: "records" (the cases as they stand) or "flow" (流转记录: id, step, time)

    def resolve_headers(self, headers: list[str]) -> dict[str, str]:
        """Map canonical field -> the header present in this file (first alias that matches)."""
        norm = {h.strip().lstrip("\ufeff").lower(): h for h in headers}
        found = {}
        for canonical, aliases in self.columns.items():
            for alias in aliases:
                if alias.lower() in norm:
                    found[canonical] = norm[alias.lower()]
                    break
        return found


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _strings(raw: dict, table: str, key: str, path: Path) -> tuple[str, ...]:
    value = raw.get(table, {}).get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{path}: [{table}] {key} must be a list of strings")
    return tuple(value)


def _values(raw: dict, path: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for fname, table in raw.get("values", {}).items():
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ProfileError(f"{path}: [values.{fname}] must map raw values to strings")
        if fname == "status":
            bad = sorted({v for v in table.values() if v not in CANONICAL_STATUSES})
            if bad:
                raise ProfileError(f"{path}: [values.status] maps to {bad}, which are not product statuses "
                                   f"({', '.join(CANONICAL_STATUSES)})")
        out[fname] = {str(k).strip().casefold(): v for k, v in table.items()}
    return out


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ProfileError(f"no profile {name_or_path!r}; shipped profiles: {', '.join(available_profiles())}")
    with path.open("rb") as fh:
        try:
            raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{path}: invalid TOML: {exc}") from exc
    unknown = set(raw) - _TABLES
    if unknown:
        raise ProfileError(f"{path}: unknown table(s) {sorted(unknown)} (allowed: {', '.join(sorted(_TABLES))})")
    try:
        p = raw["profile"]
        columns = {k: tuple([v] if isinstance(v, str) else v) for k, v in raw["columns"].items()}
        record = raw.get("record_id", {})
        kind = p.get("kind", "records")
        default_required = (["source_record_id", "status", "observed_at"] if kind == "flow"
                            else ["source_record_id", "reported_at"])
        profile = Profile(
            name=p["name"], source=p["source"], category_system=p.get("category_system", "") if kind == "flow"
            else p["category_system"], crs=p.get("crs", "wgs84"),
            crs_column=p.get("crs_column", ""), timezone=p.get("timezone", ""), sheet=p.get("sheet", ""),
            columns=columns, required=tuple(raw.get("required", {}).get("fields", default_required)),
            party_columns=tuple(raw.get("party", {}).get("columns", [])),
            drop_columns=tuple(raw.get("drop", {}).get("columns", [])), path=path,
            values=_values(raw, path),
            closed_at_from=_strings(raw, "status", "closed_at_from", path),
            time_formats=_strings(raw, "times", "formats", path),
            date_only=_strings(raw, "times", "date_only", path),
            record_id=record.get("from", "column"),
            record_id_columns=_strings(raw, "record_id", "columns", path),
            grid_match=raw.get("place", {}).get("grid_match", "code"),
            unmapped_codes=_strings(raw, "categories", "unmapped", path),
            classify_free_text=bool(raw.get("categories", {}).get("classify_free_text", False)),
            kind=kind,
        )
    except KeyError as exc:
        raise ProfileError(f"{path}: missing key {exc.args[0]!r}") from exc
    for table, names in (("[columns]", profile.columns), ("[required] fields", profile.required),
                         ("[values.<field>]", profile.values)):
        unknown = [f for f in names if f not in CANONICAL_FIELDS]
        if unknown:  # a misspelt field (summery) would load every row with it empty, without a word
            hints = [f"{f!r}" + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
                f, CANONICAL_FIELDS, n=1)) else "") for f in unknown]
            raise ProfileError(f"{path}: {table} names no field of the product: {', '.join(hints)}; the fields are "
                               f"{', '.join(CANONICAL_FIELDS)}")
    if profile.kind not in PROFILE_KINDS:
        raise ProfileError(f"{path}: [profile] kind = {profile.kind!r} is not one of {PROFILE_KINDS}")
    if profile.source not in SOURCES:
        raise ProfileError(f"{path}: source {profile.source!r} is not one of {SOURCES}")
    if profile.record_id not in RECORD_ID_MODES:
        raise ProfileError(f"{path}: [record_id] from = {profile.record_id!r} is not one of {RECORD_ID_MODES}")
    if profile.grid_match not in GRID_MATCH_MODES:
        raise ProfileError(f"{path}: [place] grid_match = {profile.grid_match!r} is not one of {GRID_MATCH_MODES}")
    bad = [f for f in profile.date_only if f not in TIME_FIELD_NAMES]
    if bad:
        raise ProfileError(f"{path}: [times] date_only names {bad}, not time fields ({', '.join(TIME_FIELD_NAMES)})")
    if profile.timezone:
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(profile.timezone)
        except (KeyError, ValueError) as exc:
            raise ProfileError(f"{path}: unknown timezone {profile.timezone!r}") from exc
    return profile
