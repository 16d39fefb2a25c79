"""Cell x period count panels on H3, and the study-area cell universe.

A *panel* is a long DataFrame with one row per (cell, period) holding at least one event:

* ``cell``  H3 index as ``uint64``;
* ``week``  period start (``datetime64``; the column is called ``week`` whatever the period length);
* ``n``     event count;
* optional numeric per-category count columns (``cat:<name>``) and ``open`` (open cases).

Cells and periods without a row have zero events *if the period was observed*. Which periods were
observed is carried separately as an *exposure* Series (period start -> observed fraction of the
period, 0..1), so that a missing month (Portland, October 2016) is never read as a month of zeros.
"""
from __future__ import annotations

import h3.api.numpy_int as h3n
import numpy as np
import pandas as pd

__all__ = [
    "CATEGORY_PREFIX",
    "cell_centres",
    "cells_from_lonlat",
    "events_to_panel",
    "day_coverage",
    "exposure_from_days",
    "observed_days",
    "period_floor",
    "ring_matrix",
    "study_area_cells",
]

CATEGORY_PREFIX = "cat:"
_MONDAY = pd.Timestamp("2001-01-01")  # a Monday; weekly periods start on Mondays


def period_floor(times, period: str | pd.Timedelta = "7D") -> pd.DatetimeIndex:
    """Start of the period holding each time. Periods are multiples of ``period`` counted from Monday
    2001-01-01 00:00, so weekly periods run Monday to Sunday and daily periods start at midnight."""
    step = pd.Timedelta(period)
    t = pd.DatetimeIndex(pd.to_datetime(times))
    if t.tz is not None:
        t = t.tz_localize(None)
    k = (t - _MONDAY) // step
    return pd.DatetimeIndex(_MONDAY + k * step)


def cells_from_lonlat(lon, lat, resolution: int) -> np.ndarray:
    """H3 cells (uint64) of WGS84 points; rows with a missing or out-of-range coordinate get 0."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    out = np.zeros(lon.shape, dtype=np.uint64)
    if ok.any():
        try:
            import h3ronpy.vector as hv

            out[ok] = np.asarray(hv.coordinates_to_cells(lat[ok], lon[ok], resolution)).astype(np.uint64)
        except ImportError:  # pragma: no cover - h3ronpy is installed in the project venv
            out[ok] = [h3n.latlng_to_cell(a, b, resolution) for a, b in zip(lat[ok], lon[ok], strict=True)]
    return out


def study_area_cells(polygons, resolution: int) -> np.ndarray:
    """Sorted unique H3 cells (uint64) whose centre lies inside the study-area polygon(s).

    ``polygons`` is a GeoDataFrame/GeoSeries (any CRS; reprojected to EPSG:4326) or a shapely geometry
    in lon/lat. The union of these cells (plus, in the backtest, any cell holding an event) is the study
    area ``A`` of the PAI."""
    import shapely

    geom = polygons
    if hasattr(polygons, "to_crs"):
        gs = polygons.to_crs(4326) if polygons.crs is not None else polygons
        geom = gs.union_all() if hasattr(gs, "union_all") else gs.unary_union
    parts = getattr(geom, "geoms", [geom])
    cells: list[np.ndarray] = []
    for part in parts:
        if part.is_empty or not isinstance(part, shapely.Polygon):
            continue
        shape = h3n.LatLngPoly(
            [(y, x) for x, y in part.exterior.coords],
            *[[(y, x) for x, y in ring.coords] for ring in part.interiors],
        )
        cells.append(np.asarray(h3n.h3shape_to_cells(shape, resolution), dtype=np.uint64))
    if not cells:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(np.concatenate(cells))


def cell_centres(cells) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) of H3 cell centres."""
    cells = np.asarray(cells, dtype=np.uint64)
    ll = np.array([h3n.cell_to_latlng(int(c)) for c in cells], dtype=float).reshape(-1, 2)
    return ll[:, 1], ll[:, 0]


_RING_CACHE: dict = {}


def ring_matrix(cells, k: int, *, disk: bool = False):
    """Sparse 0/1 matrix ``R[i, j] = 1`` if cell j is on the hollow ring at grid distance ``k`` of cell i
    (``disk=True``: within distance ``k``, excluding i itself), restricted to ``cells``.
    Neighbours outside ``cells`` are dropped (they hold no events by construction)."""
    from scipy import sparse

    cells = np.asarray(cells, dtype=np.uint64)
    key = (hash(cells.tobytes()), cells.size, int(k), bool(disk))
    hit = _RING_CACHE.get(key)
    if hit is not None:
        return hit
    order = np.argsort(cells)
    sorted_cells = cells[order]
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for i, c in enumerate(cells):
        if disk:
            nb = np.asarray(h3n.grid_disk(int(c), k), dtype=np.uint64)
            nb = nb[nb != c]
        else:
            nb = np.asarray(h3n.grid_ring(int(c), k), dtype=np.uint64)
        pos = np.searchsorted(sorted_cells, nb)
        pos = np.clip(pos, 0, len(sorted_cells) - 1)
        hit = sorted_cells[pos] == nb
        j = order[pos[hit]]
        rows.append(np.full(j.size, i))
        cols.append(j)
    r = np.concatenate(rows) if rows else np.zeros(0, int)
    c = np.concatenate(cols) if cols else np.zeros(0, int)
    R = sparse.csr_matrix((np.ones(r.size), (r, c)), shape=(cells.size, cells.size))
    if len(_RING_CACHE) > 16:
        _RING_CACHE.clear()
    _RING_CACHE[key] = R
    return R


