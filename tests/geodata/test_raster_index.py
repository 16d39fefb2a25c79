"""The raster index answers exactly as the STRtree does (first polygon in file order), or not at all."""
from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
import shapely.affinity
from hypothesis import given, settings
from hypothesis import strategies as st

import geodata.areas as areas_mod
from geodata.areas import assign_areas, demo_area_set
from geodata.raster_index import OUTSIDE, UNKNOWN, RasterIndex


def _exact(polygons, x, y) -> np.ndarray:
    """Independent of the code under test: shapely's own point-in-polygon, polygon by polygon in file order."""
    out = np.full(len(x), OUTSIDE)
    for i in range(len(polygons) - 1, -1, -1):  # the last assignment is the first polygon in file order
        out[shapely.intersects_xy(polygons[i], x, y)] = i
    return out


def _layout(shift: float, overlap: float) -> np.ndarray:
    """A 3×3 block of unit squares sharing edges, one square with a hole, and one polygon overlapping two
    squares (later in file order, so the squares win where they overlap it)."""
    squares = [shapely.box(i, j, i + 1, j + 1) for i in range(3) for j in range(3)]
    squares[4] = shapely.Polygon(shapely.get_coordinates(squares[4].exterior),
                                 holes=[shapely.get_coordinates(shapely.box(1.3, 1.3, 1.7, 1.7).exterior)])
    extra = shapely.box(2.5 - overlap, 0.2 + shift, 3.6, 0.9 + shift)
    return np.array([*squares, extra], dtype=object)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 0.5), st.floats(0.0, 0.4), st.floats(0.0, 90.0), st.integers(0, 2**32 - 1),
       st.sampled_from([16, 64, 256]))
def test_lookup_is_the_exact_answer_wherever_it_answers(shift, overlap, angle, seed, side):
    polygons = np.array([shapely.affinity.rotate(p, angle, origin=(1.5, 1.5)) for p in _layout(shift, overlap)])
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 4.5, 3000)
    y = rng.uniform(-1.5, 4.5, 3000)
    # a third of the points on edges and vertices: shared edges are where an index goes wrong
    rings = shapely.boundary(polygons[rng.integers(0, len(polygons), 1000)])
    on_edge = shapely.get_coordinates(shapely.line_interpolate_point(rings, rng.random(1000), normalized=True))
    corners = shapely.get_coordinates(polygons)
    x[:1000], y[:1000] = on_edge[:, 0], on_edge[:, 1]
    x[1000:1000 + len(corners)], y[1000:1000 + len(corners)] = corners[:, 0], corners[:, 1]
    index = RasterIndex(polygons, max_side=side)
    got = index.lookup(x, y)
    known = got != UNKNOWN
    np.testing.assert_array_equal(got[known], _exact(polygons, x, y)[known])
    if side == 256:  # a fine raster answers for most points
        assert known.mean() > 0.5


def test_missing_and_far_points_are_outside():
    index = RasterIndex(_layout(0.0, 0.0), max_side=64)
    got = index.lookup(np.array([np.nan, 50.0, 0.5]), np.array([0.5, 50.0, np.nan]))
    assert got.tolist() == [OUTSIDE, OUTSIDE, OUTSIDE]


def test_assign_areas_with_the_raster_equals_the_tree_alone(monkeypatch):
    area_set = demo_area_set()
    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(area_set.grids.geometry.values))
    rng = np.random.default_rng(7)
    lng = rng.uniform(minx - 0.01, maxx + 0.01, 60_000)
    lat = rng.uniform(miny - 0.01, maxy + 0.01, 60_000)
    # and points on grid vertices (shared by up to four grids)
    vertices = shapely.get_coordinates(area_set.grids.geometry.values[:200])
    lng[:len(vertices)], lat[:len(vertices)] = vertices[:, 0], vertices[:, 1]
    fast = assign_areas(area_set, lng, lat)
    assert len(lng) >= areas_mod.RASTER_MIN_POINTS
    monkeypatch.setattr(areas_mod, "RASTER_MIN_POINTS", 10**9)
    slow = assign_areas(area_set, lng, lat)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["grid_code"].notna().sum() > 10_000
    raster = area_set._grid_raster.lookup(lng, lat)
    inside = slow["grid_code"].notna().to_numpy()
    assert (raster[inside] != UNKNOWN).mean() > 0.7  # the raster really answers for most points
