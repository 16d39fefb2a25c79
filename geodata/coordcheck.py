"""Coordinate sanity checks for loads: missing, zero, ×1e6-scaled, swapped, out of range, outside.

:func:`check_coordinates` classifies every (lng, lat) pair against the jurisdiction's bounding box
(widened by ``margin_deg``; exact point-in-polygon tests happen later, on WGS84) and repairs the
two mechanical mistakes that are common in Chinese exports:

* ``scaled_1e6`` — degrees stored as integers ×1e6 (115434000, 22789000): divided by 1e6 when
  that lands both values in the box;
* ``swapped`` — "纬度, 经度" order: swapped back when that lands the point in the box.

Rows are checked in this order and get the first reason that applies:

=========================  ======================================================  ===========
reason                     condition                                               result
=========================  ======================================================  ===========
``missing``                lng or lat is NaN/None/unparseable                      NaN
(none)                     the point is inside the (widened) bbox                  kept
``zero``                   lng or lat is exactly 0 (null-island style defaults)    NaN
``scaled_1e6``             not degrees, and (lng÷1e6, lat÷1e6) is inside the bbox  repaired
``swapped``                (lat, lng) is inside the bbox                           repaired
``out_of_range``           |lng| > 180 or |lat| > 90 (incl. ±inf)                  NaN
``outside_jurisdiction``   a valid lon/lat outside the bbox                        NaN
=========================  ======================================================  ===========

Combinations (scaled *and* swapped) are not repaired: they are reported as ``out_of_range``.
The bbox is in the source's degree CRS; a margin of 0.02° (≈2 km) also absorbs the GCJ-02/BD-09
offsets (≤ ~1 km), so the check can run before :func:`geodata.crs.to_wgs84`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "MISSING",
    "ZERO",
    "SCALED_1E6",
    "SWAPPED",
    "OUT_OF_RANGE",
    "OUTSIDE_JURISDICTION",
    "REASON_CODES",
    "REPAIRABLE",
    "check_coordinates",
]

MISSING = "missing"
ZERO = "zero"
SCALED_1E6 = "scaled_1e6"
SWAPPED = "swapped"
OUT_OF_RANGE = "out_of_range"
OUTSIDE_JURISDICTION = "outside_jurisdiction"

#: Every reason code check_coordinates can emit, in precedence order.
REASON_CODES: tuple[str, ...] = (MISSING, ZERO, SCALED_1E6, SWAPPED, OUT_OF_RANGE, OUTSIDE_JURISDICTION)
#: The reason codes whose rows are repaired (usable) rather than blanked.
REPAIRABLE: frozenset[str] = frozenset({SCALED_1E6, SWAPPED})

_SCALE = 1e6


def _as_float(values) -> np.ndarray:
    """1-d float64 array; None, NaN, empty strings and unparseable text become NaN."""
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"coordinates must be 1-dimensional, got shape {arr.shape}")
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    return pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def check_coordinates(
    lng,
    lat,
    bbox: Sequence[float],
    margin_deg: float = 0.02,
) -> pd.DataFrame:
    """Classify and repair coordinate pairs against a jurisdiction bounding box.

    Parameters
    ----------
    lng, lat:
        Array-likes of equal length (lists, numpy arrays, pandas Series; None/strings allowed).
    bbox:
        ``(min_lng, min_lat, max_lng, max_lat)`` of the jurisdiction, in degrees.
    margin_deg:
        Widening applied on every side of ``bbox`` before testing (default 0.02°).

    Returns
    -------
    pandas.DataFrame
        One row per input pair (index taken from ``lng`` when it is a Series) with columns
        ``lng``, ``lat`` (usable values — repaired where ``repaired`` — else NaN),
        ``issue`` (None or one of :data:`REASON_CODES`) and ``repaired`` (bool).
    """
    x = _as_float(lng)
    y = _as_float(lat)
    if x.shape != y.shape:
        raise ValueError(f"lng and lat differ in length: {x.shape[0]} != {y.shape[0]}")
    if len(bbox) != 4:
        raise ValueError(f"bbox must be (min_lng, min_lat, max_lng, max_lat), got {bbox!r}")
    min_lng, min_lat, max_lng, max_lat = (float(v) for v in bbox)
    if not (min_lng <= max_lng and min_lat <= max_lat):
        raise ValueError(f"bbox must be (min_lng, min_lat, max_lng, max_lat), got {bbox!r}")
    if not margin_deg >= 0:
        raise ValueError(f"margin_deg must be >= 0, got {margin_deg!r}")
    min_lng -= margin_deg
    min_lat -= margin_deg
    max_lng += margin_deg
    max_lat += margin_deg

    def inside(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        return (px >= min_lng) & (px <= max_lng) & (py >= min_lat) & (py <= max_lat)

    with np.errstate(invalid="ignore", over="ignore"):
        scaled_x = x / _SCALE
        scaled_y = y / _SCALE
        missing = np.isnan(x) | np.isnan(y)
        ok = ~missing & inside(x, y)
        rest = ~missing & ~ok
        zero = rest & ((x == 0.0) | (y == 0.0))
        rest &= ~zero
        beyond_degrees = (np.abs(x) > 180.0) | (np.abs(y) > 90.0)
        scaled = rest & beyond_degrees & inside(scaled_x, scaled_y)
        rest &= ~scaled
        swapped = rest & inside(y, x)
        rest &= ~swapped
        out_of_range = rest & beyond_degrees
        outside = rest & ~out_of_range

    out_x = np.full(x.shape, np.nan)
    out_y = np.full(y.shape, np.nan)
    out_x[ok] = x[ok]
    out_y[ok] = y[ok]
    out_x[scaled] = scaled_x[scaled]
    out_y[scaled] = scaled_y[scaled]
    out_x[swapped] = y[swapped]
    out_y[swapped] = x[swapped]

    issue = np.full(x.shape, None, dtype=object)
    for mask, code in (
        (missing, MISSING),
        (zero, ZERO),
        (scaled, SCALED_1E6),
        (swapped, SWAPPED),
        (out_of_range, OUT_OF_RANGE),
        (outside, OUTSIDE_JURISDICTION),
    ):
        issue[mask] = code

    index = lng.index if isinstance(lng, pd.Series) and len(lng.index) == x.shape[0] else None
    return pd.DataFrame(
        {
            "lng": out_x,
            "lat": out_y,
            # object dtype keeps a literal None for clean rows (pandas 3 would infer str + NaN)
            "issue": pd.Series(issue, dtype=object, index=index),
            "repaired": scaled | swapped,
        },
        index=index,
    )
