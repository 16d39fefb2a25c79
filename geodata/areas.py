"""Administrative areas (county → town → village → grid): loading, point assignment and address lookup.

Pure: no database. An :class:`AreaSet` holds four GeoDataFrames in WGS84 lon/lat with string columns
``code``, ``name``, ``level``, ``parent_code`` plus a ``vintage`` label (boundaries change: 村居合并).

* :func:`load_area_set` reads a deployment's own polygons (GeoJSON, GeoPackage, Shapefile, GeoParquet)
  and reprojects them (e.g. CGCS2000 Gauss-Krüger) to WGS84; a declared source CRS (``gcj02`` for
  web-map exports, an EPSG code for files without one) and the code/name columns can be given as
  arguments or in an ``areas.toml`` beside the files. :mod:`geodata.validate` checks the result.
* :func:`demo_area_set` is the bundled 汕尾市城区 demo (real county and town codes, synthetic
  villages and grids; see ``geodata/demo/data/SOURCES.md``).
* :func:`assign_areas` maps lon/lat points to county/town/village/grid codes (vectorised).
* :func:`gazetteer` and :func:`resolve_address` resolve free-text addresses to an area, never to a point.
"""
from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geodata.crs import to_wgs84
from geodata.raster_index import UNKNOWN, RasterIndex, first_hits

LEVELS = ("county", "towns", "villages", "grids")
_LEVEL_NAME = {"county": "county", "towns": "town", "villages": "village", "grids": "grid"}
_CODE_LEN = {"county": 6, "towns": 9, "villages": 12, "grids": 15}

# conventional file stems per level (first found wins), and accepted file extensions
_STEMS = {
    "county": ("county", "counties", "district", "区县"),
    "towns": ("towns", "town", "townships", "streets", "乡镇", "乡镇街道"),
    "villages": ("villages", "village", "communities", "村社区", "村居"),
    "grids": ("grids", "grid", "网格"),
}
_EXTS = (".geojson", ".json", ".gpkg", ".shp", ".parquet", ".geoparquet")
_CODE_COLS = ("code", "CODE", "adcode", "Code", "区划代码", "编码", "代码", "网格编码", "dm", "DM")
_NAME_COLS = ("name", "NAME", "Name", "名称", "网格名称", "mc", "MC")

DEMO_DIR = Path(__file__).resolve().parent / "demo" / "data"
MANIFEST_NAME = "areas.toml"  # optional, beside the layer files: vintage, crs, code_column, name_column
_LON_LAT_SOURCES = ("gcj02", "bd09")  # declared CRSs that are lon/lat degrees converted by geodata.crs
RASTER_MIN_POINTS = 20_000  # below this, the STRtree alone is quicker than building the raster index
# Before a nonlinear conversion, long straight edges are split so that their shape survives it: a 10 km
# Gauss-Krüger edge taken as a straight lon/lat chord bows ~2 m off its true line (and off the parent edge
# it lies on, which makes false gaps and overlaps); at 100 m pieces the deviation is < 1 mm.
DENSIFY_M = 100.0
DENSIFY_DEG = 0.001


