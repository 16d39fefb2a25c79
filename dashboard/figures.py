"""Figure builders: data in, plotly figure out. No queries here, no callbacks."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from geodata.h3cells import cell_boundaries_geojson

# MapLibre style that needs no internet: a plain background, and glyphs served by this app (CJK labels are
# drawn by the browser's local fonts; MapLibre requests glyph ranges only for non-ideographic text).
BACKGROUND = {"dark": "#0b1a2e", "light": "#eef1f5"}
LINE = {"dark": "#6d8fb5", "light": "#5a6b80"}
SCALE = [[0.0, "#1d3b5a"], [0.25, "#2f7f8f"], [0.5, "#f2c14e"], [0.75, "#f08a3c"], [1.0, "#d7263d"]]


def offline_style(theme: str = "dark") -> dict:
    return {
        "version": 8,
        "sources": {},
        "layers": [{"id": "background", "type": "background", "paint": {"background-color": BACKGROUND[theme]}}],
        "glyphs": "/glyphs/{fontstack}/{range}.pbf",
    }


def hex_map(counts: pd.DataFrame, boundaries: dict[str, dict], labels: pd.DataFrame, center: dict,
            theme: str = "dark", zoom: float = 10.3, uirevision: str = "map") -> go.Figure:
    """H3 hex choropleth with county/town/grid outlines and town names, on the offline style.

    ``counts`` has columns cell (hex string) and n; ``boundaries`` maps level -> GeoJSON.
    """
    fig = go.Figure()
    if len(counts):
        geojson = cell_boundaries_geojson([int(c, 16) for c in counts["cell"]])
        fig.add_trace(go.Choroplethmap(
            geojson=geojson, locations=counts["cell"], z=counts["n"], featureidkey="id",
            colorscale=SCALE, zmin=0, zmax=float(counts["n"].quantile(0.99)) or 1.0,
            marker={"opacity": 0.78, "line": {"width": 0.3, "color": "rgba(255,255,255,0.25)"}},
            colorbar={"title": {"text": "事件数"}, "thickness": 12, "x": 0.99,
                      "tickfont": {"color": "#dfe7f1" if theme == "dark" else "#223"}},
            hovertemplate="H3 %{location}<br>事件数 %{z}<extra></extra>", name="hex",
        ))
    if len(labels):
        fig.add_trace(go.Scattermap(
            lon=labels["lng"], lat=labels["lat"], mode="text", text=labels["name"], hoverinfo="skip",
            textfont={"size": 13, "color": "#ffffff" if theme == "dark" else "#1b2a3a"}, name="towns",
        ))
    widths = {"grid": 0.4, "town": 1.4, "county": 2.4}
    layers = [{"source": boundaries[level], "type": "line", "color": LINE[theme], "line": {"width": widths[level]},
               "opacity": 0.45 if level == "grid" else 0.9, "below": ""}
              for level in ("grid", "town", "county") if level in boundaries]
    fig.update_layout(
        map={"style": offline_style(theme), "center": center, "zoom": zoom, "layers": layers},
        margin={"l": 0, "r": 0, "t": 0, "b": 0}, paper_bgcolor=BACKGROUND[theme], showlegend=False,
        uirevision=uirevision,
    )
    return fig
