"""`onemap build`: core.events -> hex.* and area aggregates (and the area dimension), then publish."""
from __future__ import annotations

import uuid

import pandas as pd
import shapely

from onemap.h3sql import h3_parent_sql
from onemap.settings import Settings
from onemap.warehouse import write_session
from pipelines.ingest import area_set_for


def build(settings: Settings, as_of: pd.Timestamp | None = None) -> dict[str, int]:
    as_of = as_of or pd.Timestamp.now(tz=settings.timezone)
    areas = area_set_for(settings)
    with write_session(settings.warehouse_path, settings.timezone) as con:
        _load_areas(con, areas)
        con.execute("DELETE FROM hex.cell_day")
        for res in settings.h3_resolutions:
            cell = "h3_cell" if res == settings.h3_finest else h3_parent_sql("h3_cell", res)
            con.execute(f"""
                INSERT INTO hex.cell_day
                SELECT {res}, {cell} AS cell, CAST(reported_at AS DATE) AS day, category_code, source, count(*)
                FROM core.events WHERE h3_cell IS NOT NULL
                GROUP BY ALL""")
        con.execute("DELETE FROM hex.area_day")
        for level in ("town", "village", "grid"):
            con.execute(f"""
                INSERT INTO hex.area_day
                SELECT '{level}', {level}_code, CAST(reported_at AS DATE), category_code, source, count(*)
                FROM core.events WHERE {level}_code IS NOT NULL GROUP BY ALL""")
        n = con.execute("SELECT count(*) FROM core.events").fetchall()[0][0]
        con.execute("INSERT INTO meta.builds VALUES (?, now(), ?, ?, ?)",
                    [uuid.uuid4().hex[:12], as_of, n, _version()])
        cells = con.execute("SELECT count(*) FROM hex.cell_day").fetchall()[0][0]
    return {"events": n, "cell_day_rows": cells}


def _load_areas(con, areas) -> None:
    con.execute("DELETE FROM core.areas WHERE vintage = ?", [areas.vintage])
    frames = []
    for level, gdf in (("county", areas.county), ("town", areas.towns), ("village", areas.villages),
                       ("grid", areas.grids)):
        frames.append(pd.DataFrame({
            "code": gdf["code"].astype(str), "name": gdf["name"].astype(str), "level": level,
            "parent_code": gdf["parent_code"].astype(object) if "parent_code" in gdf else None,
            "synthetic": gdf["synthetic"].astype(bool) if "synthetic" in gdf else False,
            "vintage": areas.vintage, "geometry_wkb": shapely.to_wkb(gdf.geometry.to_numpy()),
        }))
    con.register("areas_frame", pd.concat(frames, ignore_index=True))
    try:
        con.execute("INSERT INTO core.areas SELECT * FROM areas_frame")
    finally:
        con.unregister("areas_frame")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onemap")
    except PackageNotFoundError:
        return "dev"