@dataclass(frozen=True, eq=False)
class AreaSet:
    """The four area layers of one deployment, WGS84, with their boundary vintage."""

    county: gpd.GeoDataFrame
    towns: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    vintage: str = "unknown"
    source: str = field(default="", compare=False)

    @property
    def county_code(self) -> str:
        return str(self.county["code"].iloc[0]) if len(self.county) else ""

    # --- cached lookup structures (cached_property writes __dict__ directly, fine on a frozen dataclass)
    @cached_property
    def _grid_tree(self) -> shapely.STRtree:
        return shapely.STRtree(np.asarray(self.grids.geometry.values))

    @cached_property
    def _grid_raster(self) -> RasterIndex:
        return RasterIndex(np.asarray(self.grids.geometry.values), self._grid_tree)

    @cached_property
    def grid_codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per grid row (the order of ``grids`` and of :func:`grid_index`): (county, town, village, grid) codes
        as object arrays, each with a trailing None that index -1 (no grid) picks."""
        grid = self.grids["code"].astype(str).to_numpy()
        village = self.grids["parent_code"].astype(str).to_numpy()
        v2t = dict(zip(self.villages["code"], self.villages["parent_code"], strict=False))
        town = np.array([v2t.get(v, v[:9]) for v in village], dtype=object)
        t2c = dict(zip(self.towns["code"], self.towns["parent_code"], strict=False))
        county = np.array([t2c.get(t, self.county_code or t[:6]) for t in town], dtype=object)

        def tail(a: np.ndarray) -> np.ndarray:
            return np.append(a.astype(object), None)

        return tail(county), tail(town), tail(village), tail(grid)

    @cached_property
    def _address_index(self) -> _AddressIndex:
        return _AddressIndex(gazetteer(self))

    def prepare(self) -> AreaSet:
        """Build the look-up structures now (grid raster and tree, code columns, gazetteer; ~0.5–1 s for a
        county) instead of on the first batch: a load calls this in a thread while it reads the file."""
        for name in ("_grid_raster", "grid_codes", "_address_index"):
            getattr(self, name)
        return self


# ----------------------------------------------------------------------------------------------- loading

def _find_layer(directory: Path, level: str) -> Path | None:
    for stem in _STEMS[level]:
        for ext in _EXTS:
            p = directory / f"{stem}{ext}"
            if p.exists():
                return p
    return None


def _read_any(path: Path, layer: str | None = None) -> gpd.GeoDataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".geoparquet"):
        return gpd.read_parquet(path)
    if layer is not None:
        return gpd.read_file(path, layer=layer)
    if suffix == ".shp" and not path.with_suffix(".cpg").exists():
        return _read_shapefile_without_cpg(path)
    return gpd.read_file(path)


def _mojibake(texts) -> bool:
    """Whether texts look like GBK bytes read as Latin-1 ("Çø»®´úÂë" for 区划代码): characters of the Latin-1
    upper half only, and none of CJK."""
    joined = "".join(str(t) for t in texts)
    return any("\u0080" <= ch <= "\u00ff" for ch in joined) and not any("\u4e00" <= ch <= "\u9fff" for ch in joined)


def _read_shapefile_without_cpg(path: Path) -> gpd.GeoDataFrame:
    """A Shapefile without the .cpg naming its text encoding: Chinese exports are mostly GBK, which GDAL then
    reads as Latin-1 (column names and names as "Çø»®´úÂë"). Read as GBK when the default reading looks so."""
    gdf = gpd.read_file(path)
    texts = [*gdf.columns, *(v for c in gdf.columns if gdf[c].dtype == object for v in gdf[c].head(50))]
    return gpd.read_file(path, encoding="gbk") if _mojibake(texts) else gdf


def _crs_key(crs: str) -> str:
    return crs.strip().lower().replace("-", "").replace("_", "").replace(" ", "")


def _declared_native(crs: str) -> str | None:
    """'gcj02' / 'bd09' / 'wgs84' for the names geodata.crs handles natively, else None (a pyproj CRS)."""
    key = _crs_key(crs)
    return {"gcj02": "gcj02", "gcj": "gcj02", "bd09": "bd09", "bd09ll": "bd09", "wgs84": "wgs84",
            "cgcs2000": "wgs84"}.get(key)


def _apply_declared_crs(gdf: gpd.GeoDataFrame, level: str, declared_crs: str) -> gpd.GeoDataFrame:
    """Interpret the layer's coordinates as ``declared_crs`` (the declaration wins over the file's label)."""
    native = _declared_native(declared_crs)
    if native in _LON_LAT_SOURCES:
        if gdf.crs is not None and gdf.crs.is_projected:
            raise ValueError(f"{level}: declared {declared_crs} (lon/lat degrees) but the file is in the "
                             f"projected CRS {gdf.crs.name}")
        def convert(xy: np.ndarray) -> np.ndarray:
            lng, lat = to_wgs84(xy[:, 0], xy[:, 1], src_crs=native)
            return np.column_stack([lng, lat])

        out = gdf.copy()
        out["geometry"] = shapely.transform(_segmentize_valid(gdf.geometry.values, DENSIFY_DEG), convert)
        return out.set_geometry("geometry").set_crs("EPSG:4326", allow_override=True)
    if native == "wgs84":
        return gdf.set_crs("EPSG:4326", allow_override=True)
    return gdf.set_crs(declared_crs, allow_override=True)


def _densified(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Edges split to at most DENSIFY_M metres (projected CRS) or DENSIFY_DEG degrees, for reprojection."""
    crs = gdf.crs
    step = DENSIFY_M / crs.axis_info[0].unit_conversion_factor if crs.is_projected else DENSIFY_DEG
    out = gdf.copy()
    out[gdf.geometry.name] = gpd.GeoSeries(_segmentize_valid(gdf.geometry.values, step), index=gdf.index, crs=crs)
    return out


