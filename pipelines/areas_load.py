"""`onemap geodata load`: a deployment's own boundaries -> validated -> core.areas, one vintage at a time.

``load_geography(settings, directory, vintage)`` reads the county/towns/villages/grids layers
(GeoJSON, Shapefile, GeoPackage or GeoParquet in any CRS; see :func:`geodata.areas.load_area_set`),
validates them as read (:func:`geodata.validate.validate_area_set`), repairs what can be repaired
(invalid rings, rows sharing a code) and replaces the rows of THAT vintage in ``core.areas``. Other
vintages stay as they were, so a 村居合并 does not rewrite history: events and reports made against
the 2023 villages can still be drawn with the 2023 boundaries. Each load leaves one row in
``meta.area_vintages`` with the counts and the validation report.

``strict=True`` refuses the load (nothing is written) on any issue other than a repaired geometry.
"""
from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from geodata.areas import LEVELS, AreaSet, load_area_set
from geodata.validate import ValidationReport, repair_area_set, validate_area_set
from onemap.queries import CURRENT_VINTAGE
from onemap.settings import Settings
from onemap.warehouse import connect_readonly, registered, write_session

_LEVEL = {"county": "county", "towns": "town", "villages": "village", "grids": "grid"}


class GeographyRejected(ValueError):
    """A strict load found errors; nothing was written. ``report`` holds the findings."""

    def __init__(self, report: ValidationReport):
        super().__init__(f"geography not loaded: {len(report.errors)} error(s)\n{report.summary()}")
        self.report = report


def _areas_frame(areas: AreaSet) -> pd.DataFrame:
    frames = []
    for key in LEVELS:
        gdf = getattr(areas, key)
        synthetic = (gdf["synthetic"].fillna(False).astype(bool).to_numpy() if "synthetic" in gdf.columns
                     else False)
        frames.append(pd.DataFrame({
            "code": gdf["code"].astype(str).to_numpy(),
            "name": gdf["name"].astype(str).to_numpy(),
            "level": _LEVEL[key],
            "parent_code": [None if pd.isna(v) else str(v) for v in gdf["parent_code"]],
            "synthetic": synthetic,
            "vintage": areas.vintage,
            "geometry_wkb": shapely.to_wkb(gdf.geometry.to_numpy()),
        }))
    return pd.concat(frames, ignore_index=True)


def write_areas(con, areas: AreaSet, report: ValidationReport, source: str, declared_crs: str | None,
                loaded_at: pd.Timestamp, history: bool = False) -> None:
    """Replace ``areas.vintage`` in core.areas and meta.area_vintages (other vintages are untouched); with
    ``history``, for the record only: the current boundaries stay what they were."""
    frame = _areas_frame(areas)
    con.execute("DELETE FROM core.areas WHERE vintage = ?", [areas.vintage])
    con.execute("DELETE FROM meta.area_vintages WHERE vintage = ?", [areas.vintage])
    with registered(con, "areas_frame", frame):
        con.execute("INSERT INTO core.areas (code, name, level, parent_code, synthetic, vintage, geometry_wkb) "
                    "SELECT code, name, level, parent_code, synthetic, vintage, geometry_wkb FROM areas_frame")
    con.execute("INSERT INTO meta.area_vintages (vintage, loaded_at, source_dir, declared_crs, county_code, counties, "
                "towns, villages, grids, issues, errors, report, history) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [areas.vintage, loaded_at, source, declared_crs, areas.county_code, len(areas.county),
                 len(areas.towns), len(areas.villages), len(areas.grids), len(report.issues), len(report.errors),
                 report.summary(max_per_kind=20), history or None])


def load_geography(settings: Settings, directory: str | Path, vintage: str | None,
                   declared_crs: str | None = None, strict: bool = False, history: bool = False
                   ) -> tuple[AreaSet, ValidationReport]:
    """Read, validate, repair and store one vintage of the deployment's boundaries; see the module doc.

    ``vintage`` labels the boundaries (e.g. "2024"); None takes it from the files (``areas.toml`` or a
    ``vintage`` column) and refuses when they do not say. ``declared_crs`` ('gcj02', 'EPSG:4549' …) is
    for files whose CRS is missing or wrong. ``history``: stored for the record, the current boundaries staying
    what they were (an older vintage loaded after a newer one). Raises :class:`GeographyRejected` when ``strict``
    and the validation found errors, FileNotFoundError / ValueError for unreadable input.
    """
    raw = load_area_set(directory, vintage, declared_crs=declared_crs, raw=True)
    if raw.vintage in ("", "unknown") or "/" in raw.vintage:
        raise ValueError(f"{directory}: say which boundary vintage this is (--vintage, e.g. 2024); "
                         f"the files give {raw.vintage!r}")
    report = validate_area_set(raw, county_code=settings.county_code)
    if strict and not report.ok:
        raise GeographyRejected(report)
    if history:
        current = current_vintage(settings)
        if current is None or current == raw.vintage:
            why = "none are loaded yet" if current is None else f"vintage {current} is the one in use"
            raise ValueError(f"--history keeps the boundaries in use, but {why}: load it without --history")
    areas = repair_area_set(raw)
    loaded_at = pd.Timestamp.now(tz=settings.timezone)
    with write_session(settings.warehouse_path, settings.timezone) as con:
        write_areas(con, areas, report, str(Path(directory).resolve()), declared_crs, loaded_at, history)
    return areas, report


