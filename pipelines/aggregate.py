"""hex.cell_day and hex.area_day: event counts per H3 cell / area x day x category x source.

Refreshed for the touched days inside every load (so the map is current after `onemap ingest`) and by
`onemap build`. A consistency check (every located event counted once per resolution) falls back to a
full rebuild, e.g. when a later export moved an event to another day.
"""
from __future__ import annotations

from onemap.h3sql import h3_parent_sql
from onemap.settings import Settings


def aggregate(con, settings: Settings, days: list | None) -> None:
    """(Re)build hex.cell_day and hex.area_day for the given days, or for everything when ``days`` is None."""
    if days is not None and not days:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE touched (day DATE)")
    if days is not None:
        con.executemany("INSERT INTO touched VALUES (?)", [[d] for d in days])
    scope = "" if days is None else " AND CAST(reported_at AS DATE) IN (SELECT day FROM touched)"
    day_scope = "" if days is None else " WHERE day IN (SELECT day FROM touched)"
    # one pass over the events, at the finest grain; every resolution and area level rolls up from it
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE agg_base AS
        SELECT h3_cell, CAST(reported_at AS DATE) AS day, category_code, source, town_code, village_code,
               grid_code, count(*)::INTEGER AS n
        FROM core.events WHERE TRUE{scope} GROUP BY ALL""")
    con.execute("DELETE FROM hex.cell_day" + day_scope)
    for res in settings.h3_resolutions:
        cell = "h3_cell" if res == settings.h3_finest else h3_parent_sql("h3_cell", res)
        con.execute(f"""
            INSERT INTO hex.cell_day
            SELECT {res}, {cell} AS cell, day, category_code, source, sum(n)
            FROM agg_base WHERE h3_cell IS NOT NULL GROUP BY ALL""")
    con.execute("DELETE FROM hex.area_day" + day_scope)
    for level in ("town", "village", "grid"):
        con.execute(f"""
            INSERT INTO hex.area_day
            SELECT '{level}', {level}_code, day, category_code, source, sum(n)
            FROM agg_base WHERE {level}_code IS NOT NULL GROUP BY ALL""")
    con.execute("DROP TABLE agg_base")


def _aggregates_consistent(con) -> bool:
    located = con.execute("SELECT count(*) FROM core.events WHERE h3_cell IS NOT NULL").fetchall()[0][0]
    sums = {r[1] for r in con.execute("SELECT resolution, sum(n) FROM hex.cell_day GROUP BY 1").fetchall()}
    return sums <= {located} and (located == 0 or sums == {located})


def refresh_aggregates(con, settings: Settings, days: list | None) -> list | None:
    """Aggregate the given days (None = all); returns the days done, or None when it rebuilt everything."""
    aggregate(con, settings, days)
    if days is not None and not _aggregates_consistent(con):
        aggregate(con, settings, None)
        return None
    return days