def _segmentize_valid(values, step: float) -> np.ndarray:
    """Edges of the valid geometries split to at most ``step``. An invalid one is left as it is: GEOS's densify
    returns a bow-tie as a valid polygon with one of its lobes gone, so the checks (geodata.validate) would
    neither report it nor repair it as a whole; moved point by point, it reaches them invalid."""
    geoms = np.asarray(values).copy()
    valid = shapely.is_valid(geoms)
    geoms[valid] = shapely.segmentize(geoms[valid], step)
    return geoms


def _for_layer(option: str | Mapping[str, str] | None, level: str) -> str | None:
    """An option (a column name, a CRS) given once for all layers (str) or per layer ({'grids': 'WGBM', 'town': ...})."""
    if option is None or isinstance(option, str):
        return option
    return option.get(level) or option.get(_LEVEL_NAME[level])


def _normalise_layer(gdf: gpd.GeoDataFrame, level: str, declared_crs: str | None = None,
                     code_column: str | Mapping[str, str] | None = None,
                     name_column: str | Mapping[str, str] | None = None, raw: bool = False) -> gpd.GeoDataFrame:
    gdf = gdf.copy()
    if declared_crs:
        gdf = _apply_declared_crs(gdf, level, declared_crs)
    elif gdf.crs is not None and gdf.crs.is_geographic and "gcj" in (gdf.crs.name or "").lower():
        gdf = _apply_declared_crs(gdf, level, "gcj02")  # a custom CRS that says it is GCJ-02
    if gdf.crs is None:
        minx, miny, maxx, maxy = gdf.total_bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise ValueError(f"{level}: no CRS and coordinates are not lon/lat degrees; give the layer a CRS")
        gdf = gdf.set_crs("EPSG:4326")
    elif not gdf.crs.equals("EPSG:4326"):
        if gdf.crs.is_geographic and gdf.crs.to_epsg() in (4490, 4610, 4214):
            # CGCS2000 (4490) is treated as WGS84 (within ~1 m); just relabel
            gdf = gdf.set_crs("EPSG:4326", allow_override=True)
        else:
            gdf = _densified(gdf).to_crs("EPSG:4326")
    code_col, name_col = _for_layer(code_column, level), _for_layer(name_column, level)
    for given, what in ((code_col, "code"), (name_col, "name")):
        if given is not None and given not in gdf.columns:
            raise ValueError(f"{level}: the configured {what} column {given!r} is not in the layer "
                             f"(columns: {', '.join(map(str, gdf.columns))})")
    code_col = code_col or next((c for c in _CODE_COLS if c in gdf.columns), None)
    name_col = name_col or next((c for c in _NAME_COLS if c in gdf.columns), None)
    if code_col is None:
        raise ValueError(f"{level}: no code column (looked for {', '.join(_CODE_COLS)}; the layer has "
                         f"{', '.join(map(str, gdf.columns.drop(gdf.geometry.name, errors='ignore')))}): name it "
                         f"with code_column in {MANIFEST_NAME} beside the files")
    # a configured column wins over a conventional one of the same target name
    gdf = gdf.drop(columns=[c for c, src in (("code", code_col), ("name", name_col))
                            if src and src != c and c in gdf.columns])
    gdf = gdf.rename(columns={code_col: "code", **({name_col: "name"} if name_col else {})})
    gdf["code"] = gdf["code"].map(_code_str)
    if "name" not in gdf.columns:
        gdf["name"] = gdf["code"]
    gdf["name"] = gdf["name"].where(gdf["name"].notna(), gdf["code"]).astype(str)
    gdf["level"] = _LEVEL_NAME[level]
    if "parent_code" in gdf.columns:
        gdf["parent_code"] = gdf["parent_code"].map(_code_str)
    elif level != "county":
        parent_len = _CODE_LEN[LEVELS[LEVELS.index(level) - 1]]
        gdf["parent_code"] = gdf["code"].str[:parent_len]
    else:
        gdf["parent_code"] = gdf["code"].str[:4] + "00"
    if raw:  # as read, for geodata.validate to report on: no repair, duplicates kept
        return gdf.reset_index(drop=True)
    from geodata.validate import repair_geometries  # local: validate imports this module

    gdf = repair_geometries(gdf)
    dup = gdf["code"].duplicated()
    if dup.any():
        raise ValueError(f"{level}: duplicate codes {gdf.loc[dup, 'code'].head().tolist()}")
    return gdf.reset_index(drop=True)


