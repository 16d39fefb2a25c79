"""The brief's pictures as PNG: the week's events per H3 cell over the county and town boundaries, and the
weekly trend beside the same weeks a year earlier.

Drawn with Pillow from the same data as the dashboard's map (``onemap.queries.hex_counts`` / ``area_geojson``)
and its colour scale, because a printed brief needs a picture and a browser is not at hand. Longitude is
scaled by cos(latitude) so that a county of ~30 km looks as it does on the screen.
"""
from __future__ import annotations

import io
from pathlib import Path

import h3
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from dashboard.figures import BACKGROUND, LINE, SCALE

CJK_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
             "/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc")
CJK_SC_INDEX = 2  # Simplified Chinese in the Noto Sans CJK collection (JP, KR, SC, TC, HK)


def cjk_font_path() -> Path:
    """The Noto Sans CJK collection installed by Debian's fonts-noto-cjk (the README's set-up installs it)."""
    for candidate in CJK_FONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    found = sorted(Path("/usr/share/fonts").rglob("NotoSansCJK-Regular.ttc"))
    if found:
        return found[0]
    raise FileNotFoundError("no Chinese font: install Debian's fonts-noto-cjk (apt-get install -y fonts-noto-cjk)")


def _colour(t: float) -> tuple[int, int, int]:
    """The dashboard's colour scale at t in [0, 1]."""
    stops = np.array([s for s, _ in SCALE])
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for _, c in SCALE], dtype=float)
    return tuple(int(round(np.interp(t, stops, rgb[:, i]))) for i in range(3))


def _rings(geojson: dict):
    for feature in geojson["features"]:
        geom = feature["geometry"]
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        for polygon in polygons:
            yield from polygon


def week_map(counts: pd.DataFrame, boundaries: dict[str, dict], labels: pd.DataFrame, width: int = 1600) -> bytes:
    """PNG of ``counts`` (columns cell as hex, n) over the county and town ``boundaries`` (GeoJSON by level),
    with the town names of ``labels`` (name, lng, lat) and a colour bar."""
    rings = [np.asarray(r, dtype=float) for r in _rings(boundaries["county"])]
    allpts = np.vstack(rings)
    lng0, lat0 = allpts.min(axis=0)
    lng1, lat1 = allpts.max(axis=0)
    kx = np.cos(np.radians((lat0 + lat1) / 2))
    margin = 40
    # fit the width, but no taller than wide (a tall town or village must still fit on the page)
    scale = min((width - 2 * margin - 140) / ((lng1 - lng0) * kx), (width - 2 * margin) / (lat1 - lat0))
    height = int((lat1 - lat0) * scale + 2 * margin)

    def xy(lng, lat):
        return list(zip(margin + (np.asarray(lng) - lng0) * kx * scale, margin + (lat1 - np.asarray(lat)) * scale,
                        strict=True))

    img = Image.new("RGB", (width, height), BACKGROUND["dark"])
    draw = ImageDraw.Draw(img)
    top = max(int(counts["n"].max()), 1) if len(counts) else 1
    for cell, n in zip(counts["cell"], counts["n"], strict=True):
        ring = np.array(h3.cell_to_boundary(cell))  # (lat, lng) pairs
        draw.polygon(xy(ring[:, 1], ring[:, 0]), fill=_colour(min(float(n) / top, 1.0)))
    for level, width_px in (("town", 2), ("county", 4)):
        for ring in _rings(boundaries.get(level, {"features": []})):
            r = np.asarray(ring, dtype=float)
            draw.line(xy(r[:, 0], r[:, 1]), fill=LINE["dark"], width=width_px)
    font = ImageFont.truetype(str(cjk_font_path()), 26, index=CJK_SC_INDEX)
    for name, lng, lat in zip(labels["name"], labels["lng"], labels["lat"], strict=True):
        (x, y), = xy([lng], [lat])
        draw.text((x, y), name, fill="#ffffff", font=font, anchor="mm", stroke_width=2, stroke_fill="#0b1a2e")
    # colour bar: events per cell this week
    x0, y0, bar_h = width - 120, margin + 30, min(400, height - 2 * margin - 60)
    for i in range(bar_h):
        draw.line([(x0, y0 + bar_h - i), (x0 + 24, y0 + bar_h - i)], fill=_colour(i / max(bar_h - 1, 1)))
    small = ImageFont.truetype(str(cjk_font_path()), 22, index=CJK_SC_INDEX)
    draw.text((x0 - 10, y0 - 34), "事件数", fill="#dfe7f1", font=small)
    draw.text((x0 + 32, y0 - 12), f"{top}", fill="#dfe7f1", font=small)
    draw.text((x0 + 32, y0 + bar_h - 12), "0", fill="#dfe7f1", font=small)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def trend_chart(weeks: list[str], counts: list[int], year_before: list[int], width: int = 1600,
                height: int = 560) -> bytes:
    """PNG bar chart of events per week (``counts``, labelled ``weeks``), the last bar highlighted, with the same
    weeks a year earlier (``year_before``) as a line, so a rise shows against last week and against the season."""
    img = Image.new("RGB", (width, height), "#ffffff")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(cjk_font_path()), 22, index=CJK_SC_INDEX)
    left, right, top, bottom = 90, 30, 60, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([*counts, *year_before, 1])
    step = 10 ** max(len(str(peak)) - 1, 0)
    peak = (peak // step + 1) * step
    for i in range(5):  # grid lines and axis labels
        y = top + plot_h - plot_h * i / 4
        draw.line([(left, y), (width - right, y)], fill="#e3e8ef", width=1)
        draw.text((left - 12, y), f"{int(peak * i / 4):,}", fill="#4a5a6a", font=font, anchor="rm")
    slot = plot_w / max(len(counts), 1)

    def y_of(v: float) -> float:
        return top + plot_h - plot_h * v / peak

    for i, (label, n) in enumerate(zip(weeks, counts, strict=True)):
        x0 = left + i * slot + slot * 0.18
        x1 = left + (i + 1) * slot - slot * 0.18
        colour = "#d7263d" if i == len(counts) - 1 else "#2f7f8f"
        draw.rectangle([x0, y_of(n), x1, top + plot_h], fill=colour)
        draw.text(((x0 + x1) / 2, y_of(n) - 6), f"{n}", fill="#1b2a3a", font=font, anchor="mb")
        draw.text(((x0 + x1) / 2, top + plot_h + 12), label, fill="#4a5a6a", font=font, anchor="mt")
    points = [(left + (i + 0.5) * slot, y_of(v)) for i, v in enumerate(year_before)]
    if len(points) > 1:
        draw.line(points, fill="#f08a3c", width=4, joint="curve")
    for x, y in points:
        draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill="#f08a3c")
    draw.rectangle([left, 16, left + 24, 36], fill="#2f7f8f")
    draw.text((left + 32, 26), "每周受理数", fill="#1b2a3a", font=font, anchor="lm")
    draw.line([(left + 220, 26), (left + 260, 26)], fill="#f08a3c", width=4)
    draw.text((left + 268, 26), "去年同期", fill="#1b2a3a", font=font, anchor="lm")
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
