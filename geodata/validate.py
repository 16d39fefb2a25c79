"""Checks on a deployment's own geography before it is stored: geometry, topology and codes.

Pure: no database. :func:`validate_area_set` looks at an :class:`~geodata.areas.AreaSet` as read
(``load_area_set(..., raw=True)`` keeps invalid rings and duplicate codes so that they can be reported)
and returns a :class:`ValidationReport`, one :class:`Issue` per finding:

==================================  ===========================================================================
kind                                meaning
==================================  ===========================================================================
``invalid_geometry_repaired``       invalid ring (self-intersection, bow-tie …); ``make_valid`` repaired it
                                    (a warning: the repaired polygon is what gets stored)
``invalid_geometry_unrepairable``   invalid or not polygonal, and no polygonal part survives repair
``empty_geometry``                  no geometry, or an empty one
``duplicate_code``                  the same code on several rows of one layer (stored merged, as one area)
``bad_code``                        not all digits, or not the level's length (county 6, town 9, village 12,
                                    grid 15)
``code_parent_mismatch``            the code does not start with its parent's code (grid 15 = village 12 + 3,
                                    village 12 = town 9 + 3, town 9 = county 6 + 3), the parent is not in
                                    the parent layer, or the county differs from the configured one
``overlap``                         two siblings (same parent) share more than ``overlap_tolerance_m2``;
                                    ``code`` and ``other_code`` name the pair, ``area_m2`` the shared area
``gap``                             part of a parent covered by none of its children (only for layers that
                                    are expected to tile their parent); ``code`` is the PARENT's code,
                                    ``level`` the children's, ``area_m2`` the uncovered area
``outside_parent``                  part of an area lying outside its parent, ``area_m2`` that part
``sliver`` (warning)                an overlap, gap or part outside the parent only in strips under ``SLIVER_M``
                                    (1 m) wide: layers from different sources or projections; not an error
==================================  ===========================================================================

The topology is tested on the stored WGS84 lon/lat geometries (the same planar model that point
assignment uses, so a gap found here is a gap that points fall through), and the resulting pieces are
measured in a Lambert azimuthal equal-area projection centred on the county, so m² are true m².
The checks are vectorised (one STRtree query per layer for sibling pairs; array
``difference`` for the parent checks; one union per parent for the gaps): a county with ~3000 grids
validates in about a second.

:func:`repair_geometries` and :func:`repair_area_set` produce what gets stored: valid polygonal
geometries (``shapely.make_valid``, keeping the polygonal parts) with duplicate codes merged.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geodata.areas import LEVELS, AreaSet

__all__ = [
    "KINDS", "WARNING_KINDS", "Issue", "ValidationReport", "validate_area_set", "repair_geometries",
    "repair_area_set", "local_equal_area_crs",
]

INVALID_REPAIRED = "invalid_geometry_repaired"
INVALID_UNREPAIRABLE = "invalid_geometry_unrepairable"
EMPTY_GEOMETRY = "empty_geometry"
DUPLICATE_CODE = "duplicate_code"
BAD_CODE = "bad_code"
CODE_PARENT_MISMATCH = "code_parent_mismatch"
OVERLAP = "overlap"
GAP = "gap"
OUTSIDE_PARENT = "outside_parent"
SLIVER = "sliver"

#: Every issue kind, in the order the summary lists them.
KINDS: tuple[str, ...] = (INVALID_REPAIRED, INVALID_UNREPAIRABLE, EMPTY_GEOMETRY, DUPLICATE_CODE, BAD_CODE,
                          CODE_PARENT_MISMATCH, OVERLAP, GAP, OUTSIDE_PARENT, SLIVER)
#: Kinds that do not stop a strict load (what is stored has been fixed and is correct, or differs from it by
#: less than a metre).
WARNING_KINDS: frozenset[str] = frozenset({INVALID_REPAIRED, SLIVER})
#: A gap, overlap or piece outside the parent thinner than this (mean width 2·area/perimeter) is a sliver: the
#: layers were drawn from different sources or projections and differ by less than a metre along a boundary.
#: Points cannot be told apart at that width, so it is a warning, not an error.
SLIVER_M = 1.0
#: a county left uncovered by its towns in this many pieces or more is taken for two sources of outline
SCRAPS = 20

LEVEL_NAME = {"county": "county", "towns": "town", "villages": "village", "grids": "grid"}
CODE_LEN = {"county": 6, "town": 9, "village": 12, "grid": 15}
_PARENT_KEY = {"towns": "county", "villages": "towns", "grids": "villages"}
_POLYGONAL = ("Polygon", "MultiPolygon")


PARENT_LEVEL = {LEVEL_NAME[key]: LEVEL_NAME[parent] for key, parent in _PARENT_KEY.items()}  # town -> county …


@dataclass(frozen=True)
class Issue:
    level: str  # county / town / village / grid (for gaps: the level of the children)
    code: str | None  # the area concerned (for gaps: the parent)
    kind: str
    detail: str
    area_m2: float | None = None
    other_code: str | None = None  # overlaps: the other sibling

    @property
    def is_error(self) -> bool:
        return self.kind not in WARNING_KINDS


@dataclass
class ValidationReport:
    """What :func:`validate_area_set` found; ``ok`` when nothing but repaired geometries."""

    issues: list[Issue] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # rows per level: county/town/village/grid
    vintage: str = ""
    source: str = ""
    tolerances_m2: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def by_kind(self) -> Counter:
        return Counter(i.kind for i in self.issues)

    def of_kind(self, kind: str) -> list[Issue]:
        return [i for i in self.issues if i.kind == kind]

    def to_frame(self) -> pd.DataFrame:
        cols = ["level", "code", "kind", "detail", "area_m2", "other_code"]
        return pd.DataFrame([[getattr(i, c) for c in cols] for i in self.issues], columns=cols)

    def summary(self, max_per_kind: int = 5) -> str:
        head = f"geography {self.vintage or '?'}"
        if self.source:
            head += f" from {self.source}"
        counts = ", ".join(f"{lvl} {n:,}" for lvl, n in self.counts.items())
        lines = [f"{head}: {counts}"]
        if not self.issues:
            lines.append("  no problems found")
            return "\n".join(lines)
        kinds = self.by_kind()
        lines.append(f"  {len(self.issues):,} issue(s), {len(self.errors):,} error(s)"
                     + ("" if self.errors else " — only repaired geometries, safe to load"))
        for kind in sorted(kinds, key=lambda k: KINDS.index(k) if k in KINDS else len(KINDS)):
            items = self.of_kind(kind)
            tag = "warning" if kind in WARNING_KINDS else "error"
            total = sum(i.area_m2 or 0.0 for i in items)
            extra = f", {total:,.0f} m² in all" if any(i.area_m2 is not None for i in items) else ""
            lines.append(f"  {kind} ({tag}): {len(items):,}{extra}")
            shown = sorted(items, key=lambda i: -(i.area_m2 or 0.0))[:max_per_kind]
            for i in shown:
                # a gap is named by its parent, which the children leave uncovered
                level = PARENT_LEVEL.get(i.level, i.level) if i.kind == GAP else i.level
                who = f"{level} {i.code}" + (f" × {i.other_code}" if i.other_code else "")
                lines.append(f"    - {who}: {i.detail}")
            if len(items) > len(shown):
                lines.append(f"    … and {len(items) - len(shown):,} more")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ repair

def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """The polygonal part of each geometry (None stays None; nothing polygonal → empty Polygon)."""
    out = np.asarray(geoms, dtype=object).copy()
    types = shapely.get_type_id(out)  # -1 for None
    todo = np.flatnonzero((types >= 0) & ~np.isin(types, (3, 6)))  # not Polygon / MultiPolygon
    for i in todo:
        parts = [p for p in shapely.get_parts(out[i]) if shapely.get_type_id(p) in (3, 6)]
        polys = [q for p in parts for q in shapely.get_parts(p)]
        out[i] = (polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)) if polys else shapely.Polygon()
    return out


def repair_geometries(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy with every invalid geometry replaced by the polygonal part of ``shapely.make_valid``.

    Valid polygons are left exactly as they are; a valid non-polygonal geometry (a stray line or point)
    becomes an empty polygon, as does an invalid one with no polygonal part left.
    """
    out = gdf.copy()
    geoms = np.asarray(out.geometry.values, dtype=object)
    present = ~shapely.is_missing(geoms)
    fix = present & (~shapely.is_valid(geoms) | ~np.isin(shapely.get_type_id(geoms), (3, 6)))
    if fix.any():
        geoms = geoms.copy()
        geoms[fix] = _polygonal(shapely.make_valid(geoms[fix]))
        out[out.geometry.name] = gpd.GeoSeries(geoms, index=out.index, crs=out.crs)
    return out