def _code_str(v) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def read_manifest(directory: str | Path) -> dict:
    """The optional ``areas.toml`` beside a deployment's layer files ({} when there is none).

    Keys (all optional)::

        vintage = "2024"                    # boundary vintage label
        crs = "gcj02"                       # declared source CRS: gcj02 / bd09 / wgs84 / EPSG:xxxx, for every
                                            # layer, or per layer (towns from one agency, grids from another):
        [crs]
        grids = "gcj02"
        code_column = "区划代码"             # one column for every layer, or per layer:
        [code_column]
        grids = "WGBM"
        [name_column]
        grids = "WGMC"
    """
    path = Path(directory)
    folder = path if path.is_dir() else path.parent
    file = folder / MANIFEST_NAME
    if not file.is_file():
        return {}
    try:
        with file.open("rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{file}: invalid TOML: {exc}") from exc
    unknown = set(doc) - {"vintage", "crs", "code_column", "name_column"}
    if unknown:
        raise ValueError(f"{file}: unknown keys {sorted(unknown)} (allowed: vintage, crs, code_column, name_column)")
    return doc


def _gpkg_layers(path: Path) -> dict[str, gpd.GeoDataFrame]:
    import pyogrio

    names = {str(n) for n, _ in pyogrio.list_layers(path)}
    layers = {}
    for level in LEVELS:
        layer = next((s for s in _STEMS[level] if s in names), None)
        if layer is not None:
            layers[level] = _read_any(path, layer)
    return layers


def load_area_set(directory: str | Path, vintage: str | None = None, *, declared_crs: str | Mapping[str, str] | None = None,
                  code_column: str | Mapping[str, str] | None = None,
                  name_column: str | Mapping[str, str] | None = None, raw: bool = False) -> AreaSet:
    """Read county/towns/villages/grids layers from ``directory`` by conventional names.

    ``directory`` may be a folder holding ``county.*``, ``towns.*``, ``villages.*``, ``grids.*`` (GeoJSON,
    GeoPackage, Shapefile or GeoParquet; alternative stems such as ``town``/``streets``/``网格`` are
    accepted), a single GeoPackage with layers of those names, or a folder holding one such GeoPackage.
    Projected layers (e.g. CGCS2000 Gauss-Krüger) are reprojected to WGS84; CGCS2000 geographic is
    relabelled as WGS84. A missing county layer is dissolved from the towns. ``vintage`` defaults to
    the manifest's, else the layers' ``vintage`` column.

    ``declared_crs`` says what the coordinates really are, whatever the file's label: ``'gcj02'`` /
    ``'bd09'`` (lon/lat from web maps, converted vertex by vertex with :func:`geodata.crs.to_wgs84`),
    ``'wgs84'``/``'cgcs2000'``, or any CRS pyproj knows (``'EPSG:4549'``) for files without one; one for every
    layer, or a mapping per layer (``{'grids': 'gcj02'}``: the others read as their files say).
    ``code_column`` / ``name_column`` name the columns when the conventional names do not fit: one name
    for every layer or a mapping per layer (``{'grids': 'WGBM'}``). Each of these defaults to the
    ``areas.toml`` manifest beside the files (see :func:`read_manifest`), so a deployment is configured
    by its files alone. ``raw=True`` keeps geometries as read and duplicate codes, for
    :func:`geodata.validate.validate_area_set` to report on; otherwise invalid geometries are repaired
    (polygonal parts of ``make_valid``) and duplicate codes raise ``ValueError``.
    """
    path = Path(directory)
    manifest = read_manifest(path) if path.exists() else {}
    declared_crs = declared_crs or manifest.get("crs") or None
    code_column = code_column if code_column is not None else manifest.get("code_column")
    name_column = name_column if name_column is not None else manifest.get("name_column")
    vintage = vintage if vintage is not None else (str(manifest["vintage"]) if "vintage" in manifest else None)
    layers: dict[str, gpd.GeoDataFrame] = {}
    if path.is_file() and path.suffix.lower() == ".gpkg":
        layers = _gpkg_layers(path)
    elif path.is_dir():
        for level in LEVELS:
            p = _find_layer(path, level)
            if p is not None:
                layers[level] = _read_any(p)
        packages = sorted(path.glob("*.gpkg"))
        if not layers and len(packages) == 1:
            layers = _gpkg_layers(packages[0])
    else:
        raise FileNotFoundError(f"not a directory or GeoPackage: {path}")
    for level in ("towns", "villages", "grids"):
        if level not in layers:
            raise FileNotFoundError(f"{path}: no {level} layer (expected one of {_STEMS[level]} with {_EXTS})")
    norm = {lvl: _normalise_layer(g, lvl, _for_layer(declared_crs, lvl), code_column, name_column, raw)
            for lvl, g in layers.items()}
    if "county" not in norm:
        towns = norm["towns"]
        code = towns["code"].str[:6].mode().iloc[0]
        geom = shapely.union_all(shapely.make_valid(towns.geometry.values) if raw else towns.geometry.values)
        norm["county"] = gpd.GeoDataFrame(
            {"code": [code], "name": [code], "level": ["county"], "parent_code": [code[:4] + "00"]},
            geometry=[geom], crs="EPSG:4326")
    if vintage is None:
        vs = {str(v) for g in norm.values() if "vintage" in g.columns for v in g["vintage"].dropna().unique()}
        vintage = vs.pop() if len(vs) == 1 else ("unknown" if not vs else "/".join(sorted(vs)))
    return AreaSet(norm["county"], norm["towns"], norm["villages"], norm["grids"], vintage, str(path))


