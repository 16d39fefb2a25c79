"""Figure builders: data in, plotly figure out. No queries here, no callbacks."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from geodata.h3cells import cell_boundaries_geojson
from onemap.metrics import HOTSPOT_CAVEAT

# MapLibre style that needs no internet: a plain background and no "glyphs" URL, so MapLibre draws every label
# character itself with the browser's local fonts (Noto CJK on Debian) and requests no glyph ranges. plotly's
# built-in styles point at fonts.openmaptiles.org; a local URL answering with empty PBFs made digits and Latin
# letters vanish from labels ("第3网格" showed as "第网格").
BACKGROUND = {"dark": "#0b1a2e", "light": "#eef1f5"}
LINE = {"dark": "#6d8fb5", "light": "#5a6b80"}
TEXT = {"dark": "#dfe7f1", "light": "#223"}  # the figure's font colour: colour-bar title and ticks, legend, notes
HEX_OPACITY = 0.78  # the hexes let the outlines (and a deployment's basemap) show through
SCALE = [[0.0, "#1d3b5a"], [0.25, "#2f7f8f"], [0.5, "#f2c14e"], [0.75, "#f08a3c"], [1.0, "#d7263d"]]


def offline_style(theme: str = "dark", basemap: dict | None = None) -> dict:
    """The map's style. ``basemap``: the deployment's raster tiles (:func:`basemap_source`), drawn over the
    background and under everything else."""
    style = {
        "version": 8,
        # a non-empty sources object: an empty one is dropped on the way to the browser, and MapLibre's
        # style diff on the next update then fails with 'missing required property "sources"'
        "sources": {"none": {"type": "geojson", "data": {"type": "FeatureCollection", "features": []}}},
        "layers": [{"id": "background", "type": "background", "paint": {"background-color": BACKGROUND[theme]}}],
    }
    if basemap:
        source = {k: v for k, v in basemap.items() if k != "opacity"}
        style["sources"]["basemap"] = source
        style["layers"].append({"id": "basemap", "type": "raster", "source": "basemap",
                                "paint": {"raster-opacity": basemap["opacity"]}})
    return style


def basemap_source(url: str, min_zoom: int, max_zoom: int, attribution: str, opacity: float) -> dict:
    """A MapLibre raster source of 256-px XYZ tiles at ``url`` (``{z}/{x}/{y}`` in it). Beyond ``max_zoom`` the
    map enlarges the deepest tiles rather than asking for tiles that do not exist."""
    return {"type": "raster", "tiles": [url], "tileSize": 256, "minzoom": min_zoom, "maxzoom": max_zoom,
            **({"attribution": attribution} if attribution else {}), "opacity": opacity}


def base_map(boundaries: dict[str, dict], labels: pd.DataFrame, center: dict, theme: str = "dark",
             zoom: float = 10.3, uirevision: str = "map") -> go.Figure:
    """An empty map on the offline style with county/town/grid outlines and town names."""
    fig = go.Figure()
    if len(labels):
        fig.add_trace(go.Scattermap(
            lon=labels["lng"], lat=labels["lat"], mode="text", text=labels["name"], hoverinfo="skip",
            textfont={"size": 13, "color": "#ffffff" if theme == "dark" else "#1b2a3a"}, name="towns",
            showlegend=False,
        ))
    widths = {"grid": 0.4, "town": 1.4, "county": 2.4}
    layers = [{"source": boundaries[level], "type": "line", "color": LINE[theme], "line": {"width": widths[level]},
               "opacity": 0.45 if level == "grid" else 0.9}
              for level in ("grid", "town", "county") if level in boundaries]
    fig.update_layout(
        map={"style": offline_style(theme), "center": center, "zoom": zoom, "layers": layers},
        margin={"l": 0, "r": 0, "t": 0, "b": 0}, paper_bgcolor=BACKGROUND[theme], showlegend=False,
        font={"color": TEXT[theme]},
        uirevision=uirevision,
    )
    return fig


def hex_map(counts: pd.DataFrame, boundaries: dict[str, dict], labels: pd.DataFrame, center: dict,
            theme: str = "dark", zoom: float = 10.3, note: str = "", title: str = "事件数",
            zmax: float | None = None) -> go.Figure:
    """H3 hex choropleth of counts; ``counts`` has columns cell (hex string) and n (NaN: not drawn), and may have
    place (the hex's town and village, named on hover); ``title`` names what is counted (colour bar and hover);
    ``note`` is written in the map's corner; ``zmax``: the top of the colour scale (default the 99th percentile
    of n)."""
    fig = base_map(boundaries, labels, center, theme, zoom)
    if not len(counts):  # an empty map says so, rather than look like a failed one
        note = "<br>".join(filter(None, [f"所选条件下没有{title}可显示", note]))
    if note:
        _corner_note(fig, note, theme)
    if len(counts):
        top = zmax or float(counts["n"].quantile(0.99)) or 1.0
        fig.add_trace(go.Choroplethmap(
            geojson=_hex_shapes(counts["cell"]), locations=counts["cell"],
            z=counts["n"], featureidkey="id", colorscale=SCALE, zmin=0, zmax=top,
            marker={"opacity": HEX_OPACITY, "line": {"width": 0.3, "color": "rgba(255,255,255,0.25)"}},
            # below the plotly toolbar, which otherwise sits over the bar's title when the pointer is on the map
            colorbar={"title": {"text": title}, "thickness": 12, "x": 0.99, "len": 0.9, "y": 0, "yanchor": "bottom",
                      **_capped_ticks(top, float(counts["n"].max()))},
            customdata=counts["place"] if "place" in counts else None,
            hovertemplate=("<b>%{customdata}</b><br>" if "place" in counts else "")
            + f"{title} %{{z}}<br><span style='font-size:10px'>H3 %{{location}}</span><extra></extra>", name="hex",
        ))
    return fig


# 积案回放: the ▶ buttons, the slider and its dates take the figure's top; the map is drawn below them (its domain),
# where fitMap fits the area, rather than under them
PLAYBACK_MAP_TOP = 0.85


def backlog_map(cells: pd.DataFrame, boundaries: dict[str, dict], labels: pd.DataFrame, center: dict,
                theme: str = "dark", zoom: float = 10.3, note: str = "", title: str = "积案") -> go.Figure:
    """积案 playback: the open cases per hex at each step (``cells``: as_of, cell, n from
    ``onemap.queries.backlog_cells``), one animation frame per step on one colour scale, with a slider and a
    play button; it opens on the last step. A hex with no open case at a step is not drawn in that frame."""
    steps = sorted(cells["as_of"].unique())
    if not steps:
        return hex_map(cells, boundaries, labels, center, theme, zoom, note, title)
    wide = cells.pivot_table(index="cell", columns="as_of", values="n", aggfunc="sum")
    zmax = float(cells["n"].quantile(0.99)) or 1.0
    last = pd.DataFrame({"cell": wide.index, "n": wide[steps[-1]].to_numpy()})
    fig = hex_map(last, boundaries, labels, center, theme, zoom, note, title, zmax=zmax)
    hexes = len(fig.data) - 1  # the choropleth is the last trace
    # a step's time is the end of a day: named for that day (00:00 of the next day is the end of this one), with
    # the year when the steps span more than one
    days = [pd.Timestamp(s) - pd.Timedelta(seconds=1) for s in steps]
    names = [d.strftime("%m-%d" if days[0].year == days[-1].year else "%y-%m-%d") for d in days]
    # each frame says its total (the hexes' cases that day's end): whether the pile grew is the point of playing it
    notes = list(fig.layout.annotations)
    totals = [int(wide[s].sum()) for s in steps]

    def total(name: str, n: int) -> dict:
        # above the slider's right end, not over the corner note
        return {"text": f"<b>{name} 日终{title} {n:,} 件</b>（有点位的）", "xref": "paper", "yref": "paper",
                "x": 0.9, "y": 1, "yshift": -8, "xanchor": "right", "yanchor": "top",
                "showarrow": False, "bgcolor": "rgba(16,38,64,0.85)", "font": {"size": 14, "color": TEXT[theme]}}

    fig.frames = [go.Frame(name=name, traces=[hexes], data=[go.Choroplethmap(z=wide[s].tolist())],
                           layout={"annotations": notes + [total(name, n)]})
                  for name, s, n in zip(names, steps, totals, strict=True)]
    fig.add_annotation(total(names[-1], totals[-1]))
    text = TEXT[theme]
    play = {"frame": {"duration": 700, "redraw": True}, "transition": {"duration": 0}, "fromcurrent": True}
    fig.update_layout(map_domain={"x": [0, 1], "y": [0, PLAYBACK_MAP_TOP]})
    fig.update_layout(
        updatemenus=[{"type": "buttons", "direction": "left", "active": -1, "showactive": False, "x": 0.01, "y": 0.99, "xanchor": "left", "yanchor": "top",
                      "bgcolor": "#16314f", "bordercolor": "#35557a", "font": {"color": text},
                      "buttons": [{"label": "▶ 回放", "method": "animate", "args": [None, play]},
                                  {"label": "❚❚", "method": "animate",
                                   "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}]}]}],
        sliders=[{"active": len(steps) - 1, "x": 0.12, "len": 0.8, "y": 0.99, "yanchor": "top",
                  "currentvalue": {"prefix": f"{title} · 日终 ", "font": {"color": text}},
                  "font": {"color": text, "size": 11 if len(steps) <= 31 else 9}, "bgcolor": "#16314f",
                  "bordercolor": "#35557a",
                  "steps": [{"label": name, "method": "animate",
                             "args": [[name], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}]}
                            for name in names]}])
    return fig


# emerging hot spot classes: warm colours for hot, cool for cold; stronger for newer / intensifying
PATTERN_COLOURS = {
    "new_hot": "#ff4fa3", "consecutive_hot": "#ff7a33", "intensifying_hot": "#ff1e1e", "persistent_hot": "#a3001b",
    "diminishing_hot": "#f5b971", "sporadic_hot": "#f2e14e", "oscillating_hot": "#c58fe0", "historical_hot": "#8c6a4f",
    "new_cold": "#3ddbff", "consecutive_cold": "#3da5ff", "intensifying_cold": "#2f5fd7", "persistent_cold": "#1d3bb3",
    "diminishing_cold": "#7fb7e6", "sporadic_cold": "#8fd3c7", "oscillating_cold": "#9f8fe0", "historical_cold": "#6b7d99",
}


def hotspot_map(cells: pd.DataFrame, boundaries: dict[str, dict], labels: pd.DataFrame, center: dict,
                theme: str = "dark", zoom: float = 10.3, note: str = "") -> go.Figure:
    """Emerging hot spot classes (Gi* per week + Mann–Kendall), one colour per class, with a legend; the corner
    says what they are not (a forecast), then ``note``."""
    fig = base_map(boundaries, labels, center, theme, zoom)
    for pattern, group in cells.groupby("pattern", sort=False):
        colour = PATTERN_COLOURS.get(pattern, "#888888")
        fig.add_trace(go.Choroplethmap(
            geojson=_hex_shapes(group["cell"]), locations=group["cell"],
            z=[1] * len(group), featureidkey="id", colorscale=[[0, colour], [1, colour]], showscale=False,
            marker={"opacity": 0.8, "line": {"width": 0.3, "color": "rgba(255,255,255,0.3)"}},
            name=str(group["pattern_zh"].iloc[0]), showlegend=True,
            customdata=group[["pattern_zh", "z", "count"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>聚集强度 z = %{customdata[1]:.2f}<br>本周事件 %{customdata[2]}<extra></extra>",
        ))
    fig.update_layout(showlegend=True, legend={"bgcolor": "rgba(16,38,64,0.8)",
                                               "x": 0.01, "y": 0.99})
    # measured (docs/analytics.md §3): the classes do not forecast a rise, and the screen says so
    _corner_note(fig, "<br>".join(filter(None, [HOTSPOT_CAVEAT, note])), theme)
    return fig


def _capped_ticks(top: float, highest: float) -> dict:
    """Colour-bar ticks for a scale that stops at ``top`` (the 99th percentile, so that one busy hex does not
    wash the rest out): round steps, and when a hex holds more, the top says '≥ top' — the darkest red is 'this
    many or more', not 'this many'."""
    if highest <= top:
        return {}
    step = next(m * 10 ** e for e in range(0, 7) for m in (1, 2, 5) if m * 10 ** e * 6 >= top)
    values = [v * step for v in range(int(top // step) + 1) if v * step <= top - step / 2] + [top]
    return {"tickmode": "array", "tickvals": values,
            "ticktext": [f"{v:,.0f}" for v in values[:-1]] + [f"≥{top:,.0f}"]}


def _hex_shapes(cells) -> dict:
    """The hexes' outlines for a choropleth joined on the id: 0.1 m and no properties (what the map needs)."""
    return cell_boundaries_geojson([int(c, 16) for c in cells], digits=6, describe=False)


def _corner_note(fig: go.Figure, text: str, theme: str) -> None:
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.01, y=0.01, xanchor="left", yanchor="bottom",
                       showarrow=False, align="left", bgcolor="rgba(16,38,64,0.8)",
                       font={"size": 12, "color": TEXT[theme]})



# the wall screen's map type on a 1920×1080 screen, px; scaled with the screen. Area names at 15: plotly draws them
# as a MapLibre symbol layer that does not allow overlap, so a name that would overlap another is left out, not
# drawn over it; at 20 (the old size) 新港街道's map lost two of its twelve village names at 1080p, at 16 one, at 15
# (30 on a 4K screen) none
WALL_TYPE = {"names": 15, "font": 16, "notes": 17, "colorbar": 16}


def for_wall_screen(fig: go.Figure, scale: float = 1.0) -> go.Figure:
    """The map in the wall screen's type, read from across the room: ``WALL_TYPE`` times ``scale`` (the screen's
    size over 1920×1080: 2 on a 3840×2160 screen) for the area names, colour bar and legend, and corner notes; the
    outlines as thick, for the screen, as on a desk screen."""
    px = {key: round(size * scale) for key, size in WALL_TYPE.items()}
    fig.update_traces(textfont_size=px["names"], selector={"type": "scattermap"})
    # the colour bar's end labels (0 at the foot) need half their height of room inside the map
    fig.update_traces(colorbar={"thickness": px["colorbar"], "ypad": round(px["font"] * 0.8)},
                      selector={"type": "choroplethmap"})
    fig.update_layout(font_size=px["font"])
    fig.update_annotations(font_size=px["notes"], borderpad=round(4 * scale))
    for layer in fig.layout.map.layers:
        if layer.line.width is not None:
            layer.line.width = layer.line.width * scale
    return fig


def daily_chart(days: pd.DataFrame, theme: str = "dark", scale: float | None = None) -> go.Figure:
    """Cases registered each day (bars) and the backlog at each day's end (lines, right axis: open, and of them
    past their due time), from ``onemap.queries.daily_series``: where the work piles up, not only where it comes in.
    ``scale``: on the wall screen, its size over 1920×1080 (2 on a 3840×2160 one): type, lines and height drawn for
    a 1920×1080 wall screen times that; None: the desk screen's side panel."""
    text = TEXT[theme]
    wall = scale is not None
    s = scale or 1.0
    size = round((14 if wall else 11) * s)
    margin = {"l": 40, "r": 46, "t": 30, "b": 30} if wall else {"l": 36, "r": 40, "t": 26, "b": 24}
    fig = go.Figure([
        go.Bar(x=days["day"], y=days["registered"], name="受理（左轴）", marker_color="#2f7f8f",
               hovertemplate="受理 %{y}<extra></extra>"),
        go.Scatter(x=days["day"], y=days["open"], name="未办结（右轴）", yaxis="y2", mode="lines",
                   line={"color": "#f2c14e", "width": 2 * s},
                   hovertemplate="日终未办结 %{y}<extra></extra>"),
        go.Scatter(x=days["day"], y=days["overdue"], name="超期（右轴）", yaxis="y2", mode="lines",
                   line={"color": "#d7263d", "width": 2 * s},
                   hovertemplate="日终超期 %{y}<extra></extra>"),
    ])
    fig.update_layout(
        height=round((170 if wall else 190) * s), margin={k: round(v * s) for k, v in margin.items()},
        paper_bgcolor=BACKGROUND[theme], plot_bgcolor=BACKGROUND[theme], font={"color": text, "size": size},
        bargap=0.15, legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0, "font": {"size": size}},
        hovermode="x unified",  # one hover for the day: its 受理, and the backlog and overdue at its end
        xaxis={"tickformat": "%m-%d", "gridcolor": "#1b3350", "hoverformat": "%Y-%m-%d"},
        yaxis={"title": None, "gridcolor": "#1b3350", "rangemode": "tozero"},
        # whole-number ticks of its own (plotly syncs an overlaying axis to the left one's grid: 6.27, 12.54 ...)
        yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "tickmode": "auto", "tickformat": "d",
                "range": [0, 1.1 * max(int(days["open"].max()) if len(days) else 0, 1)]})
    if wall:  # as many ticks on a 4K screen as on a 1080p one (plotly's own count grows with the pixels), level,
        # the dates a little lower, clear of the right axis' 0
        fig.update_layout(xaxis={"nticks": 6, "tickangle": 0, "ticks": "outside", "ticklen": round(6 * s),
                                 "tickcolor": "rgba(0,0,0,0)"}, yaxis_nticks=5, yaxis2_nticks=5)
    return fig
