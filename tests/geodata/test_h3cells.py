"""geodata.h3cells agrees with h3-py cell by cell."""
from __future__ import annotations

import h3
import h3.api.basic_int as h3i
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geodata.h3cells import (
    cell_boundaries_geojson,
    cell_resolutions,
    cells_covering,
    cells_from_points,
    parent_cells,
)

lats = st.floats(-85, 85, allow_nan=False)
lngs = st.floats(-179.9, 179.9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(lat=lats, lng=lngs, res=st.integers(0, 15))
def test_cells_from_points_matches_h3(lat, lng, res):
    got = cells_from_points([lat], [lng], res)
    assert got.dtype == np.uint64
    assert int(got[0]) == h3i.latlng_to_cell(lat, lng, res)


def test_cells_from_points_vector_and_invalid():
    rng = np.random.default_rng(1)
    lat = rng.uniform(22.6, 22.95, 5000)
    lng = rng.uniform(115.2, 115.6, 5000)
    lat[[3, 10]] = np.nan
    lng[11] = np.inf
    lat[12] = 95.0
    got = cells_from_points(lat, lng, 10)
    assert len(got) == 5000 and (got[[3, 10, 11, 12]] == 0).all()
    ok = np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90)
    expect = [h3i.latlng_to_cell(a, b, 10) for a, b in zip(lat[ok], lng[ok], strict=True)]
    assert (got[ok] == np.array(expect, dtype=np.uint64)).all()
    assert len(cells_from_points([], [], 8)) == 0
    with pytest.raises(ValueError):
        cells_from_points([1.0], [1.0], 16)


@settings(max_examples=200, deadline=None)
@given(lat=lats, lng=lngs, res=st.integers(0, 15), data=st.data())
def test_parent_cells_matches_h3(lat, lng, res, data):
    parent_res = data.draw(st.integers(0, res))
    cell = h3i.latlng_to_cell(lat, lng, res)
    got = parent_cells(np.array([cell, 0], dtype=np.uint64), parent_res)
    assert int(got[0]) == h3i.cell_to_parent(cell, parent_res)
    assert got[1] == 0
    assert cell_resolutions(got)[0] == parent_res


def test_parent_cells_rejects_finer_target():
    cell = h3i.latlng_to_cell(22.78, 115.37, 7)
    with pytest.raises(ValueError):
        parent_cells([cell], 8)


def test_cell_boundaries_geojson():
    cells = cells_from_points([22.78, 22.78, 22.70], [115.37, 115.37, 115.50], 9)
    fc = cell_boundaries_geojson(np.append(cells, np.uint64(0)))
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 2  # distinct, 0 dropped
    f = fc["features"][0]
    assert f["id"] == h3.int_to_str(int(cells[0])) == f["properties"]["h3"]
    ring = f["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    expect = [(lng, lat) for lat, lng in h3i.cell_to_boundary(int(cells[0]))]
    assert np.allclose(ring[:-1], expect, atol=1e-6)
    poly = shapely.Polygon(ring)
    assert poly.contains(shapely.Point(115.37, 22.78))


@settings(max_examples=60, deadline=None)
@given(lat=st.floats(18, 53, allow_nan=False), lng=st.floats(74, 134, allow_nan=False), res=st.integers(7, 10))
def test_lean_map_outlines_keep_neighbours_joined(lat, lng, res):
    """The map's hexes at 6 decimals and no properties: within 0.1 m of h3's, and a cell and each neighbour
    still share their two common corners, to the last decimal kept (no visible gaps between drawn hexes)."""
    cell = h3i.latlng_to_cell(lat, lng, res)
    ring_cells = h3i.grid_disk(cell, 1)
    fc = cell_boundaries_geojson(np.array(ring_cells, dtype=np.uint64), digits=6, describe=False)
    rings = {f["id"]: [tuple(p) for p in f["geometry"]["coordinates"][0]] for f in fc["features"]}
    assert all(f["properties"] == {} for f in fc["features"])
    centre = rings[h3.int_to_str(cell)]
    assert np.allclose(centre[:-1], [(x, y) for y, x in h3i.cell_to_boundary(cell)], atol=1e-6)
    for other in ring_cells:
        if other != cell:
            theirs = np.array(rings[h3.int_to_str(other)])
            shared = [p for p in centre[:-1] if (np.abs(theirs - p).max(axis=1) <= 1.5e-6).any()]
            assert len(shared) >= 2


def test_cells_covering():
    poly = shapely.box(115.35, 22.76, 115.40, 22.80)
    cover = cells_covering(poly, 8)
    center = cells_covering(poly, 8, contain="center")
    assert cover.dtype == np.uint64 and (np.diff(cover.astype(np.int64)) > 0).all()
    assert set(center.tolist()) <= set(cover.tolist())
    expect = {h3.str_to_int(c) for c in h3.h3shape_to_cells(h3.geo_to_h3shape(poly.__geo_interface__), 8)}
    assert set(center.tolist()) == expect
    # every random point of the polygon falls in a covering cell
    rng = np.random.default_rng(0)
    pts = cells_from_points(rng.uniform(22.76, 22.80, 2000), rng.uniform(115.35, 115.40, 2000), 8)
    assert np.isin(pts, cover).all()
    assert len(cells_covering(shapely.Polygon(), 8)) == 0