_DEMO: AreaSet | None = None


def demo_area_set() -> AreaSet:
    """The bundled demo: 汕尾市城区 (441502), real county boundary and town codes, synthetic villages/grids."""
    global _DEMO
    if _DEMO is None:
        _DEMO = load_area_set(DEMO_DIR)
    return _DEMO


def bbox(area_set: AreaSet) -> tuple[float, float, float, float]:
    """(min_lng, min_lat, max_lng, max_lat) of the county."""
    minx, miny, maxx, maxy = area_set.county.total_bounds
    return float(minx), float(miny), float(maxx), float(maxy)


# ------------------------------------------------------------------------------------ point assignment

def assign_areas(area_set: AreaSet, lng, lat) -> pd.DataFrame:
    """Codes of the grid containing each (lng, lat) WGS84 point, and of its village, town and county.

    Points on a shared grid edge go to one of the grids (deterministically, the first in file order);
    points outside every grid, or with NaN coordinates, get None in all four columns. Returns a DataFrame
    aligned with the input (index 0..n-1, or the index of ``lng`` when it is a Series). See
    :func:`grid_index` for how the grids are found.
    """
    index = lng.index if isinstance(lng, pd.Series) else None
    hit = grid_index(area_set, lng, lat)
    county, town, village, grid = area_set.grid_codes
    cols = {"county_code": county, "town_code": town, "village_code": village, "grid_code": grid}
    # object columns so that "not found" is None (pandas' default str dtype would turn it into NaN)
    return pd.DataFrame({k: pd.Series(v[hit], dtype=object, index=index) for k, v in cols.items()}, index=index)


def grid_index(area_set: AreaSet, lng, lat) -> np.ndarray:
    """Row of ``area_set.grids`` containing each (lng, lat) WGS84 point, −1 where none does.

    Vectorised: a raster index of the grids (:mod:`geodata.raster_index`) answers for most points of a
    large batch, a shapely STRtree over the grids for the rest (near edges), with the same result."""
    x = np.asarray(lng, dtype=float).ravel()
    y = np.asarray(lat, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError("lng and lat must have the same length")
    hit = np.full(len(x), -1, dtype=np.int64)  # -1 → trailing None in the code arrays
    minx, miny, maxx, maxy = bbox(area_set)
    cand = np.flatnonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))  # NaN fails these
    if len(cand) >= RASTER_MIN_POINTS:  # most points settled by array look-up, the rest by the tree below
        known = area_set._grid_raster.lookup(x[cand], y[cand])
        hit[cand[known >= 0]] = known[known >= 0]
        cand = cand[known == UNKNOWN]
    if len(cand):
        found = first_hits(area_set._grid_tree, x[cand], y[cand])
        hit[cand[found >= 0]] = found[found >= 0]
    return hit


# ------------------------------------------------------------------------------------------- gazetteer

