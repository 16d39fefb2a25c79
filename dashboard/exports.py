"""The map's hex layer as files: CSV (opens in Excel) and GeoJSON (opens in QGIS / kepler.gl), with exactly the
counts the map shows to the same viewer (same filter, same area, same small-count rules)."""
from __future__ import annotations

import json

import h3
import pandas as pd

from geodata.h3cells import cell_boundaries_geojson

FORMATS = ("csv", "geojson")


def hex_file(counts: pd.DataFrame, resolution: int, fmt: str, measure: str = "registered") -> bytes:
    """``counts`` (columns cell as hex string, n) as the bytes of a .csv or .geojson file; ``measure`` says what
    ``events`` counts (onemap.metrics.MAP_MEASURES: registered, open or overdue)."""
    if fmt == "csv":
        centres = [h3.cell_to_latlng(c) for c in counts["cell"]]
        frame = pd.DataFrame({"h3_cell": counts["cell"], "resolution": int(resolution), "measure": measure,
                              "events": counts["n"],
                              "centre_lat": [round(lat, 6) for lat, _ in centres],
                              "centre_lng": [round(lng, 6) for _, lng in centres]})
        return frame.to_csv(index=False).encode("utf-8-sig")  # with a BOM, so that Excel reads it as UTF-8
    if fmt == "geojson":
        props = {c: {"measure": measure, "events": int(n)} for c, n in zip(counts["cell"], counts["n"], strict=True)}
        cells = [int(c, 16) for c in counts["cell"]]
        return json.dumps(cell_boundaries_geojson(cells, props), ensure_ascii=False).encode("utf-8")
    raise ValueError(f"unknown export format {fmt!r} ({' / '.join(FORMATS)})")