def _merge_duplicates(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per code: rows sharing a code are merged (union of geometries, other columns of the first)."""
    dup = gdf["code"].duplicated(keep=False) & gdf["code"].notna()
    if not dup.any():
        return gdf
    geom_col = gdf.geometry.name
    keep = ~gdf["code"].duplicated(keep="first") | gdf["code"].isna()
    out = gdf[keep].copy()
    merged = {}
    for code, grp in gdf[dup].groupby("code", sort=False):
        geoms = [g for g in grp.geometry.values if g is not None and not g.is_empty]
        merged[code] = _polygonal(np.array([shapely.union_all(geoms) if geoms else shapely.Polygon()],
                                           dtype=object))[0]
    sel = out["code"].isin(merged)
    out.loc[sel, geom_col] = gpd.GeoSeries([merged[c] for c in out.loc[sel, "code"]],
                                           index=out.index[sel], crs=gdf.crs)
    return out.reset_index(drop=True)


def repair_area_set(area_set: AreaSet) -> AreaSet:
    """What gets stored: valid polygonal geometries (missing ones become empty), duplicate codes merged,
    rows without a code left out."""
    layers = {}
    for key in LEVELS:
        gdf = getattr(area_set, key)
        gdf = repair_geometries(gdf[gdf["code"].notna() & gdf["code"].astype(str).str.strip().ne("")])
        geoms = np.asarray(gdf.geometry.values, dtype=object)
        missing = shapely.is_missing(geoms)
        if missing.any():
            geoms = geoms.copy()
            geoms[missing] = shapely.Polygon()
            gdf[gdf.geometry.name] = gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs)
        layers[key] = _merge_duplicates(gdf).reset_index(drop=True)
    return AreaSet(layers["county"], layers["towns"], layers["villages"], layers["grids"],
                   area_set.vintage, area_set.source)


# --------------------------------------------------------------------------------------- validation

def local_equal_area_crs(area_set: AreaSet) -> str:
    """A Lambert azimuthal equal-area CRS centred on the area set (true m² for areas)."""
    bounds = [getattr(area_set, k).total_bounds for k in LEVELS if len(getattr(area_set, k))]
    b = np.array([x for x in bounds if np.isfinite(x).all()])
    if not len(b):
        return "+proj=laea +lat_0=35 +lon_0=105 +ellps=WGS84 +units=m +no_defs"
    lon = (b[:, 0].min() + b[:, 2].max()) / 2
    lat = (b[:, 1].min() + b[:, 3].max()) / 2
    return f"+proj=laea +lat_0={lat:.5f} +lon_0={lon:.5f} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"


def _codes(gdf: gpd.GeoDataFrame, column: str) -> np.ndarray:
    if column not in gdf.columns:
        return np.full(len(gdf), None, dtype=object)
    return np.array([None if pd.isna(v) else str(v) for v in gdf[column]], dtype=object)


def _check_geometry(level: str, codes: np.ndarray, geoms: np.ndarray, issues: list[Issue]) -> None:
    missing = shapely.is_missing(geoms)
    empty = missing | shapely.is_empty(np.where(missing, shapely.Polygon(), geoms))
    for i in np.flatnonzero(empty):
        issues.append(Issue(level, codes[i], EMPTY_GEOMETRY, "no geometry" if missing[i] else "empty geometry"))
    present = ~empty
    types = shapely.get_type_id(geoms)
    valid = np.zeros(len(geoms), dtype=bool)
    valid[present] = shapely.is_valid(geoms[present])
    bad = np.flatnonzero(present & (~valid | ~np.isin(types, (3, 6))))
    if not len(bad):
        return
    repaired = _polygonal(shapely.make_valid(geoms[bad]))
    for i, fixed in zip(bad, repaired, strict=True):
        geom_type = shapely.get_type_id(geoms[i])
        reason = (shapely.is_valid_reason(geoms[i]) if not valid[i]
                  else f"a {geoms[i].geom_type}, not a polygon")
        if fixed.is_empty:
            issues.append(Issue(level, codes[i], INVALID_UNREPAIRABLE, f"{reason}; no polygonal part survives repair"))
        else:
            what = "repaired to a multipolygon" if shapely.get_type_id(fixed) == 6 else "repaired"
            if geom_type not in (3, 6):
                what = f"polygonal part kept ({fixed.geom_type})"
            issues.append(Issue(level, codes[i], INVALID_REPAIRED, f"{reason}; {what}"))


def _check_codes(key: str, gdf: gpd.GeoDataFrame, parent_codes: set[str] | None, county_code: str | None,
                 issues: list[Issue]) -> None:
    level = LEVEL_NAME[key]
    codes = _codes(gdf, "code")
    parents = _codes(gdf, "parent_code")
    n = CODE_LEN[level]
    counts = Counter(c for c in codes if c is not None)
    names = gdf["name"].astype(str).to_numpy() if "name" in gdf.columns else codes
    for code, k in counts.items():
        if k > 1:
            dup_names = sorted(set(names[codes == code]))
            issues.append(Issue(level, code, DUPLICATE_CODE,
                                f"{k} rows share this code (names: {', '.join(dup_names)}); stored as one area"))
    for i, code in enumerate(codes):
        if code is None or not code.strip():
            issues.append(Issue(level, None, BAD_CODE, f"a {level} row without a code (row {i + 1}); it is not stored"))
            continue
        if len(code) != n or not code.isdigit():
            issues.append(Issue(level, code, BAD_CODE, f"{level} codes have {n} digits, got {code!r}"))
            continue
        if key == "county":
            if county_code and code != county_code:
                issues.append(Issue(level, code, CODE_PARENT_MISMATCH,
                                    f"county {code} is not the configured county {county_code} (geo.county_code)"))
            continue
        parent = parents[i]
        plen = CODE_LEN[LEVEL_NAME[_PARENT_KEY[key]]]
        if parent is None or code[:plen] != parent:
            issues.append(Issue(level, code, CODE_PARENT_MISMATCH,
                                f"code does not start with its parent's code {parent!r} "
                                f"({level} {n} digits = parent {plen} + {n - plen})"))
        elif parent_codes is not None and parent not in parent_codes:
            issues.append(Issue(level, code, CODE_PARENT_MISMATCH,
                                f"parent {parent} is not in the {_PARENT_KEY[key]} layer"))


def _solid_and_slivers(geoms, crs: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each geometry: the m² of its parts at least SLIVER_M wide, the m² of its thinner parts (slivers),
    and the widest sliver's mean width in metres."""
    geoms = np.asarray(geoms, dtype=object)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    projected = gpd.GeoSeries(parts, crs="EPSG:4326").to_crs(crs)
    area, length = projected.area.to_numpy(), projected.length.to_numpy()
    width = np.where(length > 0, 2 * area / np.maximum(length, 1e-12), 0.0)
    thin = width < SLIVER_M
    solid = np.bincount(owner, weights=np.where(thin, 0.0, area), minlength=len(geoms))
    sliver = np.bincount(owner, weights=np.where(thin, area, 0.0), minlength=len(geoms))
    widest = np.zeros(len(geoms))
    np.maximum.at(widest, owner[thin], width[thin])
    return solid, sliver, widest


def _sliver_issue(level: str, code, what: str, m2: float, width: float, other=None) -> Issue:
    return Issue(level, code, SLIVER, f"{what}: {m2:,.1f} m² in strips under {SLIVER_M:g} m wide (widest "
                 f"{width:.2f} m) — layers drawn from different sources or projections", float(m2), other)


def _m2(geoms, crs: str) -> np.ndarray:
    """Areas in m² of lon/lat geometries, measured in the equal-area ``crs``."""
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return np.zeros(0)
    return gpd.GeoSeries(geoms, crs="EPSG:4326").to_crs(crs).area.to_numpy()


def _usable(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, parent codes, repaired lon/lat geometries) of the rows with usable geometry."""
    fixed = _merge_duplicates(repair_geometries(gdf))
    geoms = np.asarray(fixed.geometry.values, dtype=object)
    usable = ~shapely.is_missing(geoms)
    usable[usable] = ~shapely.is_empty(geoms[usable])
    fixed = fixed[usable]
    return _codes(fixed, "code"), _codes(fixed, "parent_code"), np.asarray(fixed.geometry.values, dtype=object)


def _check_overlaps(level: str, codes, parents, geoms, tol: float, issues: list[Issue], crs: str) -> None:
    if len(geoms) < 2:
        return
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    keep = (a < b) & (parents[a] == parents[b])
    a, b = a[keep], b[keep]
    if not len(a):
        return
    real = ~shapely.touches(geoms[a], geoms[b])
    a, b = a[real], b[real]
    solid, sliver, widest = _solid_and_slivers(shapely.intersection(geoms[a], geoms[b]), crs)
    for i, j, ar, thin, w in zip(a, b, solid, sliver, widest, strict=True):
        if ar > tol:
            issues.append(Issue(level, codes[i], OVERLAP, f"overlaps sibling {codes[j]} by {ar:,.1f} m²",
                                float(ar), codes[j]))
        elif thin > tol:
            issues.append(_sliver_issue(level, codes[i], f"overlaps sibling {codes[j]}", thin, w, codes[j]))


def _check_outside(level: str, codes, parents, geoms, parent_geom: dict, tol: float, issues: list[Issue],
                   crs: str) -> None:
    idx = np.array([i for i, p in enumerate(parents) if p in parent_geom], dtype=np.int64)
    if not len(idx):
        return
    pg = np.array([parent_geom[parents[i]] for i in idx], dtype=object)
    shapely.prepare(pg)
    inside = shapely.covers(pg, geoms[idx])
    idx, pg = idx[~inside], pg[~inside]
    if not len(idx):
        return
    solid, sliver, widest = _solid_and_slivers(shapely.difference(geoms[idx], pg), crs)
    for i, ar, thin, w in zip(idx, solid, sliver, widest, strict=True):
        if ar > tol:
            issues.append(Issue(level, codes[i], OUTSIDE_PARENT,
                                f"{ar:,.1f} m² lie outside its parent {parents[i]}", float(ar)))
        elif thin > tol:
            issues.append(_sliver_issue(level, codes[i], f"outside its parent {parents[i]}", thin, w))


def _check_gaps(level: str, codes, parents, geoms, parent_geom: dict, tol: float, issues: list[Issue],
                crs: str) -> None:
    order = np.argsort(parents.astype(str), kind="stable")
    groups: dict[str, list] = {}
    for i in order:
        groups.setdefault(parents[i], []).append(geoms[i])
    child_plural = {"town": "towns", "village": "villages", "grid": "grids"}[level]
    for pcode, pgeom in parent_geom.items():
        if pcode is None:
            continue
        children = groups.get(pcode)
        if not children:
            area = float(_m2([pgeom], crs)[0])
            issues.append(Issue(level, pcode, GAP, f"has no {child_plural}: {area:,.0f} m² uncovered", area))
            continue
        rest = shapely.difference(pgeom, shapely.union_all(children))
        if rest.is_empty:
            continue
        parts = shapely.get_parts(rest)
        solid, sliver, widest = _solid_and_slivers(parts, crs)
        if float(solid.sum()) <= tol:
            if float(sliver.sum()) > tol:
                issues.append(_sliver_issue(level, pcode, f"not covered by its {child_plural}", float(sliver.sum()),
                                            float(widest.max())))
            continue
        parts, part_m2 = parts[solid > 0], solid[solid > 0]
        total = float(part_m2.sum())
        if total > tol:
            big = part_m2 > tol
            k = int(np.argmax(part_m2))
            lng, lat = shapely.get_coordinates(shapely.point_on_surface(parts[k]))[0]
            pieces = max(int(big.sum()), 1)
            # the county's outline in many scraps round its towns: two sources (a DataV or 天地图 county against the
            # civil-affairs towns), not missing towns
            hint = ("; in many scraps along the edge: the county outline and the towns seem to come from different "
                    "sources — leave the county file out and it is made from the towns"
                    if level == "town" and pieces >= SCRAPS else "")
            issues.append(Issue(level, pcode, GAP,
                                f"{total:,.1f} m² not covered by its {child_plural} ({pieces} "
                                f"piece(s), largest {part_m2[k]:,.1f} m² around lng={lng:.5f} lat={lat:.5f}{hint})",
                                total))


def validate_area_set(area_set: AreaSet, *, county_code: str | None = None, overlap_tolerance_m2: float = 1.0,
                      gap_tolerance_m2: float = 1.0, outside_tolerance_m2: float = 1.0,
                      expect_tiling: tuple[str, ...] = ("towns", "villages", "grids")) -> ValidationReport:
    """Check geometry, codes and topology of every layer; see the module docstring for the issue kinds.

    ``county_code``: the configured county (``settings.county_code``); a different county is reported.
    Tolerances are in m² (equal-area). ``expect_tiling`` lists the layers whose areas should cover their
    parent completely (the default: towns tile the county, villages their town, grids their village);
    gaps are looked for only there.
    """
    issues: list[Issue] = []
    counts = {}
    crs = local_equal_area_crs(area_set)
    usable: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for key in LEVELS:
        gdf = getattr(area_set, key)
        level = LEVEL_NAME[key]
        counts[level] = len(gdf)
        _check_geometry(level, _codes(gdf, "code"), np.asarray(gdf.geometry.values, dtype=object), issues)
        parent_codes = set(_codes(getattr(area_set, _PARENT_KEY[key]), "code")) - {None} if key != "county" else None
        _check_codes(key, gdf, parent_codes, county_code, issues)
        usable[key] = _usable(gdf)
    for key in LEVELS[1:]:
        level = LEVEL_NAME[key]
        codes, parents, geoms = usable[key]
        pcodes, _, pgeoms = usable[_PARENT_KEY[key]]
        parent_geom = dict(zip(pcodes, pgeoms, strict=True))
        _check_overlaps(level, codes, parents, geoms, overlap_tolerance_m2, issues, crs)
        _check_outside(level, codes, parents, geoms, parent_geom, outside_tolerance_m2, issues, crs)
        if key in expect_tiling:
            _check_gaps(level, codes, parents, geoms, parent_geom, gap_tolerance_m2, issues, crs)
    return ValidationReport(issues, counts, area_set.vintage, area_set.source,
                            {"overlap": overlap_tolerance_m2, "gap": gap_tolerance_m2,
                             "outside": outside_tolerance_m2})
