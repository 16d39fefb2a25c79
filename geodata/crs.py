"""Coordinate-system conversions to WGS84 (vectorised numpy).

Sources send coordinates in one of several systems (see docs/product.md "Geography"):

* ``wgs84`` / ``cgcs2000`` — GPS fixes and official data. CGCS2000 differs from WGS84 at the
  cm–dm level and is treated as identical here.
* ``gcj02`` — the obfuscated "Mars" system of Amap/Tencent/most Chinese apps: WGS84 plus a
  nonlinear offset of about 100–700 m, computed with the widely published formula on the
  Krasovsky ellipsoid (a = 6378245.0, ee = 0.00669342162296594323).
* ``bd09`` — Baidu lon/lat: GCJ-02 plus a further rotation/scale.
* any CRS pyproj knows (``EPSG:4547`` CGCS2000 Gauss-Krüger, ``EPSG:2913`` ...) — inputs are x/y.

Baidu Mercator metres (``bd09mc``) are rejected: converting them needs Baidu's private
piecewise-polynomial tables, so they must be converted to ``bd09`` lon/lat at the source.

Why the GCJ-02 inverse iterates: the forward offset ``f`` has no closed-form inverse. The common
one-step approximation ``wgs ≈ gcj − (f(gcj) − gcj)`` evaluates the offset at the *GCJ* point
instead of the unknown WGS point; because the offset varies by metres over a few hundred metres,
that leaves a 1–2 m error — enough to drop a point into the neighbouring H3 cell at fine
resolutions. The offset's Jacobian is within ~1e-2 of the identity, so the fixed point iteration
``w ← w − (f(w) − gcj)`` contracts quickly: it reaches |Δ| < 1e-9° (≈0.1 mm) in 3–5 steps.

GCJ-02 transforms (and hence the WGS<->BD09 ones) pass points outside the standard rough China
bounding box (lng 72.004–137.8347, lat 0.8293–55.8271, see :func:`in_china_bbox`) through
unchanged, exactly as the reference implementations do. The box is coarse: it includes parts of
neighbouring countries and handles Hong Kong, Macau and Taiwan like the mainland. The BD-09
step itself (GCJ<->BD) is applied everywhere, as Baidu does.

All functions take scalars or array-likes (broadcast together) and return a tuple ``(lng, lat)``
of float64 arrays of the broadcast shape, or of Python floats when both inputs are scalars.
NaN propagates.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pyproj
from pyproj.exceptions import ProjError

__all__ = [
    "SUPPORTED_CRS",
    "CHINA_BBOX",
    "CoordinateError",
    "in_china_bbox",
    "wgs84_to_gcj02",
    "gcj02_to_wgs84",
    "gcj02_to_bd09",
    "bd09_to_gcj02",
    "wgs84_to_bd09",
    "bd09_to_wgs84",
    "looks_like_bd09mc",
    "to_wgs84",
]

#: Source-system names handled natively; any CRS pyproj understands is also accepted by to_wgs84.
SUPPORTED_CRS: tuple[str, ...] = ("wgs84", "cgcs2000", "gcj02", "bd09")

#: The standard rough GCJ-02 bbox (min_lng, min_lat, max_lng, max_lat); outside it GCJ is a no-op.
CHINA_BBOX: tuple[float, float, float, float] = (72.004, 0.8293, 137.8347, 55.8271)

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323  # Krasovsky first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0  # BD-09 constant
_SIN35 = math.sin(math.radians(35.0))
_COS35 = math.cos(math.radians(35.0))

_INVERSE_TOL_DEG = 1e-9
_INVERSE_MAX_ITER = 30
_CHUNK = 16384  # block size for the vectorised kernels (keeps temporaries in cache)

# Names (after lower-casing and removing "-", "_" and spaces) for the native systems.
_ALIASES = {
    "wgs84": "wgs84",
    "cgcs2000": "cgcs2000",
    "gcj02": "gcj02",
    "gcj": "gcj02",
    "bd09": "bd09",
    "bd09ll": "bd09",
}
_BD09MC_NAMES = {"bd09mc", "bdmc", "bd09mercator", "baidumercator"}


class CoordinateError(ValueError):
    """Raised for an unsupported or unknown coordinate system, or coordinates that cannot be used."""


# ----------------------------------------------------------------------------------------------
# helpers


def _prepare(lng, lat) -> tuple[np.ndarray, np.ndarray, bool]:
    x = np.asarray(lng, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    scalar = x.ndim == 0 and y.ndim == 0
    x, y = np.broadcast_arrays(x, y)
    return x, y, scalar


def _finish(x: np.ndarray, y: np.ndarray, scalar: bool):
    if scalar:
        return float(x), float(y)
    return x, y


def in_china_bbox(lng, lat) -> np.ndarray:
    """True where (lng, lat) lies in the rough GCJ-02 China box (NaN -> False)."""
    x = np.asarray(lng, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    min_lng, min_lat, max_lng, max_lat = CHINA_BBOX
    return (x >= min_lng) & (x <= max_lng) & (y >= min_lat) & (y <= max_lat)


def _base_trig(x: np.ndarray, y: np.ndarray):
    """sin/cos of u = πx/120 and w = πy/180 (x = lng-105, y = lat-35); |u|, |w| < π/2 in China."""
    s = np.sin(x * (math.pi / 120.0))
    t = np.sin(y * (math.pi / 180.0))
    return s, np.sqrt(1.0 - s * s), t, np.sqrt(1.0 - t * t)


def _shift_trig(s: np.ndarray, c: np.ndarray, d: np.ndarray):
    """sin/cos of (a + d) from sin a, cos a and a small d (Taylor; exact in float64 for |d| < 1e-2)."""
    d2 = d * d
    cos_d = 1.0 - d2 * (0.5 - d2 * (1.0 / 24.0 - d2 * (1.0 / 720.0)))
    sin_d = d * (1.0 - d2 * (1.0 / 6.0 - d2 * (1.0 / 120.0 - d2 * (1.0 / 5040.0))))
    return s * cos_d + c * sin_d, c * cos_d - s * sin_d


def _gcj_offset_trig(x, y, s, c, t, k) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset in degrees (d_lng, d_lat) at x = lng-105, y = lat-35, given _base_trig(x, y).

    This is the published formula, term for term::

        t_lat = -100 + 2x + 3y + 0.2y² + 0.1xy + 0.2√|x|
                + (20 sin 6πx + 20 sin 2πx)·2/3 + (20 sin πy + 40 sin(πy/3))·2/3
                + (160 sin(πy/12) + 320 sin(πy/30))·2/3
        t_lng = 300 + x + 2y + 0.1x² + 0.1xy + 0.1√|x|
                + (20 sin 6πx + 20 sin 2πx)·2/3 + (20 sin πx + 40 sin(πx/3))·2/3
                + (150 sin(πx/12) + 300 sin(πx/30))·2/3
        m = 1 - ee·sin²(lat)
        d_lat = t_lat·180 / (a(1-ee)/(m√m)·π);  d_lng = t_lng·180 / (a/√m·cos(lat)·π)

    For speed the twelve trigonometric values are not evaluated one by one: every x angle is an
    integer multiple of u = πx/120, every y angle a multiple of w = πy/180, and lat = w + 35°, so
    they follow from sin/cos u and w by the exact multiple-angle and addition identities. The
    rounding difference from the literal formula is < 1e-13 degrees (checked in the tests).
    """
    # x angles from u = πx/120
    s_sq = s * s
    s2 = 2.0 * s * c  # πx/60
    c2 = 1.0 - 2.0 * s_sq
    s4 = 2.0 * s2 * c2  # πx/30
    s2_sq = s2 * s2
    c2_sq = c2 * c2
    s10 = s2 * ((16.0 * s2_sq - 20.0) * s2_sq + 5.0)  # πx/12
    c10 = c2 * ((16.0 * c2_sq - 20.0) * c2_sq + 5.0)
    s20 = 2.0 * s10 * c10
    c20 = 1.0 - 2.0 * s10 * s10
    s40 = 2.0 * s20 * c20  # πx/3
    c40 = 1.0 - 2.0 * s20 * s20
    s120 = s40 * (3.0 - 4.0 * s40 * s40)  # πx
    c120 = c40 * (4.0 * c40 * c40 - 3.0)
    s240 = 2.0 * s120 * c120  # 2πx
    s720 = s240 * (3.0 - 4.0 * s240 * s240)  # 6πx
    # y angles from w = πy/180
    t3 = t * (3.0 - 4.0 * t * t)  # πy/60
    k3 = k * (4.0 * k * k - 3.0)
    t6 = 2.0 * t3 * k3  # πy/30
    t3_sq = t3 * t3
    k3_sq = k3 * k3
    t15 = t3 * ((16.0 * t3_sq - 20.0) * t3_sq + 5.0)  # πy/12
    k15 = k3 * ((16.0 * k3_sq - 20.0) * k3_sq + 5.0)
    t30 = 2.0 * t15 * k15
    k30 = 1.0 - 2.0 * t15 * t15
    t60 = 2.0 * t30 * k30  # πy/3
    t180 = t60 * (3.0 - 4.0 * t60 * t60)  # πy
    # lat = w + 35°
    sin_lat = t * _COS35 + k * _SIN35
    cos_lat = k * _COS35 - t * _SIN35

    sqrt_abs_x = np.sqrt(np.abs(x))
    xy = x * y
    common = (20.0 * (2.0 / 3.0)) * (s720 + s240)
    t_lat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * xy + 0.2 * sqrt_abs_x
        + common
        + (2.0 / 3.0) * (20.0 * t180 + 40.0 * t60)
        + (2.0 / 3.0) * (160.0 * t15 + 320.0 * t6)
    )
    t_lng = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * xy + 0.1 * sqrt_abs_x
        + common
        + (2.0 / 3.0) * (20.0 * s120 + 40.0 * s40)
        + (2.0 / 3.0) * (150.0 * s10 + 300.0 * s4)
    )
    magic = 1.0 - _EE * sin_lat * sin_lat
    sqrt_magic = np.sqrt(magic)
    d_lat = t_lat * (magic * sqrt_magic) * (180.0 / (_A * (1.0 - _EE) * math.pi))
    d_lng = t_lng * (sqrt_magic / cos_lat) * (180.0 / (_A * math.pi))
    return d_lng, d_lat


