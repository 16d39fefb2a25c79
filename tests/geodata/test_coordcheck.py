"""Tests for geodata.coordcheck.check_coordinates: one test per reason code, plus properties."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodata.coordcheck import (
    MISSING,
    OUT_OF_RANGE,
    OUTSIDE_JURISDICTION,
    REASON_CODES,
    REPAIRABLE,
    SCALED_1E6,
    SWAPPED,
    ZERO,
    check_coordinates,
)

# Jurisdiction boxes (min_lng, min_lat, max_lng, max_lat), roughly: Shenzhen, Shanwei (汕尾, the
# 115.434/22.789 example), a Xinjiang county and a Heilongjiang county.
SHENZHEN = (113.75, 22.4, 114.65, 22.9)
SHANWEI = (114.9, 22.5, 116.2, 23.5)
KASHGAR = (75.5, 39.2, 76.3, 39.7)
HARBIN_COUNTY = (126.3, 45.5, 127.0, 46.0)
BBOXES = [SHENZHEN, SHANWEI, KASHGAR, HARBIN_COUNTY]


def one(lng, lat, bbox=SHENZHEN, **kw) -> pd.Series:
    df = check_coordinates([lng], [lat], bbox=bbox, **kw)
    assert list(df.columns) == ["lng", "lat", "issue", "repaired"]
    assert len(df) == 1
    return df.iloc[0]


def assert_unusable(row: pd.Series, code: str) -> None:
    assert row["issue"] == code
    assert not row["repaired"]
    assert math.isnan(row["lng"]) and math.isnan(row["lat"])


def test_reason_codes_constant():
    assert REASON_CODES == (MISSING, ZERO, SCALED_1E6, SWAPPED, OUT_OF_RANGE, OUTSIDE_JURISDICTION)
    assert set(REASON_CODES) == {
        "missing", "zero", "scaled_1e6", "swapped", "out_of_range", "outside_jurisdiction",
    }
    assert REPAIRABLE == {"scaled_1e6", "swapped"}


def test_clean_point_kept_unchanged():
    row = one(114.0579, 22.5431)
    assert row["issue"] is None
    assert not row["repaired"]
    assert (row["lng"], row["lat"]) == (114.0579, 22.5431)


@pytest.mark.parametrize(
    ("lng", "lat"),
    [(math.nan, 22.5), (114.0, math.nan), (None, 22.5), (114.0, None), (None, None), ("", 22.5), ("abc", 22.5)],
)
def test_missing(lng, lat):
    assert_unusable(one(lng, lat), MISSING)


@pytest.mark.parametrize(("lng", "lat"), [(0, 0), (0.0, 22.5), (114.0, 0.0), (0, 114.0)])
def test_zero(lng, lat):
    assert_unusable(one(lng, lat), ZERO)


def test_scaled_1e6_repaired():
    row = one(115434000, 22789000, bbox=SHANWEI)
    assert row["issue"] == SCALED_1E6
    assert row["repaired"]
    assert (row["lng"], row["lat"]) == pytest.approx((115.434, 22.789), abs=1e-12)


def test_scaled_1e6_not_repaired_when_result_is_elsewhere():
    # ÷1e6 gives Beijing, not Shenzhen: no repair, and the raw values are not degrees
    assert_unusable(one(116400000, 39900000), OUT_OF_RANGE)


def test_swapped_repaired():
    row = one(22.5431, 114.0579)
    assert row["issue"] == SWAPPED
    assert row["repaired"]
    assert (row["lng"], row["lat"]) == (114.0579, 22.5431)


def test_swapped_repaired_when_swapped_pair_is_valid_degrees():
    # (lng 39.45, lat 75.9) is itself a valid lon/lat (Arctic Ocean), but swapped it is in Kashgar
    row = one(39.45, 75.9, bbox=KASHGAR)
    assert row["issue"] == SWAPPED and row["repaired"]
    assert (row["lng"], row["lat"]) == (75.9, 39.45)


@pytest.mark.parametrize(
    ("lng", "lat"),
    [(200.0, 22.5), (114.0, 95.0), (-181.0, 10.0), (math.inf, 22.5), (114.0, -math.inf), (999_999_999, 1e9)],
)
def test_out_of_range(lng, lat):
    assert_unusable(one(lng, lat), OUT_OF_RANGE)


@pytest.mark.parametrize(("lng", "lat"), [(116.4, 39.9), (-122.6, 45.5), (114.0, 21.0), (113.5, 22.6)])
def test_outside_jurisdiction(lng, lat):
    assert_unusable(one(lng, lat), OUTSIDE_JURISDICTION)


@pytest.mark.parametrize(
    ("dx", "dy"),
    [(1, 0), (-1, 0), (0, 1), (0, -1)],  # east, west, north, south of the box
)
def test_margin(dx, dy):
    min_lng, min_lat, max_lng, max_lat = SHENZHEN
    mid_lng, mid_lat = (min_lng + max_lng) / 2, (min_lat + max_lat) / 2

    def beyond(dist):
        lng = {1: max_lng + dist, -1: min_lng - dist, 0: mid_lng}[dx]
        lat = {1: max_lat + dist, -1: min_lat - dist, 0: mid_lat}[dy]
        return lng, lat

    assert one(*beyond(0.01))["issue"] is None  # default margin 0.02°
    assert one(*beyond(0.01), margin_deg=0.0)["issue"] == OUTSIDE_JURISDICTION
    assert one(*beyond(0.03))["issue"] == OUTSIDE_JURISDICTION
    assert one(*beyond(0.03), margin_deg=0.05)["issue"] is None


def test_valid_degrees_are_never_treated_as_scaled():
    # With a box near (0, 0), (150, 60) ÷ 1e6 would land inside it; but (150, 60) are plain degrees.
    row = one(150.0, 60.0, bbox=(0.0, 0.0, 1.0, 1.0))
    assert_unusable(row, OUTSIDE_JURISDICTION)


def test_mixed_batch_vectorised_and_index_preserved():
    idx = pd.Index(["a", "b", "c", "d", "e", "f", "g"], name="case_id")
    lng = pd.Series([114.05, None, 0.0, 114100000, 22.6, 500.0, 116.4], index=idx)
    lat = pd.Series([22.55, 22.5, 0.0, 22600000, 114.1, 22.6, 39.9], index=idx)
    df = check_coordinates(lng, lat, bbox=SHENZHEN)
    assert df.index.equals(idx)
    assert df["issue"].tolist() == [None, MISSING, ZERO, SCALED_1E6, SWAPPED, OUT_OF_RANGE, OUTSIDE_JURISDICTION]
    assert df["repaired"].tolist() == [False, False, False, True, True, False, False]
    usable = df["lng"].notna()
    assert usable.tolist() == [True, False, False, True, True, False, False]
    assert (df["lng"].notna() == df["lat"].notna()).all()
    assert df.loc["d", "lng"] == pytest.approx(114.1) and df.loc["d", "lat"] == pytest.approx(22.6)
    assert (df.loc["e", "lng"], df.loc["e", "lat"]) == (114.1, 22.6)
    # each row classified exactly as when checked alone
    for key in idx:
        alone = one(lng[key], lat[key])
        assert alone["issue"] == df.loc[key, "issue"]


def test_dtypes():
    df = check_coordinates(np.array([114.0, 1.0]), np.array([22.5, 1.0]), bbox=SHENZHEN)
    assert df["lng"].dtype == np.float64 and df["lat"].dtype == np.float64
    assert df["repaired"].dtype == bool
    assert df["issue"].dtype == object
    assert df["issue"].isna().tolist() == [True, False]


def test_empty_input():
    df = check_coordinates([], [], bbox=SHENZHEN)
    assert len(df) == 0 and list(df.columns) == ["lng", "lat", "issue", "repaired"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="length"):
        check_coordinates([114.0, 114.1], [22.5], bbox=SHENZHEN)
    with pytest.raises(ValueError, match="bbox"):
        check_coordinates([114.0], [22.5], bbox=(114.65, 22.4, 113.75, 22.9))
    with pytest.raises(ValueError, match="bbox"):
        check_coordinates([114.0], [22.5], bbox=(113.75, 22.4, 114.65))
    with pytest.raises(ValueError, match="margin"):
        check_coordinates([114.0], [22.5], bbox=SHENZHEN, margin_deg=-1)


# ---------------------------------------------------------------------------------------------
# properties


@st.composite
def points_in(draw):
    """(bbox, micro-degree integer lng, lat) strictly inside one of the jurisdiction boxes."""
    bbox = draw(st.sampled_from(BBOXES))
    lng_u = draw(st.integers(round(bbox[0] * 1e6), round(bbox[2] * 1e6)))
    lat_u = draw(st.integers(round(bbox[1] * 1e6), round(bbox[3] * 1e6)))
    return bbox, lng_u, lat_u


@settings(max_examples=300, deadline=None)
@given(points_in())
def test_scaled_repair_recovers_original(case):
    bbox, lng_u, lat_u = case
    lng, lat = lng_u / 1e6, lat_u / 1e6
    row = one(lng_u, lat_u, bbox=bbox)
    assert row["issue"] == SCALED_1E6 and row["repaired"]
    assert (row["lng"], row["lat"]) == (lng, lat)


@settings(max_examples=300, deadline=None)
@given(points_in())
def test_swapped_repair_recovers_original(case):
    bbox, lng_u, lat_u = case
    lng, lat = lng_u / 1e6, lat_u / 1e6
    row = one(lat, lng, bbox=bbox)
    assert row["issue"] == SWAPPED and row["repaired"]
    assert (row["lng"], row["lat"]) == (lng, lat)


@st.composite
def mixed_batch(draw):
    """(bbox, inputs lng, inputs lat, expected rows) mixing clean, swapped and ×1e6 rows of one box."""
    bbox = draw(st.sampled_from(BBOXES))
    n = draw(st.integers(1, 30))
    lng_in, lat_in, expected = [], [], []
    for _ in range(n):
        lng_u = draw(st.integers(round(bbox[0] * 1e6), round(bbox[2] * 1e6)))
        lat_u = draw(st.integers(round(bbox[1] * 1e6), round(bbox[3] * 1e6)))
        lng, lat = lng_u / 1e6, lat_u / 1e6
        kind = draw(st.sampled_from([None, SWAPPED, SCALED_1E6]))
        raw = {None: (lng, lat), SWAPPED: (lat, lng), SCALED_1E6: (float(lng_u), float(lat_u))}[kind]
        lng_in.append(raw[0])
        lat_in.append(raw[1])
        expected.append((lng, lat, kind))
    return bbox, lng_in, lat_in, expected


@settings(max_examples=100, deadline=None)
@given(mixed_batch())
def test_batch_repairs_recover_originals(case):
    """A vectorised batch of clean, swapped and scaled rows comes back equal to the originals."""
    bbox, lng_in, lat_in, expected = case
    df = check_coordinates(np.array(lng_in), np.array(lat_in), bbox=bbox)
    assert list(zip(df["lng"], df["lat"], df["issue"], strict=True)) == expected
    assert (df["repaired"] == df["issue"].notna()).all()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**10, 10**10)),
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**10, 10**10)),
        ),
        max_size=30,
    ),
    st.sampled_from(BBOXES),
)
def test_invariants_on_arbitrary_input(pairs, bbox):
    lng = np.array([float(p[0]) for p in pairs], dtype=float)
    lat = np.array([float(p[1]) for p in pairs], dtype=float)
    df = check_coordinates(lng, lat, bbox=bbox)
    assert len(df) == len(pairs)
    assert set(df["issue"].dropna()) <= set(REASON_CODES)
    usable = df["issue"].isna() | df["repaired"]
    # usable rows have finite coordinates inside the widened bbox; the rest are NaN
    m = 0.02
    ok = df[usable]
    assert ((ok["lng"] >= bbox[0] - m) & (ok["lng"] <= bbox[2] + m)).all()
    assert ((ok["lat"] >= bbox[1] - m) & (ok["lat"] <= bbox[3] + m)).all()
    assert df.loc[~usable, ["lng", "lat"]].isna().all().all()
    assert (df["repaired"] == df["issue"].isin(list(REPAIRABLE))).all()