_SUFFIX_ALIASES = {
    # canonical suffix → alternative suffixes
    "街道": ("街道办", "街道办事处"),
    "镇": ("镇人民政府", "镇政府"),
    "乡": ("乡人民政府", "乡政府"),
    "社区": ("社区居委会", "社区居民委员会", "居委会", "居民委员会"),
    "村": ("村委会", "村民委员会", "村委"),
}


def _aliases(name: str, level: str) -> list[str]:
    out = [name]
    for suf, alts in _SUFFIX_ALIASES.items():
        if name.endswith(suf) and len(name) > len(suf):
            stem = name[: -len(suf)]
            out += [stem + a for a in alts]
            if level == "town" and len(stem) >= 2:
                out.append(stem)  # "红草" for 红草镇; only towns (village stems are too ambiguous)
            break
    return list(dict.fromkeys(out))


def _grid_aliases(name: str, village_name: str | None) -> list[str]:
    out = [name]
    m = re.search(r"第?(\d+)号?网格$", name)
    if m and village_name:
        # other spellings (居委会第3网格, 三号网格 …) are recognised by resolve_address's grid-number rule
        n = int(m.group(1))
        out += [f"{village_name}第{n}网格", f"{village_name}{n}号网格", f"{village_name}网格{n}"]
    return list(dict.fromkeys(out))


def gazetteer(area_set: AreaSet) -> pd.DataFrame:
    """Towns, villages and grids with their alias names: DataFrame[code, name, level, parent_code, aliases].

    ``aliases`` is a list of names that refer to the area in addresses (the name itself first), e.g.
    凤山街道 → 凤山街道办 / 凤山街道办事处 / 凤山; 新城社区 → 新城社区居委会 / 新城社区居民委员会;
    石湖村 → 石湖村委会 / 石湖村民委员会; 新城社区第3网格 → 新城社区3号网格 / 新城社区居委会第3网格 …
    """
    rows = []
    for level_key, level in (("towns", "town"), ("villages", "village")):
        g = getattr(area_set, level_key)
        for code, name, parent in zip(g["code"], g["name"], g["parent_code"], strict=True):
            rows.append((code, name, level, parent, _aliases(name, level)))
    vname = dict(zip(area_set.villages["code"], area_set.villages["name"], strict=True))
    g = area_set.grids
    for code, name, parent in zip(g["code"], g["name"], g["parent_code"], strict=True):
        rows.append((code, name, "grid", parent, _grid_aliases(name, vname.get(parent))))
    return pd.DataFrame(rows, columns=["code", "name", "level", "parent_code", "aliases"])


# ------------------------------------------------------------------------------------ address lookup

_STRIP_WORDS = ("附近", "旁边", "周边", "对面", "门口", "对过", "一带", "左右", "旁")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_GRID_NO = re.compile(r"(?:第)?([0-9]{1,3}|[零〇一二两三四五六七八九十百]{1,5})(?:号)?网格|网格([0-9]{1,3})")
_CODE_RE = re.compile(r"(?<!\d)(\d{15}|\d{12}|\d{9})(?!\d)")


def normalise_address(text: str) -> str:
    """NFKC (full-width → half-width), drop whitespace and vague position words (附近/旁/对面/门口 …)."""
    t = unicodedata.normalize("NFKC", str(text))
    t = re.sub(r"\s+", "", t)
    for w in _STRIP_WORDS:
        t = t.replace(w, "")
    return t


def _cn_number(s: str) -> int | None:
    if s.isdigit():
        return int(s)
    total, cur = 0, 0
    for ch in s:
        if ch in _CN_DIGITS:
            cur = _CN_DIGITS[ch]
        elif ch == "十":
            total += (cur or 1) * 10
            cur = 0
        elif ch == "百":
            total += (cur or 1) * 100
            cur = 0
        else:
            return None
    return total + cur


ROAD_SUFFIXES = ("大道", "大街", "路", "街", "巷", "公路", "大桥", "桥", "隧道")  # after a name, it is a road's