def _gcj_offset(lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset in degrees (d_lng, d_lat) at WGS84 point (lng, lat); no bbox test."""
    x = lng - 105.0
    y = lat - 35.0
    return _gcj_offset_trig(x, y, *_base_trig(x, y))


def _blockwise(func, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply func to flattened x, y block by block, so that its temporaries stay in cache.

    This is a loop over blocks of _CHUNK points, not over points; the result has x's shape.
    """
    shape = x.shape
    x = x.reshape(-1)
    y = y.reshape(-1)
    n = x.shape[0]
    if n <= _CHUNK:
        out_x, out_y = func(x, y)
    else:
        out_x = np.empty(n)
        out_y = np.empty(n)
        for i in range(0, n, _CHUNK):
            out_x[i : i + _CHUNK], out_y[i : i + _CHUNK] = func(x[i : i + _CHUNK], y[i : i + _CHUNK])
    return out_x.reshape(shape), out_y.reshape(shape)


def _apply_inside(x: np.ndarray, y: np.ndarray, func) -> tuple[np.ndarray, np.ndarray]:
    """Apply func (blockwise) to the points inside the China box; copy the rest unchanged."""
    inside = in_china_bbox(x, y)
    if inside.all():
        return _blockwise(func, x, y)
    out_x = x.copy()
    out_y = y.copy()
    if inside.any():
        out_x[inside], out_y[inside] = _blockwise(func, x[inside], y[inside])
    return out_x, out_y


def _wgs_to_gcj_raw(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d_lng, d_lat = _gcj_offset(x, y)
    return x + d_lng, y + d_lat


def _gcj_to_wgs_raw(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point iteration w <- w - (f(w) - g), started from the one-step estimate g - offset(g).

    The iterates stay within ~0.01° of g, so the sines at w are obtained from those at g by the
    addition formula with a small angle (no new np.sin calls per iteration).
    """
    x0 = gx - 105.0
    y0 = gy - 35.0
    s0, c0, t0, k0 = _base_trig(x0, y0)
    d_lng, d_lat = _gcj_offset_trig(x0, y0, s0, c0, t0, k0)
    wx = gx - d_lng
    wy = gy - d_lat
    active = np.ones(wx.shape, dtype=bool)
    for _ in range(_INVERSE_MAX_ITER):
        x = wx - 105.0
        y = wy - 35.0
        du = (wx - gx) * (math.pi / 120.0)
        dw = (wy - gy) * (math.pi / 180.0)
        if np.nanmax(np.abs(du), initial=0.0) < 1e-2 and np.nanmax(np.abs(dw), initial=0.0) < 1e-2:
            s, c = _shift_trig(s0, c0, du)
            t, k = _shift_trig(t0, k0, dw)
        else:  # not reached for real data (offsets are < 0.01°); kept for safety
            s, c, t, k = _base_trig(x, y)
        d_lng, d_lat = _gcj_offset_trig(x, y, s, c, t, k)
        ex = wx + d_lng - gx
        ey = wy + d_lat - gy
        wx, wy, active = _step(wx, wy, ex, ey, active)
        if not active.any():
            break
    return wx, wy


def _step(wx, wy, ex, ey, active):
    """One fixed-point update w <- w - e on the rows still iterating.

    A row stops after the step whose |e| fell below the tolerance (NaN rows stop at once), so
    each row's result is independent of the rest of the batch: vectorised == element-wise.
    """
    wx = np.where(active, wx - ex, wx)
    wy = np.where(active, wy - ey, wy)
    active = active & ((np.abs(ex) > _INVERSE_TOL_DEG) | (np.abs(ey) > _INVERSE_TOL_DEG))
    return wx, wy, active


def _gcj_to_bd_raw(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.hypot(x, y) + 2e-5 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 3e-6 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _bd_to_gcj_raw(bx: np.ndarray, by: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Published closed-form inverse (off by up to ~2e-6 deg, i.e. ~0.2 m), then polished by the
    # same fixed-point iteration as GCJ->WGS (contraction ~1e-2 per step) until |Δ| < 1e-9 deg.
    x = bx - 0.0065
    y = by - 0.006
    z = np.hypot(x, y) - 2e-5 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 3e-6 * np.cos(x * _X_PI)
    gx = z * np.cos(theta)
    gy = z * np.sin(theta)
    active = np.ones(gx.shape, dtype=bool)
    for _ in range(_INVERSE_MAX_ITER):
        fx, fy = _gcj_to_bd_raw(gx, gy)
        gx, gy, active = _step(gx, gy, fx - bx, fy - by, active)
        if not active.any():
            break
    return gx, gy


# ----------------------------------------------------------------------------------------------
# public transforms


def wgs84_to_gcj02(lng, lat):
    """WGS84 -> GCJ-02. Points outside the rough China box are returned unchanged."""
    x, y, scalar = _prepare(lng, lat)
    return _finish(*_apply_inside(x, y, _wgs_to_gcj_raw), scalar)


def gcj02_to_wgs84(lng, lat):
    """GCJ-02 -> WGS84 by fixed-point iteration (|Δ| < 1e-9° or 30 steps; ~0.1 mm).

    Points outside the rough China box are returned unchanged.
    """
    x, y, scalar = _prepare(lng, lat)
    return _finish(*_apply_inside(x, y, _gcj_to_wgs_raw), scalar)


def gcj02_to_bd09(lng, lat):
    """GCJ-02 -> BD-09 lon/lat (applied everywhere)."""
    x, y, scalar = _prepare(lng, lat)
    return _finish(*_blockwise(_gcj_to_bd_raw, x, y), scalar)


def bd09_to_gcj02(lng, lat):
    """BD-09 lon/lat -> GCJ-02 (closed form polished by iteration; applied everywhere)."""
    x, y, scalar = _prepare(lng, lat)
    return _finish(*_blockwise(_bd_to_gcj_raw, x, y), scalar)


def wgs84_to_bd09(lng, lat):
    """WGS84 -> BD-09 lon/lat (the GCJ step passes points outside China through)."""
    x, y, scalar = _prepare(lng, lat)
    gx, gy = _apply_inside(x, y, _wgs_to_gcj_raw)
    return _finish(*_blockwise(_gcj_to_bd_raw, gx, gy), scalar)


def bd09_to_wgs84(lng, lat):
    """BD-09 lon/lat -> WGS84 (the GCJ step passes points outside China through)."""
    x, y, scalar = _prepare(lng, lat)
    return _finish(*_bd_to_wgs(x, y), scalar)


def _bd_to_wgs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = _blockwise(_bd_to_gcj_raw, x, y)
    return _apply_inside(gx, gy, _gcj_to_wgs_raw)


def looks_like_bd09mc(lng, lat) -> np.ndarray:
    """True where a pair looks like Baidu Mercator metres (BD09MC) rather than degrees.

    BD09MC values for China are roughly x ≈ 8.0e6–1.54e7 and y ≈ 9e4–7.5e6 (e.g. Beijing
    ≈ (12958000, 4825000), Guangzhou ≈ (12613000, 2570000)); a pair matches when |x| and |y|
    both fall in generous versions of those ranges (|x| in [5e6, 2.1e7], |y| in [1e4, 1.3e7]).
    Scaled-integer degrees (×1e6 → x ≈ 1.1e8) and ordinary degrees do not match.
    """
    x = np.abs(np.asarray(lng, dtype=np.float64))
    y = np.abs(np.asarray(lat, dtype=np.float64))
    return (x >= 5.0e6) & (x <= 2.1e7) & (y >= 1.0e4) & (y <= 1.3e7)


@functools.lru_cache(maxsize=64)
def _transformer(src_crs: str) -> pyproj.Transformer:
    """pyproj Transformer src_crs -> EPSG:4326 (lon/lat order), cached per CRS string.

    pyproj >= 3.1 Transformers are thread-safe, so the cached instances may be shared.
    """
    try:
        crs = pyproj.CRS.from_user_input(src_crs)
        return pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    except ProjError as exc:  # CRSError is a subclass
        raise CoordinateError(
            f"unknown coordinate system {src_crs!r}: expected one of {', '.join(SUPPORTED_CRS)} "
            f"or a CRS pyproj can transform to WGS84 (e.g. 'EPSG:4547'); pyproj said: {exc}"
        ) from exc


def _bd09mc_error(src_crs: str) -> CoordinateError:
    return CoordinateError(
        f"{src_crs!r}: BD09MC (Baidu Mercator metres) is not supported; convert to bd09 lon/lat "
        "at the source (Baidu's MC2LL) and load with src_crs='bd09'"
    )


def to_wgs84(lng, lat, src_crs: str):
    """Convert coordinates in ``src_crs`` to WGS84 lon/lat; returns ``(lng, lat)``.

    ``src_crs`` is one of :data:`SUPPORTED_CRS` (case-insensitive; "GCJ-02", "BD-09", "bd09ll",
    "WGS-84" are accepted too) or anything ``pyproj.CRS.from_user_input`` accepts, in which case
    the inputs are that CRS's x/y (easting/northing for projected CRSs, lon/lat order for
    geographic ones) and the result is pyproj's transformation to EPSG:4326 (non-finite results
    become NaN). ``bd09mc`` raises :class:`CoordinateError`, and so do degree-based sources whose
    values look like BD09MC metres (see :func:`looks_like_bd09mc`).
    """
    if not isinstance(src_crs, str):
        raise CoordinateError(f"src_crs must be a string, got {type(src_crs).__name__}: {src_crs!r}")
    key = src_crs.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key in _BD09MC_NAMES:
        raise _bd09mc_error(src_crs)
    x, y, scalar = _prepare(lng, lat)
    native = _ALIASES.get(key)
    if native is not None:
        mc = looks_like_bd09mc(x, y)
        if mc.any():
            raise CoordinateError(
                f"{int(mc.sum())} point(s) given as {src_crs!r} look like BD09MC (Baidu Mercator "
                "metres, values ≫ 180): BD09MC metres are not supported; convert them to bd09 "
                "lon/lat at the source"
            )
        if native in ("wgs84", "cgcs2000"):
            return _finish(x.copy(), y.copy(), scalar)
        if native == "gcj02":
            return _finish(*_apply_inside(x, y, _gcj_to_wgs_raw), scalar)
        return _finish(*_bd_to_wgs(x, y), scalar)
    if not src_crs.strip():
        raise CoordinateError("unknown coordinate system '': src_crs is empty")
    transformer = _transformer(src_crs.strip())
    ox, oy = transformer.transform(x, y)
    ox = np.asarray(ox, dtype=np.float64)
    oy = np.asarray(oy, dtype=np.float64)
    bad = ~(np.isfinite(ox) & np.isfinite(oy))
    if bad.any():
        ox = np.where(bad, np.nan, ox)
        oy = np.where(bad, np.nan, oy)
    return _finish(ox, oy, scalar)
