"""Table contracts: every warehouse table, its columns and types, its key, and its zero-row checks.

The DDL is generated from these definitions, and ``onemap.warehouse.check_contracts`` runs each check
(a query that must return no rows) before a new warehouse file is published.
"""
from __future__ import annotations

from dataclasses import dataclass

SCHEMAS = ("staging", "core", "hex", "scores", "marts", "meta")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    doc: str = ""


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    checks: tuple[tuple[str, str], ...] = ()  # (description, SQL that must return zero rows)
    doc: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def ddl(self) -> str:
        cols = [f"    {c.name} {c.type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns]
        if self.primary_key:
            cols.append(f"    PRIMARY KEY ({', '.join(self.primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.qualified} (\n" + ",\n".join(cols) + "\n)"


def C(name: str, type_: str, nullable: bool = True, doc: str = "") -> Column:  # noqa: N802 - short on purpose
    return Column(name, type_, nullable, doc)


EVENT_COLUMNS = (
    # identity
    C("event_id", "VARCHAR", False, "stable id: source + ':' + source_record_id"),
    C("source", "VARCHAR", False, "grid / police / hotline"),
    C("source_record_id", "VARCHAR", False),
    C("linked_event_id", "VARCHAR", doc="the same matter seen by another source"),
    # time (Asia/Shanghai, stored with zone)
    C("occurred_at", "TIMESTAMPTZ"),
    C("reported_at", "TIMESTAMPTZ", False),
    C("due_at", "TIMESTAMPTZ"),
    C("closed_at", "TIMESTAMPTZ"),
    # what
    C("category_code", "VARCHAR", False),
    C("category_raw_code", "VARCHAR"),
    C("category_raw_name", "VARCHAR"),
    C("category_method", "VARCHAR", False, "map / model / default"),
    C("category_confidence", "DOUBLE"),
    C("flags", "VARCHAR[]"),
    C("summary_redacted", "VARCHAR"),
    C("address_redacted", "VARCHAR"),
    # where
    C("lng", "DOUBLE", doc="WGS84"),
    C("lat", "DOUBLE", doc="WGS84"),
    C("src_crs", "VARCHAR"),
    C("geocode_method", "VARCHAR", False, "gps / address / grid-centroid / none"),
    C("geocode_precision", "VARCHAR", False, "point / grid / village / town / none"),
    C("county_code", "VARCHAR"),
    C("town_code", "VARCHAR"),
    C("village_code", "VARCHAR"),
    C("grid_code", "VARCHAR"),
    C("h3_cell", "UBIGINT", doc="H3 cell at the finest resolution (geo.h3_finest); NULL without a point"),
    # process
    C("status", "VARCHAR", False),
    C("handling_tier", "VARCHAR", doc="the tier handling (or that closed) the case: village / town / county / above"),
    C("department", "VARCHAR"),
    C("dispatch_mode", "VARCHAR", doc="single / dual (双派单: to a department and to the grid worker at once)"),
    C("outcome", "VARCHAR"),
    C("on_site_closed", "BOOLEAN"),
    C("reopened_at", "TIMESTAMPTZ", doc="load time of the first export that showed the closed case open again "
                                        "(重开); kept through later updates"),
    C("first_closed_at", "TIMESTAMPTZ", doc="of a reopened case, the close time its exports gave before that first "
                                            "reopening: the case was closed from first_closed_at to reopened_at"),
    C("satisfaction", "DOUBLE"),
    # privacy
    C("party_keys", "VARCHAR[]", doc="keyed HMAC pseudonyms only"),
    C("confidential", "BOOLEAN", False),
    C("ext", "JSON"),
    # lineage
    C("batch_id", "VARCHAR", False),
    C("source_file", "VARCHAR", False),
    C("source_row", "BIGINT", False),
    C("updated_at", "TIMESTAMPTZ", False),
    C("content_hash", "VARCHAR", False, "digest of the fields a later export may change"),
)

STATUS_CLOSED = "已办结"
# the statuses that close a case: 案结事了 (the flow's last stage, the matter settled) and the plain 已办结 that most
# systems export. Stored as exported; every "closed" test in SQL goes through closed_status().
CLOSED_STATUSES = ("案结事了", STATUS_CLOSED)


def closed_status(column: str = "status") -> str:
    """SQL: whether the status in ``column`` closes the case (one of CLOSED_STATUSES)."""
    return f"{column} IN ({', '.join(repr(s) for s in CLOSED_STATUSES)})"


# the outcomes of a closed case as the product's KPIs read them: 化解 counts for 化解率, the others do not. A
# deployment whose exports say 化解 in other words (调解成功, 已化解) maps them with the profile's [values.outcome]
OUTCOMES = ("化解", "未化解", "部分化解", "转诉讼", "转仲裁", "转信访", "转其他部门", "撤回", "不予受理", "终止调解")
RESOLVED_OUTCOME = "化解"
HANDLING_TIERS = ("village", "town", "county", "above")  # 村（社区）/ 镇街 / 县区 / 县区以上: 小事不出村、大事不出镇
DISPATCH_MODES = ("single", "dual")

CORE_EVENTS = Table(
    "core", "events", EVENT_COLUMNS, (),  # no index: see pipelines.load.upsert_events
    checks=(
        ("one row per event_id", "SELECT event_id FROM core.events GROUP BY event_id HAVING count(*) > 1"),
        ("closed events have a closing time",
         f"SELECT event_id FROM core.events WHERE {closed_status()} AND closed_at IS NULL"),
        ("closing never precedes reporting",
         "SELECT event_id FROM core.events WHERE closed_at < reported_at OR first_closed_at < reported_at"),
        ("a first close time belongs to a reopened case, before its reopening",
         "SELECT event_id FROM core.events WHERE first_closed_at IS NOT NULL "
         "AND (reopened_at IS NULL OR first_closed_at > reopened_at)"),
        ("coordinates are WGS84 degrees",
         "SELECT event_id FROM core.events WHERE lng NOT BETWEEN -180 AND 180 OR lat NOT BETWEEN -90 AND 90"),
        ("a point has an H3 cell",
         "SELECT event_id FROM core.events WHERE lng IS NOT NULL AND h3_cell IS NULL"),
        ("handling tiers are known words",
         f"SELECT event_id FROM core.events WHERE handling_tier NOT IN {HANDLING_TIERS}"),
        ("dispatch modes are known words",
         f"SELECT event_id FROM core.events WHERE dispatch_mode NOT IN {DISPATCH_MODES}"),
        ("grid codes sit under their village",
         "SELECT event_id FROM core.events WHERE grid_code IS NOT NULL AND left(grid_code, 12) <> village_code"),
        ("links point at existing events",
         "SELECT e.event_id FROM core.events e LEFT JOIN core.events l ON e.linked_event_id = l.event_id "
         "WHERE e.linked_event_id IS NOT NULL AND l.event_id IS NULL"),
    ),
    doc="One row per matter per source; upserted on event_id.",
)

STATUS_HISTORY = Table(
    "core", "event_status_history",
    (
        C("event_id", "VARCHAR", False),
        C("status", "VARCHAR", False),
        C("observed_at", "TIMESTAMPTZ", False,
          "when the export carrying this status was taken (ingest --taken-at), else when it was loaded"),
        C("batch_id", "VARCHAR", False),
    ),
    (),  # no PRIMARY KEY: its index made each 200k-row load chunk ~2x slower; uniqueness is a check
    checks=(("history rows belong to events",
             "SELECT h.event_id FROM core.event_status_history h ANTI JOIN core.events e USING (event_id)"),
            ("one row per event, status, time and batch (a flow log may show a status twice, at two times)",
             "SELECT event_id FROM core.event_status_history GROUP BY event_id, status, observed_at, batch_id "
             "HAVING count(*) > 1"),),
)

REJECTS = Table(
    "staging", "rejects",
    (
        C("batch_id", "VARCHAR", False),
        C("source", "VARCHAR", False),
        C("source_file", "VARCHAR", False),
        C("source_row", "BIGINT", False, "1-based data row number in the file (header excluded)"),
        C("field", "VARCHAR", False),
        C("reason", "VARCHAR", False),
        C("detail", "VARCHAR"),
        C("raw", "JSON", doc="the row as read, without party and dropped columns, free text redacted"),
        C("scrubbed", "BOOLEAN", doc="raw written as above; NULL: written by an earlier version, which kept free "
                                     "text as read (the next load or build scrubs it)"),
    ),
    doc="Quarantine: every row that did not load, with the field and the reason.",
)

BATCHES = Table(
    "meta", "batches",
    (
        C("batch_id", "VARCHAR", False),
        C("source", "VARCHAR", False),
        C("source_file", "VARCHAR", False),
        C("sha256", "VARCHAR", False),
        C("profile", "VARCHAR", False),
        C("loaded_at", "TIMESTAMPTZ", False),
        C("rows_read", "BIGINT", False),
        C("inserted", "BIGINT", False),
        C("updated", "BIGINT", False),
        C("unchanged", "BIGINT", False),
        C("linked", "BIGINT", False),
        C("quarantined", "BIGINT", False),
        C("profile_file", "VARCHAR", doc="the profile's TOML file when it is a deployment's own (ingest --profile "
                                         "path); NULL for a shipped profile"),
        C("taken_at", "TIMESTAMPTZ", doc="ingest --taken-at: when the export was taken; NULL = when it was loaded"),
    ),
    ("batch_id",),
    checks=(("batch counts reconcile: read = inserted + updated + unchanged + quarantined",
             "SELECT batch_id FROM meta.batches WHERE rows_read <> inserted + updated + unchanged + quarantined"),),
)

BUILDS = Table(
    "meta", "builds",
    (
        C("build_id", "VARCHAR", False),
        C("built_at", "TIMESTAMPTZ", False),
        C("as_of", "TIMESTAMPTZ", False, "the reference time for overdue and open counts"),
        C("events", "BIGINT", False),
        C("code_version", "VARCHAR", False),
    ),
    ("build_id",),
)

AREAS = Table(
    "core", "areas",
    (
        C("code", "VARCHAR", False),
        C("name", "VARCHAR", False),
        C("level", "VARCHAR", False, "county / town / village / grid"),
        C("parent_code", "VARCHAR"),
        C("synthetic", "BOOLEAN", False),
        C("vintage", "VARCHAR", False),
        C("geometry_wkb", "BLOB", False, "WGS84"),
    ),
    ("code", "vintage"),
)

AREA_VINTAGES = Table(
    "meta", "area_vintages",
    (
        C("vintage", "VARCHAR", False),
        C("loaded_at", "TIMESTAMPTZ", False),
        C("source_dir", "VARCHAR", False, "the folder or GeoPackage the layers were read from"),
        C("declared_crs", "VARCHAR", doc="source CRS declared on load (gcj02 / EPSG:xxxx); NULL = the files' own"),
        C("county_code", "VARCHAR", False),
        C("counties", "INTEGER", False),
        C("towns", "INTEGER", False),
        C("villages", "INTEGER", False),
        C("grids", "INTEGER", False),
        C("issues", "INTEGER", False, "validation issues found on load, all kinds"),
        C("errors", "INTEGER", False, "issues other than repaired geometries"),
        C("report", "VARCHAR", doc="the validation summary as printed"),
        C("history", "BOOLEAN", doc="TRUE: loaded for the record (`geodata load --history`), never the current "
                                    "boundaries; otherwise the vintage loaded last is current"),
    ),
    ("vintage",),
    checks=(("every loaded boundary vintage has its areas",
             "SELECT vintage FROM meta.area_vintages ANTI JOIN core.areas USING (vintage)"),),
    doc="One row per boundary vintage loaded with `onemap geodata load` (村居合并 keeps old vintages).",
)

HEX_DAILY = Table(
    "hex", "cell_day",
    (
        C("resolution", "TINYINT", False),
        C("cell", "UBIGINT", False),
        C("day", "DATE", False, "Asia/Shanghai calendar day of reported_at"),
        C("category_code", "VARCHAR", False),
        C("source", "VARCHAR", False),
        C("n", "INTEGER", False),
        C("n_sensitive", "INTEGER", doc="of n, events with a sensitive flag (onemap.categories.SENSITIVE_FLAGS)"),
    ),
    (),  # no PRIMARY KEY: DuckDB's index makes bulk aggregation ~20x slower; uniqueness is a check instead
    checks=(("one row per (resolution, cell, day, category, source)",
             "SELECT resolution FROM hex.cell_day GROUP BY resolution, cell, day, category_code, source "
             "HAVING count(*) > 1"),
            ("every located event is counted once per resolution",
             "SELECT resolution FROM hex.cell_day GROUP BY resolution "
             "HAVING sum(n) <> (SELECT count(*) FROM core.events WHERE h3_cell IS NOT NULL)"),),
)

CELL_HOMES = Table(
    "hex", "cell_home",
    (
        C("resolution", "TINYINT", False),
        C("cell", "UBIGINT", False),
        C("town_code", "VARCHAR"),
        C("village_code", "VARCHAR", False),
        C("n", "BIGINT", False, "the village's placed events in the cell, all time"),
    ),
    (),
    checks=(("one home per cell", "SELECT cell FROM hex.cell_home GROUP BY resolution, cell HAVING count(*) > 1"),),
    doc="The village holding most of each cell's placed events (as of the last build): whose users see the "
        "county's alerts and hot spots on the cell, and the place an alert on it is named after.",
)

AREA_DAILY = Table(
    "hex", "area_day",
    (
        C("level", "VARCHAR", False),
        C("code", "VARCHAR", False),
        C("day", "DATE", False),
        C("category_code", "VARCHAR", False),
        C("source", "VARCHAR", False),
        C("n", "INTEGER", False),
    ),
    (),
    checks=(("one row per (level, code, day, category, source)",
             "SELECT level FROM hex.area_day GROUP BY level, code, day, category_code, source HAVING count(*) > 1"),),
)

MODEL_RUNS = Table(
    "meta", "model_runs",
    (
        C("run_id", "VARCHAR", False),
        C("model", "VARCHAR", False),
        C("version", "VARCHAR", False),
        C("params", "JSON", False),
        C("ran_at", "TIMESTAMPTZ", False),
        C("rows", "BIGINT", False),
    ),
    ("run_id",),
    doc="Every scores.* row carries the run_id of the model run that wrote it.",
)

HOTSPOTS = Table(
    "scores", "hotspots",
    (
        C("run_id", "VARCHAR", False),
        C("resolution", "TINYINT", False),
        C("cell", "UBIGINT", False),
        C("slice_end", "DATE", False, "last day of the latest weekly slice"),
        C("n_slices", "INTEGER", False),
        C("count", "BIGINT", False, "events in the latest slice"),
        C("z", "DOUBLE", False, "Gi* z-score of the latest slice"),
        C("p", "DOUBLE", False),
        C("significant", "BOOLEAN", False, "after Benjamini-Hochberg FDR within the slice"),
        C("spot", "VARCHAR", False, "hot / cold / none in the latest slice"),
        C("mk_tau", "DOUBLE"),
        C("mk_p", "DOUBLE"),
        C("trend", "VARCHAR"),
        C("pattern", "VARCHAR", False, "emerging hot spot class code (models.hotspots.EHSA_CLASSES)"),
        C("pattern_zh", "VARCHAR", False),
    ),
    ("run_id", "resolution", "cell"),
    checks=(("hotspot rows belong to a recorded model run",
             "SELECT h.run_id FROM scores.hotspots h ANTI JOIN meta.model_runs r USING (run_id)"),
            ("p-values are probabilities", "SELECT cell FROM scores.hotspots WHERE p < 0 OR p > 1")),
)

OUTLIERS = Table(
    "scores", "outliers",
    (
        C("run_id", "VARCHAR", False),
        C("resolution", "TINYINT", False),
        C("cell", "UBIGINT", False),
        C("outlier_score", "DOUBLE", False, "IsolationForest isolation, scaled to 0..1 across cells"),
        C("signal", "VARCHAR", False, "always 'secondary': no p-value, not an alert"),
        C("growth", "DOUBLE"),
        C("unresolved_share", "DOUBLE"),
        C("n", "BIGINT", False),
    ),
    ("run_id", "resolution", "cell"),
    checks=(("outlier rows are labelled secondary", "SELECT cell FROM scores.outliers WHERE signal <> 'secondary'"),),
)

ALERTS = Table(
    "scores", "alerts",
    (
        C("run_id", "VARCHAR", False),
        C("kind", "VARCHAR", False, "cell / neighbourhood / category / ramp (slow build-up, NB CUSUM)"),
        C("resolution", "TINYINT", False),
        C("cell", "UBIGINT", False, "the cell, or the centre of the k-ring neighbourhood"),
        C("place", "VARCHAR", doc="town and village names of the village the cell belongs to (queries.cell_homes)"),
        C("window_days", "INTEGER", False),
        C("window_start", "DATE", False),
        C("window_end", "DATE", False),
        C("observed", "INTEGER", False),
        C("expected", "DOUBLE", False),
        C("ratio", "DOUBLE"),
        C("score", "DOUBLE", False, "-log10 p"),
        C("p_value", "DOUBLE", False),
        C("q_value", "DOUBLE", False, "Benjamini-Hochberg within the family and window"),
        C("category_code", "VARCHAR"),
        C("n_cells", "INTEGER", False),
        C("drivers", "JSON", doc="categories driving the alert, with observed and expected counts"),
        C("sentence_zh", "VARCHAR", False),
        C("family", "VARCHAR", doc="the test family whose Benjamini-Hochberg gave q_value (models.alerts.FAMILIES); "
                                   "NULL for alerts kept from builds before it was recorded"),
    ),
    checks=(("alerts pass the false-discovery threshold they were selected at",
             "SELECT cell FROM scores.alerts WHERE q_value > 0.05"),
            ("alerts belong to a recorded model run",
             "SELECT a.run_id FROM scores.alerts a ANTI JOIN meta.model_runs r USING (run_id)")),
)

REPEAT_PLACES = Table(
    "scores", "repeat_places",
    (
        C("run_id", "VARCHAR", False),
        C("place_id", "INTEGER", False),
        C("lng", "DOUBLE", False),
        C("lat", "DOUBLE", False),
        C("place", "VARCHAR", doc="town and village names"),
        C("grid_code", "VARCHAR"),
        C("n_events", "INTEGER", False),
        C("first_at", "TIMESTAMPTZ", False),
        C("last_at", "TIMESTAMPTZ", False),
        C("window_days", "INTEGER", False, "the near-repeat window calibrated with the Knox test"),
        C("radius_m", "DOUBLE", False),
        C("top_category", "VARCHAR"),
        C("categories", "JSON"),
    ),
    ("run_id", "place_id"),
    checks=(("a repeat place has at least three incidents", "SELECT place_id FROM scores.repeat_places WHERE n_events < 3"),),
    doc="Places (never people) with repeated incidents, for follow-up visits (回访).",
)

TOWN_WEEK_KPIS = Table(
    "marts", "town_week_kpis",
    (
        C("town_code", "VARCHAR", False),
        C("week_start", "DATE", False, "Monday, Asia/Shanghai"),
        C("as_of", "TIMESTAMPTZ", False),
        *(C(k, "DOUBLE") for k in ("registered", "closed_rate", "resolved_rate", "overdue", "overdue_rate",
                                   "onsite_rate", "satisfaction", "village_share", "town_or_below_share",
                                   "ontime_rate", "reopened_rate", "median_days")),
    ),
    ("town_code", "week_start"),
    checks=(("rates are proportions",
             "SELECT town_code FROM marts.town_week_kpis WHERE closed_rate NOT BETWEEN 0 AND 1 "
             "OR resolved_rate NOT BETWEEN 0 AND 1"),),
    doc="Every KPI of onemap.metrics per town and week, as of the last build (loads in between leave it "
        "as of that build): the weekly 研判 table.",
)

TABLES: tuple[Table, ...] = (CORE_EVENTS, STATUS_HISTORY, REJECTS, BATCHES, BUILDS, AREAS, AREA_VINTAGES,
                             HEX_DAILY, CELL_HOMES, AREA_DAILY, MODEL_RUNS, HOTSPOTS, OUTLIERS, ALERTS, REPEAT_PLACES,
                             TOWN_WEEK_KPIS)


def table(qualified: str) -> Table:
    for t in TABLES:
        if t.qualified == qualified:
            return t
    raise KeyError(f"no contract for table {qualified!r}")