class _AddressIndex:
    """Alias lookup by first character; longest match wins."""

    def __init__(self, gaz: pd.DataFrame):
        self.level = dict(zip(gaz["code"], gaz["level"], strict=True))
        self.parent = dict(zip(gaz["code"], gaz["parent_code"], strict=True))
        alias_codes: dict[str, set[str]] = {}
        for code, aliases in zip(gaz["code"], gaz["aliases"], strict=True):
            for a in aliases:
                alias_codes.setdefault(normalise_address(a), set()).add(code)
        self.by_first: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for a, codes in alias_codes.items():
            if a:
                self.by_first.setdefault(a[0], []).append((a, tuple(sorted(codes))))
        for lst in self.by_first.values():
            lst.sort(key=lambda t: -len(t[0]))
        self.grids_by_village: dict[str, set[str]] = {}
        for code, lvl in self.level.items():
            if lvl == "grid":
                self.grids_by_village.setdefault(self.parent[code], set()).add(code)

    def town_of(self, code: str) -> str | None:
        lvl = self.level.get(code)
        if lvl == "town":
            return code
        if lvl == "village":
            return self.parent[code]
        if lvl == "grid":
            return self.parent.get(self.parent[code])
        return None

    def matches(self, text: str) -> list[tuple[str, tuple[str, ...]]]:
        """All (alias, codes) found in text, longest first. A name that begins a road's name (东涌路, 香洲大道,
        红草街) names the road, not the place: roads are named after towns all over the county."""
        found = []
        for i, ch in enumerate(text):
            for alias, codes in self.by_first.get(ch, ()):
                if text.startswith(alias, i):
                    after = i + len(alias)
                    if text.startswith(ROAD_SUFFIXES, after) and not text.startswith("街道", after):
                        continue  # a shorter alias may still name a place here
                    found.append((alias, codes))
                    break  # the longest alias starting here
        found.sort(key=lambda t: -len(t[0]))
        return found

    def resolve(self, raw: str) -> tuple[str | None, str | None, str | None, str]:
        text = normalise_address(raw)
        if not text:
            return None, None, None, "none"
        # explicit codes in the text (e.g. a 15-digit grid code) win when they are known
        for m in _CODE_RE.finditer(text):
            code = m.group(1)
            lvl = self.level.get(code)
            if lvl == "grid":
                return self.town_of(code), self.parent[code], code, "grid"
            if lvl == "village":
                return self.parent[code], code, None, "village"
        found = self.matches(text)
        towns = [(a, c) for a, c in found if self.level[c[0]] == "town"]
        town = towns[0][1][0] if towns else None
        for lvl in ("grid", "village"):
            for _alias, codes in (t for t in found if self.level[t[1][0]] == lvl):
                cands = [c for c in codes if town is None or self.town_of(c) == town]
                if len(cands) == 1:
                    code = cands[0]
                    village = code if lvl == "village" else self.parent[code]
                    if lvl == "village":
                        grid = self._grid_number(text, village)
                        if grid:
                            return self.town_of(code), village, grid, "grid"
                        return self.town_of(code), village, None, "village"
                    return self.town_of(code), village, code, "grid"
                # 0 candidates: the name belongs to another town than the one named → conflict, skip;
                # >1: duplicate name and no town to tell them apart → do not guess
        if town is not None:
            return town, None, None, "town"
        return None, None, None, "none"

    def _grid_number(self, text: str, village: str) -> str | None:
        for m in _GRID_NO.finditer(text):
            n = _cn_number(m.group(1) or m.group(2))
            if n is not None and 0 < n < 1000:
                code = f"{village}{n:03d}"
                if code in self.grids_by_village.get(village, ()):
                    return code
        return None


def resolve_address(area_set: AreaSet, texts) -> pd.DataFrame:
    """Resolve free-text addresses to town/village/grid codes by longest gazetteer-name match.

    Returns DataFrame[town_code, village_code, grid_code, precision] aligned with ``texts``; precision
    is 'grid', 'village', 'town' or 'none'. Text is NFKC-normalised and vague words (附近/旁/对面/门口)
    are dropped. A village name shared by several towns is resolved only when the town is named too;
    a village name that belongs to a different town than the one named is ignored (town precision).
    Known 15/12-digit codes in the text are honoured. Never returns a point.
    """
    s = texts if isinstance(texts, pd.Series) else pd.Series(list(texts))
    idx = area_set._address_index
    values = s.fillna("").astype(str)
    uniq = pd.unique(values)
    res = {u: idx.resolve(u) for u in uniq}
    rows = [res[v] for v in values]
    cols = ["town_code", "village_code", "grid_code", "precision"]
    return pd.DataFrame(
        {c: pd.Series([r[i] for r in rows], dtype=object if i < 3 else "str", index=s.index)
         for i, c in enumerate(cols)},
        index=s.index,
    )