def day_coverage(times, *, gap_days: int = 7, gap_hours: int | None = None) -> pd.Series:
    """Observed fraction (0..1) of each calendar day from the first to the last event.

    * Runs of at least ``gap_days`` consecutive days without any event are a missing export (e.g.
      Portland's October 2016): coverage 0. Shorter empty runs are real zero days (coverage 1).
    * With ``gap_hours`` (for dense, time-stamped streams), runs of at least ``gap_hours`` empty hours
      are an outage, and so are the hours after the last event of the data; a day's coverage is its
      share of observed hours (e.g. Milwaukee: no call from 2018-05-17 12:00 to 05-18 10:00, and the
      scrape ends 2018-05-21 14:14).
    """
    t = pd.DatetimeIndex(pd.to_datetime(times))
    if t.tz is not None:
        t = t.tz_localize(None)
    if t.empty:
        return pd.Series(dtype=float, name="coverage")
    days = pd.date_range(t.min().normalize(), t.max().normalize(), freq="D")
    cov = pd.Series(1.0, index=days, name="coverage")
    have = days.isin(t.normalize().unique())
    run_start = None
    for i, h in enumerate(np.append(have, True)):
        if not h and run_start is None:
            run_start = i
        elif h and run_start is not None:
            if i - run_start >= gap_days:
                cov.iloc[run_start:i] = 0.0
            run_start = None
    if gap_hours is not None:
        hours = pd.date_range(days[0], days[-1] + pd.Timedelta("23h"), freq="h")
        hh = hours.isin(t.floor("h").unique())
        last = t.max().floor("h")
        ok = np.ones(hours.size, dtype=bool)
        ok[hours > last] = False                      # after the end of the data
        run_start = None
        for i, h in enumerate(np.append(hh, True)):
            if not h and run_start is None:
                run_start = i
            elif h and run_start is not None:
                if i - run_start >= gap_hours:
                    ok[run_start:i] = False
                run_start = None
        frac = pd.Series(ok.astype(float), index=hours).groupby(hours.normalize()).mean()
        cov = np.minimum(cov, frac.reindex(days, fill_value=0.0)).rename("coverage")
    return cov


def observed_days(times, *, gap_days: int = 7, gap_hours: int | None = None) -> pd.DatetimeIndex:
    """Calendar days that are fully observed (:func:`day_coverage` == 1)."""
    cov = day_coverage(times, gap_days=gap_days, gap_hours=gap_hours)
    return pd.DatetimeIndex(cov.index[cov >= 1.0 - 1e-9])


def exposure_from_days(days, period: str | pd.Timedelta = "7D") -> pd.Series:
    """Observed fraction (0..1) of each period. ``days`` is either a day -> coverage Series
    (:func:`day_coverage`) or a list of fully observed days. Periods between the first and the last
    one with no observed day get 0."""
    step = pd.Timedelta(period)
    if isinstance(days, pd.Series):
        cov = days.astype(float)
        cov.index = pd.DatetimeIndex(cov.index)
    else:
        cov = pd.Series(1.0, index=pd.DatetimeIndex(days))
    cov = cov[cov > 0]
    if cov.empty:
        return pd.Series(dtype=float, name="exposure")
    per_day = min(step, pd.Timedelta("1D")) / step
    starts = period_floor(cov.index, step)
    frac = pd.Series(cov.to_numpy() * per_day, index=starts).groupby(level=0).sum().round(9).clip(upper=1.0)
    full = pd.date_range(starts.min(), starts.max(), freq=step)
    return frac.reindex(full, fill_value=0.0).rename("exposure")


def events_to_panel(events: pd.DataFrame, resolution: int, *, time_col: str, period: str = "7D",
                    lon_col: str = "lon", lat_col: str = "lat", category_col: str | None = None,
                    open_col: str | None = None, max_categories: int = 12) -> pd.DataFrame:
    """Aggregate point events to the long (cell, week, n, [cat:*], [open]) panel.

    Rows without usable coordinates are dropped (count them before calling if that matters). With
    ``category_col`` the ``max_categories`` most frequent values get a ``cat:<value>`` count column (the
    rest are summed in ``cat:other``). ``open_col`` is a boolean column marking cases still open."""
    cells = cells_from_lonlat(events[lon_col].to_numpy(), events[lat_col].to_numpy(), resolution)
    ok = cells != 0
    df = pd.DataFrame({
        "cell": cells[ok],
        "week": period_floor(events.loc[ok, time_col], period),
        "n": 1,
    })
    if category_col is not None:
        cat = events.loc[ok, category_col].astype("string").fillna("missing").to_numpy()
        top = pd.Series(cat).value_counts().index[:max_categories]
        cat = np.where(pd.Series(cat).isin(top), cat, "other")
        dummies = pd.get_dummies(pd.Series(cat), prefix=CATEGORY_PREFIX[:-1], prefix_sep=":", dtype=np.int64)
        df = pd.concat([df, dummies], axis=1)
    if open_col is not None:
        df["open"] = events.loc[ok, open_col].fillna(False).astype(np.int64).to_numpy()
    out = df.groupby(["cell", "week"], sort=True).sum().reset_index()
    out["cell"] = out["cell"].astype(np.uint64)
    return out