def current_vintage(settings: Settings) -> str | None:
    """The vintage of the boundaries in use (None when none is loaded)."""
    return _in_use(vintages(settings))


def _in_use(table: pd.DataFrame) -> str | None:
    """The vintage marked current in a :func:`vintages` table (None when it is empty)."""
    return None if table.empty else (table.loc[table["current"], "vintage"].tolist() or [None])[0]


def geodata_load_main(settings: Settings, directory: str | Path, vintage: str | None,
                      declared_crs: str | None = None, strict: bool = False, history: bool = False) -> int:
    """`onemap geodata load DIR --vintage V [--crs gcj02|EPSG:xxxx] [--strict]`: print the report; exit code.

    0 = loaded (issues, if any, are printed), 1 = refused by --strict, 2 = the files could not be read.
    """
    try:
        areas, report = load_geography(settings, directory, vintage, declared_crs, strict, history)
    except GeographyRejected as exc:
        print(exc.report.summary(), file=sys.stdout)
        print(f"not loaded: {len(exc.report.errors)} error(s) and --strict; fix the files or load without --strict",
              file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as exc:
        print(f"geodata load: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"loaded vintage {areas.vintage} into {settings.warehouse_path}: county {len(areas.county)}, "
          f"towns {len(areas.towns)}, villages {len(areas.villages)}, grids {len(areas.grids)}")
    table = vintages(settings)
    current = _in_use(table)
    print(f"boundaries in use: vintage {current}" + (f" (kept for the record: {', '.join(sorted(set(table['vintage']) - {current}))})"
                                                     if len(table) > 1 else ""))
    later = [v for v in table["vintage"] if v != current and v[:4].isdigit() and current[:4].isdigit() and v > current]
    if not history and later:
        print(f"WARNING: vintage {current} is now in use though {', '.join(sorted(later))} is later; to keep "
              f"{max(later)} in use, load {current} with --history (it is kept for the record only)", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------ reading back

def _frame(cursor) -> pd.DataFrame:
    return pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])


def vintages(settings: Settings) -> pd.DataFrame:
    """meta.area_vintages, newest load first (empty when none was loaded)."""
    if not settings.warehouse_path.is_file():
        return pd.DataFrame(columns=["vintage", "loaded_at", "current"])
    con = connect_readonly(settings.warehouse_path, settings.timezone, require_current=False)
    try:
        return _frame(con.execute(f"SELECT *, vintage = {CURRENT_VINTAGE} AS current FROM meta.area_vintages "
                                  "ORDER BY loaded_at DESC"))
    finally:
        con.close()


def read_area_set(con, vintage: str | None = None) -> AreaSet:
    """The AreaSet of one stored vintage (default: the most recently loaded one) from core.areas."""
    if vintage is None:
        row = con.execute(f"SELECT {CURRENT_VINTAGE}").fetchall()
        row = row if row and row[0][0] is not None else []
        if not row:
            raise LookupError("no boundary vintage loaded: run `onemap geodata load DIR --vintage V`")
        vintage = row[0][0]
    df = _frame(con.execute("SELECT code, name, level, parent_code, synthetic, vintage, geometry_wkb "
                            "FROM core.areas WHERE vintage = ? ORDER BY level, code", [vintage]))
    if df.empty:
        raise LookupError(f"no areas stored for vintage {vintage!r}")
    layers = {}
    for key in LEVELS:
        part = df[df["level"] == _LEVEL[key]].reset_index(drop=True)
        geoms = shapely.from_wkb(part.pop("geometry_wkb").map(bytes).to_numpy())
        layers[key] = gpd.GeoDataFrame(part, geometry=geoms, crs="EPSG:4326")
    return AreaSet(layers["county"], layers["towns"], layers["villages"], layers["grids"], vintage,
                   f"core.areas@{vintage}")
