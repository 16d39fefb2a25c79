"""The map's hex layer as files: CSV (opens in Excel) and GeoJSON (opens in QGIS / kepler.gl), with exactly the
counts the map shows to the same viewer (same filter, same area, same small-count rules), and a file name that
says which filter made them (a file passed on by e-mail keeps what it is)."""
from __future__ import annotations

import json
import re

import h3
import pandas as pd

from geodata.h3cells import cell_boundaries_geojson
from onemap.categories import UnknownCodeError, category_name

FORMATS = ("csv", "geojson")
SOURCE_LABELS = {"grid": "网格巡查", "police": "非警务警情", "hotline": "12345热线"}
# the CSV's columns, for the staff who open it in Excel (the GeoJSON keeps short machine names for GIS tools)
CSV_COLUMNS = {"h3_cell": "H3编号", "resolution": "六边形级别", "measure": "指标", "events": "件数",
               "town": "镇街", "village": "村（社区）", "centre_lat": "中心纬度", "centre_lng": "中心经度"}


def hex_file(counts: pd.DataFrame, resolution: int, fmt: str, measure: str = "受理数", about: dict | None = None
             ) -> bytes:
    """``counts`` (columns cell as hex string, n, and town / village names if known) as the bytes of a .csv or
    .geojson file; ``measure`` names what the counts are (受理数, 未办结, 超期 ...); ``about``: the filter, written
    into the GeoJSON (a CSV has no place for it but its name, :func:`export_name`)."""
    counts = counts.sort_values(["n", "cell"], ascending=[False, True], kind="stable")  # the busiest hexes first
    places = {k: counts[k] if k in counts else "" for k in ("town", "village")}
    if fmt == "csv":
        centres = [h3.cell_to_latlng(c) for c in counts["cell"]]
        frame = pd.DataFrame({"h3_cell": counts["cell"], "resolution": int(resolution), "measure": measure,
                              "events": counts["n"], **places,
                              "centre_lat": [round(lat, 6) for lat, _ in centres],
                              "centre_lng": [round(lng, 6) for _, lng in centres]}).rename(columns=CSV_COLUMNS)
        return frame.to_csv(index=False).encode("utf-8-sig")  # with a BOM, so that Excel reads it as UTF-8
    if fmt == "geojson":
        props = {c: {"measure": measure, "events": int(n), "town": str(t), "village": str(v)}
                 for c, n, t, v in zip(counts["cell"], counts["n"], *[pd.Series(p, index=counts.index)
                                                                     for p in places.values()], strict=True)}
        cells = [int(c, 16) for c in counts["cell"]]
        collection = cell_boundaries_geojson(cells, props)
        if about:
            collection["onemap"] = about  # a foreign member (RFC 7946 §6.1): GIS tools keep or ignore it
        return json.dumps(collection, ensure_ascii=False).encode("utf-8")
    raise ValueError(f"unknown export format {fmt!r} ({' / '.join(FORMATS)})")


def _category_label(code: str) -> str:
    try:
        return category_name(code)
    except UnknownCodeError:  # a category group chosen by its prefix ("MD": every 矛盾纠纷 code)
        return code


def filter_words(categories, sources) -> list[str]:
    """The filter in words, for a file name and the GeoJSON: '劳动争议', '邻里等3类', '网格巡查+非警务警情'."""
    words = []
    if categories:
        first = _category_label(categories[0])
        words.append(first if len(categories) == 1 else f"{first}等{len(categories)}类")
    if sources:
        words.append("+".join(SOURCE_LABELS.get(s, s) for s in sources))
    return words


def export_name(measure: str, area: str, resolution: int, start, end, categories, sources, fmt: str) -> str:
    """'六边形受理数_新港街道_劳动争议_网格巡查_H3-9_2026-11-09_2026-12-06.csv': what, where, which filter, when."""
    parts = [f"六边形{measure}", area, *filter_words(categories, sources), f"H3-{int(resolution)}", f"{start}_{end}"]
    name = "_".join(p for p in parts if p)
    return re.sub(r'[\\/:*?"<>|]', "、", name) + f".{fmt}"  # 合同/民间借贷债务: no path separator in a file name
