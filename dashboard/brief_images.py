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

from dashboard.figures import BACKGROUND, HEX_OPACITY, LINE, SCALE

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


def week_map(counts: pd.DataFrame, boundaries: dict[str, dict], labels: pd.DataFrame, width: int = 1600,
             basemap=None, opacity: float = 0.6) -> bytes:
    """PNG of ``counts`` (columns cell as hex, n) over the county and town ``boundaries`` (GeoJSON by level),
    with the town names of ``labels`` (name, lng, lat) and a colour bar; ``basemap``: the deployment's tiles
    (geodata.basemap.Basemap) under it all at ``opacity``, the hexes a little see-through as on the screen."""
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
    if basemap is not None:  # the picture's whole extent, margins included
        from geodata.basemap import picture

        extent = (lng0 - margin / (kx * scale), lat1 - (height - margin) / scale,
                  lng0 + (width - margin) / (kx * scale), lat1 + margin / scale)
        img = Image.blend(img, picture(basemap, extent, (width, height)), opacity)
    hexes = Image.new("RGBA", (width, height))
    draw = ImageDraw.Draw(hexes)
    top = max(int(counts["n"].max()), 1) if len(counts) else 1
    alpha = 255 if basemap is None else round(255 * HEX_OPACITY)
    for cell, n in zip(counts["cell"], counts["n"], strict=True):
        ring = np.array(h3.cell_to_boundary(cell))  # (lat, lng) pairs
        draw.polygon(xy(ring[:, 1], ring[:, 0]), fill=(*_colour(min(float(n) / top, 1.0)), alpha))
    img = Image.alpha_composite(img.convert("RGBA"), hexes).convert("RGB")
    draw = ImageDraw.Draw(img)
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


class _Chart:
    """A white chart canvas for the brief: value grid lines with labels on the left, one slot per period along
    the bottom, a legend along the top."""

    left, right, top, bottom = 90, 30, 60, 70

    def __init__(self, labels: list[str], peak: float, width: int = 1600, height: int = 560):
        self.img = Image.new("RGB", (width, height), "#ffffff")
        self.draw = ImageDraw.Draw(self.img)
        self.font = ImageFont.truetype(str(cjk_font_path()), 22, index=CJK_SC_INDEX)
        self.plot_w, self.plot_h = width - self.left - self.right, height - self.top - self.bottom
        step = 10 ** max(len(str(int(max(peak, 1)))) - 1, 0)
        self.peak = (max(peak, 1) // step + 1) * step
        for i in range(5):  # grid lines and axis labels
            y = self.top + self.plot_h - self.plot_h * i / 4
            self.draw.line([(self.left, y), (width - self.right, y)], fill="#e3e8ef", width=1)
            self.draw.text((self.left - 12, y), f"{int(self.peak * i / 4):,}", fill="#4a5a6a", font=self.font,
                           anchor="rm")
        self.slot = self.plot_w / max(len(labels), 1)
        for i, label in enumerate(labels):
            self.draw.text((self.x(i), self.top + self.plot_h + 12), label, fill="#4a5a6a", font=self.font,
                           anchor="mt")
        self.legend_x = self.left

    def x(self, i: int) -> float:
        return self.left + (i + 0.5) * self.slot

    def y(self, v: float) -> float:
        return self.top + self.plot_h - self.plot_h * v / self.peak

    def bars(self, values: list[int], colour: str, last_colour: str) -> None:
        for i, n in enumerate(values):
            x0, x1 = self.x(i) - self.slot * 0.32, self.x(i) + self.slot * 0.32
            self.draw.rectangle([x0, self.y(n), x1, self.top + self.plot_h],
                                fill=last_colour if i == len(values) - 1 else colour)
            self.draw.text((self.x(i), self.y(n) - 6), f"{n}", fill="#1b2a3a", font=self.font, anchor="mb")

    def line(self, values: list[int], colour: str, labels: bool = False) -> None:
        points = [(self.x(i), self.y(v)) for i, v in enumerate(values)]
        if len(points) > 1:
            self.draw.line(points, fill=colour, width=4, joint="curve")
        for (x, y), v in zip(points, values, strict=True):
            self.draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill=colour)
            if labels:
                self.draw.text((x, y - 10), f"{v:,}", fill="#1b2a3a", font=self.font, anchor="mb")

    def key(self, label: str, colour: str, bar: bool) -> None:
        """One legend entry: a swatch (bar) or a stroke (line) and its label."""
        if bar:
            self.draw.rectangle([self.legend_x, 16, self.legend_x + 24, 36], fill=colour)
        else:
            self.draw.line([(self.legend_x - 4, 26), (self.legend_x + 28, 26)], fill=colour, width=4)
        self.draw.text((self.legend_x + 32, 26), label, fill="#1b2a3a", font=self.font, anchor="lm")
        self.legend_x += 32 + int(self.draw.textlength(label, font=self.font)) + 40

    def png(self) -> bytes:
        out = io.BytesIO()
        self.img.save(out, format="PNG", optimize=True)
        return out.getvalue()


def trend_chart(weeks: list[str], counts: list[int], year_before: list[int], width: int = 1600,
                height: int = 560) -> bytes:
    """PNG bar chart of events per week (``counts``, labelled ``weeks``), the last bar highlighted, with the same
    weeks a year earlier (``year_before``) as a line, so a rise shows against last week and against the season."""
    chart = _Chart(weeks, max([*counts, *year_before, 1]), width, height)
    chart.bars(counts, "#2f7f8f", "#d7263d")
    chart.line(year_before, "#f08a3c")
    chart.key("每周受理数", "#2f7f8f", bar=True)
    chart.key("去年同期", "#f08a3c", bar=False)
    return chart.png()


def backlog_chart(weeks: list[str], open_cases: list[int], overdue: list[int], width: int = 1600,
                  height: int = 560) -> bytes:
    """PNG line chart of the backlog at each week's end: cases still open, and of them those past their due time
    (``onemap.queries.daily_series`` on Sundays), so that the 督办 list reads against its trend."""
    chart = _Chart(weeks, max([*open_cases, *overdue, 1]) * 1.1, width, height)
    chart.line(open_cases, "#2f7f8f", labels=True)
    chart.line(overdue, "#d7263d", labels=True)
    chart.key("周末未办结", "#2f7f8f", bar=False)
    chart.key("其中超期", "#d7263d", bar=False)
    return chart.png()
