"""hex.cell_day and hex.area_day: event counts per H3 cell / area x day x category x source.

Refreshed for the touched days inside every load (so the map is current after `onemap ingest`) and by
`onemap build`. A consistency check (every located event counted once per resolution) falls back to a
full rebuild, e.g. when a later export moved an event to another day.
"""
from __future__ import annotations

from onemap.categories import SENSITIVE_FLAGS
from onemap.h3sql import h3_parent_sql
from onemap.settings import Settings

AREA_LEVELS = ("town", "village", "grid")


def aggregate(con, settings: Settings, days: list | None) -> None:
    """(Re)build hex.cell_day and hex.area_day for the given days, or for everything when ``days`` is None.

    All in DuckDB, nothing crosses into Python. The finest H3 resolution is counted from the events; each
    coarser one rolls up the rows of the resolution below it (H3 parents nest, so the sums are the same and
    every pass reads fewer rows). The three area levels are counted in one scan of the events (grouping
    sets), a level's events without a code at that level left out.
    """
    if days is not None and not days:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE touched (day DATE)")
    if days is not None:
        con.executemany("INSERT INTO touched VALUES (?)", [[d] for d in days])
    scope = "" if days is None else " AND CAST(reported_at AS DATE) IN (SELECT day FROM touched)"
    day_scope = "" if days is None else " AND day IN (SELECT day FROM touched)"
    con.execute("DELETE FROM hex.cell_day WHERE TRUE" + day_scope)
    finer = None
    for res in sorted(settings.h3_resolutions, reverse=True):
        if finer is None:
            cell = "h3_cell" if res == settings.h3_finest else h3_parent_sql("h3_cell", res)
            con.execute(f"""
                INSERT INTO hex.cell_day
                SELECT {res}, {cell} AS cell, CAST(reported_at AS DATE) AS day, category_code, source, count(*),
                       count(*) FILTER (WHERE list_has_any(coalesce(flags, []), $sensitive))
                FROM core.events WHERE h3_cell IS NOT NULL{scope} GROUP BY ALL""", {"sensitive": SENSITIVE_FLAGS})
        else:
            con.execute(f"""
                INSERT INTO hex.cell_day
                SELECT {res}, {h3_parent_sql('cell', res)} AS cell, day, category_code, source, sum(n), sum(n_sensitive)
                FROM hex.cell_day WHERE resolution = {finer}{day_scope} GROUP BY ALL""")
        finer = res
    con.execute("DELETE FROM hex.area_day WHERE TRUE" + day_scope)
    level = " ".join(f"WHEN grouping({lv}_code) = 0 THEN '{lv}'" for lv in AREA_LEVELS)
    code = " ".join(f"WHEN grouping({lv}_code) = 0 THEN {lv}_code" for lv in AREA_LEVELS)
    sets = ", ".join(f"({lv}_code, day, category_code, source)" for lv in AREA_LEVELS)
    con.execute(f"""
        INSERT INTO hex.area_day
        SELECT * FROM (
            SELECT CASE {level} END AS level, CASE {code} END AS code, day, category_code, source, count(*) AS n
            FROM (SELECT {', '.join(f'{lv}_code' for lv in AREA_LEVELS)}, CAST(reported_at AS DATE) AS day,
                         category_code, source
                  FROM core.events WHERE TRUE{scope})
            GROUP BY GROUPING SETS ({sets}))
        WHERE code IS NOT NULL""")


def _aggregates_consistent(con) -> bool:
    """Every located event counted once per resolution, every event with a code at an area level once at that
    level, and no row from before a column was added (NULL). An event a later export moved to another day is
    counted on both days until its old day is re-aggregated, so the sums catch it (events without a point
    too, which only the area counts hold)."""
    located = con.execute("SELECT count(*) FROM core.events WHERE h3_cell IS NOT NULL").fetchall()[0][0]
    sums = {r[1] for r in con.execute("SELECT resolution, sum(n) FROM hex.cell_day GROUP BY 1").fetchall()}
    unfilled = con.execute("SELECT count(*) FROM hex.cell_day WHERE n_sensitive IS NULL").fetchall()[0][0]
    placed = con.execute("SELECT " + ", ".join(f"count({lv}_code)" for lv in AREA_LEVELS)
                         + " FROM core.events").fetchall()[0]
    counted = dict(con.execute("SELECT level, sum(n) FROM hex.area_day GROUP BY 1").fetchall())
    areas_ok = all(counted.get(lv, 0) == n for lv, n in zip(AREA_LEVELS, placed, strict=True))
    return not unfilled and areas_ok and sums <= {located} and (located == 0 or sums == {located})


def refresh_aggregates(con, settings: Settings, days: list | None) -> list | None:
    """Aggregate the given days (None = all); returns the days done, or None when it rebuilt everything."""
    aggregate(con, settings, days)
    if days is not None and not _aggregates_consistent(con):
        aggregate(con, settings, None)
        return None
    return days
