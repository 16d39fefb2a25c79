"""Tests for geodata.crs: published vectors, literal-formula agreement, round trips, pyproj paths."""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pyproj
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodata import crs
from geodata.crs import (
    CHINA_BBOX,
    SUPPORTED_CRS,
    CoordinateError,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    looks_like_bd09mc,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

# ---------------------------------------------------------------------------------------------
# helpers


def haversine_m(lng1, lat1, lng2, lat2):
    """Great-circle distance in metres (mean Earth radius), vectorised."""
    r = 6371008.8
    lng1, lat1, lng2, lat2 = (np.radians(np.asarray(v, dtype=float)) for v in (lng1, lat1, lng2, lat2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lng2 - lng1) / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(h))


def literal_wgs_to_gcj(lng: float, lat: float) -> tuple[float, float]:
    """The published WGS84 -> GCJ-02 formula written out literally, scalar, with the math module.

    Krasovsky a = 6378245.0, ee = 0.00669342162296594323 (domain-china.md §3). Kept deliberately
    naive: it is the oracle the optimised kernel in geodata.crs is checked against.
    """
    a = 6378245.0
    ee = 0.00669342162296594323
    pi = math.pi
    x = lng - 105.0
    y = lat - 35.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    d_lat += (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    d_lat += (20.0 * math.sin(y * pi) + 40.0 * math.sin(y / 3.0 * pi)) * 2.0 / 3.0
    d_lat += (160.0 * math.sin(y / 12.0 * pi) + 320.0 * math.sin(y * pi / 30.0)) * 2.0 / 3.0
    d_lng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    d_lng += (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    d_lng += (20.0 * math.sin(x * pi) + 40.0 * math.sin(x / 3.0 * pi)) * 2.0 / 3.0
    d_lng += (150.0 * math.sin(x / 12.0 * pi) + 300.0 * math.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * pi
    magic = 1.0 - ee * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((a * (1.0 - ee)) / (magic * sqrt_magic) * pi)
    d_lng = (d_lng * 180.0) / (a / sqrt_magic * math.cos(rad_lat) * pi)
    return lng + d_lng, lat + d_lat


# China's land area, comfortably inside the rough GCJ bbox
LAND_LNG = st.floats(min_value=73.5, max_value=135.0, allow_nan=False)
LAND_LAT = st.floats(min_value=18.0, max_value=53.5, allow_nan=False)
# anywhere inside the GCJ bbox (includes sea and neighbours)
BOX_LNG = st.floats(min_value=CHINA_BBOX[0], max_value=CHINA_BBOX[2], allow_nan=False)
BOX_LAT = st.floats(min_value=CHINA_BBOX[1], max_value=CHINA_BBOX[3], allow_nan=False)


@st.composite
def outside_china(draw):
    """A valid lon/lat outside the rough GCJ bbox."""
    side = draw(st.sampled_from(["west", "east", "south", "north"]))
    if side == "west":
        return draw(st.floats(-180, 72.0)), draw(st.floats(-90, 90))
    if side == "east":
        return draw(st.floats(137.84, 180)), draw(st.floats(-90, 90))
    if side == "south":
        return draw(st.floats(-180, 180)), draw(st.floats(-90, 0.829))
    return draw(st.floats(-180, 180)), draw(st.floats(55.828, 90))


# ---------------------------------------------------------------------------------------------
# published test vectors

# (wgs_lat, wgs_lng, gcj_lat, gcj_lng) from googollee/eviltransform go/transform_test.go (the same
# table is in its matlab/test/testSuite.m, python/test.py and csharp tests).
EVILTRANSFORM_VECTORS = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # beijing
]

# Out-of-China edge cases from googollee/eviltransform matlab/test/testSuite.m (expected unchanged).
EVILTRANSFORM_OUTSIDE = [
    (39.739200, -104.990300),  # Denver
    (-27.469800, 153.025100),  # Brisbane
    (-22.906800, -43.172900),  # Rio de Janeiro
]

# Beijing railway station, from cran/geoChina R/conv.R (convCoord examples; 5-decimal values):
#   WGS-84 (39.90105, 116.42079), GCJ-02 (39.90245, 116.42703), BD-09 (39.90851, 116.43351)
# The GCJ<->BD pair is also googollee/eviltransform matlab/test/testSuite.m gcj2bdTest/bd2gcjTest.
BJ_STATION_WGS = (116.42079, 39.90105)  # (lng, lat)
BJ_STATION_GCJ = (116.42703, 39.90245)
BJ_STATION_BD = (116.43351, 39.90851)

# Note: the two BD->WGS rows in eviltransform's matlab testSuite (29.199786, 120.019809 ...) are
# not reproduced by the public BD-09 formula (off by 4e-5..4e-4 deg, i.e. up to ~40 m; they look
# like Baidu-API outputs), so they are not used here.


@pytest.mark.parametrize(("wgs_lat", "wgs_lng", "gcj_lat", "gcj_lng"), EVILTRANSFORM_VECTORS)
def test_eviltransform_vectors_forward(wgs_lat, wgs_lng, gcj_lat, gcj_lng):
    lng, lat = wgs84_to_gcj02(lng=wgs_lng, lat=wgs_lat)
    assert lng == pytest.approx(gcj_lng, abs=1e-9)
    assert lat == pytest.approx(gcj_lat, abs=1e-9)


@pytest.mark.parametrize(("wgs_lat", "wgs_lng", "gcj_lat", "gcj_lng"), EVILTRANSFORM_VECTORS)
def test_eviltransform_vectors_inverse_is_submillimetre(wgs_lat, wgs_lng, gcj_lat, gcj_lng):
    lng, lat = gcj02_to_wgs84(lng=gcj_lng, lat=gcj_lat)
    # eviltransform's own "exact" test only demands < 0.5 m; the iteration does far better.
    assert haversine_m(lng, lat, wgs_lng, wgs_lat) < 1e-3
    assert lng == pytest.approx(wgs_lng, abs=1e-8)
    assert lat == pytest.approx(wgs_lat, abs=1e-8)


@pytest.mark.parametrize(("lat", "lng"), EVILTRANSFORM_OUTSIDE)
def test_eviltransform_outside_china_unchanged(lat, lng):
    assert wgs84_to_gcj02(lng, lat) == (lng, lat)
    assert gcj02_to_wgs84(lng, lat) == (lng, lat)


def test_vector_from_brief_matches_literal_formula():
    # WGS (116.397428, 39.90923) — the Tiananmen point that is Amap's usual demo centre — has
    # GCJ ≈ (116.403671, 39.910633); the digits below were computed with literal_wgs_to_gcj.
    expected = literal_wgs_to_gcj(116.397428, 39.90923)
    assert expected == pytest.approx((116.40367162595768, 39.91063350638631), abs=1e-12)
    assert wgs84_to_gcj02(116.397428, 39.90923) == pytest.approx(expected, abs=1e-12)
    assert gcj02_to_wgs84(*expected) == pytest.approx((116.397428, 39.90923), abs=1e-9)


def test_beijing_station_gcj_bd_pair():
    assert gcj02_to_bd09(*BJ_STATION_GCJ) == pytest.approx(BJ_STATION_BD, abs=1e-5)
    assert bd09_to_gcj02(*BJ_STATION_BD) == pytest.approx(BJ_STATION_GCJ, abs=1e-5)


def test_beijing_station_wgs_to_gcj_and_bd():
    assert wgs84_to_gcj02(*BJ_STATION_WGS) == pytest.approx(BJ_STATION_GCJ, abs=1e-5)
    assert wgs84_to_bd09(*BJ_STATION_WGS) == pytest.approx(BJ_STATION_BD, abs=1.5e-5)
    # and back: within the 5-decimal rounding of the published values (~1 m)
    assert haversine_m(*bd09_to_wgs84(*BJ_STATION_BD), *BJ_STATION_WGS) < 1.5


# ---------------------------------------------------------------------------------------------
# kernel == literal formula


@settings(max_examples=300, deadline=None)
@given(BOX_LNG, BOX_LAT)
def test_optimised_kernel_equals_literal_formula(lng, lat):
    got = wgs84_to_gcj02(lng, lat)
    assert got == pytest.approx(literal_wgs_to_gcj(lng, lat), abs=1e-12, rel=0)


def test_optimised_kernel_equals_literal_formula_on_grid():
    lng, lat = np.meshgrid(np.linspace(72.01, 137.83, 61), np.linspace(0.83, 55.82, 57))
    lng, lat = lng.ravel(), lat.ravel()
    got_lng, got_lat = wgs84_to_gcj02(lng, lat)
    ref = np.array([literal_wgs_to_gcj(a, b) for a, b in zip(lng, lat, strict=True)])
    np.testing.assert_allclose(got_lng, ref[:, 0], atol=1e-12, rtol=0)
    np.testing.assert_allclose(got_lat, ref[:, 1], atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------------
# property tests


@settings(max_examples=300, deadline=None)
@given(LAND_LNG, LAND_LAT)
def test_round_trip_wgs_gcj_wgs(lng, lat):
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lng, lat))
    assert haversine_m(*back, lng, lat) < 0.5
    assert haversine_m(*back, lng, lat) < 1e-3  # ~1 mm is the actual target


@settings(max_examples=300, deadline=None)
@given(LAND_LNG, LAND_LAT)
def test_round_trip_wgs_bd_wgs(lng, lat):
    back = bd09_to_wgs84(*wgs84_to_bd09(lng, lat))
    assert haversine_m(*back, lng, lat) < 0.5
    assert haversine_m(*back, lng, lat) < 1e-3


@settings(max_examples=200, deadline=None)
@given(BOX_LNG, BOX_LAT)
def test_round_trip_gcj_bd_gcj(lng, lat):
    back = bd09_to_gcj02(*gcj02_to_bd09(lng, lat))
    assert back == pytest.approx((lng, lat), abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(LAND_LNG, LAND_LAT)
def test_gcj_offset_magnitude_inside_china(lng, lat):
    d = haversine_m(*wgs84_to_gcj02(lng, lat), lng, lat)
    assert 1.0 < d < 1000.0


def test_gcj_offset_magnitude_on_land_grid():
    lng, lat = np.meshgrid(np.linspace(73.5, 135.0, 200), np.linspace(18.0, 53.5, 150))
    d = haversine_m(*wgs84_to_gcj02(lng, lat), lng, lat)
    assert d.min() > 1.0
    assert d.max() < 1000.0
    assert 100.0 < np.median(d) < 700.0  # "about 100–700 m" (domain-china.md §3)


@settings(max_examples=300, deadline=None)
@given(outside_china())
def test_outside_china_passes_through(point):
    lng, lat = point
    assert wgs84_to_gcj02(lng, lat) == (lng, lat)
    assert gcj02_to_wgs84(lng, lat) == (lng, lat)
    # BD-09 is GCJ + rotation: outside China only the rotation part applies
    assert wgs84_to_bd09(lng, lat) == gcj02_to_bd09(lng, lat)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(BOX_LNG, BOX_LAT),
            outside_china(),
            st.just((math.nan, 30.0)),
            st.just((116.0, math.nan)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_vectorised_equals_elementwise(points):
    lng = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    for func in (wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84):
        vec_lng, vec_lat = func(lng, lat)
        one = np.array([func(a, b) for a, b in zip(lng, lat, strict=True)])
        # rows stop iterating independently, so batch and single results agree (to float noise)
        np.testing.assert_allclose(vec_lng, one[:, 0], atol=1e-12, rtol=0, equal_nan=True)
        np.testing.assert_allclose(vec_lat, one[:, 1], atol=1e-12, rtol=0, equal_nan=True)


def test_large_array_crosses_blocks_and_keeps_order():
    rng = np.random.default_rng(7)
    n = 3 * crs._CHUNK + 123
    lng = rng.uniform(70.0, 140.0, n)  # some outside the box too
    lat = rng.uniform(0.0, 57.0, n)
    lng[::97] = np.nan
    g_lng, g_lat = wgs84_to_gcj02(lng, lat)
    w_lng, w_lat = gcj02_to_wgs84(g_lng, g_lat)
    idx = rng.choice(n, 300, replace=False)
    for i in idx:
        assert (g_lng[i], g_lat[i]) == pytest.approx(wgs84_to_gcj02(lng[i], lat[i]), abs=1e-12, nan_ok=True)
    inside = crs.in_china_bbox(lng, lat) & crs.in_china_bbox(g_lng, g_lat)
    assert haversine_m(w_lng[inside], w_lat[inside], lng[inside], lat[inside]).max() < 1e-3
    assert np.isnan(w_lng[::97]).all()


def test_iteration_beats_one_step_inverse():
    """The one-step inverse is metres off somewhere in China; the iterative one is sub-millimetre."""
    lng, lat = np.meshgrid(np.linspace(73.5, 135.0, 300), np.linspace(18.0, 53.5, 200))
    g_lng, g_lat = wgs84_to_gcj02(lng, lat)
    d_lng, d_lat = crs._gcj_offset(g_lng, g_lat)
    one_step_err = haversine_m(g_lng - d_lng, g_lat - d_lat, lng, lat)
    iter_err = haversine_m(*gcj02_to_wgs84(g_lng, g_lat), lng, lat)
    assert one_step_err.max() > 1.0
    assert iter_err.max() < 1e-3


def test_scalars_return_floats_and_arrays_keep_shape():
    out = gcj02_to_wgs84(lng=116.4, lat=39.9)
    assert isinstance(out, tuple) and all(type(v) is float for v in out)
    grid_lng, grid_lat = np.meshgrid([110.0, 120.0, 130.0], [25.0, 35.0])
    for func in (wgs84_to_gcj02, gcj02_to_wgs84, wgs84_to_bd09, bd09_to_wgs84, gcj02_to_bd09, bd09_to_gcj02):
        r_lng, r_lat = func(grid_lng, grid_lat)
        assert r_lng.shape == (2, 3) and r_lat.shape == (2, 3)
    # broadcasting a scalar against a list, and pandas input
    r_lng, r_lat = wgs84_to_gcj02([116.0, 117.0], 39.0)
    assert r_lng.shape == (2,) and r_lat.shape == (2,)
    s_lng, s_lat = wgs84_to_gcj02(pd.Series([116.0, 117.0]), pd.Series([39.0, 39.0]))
    np.testing.assert_array_equal(s_lng, r_lng)


def test_inputs_are_not_modified():
    lng = np.array([116.4, 10.0])
    lat = np.array([39.9, 10.0])
    out_lng, _ = gcj02_to_wgs84(lng, lat)
    out_lng[:] = 0.0
    assert lng.tolist() == [116.4, 10.0] and lat.tolist() == [39.9, 10.0]


def test_gcj_to_wgs_one_million_points_is_fast():
    rng = np.random.default_rng(0)
    lng = rng.uniform(73.5, 135.0, 1_000_000)
    lat = rng.uniform(18.0, 53.5, 1_000_000)
    g_lng, g_lat = wgs84_to_gcj02(lng, lat)
    t0 = time.perf_counter()
    w_lng, w_lat = gcj02_to_wgs84(g_lng, g_lat)
    elapsed = time.perf_counter() - t0
    # measured ~0.4 s on a 2-core box; a per-point Python loop would take tens of seconds
    assert elapsed < 2.0, f"1M GCJ->WGS took {elapsed:.2f}s"
    assert np.abs(w_lng - lng).max() < 1e-9 and np.abs(w_lat - lat).max() < 1e-9


# ---------------------------------------------------------------------------------------------
# to_wgs84


def test_supported_crs_constant():
    assert set(SUPPORTED_CRS) == {"wgs84", "cgcs2000", "gcj02", "bd09"}


@pytest.mark.parametrize("name", ["wgs84", "WGS84", "WGS-84", "cgcs2000", "CGCS2000"])
def test_to_wgs84_identity_sources(name):
    lng, lat = to_wgs84([116.4, 113.9], [39.9, 22.5], name)
    assert lng.tolist() == [116.4, 113.9] and lat.tolist() == [39.9, 22.5]


@pytest.mark.parametrize("name", ["gcj02", "GCJ-02", "gcj_02"])
def test_to_wgs84_gcj02(name):
    gcj_lng, gcj_lat = EVILTRANSFORM_VECTORS[0][3], EVILTRANSFORM_VECTORS[0][2]
    lng, lat = to_wgs84(gcj_lng, gcj_lat, name)
    assert (lng, lat) == gcj02_to_wgs84(gcj_lng, gcj_lat)
    assert (lng, lat) == pytest.approx((EVILTRANSFORM_VECTORS[0][1], EVILTRANSFORM_VECTORS[0][0]), abs=1e-8)


@pytest.mark.parametrize("name", ["bd09", "BD-09", "bd09ll"])
def test_to_wgs84_bd09(name):
    lng, lat = to_wgs84(*BJ_STATION_BD, name)
    assert (lng, lat) == bd09_to_wgs84(*BJ_STATION_BD)
    assert haversine_m(lng, lat, *BJ_STATION_WGS) < 1.5


def test_to_wgs84_portland_state_plane_matches_dataset(shared_data):
    df = pd.read_parquet(
        shared_data / "portland_nij_cfs_2016_aug_sep_nov.parquet", columns=["x_ft", "y_ft", "lon", "lat"]
    )
    sample = df.sample(n=300, random_state=20160801)
    lng, lat = to_wgs84(sample["x_ft"], sample["y_ft"], "EPSG:2913")
    np.testing.assert_allclose(lng, sample["lon"].to_numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(lat, sample["lat"].to_numpy(), atol=1e-6, rtol=0)
    assert ((lng > -123.0) & (lng < -122.3) & (lat > 45.3) & (lat < 45.8)).all()  # Portland, OR


def test_to_wgs84_cgcs2000_gauss_kruger_round_trip():
    rng = np.random.default_rng(4547)
    lng = rng.uniform(112.5, 115.5, 500)  # EPSG:4547 is the 3-degree zone with CM 114E
    lat = rng.uniform(18.0, 45.0, 500)
    fwd = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True)
    x, y = fwd.transform(lng, lat)
    assert 300_000 < x.min() and x.max() < 700_000 and 1_900_000 < y.min()  # metres, no zone prefix
    back_lng, back_lat = to_wgs84(x, y, "EPSG:4547")
    np.testing.assert_allclose(back_lng, lng, atol=1e-7, rtol=0)
    np.testing.assert_allclose(back_lat, lat, atol=1e-7, rtol=0)


def test_to_wgs84_gauss_kruger_central_meridian():
    # On the central meridian the easting is the 500 000 m false easting; the equator is y = 0.
    assert to_wgs84(500_000.0, 0.0, "EPSG:4547") == pytest.approx((114.0, 0.0), abs=1e-9)


def test_bd09mc_rejected_with_message():
    with pytest.raises(CoordinateError, match="BD09MC") as info:
        to_wgs84(12958160.97, 4825923.77, "bd09mc")
    message = str(info.value)
    assert "not supported" in message and "bd09 lon/lat" in message
    with pytest.raises(CoordinateError, match="BD09MC"):
        to_wgs84(12958160.97, 4825923.77, "BD09MC")


def test_bd09mc_values_declared_as_bd09_rejected():
    with pytest.raises(CoordinateError, match="BD09MC"):
        to_wgs84([116.4, 12958160.97], [39.9, 4825923.77], "bd09")


@pytest.mark.parametrize("name", ["gcj03", "mars", "EPSG:99999999", ""])
def test_unknown_crs_rejected(name):
    with pytest.raises(CoordinateError, match=f"unknown coordinate system '{name}'"):
        to_wgs84(116.4, 39.9, name)


def test_coordinate_error_is_value_error():
    assert issubclass(CoordinateError, ValueError)
    with pytest.raises(ValueError):
        to_wgs84(116.4, 39.9, "nonsense-crs")


def test_non_string_crs_rejected():
    with pytest.raises(CoordinateError, match="string"):
        to_wgs84(116.4, 39.9, 4326)  # type: ignore[arg-type]


def test_looks_like_bd09mc():
    got = looks_like_bd09mc(
        [12958160.97, 12613000.0, 116.4, 115434000.0, 0.0, np.nan],
        [4825923.77, 2570000.0, 39.9, 22789000.0, 0.0, 1.0],
    )
    assert got.tolist() == [True, True, False, False, False, False]
