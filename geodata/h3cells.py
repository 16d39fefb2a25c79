"""H3 helpers on uint64 cell ids (0 = no cell), WGS84 lon/lat in, GeoJSON out.

Resolutions used by the product: 7 (~5 km², town views), 8 (~0.7 km², default), 9 (~0.1 km², street),
10 (~0.015 km², finest). Store the finest and derive parents with :func:`parent_cells`.
Coordinates must already be WGS84 (convert GCJ-02/BD-09 first).
"""
from __future__ import annotations

from typing import Literal

import h3
import h3.api.basic_int as h3i
import numpy as np
import shapely

try:  # fast vectorised path (Rust); h3-py fallback below gives identical results
    from h3ronpy.vector import coordinates_to_cells as _h3ronpy_coordinates_to_cells
except ImportError:  # pragma: no cover - depends on the environment
    _h3ronpy_coordinates_to_cells = None

_RES_SHIFT = 52
_RES_MASK = np.uint64(0xF) << np.uint64(_RES_SHIFT)


def _check_res(resolution: int) -> int:
    r = int(resolution)
    if not 0 <= r <= 15:
        raise ValueError(f"H3 resolution must be 0..15, got {resolution}")
    return r


def cells_from_points(lat, lng, resolution: int) -> np.ndarray:
    """H3 cell (uint64) of each WGS84 point; 0 where lat/lng is NaN, infinite or out of range."""
    r = _check_res(resolution)
    la = np.asarray(lat, dtype=float).ravel()
    lo = np.asarray(lng, dtype=float).ravel()
    if la.shape != lo.shape:
        raise ValueError("lat and lng must have the same length")
    out = np.zeros(len(la), dtype=np.uint64)
    ok = np.isfinite(la) & np.isfinite(lo) & (np.abs(la) <= 90) & (np.abs(lo) <= 180)
    if not ok.any():
        return out
    if _h3ronpy_coordinates_to_cells is not None:
        res = _h3ronpy_coordinates_to_cells(la[ok], lo[ok], r)
        out[ok] = np.asarray(res, dtype=np.uint64)
    else:  # pragma: no cover
        out[ok] = [h3i.latlng_to_cell(a, b, r) for a, b in zip(la[ok], lo[ok], strict=True)]
    return out


def cell_resolutions(cells) -> np.ndarray:
    """Resolution of each cell (int8); -1 for 0."""
    c = np.asarray(cells, dtype=np.uint64)
    res = ((c & _RES_MASK) >> np.uint64(_RES_SHIFT)).astype(np.int8)
    return np.where(c == 0, np.int8(-1), res)


def parent_cells(cells, resolution: int) -> np.ndarray:
    """Parent of each cell at ``resolution`` (vectorised bit arithmetic; 0 stays 0).

    Raises ValueError if a cell is coarser than ``resolution``.
    """
    r = _check_res(resolution)
    c = np.asarray(cells, dtype=np.uint64).copy()
    nz = c != 0
    cur = cell_resolutions(c)
    if (cur[nz] < r).any():
        raise ValueError(f"some cells are coarser than resolution {r}")
    # set resolution field, then every digit finer than r to 7 (unused)
    p = (c & ~_RES_MASK) | (np.uint64(r) << np.uint64(_RES_SHIFT))
    for d in range(r + 1, 16):
        p |= np.uint64(7) << np.uint64((15 - d) * 3)
    return np.where(nz, p, np.uint64(0))


def cell_boundaries_geojson(cells, properties: dict | None = None, digits: int = 7, describe: bool = True) -> dict:
    """GeoJSON FeatureCollection of the distinct non-zero cells (closed lng/lat rings, ``digits`` decimals).

    Feature ``id`` is the hex string of the cell; with ``describe``, properties carry ``h3`` (hex) and
    ``resolution``, plus ``properties[hex]`` (a dict) when given. A map that joins on the id draws with
    ``digits=6`` (0.1 m) and no properties: a third less to send at H3 10.
    """
    c = np.asarray(cells, dtype=np.uint64).ravel()
    feats = []
    for cell in dict.fromkeys(int(x) for x in c if x != 0):
        ring = [[round(lng, digits), round(lat, digits)] for lat, lng in h3i.cell_to_boundary(cell)]
        ring.append(ring[0])
        hx = h3.int_to_str(cell)
        props = {"h3": hx, "resolution": h3i.get_resolution(cell)} if describe else {}
        if describe and properties and hx in properties:
            props.update(properties[hx])
        feats.append({"type": "Feature", "id": hx, "properties": props,
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": feats}


def cells_covering(polygon, resolution: int,
                   contain: Literal["overlap", "center", "full"] = "overlap") -> np.ndarray:
    """Sorted uint64 cells for a shapely (Multi)Polygon in WGS84 lon/lat.

    ``contain='overlap'`` (default) returns every cell that intersects the polygon, i.e. a full cover;
    ``'center'`` the cells whose centre is inside; ``'full'`` the cells entirely inside.
    """
    r = _check_res(resolution)
    if polygon is None or shapely.is_empty(polygon):
        return np.zeros(0, dtype=np.uint64)
    shape = h3.geo_to_h3shape(polygon.__geo_interface__)
    cells = h3.h3shape_to_cells_experimental(shape, r, contain=contain)
    return np.array(sorted(h3.str_to_int(x) for x in cells), dtype=np.uint64)
